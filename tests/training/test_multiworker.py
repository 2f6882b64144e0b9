"""Two CPU workers on loopback (scripts/train_multiworker.sh) train like one process.

Every step's global batch is the whole (tiny) training set: one length bucket and a token
budget larger than the data, so however the pairs are sharded over the workers, the
workers' batches together hold the same pairs as the single process's batch, and the loss
of each step must agree. Then both workers resume from the chief's checkpoint.
"""

import glob
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from t2t_lite.constants import BEST, BEST_JSON, CHECKPOINTS, LOGS
from t2t_lite.training import workers
from t2t_lite.training.workers import KEEP_WORKER_TMP, agreed_precision, write_dir
from tests.helpers import CONFIGS, REPO
from tests.train_helpers import write_copy_task

STEPS = 5
TIMEOUT = 75  # seconds, for the whole multi-worker run


def overrides(data: dict[str, str]) -> list[str]:
    return [f"--set=data.{key}={path}" for key, path in data.items()] + [
        f"--set=train.{setting}"
        for setting in (
            f"steps={STEPS}",
            "log_every=1",
            "save_every=1000",
            "eval_every=0",
            "average_last=0",
            "bucket_width=1000",
            "batch_tokens=100000",
            "shuffle_buffer=0",
        )
    ]


def logged_losses(log_dir: str) -> dict[int, float]:
    """The `loss` scalars of the event files in `log_dir`, by step."""
    losses = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "loss":
                    losses[event.step] = float(tf.make_ndarray(value.tensor))
    return losses


