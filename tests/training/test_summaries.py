"""TensorBoard, started on a trained model directory, serves the training summaries."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np

from t2t_lite.training.checkpoints import read_best
from t2t_lite.training.trainer import train
from tests.train_helpers import copy_task_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_tensorboard_serves_scalars_text_and_images(tmp_path):
    cfg = copy_task_config(
        tmp_path,
        "train.steps=10",
        "train.log_every=5",
        "train.eval_every=5",
        "train.eval_sentences=5",
    )
    model_dir = str(tmp_path / "model")
    result = train(cfg, model_dir)
    assert result.best_bleu is not None

    port = free_port()
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    proc = subprocess.Popen(
        [
            tensorboard,
            "--logdir",
            model_dir,
            "--host",
            "127.0.0.1",
            f"--port={port}",
            "--load_fast=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/data/plugin"
    try:
        deadline, tags = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            try:
                tags = get_json(f"{base}/scalars/tags")
                if "logs/valid" in tags and "logs/train" in tags:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert {"loss", "learning_rate", "grad_norm", "tokens_per_sec"} <= set(tags["logs/train"])
        assert {"loss", "bleu"} <= set(tags["logs/valid"])
        points = get_json(f"{base}/scalars/scalars?run=logs/train&tag=loss")
        assert [p[1] for p in points] == [5, 10]
        # The learning rate of each logged step is the schedule's value at that step.
        points = get_json(f"{base}/scalars/scalars?run=logs/train&tag=learning_rate")
        assert [p[1] for p in points] == [5, 10]
        scale, d_model, warmup = cfg.train.learning_rate, cfg.model.d_model, cfg.train.warmup_steps
        for _, step, value in points:
            expected = scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
            np.testing.assert_allclose(value, expected, rtol=1e-6)
        # Two evaluations; best.json names the first step with the highest logged BLEU.
        bleu = {p[1]: p[2] for p in get_json(f"{base}/scalars/scalars?run=logs/valid&tag=bleu")}
        loss = {p[1]: p[2] for p in get_json(f"{base}/scalars/scalars?run=logs/valid&tag=loss")}
        assert sorted(bleu) == sorted(loss) == [5, 10]
        best = read_best(model_dir)
        assert best["step"] == min(s for s in bleu if bleu[s] == max(bleu.values())), bleu
        np.testing.assert_allclose(best["bleu"], bleu[best["step"]], rtol=1e-6)
        np.testing.assert_allclose(best["valid_loss"], loss[best["step"]], rtol=1e-6)
        np.testing.assert_allclose(result.best_bleu, best["bleu"], rtol=1e-6)
        assert {"samples"} <= set(get_json(f"{base}/text/tags")["logs/valid"])
        assert {"config"} <= set(get_json(f"{base}/text/tags")["logs/train"])
        assert "attention" in get_json(f"{base}/images/tags")["logs/valid"]
    finally:
        proc.kill()
        proc.wait(timeout=10)
