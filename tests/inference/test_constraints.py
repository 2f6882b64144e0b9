"""Repetition control and target prefixes driven by scripted logits."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID
from t2t_lite.inference.beam_search import beam_search
from t2t_lite.inference.constraints import (
    Constraints,
    TargetPrefix,
    penalize_repetitions,
    repeated_ngram_mask,
    repeated_ngram_mask_dynamic,
)
from t2t_lite.inference.sampling import Sampling
from tests.inference.test_beam_search import A, B, C, D, V, random_tables, scripted, table


def run(step_fn, max_lengths, beam_size=1, n_best=1, **kwargs):
    start_ids = tf.fill([len(max_lengths)], BOS_ID)
    out = beam_search(
        step_fn, start_ids, {}, beam_size, EOS_ID, max_lengths, n_best=n_best, **kwargs
    )
    return tf.nest.map_structure(lambda t: t.numpy(), out)


def banned(history, n):
    mask = repeated_ngram_mask(tf.constant(history, tf.int32), n, V).numpy()
    return [set(np.flatnonzero(row)) for row in mask]


def ngrams(ids, n):
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


# --- no_repeat_ngram_size ---


def test_repeated_ngram_mask_bans_exactly_the_completing_tokens():
    history = [[A, B, A, C, A], [A, B, C, A, B]]
    assert banned(history, 1) == [{A, B, C}, {A, B, C}]
    assert banned(history, 2) == [{B, C}, {C}]  # followers of the last token
    assert banned(history, 3) == [set(), {C}]  # (C, A) never seen before; (A, B) -> C
    assert banned(history, 4) == [set(), set()]  # (C, A, B) never seen before
    assert banned([[A, B, C, D, A, B, C]], 4) == [{D}]
    assert banned(history, 6) == [set(), set()]  # longer than the history
    assert banned(np.zeros([2, 0], np.int32), 2) == [set(), set()]  # step 0


def test_no_repeat_ngram_search_never_repeats(tmp_path):
    # The model loves A B A B ...: without the ban it repeats, with it no bigram occurs twice.
    loop = table({BOS_ID: {A: 0.9, C: 0.1}, A: {B: 0.9, D: 0.1}, B: {A: 0.9, C: 0.1}})
    loop[[C, D], :] = np.log(0.2)
    plain = run(scripted(loop), [8], beam_size=2)
    ids = list(plain.ids[0, 0, : plain.lengths[0, 0]])
    assert len(set(ngrams(ids, 2))) < len(ngrams(ids, 2))
    for n in (1, 2, 3):
        for beam in (1, 3):
            out = run(scripted(loop), [8, 6], beam_size=beam, n_best=beam,
                      constraints=Constraints(no_repeat_ngram_size=n))  # fmt: skip
            for b in range(2):
                for i in range(beam):
                    hyp = list(out.ids[b, i, : out.lengths[b, i] - 1])  # without EOS
                    if out.lengths[b, i]:
                        assert len(set(ngrams(hyp, n))) == len(ngrams(hyp, n)), (n, beam, hyp)


# --- repetition_penalty ---


def test_repetition_penalty_math():
    logits = tf.constant([[2.0, -1.0, 3.0, -4.0], [2.0, -1.0, 3.0, -4.0]])
    history = tf.constant([[0, 1, 1], [3, 3, 3]])
    out = penalize_repetitions(logits, history, 2.0).numpy()
    np.testing.assert_allclose(out, [[1.0, -2.0, 3.0, -4.0], [2.0, -1.0, 3.0, -8.0]])
    np.testing.assert_allclose(penalize_repetitions(logits, history, 1.0), logits)


def test_repetition_penalty_in_search():
    # After A: A .5, B .3, C .2 (logits = log p). A strong penalty makes greedy leave A.
    sticky = table({BOS_ID: {A: 1.0}, A: {A: 0.5, B: 0.3, C: 0.2}, B: {EOS_ID: 1.0}})
    plain = run(scripted(sticky), [4])
    np.testing.assert_array_equal(plain.ids[0, 0], [A, A, A, EOS_ID])
    out = run(scripted(sticky), [4], constraints=Constraints(repetition_penalty=3.0))
    # log .5 * 3 = -2.08 < log .3 = -1.20: B wins after the first A.
    np.testing.assert_array_equal(out.ids[0, 0, :3], [A, B, EOS_ID])


@pytest.mark.parametrize(
    "constraints, message",
    [
        (Constraints(no_repeat_ngram_size=-1), "no_repeat_ngram_size"),
        (Constraints(repetition_penalty=0.0), "repetition_penalty"),
    ],
)
def test_validate(constraints, message):
    with pytest.raises(ValueError, match=message):
        constraints.validate()


# --- target prefixes ---

PREFIXES = [[A, B, C], [], [D]]


def prefix_tensor(prefixes):
    width = max(1, *map(len, prefixes))
    ids = np.full([len(prefixes), width], PAD_ID, np.int32)
    for row, p in enumerate(prefixes):
        ids[row, : len(p)] = p
    return TargetPrefix(tf.constant(ids), tf.constant([len(p) for p in prefixes], tf.int32))


@pytest.mark.parametrize("beam_size", [1, 3])
def test_prefix_is_forced_in_a_ragged_batch(beam_size):
    step_fn = scripted(*random_tables(seed=3, num_steps=8))
    max_lengths = [8, 7, 8]
    out = run(step_fn, max_lengths, beam_size, n_best=beam_size, prefix=prefix_tensor(PREFIXES))
    plain = run(step_fn, max_lengths, beam_size, n_best=beam_size)
    for b, prefix in enumerate(PREFIXES):
        hyps = [tuple(out.ids[b, i, : out.lengths[b, i]]) for i in range(beam_size)]
        assert len(set(hyps)) == beam_size  # all follow the prefix, none duplicated
        for hyp in hyps:
            assert list(hyp[: len(prefix)]) == prefix and hyp[-1] == EOS_ID
    # The sentence without a prefix is searched as without the option.
    width = plain.ids.shape[2]
    np.testing.assert_array_equal(out.ids[1, :, :width], plain.ids[1])
    assert np.all(out.ids[1, :, width:] == PAD_ID)
    np.testing.assert_allclose(out.scores[1], plain.scores[1], rtol=1e-6)


def test_prefix_adds_nothing_to_the_score_and_search_continues_from_it():
    # After the prefix [A], the model's own choice: A -> C (.9) -> EOS.
    tree = table({BOS_ID: {B: 0.9, A: 0.1}, A: {C: 0.9, D: 0.1}, B: {EOS_ID: 1.0}})
    tree[[C, D], EOS_ID] = 0.0
    out = run(scripted(tree), [5], prefix=prefix_tensor([[A]]))
    np.testing.assert_array_equal(out.ids[0, 0], [A, C, EOS_ID])
    np.testing.assert_allclose(out.log_probs[0, 0], np.log(0.9), rtol=1e-5)


def test_prefix_wins_over_bans_and_composes_with_sampling():
    step_fn = scripted(*random_tables(seed=5, num_steps=8))
    prefixes = [[A, A, B], [C]]
    out = run(step_fn, [8, 8], prefix=prefix_tensor(prefixes),
              constraints=Constraints(no_repeat_ngram_size=1, repetition_penalty=1.5),
              sampling=Sampling(topk=0, seed=4))  # fmt: skip
    for b, prefix in enumerate(prefixes):
        hyp = list(out.ids[b, 0, : out.lengths[b, 0] - 1])
        assert hyp[: len(prefix)] == prefix
        assert len(set(hyp[len(prefix) :])) == len(hyp[len(prefix) :])  # no repeats after it
        assert not set(hyp[len(prefix) :]) & set(prefix)


def test_dynamic_ngram_mask_equals_the_static_one():
    rng = np.random.default_rng(3)
    for length in (0, 1, 2, 7):
        history = tf.constant(rng.integers(4, 7, [3, length]), tf.int32)  # [R, T], many repeats
        for n in (1, 2, 3, 4):
            static = repeated_ngram_mask(history, n, V)
            dynamic = repeated_ngram_mask_dynamic(history, tf.constant(n), V)
            np.testing.assert_array_equal(dynamic, static, err_msg=f"T={length} n={n}")


def test_dynamic_settings_decode_as_static_ones():
    tables = random_tables(seed=4, num_steps=6)
    starts = tf.fill([2], BOS_ID)
    for n, penalty in ((0, 1.0), (2, 1.0), (0, 1.5), (1, 0.8)):
        outs = [
            beam_search(
                scripted(*tables),
                starts,
                {},
                2,
                EOS_ID,
                tf.constant([6, 4]),
                constraints=Constraints(*settings),
            )  # fmt: skip
            for settings in ((n, penalty), (tf.constant(n), tf.constant(penalty)))
        ]
        np.testing.assert_array_equal(outs[1].ids, outs[0].ids)
        np.testing.assert_allclose(outs[1].scores, outs[0].scores, rtol=1e-6)
