"""Position-wise feed-forward network."""

import keras

from t2t_lite.layers.dense import Dense
from t2t_lite.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="t2t_lite")
class FeedForward(keras.layers.Layer):
    """`Dense(d_ff, relu) -> dropout -> Dense(d_model)`, applied at every position.

    Args:
        d_model: D, input and output width.
        d_ff: inner width.
        dropout: dropout rate after the ReLU.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: `[B, T, D]`.
        training: dropout on or off.

    Example:
        >>> FeedForward(d_model=8, d_ff=32)(keras.ops.zeros([2, 3, 8])).shape
        TensorShape([2, 3, 8])

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.3.
    """

    def __init__(self, d_model, d_ff, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.d_model = d_model
        self.d_ff = d_ff
        self.dropout = dropout
        self.inner = Dense(d_ff, activation="relu", name="inner", dtype=self.dtype_policy)
        self.outer = Dense(d_model, name="outer", dtype=self.dtype_policy)
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.inner.build([None, None, input_shape[-1]])
        self.outer.build([None, None, self.d_ff])
        self.built = True

    def call(self, inputs, training=False):
        return self.outer(self.dropout_layer(self.inner(inputs), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model, d_ff=self.d_ff, dropout=self.dropout)
        return config
