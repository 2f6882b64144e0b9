"""The training loss: masked, label-smoothed cross-entropy that returns `(sum, weight)`.

As in OpenNMT-tf, the loss is not divided here: callers add sums and weights over batches,
replicas and accumulation steps and divide once, so the result does not depend on how a
global batch was split.

Label smoothing gives the reference `1 - epsilon` and spreads `epsilon` uniformly over the
`V - 1` other classes (`epsilon / (V - 1)` each), as OpenNMT-tf (`_smooth_one_hot_labels`),
fairseq (`label_smoothed_nll_loss`) and tensor2tensor do; Keras' `label_smoothing` spreads it
over all `V` classes instead. The loss includes the constant entropy of the smoothed
distribution, so it does not reach 0 when `epsilon > 0`.

There are two implementations of one loss:

- `smoothed_nll` takes logits and is the textbook formula, `-sum_v target_v log p_v`,
  differentiated by autodiff. `cross_entropy` uses it when given logits, and the tests
  check `projected_nll` against it.
- `projected_nll` takes decoder outputs and the output layer; training uses it
  (`cross_entropy(..., output_layer=)`). The `[N, V]` logits are the largest tensor of a
  training step, so projection and loss are differentiated together, by hand: padded
  positions never reach the projection, the logits are read only by one softmax in the
  compute dtype (bfloat16 under mixed precision), and the gradient never materializes
  `softmax - smoothed_target` as an `[N, V]` tensor. With `G = diag(u) P - Q` (`P` the
  softmax, `u` the incoming gradient per row, `Q = u (other 1^T + on onehot)`), the three
  products the projection needs are written as
  `G W = diag(u) (P W) - u other sum_v w_v - u on w_label`,
  `G^T X = P^T diag(u) X - other 1 (u^T X) - on segment_sum(u X, labels)` and
  `1^T G = u^T P - other sum(u) - on bincount(labels, u)`: matmuls that read `P` once each,
  plus `[N, D]` and `[V, D]` corrections computed in float32. Autodiff would instead write
  a one-hot, the scatter of a gather's gradient and their difference with `P`, each
  `[N, V]`, and the bias gradient would sum a rounded `[N, V]` tensor.
"""

from __future__ import annotations

import tensorflow as tf

from t2t_lite.constants import PAD_ID
from t2t_lite.transformer import OutputLayer


def token_weight(labels: tf.Tensor) -> tf.Tensor:
    """float32 scalar: the number of non-padding labels in int `[B, T]`."""
    return tf.reduce_sum(tf.cast(tf.not_equal(labels, PAD_ID), tf.float32))


def _smoothing(label_smoothing: float, vocab_size: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """`(other, on, total)`: the target probability of a non-label, what the label gets on
    top of `other`, and the target distribution's mass (1)."""
    vocab_size = tf.cast(vocab_size, tf.float32)
    other = label_smoothing / (vocab_size - 1.0)
    on = 1.0 - label_smoothing - other
    return other, on, on + other * vocab_size


def smoothed_nll(logits: tf.Tensor, labels: tf.Tensor, label_smoothing: float) -> tf.Tensor:
    """Label-smoothed negative log-likelihood of every row, padding or not.

    The textbook formula, differentiated by autodiff: the reference for `projected_nll`.

    Args:
        logits: `[N, V]`, any float dtype; computed in float32.
        labels: int `[N]`.
        label_smoothing: epsilon in `[0, 1)`.

    Returns:
        float32 `[N]`; its gradient with respect to `logits` has the dtype of `logits`.
    """
    logits = tf.cast(logits, tf.float32)
    vocab_size = tf.shape(logits)[-1]
    off = label_smoothing / tf.cast(vocab_size - 1, tf.float32)  # each non-label class
    targets = tf.one_hot(labels, vocab_size, on_value=1.0 - label_smoothing, off_value=off)
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits), axis=-1)  # [N, V] -> [N]


