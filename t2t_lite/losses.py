"""The training loss: masked, label-smoothed cross-entropy that returns `(sum, weight)`.

As in OpenNMT-tf, the loss is not divided here: callers add sums and weights over batches,
replicas and accumulation steps and divide once, so the result does not depend on how a
global batch was split.

Label smoothing gives the reference `1 - epsilon` and spreads `epsilon` uniformly over the
`V - 1` other classes (`epsilon / (V - 1)` each), as OpenNMT-tf (`_smooth_one_hot_labels`),
fairseq (`label_smoothed_nll_loss`) and tensor2tensor do; Keras' `label_smoothing` spreads it
over all `V` classes instead. The loss includes the constant entropy of the smoothed
distribution, so it does not reach 0 when `epsilon > 0`.

Speed: the `[N, V]` logits are the largest tensor of a training step, so `smoothed_nll` reads
them in a few passes (max, exp and sum, sum, the label's logit), keeps the exponentials, and
writes the gradient `softmax - smoothed_target` from them (the label's share subtracted at
its N positions, never as an `[N, V]` one-hot), instead of letting autodiff
differentiate a `log_softmax`, a gather (whose gradient is a scatter into `[N, V]`) and a sum.
`cross_entropy` drops padded positions before that; given the output projection, before the
projection too (as the trainer does).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from t2t_lite.vocab import PAD_ID


def token_weight(labels: tf.Tensor) -> tf.Tensor:
    """float32 scalar: the number of non-padding labels in int `[B, T]`."""
    return tf.reduce_sum(tf.cast(tf.not_equal(labels, PAD_ID), tf.float32))


def smoothed_nll(logits: tf.Tensor, labels: tf.Tensor, label_smoothing: float) -> tf.Tensor:
    """Label-smoothed negative log-likelihood of every row, padding or not.

    Args:
        logits: `[N, V]`, any float dtype; computed in float32.
        labels: int `[N]`.
        label_smoothing: epsilon in `[0, 1)`.

    Returns:
        float32 `[N]`; its gradient with respect to `logits` is written by hand (see the
        module docstring) and has the dtype of `logits`.
    """

    @tf.custom_gradient
    def nll(x):  # x: [N, V]
        x32 = tf.cast(x, tf.float32)
        vocab_size = tf.cast(tf.shape(x)[-1], tf.float32)
        other = label_smoothing / (vocab_size - 1.0)  # target probability of a non-label
        on = 1.0 - label_smoothing - other  # what the label gets on top of `other`
        total = on + other * vocab_size  # the target distribution's mass: 1
        peak = tf.stop_gradient(tf.reduce_max(x32, axis=-1))  # [N]
        exps = tf.exp(x32 - peak[:, None])  # [N, V], kept for the gradient
        exp_sum = tf.reduce_sum(exps, axis=-1)  # [N]
        log_norm = peak + tf.math.log(exp_sum)
        label_logit = tf.gather(x32, labels, axis=-1, batch_dims=1)  # [N]
        # -(on * log p_label + other * sum_v log p_v), log p_v = x_v - log_norm
        loss = total * log_norm - on * label_logit
        if label_smoothing:
            loss -= other * tf.reduce_sum(x32, axis=-1)

        def grad(upstream):  # [N] -> [N, V]: (total * softmax - target) * upstream
            result = exps * (total * upstream / exp_sum)[:, None]
            if label_smoothing:
                result -= (other * upstream)[:, None]
            # The label's extra `on`, subtracted in place at N positions (no one-hot).
            rows = tf.range(tf.shape(labels, out_type=labels.dtype)[0])
            at_labels = tf.stack([rows, labels], axis=1)  # [N, 2]
            result = tf.tensor_scatter_nd_sub(result, at_labels, on * upstream)
            return tf.cast(result, x.dtype)

        return loss, grad

    return nll(logits)


def cross_entropy(
    logits: tf.Tensor,
    labels: tf.Tensor,
    label_smoothing: float = 0.0,
    project: Callable[[tf.Tensor], tf.Tensor] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Label-smoothed cross-entropy summed over non-padding positions.

    Args:
        logits: `[B, T, V]` (or `[N, V]`), any float dtype; computed in float32. With
            `project`, decoder outputs `[B, T, D]` instead.
        labels: int `[B, T]` (or `[N]`), `PAD_ID` where there is no target.
        label_smoothing: epsilon in `[0, 1)`.
        project: maps `[N, D]` outputs to `[N, V]` logits; applied after padded positions
            are dropped, so they never go through the projection (the trainer passes
            `Transformer.project`).

    Returns:
        `(loss_sum, weight)`: float32 scalars; the mean loss per token is
        `loss_sum / weight`, weight being the number of non-padding labels. Padded positions
        add exactly 0 to both and to the gradient, whatever their logits.

    Example:
        >>> loss_sum, weight = cross_entropy(logits, batch["target_out"], 0.1)
        >>> mean = loss_sum / weight
    """
    keep = tf.not_equal(labels, PAD_ID)
    rows = tf.boolean_mask(logits, keep)  # [N, V], or [N, D] before `project`
    if project is not None:
        rows = project(rows)
    loss = smoothed_nll(rows, tf.boolean_mask(labels, keep), label_smoothing)
    return tf.reduce_sum(loss), token_weight(labels)
