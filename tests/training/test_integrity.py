"""A model directory survives faults: kills, damaged checkpoints, two trainers, a full disk.

Faults are injected into `t2t-train` processes at chosen points (a step, a checkpoint save,
the averaging), either by the process itself (a script that wraps a function of t2t_lite or
TensorFlow and kills itself there) or by the test (SIGKILL once the process reports that it
waits there). Every interrupted run must resume to the weights of an uninterrupted one.
"""

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.config import load_config
from t2t_lite.constants import AVERAGED, BEST, BEST_JSON, CHECKPOINTS, CORRUPT, LOCK_FILE
from t2t_lite.model_dir import (
    CorruptCheckpointError,
    ModelDirError,
    build_model,
    checkpoint_prefixes,
    find_checkpoint,
    load_model,
    read_config,
    verify_checkpoint,
)
from t2t_lite.training.checkpoints import BestCheckpoint
from t2t_lite.training.lock import ModelDirInUse, model_dir_lock
from t2t_lite.training.trainer import train
from t2t_lite.training.write_errors import WriteError, reporting_write_errors
from t2t_lite.vocab import load_vocabularies
from tests.helpers import CONFIGS, REPO, run_cli
from tests.train_helpers import copy_task_config, write_copy_task

SETTINGS = ("train.steps=30", "train.save_every=10", "train.average_last=3", "model.dropout=0.1")
ENV = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2")
TIMEOUT = 120  # seconds, a bound for a stuck subprocess

# Runs `train(load_config(CONFIG), MODEL_DIR)` and stops at the COUNT-th call of a function
# WHERE ("step": TrainState.train_step; "save": the merge that completes a checkpoint save, so
# its temporary shard is written and the checkpoint not): HOW "kill" kills itself (SIGKILL),
# "wait" prints a line and waits to be killed.
FAULT_SCRIPT = """
import os, signal, sys, time
from absl import logging
from tensorflow.python.ops import gen_io_ops
from t2t_lite.config import load_config
from t2t_lite.training.train_state import TrainState
from t2t_lite.training.trainer import train
from t2t_lite.training.write_errors import WriteError, reporting_write_errors

config, model_dir, where, count, how = sys.argv[1:]
logging.set_verbosity(logging.INFO)
calls = 0


def stopping(original):
    def wrapped(*args, **kwargs):
        global calls
        calls += 1
        if calls == int(count):
            print(f"stopped in {where} {calls}", flush=True)
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(600)
        return original(*args, **kwargs)

    return wrapped


if where == "step":
    TrainState.train_step = stopping(TrainState.train_step)
else:
    gen_io_ops.merge_v2_checkpoints = stopping(gen_io_ops.merge_v2_checkpoints)
train(load_config(config), model_dir)
"""


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """`(model_dir, cfg, config_file)` of a run without interruption: checkpoints 10, 20
    and 30, averaged/ckpt-30, and best/ckpt-20 with best.json."""
    root = tmp_path_factory.mktemp("straight")
    cfg = copy_task_config(root, *SETTINGS)
    config_file = str(root / "config.yaml")
    with open(config_file, "w", encoding="utf-8") as f:
        f.write(cfg.to_yaml())
    model_dir = str(root / "model")
    train(cfg, model_dir)
    model = build_model(cfg, *load_vocabularies(model_dir))
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=model, step=step)
    checkpoint.read(os.path.join(model_dir, CHECKPOINTS, "ckpt-20")).expect_partial()
    BestCheckpoint(model_dir, checkpoint).update(step=20, bleu=10.0, valid_loss=1.0)
    return model_dir, cfg, config_file


def copy_of(model_dir: str, tmp_path) -> str:
    target = str(tmp_path / "model")
    shutil.copytree(model_dir, target)
    return target


