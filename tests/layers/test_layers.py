import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.layers import (
    AttentionOutput,
    Decoder,
    DecoderLayer,
    DecoderOutput,
    Dense,
    Dropout,
    Encoder,
    EncoderLayer,
    FeedForward,
    LayerNormalization,
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    masks,
)
from t2t_lite.layers.attention import attention_matmul
from t2t_lite.layers.feed_forward import HIDDEN_PADDING, hidden_width
from t2t_lite.layers.positional import sinusoids
from tests.helpers import run_serialization_test

X = tf.random.stateless_normal([2, 5, 8], seed=[1, 2])
MEMORY = tf.random.stateless_normal([2, 7, 8], seed=[3, 4])
BLOCK = dict(d_model=8, num_heads=2, d_ff=16, dropout=0.1, attention_dropout=0.1, ffn_dropout=0.1)
# Three different rates, so a config that swaps or drops one does not round-trip.
DISTINCT = dict(BLOCK, dropout=0.1, attention_dropout=0.2, ffn_dropout=0.3)


def test_padding_mask_true_means_may_attend():
    mask = masks.padding_mask(tf.constant([[5, 6, 0], [7, 0, 0]]))
    assert mask.shape == [2, 1, 1, 3] and mask.dtype == tf.bool
    np.testing.assert_array_equal(mask[:, 0, 0].numpy(), [[1, 1, 0], [1, 0, 0]])


def test_causal_mask_is_lower_triangular():
    mask = masks.causal_mask(4)
    assert mask.shape == [1, 1, 4, 4]
    np.testing.assert_array_equal(mask[0, 0].numpy(), np.tril(np.ones([4, 4], bool)))


def test_decoder_self_mask_combines_causal_and_padding():
    mask = masks.decoder_self_mask(tf.constant([[2, 5, 0]]))[0, 0].numpy()
    np.testing.assert_array_equal(mask, [[1, 0, 0], [1, 1, 0], [1, 1, 0]])


