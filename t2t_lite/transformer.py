"""The Transformer encoder-decoder model."""

from typing import NamedTuple

import keras
import tensorflow as tf

from t2t_lite.layers import Decoder, DecoderOutput, Dense, Encoder, TokenEmbedding, masks
from t2t_lite.layers.dense import dense_2d


class OutputLayer(NamedTuple):
    """The output projection `logits = outputs @ W + bias`: the weights and the formula that
    inference (`logits`, through `Transformer.project`) and training
    (`losses.projected_nll`) share.

    Attributes:
        kernel: `[V, D]` when `vocab_major` (an embedding table tied to the output, used
            transposed), else `[D, V]`; float32 (cast to the outputs' dtype for the matmuls),
            or already in that dtype after `for_steps`.
        bias: `[V]`, float32 (the kernel's dtype after `for_steps`).
        vocab_major: the layout of `kernel`.
    """

    kernel: tf.Tensor
    bias: tf.Tensor
    vocab_major: bool

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """Decoder outputs `[..., D]` -> float32 logits `[..., V]`.

        Matmul and bias add run in the dtype of `x` (bfloat16 under mixed precision), as in
        `projected_nll`, and fuse into one op (`dense_2d`).
        """
        logits = dense_2d(x, self.kernel, self.bias, transpose_kernel=self.vocab_major)
        return tf.cast(logits, tf.float32)

    def for_steps(self, dtype: tf.DType) -> "OutputLayer":
        """The same projection with a `[D, V]` kernel and bias in `dtype`, made once before a
        decoding loop: its steps multiply without a transposed operand (oneDNN's matmul is
        faster without) and without casting the weights at every step."""
        kernel = tf.transpose(self.kernel) if self.vocab_major else self.kernel  # -> [D, V]
        return OutputLayer(tf.cast(kernel, dtype), tf.cast(self.bias, dtype), vocab_major=False)


