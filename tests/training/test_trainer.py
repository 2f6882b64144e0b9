"""End-to-end training on a tiny copy task: learning, exact resume, retracing, faults."""

import os

import numpy as np
import tensorflow as tf

from t2t_lite.training.trainer import train
from tests.train_helpers import checkpoint_weights, copy_task_config


def logged_scalars(log_dir: str, tag: str) -> dict[int, float]:
    values = {}
    for name in sorted(os.listdir(log_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_loss_falls_on_copy_task(tmp_path):
    cfg = copy_task_config(tmp_path, "train.steps=200", "train.log_every=10")
    result = train(cfg, str(tmp_path / "model"))
    assert (result.step, result.stop_reason) == (200, "steps")
    losses = logged_scalars(str(tmp_path / "model" / "logs" / "train"), "loss")
    assert sorted(losses) == list(range(10, 201, 10))
    assert losses[200] < 0.5 * losses[10], losses


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path):
    # Dropout on, so the dropout RNG state must be restored too.
    common = ["model.dropout=0.1", "train.save_every=1000"]
    straight = copy_task_config(tmp_path / "a", "train.steps=40", *common)
    train(straight, str(tmp_path / "a" / "model"))
    first = copy_task_config(tmp_path / "b", "train.steps=20", *common)
    assert train(first, str(tmp_path / "b" / "model")).step == 20
    second = copy_task_config(tmp_path / "b", "train.steps=40", *common)  # allowed change
    assert train(second, str(tmp_path / "b" / "model")).step == 40
    expected = checkpoint_weights(str(tmp_path / "a" / "model"))
    actual = checkpoint_weights(str(tmp_path / "b" / "model"))
    for e, a in zip(expected, actual, strict=True):
        np.testing.assert_allclose(a, e, atol=1e-5)
