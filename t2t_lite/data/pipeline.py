"""tf.data pipelines: shuffled, length-bucketed training batches and in-order eval batches.

Every batch is a dict of int32 tensors, padded with `PAD_ID`:

- `"source"`: `[B, S]`, pieces + [EOS] (pieces only with `model.source_eos: false`).
- `"target_in"`: `[B, T]`, [BOS] + pieces (the decoder input).
- `"target_out"`: `[B, T]`, pieces + [EOS] (the labels).

`B`, `S` and `T` vary from batch to batch (static shape `[None, None]`). A token budget bounds
each batch: `B * S <= budget` and `B * T <= budget`.

Example:
    >>> pairs = cached_train_pairs(cfg, src_vocab, tgt_vocab, cache_dir="runs/m/data_cache")
    >>> batch = next(iter(make_train_dataset(pairs, cfg.train)))
    >>> batch["source"].shape   # e.g. [96, 12]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from t2t_lite.config import TrainConfig
from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID
from t2t_lite.data.batching import greedy_batch_bounds
from t2t_lite.data.errors import DataError
from t2t_lite.data.token_pairs import TokenPairs

Batch = dict[str, tf.Tensor]
AUTOTUNE = tf.data.AUTOTUNE


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


def _pass_plan(
    members: np.ndarray, lengths: np.ndarray, batch_tokens: int, cfg: TrainConfig
) -> Callable[[tf.Tensor], tf.data.Dataset]:
    """A function from a pass number to that pass's batches, each int64 `[B]` pair indices.

    The pairs `members` are shuffled (within windows of `cfg.shuffle_buffer`), stably sorted
    by length bucket (so each bucket keeps the shuffled order), cut into batches, and the
    batches are shuffled. Cutting is greedy along the sorted pairs, each batch as long as
    `B * upper <= batch_tokens` holds for the upper end of its last pair's bucket: batches
    are full, and the rest of a bucket fills up with pairs of the next one instead of
    making a short batch (as OpenNMT-tf's batches, which never run short, but keeping every
    pair exactly once per pass). The bucket sizes are the same in every pass, so the cuts are
    computed once. Seeds are `(cfg.seed, 2 * pass)` and `(cfg.seed, 2 * pass + 1)`: the same
    pass number always gives the same batches.
    """
    uppers = bucket_uppers(lengths[members], batch_tokens, cfg.bucket_width)
    bounds = greedy_batch_bounds(np.sort(uppers), batch_tokens)
    starts = tf.constant([start for start, _ in bounds], tf.int64)
    n, shuffle = len(members), cfg.shuffle_buffer > 1
    pair_index = tf.constant(members, tf.int64)  # [N] this pipeline's pairs
    upper_of = tf.constant(uppers)
    window = tf.constant(np.arange(n) // max(cfg.shuffle_buffer, 1), tf.float64)

    def batches(pass_number: tf.Tensor) -> tf.data.Dataset:
        seed = tf.stack([tf.constant(cfg.seed, tf.int64), 2 * pass_number])
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            # Random keys in [0, 1) added to the window number: a shuffle within windows.
            keys = window + tf.random.stateless_uniform([n], seed, dtype=tf.float64)
            order = tf.cast(tf.argsort(keys), tf.int64)
        order = tf.gather(order, tf.argsort(tf.gather(upper_of, order), stable=True))
        rows = tf.RaggedTensor.from_row_starts(tf.gather(pair_index, order), starts)
        if shuffle:
            batch_order = tf.random.experimental.stateless_shuffle(
                tf.range(rows.nrows()), seed + tf.constant([0, 1], tf.int64)
            )
            rows = tf.gather(rows, batch_order)
        return tf.data.Dataset.from_tensor_slices(rows)

    return batches


def make_train_dataset(
    pairs: TokenPairs,
    cfg: TrainConfig,
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool = True,
    skip: int = 0,
    source_eos: bool = True,
) -> tf.data.Dataset:
    """Shuffled, length-bucketed batches of `pairs` (see the module docstring for the format).

    Each pass visits every pair of this pipeline's shard exactly once, in full batches of
    pairs of similar length (see `_pass_plan`); passes are reshuffled and fully determined by
    `cfg.seed` and the pass number. The batch plan of a pass is a handful of vector ops; only
    the batches actually read are gathered and padded, so skipping (`skip`) costs next to
    nothing.

    Args:
        pairs: the tokenized training pairs.
        cfg: `batch_tokens`, `bucket_width`, `shuffle_buffer` (0 or 1: file order; else the
            pairs are shuffled within windows of this many) and `seed`.
        input_context: from `strategy.distribute_datasets_from_function`; this pipeline then
            reads pairs `input_pipeline_id::num_input_pipelines`, and `batch_tokens` (the
            global budget) is divided by `num_replicas_in_sync`.
        repeat: repeat forever (training) or stop after one pass (tests, statistics).
        skip: leave out the first `skip` batches (resuming training at a step).
        source_eos: end sources with EOS (`model.source_eos`).

    Raises:
        DataError: the budget cannot hold the longest example, or there are fewer pairs than
            input pipelines.
    """
    budget, members = cfg.batch_tokens, np.arange(len(pairs))
    if input_context is not None:
        budget //= input_context.num_replicas_in_sync
        shards, shard = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(pairs) < shards:
            raise DataError(f"{len(pairs)} training pairs cannot feed {shards} input pipelines")
        members = members[shard::shards]
    if not len(members):
        raise DataError("there are no training pairs")
    plan = _pass_plan(members, example_lengths(pairs), budget, cfg)
    src, tgt = _ragged_pairs(pairs)

    def padded(rows: tf.Tensor) -> Batch:
        return _pad_batch(tf.gather(src, rows), tf.gather(tgt, rows), source_eos)

    passes = tf.data.Dataset.range(np.iinfo(np.int64).max if repeat else 1)
    dataset = passes.flat_map(plan).skip(skip)
    dataset = dataset.map(padded, num_parallel_calls=AUTOTUNE, deterministic=True)
    return _finish(dataset.prefetch(AUTOTUNE))


def _pad_batch(src: tf.RaggedTensor, tgt: tf.RaggedTensor, source_eos: bool) -> Batch:
    """Pads ragged `[B, (S)]` sources and `[B, (T)]` targets into a batch with EOS/BOS added."""
    column = tf.ones([src.nrows(), 1], tf.int32)
    eos = tf.RaggedTensor.from_tensor(column * EOS_ID)
    bos = tf.RaggedTensor.from_tensor(column * BOS_ID)
    return {
        "source": (tf.concat([src, eos], 1) if source_eos else src).to_tensor(PAD_ID),
        "target_in": tf.concat([bos, tgt], 1).to_tensor(PAD_ID),
        "target_out": tf.concat([tgt, eos], 1).to_tensor(PAD_ID),
    }


def _ragged_pairs(pairs: TokenPairs) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    return (
        tf.RaggedTensor.from_row_splits(pairs.src_values, pairs.src_splits),
        tf.RaggedTensor.from_row_splits(pairs.tgt_values, pairs.tgt_splits),
    )


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
    src, tgt = _ragged_pairs(pairs)

    def batch(start: tf.Tensor, end: tf.Tensor) -> Batch:
        return _pad_batch(src[start:end], tgt[start:end], source_eos)

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
