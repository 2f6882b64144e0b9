"""Training faults and guards: retracing, NaN loss, early failure, changed configs."""

import os

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.config import ConfigError
from t2t_lite.constants import CHECKPOINTS, CONFIG_FILE, EOS_ID
from t2t_lite.model_dir import read_config
from t2t_lite.training.train_state import TrainState
from t2t_lite.training.trainer import train
from t2t_lite.vocab import build_vocabularies
from tests.helpers import made_up_sentences
from tests.train_helpers import checkpoint_weights, copy_task_config


def test_bucketed_shapes_trace_the_step_at_most_twice(tmp_path):
    cfg = copy_task_config(tmp_path)
    texts = made_up_sentences(200)
    src_vocab, tgt_vocab = build_vocabularies(cfg, str(tmp_path / "model"), texts, texts)
    state = TrainState(cfg, src_vocab, tgt_vocab, tf.distribute.get_strategy())
    rng = np.random.default_rng(0)
    shapes = [(4, 5, 6), (8, 3, 9), (2, 12, 7), (5, 7, 7), (3, 9, 4), (6, 4, 11)]
    for batch_size, src_len, tgt_len in shapes:
        batch = {
            "source": rng.integers(4, 50, (batch_size, src_len)).astype(np.int32),
            "target_in": rng.integers(4, 50, (batch_size, tgt_len)).astype(np.int32),
            "target_out": rng.integers(4, 50, (batch_size, tgt_len)).astype(np.int32),
        }
        batch["source"][:, -1] = batch["target_out"][:, -1] = EOS_ID
        stats = state.train_step([{k: tf.constant(v) for k, v in batch.items()}])
        assert stats.target_tokens == batch_size * tgt_len
        # Pieces only: one EOS per row left out on each side.
        assert stats.tokens == batch_size * (src_len - 1 + tgt_len - 1)
    assert 1 <= state.traces <= 2


def test_nan_loss_stops_with_error_and_keeps_last_checkpoint(tmp_path):
    # Learning rate 1e-3 for 10 steps, then 1e27: the weights blow up right after step 10.
    # (YAML reads 1e30 as a string; 1.0e+30 is a float.)
    cfg = copy_task_config(
        tmp_path,
        "train.steps=30",
        "train.save_every=10",
        "train.schedule=warmup_step",
        "train.learning_rate=0.001",
        "train.warmup_steps=0",
        "train.boundaries=[10]",
        "train.factors=[1.0e+30]",
    )
    model_dir = str(tmp_path / "model")
    with pytest.raises(FloatingPointError, match=r"step 1[1-9]: .*ckpt-10.* is intact"):
        train(cfg, model_dir)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINTS))
    assert latest.endswith("ckpt-10")
    assert all(np.isfinite(w).all() for w in checkpoint_weights(model_dir))


def test_failure_before_first_checkpoint_leaves_no_model_dir(tmp_path):
    cfg = copy_task_config(tmp_path, "train.learning_rate=1.0e+30", "train.warmup_steps=1")
    with pytest.raises(FloatingPointError, match="step "):
        train(cfg, str(tmp_path / "model"))
    assert not os.path.exists(tmp_path / "model")


def test_changed_config_is_refused_unless_overwritten(tmp_path):
    model_dir = str(tmp_path / "model")
    train(copy_task_config(tmp_path, "train.steps=2"), model_dir)
    changed = copy_task_config(tmp_path, "train.steps=4", "train.label_smoothing=0.2")
    with pytest.raises(ConfigError, match=r"train.label_smoothing: 0.1 -> 0.2") as error:
        train(changed, model_dir)
    assert "train.steps" not in str(error.value)  # may change freely
    result = train(changed, model_dir, overwrite_config=True)
    assert result.step == 4
    assert read_config(model_dir).train.label_smoothing == 0.2
    assert os.path.isfile(os.path.join(model_dir, CONFIG_FILE))
