"""What a search may emit besides what the model prefers: repetition control, target prefixes.

Each step, before the log-softmax, the logits of every row `[B*K, V]` go through (in order):

1. `penalize_repetitions`: CTRL's repetition penalty (Keskar et al., 2019) as CTranslate2 applies
   it: the logit of a token already in the hypothesis is divided by the penalty if positive,
   multiplied by it if negative.
2. `repeated_ngram_mask`: no n-gram occurs twice; a token that would complete an n-gram already in
   the hypothesis is banned.
3. `force_prefix`: a row whose sentence has a target prefix not yet fully emitted may only emit
   the next prefix token (log-probability 0: prefix tokens add nothing to the score).

The hypothesis is the generated tokens without BOS, prefix tokens included.

`Constraints` hold Python numbers (each setting compiles its own search; an option left off
costs nothing) or scalar tensors (`Constraints.dynamic`: one graph for any values, each
option applied under a `tf.cond`, as the SavedModel's `translate_with_options` signature
does).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import tensorflow as tf

__all__ = [
    "Constraints",
    "TargetPrefix",
    "force_prefix",
    "penalize_repetitions",
    "repeated_ngram_mask",
]

_BANNED = -1e9  # a finite "minus infinity" logit (see beam_search.NEG_INF)


class TargetPrefix(NamedTuple):
    """Target prefixes of a batch: each output starts with its sentence's prefix.

    Attributes:
        ids: [B, P] int32 prefix tokens, anything after a sentence's length (P >= 1).
        lengths: [B] int32 prefix lengths, 0 for no prefix.
    """

    ids: tf.Tensor
    lengths: tf.Tensor


@dataclasses.dataclass(frozen=True)
class Constraints:
    """Repetition control settings: Python numbers (static: each setting compiles its own
    search), or both scalar tensors (`dynamic`).

    Attributes:
        no_repeat_ngram_size: N > 0 forbids any N-gram to occur twice in a hypothesis; 0 = off.
        repetition_penalty: R > 0; 1 = off, R > 1 discourages tokens already generated.
    """

    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0

    @property
    def dynamic(self) -> bool:
        """The settings are tensors, read when the graph runs."""
        return isinstance(self.no_repeat_ngram_size, tf.Tensor)

    @property
    def enabled(self) -> bool:
        """Some option is on (always True when `dynamic`)."""
        return self.dynamic or self.no_repeat_ngram_size > 0 or self.repetition_penalty != 1.0

    def validate(self) -> None:
        """Raises ValueError naming the option that is out of range."""
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        if not self.repetition_penalty > 0.0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


def penalize_repetitions(logits: tf.Tensor, history: tf.Tensor, penalty: float) -> tf.Tensor:
    """CTRL repetition penalty on the logits of tokens present in `history`.

    Args:
        logits: [R, V] float32.
        history: [R, T] int32 tokens generated so far.
        penalty: R > 0.

    Returns:
        [R, V] float32: `logit / R` if positive, `logit * R` if not, for tokens in `history`.
    """
    rows, length = tf.shape(history)[0], tf.shape(history)[1]
    row_ids = tf.repeat(tf.range(rows), length)  # [R*T]
    indices = tf.stack([row_ids, tf.reshape(history, [-1])], axis=1)  # [R*T, 2]
    counts = tf.scatter_nd(indices, tf.ones([rows * length], tf.int32), tf.shape(logits))
    penalized = tf.where(logits > 0, logits / penalty, logits * penalty)
    return tf.where(counts > 0, penalized, logits)  # [R, V]


def repeated_ngram_mask(history: tf.Tensor, n: int, vocab_size: tf.Tensor | int) -> tf.Tensor:
    """Tokens that would complete an n-gram already in the hypothesis: [R, V] bool.

    With `x` the history and `t` its length, token `x[i]` is banned when the n - 1 tokens
    before it equal the last n - 1 tokens of `x` (n = 1: every token of `x` is banned). The
    history is left-padded with n - 1 copies of -1, which match no token, so the windows that
    start before the history never match.

    Args:
        history: [R, T] int32 tokens generated so far.
        n: the n-gram size (Python int >= 1).
        vocab_size: V.

    Returns:
        [R, V] bool, True for banned tokens.
    """
    rows, length = tf.shape(history)[0], tf.shape(history)[1]
    padded = tf.pad(history, [[0, 0], [n - 1, 0]], constant_values=-1)  # [R, T + n - 1]
    match = tf.ones([rows, length], tf.bool)  # [R, T]: window i ends with token x[i]
    for j in range(n - 1):
        window = padded[:, j : j + length]  # [R, T]: position j of every window
        last = padded[:, length + j : length + j + 1]  # [R, 1]: position j of the last n - 1
        match &= tf.equal(window, last)
    row_ids = tf.repeat(tf.range(rows), length)  # [R*T]
    indices = tf.stack([row_ids, tf.reshape(history, [-1])], axis=1)  # [R*T, 2]
    counts = tf.scatter_nd(indices, tf.reshape(tf.cast(match, tf.int32), [-1]), [rows, vocab_size])
    return counts > 0


def repeated_ngram_mask_dynamic(
    history: tf.Tensor, n: tf.Tensor, vocab_size: tf.Tensor | int
) -> tf.Tensor:
    """`repeated_ngram_mask` for an n-gram size known only when the graph runs (n >= 1).

    Token `x[i]` is banned when `x[i - j] == x[t - j]` for every j in [1, n - 1], all
    positions inside the history: `[R, T, n - 1]` comparisons at once.
    """
    rows, length = tf.shape(history)[0], tf.shape(history)[1]
    offsets = tf.range(1, tf.cast(n, tf.int32))  # [n - 1]
    earlier = tf.range(length)[:, tf.newaxis] - offsets  # [T, n - 1]: i - j
    last = length - offsets  # [n - 1]: t - j
    inside = (earlier >= 0) & (last >= 0)[tf.newaxis]  # [T, n - 1]
    padded = tf.pad(history, [[0, 0], [0, 1]], constant_values=-1)  # [R, T + 1]: T may be 0
    before = tf.gather(padded, tf.maximum(earlier, 0), axis=1)  # [R, T, n - 1]
    tail = tf.gather(padded, tf.maximum(last, 0), axis=1)  # [R, n - 1]
    same = tf.equal(before, tail[:, tf.newaxis]) & inside  # [R, T, n - 1]
    match = tf.reduce_all(same, axis=2)  # [R, T]; n = 1: every token of the history
    row_ids = tf.repeat(tf.range(rows), length)  # [R*T]
    indices = tf.stack([row_ids, tf.reshape(history, [-1])], axis=1)  # [R*T, 2]
    counts = tf.scatter_nd(indices, tf.reshape(tf.cast(match, tf.int32), [-1]), [rows, vocab_size])
    return counts > 0


def _apply_dynamic(logits: tf.Tensor, history: tf.Tensor, constraints: Constraints) -> tf.Tensor:
    """Repetition control with tensor settings, each option under a `tf.cond`."""
    penalty = tf.cast(constraints.repetition_penalty, logits.dtype)
    n = tf.cast(constraints.no_repeat_ngram_size, tf.int32)
    logits = tf.cond(
        tf.not_equal(penalty, 1.0),
        lambda: penalize_repetitions(logits, history, penalty),
        lambda: logits,
    )
    return tf.cond(
        n > 0,
        lambda: tf.where(
            repeated_ngram_mask_dynamic(history, n, tf.shape(logits)[-1]), _BANNED, logits
        ),
        lambda: logits,
    )


def force_prefix(
    logits: tf.Tensor, prefix: TargetPrefix, step: tf.Tensor, beam_size: int
) -> tf.Tensor:
    """Rows still inside their prefix may only emit the next prefix token.

    Args:
        logits: [B*K, V] float32.
        prefix: the batch's `TargetPrefix` ([B, P], [B]).
        step: [] int32 tokens generated so far.
        beam_size: K, int or [] int32.

    Returns:
        [B*K, V]: in rows with `step < prefix length`, 0 for the prefix token, a very
        negative number elsewhere; other rows unchanged.
    """
    column = tf.minimum(step, tf.shape(prefix.ids)[1] - 1)
    token = tf.repeat(prefix.ids[:, column], beam_size)  # [B] -> [B*K]
    inside = tf.repeat(step < prefix.lengths, beam_size)  # [B] -> [B*K]
    vocab = tf.range(tf.shape(logits)[-1])  # [V]
    forced = tf.where(vocab[tf.newaxis] == token[:, tf.newaxis], 0.0, _BANNED)  # [B*K, V]
    return tf.where(inside[:, tf.newaxis], forced, logits)


def constrained_log_probs(
    logits: tf.Tensor,
    alive_ids: tf.Tensor,
    step: tf.Tensor,
    constraints: Constraints | None,
    prefix: TargetPrefix | None,
) -> tf.Tensor:
    """Log-probabilities of a search step after the constraints (see the module docstring).

    Args:
        logits: [B*K, V] float32.
        alive_ids: [B, K, 1 + t] int32 alive hypotheses fed to the model, BOS first.
        step: [] int32, t.
        constraints: repetition control, or None.
        prefix: target prefixes, or None.

    Returns:
        [B*K, V] float32 log-probabilities.
    """
    beam_size = tf.shape(alive_ids)[1]
    if constraints is not None and constraints.enabled:
        history = tf.reshape(alive_ids[:, :, 1:], [tf.shape(logits)[0], -1])  # [B*K, t]
        if constraints.dynamic:
            logits = _apply_dynamic(logits, history, constraints)
        elif constraints.repetition_penalty != 1.0:
            logits = penalize_repetitions(logits, history, constraints.repetition_penalty)
        if not constraints.dynamic and constraints.no_repeat_ngram_size > 0:
            banned = repeated_ngram_mask(
                history, constraints.no_repeat_ngram_size, tf.shape(logits)[-1]
            )
            logits = tf.where(banned, _BANNED, logits)
    if prefix is not None:
        logits = force_prefix(logits, prefix, step, beam_size)
    return tf.nn.log_softmax(logits)