@keras.saving.register_keras_serializable(package="t2t_lite")
class Transformer(keras.Model):
    """Encoder-decoder Transformer for translation; padding id 0.

    Built from the `model:` section of a preset:
    `Transformer(source_vocab_size=V_s, target_vocab_size=V_t, **config.model)`.

    Args:
        source_vocab_size: V_s.
        target_vocab_size: V_t (must equal V_s when sharing embeddings).
        num_encoder_layers: encoder depth.
        num_decoder_layers: decoder depth.
        d_model: D.
        num_heads: H.
        d_ff: feed-forward inner width.
        dropout: residual and embedding dropout.
        attention_dropout: dropout on attention probabilities.
        ffn_dropout: dropout after the feed-forward ReLU.
        norm: "pre" or "post" layer normalization.
        share_embeddings: one matrix for source embeddings, target embeddings and the output
            projection (needs one shared vocabulary).
        tie_output: with separate embeddings, tie the target embeddings to the output
            projection; otherwise the output projection is its own `[D, V_t]` matrix.
        max_length: the longest source/target (in pieces) the model is meant for; inputs are
            cut to it by the data pipeline and the translator, not here.
        source_eos: sources end with EOS (added by the data pipeline and the translator).
        **kwargs: passed to `keras.Model`.

    Entry points: the encoder and decoder are shared; the output projection is one
    `OutputLayer` (`output_layer()`), read by both sides.
    - Training (`TrainState`, for the training and the validation loss) calls
      `decode_outputs` and passes the decoder outputs with `output_layer()` to
      `losses.cross_entropy`, which projects only the non-padding positions and
      differentiates projection and loss together (`losses.projected_nll`).
    - Inference calls `step_fn` (cached step-by-step decoding: beam search, the translator,
      the SavedModel export) or the model itself (a full teacher-forced pass: attention
      heatmaps, tests); both project with `output_layer().logits` (`step_fn` with the
      weights `OutputLayer.for_steps` prepares once per search).

    Call arguments:
        inputs: `(source_ids [B, S], target_input_ids [B, T])`, int, 0 = padding. The target
            input starts with BOS.
        training: dropout on or off.
        return_attention: also return the last decoder layer's attention over the source.

    Alignment attention: the attention of the last decoder layer over the source, averaged
    over its heads, is what the model offers as word alignment (`step_fn(...,
    attention=True)`, `t2t-translate --alignments`): the row of target piece j is the
    attention of the step that chose it, and its argmax over the source pieces is j's
    aligned source piece.

    Returns:
        Logits `[B, T, V_t]`, float32; with `return_attention`, `(logits, attention)`,
        attention `[B, H, T, S]` float32.

    Example:
        >>> model = Transformer(100, 100, num_encoder_layers=1, num_decoder_layers=1,
        ...                     d_model=16, num_heads=2, d_ff=32)
        >>> model((tf.constant([[5, 6, 3]]), tf.constant([[2, 7]]))).shape
        TensorShape([1, 2, 100])

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        num_encoder_layers=6,
        num_decoder_layers=6,
        d_model=512,
        num_heads=8,
        d_ff=2048,
        dropout=0.1,
        attention_dropout=0.1,
        ffn_dropout=0.1,
        norm="pre",
        share_embeddings=True,
        tie_output=True,
        max_length=256,
        source_eos=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if share_embeddings and source_vocab_size != target_vocab_size:
            raise ValueError(
                "share_embeddings=True needs one vocabulary, got source_vocab_size="
                f"{source_vocab_size} and target_vocab_size={target_vocab_size}"
            )
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.ffn_dropout = ffn_dropout
        self.norm = norm
        self.share_embeddings = share_embeddings
        self.tie_output = tie_output
        self.max_length = max_length
        self.source_eos = source_eos

        policy = self.dtype_policy
        tied = share_embeddings or tie_output
        self.target_embedding = TokenEmbedding(
            target_vocab_size, d_model, output_bias=tied, name="target_embedding", dtype=policy
        )
        if share_embeddings:
            self.source_embedding = self.target_embedding
        else:
            self.source_embedding = TokenEmbedding(
                source_vocab_size, d_model, name="source_embedding", dtype=policy
            )
        self.output_projection = (
            None if tied else Dense(target_vocab_size, name="output", dtype=policy)
        )
        block = dict(
            d_model=d_model,
            num_heads=num_heads,
            d_ff=d_ff,
            dropout=dropout,
            attention_dropout=attention_dropout,
            ffn_dropout=ffn_dropout,
            norm=norm,
            dtype=policy,
        )
        self.encoder = Encoder(num_encoder_layers, name="encoder", **block)
        self.decoder = Decoder(num_decoder_layers, name="decoder", **block)

    def build(self, input_shape=None):
        shape = [None, None, self.d_model]
        for embedding in (self.source_embedding, self.target_embedding):
            if not embedding.built:
                embedding.build()
        if self.output_projection is not None:
            self.output_projection.build(shape)
        self.encoder.build(shape)
        self.decoder.build(shape)
        self.built = True

    def encode(self, source_ids, training=False):
        """Source ids `[B, S]` -> `(memory [B, S, D], memory_mask bool [B, 1, 1, S])`."""
        memory_mask = masks.padding_mask(source_ids)
        memory = self.encoder(
            self.source_embedding(source_ids), attention_mask=memory_mask, training=training
        )
        return memory, memory_mask

    def output_layer(self) -> OutputLayer:
        """The output projection's weights: the tied target embeddings `[V_t, D]` and their
        bias, or the separate `[D, V_t]` matrix and bias."""
        if self.output_projection is None:  # tied: logits = x @ E^T + b, E is [V, D]
            embedding = self.target_embedding
            return OutputLayer(embedding.embeddings, embedding.bias, vocab_major=True)
        dense = self.output_projection
        return OutputLayer(dense.kernel, dense.bias, vocab_major=False)

    def project(self, x):
        """Decoder outputs `[..., D]` -> float32 logits `[..., V_t]` (inference)."""
        return self.output_layer().logits(x)

    def decode_outputs(self, inputs, training=False) -> DecoderOutput:
        """`(source_ids [B, S], target_input_ids [B, T])` -> the decoder's `DecoderOutput`:
        outputs `[B, T, D]` before the output projection (training projects only the
        non-padding positions) and the last layer's attention `[B, H, T, S]`."""
        source_ids, target_ids = inputs
        memory, memory_mask = self.encode(source_ids, training=training)
        return self.decoder(
            self.target_embedding(target_ids),
            memory=memory,
            self_mask=masks.decoder_self_mask(target_ids),
            memory_mask=memory_mask,
            training=training,
        )

    def call(self, inputs, training=False, return_attention=False):
        """See the class docstring."""
        decoded = self.decode_outputs(inputs, training)
        logits = self.project(decoded.outputs)
        return (logits, decoded.attention) if return_attention else logits

    def step_fn(self, source_ids, attention=False):
        """Prepares cached step-by-step decoding of a batch of sources.

        The encoder runs once, and every decoder layer's memory keys/values are computed
        once, one row per sentence: the `memory` the search carries beside the cache (see
        `t2t_lite.inference.beam_search`), never reordered with the beams. The K rows of a
        sentence's beams attend its memory row together. Only the self-attention cache has
        one row per beam (`B` rows at first, tiled by the search). The feed-forward and output
        weights are prepared once too (`Decoder.ffn_kernels`, `OutputLayer.for_steps`), not at
        every step.

        Args:
            source_ids: int `[B, S]`.
            attention: `step` also returns the alignment attention (see the class
                docstring) of the fed position, `[B*K, S]` float32.

        Returns:
            `(step, cache, memory)`: `step(ids [B*K], position, cache, memory) -> (logits
            [B*K, V], cache)` (with `attention`: `(logits, cache, attention [B*K, S])`) feeds
            the last token at position `position` (0 for BOS); `cache` is the initial, empty
            self-attention cache, and `memory` holds the memory keys/values (per layer,
            `[B, H, S, D/H]`) and the source mask `[B, 1, 1, S]`.
        """
        encoded, memory_mask = self.encode(source_ids)
        memory = {"kv": self.decoder.project_memory(encoded), "mask": memory_mask}
        cache = self.decoder.initial_cache(tf.shape(source_ids)[0], dtype=self.compute_dtype)
        # Once, outside the search's loop.
        ffn_kernels = self.decoder.ffn_kernels()
        output_layer = self.output_layer().for_steps(self.compute_dtype)

        def step(ids, position, cache, memory):
            x = self.target_embedding(tf.expand_dims(ids, 1))  # [B*K] -> [B*K, 1, D]
            decoded = self.decoder(
                x,
                memory_mask=memory["mask"],
                cache=cache,
                memory_kv=memory["kv"],
                ffn_kernels=ffn_kernels,
                offset=position,
            )
            logits = output_layer.logits(decoded.outputs)[:, 0, :]  # [B*K, 1, V] -> [B*K, V]
            if attention:
                # [B, H, K, S] (the K beams of a sentence attend its memory row together)
                heads_mean = tf.reduce_mean(decoded.attention, axis=1)  # -> [B, K, S]
                source_length = tf.shape(decoded.attention)[-1]
                return logits, decoded.cache, tf.reshape(heads_mean, [-1, source_length])
            return logits, decoded.cache

        return step, cache, memory

    def get_config(self):
        config = super().get_config()
        config.update(
            source_vocab_size=self.source_vocab_size,
            target_vocab_size=self.target_vocab_size,
            num_encoder_layers=self.num_encoder_layers,
            num_decoder_layers=self.num_decoder_layers,
            d_model=self.d_model,
            num_heads=self.num_heads,
            d_ff=self.d_ff,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            ffn_dropout=self.ffn_dropout,
            norm=self.norm,
            share_embeddings=self.share_embeddings,
            tie_output=self.tie_output,
            max_length=self.max_length,
            source_eos=self.source_eos,
        )
        return config
