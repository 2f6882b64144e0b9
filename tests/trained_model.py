"""A tiny model trained in seconds to upper-case made-up sentences, so that its translations
are realistic (they end with EOS, a near-tie is rare) and engines can be compared on them."""

import os

import keras
import numpy as np
import tensorflow as tf

from t2t_lite.config import Config, load_config
from t2t_lite.constants import BOS_ID, CHECKPOINTS, CONFIG_FILE, EOS_ID, PAD_ID
from t2t_lite.model_dir import build_model
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import build_vocabularies
from tests.helpers import CONFIGS, made_up_sentences


def copy_batch(source_ids, target_ids, source_eos):
    """`(source [B, S], target_in [B, T], target_out [B, T])`, 0-padded, as the data pipeline."""
    eos = [EOS_ID] * source_eos
    s = max(map(len, source_ids)) + len(eos)
    t = max(map(len, target_ids)) + 1
    source, target_in, target_out = (np.zeros([len(source_ids), n], np.int32) for n in (s, t, t))
    for i, (x, y) in enumerate(zip(source_ids, target_ids, strict=True)):
        source[i, : len(x) + len(eos)] = [*x, *eos]
        target_in[i, : len(y) + 1] = [BOS_ID, *y]
        target_out[i, : len(y) + 1] = [*y, EOS_ID]
    return source, target_in, target_out


def train(model, source, target_in, target_out, steps=200, batch_size=32):
    """A few Adam steps of plain cross-entropy, so translations are realistic and end in EOS."""
    optimizer = keras.optimizers.Adam(3e-3)

    @tf.function
    def train_step(src, tgt_in, tgt_out):
        with tf.GradientTape() as tape:
            logits = model((src, tgt_in), training=True)  # [B, T, V]
            weights = tf.cast(tgt_out != PAD_ID, tf.float32)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tgt_out, logits)
            loss = tf.reduce_sum(losses * weights) / tf.reduce_sum(weights)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    rng = np.random.default_rng(0)
    for _ in range(steps):
        rows = rng.choice(len(source), batch_size, replace=False)
        train_step(source[rows], target_in[rows], target_out[rows])


def make_trained_model_dir(path: str, overrides: list[str] | None = None) -> Config:
    """Writes a model directory (config, vocabulary, checkpoint 1) of the tiny preset trained
    on `made_up_sentences(200)` -> upper case; returns its config."""
    keras.utils.set_random_seed(1234)
    cfg = load_config(os.path.join(CONFIGS, "tiny.yaml"), list(overrides or []))
    texts = made_up_sentences(200)
    targets = [text.upper() for text in texts]
    src_vocab, tgt_vocab = build_vocabularies(cfg, path, texts, targets)
    model = build_model(cfg, src_vocab, tgt_vocab)
    batch = copy_batch(src_vocab.encode(texts), tgt_vocab.encode(targets), model.source_eos)
    train(model, *batch)
    with open(os.path.join(path, CONFIG_FILE), "w", encoding="utf-8") as f:
        f.write(cfg.to_yaml())
    save_checkpoint(model, path, 1)
    return cfg


def save_checkpoint(model: Transformer, path: str, number: int) -> str:
    """Saves `model` as `checkpoints/ckpt-<number>` of model directory `path`; the prefix."""
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), os.path.join(path, CHECKPOINTS), max_to_keep=5
    )
    return manager.save(checkpoint_number=number)
