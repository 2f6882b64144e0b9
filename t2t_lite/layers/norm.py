"""Layer normalization over the last axis with a hand-written gradient."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="t2t_lite")
class LayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` over the last axis, differentiated by hand.

    Statistics and the affine part are computed in float32 (gamma and beta stay float32
    under mixed precision), as in Keras; the output has the layer's compute dtype. Autodiff
    of Keras' version (moments, rsqrt, broadcasts, casts) writes about twice as many
    `[N, D]` temporaries as the closed form used here:
    `dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sigma` with `g = dy * gamma`, so the
    backward pass reads and writes less memory and keeps fewer tensors alive. Other
    configurations (several axes, no center or scale, `rms_scaling`) use Keras' `call`. With
    `training=False` the same forward computation runs without the gradient wrapper. The
    weights (`gamma`, `beta`) and checkpoints are Keras'.

    Args: as `keras.layers.LayerNormalization`.

    Call arguments:
        inputs: `[..., D]`.
        training: False for inference (no hand-written gradient); None or True otherwise.

    Returns:
        `[..., D]`, normalized over D.

    Example:
        >>> LayerNormalization(epsilon=1e-6)(tf.ones([2, 3, 8])).shape
        TensorShape([2, 3, 8])
    """

    def call(self, inputs, training=None):
        last = len(inputs.shape) - 1
        plain = self.center and self.scale and not self.rms_scaling
        if not plain or self.axis not in ([-1], [last]):
            return super().call(inputs)
        epsilon, out_dtype = self.epsilon, self.compute_dtype
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training is False:  # nothing to differentiate by hand: fewer ops in a traced graph
            x_hat, _ = _normalized(tf.cast(inputs, tf.float32), epsilon)
            return tf.cast(x_hat * gamma + beta, out_dtype)

        @tf.custom_gradient
        def normalize(x, gamma, beta):
            x_hat, inv_sigma = _normalized(tf.cast(x, tf.float32), epsilon)  # [..., D]

            def grad(dy):
                dy32 = tf.cast(dy, tf.float32)
                rows = tf.range(tf.rank(dy) - 1)  # every axis but the last
                d_gamma = tf.reduce_sum(dy32 * x_hat, axis=rows)
                d_beta = tf.reduce_sum(dy32, axis=rows)
                g = dy32 * gamma
                mean_g = tf.reduce_mean(g, axis=-1, keepdims=True)
                mean_gx = tf.reduce_mean(g * x_hat, axis=-1, keepdims=True)
                dx = (g - mean_g - x_hat * mean_gx) * inv_sigma
                return tf.cast(dx, x.dtype), d_gamma, d_beta

            return tf.cast(x_hat * gamma + beta, out_dtype), grad

        return normalize(inputs, gamma, beta)


def _normalized(x: tf.Tensor, epsilon: float) -> tuple[tf.Tensor, tf.Tensor]:
    """`(x_hat, 1 / sigma)` of float32 rows `[..., D]`: `(x - mean) / sigma` and `[..., 1]`."""
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)  # [..., 1]
    variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=-1, keepdims=True)
    inv_sigma = tf.math.rsqrt(variance + epsilon)
    return (x - mean) * inv_sigma, inv_sigma
