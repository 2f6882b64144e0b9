"""Data sources: text files, path resolution, TFDS (mocked), and the errors for bad input."""

import gzip
import logging
import os
import shutil
import subprocess

import pytest
import tensorflow_datasets as tfds

from t2t_lite.config import Config, DataConfig
from t2t_lite.data import (
    DataError,
    cached_train_pairs,
    check_sources,
    data_dir,
    load_pairs,
    make_train_dataset,
    read_lines,
    resolve_path,
    tokens_per_batch,
)
from t2t_lite.vocab import build_vocabularies
from tests.helpers import REPO

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
    (tmp_path / "work" / "corpus").mkdir(parents=True)
    in_data = write(tmp_path / "data" / "corpus" / "a.txt", ["x"])
    write(tmp_path / "work" / "corpus" / "a.txt", ["other"])  # the same name: the data dir wins
    in_cwd = write(tmp_path / "work" / "b.txt", ["y"])
    monkeypatch.setenv("T2T_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path / "work")
    assert data_dir() == str(tmp_path / "data")
    assert resolve_path("corpus/a.txt") == in_data
    assert read_lines(resolve_path("corpus/a.txt")) == ["x"]
    assert resolve_path("b.txt") == in_cwd
    assert resolve_path(in_data) == in_data
    with pytest.raises(DataError, match="c.txt"):
        resolve_path("c.txt")


def test_default_data_dir_is_the_cache_and_nothing_beside_the_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("T2T_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # shared/data beside the working directory (and, on some machines, beside this checkout)
    # is the scripts' business, not the package's.
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert data_dir() is None
    with pytest.raises(DataError, match=r"set \$T2T_DATA_DIR"):
        resolve_path("multi30k/train.en")
    cache = tmp_path / "home" / ".cache" / "t2t_lite" / "data"
    cache.mkdir(parents=True)
    assert data_dir() == str(cache)
    monkeypatch.setenv("T2T_DATA_DIR", "~/elsewhere")
    assert data_dir() == str(tmp_path / "home" / "elsewhere")


def source_env_sh(checkout, **env) -> str:
    """`$T2T_DATA_DIR` as exported by `scripts/env.sh` (a copy in `checkout`, with a stand-in
    virtual environment) sourced with `env`; "unset" if it is not exported."""
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "scripts", "env.sh"), checkout / "scripts")
    (checkout / "pyproject.toml").touch()
    os.utime(checkout / "pyproject.toml", (0, 0))  # older than the stamp: nothing to install
    venv = checkout / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").touch(mode=0o755)
    (venv / "activate").touch()
    (checkout / ".venv" / ".t2t_installed").touch()
    script = "source scripts/env.sh && (printenv T2T_DATA_DIR || echo unset)"  # as exported
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=checkout,
        env={"PATH": os.environ["PATH"], "HOME": str(checkout), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_scripts_use_shared_data_beside_the_checkout_unless_told(tmp_path):
    assert source_env_sh(tmp_path / "a" / "repo") == "unset"
    (tmp_path / "b" / "shared" / "data").mkdir(parents=True)
    assert source_env_sh(tmp_path / "b" / "repo") == str(tmp_path / "b" / "shared" / "data")
    given = {"T2T_DATA_DIR": str(tmp_path / "mine")}
    (tmp_path / "c" / "shared" / "data").mkdir(parents=True)
    assert source_env_sh(tmp_path / "c" / "repo", **given) == str(tmp_path / "mine")


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
        raw = tfds.load(cfg.data.tfds_name, split="train", shuffle_files=False)
        pt = [" ".join(example["pt"].decode().split()) for example in tfds.as_numpy(raw)]
        src, tgt = load_pairs(cfg.data, "train")
        valid = load_pairs(cfg.data, "valid")
        vocab, _ = build_vocabularies(cfg, tmp_path, src, tgt)
        pairs = cached_train_pairs(cfg, vocab, vocab, str(tmp_path / "cache"))
        batches = list(make_train_dataset(pairs, cfg.train, repeat=False))
    assert len(src) == len(tgt) == len(valid[0]) == 40
    assert src == pt  # pt_to_en: Portuguese is the source side
    assert all(s and s == " ".join(s.split()) for s in src + tgt)
    assert sum(int(b["source"].shape[0]) for b in batches) == 40
    assert sum(int(tokens_per_batch(b)) for b in batches) > 80


def test_train_corpora_from_a_list_with_weights(tmp_path):
    from t2t_lite.config import ConfigError, config_from_dict
    from t2t_lite.data.sources import train_corpora

    a = text_config(tmp_path)
    data = {
        "train": [
            {"src": a.train_src, "tgt": a.train_tgt, "weight": 3},
            {"src": a.valid_src, "tgt": a.valid_tgt},
        ]
    }
    cfg = config_from_dict({"data": data})
    cfg.validate()
    corpora = train_corpora(cfg.data)
    assert [(c.src, c.weight) for c in corpora] == [(a.train_src, 3.0), (a.valid_src, 1.0)]
    assert config_from_dict(cfg.to_dict()) == cfg  # the saved config reads back
    src, _ = load_pairs(cfg.data, "train")
    assert len(src) == 3 + 2
    with pytest.raises(ConfigError, match=r"data.train\[0\]: unknown key 'source'"):
        config_from_dict({"data": {"train": [{"source": "x"}]}})
    cfg.data.train_src = a.train_src
    with pytest.raises(ConfigError, match="data.train or data.train_src"):
        cfg.validate()
    cfg.data.train_src, cfg.data.train[1].weight = "", 0.0
    with pytest.raises(ConfigError, match=r"data.train\[1\].weight=0.0 must be > 0"):
        cfg.validate()
