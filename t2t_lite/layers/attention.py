"""Multi-head scaled dot-product attention with a key/value cache for decoding."""

from typing import NamedTuple

import keras
import tensorflow as tf

from t2t_lite.layers.dense import Dense
from t2t_lite.layers.dropout import Dropout
from t2t_lite.layers.shapes import leading_sizes, sizes


def split_heads(x: tf.Tensor, num_heads: int, parts: int = 1) -> list[tf.Tensor]:
    """`[B, T, P * D] -> P x [B, H, T, D/H]`: the P projections packed in one tensor (queries,
    keys, values of a fused projection) come out with one transpose, not a split and P."""
    depth = x.shape[-1] // (parts * num_heads)
    x = tf.reshape(x, leading_sizes(x) + [parts, num_heads, depth])  # [B, T, P, H, D/H]
    x = tf.transpose(x, [2, 0, 3, 1, 4])  # -> [P, B, H, T, D/H]
    return tf.unstack(x, num=parts)  # slices of the first axis: no copies


def group_heads(x: tf.Tensor, rows: tf.Tensor, num_heads: int) -> tf.Tensor:
    """`[R*K, T, D] -> [R, H, K*T, D/H]`: the K rows of each group as K*T positions of one."""
    depth = x.shape[-1] // num_heads
    x = tf.reshape(x, [rows, -1, num_heads, depth])  # [R, K*T, H, D/H]
    return tf.transpose(x, [0, 2, 1, 3])  # -> [R, H, K*T, D/H]


def merge_heads(x: tf.Tensor, query: tf.Tensor, d_model: int) -> tf.Tensor:
    """`[B, H, T, D/H] -> [B, T, D]` with the leading sizes of `query` `[B, T, ...]`; undoes
    `group_heads` too: `[R, H, K*T, D/H] -> [R*K, T, D]` for a query `[R*K, T, ...]`."""
    x = tf.transpose(x, [0, 2, 1, 3])  # [B, H, T, D/H] -> [B, T, H, D/H]
    return tf.reshape(x, leading_sizes(query) + [d_model])  # -> [B, T, D]


def attention_matmul(
    x: tf.Tensor, y: tf.Tensor, adjoint_b: bool = False, one_query: bool = False
) -> tf.Tensor:
    """`x @ y` (`y` transposed with `adjoint_b`) over the leading axes `[B, H]`: the scores
    `[B, H, T, D/H] x [B, H, S, D/H]^T -> [B, H, T, S]` or the context
    `[B, H, T, S] x [B, H, S, D/H] -> [B, H, T, D/H]`.

    `one_query` marks a decoding step, where each row has one query position (T = 1, or the
    K beams of a memory row grouped, T = K). In float32 such products run TensorFlow's own
    batched matmul kernel (`BatchMatMulV3`), which oneDNN leaves alone where it rewrites
    `BatchMatMulV2`: for B*H pairs of tiny matrices oneDNN's kernel mostly takes 1.3 to 2.7
    times as long and builds a new primitive for each new shape. Longer queries (the encoder,
    training, scoring) and bfloat16 keep `tf.linalg.matmul`: there TensorFlow's kernel is
    several times slower (docs/tuning.md).
    """
    if one_query and x.dtype == tf.float32:
        return tf.raw_ops.BatchMatMulV3(x=x, y=y, Tout=tf.float32, adj_y=adjoint_b)
    return tf.linalg.matmul(x, y, adjoint_b=adjoint_b)


class AttentionOutput(NamedTuple):
    """What `MultiHeadAttention` returns, whatever the arguments.

    Attributes:
        outputs: `[B, T, D]`.
        cache: self-attention given a cache: `{"keys", "values"}`, each `[B, H, t + T, D/H]`,
            the previous steps' keys/values with this call's appended; otherwise None.
        weights: the attention probabilities `[B, H, T, S]`, float32, before dropout; in
            cross-attention with K query rows per memory row, as the K rows attended it
            together: `[B, H, K*T, S]` (position `k*T + t` is row `b*K + k`'s position t).
    """

    outputs: tf.Tensor
    cache: dict[str, tf.Tensor] | None
    weights: tf.Tensor


