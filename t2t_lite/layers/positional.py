"""Sinusoidal position encoding (Vaswani et al. 2017, section 3.5)."""

import math

import keras
import tensorflow as tf


def sinusoids(positions: tf.Tensor, depth: int) -> tf.Tensor:
    """Sinusoidal encodings `[T, depth]` for float positions `[T]`: `[sin(p*f), cos(p*f)]`.

    The first half of each vector holds sines, the second half cosines, with inverse
    frequencies `f_i = 10000 ** (-i / (depth/2 - 1))` (the tensor2tensor / OpenNMT layout).
    """
    half = depth // 2
    log_increment = math.log(10000.0) / max(half - 1, 1)
    inv_freq = tf.exp(tf.range(half, dtype=tf.float32) * -log_increment)  # [D/2]
    angles = tf.expand_dims(positions, 1) * inv_freq  # [T, 1] x [D/2] -> [T, D/2]
    return tf.concat([tf.sin(angles), tf.cos(angles)], axis=1)  # [T, D]


@keras.saving.register_keras_serializable(package="t2t_lite")
class SinusoidalPositionalEncoding(keras.layers.Layer):
    """Adds fixed sinusoidal position encodings to its input.

    Args:
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: `[B, T, D]` embeddings (D must be even).
        offset: int scalar, position of the first input vector. Step-by-step decoding passes
            the current step so position `offset + t` is encoded.

    Example:
        >>> layer = SinusoidalPositionalEncoding()
        >>> layer(tf.zeros([2, 5, 8]), offset=3).shape
        TensorShape([2, 5, 8])

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
    """

    def call(self, inputs, offset=0):
        depth = inputs.shape[-1]
        if depth is None or depth % 2:
            raise ValueError(f"position encoding needs an even, static last dimension, got {depth}")
        length = inputs.shape[1] or tf.shape(inputs)[1]  # static in a decoding step
        positions = tf.cast(tf.range(length) + offset, tf.float32)  # [T]
        encoding = sinusoids(positions, depth)  # [T, D]
        return inputs + tf.cast(encoding, inputs.dtype)  # [B, T, D] + [T, D]
