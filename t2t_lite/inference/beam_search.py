"""Batched, model-agnostic beam search with a GNMT length penalty.

Search contract:

- The model is a `step_fn(ids, step, cache, memory) -> (logits, cache)`: `ids` [B*K] int32 are
  the last tokens of the alive hypotheses (at step 0: [B], one BOS per sentence), `step` is the
  int32 number of tokens generated so far, `logits` [B*K, V] any float dtype. Rows are
  beam-major within a batch item: row `b * K + k` is beam `k` of sentence `b`.
- `cache` is a nest of tensors, given with one row per sentence (first axis B). The K beams of
  a sentence start as the same BOS, so the first step feeds one row per sentence (B rows) and
  the cache gather after it makes B*K rows; every later step feeds B*K rows. After every step
  the cache is reordered with `tf.gather` along axis 0 so that row `b * K + k` again follows
  alive beam `k`. Other axes may grow from step to step (e.g. self-attention keys
  [B*K, H, T, Dh]): inside the loop every dimension of a cache tensor is unknown (`None`); a
  `step_fn` that needs a static dimension restores it with `tf.ensure_shape`.
- `memory` is a nest of tensors whose first axis is B, one row per sentence (encoder
  keys/values, source mask): shared by the sentence's K beams, never reordered with them.
- Decided sentences leave the batch. After every step, the sentences that can no longer change
  their N best (see the stopping rule below) hand their finished hypotheses to the output and
  are dropped from `ids`, `cache` and `memory` alike, in the same `tf.gather` that reorders
  the cache (the memory is gathered only on steps where some sentence leaves). So `step_fn`
  sees B' <= B sentences, the undecided ones in their original order, and a batch costs what
  its sentences still need, not what its longest one needs.
- Alive and finished hypotheses are kept apart. Each step expands the K alive beams of a
  sentence and keeps the 2K best (beam, token) candidates, so that K of them are still alive even
  if K end with EOS. The K best candidates that do not end with EOS become the new alive beams.
  A candidate ending with EOS is finished if it ranks among the K best candidates (as in
  fairseq; the ranks K+1..2K only refill the alive set, which makes K = 1 exactly greedy
  search): it is scored `log_prob / length_penalty(length)` and merged into the N kept finished
  hypotheses. Finished hypotheses are never extended again.
- `max_lengths[b]` counts generated tokens including EOS: at that step every alive hypothesis of
  sentence `b` is ended with EOS (scored with the model's EOS log-probability), so each sentence
  gets N finished hypotheses whenever N distinct ones exist.
- A sentence is decided when it reached its maximum length or no alive beam can still beat the
  worst of its N kept finished hypotheses (see `_can_improve` for the bound); the loop ends
  when every sentence is decided.

Greedy search is the same code path with K = 1 (`greedy_search`).

Options (each off by default; when all are off the loop is exactly the one described above):

- `constraints` and `prefix` change each step's log-probabilities before the candidates are
  chosen (repetition control, forced target prefixes: `t2t_lite.inference.constraints`).
- `sampling` (K = 1 only) replaces the argmax with one random draw per row
  (`t2t_lite.inference.sampling`); the candidate's log-prob is that of the drawn token.
- `attention_size` S (alignments): `step_fn` returns `(logits, cache, attention [B*K, S])`,
  the attention behind each row's next token. Each hypothesis keeps the rows of its tokens
  (`[t, S]`), gathered with its ids whenever the beams are reordered, and the output carries
  them (`beam_search` then returns `(output, attention [B, N, L, S])`, row j of a hypothesis
  from the step that chose its token j, zero after its EOS). Without it, no attention is
  traced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf

from t2t_lite.constants import PAD_ID
from t2t_lite.inference.constraints import Constraints, TargetPrefix, constrained_log_probs
from t2t_lite.inference.sampling import Sampling, sample_tokens, uniform_noise
from t2t_lite.layers.shapes import sizes

__all__ = [
    "NEG_INF",
    "BeamSearchOutput",
    "beam_search",
    "flatten_beam",
    "gather_beams",
    "gather_flat_beams",
    "greedy_search",
    "length_penalty",
    "tile_beam",
    "top_k",
    "unflatten_beam",
]

# A finite stand-in for -infinity in float32 scores: `inf * 0` and `inf - inf` are NaN, this is
# not. Candidate log-probs are clamped to it, so `<= NEG_INF` means "no hypothesis here".
NEG_INF = -1e9

StepFn = Callable[[tf.Tensor, tf.Tensor, Any, Any], tuple[tf.Tensor, Any]]


class BeamSearchOutput(NamedTuple):
    """The N best finished hypotheses of each sentence, best first.

    Attributes:
        ids: [B, N, L] int32 generated tokens (no BOS), ending with EOS, PAD_ID after it.
        scores: [B, N] float32 `log_probs / length_penalty(lengths)`.
        lengths: [B, N] int32 number of tokens including EOS.
        log_probs: [B, N] float32 summed token log-probabilities.

    A slot with score `NEG_INF` and length 0 is empty: fewer than N hypotheses with a non-zero
    probability existed (e.g. a vocabulary smaller than N).
    """

    ids: tf.Tensor
    scores: tf.Tensor
    lengths: tf.Tensor
    log_probs: tf.Tensor


class BeamState(NamedTuple):
    """The `tf.while_loop` state of the B' undecided sentences; `t` is `step`, the number of
    tokens generated so far."""

    step: tf.Tensor  # [] int32
    sentences: tf.Tensor  # [B'] int32, each row's sentence in the batch, ascending
    alive_ids: tf.Tensor  # [B', K, 1 + t] int32, BOS first
    alive_log_probs: tf.Tensor  # [B', K] float32, NEG_INF for an empty beam
    cache: Any  # nest of [B'*K, ...]
    memory: Any  # nest of [B', ...]
    finished_ids: tf.Tensor  # [B', N, 1 + t] int32, a BOS slot first, PAD_ID after EOS
    finished_scores: tf.Tensor  # [B', N] float32, sorted descending, NEG_INF for an empty slot
    finished_log_probs: tf.Tensor  # [B', N] float32
    finished_lengths: tf.Tensor  # [B', N] int32
    inputs: Any  # the per-sentence inputs, [B', ...] each (`_SentenceInputs`)
    alive_attention: Any = ()  # [B', K, t, S] float32 with alignments, else () (nothing traced)
    finished_attention: Any = ()  # [B', N, t, S] float32 with alignments, else ()


class _SentenceInputs(NamedTuple):
    """The search's per-sentence arguments, compacted with the sentences."""

    max_lengths: tf.Tensor  # [B'] int32
    sample_keys: Any = ()  # [B'] int with sampling, else ()
    prefix: Any = ()  # TargetPrefix ([B', P], [B']) with prefixes, else ()


