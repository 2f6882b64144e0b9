"""Tiny copy-task data and configs for the training tests."""

import os

import numpy as np

from t2t_lite.config import Config, load_config
from t2t_lite.model_dir import load_model
from tests.helpers import CONFIGS, made_up_sentences


def write_copy_task(directory, n_train: int = 200, n_valid: int = 20) -> dict[str, str]:
    """Writes train/valid files where the target is a copy of the source; returns the paths."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for split, n, seed in (("train", n_train, 1), ("valid", n_valid, 2)):
        lines = made_up_sentences(n, seed=seed)
        for side in ("src", "tgt"):
            path = os.path.join(directory, f"{split}.{side}")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            paths[f"{split}_{side}"] = path
    return paths


def copy_task_config(directory, *overrides: str) -> Config:
    """The tiny preset on a copy task written into `directory`, with `overrides` applied."""
    paths = write_copy_task(directory)
    data = [f"data.{key}={path}" for key, path in paths.items()]
    quiet = ["train.eval_every=0", "train.log_every=1000", "train.average_last=0"]
    return load_config(os.path.join(CONFIGS, "tiny.yaml"), data + quiet + list(overrides))


def checkpoint_weights(model_dir: str) -> list[np.ndarray]:
    """The trainable weights of the latest checkpoint in `<model_dir>/checkpoints`."""
    model, *_ = load_model(model_dir, "latest")
    return [v.numpy() for v in model.trainable_variables]
