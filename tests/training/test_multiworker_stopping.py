"""Two CPU workers on loopback stop together: a time limit passed on one worker stops both
after the same update (a signal is the same kind of vote, see t2t_lite.training.stopping),
and workers that do not share the model directory refuse to start (see test_multiworker for
how the workers are launched)."""

import os
import re
import subprocess
import sys
import time

from t2t_lite.config import load_config
from t2t_lite.constants import CHECKPOINTS, CONFIG_FILE
from tests.helpers import CONFIGS, REPO
from tests.train_helpers import write_copy_task
from tests.training.test_multiworker import TIMEOUT, output, overrides, tail

# Runs as each worker's command: worker 1 also gets the flags in $WORKER1_FLAGS.
WRAPPER = """#!/usr/bin/env bash
extra=()
if [[ "$TF_CONFIG" == *'"index": 1}'* ]]; then read -r -a extra <<<"$WORKER1_FLAGS"; fi
exec "$PYTHON" -m t2t_lite.cli.train "$@" "${extra[@]}"
"""


def start_workers(tmp_path, flags: list[str], worker1_flags: str = "") -> subprocess.Popen:
    """Two workers of scripts/train_multiworker.sh on the copy task; logs in tmp_path/logs."""
    wrapper = tmp_path / "worker.sh"
    wrapper.write_text(WRAPPER)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(
        CUDA_VISIBLE_DEVICES="-1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=REPO,
        PYTHON=sys.executable,
        T2T_TRAIN=f"bash {wrapper}",
        WORKER1_FLAGS=worker1_flags,
    )
    script = os.path.join(REPO, "scripts", "train_multiworker.sh")
    log_dir = f"--log_dir={tmp_path / 'logs'}"
    return subprocess.Popen(
        ["bash", script, f"--timeout={TIMEOUT}", "--grace=30", log_dir, "2", *flags],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def worker_logs(tmp_path) -> list[str]:
    """The two workers' logs so far ("" before a worker has started)."""
    paths = [tmp_path / "logs" / f"worker-{i}.log" for i in range(2)]
    return [tail(str(path), 100_000) if path.exists() else "" for path in paths]


def finish(tmp_path, workers: subprocess.Popen) -> tuple[int, str, list[str]]:
    """The script's exit status and output, and the two workers' logs."""
    out = output(workers, time.monotonic() + TIMEOUT + 15)
    return workers.returncode, out, worker_logs(tmp_path)


def stop_lines(logs: list[str]) -> list[list[str]]:
    """Each log's "Training stopped at step N (reason)" lines."""
    return [re.findall(r"Training stopped at step \d+ \(\w+\)", log) for log in logs]


def common_flags(tmp_path) -> list[str]:
    data = write_copy_task(tmp_path, n_train=64)
    return [f"--config={os.path.join(CONFIGS, 'tiny.yaml')}", *overrides(data)]


def test_a_time_limit_on_one_worker_stops_both_after_the_same_update(tmp_path):
    model_dir = str(tmp_path / "mw")
    flags = [*common_flags(tmp_path), "--set=train.steps=1000", f"--model_dir={model_dir}"]
    # Only worker 1 has a time limit, passed after its first update: its vote rides on
    # update 2, after which both workers stop.
    workers = start_workers(tmp_path, flags, "--set=train.max_minutes=1.0e-9")
    status, out, logs = finish(tmp_path, workers)
    assert status == 0, out + "".join(logs)
    expected = ["Training stopped at step 2 (max_minutes)"]
    assert stop_lines(logs) == [expected, expected], "".join(logs)
    prefix = os.path.join(model_dir, CHECKPOINTS, "ckpt-2")
    assert os.path.isfile(prefix + ".index")


def test_workers_that_see_different_model_dirs_refuse_to_start(tmp_path):
    flags = common_flags(tmp_path)
    # Worker 1 finds a model directory that the chief does not see (no shared filesystem).
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    cfg = load_config(flags[0].split("=", 1)[1], [f.removeprefix("--set=") for f in flags[1:]])
    (other_dir / CONFIG_FILE).write_text(cfg.to_yaml())
    model_dir = tmp_path / "mw"
    workers = start_workers(
        tmp_path, [*flags, f"--model_dir={model_dir}"], f"--model_dir={other_dir}"
    )
    status, out, logs = finish(tmp_path, workers)
    assert status == 2, out + "".join(logs)
    message = (
        "t2t-train: error: the workers disagree on whether the model directory is new "
        "(from 0 to 1); they must all see the model directory on a shared filesystem"
    )
    for log in logs:
        assert message in log, log[-3000:]
        assert "Traceback" not in log
    assert not model_dir.exists()  # the chief's fresh directory is removed
    assert os.listdir(other_dir) == [CONFIG_FILE]
