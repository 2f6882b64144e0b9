"""The training loss: masked, label-smoothed cross-entropy that returns `(sum, weight)`.

As in OpenNMT-tf, the loss is not divided here: callers add sums and weights over batches,
replicas and accumulation steps and divide once, so the result does not depend on how a
global batch was split.

Label smoothing gives the reference `1 - epsilon` and spreads `epsilon` uniformly over the
`V - 1` other classes (`epsilon / (V - 1)` each), as OpenNMT-tf (`_smooth_one_hot_labels`),
fairseq (`label_smoothed_nll_loss`) and tensor2tensor do; Keras' `label_smoothing` spreads it
over all `V` classes instead. The loss includes the constant entropy of the smoothed
distribution, so it does not reach 0 when `epsilon > 0`.
"""

from __future__ import annotations

import tensorflow as tf

from t2t_lite.vocab import PAD_ID


def token_weight(labels: tf.Tensor) -> tf.Tensor:
    """float32 scalar: the number of non-padding labels in int `[B, T]`."""
    return tf.reduce_sum(tf.cast(tf.not_equal(labels, PAD_ID), tf.float32))


def cross_entropy(
    logits: tf.Tensor, labels: tf.Tensor, label_smoothing: float = 0.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Label-smoothed cross-entropy summed over non-padding positions.

    Args:
        logits: `[B, T, V]`, any float dtype; computed in float32.
        labels: int `[B, T]`, `PAD_ID` where there is no target.
        label_smoothing: epsilon in `[0, 1)`.

    Returns:
        `(loss_sum, weight)`: float32 scalars; the mean loss per token is
        `loss_sum / weight`, weight being the number of non-padding labels.

    Example:
        >>> loss_sum, weight = cross_entropy(logits, batch["target_out"], 0.1)
        >>> mean = loss_sum / weight
    """
    logits = tf.cast(logits, tf.float32)
    log_probs = tf.nn.log_softmax(logits, axis=-1)  # [B, T, V]
    vocab_size = tf.cast(tf.shape(logits)[-1], tf.float32)
    true_log_prob = tf.gather(log_probs, labels, axis=-1, batch_dims=2)  # [B, T]
    loss = -true_log_prob
    if label_smoothing:
        other = label_smoothing / (vocab_size - 1.0)
        all_log_probs = tf.reduce_sum(log_probs, axis=-1)  # [B, T]
        # (1 - eps) on the label and eps / (V - 1) on each other class:
        loss = -((1.0 - label_smoothing - other) * true_log_prob + other * all_log_probs)
    loss = tf.where(tf.not_equal(labels, PAD_ID), loss, 0.0)  # padding adds exactly 0
    return tf.reduce_sum(loss), token_weight(labels)
