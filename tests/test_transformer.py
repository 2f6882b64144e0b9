import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_lite import Transformer
from t2t_lite.config import load_config
from t2t_lite.inference.beam_search import tile_beam
from tests.helpers import CONFIGS, run_serialization_test

V = 50


def tiny(norm="pre", share_embeddings=True, **overrides):
    cfg = load_config(os.path.join(CONFIGS, "tiny.yaml"))
    section = dict(vars(cfg.model), norm=norm, share_embeddings=share_embeddings, **overrides)
    return Transformer(source_vocab_size=V, target_vocab_size=V, **section)


def random_ids(shape, seed):
    return tf.random.stateless_uniform(shape, seed=[seed, 0], minval=4, maxval=V, dtype=tf.int32)


SRC = random_ids([3, 7], 1)
TGT = random_ids([3, 6], 2)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_causality(norm):
    model = tiny(norm)
    logits = model((SRC, TGT))
    assert logits.shape == [3, 6, V] and logits.dtype == tf.float32
    for t in range(1, 6):
        changed = tf.concat([TGT[:, :t], random_ids([3, 6 - t], 10 + t)], axis=1)
        np.testing.assert_allclose(
            model((SRC, changed))[:, :t].numpy(), logits[:, :t].numpy(), atol=1e-5
        )
        assert not np.allclose(model((SRC, changed))[:, t:].numpy(), logits[:, t:].numpy())


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_padding_invariance(norm):
    model = tiny(norm, share_embeddings=False)
    logits = model((SRC, TGT)).numpy()
    padded_src = tf.pad(SRC, [[0, 0], [0, 4]])
    padded_tgt = tf.pad(TGT, [[0, 0], [0, 3]])
    np.testing.assert_allclose(model((padded_src, TGT)).numpy(), logits, atol=1e-5)
    np.testing.assert_allclose(model((SRC, padded_tgt))[:, :6].numpy(), logits, atol=1e-5)
    # Ragged batch: a shorter sentence padded in a batch equals the same sentence alone.
    short = tf.concat([SRC[:1, :4], tf.zeros([1, 3], tf.int32)], axis=1)
    alone = model((SRC[:1, :4], TGT[:1])).numpy()
    np.testing.assert_allclose(model((short, TGT[:1])).numpy(), alone, atol=1e-5)


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("beam", [1, 2])
@pytest.mark.parametrize("d_ff", [32, 1024])  # 1024: hidden rows padded (`hidden_width`)
def test_cached_steps_equal_full_forward(norm, beam, d_ff):
    model = tiny(norm, share_embeddings=False, tie_output=False, d_ff=d_ff)
    full = model((SRC, TGT)).numpy()
    step, cache, memory = model.step_fn(SRC)
    cache = tile_beam(cache, beam)  # K rows per sentence attend its one memory row
    for t in range(TGT.shape[1]):
        ids = tf.repeat(TGT[:, t], beam)  # [B] -> [B*K]
        logits, cache = step(ids, tf.constant(t), cache, memory)
        np.testing.assert_allclose(logits.numpy()[::beam], full[:, t], atol=1e-4)
        np.testing.assert_allclose(logits.numpy()[beam - 1 :: beam], full[:, t], atol=1e-4)
    assert cache[0]["keys"].shape[2] == TGT.shape[1]


def test_cached_steps_inside_tf_function():
    model = tiny()
    full = model((SRC, TGT)).numpy()

    @tf.function
    def run(src, tgt):
        step, cache, memory = model.step_fn(src)
        out = []
        for t in range(6):
            logits, cache = step(tgt[:, t], tf.constant(t), cache, memory)
            out.append(logits)
        return tf.stack(out, axis=1)

    np.testing.assert_allclose(run(SRC, TGT).numpy(), full, atol=1e-4)


def count(model):
    model.build()
    return model.count_params()


def test_base_has_about_63m_parameters():
    cfg = load_config(os.path.join(CONFIGS, "base.yaml"))
    n = count(Transformer(37000, 37000, **vars(cfg.model)))
    assert 62.5e6 < n < 63.5e6, n  # Vaswani et al. report 65M


def test_big_has_about_213m_parameters():
    cfg = load_config(os.path.join(CONFIGS, "big.yaml"))
    n = count(Transformer(37000, 37000, **vars(cfg.model)))
    assert 212e6 < n < 215e6, n


def test_separate_embeddings_add_parameters():
    shared, separate = count(tiny()), count(tiny(share_embeddings=False, tie_output=False))
    d = 32
    assert separate - shared == V * d + d * V  # a source table and an output matrix


def test_shared_embeddings_need_one_vocabulary():
    with pytest.raises(ValueError, match="one vocabulary"):
        Transformer(10, 12, share_embeddings=True)


def test_model_config_round_trip():
    model = tiny(norm="post", share_embeddings=False)
    run_serialization_test(model, (SRC, TGT))


def test_saved_and_restored_model_gives_identical_outputs(tmp_path):
    model = tiny()
    expected = model((SRC, TGT)).numpy()
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored((SRC, TGT)).numpy(), expected)
    # The training checkpoint format restores to the same outputs as well.
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh = tiny()
    fresh.build()
    tf.train.Checkpoint(model=fresh).restore(prefix).assert_existing_objects_matched()
    np.testing.assert_array_equal(fresh((SRC, TGT)).numpy(), expected)


def test_one_training_step_lowers_the_loss():
    model = tiny(dropout=0.0)
    optimizer = keras.optimizers.Adam(1e-2)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    target_out = random_ids([3, 6], 5)

    def loss():
        return loss_fn(target_out, model((SRC, TGT), training=True))

    before = float(loss())
    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, model.trainable_variables)
    assert all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    assert float(loss()) < before


def test_attention_weights_returned():
    logits, attention = tiny()((SRC, TGT), return_attention=True)
    assert attention.shape == [3, 4, 6, 7]
    np.testing.assert_allclose(tf.reduce_sum(attention, -1).numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_forward_attention_and_steps(policy):
    """Every cached step equals the full pass, and both stay within 2% of the logits' scale
    (attention: 0.02) of the float32 model with the same weights."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        model = tiny()
        model.build()
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    reference = tiny()
    reference.build()
    reference.set_weights(model.get_weights())
    logits, attention = model((SRC, TGT), return_attention=True)
    assert logits.dtype == tf.float32 and logits.shape == [3, 6, V]
    assert attention.shape == [3, 4, 6, 7]
    exact_logits, exact_attention = reference((SRC, TGT), return_attention=True)
    exact_logits = exact_logits.numpy()
    tolerance = 2e-2 * np.abs(exact_logits).max()
    np.testing.assert_allclose(logits.numpy(), exact_logits, atol=tolerance)
    np.testing.assert_allclose(attention.numpy(), exact_attention.numpy(), atol=2e-2)
    step, cache, memory = model.step_fn(SRC)
    for t in range(TGT.shape[1]):
        step_logits, cache = step(TGT[:, t], tf.constant(t), cache, memory)
        assert step_logits.dtype == tf.float32
        np.testing.assert_allclose(step_logits.numpy(), logits[:, t].numpy(), atol=2e-2)
        np.testing.assert_allclose(step_logits.numpy(), exact_logits[:, t], atol=tolerance)
    assert cache[0]["keys"].shape[2] == TGT.shape[1]
