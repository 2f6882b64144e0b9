"""What the README promises about training, checked through `train(cfg, model_dir)` and the
files it leaves in the model directory: checkpoints kept, averaged and never overwritten, the
best checkpoint, early stopping, signals, cleanup after an early failure, mixed precision and
XLA.

Signals are raised in this process when `train` logs a given progress line, so the update
they arrive before is known exactly.
"""

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import signal

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.config import ConfigError
from t2t_lite.constants import AVERAGED, BEST, CHECKPOINTS, LOGS
from t2t_lite.training.checkpoints import BestCheckpoint, average_checkpoints, read_best
from t2t_lite.training.trainer import train
from tests.train_helpers import checkpoint_weights, copy_task_config, logged_scalars


def checkpoint_files(directory: str) -> dict[str, tuple[bytes, int]]:
    """Every file under `directory`: relative path -> (contents, modification time in ns)."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = (f.read(), os.stat(path).st_mtime_ns)
    return files


def saved_steps(directory: str) -> list[int]:
    """The steps of the `ckpt-N.index` files in `directory`, sorted."""
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(r"ckpt-(\d+)\.index", n)))


class _SignalOnLog(logging.Handler):
    """Raises `signums` in this process, in order, the first time absl logs `pattern`."""

    def __init__(self, pattern: str, signums: tuple[int, ...]):
        super().__init__(logging.INFO)
        self.pattern, self.signums, self.fired = re.compile(pattern), signums, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and self.pattern.search(record.getMessage()):
            self.fired = True
            for signum in self.signums:
                signal.raise_signal(signum)  # its Python handler runs before this returns


@contextlib.contextmanager
def signals_on_log(pattern: str, *signums: int):
    """While entered, the first absl log line matching `pattern` raises `signums`."""
    absl_logger = logging.getLogger("absl")
    handler, level = _SignalOnLog(pattern, signums), absl_logger.level
    absl_logger.setLevel(logging.INFO)
    absl_logger.addHandler(handler)
    try:
        yield handler
    finally:
        absl_logger.removeHandler(handler)
        absl_logger.setLevel(level)


# Checkpoints kept and averaged.


@dataclasses.dataclass
class Resumed:
    """A model directory trained to step 4, then resumed to 6, then run once more."""

    model_dir: str
    after_first: dict[str, tuple[bytes, int]]  # checkpoints/ after the first run
    after_second: dict[str, tuple[bytes, int]]  # checkpoints/ after the second run


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> Resumed:
    """Saving every step, keeping 3 checkpoints, averaging the last 3 of those saved in the
    last 20% of the steps (at step 6: steps 5 and 6); trained 4 steps, then resumed to 6, then
    the same command once more (nothing left to do)."""
    tmp = tmp_path_factory.mktemp("resumed")
    model_dir = str(tmp / "model")
    checkpoints = os.path.join(model_dir, CHECKPOINTS)
    settings = [
        "train.save_every=1",
        "train.keep_checkpoints=3",
        "train.average_last=3",
        "train.average_within=0.2",
    ]
    assert train(copy_task_config(tmp, "train.steps=4", *settings), model_dir).step == 4
    after_first = checkpoint_files(checkpoints)
    resume = copy_task_config(tmp, "train.steps=6", *settings)
    assert train(resume, model_dir).step == 6
    after_second = checkpoint_files(checkpoints)
    assert train(resume, model_dir).step == 6
    return Resumed(model_dir, after_first, after_second)


def test_keep_checkpoints_keeps_the_newest(resumed):
    checkpoints = os.path.join(resumed.model_dir, CHECKPOINTS)
    assert saved_steps(checkpoints) == [4, 5, 6]
    state = tf.train.get_checkpoint_state(checkpoints)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        "ckpt-4",
        "ckpt-5",
        "ckpt-6",
    ]


def test_averaged_is_the_mean_of_the_newest_checkpoints_within_the_window(resumed):
    model_dir = resumed.model_dir
    assert saved_steps(os.path.join(model_dir, AVERAGED)) == [6]
    averaged = checkpoint_weights(model_dir, os.path.join(model_dir, AVERAGED, "ckpt-6"))
    steps = {
        s: checkpoint_weights(model_dir, os.path.join(model_dir, CHECKPOINTS, f"ckpt-{s}"))
        for s in (4, 5, 6)
    }
    for i, actual in enumerate(averaged):
        last_two = (steps[5][i].astype(np.float64) + steps[6][i]) / 2
        np.testing.assert_allclose(actual, last_two, rtol=1e-6, atol=1e-7)
    # Not the latest weights, nor the mean of all three kept checkpoints.
    assert not all(np.allclose(a, w, atol=1e-5) for a, w in zip(averaged, steps[6], strict=True))
    all_three = [(a + b + c) / 3 for a, b, c in zip(steps[4], steps[5], steps[6], strict=True)]
    assert not all(np.allclose(a, m, atol=1e-5) for a, m in zip(averaged, all_three, strict=True))


@pytest.mark.parametrize(
    "n, within, averaged_steps",
    [(2, 1.0, (5, 6)), (3, 1.0, (4, 5, 6)), (3, 0.2, (5, 6)), (3, 0.05, (6,)), (1, 1.0, (6,))],
)
def test_average_checkpoints_takes_the_last_n_within_the_window(
    resumed, tmp_path, n, within, averaged_steps
):
    model_dir = str(tmp_path / "model")
    shutil.copytree(resumed.model_dir, model_dir)
    prefix = average_checkpoints(model_dir, n, within)
    assert prefix == os.path.join(model_dir, AVERAGED, "ckpt-6")
    steps = [
        checkpoint_weights(model_dir, os.path.join(model_dir, CHECKPOINTS, f"ckpt-{s}"))
        for s in averaged_steps
    ]
    for i, actual in enumerate(checkpoint_weights(model_dir, prefix)):
        expected = sum(w[i].astype(np.float64) for w in steps) / len(steps)
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("n, within", [(0, 1.0), (2, 0.0), (2, 1.5)])
def test_average_checkpoints_rejects_a_bad_count_or_window(resumed, n, within):
    with pytest.raises(ValueError):
        average_checkpoints(resumed.model_dir, n, within)


def test_resuming_never_rewrites_a_saved_checkpoint(resumed):
    # ckpt-1..3 of the first run were deleted (keep_checkpoints=3); ckpt-4 was kept as it was.
    kept = {n: c for n, c in resumed.after_first.items() if n.startswith("ckpt-4.")}
    assert len(kept) >= 2  # .index and at least one data shard
    for name, content in kept.items():
        assert resumed.after_second[name] == content, name
    # Running the same command again, with nothing left to do, writes no checkpoint.
    assert checkpoint_files(os.path.join(resumed.model_dir, CHECKPOINTS)) == resumed.after_second


def test_checkpoints_missing_from_the_checkpoint_list_are_not_overwritten(tmp_path):
    model_dir = str(tmp_path / "model")
    checkpoints = os.path.join(model_dir, CHECKPOINTS)
    cfg = copy_task_config(tmp_path, "train.steps=2", "train.save_every=1")
    train(cfg, model_dir)
    os.remove(os.path.join(checkpoints, "checkpoint"))
    before = checkpoint_files(checkpoints)
    with contextlib.suppress(ConfigError):  # refusing to start would keep the promise too
        train(cfg, model_dir)
    after = checkpoint_files(checkpoints)
    for name, content in before.items():
        assert after[name] == content, name


# The best checkpoint and early stopping.


def test_lower_or_equal_bleu_does_not_replace_the_best_checkpoint(tmp_path):
    model_dir = str(tmp_path)
    weight = tf.Variable(1.0)
    checkpoint = tf.train.Checkpoint(weight=weight)

    def best_weight() -> float:
        prefix = tf.train.latest_checkpoint(os.path.join(model_dir, BEST))
        return float(
            tf.train.load_checkpoint(prefix).get_tensor("weight/.ATTRIBUTES/VARIABLE_VALUE")
        )

    best = BestCheckpoint(model_dir, checkpoint)
    assert best.update(step=10, bleu=20.0, valid_loss=1.5)
    for step, bleu in ((20, 15.0), (30, 20.0)):  # lower, then equal
        weight.assign(float(step))
        assert not best.update(step=step, bleu=bleu, valid_loss=1.0)
    assert saved_steps(os.path.join(model_dir, BEST)) == [10]
    assert best_weight() == 1.0
    assert read_best(model_dir) == {"step": 10, "bleu": 20.0, "valid_loss": 1.5}

    # A resumed run reads the best BLEU from best.json: a lower one still does not count.
    resumed = BestCheckpoint(model_dir, checkpoint)
    assert not resumed.update(step=40, bleu=19.9, valid_loss=0.5)
    assert read_best(model_dir)["step"] == 10
    weight.assign(50.0)
    assert resumed.update(step=50, bleu=20.5, valid_loss=0.9)
    assert saved_steps(os.path.join(model_dir, BEST)) == [50]  # the old best is replaced
    assert best_weight() == 50.0
    assert read_best(model_dir) == {"step": 50, "bleu": 20.5, "valid_loss": 0.9}


def test_early_stopping_after_evaluations_without_improvement(tmp_path):
    # Learning rate 0: the weights, hence BLEU, never change, so only the first evaluation
    # (step 2) is an improvement; the ones at steps 4 and 6 are not, and training stops one
    # update after the second of them.
    cfg = copy_task_config(
        tmp_path,
        "train.steps=50",
        "train.learning_rate=0.0",
        "train.eval_every=2",
        "train.eval_sentences=2",
        "train.early_stopping=2",
    )
    model_dir = str(tmp_path / "model")
    result = train(cfg, model_dir)
    assert (result.step, result.stop_reason) == (7, "early_stopping")
    assert saved_steps(os.path.join(model_dir, CHECKPOINTS)) == [7]
    assert sorted(logged_scalars(os.path.join(model_dir, LOGS, "valid"), "bleu")) == [2, 4, 6]
    assert read_best(model_dir)["step"] == 2


# Signals.


def test_sigterm_saves_a_checkpoint_after_the_next_update(tmp_path):
    cfg = copy_task_config(tmp_path, "train.steps=100", "train.log_every=1")
    model_dir = str(tmp_path / "model")
    handler_before = signal.getsignal(signal.SIGTERM)
    with signals_on_log(r"^step 3/", signal.SIGTERM) as sent:
        result = train(cfg, model_dir)
    assert sent.fired
    assert (result.step, result.stop_reason) == (4, "SIGTERM")
    assert saved_steps(os.path.join(model_dir, CHECKPOINTS)) == [4]
    assert sorted(logged_scalars(os.path.join(model_dir, LOGS, "train"), "loss")) == [1, 2, 3, 4]
    assert signal.getsignal(signal.SIGTERM) is handler_before  # restored on return


def test_second_sigint_aborts_at_once_without_saving(tmp_path):
    cfg = copy_task_config(tmp_path, "train.steps=100", "train.log_every=1")
    with (
        signals_on_log(r"^step 2/", signal.SIGINT, signal.SIGINT) as sent,
        pytest.raises(KeyboardInterrupt),
    ):
        train(cfg, str(tmp_path / "model"))
    assert sent.fired
    # No checkpoint was saved, so the fresh run's directory is removed as after any failure
    # before the first checkpoint.
    assert not os.path.exists(tmp_path / "model")


# Cleanup after an early failure.


def test_early_failure_in_an_existing_directory_removes_only_what_it_created(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "notes.txt").write_text("the user's\n")
    cfg = copy_task_config(tmp_path, "train.learning_rate=1.0e+30", "train.warmup_steps=1")
    with pytest.raises(FloatingPointError, match=r"step \d+: .*\(none\) is intact"):
        train(cfg, str(model_dir))
    assert os.listdir(model_dir) == ["notes.txt"]
    assert (model_dir / "notes.txt").read_text() == "the user's\n"


# Mixed precision and XLA.


@pytest.mark.parametrize(
    "setting, loss_scaled",
    [
        ("train.mixed_precision=float16", True),
        ("train.mixed_precision=bfloat16", False),
        ("train.jit_compile=true", False),
    ],
)
def test_mixed_precision_and_xla_train(tmp_path, setting, loss_scaled):
    # Every batch is the whole training set: one shape, so XLA compiles the step once.
    whole = ["train.bucket_width=1000", "train.batch_tokens=100000", "train.shuffle_buffer=0"]
    cfg = copy_task_config(tmp_path, "train.steps=3", "train.log_every=1", *whole, setting)
    model_dir = str(tmp_path / "model")
    result = train(cfg, model_dir)
    assert result.step == 3
    losses = logged_scalars(os.path.join(model_dir, LOGS, "train"), "loss")
    assert sorted(losses) == [1, 2, 3]
    assert all(np.isfinite(loss) for loss in losses.values()), losses
    assert np.isfinite(result.loss)
    reader = tf.train.load_checkpoint(result.checkpoint)
    keys = reader.get_variable_to_shape_map()
    # Weights stay float32 under mixed precision.
    for key, dtype in reader.get_variable_to_dtype_map().items():
        if key.startswith("model/"):
            assert dtype == tf.float32, (key, dtype)
    loss_scale = [k for k in keys if "dynamic_scale" in k]
    if loss_scaled:
        assert loss_scale, sorted(keys)  # the loss-scale optimizer's scale is saved
        assert reader.get_tensor(loss_scale[0]) > 1
    else:
        assert not loss_scale, loss_scale
