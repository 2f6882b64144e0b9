"""Transformer decoder layer and decoder stack, with incremental (cached) decoding."""

from typing import NamedTuple

import keras
import tensorflow as tf

from t2t_lite.layers.attention import MultiHeadAttention
from t2t_lite.layers.block import BlockLayer, StackLayer, layer_norm, residual
from t2t_lite.layers.feed_forward import FeedForward


class DecoderOutput(NamedTuple):
    """What `DecoderLayer` and `Decoder` return, whatever the arguments.

    Attributes:
        outputs: `[B, T, D]`.
        cache: given a cache, the grown self-attention cache (a layer: its
            `{"keys", "values"}`, each `[B, H, t + T, D/H]`; the stack: a list with one per
            layer); otherwise None.
        attention: the (last) layer's attention probabilities over the memory
            `[B, H, T, S]`, float32 (None only for a stack of zero layers); with K query
            rows per memory row (beam search), `[B, H, K*T, S]` (see `AttentionOutput`).
    """

    outputs: tf.Tensor
    cache: dict[str, tf.Tensor] | list[dict[str, tf.Tensor]] | None
    attention: tf.Tensor | None


@keras.saving.register_keras_serializable(package="t2t_lite")
class DecoderLayer(BlockLayer):
    """Masked self-attention, attention over the encoder memory, and a feed-forward network.

    Args:
        See `BlockLayer`: d_model, num_heads, d_ff, dropout, attention_dropout, ffn_dropout,
        norm, **kwargs.

    Call arguments:
        x: `[B, T, D]`.
        memory: `[B, S, D]` encoder output (may be None when `memory_kv` is given).
        self_mask: bool `[B, 1, T, T]` (causal and padding), True = may attend. None in
            cached step-by-step decoding, where every cached position may be attended.
        memory_mask: bool `[B, 1, 1, S]`, True = real source token.
        cache: `{"keys", "values"}` of this layer's self-attention at previous steps, or None.
        memory_kv: precomputed `(keys, values)` of the memory, or None.
        ffn_kernels: the feed-forward network's `kernels()` computed beforehand, or None.
        training: dropout on or off.

    Returns:
        A `DecoderOutput`: the output, this layer's grown cache (None without a cache) and
        the memory attention probabilities.

    Example:
        >>> layer = DecoderLayer(d_model=8, num_heads=2, d_ff=16)
        >>> layer(tf.zeros([1, 3, 8]), memory=tf.zeros([1, 5, 8])).outputs.shape
        TensorShape([1, 3, 8])
    """

    def __init__(self, d_model, num_heads, d_ff, **kwargs):
        super().__init__(d_model, num_heads, d_ff, **kwargs)
        policy = self.dtype_policy
        drop = self.attention_dropout
        self.self_attention = MultiHeadAttention(
            num_heads, d_model, True, drop, name="self_attention", dtype=policy
        )
        self.cross_attention = MultiHeadAttention(
            num_heads, d_model, False, drop, name="cross_attention", dtype=policy
        )
        self.feed_forward = FeedForward(d_model, d_ff, self.ffn_dropout, name="ffn", dtype=policy)
        self.self_attention_norm = layer_norm("self_attention_norm", policy)
        self.cross_attention_norm = layer_norm("cross_attention_norm", policy)
        self.ffn_norm = layer_norm("ffn_norm", policy)

    def build(self, input_shape):
        shape = [None, None, self.d_model]
        for sublayer in (self.self_attention, self.cross_attention, self.feed_forward):
            sublayer.build(shape)
        for norm in (self.self_attention_norm, self.cross_attention_norm, self.ffn_norm):
            norm.build(shape)
        self.built = True

    def call(
        self,
        x,
        memory=None,
        self_mask=None,
        memory_mask=None,
        cache=None,
        memory_kv=None,
        ffn_kernels=None,
        training=False,
    ) -> DecoderOutput:
        results = {}  # the sublayers' `AttentionOutput`s, kept by `attend_*`

        def attend_self(h):
            results["self"] = self.self_attention(
                h, attention_mask=self_mask, cache=cache, training=training
            )
            return results["self"].outputs

        def attend_memory(h):
            results["memory"] = self.cross_attention(
                h,
                memory=memory,
                attention_mask=memory_mask,
                memory_kv=memory_kv,
                training=training,
            )
            return results["memory"].outputs

        def transform(h):
            return self.feed_forward(h, training=training, kernels=ffn_kernels)

        pre, drop = self.pre_norm, self.dropout_layer
        x = residual(x, attend_self, self.self_attention_norm, drop, pre, training)
        x = residual(x, attend_memory, self.cross_attention_norm, drop, pre, training)
        x = residual(x, transform, self.ffn_norm, drop, pre, training)
        return DecoderOutput(x, results["self"].cache, results["memory"].weights)