class _Decided(NamedTuple):
    """The N best finished hypotheses of the sentences that left the search, [B, ...] rows.

    `ids` are [B, N, W] with W = 1 + the longest maximum length (BOS slot first, PAD_ID after
    EOS), `attention` [B, N, W - 1, S] with alignments, else ()."""

    ids: tf.Tensor
    scores: tf.Tensor
    log_probs: tf.Tensor
    lengths: tf.Tensor
    attention: Any = ()


def length_penalty(length: tf.Tensor | int, alpha: float) -> tf.Tensor:
    """GNMT length penalty `((5 + length) / 6) ** alpha` (Wu et al., 2016); 1 when alpha = 0.

    Args:
        length: Number of tokens including EOS, any shape, int or float.
        alpha: Strength of the penalty; larger favours longer hypotheses.

    Returns:
        A float32 tensor with the shape of `length`.
    """
    length = tf.cast(length, tf.float32)
    return tf.pow((5.0 + length) / 6.0, alpha)


def tile_beam(tensor_nest: Any, beam_size: int) -> Any:
    """Repeats each batch row `beam_size` times: [B, ...] -> [B*K, ...] (row b*K + k).

    Args:
        tensor_nest: A nest of tensors with a leading batch axis.
        beam_size: K.

    Returns:
        The nest with every tensor tiled along axis 0.
    """

    return tf.nest.map_structure(
        lambda t: tf.repeat(t, beam_size, axis=0),  # [B, ...] -> [B*K, ...]
        tensor_nest,
    )


