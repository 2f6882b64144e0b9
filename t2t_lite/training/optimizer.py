"""Adam whose update of a float32 variable is one fused kernel (`ResourceApplyAdam`).

Keras' Adam writes each variable's update as about a dozen elementwise ops, each a pass over
the variable, its moments or its gradient; TensorFlow's `ResourceApplyAdam` reads and writes
each of them once. The rule is Keras' (Kingma and Ba with the bias corrections folded into
the learning rate, epsilon added to `sqrt(v)`), and the moments are the same Keras
variables, so checkpoints do not change. Other dtypes, sparse gradients (`IndexedSlices`)
and `amsgrad` take Keras' update.

Example:
    >>> optimizer = Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
"""

from __future__ import annotations

import keras
import tensorflow as tf


class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with a fused update for float32 variables."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or variable.dtype != tf.float32 or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, tf.float32)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(tf.constant(self.beta_1, tf.float32), step),
            beta2_power=tf.pow(tf.constant(self.beta_2, tf.float32), step),
            lr=tf.cast(learning_rate, tf.float32),
            beta1=tf.constant(self.beta_1, tf.float32),
            beta2=tf.constant(self.beta_2, tf.float32),
            epsilon=tf.constant(self.epsilon, tf.float32),
            grad=tf.cast(gradient, tf.float32),
        )
