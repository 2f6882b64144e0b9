"""Streaming preparation: one pass, shards equal to in-memory tokenization, caches, bad input."""

import collections
import logging
import os

import numpy as np
import pytest

from t2t_lite.config import Config, CorpusConfig
from t2t_lite.constants import DATA_CACHE
from t2t_lite.data import (
    DataError,
    TokenPairs,
    cached_train_pairs,
    load_pairs,
    make_train_dataset,
    prepare_training_data,
)
from t2t_lite.data import prepare as prepare_module
from t2t_lite.data.prepare import Reservoir
from t2t_lite.vocab import build_vocabularies
from tests.helpers import made_up_sentences, run_cli, stderr_lines

FIELDS = ["src_values", "src_splits", "tgt_values", "tgt_splits"]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def corpus_config(tmp_path, n=300, name="train", seed=0):
    lines = made_up_sentences(n, seed=seed)
    lines[3] = ""  # an empty side: skipped
    lines[7] = " ".join(["mi"] * 60)  # too long: dropped
    cfg = Config()
    cfg.vocab.size = 60
    cfg.data.max_src_length = cfg.data.max_tgt_length = 40
    cfg.train.batch_tokens = 200
    cfg.data.train_src = write(tmp_path / f"{name}.src", lines)
    cfg.data.train_tgt = write(tmp_path / f"{name}.tgt", lines[::-1])
    return cfg


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(prepare_module, "CHUNK_PAIRS", 70)  # several shards, several workers


def joined(corpus):
    return TokenPairs.concatenate(list(corpus.shards))


def test_one_pass_gives_the_vocabulary_and_pairs_of_in_memory_preparation(tmp_path):
    cfg = corpus_config(tmp_path)
    src_vocab, tgt_vocab, (corpus,) = prepare_training_data(cfg, str(tmp_path / "m"), True)
    assert src_vocab is tgt_vocab and len(corpus.shards) == 5  # 298 pairs in chunks of 70
    reference_vocab, _ = build_vocabularies(cfg, tmp_path / "ref", *load_pairs(cfg.data, "train"))
    with open(src_vocab.path, "rb") as a, open(reference_vocab.path, "rb") as b:
        assert a.read() == b.read()
    reference = cached_train_pairs(cfg, src_vocab, tgt_vocab, None)
    got = joined(corpus)
    assert len(got) == len(reference) == 296
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(got, field), getattr(reference, field))
    assert all(isinstance(s.src_values, np.memmap) for s in corpus.shards)
    assert os.listdir(tmp_path / "m" / DATA_CACHE) == [
        os.path.basename(prepare_module._cache_dir("", prepare_module.train_corpora(cfg.data)[0]))
    ]


def test_the_cache_is_reused_and_a_changed_source_rebuilds_it(tmp_path, monkeypatch, caplog):
    cfg = corpus_config(tmp_path)
    model_dir = str(tmp_path / "m")
    _, _, (first,) = prepare_training_data(cfg, model_dir, True)
    real_pairs = prepare_module._pairs

    def no_reading(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(prepare_module, "_pairs", no_reading)
    _, _, (again,) = prepare_training_data(cfg, model_dir, False)
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(joined(again), field), getattr(joined(first), field))
    lines = made_up_sentences(100, seed=5)
    write(tmp_path / "train.src", lines)
    write(tmp_path / "train.tgt", lines)
    with pytest.raises(AssertionError, match="cache"):
        prepare_training_data(cfg, model_dir, False)
    monkeypatch.setattr(prepare_module, "_pairs", real_pairs)
    with caplog.at_level(logging.WARNING):
        _, _, (rebuilt,) = prepare_training_data(cfg, model_dir, False)
    assert "a source file changed" in caplog.text
    assert len(rebuilt) == 100


@pytest.mark.parametrize("damage", ["truncate", "flip", "remove"])
def test_a_damaged_shard_is_detected_and_rebuilt(tmp_path, caplog, damage):
    cfg = corpus_config(tmp_path)
    model_dir = str(tmp_path / "m")
    _, _, (first,) = prepare_training_data(cfg, model_dir, True)
    expected = {field: np.array(getattr(joined(first), field)) for field in FIELDS}
    (cache,) = (tmp_path / "m" / DATA_CACHE).iterdir()
    path = cache / "00002.tgt_values.npy"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:-6])
    elif damage == "flip":
        path.write_bytes(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    else:
        path.unlink()
    with caplog.at_level(logging.WARNING):
        _, _, (rebuilt,) = prepare_training_data(cfg, model_dir, False)
    assert "00002.tgt_values.npy" in caplog.text and "Rebuilding" in caplog.text
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(joined(rebuilt), field), expected[field])


