import os
import random
import time

import numpy as np
import pytest

from t2t_lite.config import Config, load_config
from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from t2t_lite.data import normalize, read_lines
from t2t_lite.vocab import Vocabulary, build_vocabularies, load_vocabularies, train_sentencepiece
from tests.helpers import real_data_dir

EN = ["a", "the", "dog", "cat", "man", "woman", "runs", "sits", "on", "in", "red", "street"]
DE = ["ein", "der", "hund", "katze", "mann", "frau", "läuft", "sitzt", "auf", "große", "straße"]


def corpus(words, n=300, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) for _ in range(n)]


SRC, TGT = corpus(EN, seed=1), corpus(DE, seed=2)


def tiny_config(**vocab):
    cfg = Config()
    cfg.vocab.size = 40
    for key, value in vocab.items():
        setattr(cfg.vocab, key, value)
    return cfg


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("shared")
    return build_vocabularies(tiny_config(), model_dir, SRC, TGT)


def test_round_trip_after_whitespace_normalization(shared):
    vocab, _ = shared
    texts = ["  the dog\truns  on the\u00a0street ", "ein  großer hund läuft", "die  katze ", "a"]
    ids = vocab.encode(texts)
    assert all(isinstance(i, int) for row in ids for i in row)
    assert vocab.decode_batch(ids) == [normalize(t) for t in texts]
    assert [vocab.decode(row) for row in ids] == [normalize(t) for t in texts]


def test_decode_stops_at_eos_and_skips_pad_and_bos(shared):
    vocab, _ = shared
    (ids,) = vocab.encode(["the dog runs"])
    noisy = [BOS_ID, *ids, EOS_ID, *ids, PAD_ID]
    assert vocab.decode(noisy) == "the dog runs"
    padded = np.array([[BOS_ID, *ids, EOS_ID, PAD_ID], [*ids, PAD_ID, PAD_ID, PAD_ID]])
    assert vocab.decode_batch(padded) == ["the dog runs", "the dog runs"]


def test_shared_layout(shared, tmp_path):
    src, tgt = shared
    assert src is tgt
    assert os.path.basename(src.path) == "vocab.model"
    assert src.size == 40
    loaded_src, loaded_tgt = load_vocabularies(os.path.dirname(src.path))
    assert loaded_src is loaded_tgt
    assert loaded_src.encode(SRC[:5]) == src.encode(SRC[:5])


def test_training_is_deterministic(shared):
    again = train_sentencepiece(tiny_config().vocab, SRC + TGT, seed=Config().train.seed)
    with open(shared[0].path, "rb") as f:
        assert f.read() == again
    # 200 of the 600 sentences: the seed chooses them.
    sampled = tiny_config(input_sentence_size=200).vocab
    first = train_sentencepiece(sampled, SRC + TGT, seed=1)
    assert first != train_sentencepiece(sampled, SRC + TGT, seed=2)
    assert first == train_sentencepiece(sampled, SRC + TGT, seed=1)


def test_separate_layout_replaces_shared(shared, tmp_path):
    build_vocabularies(tiny_config(), tmp_path, SRC, TGT)
    cfg = tiny_config(shared=False, type="bpe", size=40)
    src, tgt = build_vocabularies(cfg, tmp_path, SRC, TGT)
    assert src is not tgt
    assert sorted(os.listdir(tmp_path)) == ["vocab.src.model", "vocab.tgt.model"]
    assert src.decode_batch(src.encode(SRC[:3])) == SRC[:3]
    assert tgt.decode_batch(tgt.encode(TGT[:3])) == TGT[:3]
    loaded_src, loaded_tgt = load_vocabularies(tmp_path)
    assert (loaded_src.path, loaded_tgt.path) == (src.path, tgt.path)


def test_reuses_given_model(shared, tmp_path):
    cfg = tiny_config(source_model=shared[0].path, size=12345)
    src, tgt = build_vocabularies(cfg, tmp_path, [], [])
    assert src is tgt and src.size == 40
    with open(src.path, "rb") as a, open(shared[0].path, "rb") as b:
        assert a.read() == b.read()


def test_given_model_missing(tmp_path):
    cfg = tiny_config(shared=False, target_model=str(tmp_path / "nope.model"))
    with pytest.raises(FileNotFoundError, match="nope.model"):
        build_vocabularies(cfg, tmp_path / "m", SRC, TGT)


def test_rejects_model_with_other_special_ids(tmp_path):
    import sentencepiece as spm

    prefix = str(tmp_path / "other")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SRC), model_prefix=prefix, vocab_size=25, minloglevel=2
    )
    with pytest.raises(ValueError, match="special ids"):
        Vocabulary(prefix + ".model")


def test_size_too_large_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="vocab.size=5000"):
        build_vocabularies(tiny_config(size=5000), tmp_path, SRC, TGT)


def test_load_without_vocabulary_names_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_vocabularies(tmp_path)


def test_multi30k_validation_round_trip(tmp_path):
    root = real_data_dir()
    if root is None or not os.path.isfile(os.path.join(root, "multi30k", "train.en")):
        pytest.skip("Multi30k not found in the data dir or beside the checkout")
    path = os.path.join(root, "multi30k", "{}")
    train = read_lines(path.format("train.en")) + read_lines(path.format("train.de"))
    start = time.perf_counter()
    vocab, _ = build_vocabularies(Config(), tmp_path, train, [])  # 8000 unigram pieces
    print(f"trained 8000 pieces on {len(train)} lines in {time.perf_counter() - start:.1f}s")
    for name in ["val.en", "val.de"]:
        lines = read_lines(path.format(name))
        decoded = vocab.decode_batch(vocab.encode(lines))
        assert [(i, d) for i, (d, x) in enumerate(zip(decoded, lines, strict=True)) if d != x] == []


def test_byte_fallback_round_trips_characters_unseen_in_training(tmp_path):
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(3, 8))) for _ in range(600)]
    texts = [" ".join(rng.choices(words, k=8)) for _ in range(1500)]
    # Characters NFKC leaves alone (SentencePiece normalizes with NFKC, e.g. ² -> 2).
    line = "the 🦜 parrot says Привет, 你好 ∮ ğ — ok"
    cfg = tiny_config(size=600)
    assert cfg.vocab.byte_fallback  # the default for new vocabularies
    vocab, _ = build_vocabularies(cfg, tmp_path / "bytes", texts, [])
    (ids,) = vocab.encode([line])
    assert UNK_ID not in ids
    assert vocab.decode(ids) == line
    assert vocab.decode_batch([[BOS_ID, *ids, EOS_ID, PAD_ID]]) == [line]
    without, _ = build_vocabularies(tiny_config(size=600, byte_fallback=False), tmp_path, texts, [])
    assert UNK_ID in without.encode([line])[0]


def test_a_saved_config_without_byte_fallback_reads_as_false(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("vocab:\n  size: 100\n")
    assert load_config(preset).vocab.byte_fallback
    assert not load_config(preset, saved=True).vocab.byte_fallback
    preset.write_text("vocab:\n  byte_fallback: true\n")
    assert load_config(preset, saved=True).vocab.byte_fallback