@keras.saving.register_keras_serializable(package="t2t_lite")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention; self-attention or attention over a memory (encoder output).

    Self-attention projects queries, keys and values with one fused `[D, 3D]` matrix;
    cross-attention projects queries with `[D, D]` and keys/values with one fused `[D, 2D]`
    (the same layout CTranslate2 uses, so export needs no reshuffling).

    Decoding support:
    - self-attention with `cache={"keys": [B, H, t, D/H], "values": ...}`: the new step's
      keys/values are appended and the grown cache is returned in `AttentionOutput.cache`;
    - cross-attention with `memory_kv=(keys, values)` from `project_memory(memory)`: the
      encoder-side keys/values are computed once per sentence and reused at every step.
      They keep one row per sentence: a query of `B*K` rows (K beams per sentence, row
      `b*K + k`) attends memory row `b`, the K rows' queries in one product.

    Args:
        num_heads: H.
        d_model: D, the input and output width (divisible by H).
        self_attention: True for self-attention, False for attention over a memory.
        dropout: dropout rate on the attention probabilities.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        query: `[B, T, D]`; in cross-attention `[B*K, T, D]` for K query rows per memory row.
        memory: `[B, S, D]` for cross-attention (ignored when `memory_kv` is given).
        attention_mask: bool, broadcastable to `[B, H, T, S]` (cross-attention: `[B, 1, 1, S]`
            or `[B, H, K*T, S]`), True = may attend.
        cache: self-attention only; a dict of keys/values of previous steps.
        memory_kv: cross-attention only; `(keys, values)`, each `[B, H, S, D/H]`.
        training: dropout on or off.

    Returns:
        An `AttentionOutput`: the output, the grown cache (None without a cache) and the
        attention probabilities.

    Example:
        >>> mha = MultiHeadAttention(num_heads=2, d_model=8)
        >>> mha(tf.zeros([1, 3, 8])).outputs.shape
        TensorShape([1, 3, 8])

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.2.
    """

    def __init__(self, num_heads, d_model, self_attention=True, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.d_model = d_model
        self.self_attention = self_attention
        self.dropout = dropout
        if self_attention:
            self.qkv_proj = Dense(3 * d_model, name="qkv", dtype=self.dtype_policy)
        else:
            self.q_proj = Dense(d_model, name="query", dtype=self.dtype_policy)
            self.kv_proj = Dense(2 * d_model, name="kv", dtype=self.dtype_policy)
        self.out_proj = Dense(d_model, name="output", dtype=self.dtype_policy)
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def build(self, query_shape):
        width = query_shape[-1]
        if self.self_attention:
            self.qkv_proj.build([None, None, width])
        else:
            self.q_proj.build([None, None, width])
            self.kv_proj.build([None, None, width])
        self.out_proj.build([None, None, self.d_model])
        self.built = True

    def project_memory(self, memory: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Cross-attention keys and values of a memory: `[B, S, D]` -> 2 x `[B, H, S, D/H]`."""
        keys, values = split_heads(self.kv_proj(memory), self.num_heads, parts=2)  # [B, S, 2D]
        return keys, values

    def call(
        self,
        query,
        memory=None,
        attention_mask=None,
        cache=None,
        memory_kv=None,
        training=False,
    ) -> AttentionOutput:
        new_cache = None
        if self.self_attention:
            q, k, v = split_heads(self.qkv_proj(query), self.num_heads, parts=3)  # [B, T, 3D]
            if cache is not None:
                k = tf.concat([cache["keys"], k], axis=2)  # [B, H, t + T, D/H]
                v = tf.concat([cache["values"], v], axis=2)
                new_cache = {"keys": k, "values": v}
        else:
            k, v = memory_kv if memory_kv is not None else self.project_memory(memory)
            # The K query rows of one memory row attend it together, as K*T positions.
            (memory_rows,) = sizes(k, 0, 1)  # B
            q = group_heads(self.q_proj(query), memory_rows, self.num_heads)  # [B, H, K*T, D/H]
        # q, k, v: [B, H, T or K*T or S, D/H]
        one_query = not training and query.shape[1] == 1  # a decoding step
        logits = attention_matmul(q, k, adjoint_b=True, one_query=one_query)  # [B, H, T, S]
        # Softmax in float32 under mixed precision. The 1/sqrt(D/H) scaling is applied to
        # the logits rather than to the (usually larger) queries: T x S against T x D/H.
        logits = tf.cast(logits, tf.float32) * (self.d_model // self.num_heads) ** -0.5
        if attention_mask is not None:
            logits = tf.where(attention_mask, logits, tf.float32.min)
        weights = tf.nn.softmax(logits, axis=-1)
        dropped = self.dropout_layer(tf.cast(weights, v.dtype), training=training)
        context = merge_heads(
            attention_matmul(dropped, v, one_query=one_query), query, self.d_model
        )  # -> [B, T, D]
        return AttentionOutput(self.out_proj(context), new_cache, weights)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            d_model=self.d_model,
            self_attention=self.self_attention,
            dropout=self.dropout,
        )
        return config