def test_different_line_counts_stop_the_pass_without_leaving_a_cache(tmp_path):
    cfg = corpus_config(tmp_path)
    write(tmp_path / "train.tgt", made_up_sentences(250))
    model_dir = tmp_path / "m"
    with pytest.raises(DataError, match=r"train\.src has 300 lines.*train\.tgt has 250 lines"):
        prepare_training_data(cfg, str(model_dir), True)
    assert not (model_dir / DATA_CACHE).exists() or not os.listdir(model_dir / DATA_CACHE)
    assert not (model_dir / "vocab.model").exists()
    write(tmp_path / "train.tgt", made_up_sentences(320))
    with pytest.raises(DataError, match=r"train\.src has 300 lines.*train\.tgt has 320 lines"):
        prepare_training_data(cfg, str(model_dir), True)


def test_t2t_train_stops_on_different_line_counts_before_any_step(tmp_path):
    cfg = corpus_config(tmp_path)
    write(tmp_path / "train.tgt", made_up_sentences(250))
    proc = run_cli(
        "train",
        "--config=configs/tiny.yaml",
        f"--model_dir={tmp_path / 'm'}",
        f"--set=data.train_src={cfg.data.train_src}",
        f"--set=data.train_tgt={cfg.data.train_tgt}",
        "--set=train.eval_every=0",
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = [line for line in stderr_lines(proc) if "error" in line]
    assert len(error) == 1 and "Traceback" not in proc.stderr
    assert f"{cfg.data.train_src} has 300 lines, {cfg.data.train_tgt} has 250 lines" in error[0]
    assert not (tmp_path / "m").exists()


def test_corpora_are_cached_on_their_own_and_mixed_by_weight(tmp_path, monkeypatch):
    cfg = corpus_config(tmp_path)
    one = CorpusConfig(cfg.data.train_src, cfg.data.train_tgt, 3.0)
    other = corpus_config(tmp_path, n=200, name="other", seed=1).data
    two = CorpusConfig(other.train_src, other.train_tgt, 1.0)
    cfg.data.train_src = cfg.data.train_tgt = ""
    cfg.data.train = [one]
    model_dir = str(tmp_path / "m")
    prepare_training_data(cfg, model_dir, True)
    read = []
    real_pairs = prepare_module._pairs
    monkeypatch.setattr(
        prepare_module, "_pairs", lambda c, *a: read.append(c.src) or real_pairs(c, *a)
    )
    cfg.data.train = [one, two]
    _, _, corpora = prepare_training_data(cfg, model_dir, False)
    assert read == [two.src]  # the first corpus comes from its cache
    assert [len(c) for c in corpora] == [296, 194]
    assert len(os.listdir(os.path.join(model_dir, DATA_CACHE))) == 2
    # Batches of the first corpus have sources [...] of its pairs; count them by shape source.
    first = {tuple(r) for s in corpora[0].shards for r in _rows(s)}
    counts = collections.Counter()
    for batch in make_train_dataset(corpora, cfg.train).take(400):
        row = tuple(int(i) for i in batch["source"][0].numpy() if i > 3)
        counts["first" if row in first else "second"] += 1
    assert 0.68 < counts["first"] / 400 < 0.82  # weights 3:1


def _rows(pairs):
    return [
        pairs.src_values[pairs.src_splits[i] : pairs.src_splits[i + 1]].tolist()
        for i in range(len(pairs))
    ]


def test_reservoir_keeps_everything_in_order_until_full_then_samples_uniformly():
    small = Reservoir(10, seed=0)
    for i in range(7):
        small.add(str(i), i % 2)
    assert (small.texts(0), small.texts(1), small.overflowed) == (
        ["0", "2", "4", "6"],
        ["1", "3", "5"],
        False,
    )
    hits = collections.Counter()
    for seed in range(2000):
        reservoir = Reservoir(5, seed=seed)
        for i in range(50):
            reservoir.add(str(i), 0)
        assert len(set(reservoir.items)) == 5 and reservoir.overflowed
        hits.update(reservoir.items)
    assert len(hits) == 50
    assert all(abs(count / 2000 - 0.1) < 0.035 for count in hits.values())  # 5 of 50 each
    again = Reservoir(5, seed=3)
    for i in range(50):
        again.add(str(i), 0)
    reservoir = Reservoir(5, seed=3)
    for i in range(50):
        reservoir.add(str(i), 0)
    assert again.items == reservoir.items


def test_the_vocabulary_sample_is_bounded(tmp_path, monkeypatch):
    cfg = corpus_config(tmp_path)
    cfg.vocab.input_sentence_size = 150
    trained_on = []
    real = prepare_module.build_vocabularies

    def spy(cfg, model_dir, src, tgt):
        trained_on.append(len(src) + len(tgt))
        return real(cfg, model_dir, src, tgt)

    monkeypatch.setattr(prepare_module, "build_vocabularies", spy)
    prepare_training_data(cfg, str(tmp_path / "m"), True)
    assert trained_on == [150]
