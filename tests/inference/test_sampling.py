"""Random sampling driven by scripted logits: top-k, top-p, temperature, seeds, n samples."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.constants import BOS_ID, EOS_ID
from t2t_lite.inference.beam_search import beam_search, greedy_search
from t2t_lite.inference.sampling import Sampling, row_keys, sample_tokens, uniform_noise
from tests.inference.test_beam_search import A, B, C, D, V, every_prev, random_tables, scripted

# After every token: A .4, B .3, C .2, D .1 (EOS impossible before the maximum length).
SKEWED = every_prev({A: 0.4, B: 0.3, C: 0.2, D: 0.1})


def sample(step_fn, max_lengths, sampling, keys=None):
    """beam_search at beam 1 with `sampling`; returns numpy outputs."""
    start_ids = tf.fill([len(max_lengths)], BOS_ID)
    out = beam_search(
        step_fn, start_ids, {}, 1, EOS_ID, max_lengths, alpha=0.0,
        sampling=sampling, sample_keys=keys,
    )  # fmt: skip
    return tf.nest.map_structure(lambda t: t.numpy(), out)


def first_tokens(sampling, rows=300):
    """The first sampled token of `rows` sentences from SKEWED (one token, then EOS)."""
    out = sample(scripted(SKEWED), [2] * rows, sampling)
    assert np.all(out.ids[:, 0, 1] == EOS_ID)
    return out.ids[:, 0, 0]


def test_uniform_noise_is_in_the_open_interval_and_looks_uniform():
    u = uniform_noise(7, tf.range(20000), tf.constant(3)).numpy()
    assert u.min() > 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(u, uniform_noise(7, tf.range(20000), tf.constant(3)).numpy())
    assert not np.array_equal(u, uniform_noise(8, tf.range(20000), tf.constant(3)).numpy())
    assert not np.array_equal(u, uniform_noise(7, tf.range(20000), tf.constant(4)).numpy())


def test_row_keys():
    np.testing.assert_array_equal(row_keys(tf.constant([3, 5]), 2), [6, 7, 10, 11])


def test_full_distribution_frequencies_follow_the_probabilities():
    probs = np.array([0.0, 0.0, 0.0, 0.0, 0.4, 0.3, 0.2, 0.1], np.float32)
    log_probs = tf.math.log(tf.tile(probs[np.newaxis], [20000, 1]))  # [R, V], -inf for 0
    tokens = sample_tokens(log_probs, uniform_noise(1, tf.range(20000), 0), Sampling(topk=0))
    counts = np.bincount(tokens.numpy(), minlength=V) / 20000
    assert np.all(counts[:4] == 0)  # zero-probability tokens are never drawn
    np.testing.assert_allclose(counts, probs, atol=0.015)


def test_topk_never_picks_outside_the_k_best():
    tokens = first_tokens(Sampling(topk=2, seed=3))
    assert set(tokens) == {A, B}
    assert set(first_tokens(Sampling(topk=3, seed=3))) == {A, B, C}
    assert set(first_tokens(Sampling(topk=0, seed=3))) == {A, B, C, D}


def test_topp_respects_the_nucleus():
    # Cumulative .4, .7, .9, 1: P = .6 keeps {A, B}; P = .4 keeps {A}; P = .75 adds C.
    assert set(first_tokens(Sampling(topk=0, topp=0.6, seed=1))) == {A, B}
    assert set(first_tokens(Sampling(topk=0, topp=0.4, seed=1))) == {A}
    assert set(first_tokens(Sampling(topk=0, topp=0.75, seed=1))) == {A, B, C}
    assert set(first_tokens(Sampling(topk=2, topp=0.75, seed=1))) == {A, B}  # both apply


@pytest.mark.parametrize("temperature", [3.0, 0.2])
def test_temperature_reshapes_the_distribution(temperature):
    # p(A) at temperature T is p_A ** (1/T) / sum(p ** (1/T)): .30 at T = 3, .78 at T = .2.
    probs = np.array([0.4, 0.3, 0.2, 0.1]) ** (1 / temperature)
    expected = probs[0] / probs.sum()
    drawn = first_tokens(Sampling(topk=0, temperature=temperature, seed=2), rows=600)
    assert abs(np.mean(drawn == A) - expected) < 0.06


def test_temperature_near_zero_equals_greedy():
    step_fn = scripted(*random_tables(seed=4, num_steps=8))
    max_lengths = [8, 6, 7, 5]
    greedy = greedy_search(step_fn, tf.fill([4], BOS_ID), {}, EOS_ID, max_lengths)
    cold = sample(step_fn, max_lengths, Sampling(topk=0, temperature=1e-4, seed=5))
    np.testing.assert_array_equal(cold.ids, greedy.ids.numpy())
    np.testing.assert_allclose(cold.scores, greedy.scores.numpy(), rtol=1e-5)


def test_topk_one_is_greedy_search():
    step_fn = scripted(*random_tables(seed=6, num_steps=6))
    greedy = greedy_search(step_fn, tf.fill([3], BOS_ID), {}, EOS_ID, [6, 5, 4])
    out = sample(step_fn, [6, 5, 4], Sampling(topk=1, topp=0.3, temperature=5.0, seed=1))
    np.testing.assert_array_equal(out.ids, greedy.ids.numpy())


def test_same_seed_same_output_different_seed_different():
    step_fn = scripted(*random_tables(seed=7, num_steps=8))
    runs = [sample(step_fn, [8] * 16, Sampling(topk=0, seed=s)) for s in (11, 11, 12)]
    np.testing.assert_array_equal(runs[0].ids, runs[1].ids)
    np.testing.assert_array_equal(runs[0].scores, runs[1].scores)
    assert not np.array_equal(runs[0].ids, runs[2].ids)


def test_samples_do_not_depend_on_the_batch():
    step_fn = scripted(*random_tables(seed=8, num_steps=8))
    sampling = Sampling(topk=0, seed=3)
    together = sample(step_fn, [8, 8, 8], sampling, keys=tf.constant([4, 9, 2]))
    alone = sample(step_fn, [8], sampling, keys=tf.constant([9]))
    length = alone.lengths[0, 0]
    np.testing.assert_array_equal(together.ids[1, 0, :length], alone.ids[0, 0, :length])


def test_sampled_scores_are_the_log_probs_of_the_drawn_tokens():
    out = sample(scripted(SKEWED), [3] * 5, Sampling(topk=0, seed=1))
    probs = {A: 0.4, B: 0.3, C: 0.2, D: 0.1}
    for row in range(5):
        first, second = out.ids[row, 0, :2]
        # The forced EOS at the maximum length has probability ~0 under SKEWED.
        assert out.log_probs[row, 0] < np.log(probs[first] * probs[second])


def test_sampling_needs_beam_one():
    with pytest.raises(ValueError, match="beam_size 1"):
        beam_search(
            scripted(SKEWED), tf.fill([1], BOS_ID), {}, 2, EOS_ID, [3], sampling=Sampling(topk=0)
        )


@pytest.mark.parametrize(
    "sampling, message",
    [
        (Sampling(topk=-1), "sampling_topk"),
        (Sampling(topp=0.0), "sampling_topp"),
        (Sampling(topp=1.5), "sampling_topp"),
        (Sampling(temperature=0.0), "sampling_temperature"),
    ],
)
def test_validate(sampling, message):
    with pytest.raises(ValueError, match=message):
        sampling.validate()


def test_sampling_inside_tf_function_with_dynamic_batch():
    step_fn = scripted(*random_tables(seed=9, num_steps=6))
    sampling = Sampling(topk=3, topp=0.9, temperature=0.8, seed=2)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)] * 2)
    def decode(max_lengths, keys):
        start_ids = tf.fill(tf.shape(max_lengths), BOS_ID)
        return beam_search(
            step_fn, start_ids, {}, 1, EOS_ID, max_lengths, sampling=sampling, sample_keys=keys
        )

    for max_lengths in ([6, 4], [3, 6, 5]):
        keys = tf.range(len(max_lengths))
        graph = decode(tf.constant(max_lengths), keys)
        eager = sample(step_fn, max_lengths, sampling, keys)
        np.testing.assert_array_equal(graph.ids.numpy(), eager.ids)
    assert decode.experimental_get_tracing_count() == 1
