"""tf.data pipelines: shuffled, length-bucketed training batches and in-order eval batches.

Every batch is a dict of int32 tensors, padded with `PAD_ID`:

- `"source"`: `[B, S]`, pieces + [EOS].
- `"target_in"`: `[B, T]`, [BOS] + pieces (the decoder input).
- `"target_out"`: `[B, T]`, pieces + [EOS] (the labels).

`B`, `S` and `T` vary from batch to batch (static shape `[None, None]`). A token budget bounds
each batch: `B * S <= budget` and `B * T <= budget`.

Example:
    >>> ds = train_dataset(cfg, src_vocab, tgt_vocab, cache_dir="runs/m/data_cache")
    >>> batch = next(iter(ds))
    >>> batch["source"].shape   # e.g. [96, 12]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from t2t_lite.config import Config, TrainConfig
from t2t_lite.data.errors import DataError
from t2t_lite.data.token_pairs import TokenPairs, cached_train_pairs
from t2t_lite.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary

Batch = dict[str, tf.Tensor]
AUTOTUNE = tf.data.AUTOTUNE


def _example_fn(pairs: TokenPairs) -> Callable[[tf.Tensor], Batch]:
    """A function from a pair index to its unbatched example `{source: [S], target_*: [T]}`."""
    src_values, src_splits = tf.constant(pairs.src_values), tf.constant(pairs.src_splits)
    tgt_values, tgt_splits = tf.constant(pairs.tgt_values), tf.constant(pairs.tgt_splits)
    eos, bos = tf.constant([EOS_ID], tf.int32), tf.constant([BOS_ID], tf.int32)

    def example(index: tf.Tensor) -> Batch:
        src = src_values[src_splits[index] : src_splits[index + 1]]
        tgt = tgt_values[tgt_splits[index] : tgt_splits[index + 1]]
        return {
            "source": tf.concat([src, eos], 0),
            "target_in": tf.concat([bos, tgt], 0),
            "target_out": tf.concat([tgt, eos], 0),
        }

    return example


def _example_length(example: Batch) -> tf.Tensor:
    return tf.maximum(tf.shape(example["source"])[0], tf.shape(example["target_in"])[0])


def make_examples(pairs: TokenPairs) -> tf.data.Dataset:
    """One unbatched example per pair, in order.

    Each is `{"source": [S], "target_in": [T], "target_out": [T]}` (int32, unpadded).
    """
    return tf.data.Dataset.range(len(pairs)).map(
        _example_fn(pairs), num_parallel_calls=AUTOTUNE, deterministic=True
    )


def example_lengths(pairs: TokenPairs) -> np.ndarray:
    """int64 `[N]`: `max(S, T)` of each example, i.e. the longer side plus its EOS/BOS."""
    return np.maximum(pairs.src_lengths, pairs.tgt_lengths) + 1


def bucket_plan(
    max_length: int, batch_tokens: int, bucket_width: int
) -> tuple[list[int], list[int]]:
    """Bucket boundaries and batch sizes for `tf.data.Dataset.bucket_by_sequence_length`.

    Bucket j holds examples with `j * width < max(S, T) <= (j + 1) * width` (the last one ends
    at `max_length`) and batches `batch_tokens // ((j + 1) * width)` of them, so a batch padded
    to its longest example never exceeds the budget.

    Returns:
        `(boundaries, batch_sizes)` with `len(batch_sizes) == len(boundaries) + 1`.

    Raises:
        DataError: the longest example alone exceeds the budget, or the width is not positive.
    """
    if bucket_width < 1:
        raise DataError(f"train.bucket_width={bucket_width} must be at least 1")
    if max_length > batch_tokens:
        raise DataError(
            f"train.batch_tokens={batch_tokens} (per replica) is smaller than the longest "
            f"training example ({max_length} pieces with EOS); raise it or lower "
            "data.max_src_length / data.max_tgt_length"
        )
    uppers = list(range(bucket_width, max_length, bucket_width)) + [max_length]
    boundaries = [upper + 1 for upper in uppers[:-1]]
    return boundaries, [batch_tokens // upper for upper in uppers]


def make_train_dataset(
    pairs: TokenPairs,
    cfg: TrainConfig,
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool = True,
) -> tf.data.Dataset:
    """Shuffled, length-bucketed batches of `pairs` (see the module docstring for the format).

    Each pass visits every pair of this pipeline's shard exactly once; passes are reshuffled
    and the order is fixed by `cfg.seed`.

    Args:
        pairs: the tokenized training pairs.
        cfg: `batch_tokens`, `bucket_width`, `shuffle_buffer` (0 or 1: no shuffling) and
            `seed`.
        input_context: from `strategy.distribute_datasets_from_function`; this pipeline then
            reads shard `input_pipeline_id` of `num_input_pipelines`, and `batch_tokens` (the
            global budget) is divided by `num_replicas_in_sync`.
        repeat: repeat forever (training) or stop after one pass (tests, statistics).

    Raises:
        DataError: the budget cannot hold the longest example, or there are fewer pairs than
            input pipelines.
    """
    budget = cfg.batch_tokens
    indices = tf.data.Dataset.range(len(pairs))
    count = len(pairs)
    if input_context is not None:
        budget //= input_context.num_replicas_in_sync
        shards, shard = input_context.num_input_pipelines, input_context.input_pipeline_id
        if count < shards:
            raise DataError(f"{count} training pairs cannot feed {shards} input pipelines")
        indices = indices.shard(shards, shard)
        count = len(range(shard, len(pairs), shards))
    boundaries, batch_sizes = bucket_plan(
        int(example_lengths(pairs).max()), budget, cfg.bucket_width
    )
    if cfg.shuffle_buffer > 1:
        indices = indices.shuffle(
            min(cfg.shuffle_buffer, count), seed=cfg.seed, reshuffle_each_iteration=True
        )
    dataset = indices.map(_example_fn(pairs), num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=_example_length,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=batch_sizes,
        padding_values=PAD_ID,
    )
    if repeat:
        dataset = dataset.repeat()
    return _finish(dataset.prefetch(AUTOTUNE))


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options)


def train_dataset(
    cfg: Config,
    src_vocab: Vocabulary,
    tgt_vocab: Vocabulary,
    cache_dir: str | None,
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool = True,
) -> tf.data.Dataset:
    """The training batches: tokenized once (cached in `cache_dir`), shuffled, bucketed.

    Args:
        cfg: the configuration; `cfg.data` says where the pairs come from and how long they
            may be, `cfg.train` how to batch and shuffle them.
        src_vocab: source vocabulary.
        tgt_vocab: target vocabulary.
        cache_dir: directory for the tokenized-data cache, e.g. `<model_dir>/data_cache`;
            None tokenizes every time.
        input_context: see `make_train_dataset`.
        repeat: False gives exactly one pass over the data.

    Returns:
        An infinite (unless `repeat=False`) dataset of batches as described in the module
        docstring.

    Raises:
        DataError: bad input files or settings (see `load_pairs` and `make_train_dataset`).
    """
    pairs = cached_train_pairs(cfg, src_vocab, tgt_vocab, cache_dir)
    return make_train_dataset(pairs, cfg.train, input_context=input_context, repeat=repeat)


def eval_batch_bounds(lengths: np.ndarray, batch_tokens: int) -> list[tuple[int, int]]:
    """Splits examples, in order, into `[start, end)` runs that fit the token budget.

    An example longer than the budget gets a batch of its own.
    """
    bounds, start, longest = [], 0, 0
    for i, length in enumerate(lengths.tolist()):
        longest = max(longest, length)
        if i > start and (i - start + 1) * longest > batch_tokens:
            bounds.append((start, i))
            start, longest = i, length
    if len(lengths):
        bounds.append((start, len(lengths)))
    return bounds


def make_eval_dataset(pairs: TokenPairs, batch_tokens: int) -> tf.data.Dataset:
    """Batches of `pairs` in their order, each pair exactly once (no shuffle, no repeat).

    Consecutive pairs are grouped while `B * max(S, T) <= batch_tokens`; a pair longer than
    the budget forms a batch of one.
    """
    lengths = example_lengths(pairs)
    bounds = eval_batch_bounds(lengths, batch_tokens)
    if len(lengths) and lengths.max() > batch_tokens:
        logging.warning(
            "%d eval pairs are longer than batch_tokens=%d and get a batch of their own",
            int((lengths > batch_tokens).sum()),
            batch_tokens,
        )
    src = tf.RaggedTensor.from_row_splits(pairs.src_values, pairs.src_splits)
    tgt = tf.RaggedTensor.from_row_splits(pairs.tgt_values, pairs.tgt_splits)

    def batch(start: tf.Tensor, end: tf.Tensor) -> Batch:
        s, t = src[start:end], tgt[start:end]
        column = tf.ones([end - start, 1], tf.int32)
        eos = tf.RaggedTensor.from_tensor(column * EOS_ID)
        bos = tf.RaggedTensor.from_tensor(column * BOS_ID)
        return {
            "source": tf.concat([s, eos], 1).to_tensor(PAD_ID),
            "target_in": tf.concat([bos, t], 1).to_tensor(PAD_ID),
            "target_out": tf.concat([t, eos], 1).to_tensor(PAD_ID),
        }

    starts = np.array([b[0] for b in bounds], np.int64)
    ends = np.array([b[1] for b in bounds], np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((starts, ends)).map(batch)
    return _finish(dataset.prefetch(AUTOTUNE))


def eval_dataset(
    src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], batch_tokens: int
) -> tf.data.Dataset:
    """Batches of the given pairs in their order, each exactly once (no shuffle, no repeat).

    Args:
        src_ids: source piece ids per sentence, e.g. `src_vocab.encode(sources)`.
        tgt_ids: target piece ids per sentence, aligned with `src_ids`.
        batch_tokens: token budget per batch (see `make_eval_dataset`).

    Returns:
        A finite dataset of batches as described in the module docstring.
    """
    return make_eval_dataset(TokenPairs.from_lists(src_ids, tgt_ids), batch_tokens)


def tokens_per_batch(batch: Batch) -> tf.Tensor:
    """int32 scalar: non-padding tokens of the batch, source plus target (EOS included)."""
    return tf.math.count_nonzero(batch["source"], dtype=tf.int32) + tf.math.count_nonzero(
        batch["target_out"], dtype=tf.int32
    )