def damage(prefix: str, how: str) -> None:
    """Truncates the data file of a checkpoint to half ("truncated") or to nothing ("zero
    data"), or empties its index ("empty")."""
    if how == "empty":
        os.truncate(prefix + ".index", 0)
    else:
        path = prefix + ".data-00000-of-00001"
        os.truncate(path, os.path.getsize(path) // 2 if how == "truncated" else 0)


def weights(model_dir: str, folder: str) -> list[np.ndarray]:
    """The model weights of the newest checkpoint of `<model_dir>/<folder>`."""
    model = build_model(read_config(model_dir), *load_vocabularies(model_dir))
    prefix = checkpoint_prefixes(os.path.join(model_dir, folder))[-1]
    tf.train.Checkpoint(model=model).read(prefix).expect_partial().assert_existing_objects_matched()
    return [v.numpy() for v in model.trainable_variables]


def assert_same_weights(model_dir: str, expected_dir: str) -> None:
    """The latest and averaged checkpoints of both directories hold the same model weights."""
    for folder in (CHECKPOINTS, AVERAGED):
        expected, actual = weights(expected_dir, folder), weights(model_dir, folder)
        for e, a in zip(expected, actual, strict=True):
            np.testing.assert_allclose(a, e, atol=1e-5, err_msg=folder)


def leftovers(model_dir: str) -> list[str]:
    """Temporary files and directories anywhere in `model_dir`."""
    return [
        os.path.join(root, name)
        for root, dirs, files in os.walk(model_dir)
        for name in dirs + files
        if name.endswith("_temp") or ".tmp" in name or ".tempstate" in name
    ]


def read(path) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_unreadable_newest_checkpoints_are_moved_aside_and_training_resumes(
    straight, tmp_path, caplog
):
    expected_dir, cfg, _ = straight
    model_dir = copy_of(expected_dir, tmp_path)
    damaged = ((CHECKPOINTS, 30, "truncated"), (BEST, 20, "empty"), (AVERAGED, 30, "zero data"))
    for folder, step, how in damaged:
        damage(os.path.join(model_dir, folder, f"ckpt-{step}"), how)

    assert train(cfg, model_dir).step == 30

    logged = warnings(caplog)
    for folder, step, how in damaged:
        prefix = os.path.join(model_dir, folder, f"ckpt-{step}")
        aside = os.path.join(model_dir, folder, CORRUPT, f"ckpt-{step}")
        assert f"checkpoint {prefix} is {'unread' if how == 'empty' else 'truncated'}" in logged
        assert f"moved it to {aside}" in logged
        moved = [f"ckpt-{step}.{ext}" for ext in ("index", "data-00000-of-00001")]
        moved += [BEST_JSON] if folder == BEST else []
        assert sorted(os.listdir(os.path.dirname(aside))) == sorted(moved)
    assert f"using {os.path.join(model_dir, CHECKPOINTS, 'ckpt-20')} instead" in logged
    assert f"no intact checkpoint left in {os.path.join(model_dir, BEST)}" in logged
    # The states list what is there; the resumed run saved step 30 and the average again.
    assert [os.path.basename(p) for p in checkpoint_prefixes(f"{model_dir}/{CHECKPOINTS}")] == [
        "ckpt-10",
        "ckpt-20",
        "ckpt-30",
    ]
    assert checkpoint_prefixes(os.path.join(model_dir, BEST)) == []
    assert not os.path.exists(os.path.join(model_dir, BEST_JSON))
    assert_same_weights(model_dir, expected_dir)


def test_default_choice_skips_unreadable_checkpoints_and_a_named_one_stops(
    straight, tmp_path, caplog
):
    model_dir = copy_of(straight[0], tmp_path)
    averaged, best, latest, previous = (
        os.path.join(model_dir, folder, f"ckpt-{step}")
        for folder, step in ((AVERAGED, 30), (BEST, 20), (CHECKPOINTS, 30), (CHECKPOINTS, 20))
    )
    assert find_checkpoint(model_dir) == averaged
    damage(averaged, "truncated")
    assert find_checkpoint(model_dir) == best
    assert f"checkpoint {averaged} is truncated" in warnings(caplog)
    damage(best, "empty")
    damage(latest, "truncated")
    assert load_model(model_dir)[-1] == previous  # readers move nothing
    assert os.path.isfile(latest + ".index")
    for named, prefix in (("averaged", averaged), ("best", best), (latest, latest)):
        with pytest.raises(CorruptCheckpointError, match=f"checkpoint {prefix} is"):
            load_model(model_dir, named)
    result = run_cli("translate", f"--model_dir={model_dir}", "--checkpoint=best", stdin=b"a\n")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2
    assert lines[-1].startswith(f"t2t-translate: error: checkpoint {best} is unreadable")
    assert "Traceback" not in result.stderr.decode()


def start_fault(config_file: str, model_dir: str, where: str, count: int, how: str, log):
    return subprocess.Popen(
        [sys.executable, "-c", FAULT_SCRIPT, config_file, model_dir, where, str(count), how],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )


def run_fault(config_file: str, model_dir: str, where: str, count: int, log_path) -> str:
    """Runs FAULT_SCRIPT until it kills itself; returns its log."""
    with open(log_path, "w") as log:
        process = start_fault(config_file, model_dir, where, count, "kill", log)
        out = process.communicate(timeout=TIMEOUT)[0]
    text = read(log_path)
    assert process.returncode == -signal.SIGKILL, text[-3000:]
    assert f"stopped in {where} {count}" in out
    return text


def test_runs_killed_at_chosen_points_resume_to_the_weights_of_a_straight_run(
    straight, tmp_path, caplog
):
    expected_dir, cfg, config_file = straight
    model_dir = str(tmp_path / "model")
    checkpoints = os.path.join(model_dir, CHECKPOINTS)
    host = socket.gethostname()

    # 1. Killed by the test during the save of ckpt-20, while a second trainer is refused.
    with open(tmp_path / "1.log", "w") as log:
        first = start_fault(config_file, model_dir, "save", 2, "wait", log)
        watchdog = threading.Timer(TIMEOUT, first.kill)  # bounds the wait for its line
        watchdog.start()
        try:
            line = first.stdout.readline()  # bounded: the script stops or fails
            assert line.startswith("stopped in save 2"), read(tmp_path / "1.log")[-3000:]
            with pytest.raises(ModelDirInUse) as refused:
                train(cfg, model_dir)
        finally:
            first.kill()
            first.wait()
            watchdog.cancel()
    assert str(refused.value).startswith(
        f"model directory {model_dir} is in use by another t2t-train: "
        f"process {first.pid} on host {host} since "
    )
    assert os.path.isdir(os.path.join(checkpoints, "ckpt-20_temp"))

    # 2. Takes over the stale lock, resumes from ckpt-10, kills itself during step 25.
    log = run_fault(config_file, model_dir, "step", 15, tmp_path / "2.log")
    assert f"left by process {first.pid} on host {host}" in log
    assert "Removed what an interrupted save left" in log and "ckpt-20_temp" in log
    assert f"Resumed from {checkpoints}/ckpt-10 at step 10" in log

    # 3. Resumes from ckpt-20, kills itself while saving the average of 10, 20 and 30.
    log = run_fault(config_file, model_dir, "save", 2, tmp_path / "3.log")
    assert f"Resumed from {checkpoints}/ckpt-20 at step 20" in log
    assert os.path.isdir(os.path.join(model_dir, AVERAGED, "ckpt-30_temp"))

    # 4. Here: takes over the lock again, averages, and ends like the straight run.
    assert train(cfg, model_dir).step == 30
    assert "left by process" in warnings(caplog)
    assert leftovers(model_dir) == []
    assert not os.path.exists(os.path.join(model_dir, LOCK_FILE))
    assert_same_weights(model_dir, expected_dir)


def test_lock_refuses_a_second_writer_and_is_released(straight, tmp_path):
    model_dir = copy_of(straight[0], tmp_path)
    with model_dir_lock(model_dir):
        holder = json.loads(read(os.path.join(model_dir, LOCK_FILE)))
        assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(ModelDirInUse, match=f"{model_dir} is in use .* process {os.getpid()}"):
            train(straight[1], model_dir)
        assert load_model(model_dir)[-1].endswith("averaged/ckpt-30")  # reading is allowed
    assert not os.path.exists(os.path.join(model_dir, LOCK_FILE))
    with model_dir_lock(model_dir), model_dir_lock(model_dir, enabled=False):
        pass  # the other workers of a multi-worker run take no lock


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("flock", [True, False])
def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, caplog, monkeypatch, flock):
    if not flock:  # a filesystem without flock: the pid in the lock file decides
        monkeypatch.setattr(fcntl, "flock", _no_flock)
    model_dir = str(tmp_path)
    lock_file = os.path.join(model_dir, LOCK_FILE)
    for pid in (os.getppid(), dead_pid()):  # the first is alive, on this host
        with open(lock_file, "w") as f:
            json.dump({"pid": pid, "host": socket.gethostname()}, f)
        if pid == os.getppid() and not flock:
            with (
                pytest.raises(ModelDirInUse, match=f"process {pid} on host"),
                model_dir_lock(model_dir),
            ):
                pass
            continue
        with model_dir_lock(model_dir):
            pass
        assert f"Took over the lock {lock_file} left by process {pid}" in warnings(caplog)


