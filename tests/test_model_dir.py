"""Reading a model directory: checkpoint choices."""

import os

import pytest
import tensorflow as tf

from t2t_lite.model_dir import find_checkpoint, load_model
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
