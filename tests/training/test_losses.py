"""The label-smoothed loss against a hand computation; padding contributes nothing."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.training.losses import cross_entropy
from t2t_lite.transformer import OutputLayer

LOGITS = np.array(
    [[[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0]]], np.float32
)  # [B=1, T=3, V=4]
LABELS = np.array([[1, 3, 0]], np.int32)  # last position is padding


def by_hand(logits, labels, epsilon):
    total, weight = 0.0, 0
    for row, label in zip(logits.reshape(-1, 4), labels.reshape(-1), strict=True):
        if label == 0:
            continue
        log_probs = row - np.log(np.exp(row).sum())
        target = np.full(4, epsilon / 3)  # epsilon over the V - 1 other classes
        target[label] = 1 - epsilon
        total += -(target * log_probs).sum()
        weight += 1
    return total, weight


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_matches_hand_computation(epsilon):
    loss_sum, weight = cross_entropy(tf.constant(LOGITS), tf.constant(LABELS), epsilon)
    expected_sum, expected_weight = by_hand(LOGITS, LABELS, epsilon)
    np.testing.assert_allclose(loss_sum.numpy(), expected_sum, rtol=1e-6)
    assert weight.numpy() == expected_weight == 2


def test_no_smoothing_is_negative_log_likelihood():
    loss_sum, _ = cross_entropy(tf.constant(LOGITS[:, :1]), tf.constant(LABELS[:, :1]))
    row = LOGITS[0, 0]
    np.testing.assert_allclose(loss_sum.numpy(), np.log(np.exp(row).sum()) - row[1], rtol=1e-6)


def test_padding_contributes_nothing():
    base_sum, base_weight = cross_entropy(tf.constant(LOGITS), tf.constant(LABELS), 0.1)
    # Change the logits at the padded position to anything, even inf: nothing changes.
    poisoned = LOGITS.copy()
    poisoned[0, 2] = [np.inf, -np.inf, 1e30, np.nan]
    loss_sum, weight = cross_entropy(tf.constant(poisoned), tf.constant(LABELS), 0.1)
    assert loss_sum.numpy() == base_sum.numpy() and weight.numpy() == base_weight.numpy()
    # Extra padded columns and rows add nothing either.
    padded_logits = np.concatenate([LOGITS, np.random.randn(1, 2, 4).astype(np.float32)], 1)
    padded_labels = np.pad(LABELS, [[0, 1], [0, 2]])
    padded_logits = np.concatenate([padded_logits, padded_logits], 0)
    loss_sum, weight = cross_entropy(tf.constant(padded_logits), tf.constant(padded_labels), 0.1)
    np.testing.assert_allclose(loss_sum.numpy(), base_sum.numpy(), rtol=1e-6)
    assert weight.numpy() == 2


def test_bfloat16_logits_are_computed_in_float32():
    bf16 = tf.constant(LOGITS, tf.bfloat16)
    loss_sum, weight = cross_entropy(bf16, tf.constant(LABELS), 0.1)
    assert loss_sum.dtype == tf.float32 and weight.dtype == tf.float32
    # The value is the float32 computation on the same (bfloat16-rounded) logits.
    rounded = tf.cast(bf16, tf.float32)
    expected_sum, expected_weight = cross_entropy(rounded, tf.constant(LABELS), 0.1)
    assert loss_sum.numpy() == expected_sum.numpy() and weight.numpy() == expected_weight.numpy()
    np.testing.assert_allclose(
        loss_sum.numpy(), by_hand(rounded.numpy(), LABELS, 0.1)[0], rtol=1e-6
    )


@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_gradient_matches_autodiff_of_log_softmax(epsilon):
    """The hand-written gradient equals autodiff of the textbook formula, padding included."""
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=[2, 5, 7]).astype(np.float32))
    labels = tf.constant(
        rng.integers(1, 7, size=[2, 5]).astype(np.int32) * [[1] * 5, [1, 1, 1, 0, 0]]
    )
    smoothed = tf.one_hot(labels, 7, 1.0 - epsilon, epsilon / 6)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        loss_sum, _ = cross_entropy(logits, labels, epsilon)
        per_token = -tf.reduce_sum(smoothed * tf.nn.log_softmax(logits), -1)
        reference = tf.reduce_sum(tf.where(labels > 0, per_token, 0.0))
    np.testing.assert_allclose(loss_sum.numpy(), reference.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        tape.gradient(loss_sum, logits).numpy(),
        tape.gradient(reference, logits).numpy(),
        atol=1e-6,
    )
    # bfloat16 logits get a bfloat16 gradient.
    bf16 = tf.cast(logits, tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(bf16)
        loss_sum, _ = cross_entropy(bf16, labels, epsilon)
    assert tape.gradient(loss_sum, bf16).dtype == tf.bfloat16


def _projection_case(vocab_major):
    """Outputs `[B, T, D]`, labels with padding, an output layer in either layout, and a
    function computing its logits the textbook way."""
    rng = np.random.default_rng(1)
    outputs = tf.constant(rng.normal(size=[2, 4, 5]).astype(np.float32))  # [B, T, D]
    kernel = rng.normal(size=[5, 7]).astype(np.float32)  # [D, V]
    kernel = tf.Variable(kernel.T if vocab_major else kernel)
    bias = tf.Variable(rng.normal(size=[7]).astype(np.float32))
    labels = tf.constant([[1, 6, 3, 0], [2, 5, 0, 0]])
    layer = OutputLayer(kernel, bias, vocab_major)
    return outputs, labels, layer, lambda x: tf.matmul(x, kernel, transpose_b=vocab_major) + bias


@pytest.mark.parametrize("vocab_major", [True, False])
@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_projected_loss_and_gradients_match_autodiff(vocab_major, epsilon):
    """With `output_layer`, loss and the gradients of outputs, kernel and bias equal autodiff
    of `log_softmax(outputs @ W + bias)`, for a `[V, D]` (tied) and a `[D, V]` kernel."""
    outputs, labels, layer, project = _projection_case(vocab_major)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(outputs)
        loss_sum, weight = cross_entropy(outputs, labels, epsilon, output_layer=layer)
        smoothed = tf.one_hot(labels, 7, 1.0 - epsilon, epsilon / 6)
        per_token = -tf.reduce_sum(smoothed * tf.nn.log_softmax(project(outputs)), -1)
        reference = tf.reduce_sum(tf.where(labels > 0, per_token, 0.0))
    np.testing.assert_allclose(loss_sum.numpy(), reference.numpy(), rtol=1e-5)
    assert weight.numpy() == 5
    for variable in (outputs, layer.kernel, layer.bias):
        np.testing.assert_allclose(
            tape.gradient(loss_sum, variable).numpy(),
            tape.gradient(reference, variable).numpy(),
            atol=1e-5,
        )
    # Padded positions get a zero gradient.
    assert not np.any(tape.gradient(loss_sum, outputs).numpy()[labels.numpy() == 0])


def test_projected_loss_in_bfloat16_stays_close_to_float32():
    """bfloat16 outputs: a bfloat16 outputs gradient, float32 weight gradients, and values
    within bfloat16 rounding of the float32 computation."""
    outputs, labels, layer, _ = _projection_case(True)
    results = {}
    for dtype in (tf.float32, tf.bfloat16):
        x = tf.cast(outputs, dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss_sum, _ = cross_entropy(x, labels, 0.1, output_layer=layer)
        results[dtype] = (loss_sum, *tape.gradient(loss_sum, [x, layer.kernel, layer.bias]))
    dtypes = [tf.float32, tf.bfloat16, tf.float32, tf.float32]
    assert [t.dtype for t in results[tf.bfloat16]] == dtypes
    for low, high in zip(results[tf.bfloat16], results[tf.float32], strict=True):
        high = high.numpy()
        error = np.abs(tf.cast(low, tf.float32).numpy() - high).max()
        assert error <= 0.03 * np.abs(high).max()
