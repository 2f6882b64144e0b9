"""Attention masks as pure functions, with one convention: boolean, True = may attend.

Masks broadcast against attention logits of shape `[B, H, T, S]` (queries T, keys S) and are
applied in exactly one place, `MultiHeadAttention`, where False positions get a large negative
logit before the softmax.

Beware the older convention of the TensorFlow tutorial and tensor2tensor, where a float mask
held 1 for *blocked* positions and was added as `mask * -1e9`. Our masks are the logical
negation of those. Mixing the two does not fail loudly: it silently lets every query attend
only to padding and future tokens, and the model trains to nonsense. Convert with
`tf.logical_not(tf.cast(old_mask, tf.bool))` if you import such a mask.
"""

import tensorflow as tf

from t2t_lite.constants import PAD_ID


def padding_mask(ids: tf.Tensor, pad_id: int = PAD_ID) -> tf.Tensor:
    """Keys that are real tokens.

    Args:
        ids: int tensor `[B, S]`.
        pad_id: the padding id.

    Returns:
        bool `[B, 1, 1, S]`, True where `ids != pad_id`.
    """
    return tf.not_equal(ids, pad_id)[:, tf.newaxis, tf.newaxis, :]


def causal_mask(length: tf.Tensor | int) -> tf.Tensor:
    """Look-ahead mask: query position t may attend to key positions <= t.

    Args:
        length: number of target positions T.

    Returns:
        bool `[1, 1, T, T]`, lower triangular (diagonal included).
    """
    positions = tf.range(length)
    allowed = positions[tf.newaxis, :] <= positions[:, tf.newaxis]  # [T, T]: key <= query
    return allowed[tf.newaxis, tf.newaxis, :, :]


def decoder_self_mask(target_ids: tf.Tensor, pad_id: int = PAD_ID) -> tf.Tensor:
    """Causal mask combined with target padding: bool `[B, 1, T, T]`."""
    return tf.logical_and(causal_mask(tf.shape(target_ids)[1]), padding_mask(target_ids, pad_id))
