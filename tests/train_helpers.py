"""Tiny copy-task data and configs for the training tests."""

import os

import numpy as np
import tensorflow as tf

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


def copy_task_config(directory, *overrides: str, n_train: int = 200) -> Config:
    """The tiny preset on a copy task written into `directory`, with `overrides` applied."""
    paths = write_copy_task(directory, n_train=n_train)
    data = [f"data.{key}={path}" for key, path in paths.items()]
    quiet = ["train.eval_every=0", "train.log_every=1000", "train.average_last=0"]
    return load_config(os.path.join(CONFIGS, "tiny.yaml"), data + quiet + list(overrides))


def checkpoint_weights(model_dir: str, prefix: str | None = None) -> list[np.ndarray]:
    """The trainable weights of checkpoint `prefix` (default: the latest in
    `<model_dir>/checkpoints`), read into the model of `model_dir`'s config."""
    model, *_ = load_model(model_dir, prefix or "latest")
    return [v.numpy() for v in model.trainable_variables]


def logged_scalars_per_file(log_dir: str, tag: str) -> list[dict[int, float]]:
    """The `tag` scalars of each TensorBoard event file in `log_dir` (one file per run of
    `train`), by step; the files in the order they were created."""
    files = []
    for name in os.listdir(log_dir):
        created, values = None, {}
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
            created = event.wall_time if created is None else created
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
        files.append((created, values))
    return [values for _, values in sorted(files, key=lambda f: f[0])]


def logged_scalars(log_dir: str, tag: str) -> dict[int, float]:
    """The `tag` scalars of all event files in `log_dir`, by step (later files win)."""
    values = {}
    for per_file in logged_scalars_per_file(log_dir, tag):
        values.update(per_file)
    return values
