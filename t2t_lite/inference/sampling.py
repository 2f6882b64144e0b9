"""Random sampling for search at beam 1: top-k, nucleus (top-p) and temperature, seeded.

Options are named as CTranslate2 names them: `sampling_topk` K draws from the K most likely
tokens (K = 1 is argmax, i.e. greedy search; K = 0 the whole vocabulary), `sampling_topp` P
keeps the smallest set of most likely tokens whose probability reaches P, and
`sampling_temperature` T divides the log-probabilities before the draw.

Each step draws one token per row by inverting the cumulative distribution at a uniform
number. The number is a hash of (seed, row key, step), not the state of a generator, so a
row's sample depends only on the seed, its key (the input line and sample index, see
`row_keys`) and the model's scores: not on which other sentences share its batch.

Settings are Python numbers (each setting compiles its own search, with no work for the
options left off), or scalar tensors (`Sampling.dynamic`: one graph takes any values, as the
SavedModel's `translate_with_options` signature does; every draw then sorts the vocabulary).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

__all__ = ["Sampling", "row_keys", "sample_tokens", "uniform_noise"]

_GOLDEN = 0x9E3779B97F4A7C15
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Sampling settings: Python numbers (static: each setting compiles its own search), or
    all four scalar tensors (`dynamic`: sampling whatever their values, topk 1 included).

    Attributes:
        topk: sample from the `topk` most likely tokens; 1 is greedy search (no sampling),
            0 the whole vocabulary.
        topp: sample from the smallest set of most likely tokens with probability >= `topp`
            (0 < topp <= 1; 1 keeps every token).
        temperature: log-probabilities are divided by it before the draw (> 0); near 0 the
            draw becomes the argmax.
        seed: the same seed gives the same samples.
    """

    topk: int = 1
    topp: float = 1.0
    temperature: float = 1.0
    seed: int = 0

    @property
    def dynamic(self) -> bool:
        """The settings are tensors, read when the graph runs."""
        return isinstance(self.topk, tf.Tensor)

    @property
    def enabled(self) -> bool:
        """False for `topk == 1`, which is plain greedy search; True when `dynamic`."""
        return self.dynamic or self.topk != 1

    def validate(self) -> None:
        """Raises ValueError naming the option that is out of range."""
        if self.topk < 0:
            raise ValueError(f"sampling_topk must be >= 0, got {self.topk}")
        if not 0.0 < self.topp <= 1.0:
            raise ValueError(f"sampling_topp must be in (0, 1], got {self.topp}")
        if not self.temperature > 0.0:
            raise ValueError(f"sampling_temperature must be > 0, got {self.temperature}")


def _splitmix64(z: tf.Tensor) -> tf.Tensor:
    """SplitMix64's finalizer on uint64 (wrapping arithmetic): a well-mixed 64-bit hash."""
    z = z + tf.constant(_GOLDEN, tf.uint64)
    for shift, mult in zip((30, 27), _MIX, strict=True):
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(shift, tf.uint64)))
        z = z * tf.constant(mult, tf.uint64)
    return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(31, tf.uint64)))


def uniform_noise(seed: int | tf.Tensor, keys: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """A uniform number in (0, 1) per row, a pure function of (seed, key, step).

    Args:
        seed: int (or int64 scalar tensor).
        keys: [R] int row keys (see `row_keys`).
        step: [] int32 search step.

    Returns:
        [R] float32, strictly between 0 and 1.
    """
    seed = tf.cast(tf.cast(seed, tf.int64), tf.uint64)
    keys = tf.cast(tf.cast(keys, tf.int64), tf.uint64)
    step = tf.cast(tf.cast(step, tf.int64), tf.uint64)
    h = _splitmix64(_splitmix64(_splitmix64(seed) + keys) + step)  # [R]
    bits = tf.cast(tf.bitwise.right_shift(h, tf.constant(40, tf.uint64)), tf.float32)  # 24 bits
    return (bits + 0.5) * (1.0 / (1 << 24))


def row_keys(keys: tf.Tensor, samples: int) -> tf.Tensor:
    """Keys of the `samples` rows of each sentence: [B] -> [B*N], `key * N + n`."""
    keys = tf.cast(keys, tf.int64)
    return tf.reshape(
        keys[:, tf.newaxis] * samples + tf.range(samples, dtype=tf.int64), [-1]
    )  # [B, N] -> [B*N]


def _inverse_cdf(logits: tf.Tensor, uniform: tf.Tensor) -> tf.Tensor:
    """Index drawn from `softmax(logits)` [R, M] at the uniform numbers [R]: [R] int32.

    Zero-probability entries are never drawn: their cumulative value equals their
    predecessor's, so they are counted below the threshold exactly when it is.
    """
    cdf = tf.cumsum(tf.nn.softmax(logits), axis=-1)  # [R, M]
    threshold = uniform[:, tf.newaxis] * cdf[:, -1:]  # [R, 1]
    index = tf.reduce_sum(tf.cast(cdf < threshold, tf.int32), axis=-1)  # [R]
    return tf.minimum(index, tf.shape(logits)[-1] - 1)


def sample_tokens(log_probs: tf.Tensor, uniform: tf.Tensor, sampling: Sampling) -> tf.Tensor:
    """One token per row from the top-k / top-p / temperature-shaped distribution.

    Args:
        log_probs: [R, V] float32 log-probabilities (banned tokens very negative).
        uniform: [R] float32 in (0, 1) (`uniform_noise`).
        sampling: the settings; `sampling.topk != 1`.

    Returns:
        [R] int32 token ids.
    """
    if sampling.dynamic:
        return _sample_dynamic(log_probs, uniform, sampling)
    logits = log_probs / sampling.temperature  # [R, V]
    if sampling.topk == 0 and sampling.topp >= 1.0:
        return _inverse_cdf(logits, uniform)  # the whole vocabulary, no sort
    vocab_size = logits.shape[-1] or tf.shape(logits)[-1]
    k = sampling.topk if sampling.topk > 0 else vocab_size
    if isinstance(k, int) and isinstance(vocab_size, int):
        k = min(k, vocab_size)
    else:
        k = tf.minimum(k, vocab_size)
    values, indices = tf.math.top_k(logits, k=k)  # [R, k], sorted descending
    if sampling.topp < 1.0:
        # Keep a token if the tokens before it hold less than topp: the first always stays.
        before = tf.cumsum(tf.nn.softmax(values), axis=-1, exclusive=True)  # [R, k]
        values = tf.where(before < sampling.topp, values, values.dtype.min)
    choice = _inverse_cdf(values, uniform)  # [R]
    return tf.gather(indices, choice, batch_dims=1)


def _sample_dynamic(log_probs: tf.Tensor, uniform: tf.Tensor, sampling: Sampling) -> tf.Tensor:
    """`sample_tokens` with tensor settings: the same draw, with one sort per step."""
    logits = log_probs / tf.cast(sampling.temperature, log_probs.dtype)  # [R, V]
    vocab_size = tf.shape(logits)[-1]
    topk = tf.cast(sampling.topk, tf.int32)
    k = tf.where(topk > 0, tf.minimum(topk, vocab_size), vocab_size)
    values, indices = tf.math.top_k(logits, k=k)  # [R, k], sorted descending
    topp = tf.cast(sampling.topp, values.dtype)
    before = tf.cumsum(tf.nn.softmax(values), axis=-1, exclusive=True)  # [R, k]
    values = tf.where((before < topp) | (topp >= 1.0), values, values.dtype.min)
    choice = _inverse_cdf(values, uniform)  # [R]
    return tf.gather(indices, choice, batch_dims=1)
