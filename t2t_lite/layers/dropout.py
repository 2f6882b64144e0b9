"""Dropout with a mask drawn from 8 (or 16) random bits per element."""

import keras
import tensorflow as tf

_WORD_BITS = 32  # Philox gives uint32 words; each word masks 4 (8-bit) or 2 (16-bit) elements


def mask_bits(rate: float) -> int:
    """8 when `rate` is within 2% (relative) of a multiple of 1/256, else 16."""
    return 8 if abs(round(rate * 256) / 256 - rate) <= rate / 50 else 16


@keras.saving.register_keras_serializable(package="t2t_lite")
class Dropout(keras.layers.Layer):
    """Inverted dropout with a drop probability quantized to 8 or 16 bits.

    Keras' dropout draws one uniform float per element. On a CPU the random numbers are a
    large share of a training step (a dropout after the FFN's ReLU alone masks `[B, T, 4D]`),
    so this layer draws one 32-bit integer per four elements and compares each byte with a
    threshold: a quarter of the random words, and an integer comparison instead of a
    conversion to float. The drop probability is `round(rate * 256) / 256` (0.1 -> 0.1016,
    0.3 -> 0.3008). Rates that no multiple of 1/256 approximates within 2% (0.01 -> 0.0117
    would be 17% off) use 16 bits per element instead (half the words), exact to 1/65,536.
    The survivors are scaled by `1 / (1 - p)` with the exact `p` used, so the expected
    output is the input. Seeds come
    from a `keras.random.SeedGenerator`, whose state is checkpointed, so runs are
    reproducible and resume exactly, as with Keras'.

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
        self.bits = mask_bits(rate)
        levels = 2**self.bits
        self.threshold = round(rate * levels)  # drops threshold / levels of the elements
        self.drop_probability = self.threshold / levels
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.threshold == 0:
            return inputs
        scale = tf.cast(self.scale, inputs.dtype)
        return inputs * tf.where(self.keep_mask(inputs), scale, tf.zeros([], inputs.dtype))

    @property
    def scale(self) -> float:
        """The factor `1 / (1 - p)` of the survivors."""
        return 1.0 / (1.0 - self.drop_probability)

    def keep_mask(self, inputs):
        """The mask of the elements of `inputs` a training call keeps: bool, the shape of
        `inputs`, from the generator's next seed. Where the factor `scale` can go elsewhere
        (`FeedForward` folds it into the next layer's kernel), the caller masks with
        `tf.where(keep, inputs, 0)` alone."""
        shape, width = tf.shape(inputs), inputs.shape[-1]
        per_word = _WORD_BITS // self.bits
        signed = tf.int8 if self.bits == 8 else tf.int16
        if width is not None and width % per_word == 0:  # [..., D / n] words -> [..., D / n, n]
            units = tf.bitcast(self._words(tf.concat([shape[:-1], [width // per_word]], 0)), signed)
        else:  # one flat run of words, the last one maybe partly used
            size = tf.size(inputs)
            words = self._words([(size + per_word - 1) // per_word])
            units = tf.reshape(tf.bitcast(words, signed), [-1])[:size]
        # Signed units are uniform on [-L/2, L/2): u >= t - L/2 keeps 1 - t / L of them.
        return tf.reshape(units >= self.threshold - 2 ** (self.bits - 1), shape)

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