def checkpoint_values(prefix: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(prefix)
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def output(process: subprocess.Popen, deadline: float) -> str:
    """The process's output once it has exited; killed if it is still running at `deadline`."""
    try:
        return process.communicate(timeout=max(deadline - time.monotonic(), 1))[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0] + "\n[killed: still running at the test's deadline]"


def tail(path: str, chars: int = 3000) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()[-chars:]


def run_workers(env: dict[str, str], logs: str, flags: list[str]) -> None:
    """Two workers of scripts/train_multiworker.sh with `flags`; asserts both succeed."""
    script = os.path.join(REPO, "scripts", "train_multiworker.sh")
    workers = subprocess.Popen(
        ["bash", script, f"--timeout={TIMEOUT}", "--grace=30", f"--log_dir={logs}", "2", *flags],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # The script stops its workers after TIMEOUT seconds (SIGKILL at most 10 s later).
    workers_out = output(workers, time.monotonic() + TIMEOUT + 15)
    worker_logs = "".join(
        f"\n--- {path} (end)\n{tail(path)}"
        for path in sorted(glob.glob(os.path.join(logs, "worker-*.log")))
    )
    assert workers.returncode == 0, workers_out + worker_logs
    assert "all 2 workers finished" in workers_out


def assert_same_values(chief_prefix: str, other_dir: str) -> None:
    """The latest checkpoint in `other_dir` holds the same values as `chief_prefix`."""
    chief, other = (
        checkpoint_values(p) for p in (chief_prefix, tf.train.latest_checkpoint(other_dir))
    )
    assert chief.keys() == other.keys()
    for key, value in chief.items():
        np.testing.assert_array_equal(other[key], value, err_msg=key)


def test_two_workers_train_like_one_process_and_resume(tmp_path):
    data = write_copy_task(tmp_path, n_train=64)
    common = [f"--config={os.path.join(CONFIGS, 'tiny.yaml')}"] + overrides(data)
    model_dir, worker_tmp = str(tmp_path / "mw"), str(tmp_path / "tmp")
    os.makedirs(worker_tmp)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(
        CUDA_VISIBLE_DEVICES="-1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHON=sys.executable,
        T2T_TRAIN=f"{sys.executable} -m t2t_lite.cli.train",
        TMPDIR=worker_tmp,  # where the non-chief worker saves its checkpoints
        **{KEEP_WORKER_TMP: "1"},  # and keeps them, to compare them with the chief's
    )
    # Meanwhile the reference: one process, one replica, the same global batches.
    single = subprocess.Popen(
        [sys.executable, "-m", "t2t_lite.cli.train", f"--model_dir={tmp_path / 'single'}"] + common,
        cwd=REPO,
        env={k: v for k, v in env.items() if k != "TMPDIR"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run_workers(env, str(tmp_path / "logs"), [*common, f"--model_dir={model_dir}"])
    single_out = output(single, time.monotonic() + 15)
    assert single.returncode == 0, single_out[-3000:]

    # Exactly one checkpoint series in the model directory, written by the chief.
    chief_prefix = os.path.join(model_dir, CHECKPOINTS, f"ckpt-{STEPS}")
    state = tf.train.get_checkpoint_state(os.path.join(model_dir, CHECKPOINTS))
    assert list(state.all_model_checkpoint_paths) == [chief_prefix]
    indexes = glob.glob(os.path.join(model_dir, "**", "*.index"), recursive=True)
    assert indexes == [chief_prefix + ".index"], indexes
    assert len(os.listdir(os.path.join(model_dir, LOGS, "train"))) == 1  # chief's summaries only

    # The non-chief saved the same weights (and optimizer state) under its $TMPDIR.
    (first_tmp,) = glob.glob(f"{worker_tmp}/t2t_worker-*")
    assert_same_values(chief_prefix, os.path.join(first_tmp, CHECKPOINTS))

    # The global batch, not the number of workers, determines the loss.
    multi = logged_losses(os.path.join(model_dir, LOGS, "train"))
    reference = logged_losses(str(tmp_path / "single" / LOGS / "train"))
    assert sorted(multi) == sorted(reference) == list(range(1, STEPS + 1))
    np.testing.assert_allclose(
        [multi[s] for s in sorted(multi)], [reference[s] for s in sorted(reference)], rtol=1e-4
    )

    # Both workers resume from the chief's checkpoint and validate; only the chief writes
    # the best checkpoint and best.json into the model directory.
    more = [f"--set=train.steps={STEPS + 1}", f"--set=train.eval_every={STEPS + 1}"]
    logs = str(tmp_path / "logs2")
    run_workers(env, logs, [*common, *more, f"--model_dir={model_dir}"])
    for i in range(2):
        with open(f"{logs}/worker-{i}.log", encoding="utf-8") as f:
            assert f"Resumed from {chief_prefix} at step {STEPS}" in f.read()
    prefix = os.path.join(model_dir, CHECKPOINTS, f"ckpt-{STEPS + 1}")
    assert tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINTS)) == prefix
    assert os.path.isfile(os.path.join(model_dir, BEST_JSON))
    (second_tmp,) = set(glob.glob(f"{worker_tmp}/t2t_worker-*")) - {first_tmp}
    assert sorted(os.listdir(second_tmp)) == [BEST, CHECKPOINTS]  # no best.json
    assert_same_values(prefix, os.path.join(second_tmp, CHECKPOINTS))
    best_prefix = tf.train.latest_checkpoint(os.path.join(model_dir, BEST))
    assert_same_values(best_prefix, os.path.join(second_tmp, BEST))


def test_non_chief_write_dir_is_removed_unless_kept(tmp_path, monkeypatch):
    with write_dir("runs/m", chief=True) as path:
        assert path == "runs/m"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(KEEP_WORKER_TMP, raising=False)
    with write_dir("runs/m", chief=False) as removed:
        assert os.path.dirname(removed) == str(tmp_path)
        open(os.path.join(removed, "ckpt-1.index"), "w").close()
    assert not os.path.exists(removed)
    monkeypatch.setenv(KEEP_WORKER_TMP, "1")
    with write_dir("runs/m", chief=False) as kept:
        pass
    assert os.path.isdir(kept)


def test_workers_that_resolve_auto_differently_train_in_float32(monkeypatch):
    strategy = tf.distribute.get_strategy()
    for policy in ("none", "bfloat16", "float16"):
        assert agreed_precision(strategy, policy) == policy  # one replica: its own choice
    # Two workers near the bfloat16 threshold, one measuring each way.
    monkeypatch.setattr(workers, "gathered", lambda strategy, value: np.array([1, 0, 1]))
    warnings = []
    monkeypatch.setattr(workers.logging, "warning", lambda msg, *a: warnings.append(msg % a))
    assert agreed_precision(strategy, "bfloat16") == "none"
    assert warnings == [
        "mixed precision: float32: the workers resolved train.mixed_precision=auto to bfloat16 "
        "and float32; float32 is the precision all of them run natively"
    ]
