"""A `keras.layers.Dense` whose bias add and activation fuse into the matmul on CPU."""

from collections.abc import Callable

import keras
import tensorflow as tf

from t2t_lite.layers.shapes import leading_sizes


def dense_2d(
    x: tf.Tensor,
    kernel: tf.Tensor,
    bias: tf.Tensor | None = None,
    activation: Callable[[tf.Tensor], tf.Tensor] | None = None,
    transpose_kernel: bool = False,
) -> tf.Tensor:
    """`activation(x @ kernel + bias)` on `[..., D]`, computed as one `[N, D]` matmul.

    The input is flattened to `[N, D]` first, so MatMul, BiasAdd and the activation stand
    next to each other in the graph and TensorFlow's optimizer fuses them into one oneDNN
    `_FusedMatMul` (one pass over the output instead of three).

    Args:
        x: `[..., D]`; the matmul runs in its dtype (kernel and bias are cast to it).
        kernel: `[D, U]`, or `[U, D]` with `transpose_kernel`.
        bias: `[U]`, or None.
        activation: applied after the bias, or None.
        transpose_kernel: the kernel is `[U, D]` (e.g. an embedding table used as output).

    Returns:
        `[..., U]` in the dtype of `x`.
    """
    units = kernel.shape[0 if transpose_kernel else 1]
    flat = tf.reshape(x, [-1, x.shape[-1]])  # [..., D] -> [N, D]
    y = tf.matmul(flat, tf.cast(kernel, x.dtype), transpose_b=transpose_kernel)  # -> [N, U]
    if bias is not None:
        y = tf.nn.bias_add(y, tf.cast(bias, x.dtype))
    if activation is not None:
        y = activation(y)
    return tf.reshape(y, leading_sizes(x) + [units])  # [..., U]


@keras.saving.register_keras_serializable(package="t2t_lite")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` computed on `[N, D]`: the same weights, a faster graph.

    Keras 3 multiplies a `[B, T, D]` input through `tensordot` (reshape, MatMul, reshape) and
    adds the bias after the reshape, so TensorFlow's graph optimizer cannot fuse the bias add
    and the activation into the matmul. This layer computes with `dense_2d`, which flattens
    the input to `[B * T, D]` first, so the three become one fused op. Kernel and bias are
    Keras' (same names and checkpoints); LoRA and quantized layers fall back to Keras' own
    `call`. `get_config` adds the constructor arguments Keras' leaves out when unset
    (`activity_regularizer`, `lora_rank`, `lora_alpha`), so every argument round-trips.

    Args: as `keras.layers.Dense`.

    Call arguments:
        inputs: `[..., D]`.

    Returns:
        `[..., units]`.

    Example:
        >>> Dense(4, activation="relu")(tf.ones([2, 3, 8])).shape
        TensorShape([2, 3, 4])
    """

    @property
    def plain(self) -> bool:
        """The layer computes `dense_2d` with its kernel and bias: neither LoRA nor quantized
        (those compute with Keras' own `call`)."""
        return not (self.lora_enabled or self.quantization_mode)

    def call(self, inputs, training=None):
        if not self.plain:
            return super().call(inputs, training=training)
        return dense_2d(inputs, self.kernel, self.bias, self.activation)

    def get_config(self):
        config = super().get_config()
        config.update(
            activity_regularizer=keras.regularizers.serialize(self.activity_regularizer),
            lora_rank=self.lora_rank,
            lora_alpha=self.lora_alpha,
        )
        return config
