"""Dropout with a mask drawn from 16 random bits per element."""

import keras
import tensorflow as tf

_LEVELS = 2**16  # one uint32 from Philox gives the mask of two elements


@keras.saving.register_keras_serializable(package="t2t_lite")
class Dropout(keras.layers.Layer):
    """Inverted dropout, drop probability `round(rate * 2**16) / 2**16` (0.1 -> 0.100006).

    Keras' dropout draws one uniform float per element. On a CPU the random numbers are a
    large share of a training step (a dropout after the FFN's ReLU alone masks `[B, T, 4D]`),
    so this layer draws one 32-bit integer per two elements and compares each 16-bit half
    with a threshold: 2.4x faster than `keras.layers.Dropout` on `[3000, 1024]` bfloat16
    (3.8 vs 9.3 ms). The survivors are scaled by `1 / (1 - p)` with the exact `p` used, so
    the expected output is the input. Seeds come from a `keras.random.SeedGenerator`, whose
    state is checkpointed, so runs are reproducible and resume exactly, as with Keras'.

    Args:
        rate: drop probability in `[0, 1)`.
        seed: initial seed of the layer's `SeedGenerator` (None: from Keras' global seed).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: any shape `[...]`, float.
        training: drop only when True.

    Example:
        >>> Dropout(0.1, seed=1)(tf.ones([2, 3]), training=True).shape
        TensorShape([2, 3])
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.seed = seed
        self.threshold = round(rate * _LEVELS)  # drops threshold / 2**16 of the elements
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.threshold == 0:
            return inputs
        shape, width = tf.shape(inputs), inputs.shape[-1]
        if width is not None and width % 2 == 0:  # [..., D / 2] words -> [..., D / 2, 2]
            words = self._words(tf.concat([shape[:-1], [width // 2]], 0))
            halves = tf.bitcast(words, tf.int16)
        else:  # one flat run of words, the last one maybe half used
            size = tf.size(inputs)
            halves = tf.reshape(tf.bitcast(self._words([(size + 1) // 2]), tf.int16), [-1])
            halves = halves[:size]
        # The int16 halves are uniform on [-2**15, 2**15): s >= t - 2**15 keeps 1 - t / 2**16.
        keep = tf.reshape(halves >= self.threshold - _LEVELS // 2, shape)
        scale = _LEVELS / (_LEVELS - self.threshold)
        return inputs * (tf.cast(keep, inputs.dtype) * tf.cast(scale, inputs.dtype))

    def _words(self, shape):
        """Random uint32 of `shape` from the next seed of the layer's generator."""
        seed = self.seed_generator.next()
        return tf.random.stateless_uniform(shape, seed, dtype=tf.uint32, minval=None, maxval=None)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
