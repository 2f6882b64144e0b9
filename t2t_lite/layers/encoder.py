"""Transformer encoder layer and encoder stack."""

import keras

from t2t_lite.layers.attention import MultiHeadAttention
from t2t_lite.layers.block import BlockLayer, StackLayer, layer_norm, residual
from t2t_lite.layers.feed_forward import FeedForward


@keras.saving.register_keras_serializable(package="t2t_lite")
class EncoderLayer(BlockLayer):
    """Self-attention and feed-forward sublayers, each inside a residual connection.

    Args:
        See `BlockLayer`: d_model, num_heads, d_ff, dropout, attention_dropout, ffn_dropout,
        norm, **kwargs.

    Call arguments:
        x: `[B, S, D]`.
        attention_mask: bool `[B, 1, 1, S]`, True = may attend (see `t2t_lite.layers.masks`).
        training: dropout on or off.

    Example:
        >>> layer = EncoderLayer(d_model=8, num_heads=2, d_ff=16)
        >>> layer(tf.zeros([1, 4, 8])).shape
        TensorShape([1, 4, 8])

    References:
        Vaswani et al. 2017; Xiong et al., "On Layer Normalization in the Transformer
        Architecture", 2020 (pre-norm).
    """

    def __init__(self, d_model, num_heads, d_ff, **kwargs):
        super().__init__(d_model, num_heads, d_ff, **kwargs)
        policy = self.dtype_policy
        self.self_attention = MultiHeadAttention(
            num_heads, d_model, True, self.attention_dropout, name="self_attention", dtype=policy
        )
        self.feed_forward = FeedForward(d_model, d_ff, self.ffn_dropout, name="ffn", dtype=policy)
        self.attention_norm = layer_norm("self_attention_norm", policy)
        self.ffn_norm = layer_norm("ffn_norm", policy)

    def build(self, input_shape):
        shape = [None, None, self.d_model]
        for sublayer in (self.self_attention, self.feed_forward):
            sublayer.build(shape)
        for norm in (self.attention_norm, self.ffn_norm):
            norm.build(shape)
        self.built = True

    def call(self, x, attention_mask=None, training=False):
        def attend(h):
            return self.self_attention(h, attention_mask=attention_mask, training=training).outputs

        def transform(h):
            return self.feed_forward(h, training=training)

        x = residual(x, attend, self.attention_norm, self.dropout_layer, self.pre_norm, training)
        return residual(x, transform, self.ffn_norm, self.dropout_layer, self.pre_norm, training)


@keras.saving.register_keras_serializable(package="t2t_lite")
class Encoder(StackLayer):
    """Position encoding, dropout, a stack of `EncoderLayer`s, and a final norm if pre-norm.

    Args:
        num_layers: number of encoder layers.
        d_model, num_heads, d_ff, **kwargs: as in `BlockLayer`.

    Call arguments:
        x: `[B, S, D]` scaled source embeddings.
        attention_mask: bool `[B, 1, 1, S]`, True = real source token.
        training: dropout on or off.

    Returns:
        The memory `[B, S, D]`.

    Example:
        >>> Encoder(2, d_model=8, num_heads=2, d_ff=16)(tf.zeros([1, 4, 8])).shape
        TensorShape([1, 4, 8])
    """

    block_class = EncoderLayer

    def call(self, x, attention_mask=None, training=False):
        x = self.dropout_layer(self.position_encoding(x), training=training)
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask, training=training)
        return self.final_norm(x) if self.final_norm is not None else x
