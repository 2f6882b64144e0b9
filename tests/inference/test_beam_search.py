"""Beam search driven by scripted logits: fixed log-prob tables, no model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID
from t2t_lite.inference.beam_search import (
    NEG_INF,
    beam_search,
    flatten_beam,
    gather_beams,
    gather_flat_beams,
    greedy_search,
    length_penalty,
    tile_beam,
    top_k,
    unflatten_beam,
)

# A toy vocabulary: the special ids, then four words.
A, B, C, D = 4, 5, 6, 7
V = 8
IMPOSSIBLE = -1e4  # a logit whose probability is 0 in float32


def table(rules: dict[int, dict[int, float]], default: float = IMPOSSIBLE) -> np.ndarray:
    """[V, V] logits: row `prev` holds log(p) for each listed next token, `default` elsewhere."""
    logits = np.full([V, V], default, np.float32)
    for prev, nexts in rules.items():
        for token, prob in nexts.items():
            logits[prev, token] = np.log(prob)
    return logits


def every_prev(nexts: dict[int, float]) -> np.ndarray:
    """[V, V] logits with the same next-token distribution after every token."""
    return table({prev: nexts for prev in range(V)})


def scripted(*tables: np.ndarray):
    """A step_fn reading `tables[step][prev]` (the last table repeats); the cache is untouched."""
    logits = tf.constant(np.stack(tables))  # [S, V, V]

    def step_fn(ids, step, cache, memory=()):
        step = tf.minimum(step, len(tables) - 1)
        return tf.gather(logits[step], ids), cache  # [B*K, V]

    return step_fn


def search(step_fn, max_lengths, **kwargs):
    """Runs beam_search with BOS starts and an empty cache; returns numpy outputs."""
    start_ids = tf.fill([len(max_lengths)], BOS_ID)
    out = beam_search(step_fn, start_ids, {}, eos_id=EOS_ID, max_lengths=max_lengths, **kwargs)
    return tf.nest.map_structure(lambda t: t.numpy(), out)


def replay_log_prob(step_fn, ids) -> float:
    """Sum of log-probs of `ids` (ending with EOS) fed one at a time through `step_fn`."""
    total, prev = 0.0, BOS_ID
    for step, token in enumerate(ids):
        logits, _ = step_fn(tf.constant([prev]), tf.constant(step), {})
        total += tf.nn.log_softmax(logits)[0, token].numpy()
        prev = token
    return total


def random_tables(seed: int, num_steps: int) -> list[np.ndarray]:
    """Random [V, V] logit tables that never emit PAD, UNK or BOS."""
    rng = np.random.default_rng(seed)
    tables = (2.0 * rng.standard_normal([num_steps, V, V])).astype(np.float32)
    tables[:, :, [PAD_ID, 1, BOS_ID]] = IMPOSSIBLE
    return list(tables)


def lp(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


# A tree where greedy (A: .6, then C: .55) loses to the beam path (B: .4, then C: .9).
TREE = table({BOS_ID: {A: 0.6, B: 0.4}, A: {C: 0.55, D: 0.45}, B: {C: 0.9, D: 0.1}})
TREE[[C, D], EOS_ID] = 0.0  # C and D are always followed by EOS


# --- helpers ---


def test_length_penalty():
    np.testing.assert_allclose(length_penalty([1, 7, 10], 0.0).numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(length_penalty([1, 7], 1.0).numpy(), [1.0, 2.0])
    np.testing.assert_allclose(length_penalty(10, 0.6).numpy(), 2.5**0.6, rtol=1e-6)


def test_tile_flatten_unflatten_beam():
    x = tf.constant([[1, 2], [3, 4]])  # [B=2, 2]
    tiled = tile_beam({"x": x, "y": tf.constant([5, 6])}, 3)
    np.testing.assert_array_equal(tiled["x"], [[1, 2]] * 3 + [[3, 4]] * 3)  # row b*K + k
    np.testing.assert_array_equal(tiled["y"], [5, 5, 5, 6, 6, 6])
    beams = unflatten_beam(tiled["x"], 3)
    assert beams.shape == (2, 3, 2)
    np.testing.assert_array_equal(beams[1, 2], [3, 4])
    np.testing.assert_array_equal(flatten_beam(beams), tiled["x"])


def test_gather_beams():
    x = tf.reshape(tf.range(12), [2, 3, 2])  # [B, K, 2]
    out = gather_beams(x, tf.constant([[2, 2], [0, 1]]))  # [B, M=2, 2]
    np.testing.assert_array_equal(out, [[[4, 5], [4, 5]], [[6, 7], [8, 9]]])


def test_gather_flat_beams():
    x = tf.constant([10, 11, 12, 20, 21, 22])  # [B*K] with B=2, K=3
    out = gather_flat_beams({"x": x}, tf.constant([[2, 0, 0], [1, 1, 2]]), 3)
    np.testing.assert_array_equal(out["x"], [12, 10, 10, 21, 21, 22])
    kept = gather_flat_beams({"x": x}, tf.constant([[1, 1, 2]]), 3, sentences=tf.constant([1]))
    np.testing.assert_array_equal(kept["x"], [21, 21, 22])  # sentence 0 left


def test_n_best_larger_than_beam_raises():
    with pytest.raises(ValueError, match="n_best"):
        search(scripted(TREE), [5], beam_size=2, n_best=3)


# --- search ---


def test_beam_finds_the_path_greedy_misses():
    out = search(scripted(TREE), [10], beam_size=2, n_best=2, alpha=0.0)
    np.testing.assert_array_equal(out.ids[0], [[B, C, EOS_ID], [A, C, EOS_ID]])
    np.testing.assert_allclose(out.scores[0], np.log([0.4 * 0.9, 0.6 * 0.55]), rtol=1e-5)
    np.testing.assert_allclose(out.log_probs, out.scores)
    np.testing.assert_array_equal(out.lengths[0], [3, 3])

    greedy = search(scripted(TREE), [10], beam_size=1, alpha=0.0)
    np.testing.assert_array_equal(greedy.ids[0], [[A, C, EOS_ID]])
    np.testing.assert_allclose(greedy.scores[0], np.log([0.6 * 0.55]), rtol=1e-5)


def test_minus_inf_logits_give_the_same_result_and_no_nan():
    tree = np.where(TREE == IMPOSSIBLE, -np.inf, TREE).astype(np.float32)
    out = search(scripted(tree), [10], beam_size=3, n_best=2, alpha=0.6)
    np.testing.assert_array_equal(out.ids[0], [[B, C, EOS_ID], [A, C, EOS_ID]])
    np.testing.assert_allclose(out.log_probs[0], np.log([0.36, 0.33]), rtol=1e-5)
    assert np.all(np.isfinite(out.scores)) and np.all(np.isfinite(out.log_probs))


def test_empty_slots_when_no_hypothesis_can_end():
    never_ends = np.full([V, V], -np.inf, np.float32)
    never_ends[:, A] = 0.0  # only A is possible, EOS never
    out = search(scripted(never_ends), [3], beam_size=2, n_best=2)
    np.testing.assert_array_equal(out.scores, [[NEG_INF, NEG_INF]])
    np.testing.assert_array_equal(out.lengths, [[0, 0]])
    assert out.ids.shape == (1, 2, 0)


def test_beam_one_equals_greedy_loop():
    step_fn = scripted(*random_tables(seed=0, num_steps=6))
    max_lengths = [4, 6, 5]
    expected_ids, expected_log_probs = [], []
    for max_length in max_lengths:  # a hand-written argmax loop
        ids, total, prev = [], 0.0, BOS_ID
        for step in range(max_length):
            logits, _ = step_fn(tf.constant([prev]), tf.constant(step), {})
            log_probs = tf.nn.log_softmax(logits)[0].numpy()
            prev = EOS_ID if step + 1 == max_length else int(np.argmax(log_probs))
            ids.append(prev)
            total += log_probs[prev]
            if prev == EOS_ID:
                break
        expected_ids.append(ids)
        expected_log_probs.append(total)
    assert any(len(ids) < m for ids, m in zip(expected_ids, max_lengths, strict=True))

    start_ids = tf.fill([3], BOS_ID)
    greedy = greedy_search(step_fn, start_ids, {}, eos_id=EOS_ID, max_lengths=max_lengths)
    beam_one = search(step_fn, max_lengths, beam_size=1, alpha=0.0)
    for out in (greedy, beam_one):
        for b, ids in enumerate(expected_ids):
            np.testing.assert_array_equal(out.ids[b, 0, : len(ids)], ids)
            assert np.all(np.asarray(out.ids[b, 0, len(ids) :]) == PAD_ID)
            assert out.lengths[b, 0] == len(ids)
        np.testing.assert_allclose(out.scores[:, 0], expected_log_probs, rtol=1e-5)


def test_length_penalty_changes_the_winner():
    # Short: A EOS (p = .4, length 2). Long: B C EOS (p = .36, length 3).
    rules = {BOS_ID: {A: 0.4, B: 0.6}, A: {EOS_ID: 1.0}, B: {C: 0.6, D: 0.4}}
    tables = scripted(table({**rules, C: {EOS_ID: 1.0}, D: {EOS_ID: 1.0}}))
    short, long = [A, EOS_ID, PAD_ID], [B, C, EOS_ID]

    raw = search(tables, [10], beam_size=2, n_best=2, alpha=0.0)
    np.testing.assert_array_equal(raw.ids[0], [short, long])
    np.testing.assert_allclose(raw.scores[0], np.log([0.4, 0.36]), rtol=1e-5)

    penalized = search(tables, [10], beam_size=2, n_best=2, alpha=1.0)
    np.testing.assert_array_equal(penalized.ids[0], [long, short])
    expected = [np.log(0.36) / lp(3, 1.0), np.log(0.4) / lp(2, 1.0)]  # -0.766 > -0.785
    np.testing.assert_allclose(penalized.scores[0], expected, rtol=1e-5)
    np.testing.assert_allclose(penalized.log_probs[0], np.log([0.36, 0.4]), rtol=1e-5)


def test_n_best_is_sorted_distinct_and_scored_consistently():
    step_fn = scripted(*random_tables(seed=1, num_steps=7))
    alpha = 0.6
    out = search(step_fn, [5, 7], beam_size=4, n_best=4, alpha=alpha)
    for b in range(2):
        assert np.all(np.diff(out.scores[b]) <= 0)
        hypotheses = [tuple(out.ids[b, i, : out.lengths[b, i]]) for i in range(4)]
        assert len(set(hypotheses)) == 4
        for i, ids in enumerate(hypotheses):
            assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1]
            assert np.all(out.ids[b, i, len(ids) :] == PAD_ID)
            log_prob = replay_log_prob(step_fn, ids)
            np.testing.assert_allclose(out.log_probs[b, i], log_prob, rtol=1e-5)
            np.testing.assert_allclose(out.scores[b, i], log_prob / lp(len(ids), alpha), rtol=1e-5)


def test_max_lengths_per_sentence_and_padding():
    # EOS is unlikely everywhere, so every hypothesis runs to its sentence's maximum length.
    step_fn = scripted(every_prev({A: 0.24975, B: 0.24975, C: 0.24975, D: 0.24975, EOS_ID: 1e-3}))
    out = search(step_fn, [2, 5], beam_size=2, n_best=2, alpha=0.6)
    assert out.ids.shape == (2, 2, 5)
    np.testing.assert_array_equal(out.lengths, [[2, 2], [5, 5]])
    np.testing.assert_array_equal(out.ids[0, :, 1], [EOS_ID, EOS_ID])
    np.testing.assert_array_equal(out.ids[0, :, 2:], np.zeros([2, 3]))
    np.testing.assert_array_equal(out.ids[1, :, 4], [EOS_ID, EOS_ID])
    assert not np.any(out.ids[:, :, :1] == EOS_ID) and not np.any(out.ids[1, :, :4] == EOS_ID)
    for length, scores in zip([2, 5], out.scores, strict=True):
        log_prob = (length - 1) * np.log(0.24975) + np.log(1e-3)
        np.testing.assert_allclose(scores, [log_prob / lp(length, 0.6)] * 2, rtol=1e-5)


# A model that reads its own history from the cache: p(next | previous two tokens), with the
# token before the last taken from the cache. A cache that did not follow the beams would
# condition on the wrong token and the scores would not match a replay of the hypotheses.
TRIGRAMS = (2.0 * np.random.default_rng(2).standard_normal([V, V, V])).astype(np.float32)
TRIGRAMS[:, :, [PAD_ID, 1, BOS_ID]] = IMPOSSIBLE


def history_step_fn(histories: list | None = None):
    """Trigram logits; the cache holds each row's history and grows along an inner axis, the
    memory names each row's sentence. With `histories`, records per step `(history
    [B'*K, t + 1], sentence [B'*K])`, the sentence read from the memory."""
    trigrams = tf.constant(TRIGRAMS)

    def step_fn(ids, step, cache, memory):
        history = tf.concat([cache["history"], ids[:, tf.newaxis]], axis=1)  # [B*K, t + 1]
        fill = (
            tf.fill([tf.shape(ids)[0], 2, 1, 3], 1.0)
            * tf.cast(ids, tf.float32)[:, None, None, None]
        )
        keys = tf.concat([cache["keys"], fill], axis=2)  # [B*K, 2, t + 1, 3]: grows along axis 2
        tf.debugging.assert_equal(tf.cast(keys[:, 1, :, 2], tf.int32), history)
        before_last = tf.concat([tf.fill([tf.shape(ids)[0], 1], BOS_ID), history], axis=1)[:, -2]
        logits = tf.gather_nd(trigrams, tf.stack([before_last, ids], axis=1))  # [B*K, V]
        rows_per_sentence = tf.shape(ids)[0] // tf.shape(memory["sentence"])[0]  # K
        sentence = tf.repeat(memory["sentence"], rows_per_sentence)  # [B'] -> [B'*K]
        tf.debugging.assert_equal(sentence, cache["sentence"])  # each row reads its own memory row
        if histories is not None:
            histories.append((history.numpy(), sentence.numpy()))
        return logits, {"history": history, "keys": keys, "sentence": cache["sentence"]}

    return step_fn


def history_cache(batch_size):
    """`(cache, memory)` of `history_step_fn`, one row per sentence."""
    cache = {
        "history": tf.zeros([batch_size, 0], tf.int32),  # [B, 0]
        "keys": tf.zeros([batch_size, 2, 0, 3]),  # [B, H, 0, Dh]
        "sentence": tf.range(batch_size),  # [B]
    }
    return cache, {"sentence": tf.range(batch_size)}


def replay_trigrams(ids) -> float:
    total, context = 0.0, (BOS_ID, BOS_ID)
    for token in ids:
        total += tf.nn.log_softmax(TRIGRAMS[context]).numpy()[token]
        context = (context[1], token)
    return total


def test_cache_follows_the_beams():
    histories = []
    k, max_lengths = 3, [6, 4]
    cache, memory = history_cache(2)
    out = beam_search(
        history_step_fn(histories),
        tf.fill([2], BOS_ID),
        cache,
        beam_size=k,
        eos_id=EOS_ID,
        max_lengths=max_lengths,
        n_best=k,
        memory=memory,
    )
    for b in range(2):
        for i in range(k):
            ids = list(out.ids[b, i, : out.lengths[b, i]].numpy())
            np.testing.assert_allclose(out.log_probs[b, i], replay_trigrams(ids), rtol=1e-5)
        # The row that emitted the best hypothesis' EOS holds its history in the cache.
        length = int(out.lengths[b, 0])
        history, sentence = histories[length - 1]
        rows = history[sentence == b]  # [K, length]
        prefix = [BOS_ID] + list(out.ids[b, 0, : length - 1].numpy())
        assert any(list(row) == prefix for row in rows)


def test_tf_function_with_dynamic_batch_matches_eager():
    k = 3

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)])
    def decode(start_ids, max_lengths):
        cache, memory = history_cache(tf.shape(start_ids)[0])
        return beam_search(
            history_step_fn(), start_ids, cache, k, EOS_ID, max_lengths, n_best=2, memory=memory
        )

    for max_lengths in ([6, 4], [3, 7, 5]):
        start_ids = tf.fill([len(max_lengths)], BOS_ID)
        graph = decode(start_ids, tf.constant(max_lengths))
        cache, memory = history_cache(len(max_lengths))
        eager = beam_search(
            history_step_fn(), start_ids, cache, k, EOS_ID, max_lengths, n_best=2, memory=memory
        )
        for got, want in zip(graph, eager, strict=True):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert decode.experimental_get_tracing_count() == 1


def test_early_stop_when_all_beams_end():
    calls = tf.Variable(0)
    words = {A: 0.249975, B: 0.249975, C: 0.249975, D: 0.249975, EOS_ID: 1e-4}
    ends = {A: 2.5e-5, B: 2.5e-5, C: 2.5e-5, D: 2.5e-5, EOS_ID: 0.9999}
    tables = scripted(every_prev(words), every_prev(words), every_prev(ends))

    def counting_step_fn(ids, step, cache, memory):
        calls.assign_add(1)
        return tables(ids, step, cache)

    out = search(counting_step_fn, [50, 50], beam_size=4, n_best=4, alpha=0.6)
    assert calls.numpy() == 3  # steps 0, 1 and 2; without the early stop: 50
    np.testing.assert_array_equal(out.lengths, np.full([2, 4], 3))


def test_decided_sentences_leave_the_batch():
    k, max_lengths = 3, [2, 7, 4]
    histories = []
    cache, memory = history_cache(3)
    out = beam_search(
        history_step_fn(histories), tf.fill([3], BOS_ID), cache, k, EOS_ID, max_lengths,
        n_best=2, memory=memory,
    )  # fmt: skip
    for step, (_, sentence) in enumerate(histories):
        # Only sentences that may still grow are fed, in order: one row each at the first
        # step (all beams are BOS), K rows each after it.
        assert set(sentence) <= {b for b, m in enumerate(max_lengths) if m > step}
        assert list(sentence) == sorted(sentence)
        assert all(np.sum(sentence == b) == (k if step else 1) for b in set(sentence))
    assert len(histories[0][1]) == 3
    assert len(histories[-1][1]) == k  # the last steps feed the longest sentence alone
    for b, m in enumerate(max_lengths):
        cache, memory = history_cache(1)
        alone = beam_search(
            history_step_fn(), tf.fill([1], BOS_ID), cache, k, EOS_ID, [m], n_best=2,
            memory=memory,
        )  # fmt: skip
        width = alone.ids.shape[2]
        np.testing.assert_array_equal(out.ids[b, :, :width], alone.ids[0])
        assert not out.ids[b, :, width:].numpy().any()
        np.testing.assert_allclose(out.scores[b], alone.scores[0], rtol=1e-6)
        np.testing.assert_array_equal(out.lengths[b], alone.lengths[0])


@pytest.mark.parametrize("width", [2048, 2050, 8000])
def test_top_k_by_chunks_equals_top_k(width):
    rng = np.random.default_rng(width)
    noise = rng.standard_normal([6, width]).astype(np.float32)
    ties = rng.integers(0, 3, size=[6, width]).astype(np.float32)  # many equal entries
    ties[0] = float("-inf")  # a row of -inf: padding must lose the ties
    ties[1, -5:] = 10.0  # the largest entries at the end of a row, some in the padded chunk
    for values in (noise, ties):
        got, want = top_k(tf.constant(values), 8), tf.math.top_k(tf.constant(values), 8)
        np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
        np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())