@keras.saving.register_keras_serializable(package="t2t_lite")
class Decoder(StackLayer):
    """Position encoding, dropout, a stack of `DecoderLayer`s, and a final norm if pre-norm.

    Args:
        num_layers: number of decoder layers.
        d_model, num_heads, d_ff, **kwargs: as in `BlockLayer`.

    Call arguments:
        x: `[B, T, D]` scaled target embeddings.
        memory: `[B, S, D]` encoder output (None when `memory_kv` is given).
        self_mask: bool `[B, 1, T, T]`, or None in cached decoding.
        memory_mask: bool `[B, 1, 1, S]`.
        cache: list with one `{"keys", "values"}` dict per layer (see `initial_cache`), or None.
        memory_kv: list with one `(keys, values)` per layer (see `project_memory`), or None.
        ffn_kernels: list with one feed-forward `kernels()` per layer (see `ffn_kernels`), or
            None.
        offset: position of the first target vector (the decoding step).
        training: dropout on or off.

    Returns:
        A `DecoderOutput`: the output, the list of grown caches (None without a cache) and
        the last layer's memory attention probabilities; averaged over the heads, these are
        the model's alignment attention (`Transformer`, `t2t-translate --alignments`).

    Example:
        >>> decoder = Decoder(2, d_model=8, num_heads=2, d_ff=16)
        >>> decoder(tf.zeros([1, 3, 8]), memory=tf.zeros([1, 5, 8])).outputs.shape
        TensorShape([1, 3, 8])
    """

    block_class = DecoderLayer

    def initial_cache(self, batch_size, dtype=tf.float32) -> list[dict[str, tf.Tensor]]:
        """Empty self-attention caches: per layer, keys and values `[B, H, 0, D/H]`."""
        empty = tf.zeros([batch_size, self.num_heads, 0, self.d_model // self.num_heads], dtype)
        return [{"keys": empty, "values": empty} for _ in self.blocks]

    def project_memory(self, memory) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """Per layer, the memory keys and values `[B, H, S, D/H]`; computed once per sentence."""
        return [block.cross_attention.project_memory(memory) for block in self.blocks]

    def ffn_kernels(self) -> list[tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
        """Per layer, the feed-forward weights as the layer computes with them (see
        `FeedForward.kernels`); computed once before a decoding loop, not at every step."""
        return [block.feed_forward.kernels() for block in self.blocks]

    def call(
        self,
        x,
        memory=None,
        self_mask=None,
        memory_mask=None,
        cache=None,
        memory_kv=None,
        ffn_kernels=None,
        offset=0,
        training=False,
    ) -> DecoderOutput:
        x = self.dropout_layer(self.position_encoding(x, offset=offset), training=training)
        new_cache, attention = [], None
        for i, block in enumerate(self.blocks):
            x, layer_cache, attention = block(
                x,
                memory=memory,
                self_mask=self_mask,
                memory_mask=memory_mask,
                cache=None if cache is None else cache[i],
                memory_kv=None if memory_kv is None else memory_kv[i],
                ffn_kernels=None if ffn_kernels is None else ffn_kernels[i],
                training=training,
            )
            new_cache.append(layer_cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return DecoderOutput(x, None if cache is None else new_cache, attention)
