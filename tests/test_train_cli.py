"""t2t-train: user errors give one clear line and exit status 2, without a traceback."""

import os
import subprocess
import sys

from t2t_lite.trainer import train
from tests.helpers import CONFIGS, REPO
from tests.train_helpers import copy_task_config, write_copy_task


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "t2t_lite.train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_set_key_is_rejected(tmp_path):
    proc = run_cli(
        f"--config={CONFIGS}/tiny.yaml", f"--model_dir={tmp_path}/m", "--set=train.stepz=5"
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
        f"--config={CONFIGS}/tiny.yaml",
        f"--model_dir={model_dir}",
        *data,
        "--set=model.d_model=64",
        "--set=train.eval_every=0",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "t2t-train: error: the configuration differs" in proc.stderr
    assert "model.d_model: 32 -> 64" in proc.stderr
    assert "--overwrite_config" in proc.stderr
    assert "Traceback" not in proc.stderr
