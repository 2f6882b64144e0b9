"""End-to-end training on a tiny copy task: learning, exact resume, retracing, faults."""

import logging
import os

import numpy as np
import sacrebleu

from t2t_lite.training.trainer import train
from tests.helpers import made_up_sentences
from tests.train_helpers import (
    checkpoint_weights,
    copy_task_config,
    logged_scalars,
    logged_scalars_per_file,
)


def test_loss_falls_on_copy_task(tmp_path):
    # 2,000 training sentences: with 200 the model memorizes them instead of learning to copy.
    cfg = copy_task_config(
        tmp_path,
        "train.steps=200",
        "train.log_every=10",
        "train.schedule=warmup_step",
        "train.learning_rate=0.005",
        "train.warmup_steps=20",
        "train.eval_every=200",
        n_train=2000,
    )
    result = train(cfg, str(tmp_path / "model"))
    assert (result.step, result.stop_reason) == (200, "steps")
    losses = logged_scalars(str(tmp_path / "model" / "logs" / "train"), "loss")
    assert sorted(losses) == list(range(10, 201, 10))
    assert losses[200] < 0.5 * losses[10], losses
    # The model copies: greedy validation BLEU against the sources themselves (about 30 at
    # step 200). A model that ignores the source gives every sentence the same output; the
    # best such output among the training sentences scores below 2.
    valid = made_up_sentences(20, seed=2)
    constant = max(
        sacrebleu.corpus_bleu([h] * len(valid), [valid]).score
        for h in made_up_sentences(200, seed=1)
    )
    assert constant < 5
    assert result.best_bleu > 15, result.best_bleu


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    # Dropout on, so the dropout RNG state must be restored too.
    common = ["model.dropout=0.1", "train.save_every=1000", "train.log_every=1"]
    straight = copy_task_config(tmp_path / "a", "train.steps=40", *common)
    train(straight, str(tmp_path / "a" / "model"))
    first = copy_task_config(tmp_path / "b", "train.steps=20", *common)
    assert train(first, str(tmp_path / "b" / "model")).step == 20
    second = copy_task_config(tmp_path / "b", "train.steps=40", *common)  # allowed change
    caplog.clear()
    assert train(second, str(tmp_path / "b" / "model")).step == 40
    # The second call started from ckpt-20, not from scratch with the same seed.
    prefix = os.path.join(tmp_path, "b", "model", "checkpoints", "ckpt-20")
    assert f"Resumed from {prefix} at step 20" in caplog.text
    runs = logged_scalars_per_file(str(tmp_path / "b" / "model" / "logs" / "train"), "loss")
    assert [sorted(run) for run in runs] == [list(range(1, 21)), list(range(21, 41))]
    # Step for step, the resumed run has the losses of the uninterrupted one.
    straight_losses = logged_scalars(str(tmp_path / "a" / "model" / "logs" / "train"), "loss")
    resumed = {**runs[0], **runs[1]}
    np.testing.assert_allclose(
        [resumed[s] for s in range(1, 41)], [straight_losses[s] for s in range(1, 41)], rtol=1e-5
    )
    expected = checkpoint_weights(str(tmp_path / "a" / "model"))
    actual = checkpoint_weights(str(tmp_path / "b" / "model"))
    for e, a in zip(expected, actual, strict=True):
        np.testing.assert_allclose(a, e, atol=1e-5)
