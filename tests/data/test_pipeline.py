"""tf.data pipelines: batch format, token budget, one pass = every pair once, determinism."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.config import Config, TrainConfig
from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID
from t2t_lite.data import (
    DataError,
    TokenPairs,
    cached_train_pairs,
    make_eval_dataset,
    make_train_dataset,
    tokens_per_batch,
)
from t2t_lite.data import token_pairs as token_pairs_module
from t2t_lite.data.batching import greedy_batch_bounds
from t2t_lite.data.pipeline import bucket_uppers, example_lengths
from t2t_lite.data.token_pairs import filter_by_length
from t2t_lite.vocab import build_vocabularies

N = 300


def synthetic_pairs(n=N, seed=0):
    """Pair i has source `[4 + i, ...]`, so every batch row says which pair it is."""
    rng = np.random.default_rng(seed)
    src = [[4 + i, *rng.integers(4, 50, rng.integers(0, 40))] for i in range(n)]
    tgt = [list(rng.integers(4, 50, rng.integers(1, 45))) for _ in range(n)]
    return TokenPairs.from_lists(src, tgt), src, tgt


PAIRS, SRC, TGT = synthetic_pairs()


def train_config(**overrides):
    cfg = TrainConfig(batch_tokens=256, bucket_width=8, shuffle_buffer=1000, seed=7)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def check_batch(batch, budget):
    """Checks format and budget; returns the pair index of every row."""
    source, target_in, target_out = (
        batch[k].numpy() for k in ["source", "target_in", "target_out"]
    )
    assert all(batch[k].dtype == tf.int32 for k in batch)
    (b, s), (_, t) = source.shape, target_in.shape
    assert target_out.shape == (b, t)
    assert b * s <= budget and b * t <= budget
    indices = source[:, 0] - 4
    for row, i in enumerate(indices):
        want_src = [*SRC[i], EOS_ID]
        want_tgt = TGT[i]
        assert source[row].tolist() == want_src + [PAD_ID] * (s - len(want_src))
        padding = [PAD_ID] * (t - len(want_tgt) - 1)
        assert target_in[row].tolist() == [BOS_ID, *want_tgt, *padding]
        assert target_out[row].tolist() == [*want_tgt, EOS_ID, *padding]
    return indices.tolist()


def one_pass(dataset, budget):
    return [check_batch(batch, budget) for batch in dataset]


def test_every_pair_exactly_once_per_pass_within_budget():
    batches = one_pass(make_train_dataset(PAIRS, train_config(), repeat=False), 256)
    assert sorted(i for batch in batches for i in batch) == list(range(N))
    assert max(len(batch) for batch in batches) > 1


def test_repeated_passes_are_whole_and_reshuffled():
    cfg = train_config()
    per_pass = len(one_pass(make_train_dataset(PAIRS, cfg, repeat=False), 256))
    stream = make_train_dataset(PAIRS, cfg).take(2 * per_pass)
    batches = one_pass(stream, 256)
    first, second = batches[:per_pass], batches[per_pass:]
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(N))
    assert first != second


def test_same_seed_same_batches_other_seed_other_order():
    def run(seed):
        return one_pass(make_train_dataset(PAIRS, train_config(seed=seed), repeat=False), 256)

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_skip_continues_the_same_stream():
    cfg = train_config()
    whole = one_pass(make_train_dataset(PAIRS, cfg).take(25), 256)
    assert one_pass(make_train_dataset(PAIRS, cfg, skip=10).take(15), 256) == whole[10:]


def test_batches_are_full_and_cross_each_bucket_boundary_at_most_once():
    cfg = train_config()
    uppers = bucket_uppers(example_lengths(PAIRS), 256, cfg.bucket_width)
    batches = one_pass(make_train_dataset(PAIRS, cfg, repeat=False), 256)
    # Only a bucket's remainder shares a batch with the next bucket's pairs.
    crossings = sum(len(set(uppers[b])) - 1 for b in batches)
    assert crossings <= len(set(uppers)) - 1
    spans = sorted((min(uppers[b]), max(uppers[b]), -len(b)) for b in batches)
    for (_, high, minus_size), (next_low, _, _) in zip(spans, spans[1:], strict=False):
        assert -minus_size * high <= 256  # the budget, at the bucket's upper end
        # Full: the next pair in length order would not have fitted.
        assert (-minus_size + 1) * next_low > 256
    assert len(batches) == len(greedy_batch_bounds(np.sort(uppers), 256))


def test_without_shuffling_the_file_order_is_kept_within_buckets():
    cfg = train_config(shuffle_buffer=0)
    uppers = bucket_uppers(example_lengths(PAIRS), 256, cfg.bucket_width)
    batches = one_pass(make_train_dataset(PAIRS, cfg, repeat=False), 256)
    for batch in batches:
        for upper in set(uppers[batch]):
            rows = [i for i in batch if uppers[i] == upper]
            assert rows == sorted(rows)
    assert sorted(sum(batches, [])) == list(range(N))


def test_input_context_shards_and_splits_the_budget():
    shards = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = make_train_dataset(PAIRS, train_config(), context, repeat=False)
        shards.append(sum(one_pass(dataset, 128), []))
    assert sorted(shards[0]) == list(range(0, N, 2))
    assert sorted(shards[1]) == list(range(1, N, 2))


def test_bucket_uppers_round_lengths_up_to_the_width():
    lengths = np.array([1, 8, 9, 16, 17, 20])
    assert bucket_uppers(lengths, 100, 8).tolist() == [8, 8, 16, 16, 20, 20]
    assert bucket_uppers(lengths, 100, 1).tolist() == lengths.tolist()
    with pytest.raises(DataError, match="batch_tokens=10 .* longest training example \\(20"):
        bucket_uppers(lengths, 10, 8)
    with pytest.raises(DataError, match="bucket_width=0"):
        bucket_uppers(lengths, 100, 0)


def test_budget_smaller_than_longest_pair_is_an_error():
    with pytest.raises(DataError, match="batch_tokens=30"):
        make_train_dataset(PAIRS, train_config(batch_tokens=30))


def test_filter_by_length_counts_eos():
    pairs = TokenPairs.from_lists([[5] * 3, [5] * 4, [5]], [[6] * 2, [6], [6] * 5])
    kept, dropped = filter_by_length(pairs, max_src_length=4, max_tgt_length=5)
    assert (dropped, kept.src_lengths.tolist(), kept.tgt_lengths.tolist()) == (2, [3], [2])


def test_eval_dataset_keeps_order_and_budget():
    batches = one_pass(make_eval_dataset(PAIRS, 256), 256)
    assert sum(batches, []) == list(range(N))
    assert list(make_eval_dataset(PAIRS, 256).as_numpy_iterator())[0]["source"].dtype == np.int32


def test_eval_dataset_gives_an_over_long_pair_its_own_batch():
    pairs = TokenPairs.from_lists([[5] * 3, [6] * 30, [7] * 3], [[5], [6], [7]])
    shapes = [b["source"].shape.as_list() for b in make_eval_dataset(pairs, 20)]
    assert shapes == [[1, 4], [1, 31], [1, 4]]


@pytest.mark.parametrize("source_eos", [True, False])
def test_tokens_per_batch_counts_non_padding(source_eos):
    pairs = TokenPairs.from_lists([[5, 6], [7]], [[8], [9, 10, 11]])
    batch = next(iter(make_eval_dataset(pairs, 100, source_eos)))
    eos = [3] * source_eos
    np.testing.assert_array_equal(batch["source"], [[5, 6, *eos], [7, *eos, 0]])
    np.testing.assert_array_equal(batch["target_out"], [[8, 3, 0, 0], [9, 10, 11, 3]])
    # Pieces only, like OpenNMT-tf: neither the EOS nor the padding counts.
    assert int(tokens_per_batch(batch)) == (2 + 1) + (1 + 3)


def test_token_pairs_save_load_and_select(tmp_path):
    path = str(tmp_path / "p.npz")
    PAIRS.save(path)
    loaded = TokenPairs.load(path)
    assert len(loaded) == N
    np.testing.assert_array_equal(loaded.tgt_values, PAIRS.tgt_values)
    keep = np.arange(N) % 3 == 0
    picked = loaded.select(keep)
    assert [int(picked.src_values[o]) - 4 for o in picked.src_splits[:-1]] == list(range(0, N, 3))


def test_train_pairs_are_tokenized_once_then_read_from_the_cache(tmp_path, monkeypatch, caplog):
    words = ["a", "dog", "runs", "the", "cat", "sits", "on", "mat", "red", "big"]
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(200)]
    lines[5] = " ".join(["dog"] * 40)  # longer than max_src_length: dropped
    (tmp_path / "train.src").write_text("\n".join(lines) + "\n")
    (tmp_path / "train.tgt").write_text("\n".join(reversed(lines)) + "\n")
    cfg = Config()
    cfg.data.train_src, cfg.data.train_tgt = (
        str(tmp_path / "train.src"),
        str(tmp_path / "train.tgt"),
    )
    cfg.data.max_src_length = cfg.data.max_tgt_length = 30
    cfg.vocab.size = 30
    cfg.train.batch_tokens = 300
    vocab, _ = build_vocabularies(cfg, tmp_path / "model", lines, [])
    cache = str(tmp_path / "model" / "data_cache")

    def count(pairs):
        batches = make_train_dataset(pairs, cfg.train, repeat=False)
        return sum(int(b["source"].shape[0]) for b in batches)

    with caplog.at_level(logging.INFO):
        assert count(cached_train_pairs(cfg, vocab, vocab, cache)) == 198
    assert "dropped 2 longer than 30 (source) or 30 (target)" in caplog.text

    def no_reading(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(token_pairs_module, "load_pairs", no_reading)
    assert count(cached_train_pairs(cfg, vocab, vocab, cache)) == 198
    cfg.data.max_tgt_length = 31  # a different cache key: tokenizes again
    with pytest.raises(AssertionError, match="cache"):
        cached_train_pairs(cfg, vocab, vocab, cache)


def sharded(parts=3):
    """PAIRS cut into `parts` consecutive shards, as one corpus."""
    from t2t_lite.data import ShardedCorpus

    cuts = np.array_split(np.arange(N), parts)
    return [ShardedCorpus(tuple(PAIRS.select(np.isin(np.arange(N), c)) for c in cuts))]


def test_a_sharded_corpus_streams_every_pair_once_per_pass_reproducibly():
    cfg = train_config()
    batches = one_pass(make_train_dataset(sharded(), cfg, repeat=False), 256)
    assert sorted(sum(batches, [])) == list(range(N))
    shards_of = [set(np.array(b) * 3 // N) for b in batches]
    assert all(len(s) == 1 for s in shards_of)  # a batch comes from one shard
    assert len({next(iter(s)) for s in shards_of[:3]}) > 1  # shards are interleaved
    whole = one_pass(make_train_dataset(sharded(), cfg).take(len(batches) + 10), 256)
    again = make_train_dataset(sharded(), cfg, skip=25).take(len(batches) - 15)
    assert one_pass(again, 256) == whole[25:]
    assert sorted(sum(whole[: len(batches)], [])) == list(range(N))
    other = one_pass(make_train_dataset(sharded(), train_config(seed=8), repeat=False), 256)
    assert other != batches


def test_input_context_shards_a_sharded_corpus():
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = make_train_dataset(sharded(), train_config(), context, repeat=False)
        seen.append(sorted(sum(one_pass(dataset, 128), [])))
    assert seen == [list(range(0, N, 2)), list(range(1, N, 2))]