def flatten_beam(tensor: tf.Tensor) -> tf.Tensor:
    """Merges the batch and beam axes: [B, K, ...] -> [B*K, ...]."""
    return tf.reshape(tensor, [-1] + sizes(tensor, 2))  # [B, K, ...] -> [B*K, ...]


def unflatten_beam(tensor: tf.Tensor, beam_size: int) -> tf.Tensor:
    """Splits the batch and beam axes: [B*K, ...] -> [B, K, ...]."""
    return tf.reshape(tensor, [-1, beam_size] + sizes(tensor, 1))  # [B*K, ...] -> [B, K, ...]


def gather_beams(tensor_nest: Any, beam_indices: tf.Tensor) -> Any:
    """Selects beams per sentence: [B, K, ...] with indices [B, M] -> [B, M, ...].

    Args:
        tensor_nest: A nest of tensors with leading [B, K] axes.
        beam_indices: [B, M] int32 indices into the K axis.

    Returns:
        The nest with `out[b, m] = in[b, beam_indices[b, m]]`.
    """
    return tf.nest.map_structure(
        lambda t: tf.gather(t, beam_indices, axis=1, batch_dims=1), tensor_nest
    )


def gather_flat_beams(
    tensor_nest: Any, beam_indices: tf.Tensor, beam_size: int, sentences: tf.Tensor | None = None
) -> Any:
    """Selects beams per sentence in flat tensors: [B*K, ...] with [B', M] -> [B'*M, ...].

    One `tf.gather` along axis 0 per tensor; this is how the cache follows the beams, and
    how the decided sentences leave it.

    Args:
        tensor_nest: A nest of tensors with a leading B*K axis (row b*K + k).
        beam_indices: [B', M] int32 indices into the K beams of each kept sentence.
        beam_size: K.
        sentences: [B'] int32 the kept sentences (default: all B, in order).

    Returns:
        The nest with `out[i*M + m] = in[sentences[i]*K + beam_indices[i, m]]`.
    """
    if sentences is None:
        sentences = tf.range(tf.shape(beam_indices)[0])
    offsets = tf.expand_dims(sentences, 1) * beam_size  # [B', 1]
    flat_indices = tf.reshape(beam_indices + offsets, [-1])  # [B', M] -> [B'*M]
    return tf.nest.map_structure(lambda t: tf.gather(t, flat_indices, axis=0), tensor_nest)