def projected_nll(
    outputs: tf.Tensor, output_layer: OutputLayer, labels: tf.Tensor, label_smoothing: float
) -> tf.Tensor:
    """`smoothed_nll` of `outputs @ W + bias`, projection and loss differentiated together
    by hand (see the module docstring).

    Args:
        outputs: `[N, D]` decoder outputs in the compute dtype (bfloat16 under mixed
            precision); the logits and their softmax are computed in that dtype.
        output_layer: the projection's weights.
        labels: int `[N]`.
        label_smoothing: epsilon in `[0, 1)`.

    Returns:
        float32 `[N]`, as `smoothed_nll`; gradients flow to `outputs` (its dtype) and to the
        kernel and bias (float32). See the module docstring for how.
    """
    vocab_major = output_layer.vocab_major
    vocab_axis = 0 if vocab_major else 1

    @tf.custom_gradient
    def nll(x, kernel, bias):  # x: [N, D]
        w, b = tf.cast(kernel, x.dtype), tf.cast(bias, x.dtype)  # w: [V, D] or [D, V]
        logits = tf.matmul(x, w, transpose_b=vocab_major)  # [N, V]
        logits = tf.nn.bias_add(logits, b)  # fuses into the matmul
        vocab_size = tf.shape(logits)[-1]
        other, on, total = _smoothing(label_smoothing, vocab_size)
        probs = tf.nn.softmax(logits)  # [N, V], one fused pass
        label_logit = tf.cast(tf.gather(logits, labels, axis=1, batch_dims=1), tf.float32)
        label_prob = tf.cast(tf.gather(probs, labels, axis=1, batch_dims=1), tf.float32)
        # log sum_v exp(x_v) = x_label - log p_label; the floor only caps the loss reported
        # for a label whose probability underflows (the gradient does not use it).
        log_norm = label_logit - tf.math.log(tf.maximum(label_prob, 1e-37))  # [N]
        x32 = tf.cast(x, tf.float32)
        w32 = tf.cast(w, tf.float32)  # the weights as the matmul saw them
        w_sum = tf.reduce_sum(w32, axis=vocab_axis)  # [D]: sum_v w_v
        loss = total * log_norm - on * label_logit
        if label_smoothing:
            # sum_v x_v = outputs . sum_v w_v + sum_v bias_v, without a pass over [N, V].
            bias_sum = tf.reduce_sum(tf.cast(b, tf.float32))  # the bias as the matmul saw it
            loss -= other * (tf.linalg.matvec(x32, w_sum) + bias_sum)

        def grad(upstream):  # [N]
            scale = total * upstream  # [N]: G = diag(scale) P - Q, Q as in the docstring
            scaled_x = tf.cast(x32 * scale[:, None], x.dtype)  # diag(u) X
            if vocab_major:
                probs_w = tf.matmul(probs, w)  # [N, V] x [V, D]
                w_label = tf.gather(w32, labels)  # [N, D]
                d_kernel = tf.matmul(probs, scaled_x, transpose_a=True)  # [V, D]
            else:
                probs_w = tf.matmul(probs, w, transpose_b=True)  # [N, V] x [D, V]^T
                w_label = tf.transpose(tf.gather(w32, labels, axis=1))  # [N, D]
                d_kernel = tf.matmul(scaled_x, probs, transpose_a=True)  # [D, V]
            d_x = (
                tf.cast(probs_w, tf.float32) * scale[:, None]
                - (other * upstream)[:, None] * w_sum
                - (on * upstream)[:, None] * w_label
            )
            upstream_x = x32 * upstream[:, None]  # [N, D]
            per_label = tf.math.unsorted_segment_sum(upstream_x, labels, vocab_size)  # [V, D]
            correction = other * tf.reduce_sum(upstream_x, axis=0) + on * per_label
            if not vocab_major:
                correction = tf.transpose(correction)
            d_kernel = tf.cast(d_kernel, tf.float32) - correction
            d_bias = tf.matmul(tf.cast(scale, x.dtype)[None, :], probs)[0]  # [V]: u^T P
            d_bias = (
                tf.cast(d_bias, tf.float32)
                - other * tf.reduce_sum(upstream)
                - on * tf.math.unsorted_segment_sum(upstream, labels, vocab_size)
            )
            return tf.cast(d_x, x.dtype), d_kernel, d_bias

        return loss, grad

    return nll(
        outputs, tf.cast(output_layer.kernel, tf.float32), tf.cast(output_layer.bias, tf.float32)
    )


def cross_entropy(
    logits: tf.Tensor,
    labels: tf.Tensor,
    label_smoothing: float = 0.0,
    output_layer: OutputLayer | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Label-smoothed cross-entropy summed over non-padding positions.

    Args:
        logits: `[B, T, V]` (or `[N, V]`), any float dtype; computed in float32. With
            `output_layer`, decoder outputs `[B, T, D]` instead.
        labels: int `[B, T]` (or `[N]`), `PAD_ID` where there is no target.
        label_smoothing: epsilon in `[0, 1)`.
        output_layer: the output projection (`Transformer.output_layer()`); given it, the
            padded positions are dropped before the projection and `projected_nll` computes
            logits, loss and gradients (the training path). Without it, `smoothed_nll`.

    Returns:
        `(loss_sum, weight)`: float32 scalars; the mean loss per token is
        `loss_sum / weight`, weight being the number of non-padding labels. Padded positions
        add exactly 0 to both and to the gradient, whatever their logits.

    Example:
        >>> loss_sum, weight = cross_entropy(logits, batch["target_out"], 0.1)
        >>> mean = loss_sum / weight
    """
    keep = tf.not_equal(labels, PAD_ID)
    rows = tf.boolean_mask(logits, keep)  # [N, V], or [N, D] with `output_layer`
    kept_labels = tf.boolean_mask(labels, keep)
    if output_layer is None:
        loss = smoothed_nll(rows, kept_labels, label_smoothing)
    else:
        loss = projected_nll(rows, output_layer, kept_labels, label_smoothing)
    return tf.reduce_sum(loss), token_weight(labels)
