"""Data sources: text files, path resolution, TFDS (mocked), and the errors for bad input."""

import gzip
import logging
import os

import pytest
import tensorflow_datasets as tfds

from t2t_lite.config import Config, DataConfig
from t2t_lite.data import (
    DataError,
    check_sources,
    data_dir,
    load_pairs,
    read_lines,
    resolve_path,
    tokens_per_batch,
    train_dataset,
)
from t2t_lite.vocab import build_vocabularies

SRC = ["A dog runs.", " Two\tmen  sit\u00a0down. ", "", "A red house.", "Hi"]
TGT = ["Ein Hund läuft.", "Zwei Männer setzen sich.", "Leer", "Ein rotes Haus.", ""]


def write(path, lines, gz=False):
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return str(path)


def text_config(tmp_path, src=SRC, tgt=TGT, gz=False):
    ext = ".gz" if gz else ""
    return DataConfig(
        train_src=write(tmp_path / f"train.en{ext}", src, gz),
        train_tgt=write(tmp_path / f"train.de{ext}", tgt, gz),
        valid_src=write(tmp_path / "val.en", src[:2]),
        valid_tgt=write(tmp_path / "val.de", tgt[:2]),
    )


@pytest.mark.parametrize("gz", [False, True])
def test_text_pairs_are_normalized_and_empty_pairs_skipped(tmp_path, caplog, gz):
    cfg = text_config(tmp_path, gz=gz)
    with caplog.at_level(logging.INFO):
        src, tgt = load_pairs(cfg, "train")
    assert src == ["A dog runs.", "Two men sit down.", "A red house."]
    assert tgt == ["Ein Hund läuft.", "Zwei Männer setzen sich.", "Ein rotes Haus."]
    assert "skipped 2 of 5 pairs with an empty side" in caplog.text
    assert load_pairs(cfg, "valid") == (src[:2], tgt[:2])


def test_lines_split_on_newline_only(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes("a\u2028b\r\nc\x85d\n".encode())
    assert read_lines(path) == ["a b", "c d"]


def test_different_line_counts_name_both_files_and_counts(tmp_path):
    cfg = text_config(tmp_path, src=SRC, tgt=TGT[:3])
    with pytest.raises(DataError, match=r"train\.en has 5 lines.*train\.de has 3 lines"):
        load_pairs(cfg, "train")


@pytest.mark.parametrize("gz", [False, True])
def test_invalid_utf8_names_file_and_line(tmp_path, gz):
    data = b"fine\nalso fine\nbad \xff byte\n"
    path = tmp_path / ("bad.en.gz" if gz else "bad.en")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match=rf"{path.name}, line 3: invalid UTF-8"):
        read_lines(path)


def test_corrupt_gzip_names_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="broken.gz"):
        read_lines(path)


def test_missing_file_fails_the_check(tmp_path, monkeypatch):
    monkeypatch.setenv("T2T_DATA_DIR", str(tmp_path))
    cfg = text_config(tmp_path)
    cfg.valid_tgt = "nowhere/val.de"
    check_sources(cfg, splits=["train"])
    with pytest.raises(DataError, match=r"'nowhere/val.de'.*tried .*nowhere/val\.de"):
        check_sources(cfg)
    with pytest.raises(DataError, match="data.train_src and data.train_tgt"):
        check_sources(DataConfig())


def test_resolve_path_tries_data_dir_then_cwd(tmp_path, monkeypatch):
    (tmp_path / "data" / "corpus").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    in_data = write(tmp_path / "data" / "corpus" / "a.txt", ["x"])
    in_cwd = write(tmp_path / "work" / "b.txt", ["y"])
    monkeypatch.setenv("T2T_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path / "work")
    assert data_dir() == str(tmp_path / "data")
    assert resolve_path("corpus/a.txt") == in_data
    assert resolve_path("b.txt") == in_cwd
    assert resolve_path(in_data) == in_data
    with pytest.raises(DataError, match="c.txt"):
        resolve_path("c.txt")


def test_default_data_dir_is_shared_data_beside_the_repo(monkeypatch):
    monkeypatch.delenv("T2T_DATA_DIR", raising=False)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    expected = os.path.normpath(os.path.join(repo, "..", "shared", "data"))
    if not os.path.isdir(expected):
        pytest.skip(f"{expected} does not exist on this machine")
    assert data_dir() == expected


def tfds_config(**overrides):
    cfg = DataConfig(source="tfds", tfds_name="ted_hrlr_translate/pt_to_en")
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tfds_name": "no_such_dataset"}, "'no_such_dataset' is not a TFDS dataset"),
        ({"tfds_name": "ted_hrlr_translate/xx_to_en"}, "xx_to_en"),
        ({"src_lang": "fr"}, r"data.src_lang='fr' is not a language .* \['en', 'pt'\]"),
        ({"tfds_name": ""}, "needs data.tfds_name"),
    ],
)
def test_bad_tfds_settings_fail_the_check(overrides, message):
    with pytest.raises(DataError, match=message):
        check_sources(tfds_config(**overrides))


def test_tfds_source_yields_batches(tmp_path):
    cfg = Config()
    cfg.data = tfds_config()
    cfg.vocab.size = 30
    cfg.train.batch_tokens = 200
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        src, tgt = load_pairs(cfg.data, "train")
        valid = load_pairs(cfg.data, "valid")
        vocab, _ = build_vocabularies(cfg, tmp_path, src, tgt)
        batches = list(train_dataset(cfg, vocab, vocab, str(tmp_path / "cache"), repeat=False))
    assert len(src) == len(tgt) == len(valid[0]) == 40
    assert all(s and s == " ".join(s.split()) for s in src + tgt)
    assert sum(int(b["source"].shape[0]) for b in batches) == 40
    assert sum(int(tokens_per_batch(b)) for b in batches) > 80
