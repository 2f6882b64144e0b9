"""Position-wise feed-forward network."""

import keras
import tensorflow as tf

from t2t_lite.layers.dense import Dense, dense_2d
from t2t_lite.layers.dropout import Dropout
from t2t_lite.layers.shapes import leading_sizes

# Hidden units added where a float32 hidden row would fill a multiple of 4 KiB: 256 bytes more.
HIDDEN_PADDING = 64


def hidden_width(d_ff: int, dtype) -> int:
    """The width the hidden activations `[N, F]` are computed at: `d_ff`, or
    `d_ff + HIDDEN_PADDING` when the computation is float32 and a row of `d_ff` floats is a
    multiple of 4 KiB (d_ff = 1024, 2048, 4096, ...).

    Float32 matrix multiplies whose operand rows lie a multiple of 4 KiB apart run up to
    twice slower where oneDNN uses its AVX2 kernels (such rows compete for the same cache
    sets): the `[N, 256] x [256, 1024]` product of each decoding step, and the weight
    gradients of training (`docs/tuning.md`, Feed-forward rows of 4 KiB). 64 more units (rows
    of 4,352 bytes) avoid it; they are exact zeros (`FeedForward.kernels`), so the output is
    the same. bfloat16 rows are half as long, and padding them costs more than it gains.
    """
    if tf.as_dtype(dtype) == tf.float32 and (d_ff * 4) % 4096 == 0:
        return d_ff + HIDDEN_PADDING
    return d_ff


def relu_dense_dropped(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, dropout: Dropout):
    """`where(keep, relu(x @ kernel + bias), 0)`: dropout's mask without its factor, and a
    gradient that is one `ReluGrad` for the ReLU and the mask together.

    The output is positive exactly where the mask keeps a positive pre-activation, so the
    gradient of the pre-activation is `ReluGrad(dy, output)`: one pass over `[N, F]`, where
    autodiff of dropout after the ReLU takes two (the mask's multiply, then `ReluGrad`), and
    the forward pass selects instead of multiplying by a selected factor (two passes). The
    caller applies the factor `1 / (1 - p)` (e.g. to the next kernel).

    Args:
        x: `[..., D]`; computed in its dtype.
        kernel: `[D, F]`.
        bias: `[F]`.
        dropout: the layer whose `keep_mask` (and seed generator) masks `[..., F]`.

    Returns:
        `[..., F]`.
    """
    flat = tf.reshape(x, [-1, x.shape[-1]])  # [..., D] -> [N, D]

    @tf.custom_gradient
    def masked(flat, kernel, bias):
        hidden = dense_2d(flat, kernel, bias, tf.nn.relu)  # [N, F], one fused oneDNN op
        out = tf.where(dropout.keep_mask(hidden), hidden, tf.zeros([], hidden.dtype))

        def grad(d_out):
            d_pre = tf.raw_ops.ReluGrad(gradients=d_out, features=out)  # [N, F]
            return (
                tf.matmul(d_pre, kernel, transpose_b=True),  # [N, D]
                tf.matmul(flat, d_pre, transpose_a=True),  # [D, F]
                tf.raw_ops.BiasAddGrad(out_backprop=d_pre),  # [F]
            )

        return out, grad

    out = masked(flat, tf.cast(kernel, x.dtype), tf.cast(bias, x.dtype))
    return tf.reshape(out, leading_sizes(x) + [kernel.shape[-1]])  # [..., F]


@keras.saving.register_keras_serializable(package="t2t_lite")
class FeedForward(keras.layers.Layer):
    """`Dense(d_ff, relu) -> dropout -> Dense(d_model)`, applied at every position.

    The hidden activations are `hidden_width(d_ff, compute dtype)` wide: the weights are
    `[D, d_ff]` and `[d_ff, D]` as always, padded with zeros where the computation gains
    from a wider hidden row (see `hidden_width`).

    Args:
        d_model: D, input and output width.
        d_ff: inner width.
        dropout: dropout rate after the ReLU.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: `[B, T, D]`.
        training: dropout on or off.
        kernels: `kernels()` computed once beforehand (e.g. outside a decoding loop), or
            None to compute them in this call.

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

    def kernels(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """`(inner kernel [D, F], inner bias [F], outer kernel [F, D])`, F =
        `hidden_width(d_ff, compute dtype)`: the weights, with F - d_ff zero columns, zero
        biases and zero rows added. ReLU(0) = 0, and zero rows add nothing to the output."""
        inner, bias, outer = self.inner.kernel, self.inner.bias, self.outer.kernel
        pad = hidden_width(self.d_ff, self.compute_dtype) - self.d_ff
        if pad == 0:
            return inner, bias, outer
        return (
            tf.pad(inner, [[0, 0], [0, pad]]),
            tf.pad(bias, [[0, pad]]),
            tf.pad(outer, [[0, pad], [0, 0]]),
        )

    def call(self, inputs, training=False, kernels=None):
        if not (self.inner.plain and self.outer.plain):
            return self.outer(self.dropout_layer(self.inner(inputs), training=training))
        inner, bias, outer = self.kernels() if kernels is None else kernels
        if training and self.dropout_layer.threshold > 0:
            # The survivors' factor 1 / (1 - p) goes on the outer kernel `[F, D]` instead of
            # on the hidden activations `[N, F]`.
            hidden = relu_dense_dropped(inputs, inner, bias, self.dropout_layer)
            outer = tf.cast(outer, hidden.dtype) * self.dropout_layer.scale
            return dense_2d(hidden, outer, self.outer.bias)
        hidden = dense_2d(inputs, inner, bias, self.inner.activation)  # -> [B, T, F]
        return dense_2d(hidden, outer, self.outer.bias)  # -> [B, T, D]

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model, d_ff=self.d_ff, dropout=self.dropout)
        return config
