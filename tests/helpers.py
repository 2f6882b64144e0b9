"""Helpers shared by the tests."""

import os

import keras
import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")


def run_serialization_test(layer: keras.layers.Layer, *inputs, **call_kwargs):
    """Checks a layer survives a config round trip: same config, same outputs with its weights.

    The layer is called once (to build it), re-created from its config, given the original
    weights, and must then produce identical outputs.
    """
    expected = layer(*inputs, **call_kwargs)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone(*inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    actual = clone(*inputs, **call_kwargs)
    tf.nest.map_structure(
        lambda a, b: np.testing.assert_array_equal(a.numpy(), b.numpy()), expected, actual
    )
    # Also through Keras' own serializer (registered class names).
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config
