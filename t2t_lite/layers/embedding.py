"""Token embeddings scaled by sqrt(D), optionally doubling as the output projection."""

import keras
import tensorflow as tf

from t2t_lite.layers.dense import dense_2d


@keras.saving.register_keras_serializable(package="t2t_lite")
class TokenEmbedding(keras.layers.Layer):
    """Looks up `[V, D]` embeddings and multiplies them by sqrt(D).

    With `output_bias=True` the same matrix also projects decoder outputs to vocabulary
    logits (`logits(x) = x @ E^T + b`), the weight tying of Press & Wolf 2017.

    Args:
        vocab_size: V.
        d_model: D.
        output_bias: create the output bias used by `logits`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        ids: int `[B, T]`.

    Returns:
        `[B, T, D]`.

    Example:
        >>> emb = TokenEmbedding(vocab_size=10, d_model=4, output_bias=True)
        >>> emb.logits(emb(tf.constant([[1, 2]]))).shape
        TensorShape([1, 2, 10])

    References:
        Vaswani et al. 2017, section 3.4; Press & Wolf, "Using the Output Embedding to
        Improve Language Models", 2017.
    """

    def __init__(self, vocab_size, d_model, output_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.output_bias = output_bias

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocab_size, self.d_model),
            initializer=keras.initializers.RandomNormal(stddev=self.d_model**-0.5),
        )
        if self.output_bias:
            self.bias = self.add_weight(name="bias", shape=(self.vocab_size,), initializer="zeros")
        self.built = True

    def call(self, ids):
        table = tf.cast(self.embeddings, self.compute_dtype)
        return tf.gather(table, ids) * tf.cast(self.d_model**0.5, self.compute_dtype)

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """Vocabulary logits `[..., V]` (float32) of decoder outputs `[..., D]`, computed in
        the dtype of `x` as `OutputLayer.logits` computes them."""
        if not self.output_bias:
            raise ValueError("TokenEmbedding.logits needs output_bias=True")
        logits = dense_2d(x, self.embeddings, self.bias, transpose_kernel=True)  # E: [V, D]
        return tf.cast(logits, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, d_model=self.d_model, output_bias=self.output_bias
        )
        return config
