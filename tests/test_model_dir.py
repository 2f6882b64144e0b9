"""Reading a model directory: checkpoint choices, clear errors for what does not fit."""

import os
import shutil

import pytest
import tensorflow as tf

from t2t_lite.config import ConfigError
from t2t_lite.model_dir import ModelDirError, find_checkpoint, load_model
from tests.helpers import make_model_dir


def test_find_checkpoint_choices(tmp_path):
    model_dir = make_model_dir(str(tmp_path))
    assert find_checkpoint(model_dir).endswith("checkpoints/ckpt-1")
    with pytest.raises(FileNotFoundError, match="best not found"):
        find_checkpoint(model_dir, "best")
    model, *_ = load_model(model_dir)
    checkpoint = tf.train.Checkpoint(model=model)
    for folder, step in (("averaged", 1), ("best", 1), ("checkpoints", 2)):
        tf.train.CheckpointManager(checkpoint, os.path.join(model_dir, folder), 3).save(step)
    # The average is older than the latest training checkpoint: the default skips it.
    assert find_checkpoint(model_dir).endswith("best/ckpt-1")
    assert find_checkpoint(model_dir, "averaged").endswith("averaged/ckpt-1")
    assert find_checkpoint(model_dir, "latest").endswith("checkpoints/ckpt-2")
    tf.train.CheckpointManager(checkpoint, os.path.join(model_dir, "averaged"), 3).save(2)
    assert find_checkpoint(model_dir).endswith("averaged/ckpt-2")


def test_incompatible_model_dir_is_explained(tmp_path):
    model_dir = make_model_dir(str(tmp_path / "model"))
    config = os.path.join(model_dir, "config.yaml")
    with open(config, encoding="utf-8") as f:
        saved = f.read()

    with open(config, "w", encoding="utf-8") as f:
        f.write(saved.replace("model:\n", "model:\n  rotary: true\n"))
    with pytest.raises(ConfigError, match=r"unknown key model.rotary.*incompatible version"):
        load_model(model_dir)

    with open(config, "w", encoding="utf-8") as f:
        f.write(saved.replace("num_encoder_layers: 2", "num_encoder_layers: 3"))
    with pytest.raises(
        ModelDirError,
        match=r"ckpt-1 does not fit the model built from config.yaml: it lacks 12 variables "
        r"of the model \(encoder/layer_2/.*incompatible version of t2t_lite",
    ):
        load_model(model_dir)

    with open(config, "w", encoding="utf-8") as f:
        f.write(saved)
    other = make_model_dir(str(tmp_path / "other"), overrides=["vocab.size=120"])
    shutil.copy(os.path.join(other, "vocab.model"), os.path.join(model_dir, "vocab.model"))
    with pytest.raises(
        ModelDirError,
        match=r"vocabulary .*model/vocab.model has 120 pieces but checkpoint .*ckpt-1 has "
        r"source embeddings for 100",
    ):
        load_model(model_dir)


def test_model_dir_that_is_a_file_is_named(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ConfigError, match=f"{path} is a file, not a model directory"):
        load_model(str(path))
