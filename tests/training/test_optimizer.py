"""The fused Adam updates variables and moments as Keras' Adam does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.training.optimizer import Adam
from t2t_lite.training.schedules import TransformerSchedule

SHAPES = [(40, 8), (8,), (8, 24), (1,)]


def run(optimizer_class, dtype, steps, use_function):
    rng = np.random.default_rng(3)
    variables = [keras.Variable(rng.normal(size=s).astype("float32"), dtype=dtype) for s in SHAPES]
    grads = [[tf.constant(rng.normal(size=s), dtype=dtype) for s in SHAPES] for _ in range(steps)]
    optimizer = optimizer_class(
        learning_rate=TransformerSchedule(d_model=8, warmup_steps=2, scale=0.5),
        beta_1=0.9,
        beta_2=0.98,
        epsilon=1e-9,
    )
    optimizer.build(variables)

    def apply(step_grads):
        optimizer.apply_gradients(zip(step_grads, variables, strict=True))

    if use_function:
        apply = tf.function(apply, autograph=False)
    for step_grads in grads:
        apply(step_grads)
    moments = [m.numpy() for m in optimizer._momentums + optimizer._velocities]
    return [v.numpy() for v in variables], moments


@pytest.mark.parametrize("use_function", [False, True])
def test_fused_adam_matches_keras_adam(use_function):
    fused, fused_moments = run(Adam, "float32", 5, use_function)
    reference, reference_moments = run(keras.optimizers.Adam, "float32", 5, use_function)
    for a, b in zip(fused + fused_moments, reference + reference_moments, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The variables moved: the comparison is not of two untouched copies.
    start, _ = run(Adam, "float32", 0, use_function)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(fused, start, strict=True))


def test_other_dtypes_take_keras_update():
    fused, fused_moments = run(Adam, "float16", 3, True)
    reference, reference_moments = run(keras.optimizers.Adam, "float16", 3, True)
    for a, b in zip(fused + fused_moments, reference + reference_moments, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sparse_gradients_take_keras_update():
    def update(optimizer_class):
        variable = keras.Variable(np.ones((5, 3), "float32"))
        optimizer = optimizer_class(learning_rate=0.1)
        optimizer.build([variable])
        rows = tf.IndexedSlices(tf.ones((2, 3)), tf.constant([1, 3]), tf.constant([5, 3]))
        optimizer.apply_gradients([(rows, variable)])
        return variable.numpy()

    updated = update(Adam)
    np.testing.assert_array_equal(updated, update(keras.optimizers.Adam))
    assert (updated[[1, 3]] < 1).all() and (updated[[0, 2, 4]] == 1).all()
