"""t2t-train: user errors give one clear line and exit status 2, without a traceback;
SIGINT saves a checkpoint, exits with status 0, and the same command resumes."""

import os
import queue
import re
import signal
import subprocess
import threading
import time

from t2t_lite.constants import CHECKPOINTS
from t2t_lite.training.trainer import train
from tests.helpers import CLI_ENV, CONFIGS, cli_command, run_cli
from tests.train_helpers import copy_task_config, write_copy_task


def read_lines(stream, lines: queue.Queue) -> None:
    """Puts each line of `stream` into `lines`, then None at the end."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def interrupt_after_progress(args: list[str], deadline: float) -> str:
    """Runs t2t-train, sends SIGINT once it logs a progress line; returns all its output.

    Fails if there is no progress line before `deadline`, or the exit status is not 0.
    """
    process = subprocess.Popen(
        cli_command("train", *args),
        env=CLI_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()  # filled by a thread: waits are bounded
    reader = threading.Thread(target=read_lines, args=(process.stdout, lines))
    reader.start()
    seen = []
    try:
        while not (seen and re.search(r"\] step \d+/", seen[-1])):
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, "t2t-train exited early:\n" + "".join(seen)[-3000:]
            seen.append(line)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=max(deadline - time.monotonic(), 1))
    except (queue.Empty, subprocess.TimeoutExpired):
        raise AssertionError("t2t-train timed out:\n" + "".join(seen)[-3000:]) from None
    finally:
        if process.poll() is None:
            process.kill()
        reader.join()
    while (line := lines.get()) is not None:
        seen.append(line)
    output = "".join(seen)
    assert process.returncode == 0, output[-3000:]
    return output


def test_unknown_set_key_is_rejected(tmp_path):
    proc = run_cli(
        "train",
        f"--config={CONFIGS}/tiny.yaml",
        f"--model_dir={tmp_path}/m",
        "--set=train.stepz=5",
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "t2t-train: error: --set 'train.stepz=5': unknown key train.stepz" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "m")


def test_changed_config_is_refused_with_the_differing_keys(tmp_path):
    model_dir = str(tmp_path / "model")
    train(copy_task_config(tmp_path, "train.steps=1"), model_dir)
    data = [f"--set=data.{k}={v}" for k, v in write_copy_task(tmp_path).items()]
    proc = run_cli(
        "train",
        f"--config={CONFIGS}/tiny.yaml",
        f"--model_dir={model_dir}",
        *data,
        "--set=model.d_model=64",
        "--set=train.eval_every=0",
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "t2t-train: error: the configuration differs" in proc.stderr
    assert "model.d_model: 32 -> 64" in proc.stderr
    assert "--overwrite_config" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sigint_saves_a_checkpoint_and_the_same_command_resumes(tmp_path):
    model_dir = str(tmp_path / "model")
    data = [f"--set=data.{k}={v}" for k, v in write_copy_task(tmp_path).items()]
    settings = ["steps=100000", "log_every=5", "save_every=100000", "eval_every=0"]
    command = [f"--config={CONFIGS}/tiny.yaml", f"--model_dir={model_dir}", *data]
    command += [f"--set=train.{setting}" for setting in settings]
    deadline = time.monotonic() + 90  # a bound for a stuck run; both runs take ~20 s

    first = interrupt_after_progress(command, deadline)
    step = int(re.search(r"Training stopped at step (\d+) \(SIGINT\)", first).group(1))
    prefix = os.path.join(model_dir, CHECKPOINTS, f"ckpt-{step}")
    assert os.path.isfile(prefix + ".index"), first[-3000:]

    second = interrupt_after_progress(command, deadline)
    assert f"Resumed from {prefix} at step {step}" in second, second[-3000:]
    later = int(re.search(r"Training stopped at step (\d+) \(SIGINT\)", second).group(1))
    assert later > step
