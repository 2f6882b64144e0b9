"""tf.data pipelines: shuffled, length-bucketed training batches and in-order eval batches.

Every batch is a dict of int32 tensors, padded with `PAD_ID`:

- `"source"`: `[B, S]`, pieces + [EOS] (pieces only with `model.source_eos: false`).
- `"target_in"`: `[B, T]`, [BOS] + pieces (the decoder input).
- `"target_out"`: `[B, T]`, pieces + [EOS] (the labels).

`B`, `S` and `T` vary from batch to batch (static shape `[None, None]`). A token budget bounds
each batch: `B * S <= budget` and `B * T <= budget`.

Training batches come from the memory-mapped shards of `prepare_training_data` (or from one
in-memory `TokenPairs`); only the pair lengths are held in memory, the ids of a batch are
read when the batch is.

Example:
    >>> *_, corpora = prepare_training_data(cfg, "runs/m", train_vocab=True)
    >>> batch = next(iter(make_train_dataset(corpora, cfg.train)))
    >>> batch["source"].shape   # e.g. [96, 12]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from t2t_lite.config import TrainConfig
from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID
from t2t_lite.data.batching import greedy_batch_bounds
from t2t_lite.data.errors import DataError
from t2t_lite.data.shards import ShardedCorpus
from t2t_lite.data.token_pairs import TokenPairs

Batch = dict[str, tf.Tensor]
AUTOTUNE = tf.data.AUTOTUNE
# The shards of a corpus whose batches a pass interleaves at any time.
_SHARDS_AT_ONCE = 4


def example_lengths(pairs: TokenPairs) -> np.ndarray:
    """int64 `[N]`: `max(S, T)` of each example, i.e. the longer side plus its EOS/BOS."""
    return np.maximum(pairs.src_lengths, pairs.tgt_lengths) + 1


def bucket_uppers(lengths: np.ndarray, batch_tokens: int, bucket_width: int) -> np.ndarray:
    """int64 `[N]`: the upper end of each example's length bucket.

    Bucket j holds examples with `j * width < max(S, T) <= (j + 1) * width`; the last one ends
    at the longest example. A batch drawn from buckets up to j is padded to at most
    `(j + 1) * width`, which is what the training batches are budgeted with.

    Raises:
        DataError: the longest example alone exceeds the budget, or the width is not positive.
    """
    if bucket_width < 1:
        raise DataError(f"train.bucket_width={bucket_width} must be at least 1")
    longest = int(lengths.max())
    if longest > batch_tokens:
        raise DataError(
            f"train.batch_tokens={batch_tokens} (per replica) is smaller than the longest "
            f"training example ({longest} pieces with EOS); raise it or lower "
            "data.max_src_length / data.max_tgt_length"
        )
    return np.minimum(-(-lengths // bucket_width) * bucket_width, longest)


@dataclasses.dataclass(frozen=True)
class _ShardPlan:
    """What a pass needs of one shard: its pairs in this pipeline, their buckets, the cuts."""

    shard: int  # index into the list of all shards
    members: np.ndarray  # int32 [n], pair indices within the shard
    uppers: np.ndarray  # int32 [n], the upper end of each member's length bucket
    starts: np.ndarray  # int64 [batches], where each batch starts in the sorted members


def _shard_plan(
    shard: int, pairs: TokenPairs, members: np.ndarray, budget: int, cfg: TrainConfig
) -> _ShardPlan:
    uppers = bucket_uppers(example_lengths(pairs)[members], budget, cfg.bucket_width)
    bounds = greedy_batch_bounds(np.sort(uppers), budget)
    starts = np.array([start for start, _ in bounds], np.int64)
    return _ShardPlan(shard, members.astype(np.int32), uppers.astype(np.int32), starts)


def _corpus_passes(
    plans: list[_ShardPlan], num_shards: int, cfg: TrainConfig, repeat: bool
) -> tf.data.Dataset:
    """The batches of one corpus, pass after pass, as `(shard, rows)`: rows int32 `[B]`.

    In a pass every shard is visited once, in an order shuffled with seed
    `(cfg.seed, -1 - pass)`, four shards at a time, their batches interleaved. In a shard,
    the pairs are shuffled (within windows of `cfg.shuffle_buffer`), stably sorted by length
    bucket (so each bucket keeps the shuffled order), cut into batches, and the batches are
    shuffled. Cutting is greedy along the sorted pairs, each batch as long as
    `B * upper <= budget` holds for the upper end of its last pair's bucket: batches are
    full, and the rest of a bucket fills up with pairs of the next one instead of making a
    short batch (as OpenNMT-tf's batches, which never run short, but keeping every pair
    exactly once per pass). The bucket sizes are the same in every pass, so the cuts are
    computed once. Shard `s` of pass `p` is shuffled with seeds `(cfg.seed, 2 * k)` and
    `(cfg.seed, 2 * k + 1)`, `k = p * num_shards + s`: the same pass always gives the same
    batches (a one-shard corpus: `k = p`).
    """
    shuffle = cfg.shuffle_buffer > 1
    members = tf.RaggedTensor.from_row_lengths(
        np.concatenate([p.members for p in plans]), [len(p.members) for p in plans]
    )
    uppers = tf.RaggedTensor.from_row_lengths(
        np.concatenate([p.uppers for p in plans]), [len(p.uppers) for p in plans]
    )
    starts = tf.RaggedTensor.from_row_lengths(
        np.concatenate([p.starts for p in plans]), [len(p.starts) for p in plans]
    )
    shard_ids = tf.constant([p.shard for p in plans], tf.int64)
    buffer = max(cfg.shuffle_buffer, 1)

    def batches(pass_number: tf.Tensor, slot: tf.Tensor) -> tf.data.Dataset:
        shard = shard_ids[slot]
        pair_index, upper_of = members[slot], uppers[slot]  # [n] this pipeline's pairs
        n = tf.size(pair_index, tf.int64)
        k = pass_number * num_shards + shard
        seed = tf.stack([tf.constant(cfg.seed, tf.int64), 2 * k])
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            # Random keys in [0, 1) added to the window number: a shuffle within windows.
            window = tf.cast(order // buffer, tf.float64)
            keys = window + tf.random.stateless_uniform([n], seed, dtype=tf.float64)
            order = tf.cast(tf.argsort(keys), tf.int64)
        order = tf.gather(order, tf.argsort(tf.gather(upper_of, order), stable=True))
        rows = tf.RaggedTensor.from_row_starts(tf.gather(pair_index, order), starts[slot])
        if shuffle:
            batch_order = tf.random.experimental.stateless_shuffle(
                tf.range(rows.nrows()), seed + tf.constant([0, 1], tf.int64)
            )
            rows = tf.gather(rows, batch_order)
        shard_column = tf.fill([rows.nrows()], tf.cast(shard, tf.int32))
        return tf.data.Dataset.from_tensor_slices((shard_column, rows))

    def one_pass(pass_number: tf.Tensor) -> tf.data.Dataset:
        slots = tf.range(len(plans), dtype=tf.int64)
        if shuffle and len(plans) > 1:
            seed = tf.stack([tf.constant(cfg.seed, tf.int64), -1 - pass_number])
            slots = tf.random.experimental.stateless_shuffle(slots, seed)
        return tf.data.Dataset.from_tensor_slices(slots).interleave(
            lambda slot: batches(pass_number, slot),
            cycle_length=min(_SHARDS_AT_ONCE, len(plans)),
            block_length=1,
        )

    passes = tf.data.Dataset.range(np.iinfo(np.int64).max if repeat else 1)
    return passes.flat_map(one_pass)


def make_train_dataset(
    pairs: TokenPairs | Sequence[ShardedCorpus],
    cfg: TrainConfig,
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool = True,
    skip: int = 0,
    source_eos: bool = True,
) -> tf.data.Dataset:
    """Shuffled, length-bucketed batches (see the module docstring for the format).

    Each pass visits every pair of this pipeline's part of a corpus exactly once, in full
    batches of pairs of similar length (see `_corpus_passes`); passes are reshuffled and fully
    determined by `cfg.seed` and the pass number. Several corpora are mixed batch by batch
    in proportion to their weights (`tf.data.Dataset.sample_from_datasets`, seeded with
    `cfg.seed`), each one repeating on its own. The batch plan of a shard is a handful of
    vector ops on its pair lengths (the only per-pair data held in memory); only the batches
    actually read are gathered from the (memory-mapped) shards and padded, so skipping
    (`skip`) costs next to nothing.

    Args:
        pairs: the tokenized training pairs: one `TokenPairs`, or the corpora made by
            `t2t_lite.data.prepare.prepare_training_data`.
        cfg: `batch_tokens`, `bucket_width`, `shuffle_buffer` (0 or 1: file order; else the
            pairs are shuffled within windows of this many) and `seed`.
        input_context: from `strategy.distribute_datasets_from_function`; this pipeline then
            reads pairs `input_pipeline_id::num_input_pipelines` of each corpus, and
            `batch_tokens` (the global budget) is divided by `num_replicas_in_sync`.
        repeat: repeat forever (training) or stop after one pass (tests, statistics).
        skip: leave out the first `skip` batches (resuming training at a step).
        source_eos: end sources with EOS (`model.source_eos`).

    Raises:
        DataError: the budget cannot hold the longest example, or there are fewer pairs than
            input pipelines.
    """
    corpora = [ShardedCorpus((pairs,))] if isinstance(pairs, TokenPairs) else list(pairs)
    budget, shards, pipeline = cfg.batch_tokens, 1, 0
    if input_context is not None:
        budget //= input_context.num_replicas_in_sync
        shards, pipeline = input_context.num_input_pipelines, input_context.input_pipeline_id
    all_shards = [shard for corpus in corpora for shard in corpus.shards]
    streams, first = [], 0
    for corpus in corpora:
        if len(corpus) < shards:
            raise DataError(f"{len(corpus)} training pairs cannot feed {shards} input pipelines")
        plans, offset = [], 0
        for i, shard in enumerate(corpus.shards, start=first):
            # Pairs offset + j with (offset + j) % shards == pipeline: a stride over the corpus.
            members = np.arange((pipeline - offset) % shards, len(shard), shards)
            offset += len(shard)
            if len(members):
                plans.append(_shard_plan(i, shard, members, budget, cfg))
        if not plans:
            raise DataError("there are no training pairs")
        streams.append(_corpus_passes(plans, len(corpus.shards), cfg, repeat))
        first += len(corpus.shards)
    if len(streams) == 1:
        dataset = streams[0]
    else:
        weights = [c.weight for c in corpora]
        dataset = tf.data.Dataset.sample_from_datasets(
            streams, weights=weights, seed=cfg.seed, stop_on_empty_dataset=False
        )
    gather = _BatchGather(all_shards, source_eos)
    dataset = dataset.skip(skip).map(gather, num_parallel_calls=AUTOTUNE, deterministic=True)
    return _finish(dataset.prefetch(AUTOTUNE))


class _BatchGather:
    """Reads batch rows from the shards (NumPy, so memory maps are read only where needed)
    and pads them into a batch with EOS/BOS added."""

    def __init__(self, shards: Sequence[TokenPairs], source_eos: bool):
        self.shards, self.source_eos = shards, source_eos

    def __call__(self, shard: tf.Tensor, rows: tf.Tensor) -> Batch:
        arrays = tf.numpy_function(self._numpy, [shard, rows], [tf.int32] * 3, stateful=False)
        for array in arrays:
            array.set_shape([None, None])
        return dict(zip(("source", "target_in", "target_out"), arrays, strict=True))

    def _numpy(self, shard: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
        pairs = self.shards[int(shard)]
        src, src_lengths = padded_rows(pairs.src_values, pairs.src_splits, rows, 1)
        tgt, tgt_lengths = padded_rows(pairs.tgt_values, pairs.tgt_splits, rows, 1)
        batch = np.arange(len(rows))
        if self.source_eos:
            src[batch, src_lengths] = EOS_ID
        else:
            src = src[:, :-1]
        target_in = np.empty_like(tgt)
        target_in[:, 0] = BOS_ID
        target_in[:, 1:] = tgt[:, :-1]
        tgt[batch, tgt_lengths] = EOS_ID
        return [src, target_in, tgt]


def padded_rows(
    values: np.ndarray, splits: np.ndarray, rows: np.ndarray, extra: int
) -> tuple[np.ndarray, np.ndarray]:
    """int32 `[B, longest + extra]` rows `rows` of a ragged array, zero-padded, and the
    int64 `[B]` lengths."""
    starts = splits[rows]
    lengths = splits[rows + 1] - starts
    positions = np.arange(int(lengths.max(initial=0)) + extra)
    inside = positions < lengths[:, None]  # [B, W]
    out = np.full(inside.shape, PAD_ID, np.int32)
    out[inside] = values[(starts[:, None] + positions)[inside]]
    return out, lengths


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options)


def make_eval_dataset(
    pairs: TokenPairs, batch_tokens: int, source_eos: bool = True
) -> tf.data.Dataset:
    """Batches of `pairs` in their order, each pair exactly once (no shuffle, no repeat).

    Consecutive pairs are grouped while `B * max(S, T) <= batch_tokens`; a pair longer than
    the budget forms a batch of one. `source_eos`: end sources with EOS.
    """
    lengths = example_lengths(pairs)
    bounds = greedy_batch_bounds(lengths, batch_tokens)
    if len(lengths) and lengths.max() > batch_tokens:
        logging.warning(
            "%d eval pairs are longer than batch_tokens=%d and get a batch of their own",
            int((lengths > batch_tokens).sum()),
            batch_tokens,
        )
    gather = _BatchGather([pairs], source_eos)

    def batch(start: tf.Tensor, end: tf.Tensor) -> Batch:
        return gather(tf.constant(0, tf.int32), tf.range(start, end))

    starts = np.array([b[0] for b in bounds], np.int64)
    ends = np.array([b[1] for b in bounds], np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((starts, ends)).map(batch)
    return _finish(dataset.prefetch(AUTOTUNE))


def tokens_per_batch(batch: Batch) -> tf.Tensor:
    """int32 scalar: the batch's source plus target pieces, without EOS/BOS and padding.

    Counted like OpenNMT-tf's tokens/s (its sources have no EOS; it leaves out the target's
    BOS/EOS), so throughputs compare directly. Pieces never take the EOS id, so counting the
    EOS ids works with and without source EOS.
    """

    def pieces(ids: tf.Tensor) -> tf.Tensor:
        eos = tf.math.count_nonzero(tf.equal(ids, EOS_ID), dtype=tf.int32)
        return tf.math.count_nonzero(ids, dtype=tf.int32) - eos

    return pieces(batch["source"]) + pieces(batch["target_out"])