def _no_flock(fd, operation):
    raise OSError(errno.ENOLCK, "No locks available")


def test_model_dir_that_is_a_file_is_refused_in_one_line(straight, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ModelDirError, match=f"model directory {path} is a file"):
        train(straight[1], str(path))
    assert path.read_text() == "x"


def mount_tmpfs(path: str, size: str) -> bool:
    os.makedirs(path, exist_ok=True)
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True
        )
    except OSError:
        return False
    return result.returncode == 0


def test_full_disk_stops_in_one_line_keeps_the_last_checkpoint_and_resumes(tmp_path):
    disk = str(tmp_path / "disk")
    if not mount_tmpfs(disk, "3m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        # 2 MB of 3 taken: the first checkpoint (0.6 MB, after 0.3 MB of vocabulary and
        # data) fits, the second does not (written before the first is deleted).
        with open(os.path.join(disk, "filler"), "wb") as f:
            f.write(b"\0" * 2_000_000)
        model_dir = os.path.join(disk, "model")
        checkpoints = os.path.join(model_dir, CHECKPOINTS)
        data = [f"data.{k}={v}" for k, v in write_copy_task(tmp_path).items()]
        settings = data + ["train.steps=20", "train.save_every=5", "train.keep_checkpoints=1"]
        settings += ["train.eval_every=0", "train.average_last=0"]
        result = run_cli(
            "train",
            f"--config={CONFIGS}/tiny.yaml",
            f"--model_dir={model_dir}",
            *(f"--set={s}" for s in settings),
        )
        stderr = result.stderr.decode()
        assert result.returncode == 2, stderr[-3000:]
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1] == (
            f"t2t-train: error: cannot write the training checkpoint {checkpoints}/ckpt-10: "
            f"the disk is full ({_free_kb(stderr)} free in {checkpoints}); {checkpoints}/ckpt-5 "
            "is complete and still the latest; the same command resumes from it"
        )
        assert leftovers(model_dir) == []
        assert sorted(os.listdir(checkpoints)) == [
            "checkpoint",
            "ckpt-5.data-00000-of-00001",
            "ckpt-5.index",
        ]
        assert tf.train.latest_checkpoint(checkpoints) == f"{checkpoints}/ckpt-5"
        verify_checkpoint(f"{checkpoints}/ckpt-5")

        os.remove(os.path.join(disk, "filler"))
        result = train(load_config(os.path.join(CONFIGS, "tiny.yaml"), settings), model_dir)
        assert result.step == 20
        assert tf.train.latest_checkpoint(checkpoints) == f"{checkpoints}/ckpt-20"
    finally:
        subprocess.run(["umount", "-l", disk], check=False)


def test_other_failed_writes_are_reported_in_one_line(tmp_path):
    path = str(tmp_path / "vocab.model")
    full = OSError(errno.ENOSPC, "No space left on device", path)
    read_only = OSError(errno.EROFS, "Read-only file system", path)
    denied = PermissionError(errno.EACCES, "Permission denied", path)  # already one line
    for error, expected in (
        (full, f"^cannot write {path}: the disk is full \\(.* free in {tmp_path}\\)$"),
        (read_only, f"^cannot write {path}: Read-only file system$"),
    ):
        with pytest.raises(WriteError, match=expected), reporting_write_errors(str(tmp_path)):
            raise error
    with pytest.raises(PermissionError), reporting_write_errors(str(tmp_path)):
        raise denied


def _free_kb(stderr: str) -> str:
    """The free space quoted in the message (it depends on the filesystem's blocks)."""
    return stderr.rsplit("the disk is full (", 1)[1].split(" free", 1)[0]