def test_positional_encoding_offset_continues_the_sequence():
    layer = SinusoidalPositionalEncoding()
    full = layer(tf.zeros([1, 6, 8]))
    tail = layer(tf.zeros([1, 2, 8]), offset=4)
    np.testing.assert_allclose(full[:, 4:].numpy(), tail.numpy(), atol=1e-6)
    # Position 0: sin(0) = 0 in the first half, cos(0) = 1 in the second.
    np.testing.assert_allclose(full[0, 0].numpy(), [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(
        sinusoids(tf.constant([1.0]), 4)[0].numpy(),
        [np.sin(1), np.sin(1e-4), np.cos(1), np.cos(1e-4)],
        rtol=1e-5,
    )


def test_attention_ignores_masked_keys():
    mha = MultiHeadAttention(num_heads=2, d_model=8, self_attention=False)
    mask = masks.padding_mask(tf.constant([[4, 4, 4, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0, 0]]))
    out = mha(X, memory=MEMORY, attention_mask=mask).outputs
    changed = tf.concat([MEMORY[:, :1], MEMORY[:, 1:] * 0 + 9.0], axis=1)
    changed = tf.where(mask[:, 0, 0, :, tf.newaxis], MEMORY, changed)
    np.testing.assert_allclose(
        out.numpy(), mha(X, memory=changed, attention_mask=mask).outputs.numpy(), atol=1e-6
    )


def test_attention_weights_sum_to_one():
    mha = MultiHeadAttention(num_heads=2, d_model=8)
    weights = mha(X, attention_mask=masks.causal_mask(5)).weights
    assert weights.shape == [2, 2, 5, 5]
    np.testing.assert_allclose(tf.reduce_sum(weights, -1).numpy(), 1.0, atol=1e-6)
    assert np.all(np.triu(weights.numpy()[0, 0], k=1) == 0)


@pytest.mark.parametrize("one_query", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_attention_matmul_kernel_by_query_and_dtype(dtype, one_query):
    """A float32 decoding step runs BatchMatMulV3 (TensorFlow's kernel), everything else
    `tf.linalg.matmul` (BatchMatMulV2); both give the same products."""
    q = tf.cast(tf.random.stateless_normal([3, 2, 4, 8], seed=[7, 8]), dtype)  # [B, H, T, D]
    k = tf.cast(tf.random.stateless_normal([3, 2, 6, 8], seed=[9, 9]), dtype)  # [B, H, S, D]
    graph = tf.function(lambda a, b: attention_matmul(a, b, adjoint_b=True, one_query=one_query))
    ops = {op.type for op in graph.get_concrete_function(q, k).graph.get_operations()}
    v3 = one_query and dtype == "float32"
    assert ("BatchMatMulV3" in ops) == v3 and ("BatchMatMulV2" in ops) != v3
    scores = attention_matmul(q, k, adjoint_b=True, one_query=one_query)
    assert scores.dtype == dtype and scores.shape == [3, 2, 4, 6]
    as_float = [t.numpy().astype(np.float32) for t in (q, k)]
    tolerance = 1e-5 if dtype == "float32" else 0.1
    np.testing.assert_allclose(
        tf.cast(scores, tf.float32),
        np.einsum("bhtd,bhsd->bhts", *as_float),
        rtol=tolerance,
        atol=tolerance,
    )
    context = attention_matmul(scores, k, one_query=one_query)  # [B, H, T, S] x [B, H, S, D]
    np.testing.assert_allclose(
        tf.cast(context, tf.float32),
        np.einsum("bhts,bhsd->bhtd", tf.cast(scores, tf.float32).numpy(), as_float[1]),
        rtol=tolerance,
        atol=tolerance * 10,
    )


@pytest.mark.parametrize("self_attention", [True, False])
def test_only_inference_steps_use_the_small_product_kernel(self_attention):
    """A decoding step's query `[B, 1, D]` in inference: BatchMatMulV3; training, and
    queries of several or unknown positions: BatchMatMulV2."""
    mha = MultiHeadAttention(num_heads=2, d_model=8, self_attention=self_attention)
    memory = None if self_attention else MEMORY
    mha(X, memory=memory)  # builds the layer
    cache = {"keys": tf.zeros([2, 2, 3, 4]), "values": tf.zeros([2, 2, 3, 4])}

    def kernels(query_shape, training, step=False):
        step_cache = cache if step and self_attention else None
        call = tf.function(lambda x: mha(x, memory=memory, cache=step_cache, training=training))
        graph = call.get_concrete_function(tf.TensorSpec(query_shape, tf.float32)).graph
        return {op.type for op in graph.get_operations() if op.type.startswith("BatchMatMul")}

    assert kernels([2, 1, 8], False, step=True) == {"BatchMatMulV3"}
    assert kernels([2, 1, 8], True, step=True) == {"BatchMatMulV2"}
    assert kernels([2, None, 8], False) == {"BatchMatMulV2"}
    assert kernels([2, 5, 8], False) == {"BatchMatMulV2"}


def test_self_attention_cache_grows_one_step_at_a_time():
    mha = MultiHeadAttention(num_heads=2, d_model=8)
    full = mha(X, attention_mask=masks.causal_mask(5)).outputs
    cache = {"keys": tf.zeros([2, 2, 0, 4]), "values": tf.zeros([2, 2, 0, 4])}
    steps = []
    for t in range(5):
        out, cache, _ = mha(X[:, t : t + 1], cache=cache)
        assert cache["keys"].shape == [2, 2, t + 1, 4]
        steps.append(out)
    np.testing.assert_allclose(tf.concat(steps, 1).numpy(), full.numpy(), atol=1e-5)


def test_cross_attention_with_precomputed_memory():
    mha = MultiHeadAttention(num_heads=2, d_model=8, self_attention=False)
    direct = mha(X, memory=MEMORY).outputs
    cached = mha(X, memory_kv=mha.project_memory(MEMORY)).outputs
    np.testing.assert_allclose(direct.numpy(), cached.numpy(), atol=1e-6)


def test_cross_attention_of_grouped_query_rows():
    # K = 3 query rows per memory row (beams), row b*K + k attending memory row b: outputs
    # and probabilities as if each row attended its memory row alone; the probabilities
    # come grouped, [B, H, K*T, S].
    mha = MultiHeadAttention(num_heads=2, d_model=8, self_attention=False)
    queries = tf.random.stateless_normal([6, 1, 8], seed=[5, 6])  # [B*K, T, D]
    mha(queries, memory=tf.tile(MEMORY, [3, 1, 1]))  # builds the layer
    grouped = mha(queries, memory_kv=mha.project_memory(MEMORY))  # MEMORY: [B=2, S=7, D]
    assert grouped.outputs.shape == [6, 1, 8] and grouped.weights.shape == [2, 2, 3, 7]
    for row in range(6):
        alone = mha(queries[row : row + 1], memory=MEMORY[row // 3 : row // 3 + 1])
        np.testing.assert_allclose(grouped.outputs[row], alone.outputs[0], atol=1e-5)
        np.testing.assert_allclose(
            grouped.weights[row // 3, :, row % 3], alone.weights[0, :, 0], atol=1e-6
        )


def test_attention_and_decoder_return_one_structure():
    """Output, cache (None without one) and attention probabilities, whatever the call."""
    mha = MultiHeadAttention(num_heads=2, d_model=8)
    plain = mha(X)
    assert isinstance(plain, AttentionOutput) and plain.cache is None
    assert plain.outputs.shape == [2, 5, 8] and plain.weights.shape == [2, 2, 5, 5]
    cache = {"keys": tf.zeros([2, 2, 3, 4]), "values": tf.zeros([2, 2, 3, 4])}
    cached = mha(X[:, :1], cache=cache)
    assert cached.cache["keys"].shape == [2, 2, 4, 4] and cached.weights.shape == [2, 2, 1, 4]
    cross = MultiHeadAttention(num_heads=2, d_model=8, self_attention=False)
    assert cross(X, memory=MEMORY).cache is None
    decoder = Decoder(2, **BLOCK)
    full = decoder(X, memory=MEMORY)
    assert isinstance(full, DecoderOutput) and full.cache is None
    assert full.outputs.shape == [2, 5, 8] and full.attention.shape == [2, 2, 5, 7]
    np.testing.assert_allclose(tf.reduce_sum(full.attention, -1).numpy(), 1.0, atol=1e-6)
    step = decoder(X[:, :1], memory=MEMORY, cache=decoder.initial_cache(2))
    assert isinstance(step, DecoderOutput) and len(step.cache) == 2
    assert step.cache[1]["keys"].shape == [2, 2, 1, 4] and step.attention.shape == [2, 2, 1, 7]
    layer_step = decoder.blocks[0](X[:, :1], memory=MEMORY, cache=decoder.initial_cache(2)[0])
    assert isinstance(layer_step, DecoderOutput) and layer_step.cache["keys"].shape[2] == 1


@pytest.mark.parametrize(
    "d_ff, dtype, width",
    [
        (1024, "float32", 1024 + HIDDEN_PADDING),
        (2048, "float32", 2048 + HIDDEN_PADDING),
        (1024, "bfloat16", 1024),
        (1000, "float32", 1000),
        (512, "float32", 512),
    ],
)
def test_hidden_width_pads_float32_rows_of_4_kib(d_ff, dtype, width):
    assert hidden_width(d_ff, dtype) == width


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_feed_forward_padding_changes_nothing(policy):
    layer = FeedForward(8, 1024, dtype=policy)
    x = tf.cast(X, layer.compute_dtype)
    with tf.GradientTape(persistent=True) as tape:
        y = layer(x)
        # The same network without padding: [N, 8] x [8, 1024] -> ReLU -> [N, 1024] x [1024, 8].
        flat = tf.reshape(x, [-1, 8])
        w1, b1, w2, b2 = (tf.cast(v, x.dtype) for v in layer.trainable_variables)
        reference = tf.reshape(tf.nn.relu(flat @ w1 + b1) @ w2 + b2, y.shape)
        losses = [tf.reduce_sum(tf.cast(out, tf.float32) ** 2) for out in (y, reference)]
    width = 1024 + HIDDEN_PADDING if policy == "float32" else 1024  # bfloat16 rows: 2 KiB
    assert [k.shape[-1] for k in layer.kernels()[:2]] == [width, width]
    tolerance = 1e-5 if policy == "float32" else 2e-2
    np.testing.assert_allclose(
        y.numpy().astype(np.float32),
        reference.numpy().astype(np.float32),
        atol=tolerance,
        rtol=tolerance,
    )
    grads = [tape.gradient(loss, layer.trainable_variables) for loss in losses]
    for got, want in zip(*grads, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("d_ff", [16, 1024])
@pytest.mark.parametrize("in_graph", [False, True])
def test_feed_forward_dropout_is_dropout_after_the_relu(policy, d_ff, in_graph):
    layer = FeedForward(8, d_ff, dropout=0.3, dtype=policy)
    x = tf.cast(tf.random.stateless_normal([3, 37, 8], seed=[5, 6]), layer.compute_dtype)
    layer(x)
    seeds = layer.dropout_layer.seed_generator.state
    start = seeds.numpy()
    variables = [*layer.trainable_variables]

    def run(reference):
        seeds.assign(start)  # the same mask for both
        with tf.GradientTape() as tape:
            tape.watch(x)
            if reference:  # dropout's multiply after the ReLU, by autodiff
                w1, b1, w2 = (tf.cast(v, x.dtype) for v in layer.kernels())  # padded
                hidden = tf.nn.relu(tf.reshape(x, [-1, 8]) @ w1 + b1)
                hidden = layer.dropout_layer(hidden, training=True)
                y = tf.reshape(hidden @ w2 + tf.cast(layer.outer.bias, x.dtype), x.shape)
            else:
                y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.range(37.0)[:, None])
        return [y, *tape.gradient(loss, [x, *variables])]

    if in_graph:
        run = tf.function(run)
    got, want = run(False), run(True)
    assert not np.allclose(got[0].numpy(), layer(x).numpy(), rtol=0.1)  # it does drop
    tolerance = 1e-5 if policy == "float32" else 3e-2
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        a, b = (t.numpy().astype(np.float32) for t in (a, b))
        np.testing.assert_allclose(a, b, atol=tolerance * np.abs(b).max(), rtol=tolerance)


def test_feed_forward_with_lora_computes_with_the_lora_kernel():
    layer = FeedForward(8, 16)
    layer(X)
    assert layer.inner.plain and layer.outer.plain
    layer.inner.enable_lora(2)
    assert not layer.inner.plain
    layer.inner.lora_kernel_b.assign(tf.ones_like(layer.inner.lora_kernel_b))
    flat = tf.reshape(X, [-1, 8])
    hidden = tf.nn.relu(flat @ layer.inner.kernel + layer.inner.bias)  # kernel with LoRA added
    expected = tf.reshape(hidden @ layer.outer.kernel + layer.outer.bias, X.shape)
    np.testing.assert_allclose(layer(X).numpy(), expected.numpy(), atol=1e-5)


def test_attention_rejects_indivisible_width():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(num_heads=3, d_model=8)


def test_block_rejects_unknown_norm():
    with pytest.raises(ValueError, match='"pre" or "post"'):
        EncoderLayer(d_model=8, num_heads=2, d_ff=16, norm="sandwich")


@pytest.mark.parametrize(
    "layer, inputs, kwargs",
    [
        (SinusoidalPositionalEncoding(), (X,), {"offset": 2}),
        (Dropout(0.3, seed=4), (X,), {}),
        (Dense(6, activation="relu"), (X,), {}),
        (LayerNormalization(epsilon=1e-6), (X,), {}),
        (MultiHeadAttention(2, 8, dropout=0.1), (X,), {"attention_mask": masks.causal_mask(5)}),
        (MultiHeadAttention(2, 8, self_attention=False), (X,), {"memory": MEMORY}),
        (FeedForward(8, 16, dropout=0.2), (X,), {}),
        (TokenEmbedding(11, 8, output_bias=True), (tf.constant([[1, 2, 0]]),), {}),
        (EncoderLayer(**DISTINCT, norm="post"), (X,), {}),
        (DecoderLayer(**DISTINCT), (X,), {"memory": MEMORY}),
        (Encoder(2, **DISTINCT), (X,), {}),
        (Decoder(2, **DISTINCT, norm="post"), (X,), {"memory": MEMORY}),
    ],
    ids=lambda v: type(v).__name__ if hasattr(v, "get_config") else "",
)
def test_layer_config_round_trip(layer, inputs, kwargs):
    run_serialization_test(layer, *inputs, **kwargs)


@pytest.mark.parametrize(
    "rate, bits, probability", [(0.1, 8, 26 / 256), (0.3, 8, 77 / 256), (0.01, 16, 655 / 65536)]
)
def test_dropout_rate_scale_and_seeds(rate, bits, probability):
    layer = Dropout(rate, seed=7, dtype="mixed_bfloat16")
    assert (layer.bits, layer.drop_probability) == (bits, probability)
    x = tf.ones([301, 257], tf.bfloat16)  # odd width: the last 32-bit word is partly used
    assert layer(x) is x and layer(x, training=False) is x
    y = layer(x, training=True)
    assert y.dtype == tf.bfloat16 and y.shape == x.shape
    dropped = float(tf.reduce_mean(tf.cast(tf.equal(y, 0), tf.float32)))
    assert abs(dropped - probability) < 0.005  # 77k draws: 5 sd is about 0.005
    kept = tf.boolean_mask(y, tf.not_equal(y, 0))
    np.testing.assert_allclose(kept.numpy().astype(np.float32), 1 / (1 - probability), rtol=1e-2)
    for width in (256, 258):  # whole words per row; rows of 4-byte words split across rows
        even = layer(tf.ones([301, width], tf.bfloat16), training=True)
        dropped = float(tf.reduce_mean(tf.cast(tf.equal(even, 0), tf.float32)))
        assert abs(dropped - probability) < 0.005
    # A new mask every call; the same masks again from the same seed.
    y2 = layer(x, training=True)
    assert not np.array_equal(y.numpy(), y2.numpy())
    again = Dropout(rate, seed=7, dtype="mixed_bfloat16")
    np.testing.assert_array_equal(again(x, training=True).numpy(), y.numpy())
    # Gradient: the mask times the scale.
    with tf.GradientTape() as tape:
        x32 = tf.ones([4, 6])
        tape.watch(x32)
        out = Dropout(rate, seed=3)(x32, training=True)
    np.testing.assert_allclose(tape.gradient(out, x32).numpy(), out.numpy())


def test_dropout_rejects_bad_rate():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_dense_and_layer_norm_match_keras(policy):
    """Same outputs and gradients (input and weights) as the Keras layers they replace."""
    x = tf.random.stateless_normal([3, 5, 8], seed=[5, 6]) * 3 + 1
    pairs = [
        (Dense(6, activation="relu", dtype=policy), keras.layers.Dense(6, "relu", dtype=policy)),
        (
            LayerNormalization(epsilon=1e-6, dtype=policy),
            keras.layers.LayerNormalization(epsilon=1e-6, dtype=policy),
        ),
    ]
    tolerance = 1e-5 if policy == "float32" else 2e-2
    for ours, theirs in pairs:
        ours.build(x.shape)
        theirs.build(x.shape)
        weights = [w + 0.1 * (i + 1) for i, w in enumerate(theirs.get_weights())]
        ours.set_weights(weights)
        theirs.set_weights(weights)
        upstream = tf.random.stateless_normal(
            [3, 5, ours.compute_output_shape(x.shape)[-1]], [7, 8]
        )
        results = []
        for layer in (ours, theirs):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(tf.cast(x, layer.compute_dtype))
                total = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
            grads = tape.gradient(total, [x, *layer.trainable_weights])
            results.append([y, *grads])
        assert results[0][0].dtype == results[1][0].dtype
        for mine, keras_value in zip(*results, strict=True):
            np.testing.assert_allclose(
                tf.cast(mine, tf.float32).numpy(),
                tf.cast(keras_value, tf.float32).numpy(),
                rtol=tolerance,
                atol=tolerance,
            )


def test_layer_norm_inference_path_is_the_training_path_forward():
    """`training=False` skips the gradient wrapper; the output is the same, bit for bit."""
    x = tf.random.stateless_normal([3, 5, 8], seed=[9, 10]) * 3 + 1
    norm = LayerNormalization(epsilon=1e-6)
    norm.build(x.shape)
    norm.set_weights([w + 0.1 * (i + 1) for i, w in enumerate(norm.get_weights())])
    np.testing.assert_array_equal(norm(x, training=False).numpy(), norm(x, training=True).numpy())