def top_k(values: tf.Tensor, k: int, chunk: int = 64) -> tuple[tf.Tensor, tf.Tensor]:
    """`tf.math.top_k(values, k)` of rows [R, M]: the same values and indices, ties broken
    alike (the lower index first), several times faster on CPU for long rows.

    The k largest entries of a row lie in the k chunks of `chunk` entries whose maxima are
    largest (an entry among them is at most its chunk's maximum), so `tf.math.top_k` runs
    over the [R, M / chunk] chunk maxima and then over those k chunks, taken in index order,
    instead of over all M entries. A row that does not fill its last chunk is padded with
    -inf, which ties lose to any entry.

    Args:
        values: [R, M] float; M must be static for the chunked path (else plain top_k).
        k: Python int.
        chunk: entries per chunk.

    Returns:
        `(values [R, k], indices [R, k] int32)`, sorted descending.
    """
    width = values.shape[-1]
    if width is None or width < 4 * k * chunk:
        return tf.math.top_k(values, k=k)
    if width % chunk:
        padding = [[0, 0], [0, chunk - width % chunk]]
        values = tf.pad(values, padding, constant_values=float("-inf"))
    chunks = tf.reshape(values, [-1, values.shape[-1] // chunk, chunk])  # [R, M/chunk, chunk]
    _, picked = tf.math.top_k(tf.reduce_max(chunks, axis=2), k=k)  # [R, k]
    picked = tf.sort(picked, axis=1)  # index order, so that ties resolve as in one top_k
    candidates = tf.reshape(tf.gather(chunks, picked, batch_dims=1), [-1, k * chunk])
    best, within = tf.math.top_k(candidates, k=k)  # [R, k]
    indices = tf.gather(picked, within // chunk, batch_dims=1) * chunk + within % chunk
    return best, indices


def _unknown_dims(tensor: tf.Tensor) -> tf.TensorShape:
    """Shape invariant of a cache tensor: its rank, every dimension free to change."""
    rank = tensor.shape.rank
    return tf.TensorShape(None if rank is None else [None] * rank)


def _can_improve(
    step: tf.Tensor,
    alive_log_probs: tf.Tensor,
    finished_scores: tf.Tensor,
    max_lengths: tf.Tensor,
    alpha: float,
) -> tf.Tensor:
    """Whether sentence b may still change its N best after `step` tokens: [B] bool.

    Bound: a log-prob never increases as tokens are added, so an alive beam with log-prob
    `lp <= 0` after `t` tokens ends with log-prob `<= lp` at a length L in [t+1, max_length].
    Dividing a non-positive number by a larger positive one makes it larger, so its final score
    is at most `lp / max(length_penalty(L))`. The penalty is monotonic in L, so the maximum is at
    an end of the range: `length_penalty(max_length)` when alpha >= 0 (the usual case),
    `length_penalty(t + 1)` when alpha < 0.
    """
    best_alive = alive_log_probs[:, 0]  # [B]; alive beams are sorted best first
    best_penalty = tf.maximum(
        length_penalty(step + 1, alpha), length_penalty(max_lengths, alpha)
    )  # [B]
    bound = tf.where(best_alive > NEG_INF, best_alive / best_penalty, NEG_INF)  # [B]
    worst_finished = finished_scores[:, -1]  # [B]; NEG_INF while fewer than N finished
    return (step < max_lengths) & (bound > worst_finished)


def _to_beams(per_row: tf.Tensor, beam_size: int) -> tf.Tensor:
    """[B, R, ...] -> [B, K, ...]: at step 0 the one row of a sentence stands for its K beams
    (R = 1); a no-op when R = K."""
    return tf.broadcast_to(per_row, sizes(per_row, 0, 1) + [beam_size] + sizes(per_row, 2))


def _pad_to(tensor: tf.Tensor, axis: int, size: tf.Tensor, value=0) -> tf.Tensor:
    """Pads `tensor` at the end of `axis` to `size`."""
    padding = [[0, 0]] * tensor.shape.rank
    padding[axis] = [0, size - tf.shape(tensor)[axis]]
    return tf.pad(tensor, padding, constant_values=value)


def _hand_over(decided: _Decided, state: BeamState, leaving: tf.Tensor) -> _Decided:
    """`decided` with the finished hypotheses of the state's rows `leaving` [L] written to
    their sentences' rows."""
    rows = tf.expand_dims(tf.gather(state.sentences, leaving), 1)  # [L, 1]

    def put(into, values, axis=None, value=0):
        values = tf.gather(values, leaving)
        if axis is not None:
            values = _pad_to(values, axis, tf.shape(into)[axis], value)
        return tf.tensor_scatter_nd_update(into, rows, values)

    attention = decided.attention
    if not isinstance(attention, tuple):
        attention = put(attention, state.finished_attention, axis=2)
    return _Decided(
        ids=put(decided.ids, state.finished_ids, axis=2, value=PAD_ID),
        scores=put(decided.scores, state.finished_scores),
        log_probs=put(decided.log_probs, state.finished_log_probs),
        lengths=put(decided.lengths, state.finished_lengths),
        attention=attention,
    )


def _sampled_candidates(
    log_probs: tf.Tensor, total: tf.Tensor, sampling: Sampling, uniform: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """The 2K = 2 candidates of a sampling step: the drawn token, then an empty candidate.

    With K = 1, the token is drawn from `log_probs` [B, V] and keeps its entry of `total`
    [B, V] (the alive beam's log-prob plus the token's) as its log-prob. The empty second
    candidate (log-prob NEG_INF) means a sentence whose draw is EOS has no alive beam left and
    stops.

    Returns:
        `(log_probs [B, 2], indices [B, 2])`.
    """
    tokens = sample_tokens(log_probs, uniform, sampling)  # [B]
    drawn = tf.gather(total, tokens, batch_dims=1)  # [B]
    log_probs = tf.stack([drawn, tf.fill(tf.shape(drawn), NEG_INF)], axis=1)  # [B, 2]
    return log_probs, tf.stack([tokens, tokens], axis=1)


def beam_search(
    step_fn: StepFn,
    start_ids: tf.Tensor,
    cache: Any,
    beam_size: int,
    eos_id: int,
    max_lengths: tf.Tensor,
    alpha: float = 0.6,
    n_best: int = 1,
    constraints: Constraints | None = None,
    prefix: TargetPrefix | None = None,
    sampling: Sampling | None = None,
    sample_keys: tf.Tensor | None = None,
    attention_size: tf.Tensor | int | None = None,
    memory: Any = (),
) -> BeamSearchOutput | tuple[BeamSearchOutput, tf.Tensor]:
    """Finds the `n_best` highest-scoring hypotheses of each sentence with a beam of K.

    Runs eagerly or inside a `tf.function` (one `tf.while_loop`, dynamic batch size); the
    module docstring states the contract with `step_fn`.

    Args:
        step_fn: `(ids [B*K] int32, step [] int32, cache, memory) -> (logits [B*K, V], cache)`.
        start_ids: [B] int32 first decoder input (BOS).
        cache: Nest of tensors with a leading B axis, tiled to B*K rows after the first step
            and reordered with the beams after every step.
        beam_size: K (Python int >= 1).
        eos_id: End-of-sentence id.
        max_lengths: [B] int32 maximum number of generated tokens per sentence, EOS included
            (values below 1 count as 1).
        alpha: GNMT length penalty exponent; 0 scores by raw log-probability.
        n_best: N (Python int, 1 <= N <= K) hypotheses returned per sentence.
        constraints: repetition control (no repeated n-grams, repetition penalty), or None.
        prefix: target prefixes ([B, P] tokens, [B] lengths) every output starts with, or None.
            `max_lengths` should leave room for them.
        sampling: random sampling instead of the argmax (K = 1 only), or None; a
            `Sampling` whose `topk` is 1 is plain greedy search.
        sample_keys: [B] int keys of the rows' random streams (default: 0..B-1); give each
            sentence a key that does not depend on the batch (e.g. its input line number).
        attention_size: S, the width of the attention `step_fn` then also returns
            (`(logits, cache, attention [B*K, S])`), carried with the beams; None (default):
            `step_fn` returns no attention.
        memory: Nest of tensors with a leading B axis (one row per sentence), passed to
            `step_fn` and compacted with the undecided sentences, never reordered.

    Returns:
        A `BeamSearchOutput` with the N best finished hypotheses, best first; with
        `attention_size`, `(output, attention [B, N, L, S] float32)`.

    Raises:
        ValueError: If `beam_size < 1`, `n_best` is not in [1, beam_size], or sampling is asked
            for with `beam_size > 1`.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be in [1, beam_size={beam_size}], got {n_best}")
    if sampling is not None and not sampling.enabled:
        sampling = None
    if sampling is not None and beam_size != 1:
        raise ValueError(f"sampling needs beam_size 1, got {beam_size}")
    if constraints is not None and not constraints.enabled:
        constraints = None
    k, n = beam_size, n_best

    start_ids = tf.convert_to_tensor(start_ids, tf.int32)
    cache = tf.nest.map_structure(tf.convert_to_tensor, cache)
    memory = tf.nest.map_structure(tf.convert_to_tensor, memory)
    max_lengths = tf.maximum(tf.convert_to_tensor(max_lengths, tf.int32), 1)  # [B]
    batch_size = tf.shape(start_ids)[0]
    if sampling is not None and sample_keys is None:
        sample_keys = tf.range(batch_size)
    inputs = _SentenceInputs(
        max_lengths=max_lengths,
        sample_keys=() if sampling is None else tf.convert_to_tensor(sample_keys),
        prefix=() if prefix is None else TargetPrefix(*map(tf.convert_to_tensor, prefix)),
    )
    # Only beam 0 is alive at first, so the K copies of BOS do not yield K identical beams.
    initial_log_probs = tf.tile([[0.0] + [NEG_INF] * (k - 1)], [batch_size, 1])  # [B, K]
    state = BeamState(
        step=tf.constant(0, tf.int32),
        sentences=tf.range(batch_size),
        alive_ids=tf.tile(start_ids[:, tf.newaxis, tf.newaxis], [1, k, 1]),  # [B, K, 1]
        alive_log_probs=initial_log_probs,
        cache=cache,
        memory=memory,
        finished_ids=tf.zeros([batch_size, n, 1], tf.int32),
        finished_scores=tf.fill([batch_size, n], NEG_INF),
        finished_log_probs=tf.fill([batch_size, n], NEG_INF),
        finished_lengths=tf.zeros([batch_size, n], tf.int32),
        inputs=inputs,
    )
    width = 1 + tf.reduce_max(tf.concat([max_lengths, [0]], axis=0))  # W: BOS + longest
    decided = _Decided(
        ids=tf.fill([batch_size, n, width], PAD_ID),
        scores=tf.fill([batch_size, n], NEG_INF),
        log_probs=tf.fill([batch_size, n], NEG_INF),
        lengths=tf.zeros([batch_size, n], tf.int32),
    )
    with_attention = attention_size is not None
    if with_attention:
        state = state._replace(
            alive_attention=tf.zeros([batch_size, k, 0, attention_size]),
            finished_attention=tf.zeros([batch_size, n, 0, attention_size]),
        )
        decided = decided._replace(attention=tf.zeros([batch_size, n, width - 1, attention_size]))
    invariants = BeamState(
        step=tf.TensorShape([]),
        sentences=tf.TensorShape([None]),
        alive_ids=tf.TensorShape([None, k, None]),
        alive_log_probs=tf.TensorShape([None, k]),
        cache=tf.nest.map_structure(_unknown_dims, cache),
        memory=tf.nest.map_structure(_unknown_dims, memory),
        finished_ids=tf.TensorShape([None, n, None]),
        finished_scores=tf.TensorShape([None, n]),
        finished_log_probs=tf.TensorShape([None, n]),
        finished_lengths=tf.TensorShape([None, n]),
        inputs=tf.nest.map_structure(_unknown_dims, inputs),
        alive_attention=tf.TensorShape([None, k, None, None]) if with_attention else (),
        finished_attention=tf.TensorShape([None, n, None, None]) if with_attention else (),
    )
    decided_invariants = tf.nest.map_structure(_unknown_dims, decided)
    # Candidates when a sentence hits its maximum length: each alive beam followed by EOS,
    # padded to 2K with empty candidates.
    forced_beams = tf.tile(tf.range(k), [2])[tf.newaxis]  # [1, 2K]
    in_top_k = tf.range(2 * k) < k  # [2K]; top_k sorts, forced EOS candidates come first

    def body(state: BeamState, decided: _Decided) -> tuple[BeamState, _Decided]:
        step = state.step
        max_lengths = state.inputs.max_lengths  # [B']
        # R rows per sentence go to the model: 1 at step 0, where the K beams are the same
        # BOS (beams 1..K-1 are empty), K after it.
        rows = tf.where(step > 0, k, 1)
        fed_ids = state.alive_ids[:, :rows]  # [B', R, 1 + t]
        flat_ids = flatten_beam(fed_ids[:, :, -1])  # [B', R] -> [B'*R]
        if with_attention:
            logits, new_cache, step_attention = step_fn(flat_ids, step, state.cache, state.memory)
            step_attention = unflatten_beam(tf.cast(step_attention, tf.float32), rows)
            step_attention = _to_beams(step_attention, k)  # [B', K, S]
        else:
            logits, new_cache = step_fn(flat_ids, step, state.cache, state.memory)
        if constraints is None and prefix is None:
            log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))  # [B'*R, V]
        else:
            log_probs = constrained_log_probs(
                tf.cast(logits, tf.float32),
                fed_ids,
                step,
                constraints,
                None if prefix is None else state.inputs.prefix,
            )  # [B'*R, V]
        vocab_size = log_probs.shape[-1] or tf.shape(log_probs)[-1]
        log_probs = _to_beams(unflatten_beam(log_probs, rows), k)  # [B'*R, V] -> [B', K, V]

        # 2K best (beam, token) continuations of the alive beams.
        total = tf.expand_dims(state.alive_log_probs, 2) + log_probs  # [B', K, V]
        total = tf.reshape(total, [-1, k * vocab_size])  # [B', K, V] -> [B', K*V]
        if sampling is None:
            cand_log_probs, cand_indices = top_k(total, k=2 * k)  # [B', 2K]
        else:
            noise = uniform_noise(sampling.seed, state.inputs.sample_keys, step)
            cand_log_probs, cand_indices = _sampled_candidates(
                log_probs[:, 0], total, sampling, noise
            )  # [B', 2]
        cand_beams = cand_indices // vocab_size  # [B', 2K]
        cand_tokens = cand_indices % vocab_size  # [B', 2K]

        # At its maximum length a sentence may only end: replace its candidates.
        at_max = tf.expand_dims(step + 1 >= max_lengths, 1)  # [B', 1]
        eos_log_probs = state.alive_log_probs + log_probs[:, :, eos_id]  # [B', K]
        forced_log_probs = tf.concat(
            [eos_log_probs, tf.fill(tf.shape(eos_log_probs), NEG_INF)], axis=1
        )  # [B', 2K]
        cand_log_probs = tf.where(at_max, forced_log_probs, cand_log_probs)
        cand_beams = tf.where(at_max, forced_beams, cand_beams)
        cand_tokens = tf.where(at_max, eos_id, cand_tokens)
        cand_log_probs = tf.maximum(cand_log_probs, NEG_INF)  # also maps -inf logits to NEG_INF
        cand_ends = tf.equal(cand_tokens, eos_id)  # [B', 2K]
        cand_finishes = cand_ends & in_top_k & (cand_log_probs > NEG_INF)  # [B', 2K]
        cand_ids = tf.concat(
            [gather_beams(state.alive_ids, cand_beams), tf.expand_dims(cand_tokens, 2)], axis=2
        )  # [B', 2K, 2 + t]

        # New alive beams: the K best candidates that do not end with EOS.
        alive_keys = tf.where(cand_ends, NEG_INF, cand_log_probs)  # [B', 2K]
        alive_log_probs, alive_picks = tf.math.top_k(alive_keys, k=k)  # [B', K]
        alive_ids = gather_beams(cand_ids, alive_picks)  # [B', K, 2 + t]
        parents = tf.gather(cand_beams, alive_picks, batch_dims=1)  # [B', K]
        if with_attention:
            extended = tf.concat(
                [state.alive_attention, tf.expand_dims(step_attention, 2)], axis=2
            )  # [B', K, t + 1, S]
            cand_attention = gather_beams(extended, cand_beams)  # [B', 2K, t + 1, S]
            alive_attention = gather_beams(cand_attention, alive_picks)  # [B', K, t + 1, S]

        # New finished: the N best of the old ones and the candidates that end with EOS.
        length = step + 1
        cand_scores = tf.where(
            cand_finishes, cand_log_probs / length_penalty(length, alpha), NEG_INF
        )  # [B', 2K]
        old_ids = tf.pad(state.finished_ids, [[0, 0], [0, 0], [0, 1]], constant_values=PAD_ID)
        all_ids = tf.concat([old_ids, cand_ids], axis=1)  # [B', N + 2K, 2 + t]
        all_scores = tf.concat([state.finished_scores, cand_scores], axis=1)  # [B', N + 2K]
        all_log_probs = tf.concat([state.finished_log_probs, cand_log_probs], axis=1)
        all_lengths = tf.concat(
            [state.finished_lengths, tf.fill(tf.shape(cand_tokens), length)], axis=1
        )  # [B', N + 2K]
        finished_scores, finished_picks = tf.math.top_k(all_scores, k=n)  # [B', N]
        finished_ids, finished_log_probs, finished_lengths = gather_beams(
            (all_ids, all_log_probs, all_lengths), finished_picks
        )
        attention = {}
        if with_attention:
            old_attention = tf.pad(state.finished_attention, [[0, 0], [0, 0], [0, 1], [0, 0]])
            all_attention = tf.concat([old_attention, cand_attention], axis=1)
            attention = dict(
                alive_attention=alive_attention,
                finished_attention=gather_beams(all_attention, finished_picks),
            )  # [B', K or N, t + 1, S]
        new = state._replace(
            step=length,
            alive_ids=alive_ids,
            alive_log_probs=alive_log_probs,
            finished_ids=finished_ids,
            finished_scores=finished_scores,
            finished_log_probs=finished_log_probs,
            finished_lengths=finished_lengths,
            **attention,
        )

        # Decided sentences hand over their N best and leave; the rest stay in order.
        undecided = _can_improve(length, alive_log_probs, finished_scores, max_lengths, alpha)
        staying = tf.cast(tf.where(undecided)[:, 0], tf.int32)  # [B'']
        decided = _hand_over(decided, new, tf.cast(tf.where(~undecided)[:, 0], tf.int32))
        # At step 0 every alive beam descends from row 0 (an empty beam may only be picked,
        # with no probability, when V < 2K: it reads row 0 too).
        parents = tf.minimum(tf.gather(parents, staying), rows - 1)  # [B'', K]
        new_cache = gather_flat_beams(
            new_cache, parents, rows, staying
        )  # [B''*K, ...]: the beams followed, the decided sentences dropped

        def keep(t):
            return tf.gather(t, staying)  # [B', ...] -> [B'', ...]

        memory = state.memory
        if tf.nest.flatten(memory):
            memory = tf.cond(
                tf.reduce_all(undecided),
                lambda: state.memory,
                lambda: tf.nest.map_structure(keep, state.memory),
            )
        new = tf.nest.map_structure(keep, new._replace(step=(), cache=(), memory=()))
        return new._replace(step=length, cache=new_cache, memory=memory), decided

    def cond(state: BeamState, decided: _Decided) -> tf.Tensor:
        return tf.size(state.sentences) > 0

    _, decided = tf.while_loop(
        cond,
        body,
        loop_vars=(state, decided),
        shape_invariants=(invariants, decided_invariants),
    )

    valid = decided.scores > NEG_INF  # [B, N]
    lengths = tf.where(valid, decided.lengths, 0)  # [B, N]
    max_length = tf.reduce_max(tf.concat([tf.reshape(lengths, [-1]), [0]], axis=0))
    ids = decided.ids[:, :, 1 : 1 + max_length]  # drop BOS: [B, N, L]
    output = BeamSearchOutput(
        ids=tf.where(valid[:, :, tf.newaxis], ids, PAD_ID),
        scores=decided.scores,
        lengths=lengths,
        log_probs=tf.where(valid, decided.log_probs, NEG_INF),
    )
    if not with_attention:
        return output
    attention = decided.attention[:, :, :max_length]  # [B, N, L, S]
    return output, tf.where(valid[:, :, tf.newaxis, tf.newaxis], attention, 0.0)


def greedy_search(
    step_fn: StepFn,
    start_ids: tf.Tensor,
    cache: Any,
    eos_id: int,
    max_lengths: tf.Tensor,
    memory: Any = (),
) -> BeamSearchOutput:
    """Greedy decoding: `beam_search` with K = 1 and no length penalty (N = 1).

    The cache is [B, ...] (K = 1 needs no tiling). Arguments as in `beam_search`.
    """
    return beam_search(
        step_fn, start_ids, cache, beam_size=1, eos_id=eos_id, max_lengths=max_lengths,
        alpha=0.0, memory=memory,
    )  # fmt: skip
