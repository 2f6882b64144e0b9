"""Checkpoints of a model directory: the best one by BLEU, averaging, atomic small files.

The layout is the one of `t2t_lite.model_dir`: `checkpoints/` (model, optimizer, step),
`best/` with `best.json`, `averaged/`.

Example:
    >>> prefix = average_checkpoints("runs/m", 5)   # -> "runs/m/averaged/ckpt-3000"
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from t2t_lite.atomic import write_file_atomic
from t2t_lite.constants import AVERAGED, BEST, BEST_JSON, CHECKPOINTS
from t2t_lite.model_dir import checkpoint_step, load_model, read_weights


def read_best(model_dir: str) -> dict | None:
    """`{"step", "bleu", "valid_loss"}` from `best.json`, or None when there is none yet."""
    path = os.path.join(model_dir, BEST_JSON)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class BestCheckpoint:
    """Keeps the model with the highest validation BLEU in `<model_dir>/best`.

    Args:
        model_dir: the model directory; the best BLEU so far is read from its `best.json`.
        checkpoint: a `tf.train.Checkpoint` holding at least the model.
        scratch_dir: on a non-chief worker of a multi-worker run, its temporary directory:
            tf.distribute has it save when the chief saves, so it saves into
            `<scratch_dir>/best` instead, and writes no `best.json`.

    Example:
        >>> best = BestCheckpoint("runs/m", tf.train.Checkpoint(model=model))
        >>> best.update(step=1000, bleu=21.3, valid_loss=2.1)   # True: new best saved
    """

    def __init__(
        self, model_dir: str, checkpoint: tf.train.Checkpoint, scratch_dir: str | None = None
    ):
        self._model_dir = model_dir
        self._write_json = scratch_dir is None
        self._manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(scratch_dir or model_dir, BEST), max_to_keep=1
        )
        previous = read_best(model_dir)
        self.bleu = previous["bleu"] if previous else float("-inf")

    def update(self, step: int, bleu: float, valid_loss: float) -> bool:
        """Saves the model and `best.json` if `bleu` beats the best so far; True if it did."""
        if bleu <= self.bleu:
            return False
        self.bleu = bleu
        self._manager.save(checkpoint_number=step)
        if self._write_json:
            scores = {"step": step, "bleu": bleu, "valid_loss": valid_loss}
            write_file_atomic(
                os.path.join(self._model_dir, BEST_JSON), json.dumps(scores, indent=2) + "\n"
            )
        logging.info("New best BLEU %.2f at step %d, saved in %s", bleu, step, BEST)
        return True


def average_checkpoints(model_dir: str, n: int) -> str:
    """Averages the model weights of the last `n` training checkpoints into `averaged/`.

    Only the model is averaged and saved (no optimizer), under the step of the newest
    checkpoint, so `t2t_lite.model_dir.load_model(model_dir, "averaged")` reads it.

    Args:
        model_dir: a model directory with `config.yaml`, vocabularies and `checkpoints/`.
        n: how many of the newest checkpoints to average (fewer if fewer exist).

    Returns:
        The prefix of the averaged checkpoint.

    Raises:
        FileNotFoundError: there is no checkpoint in `<model_dir>/checkpoints`.
        ValueError: `n` is smaller than 1.
    """
    if n < 1:
        raise ValueError(f"cannot average {n} checkpoints")
    state = tf.train.get_checkpoint_state(os.path.join(model_dir, CHECKPOINTS))
    if state is None or not state.all_model_checkpoint_paths:
        raise FileNotFoundError(f"no checkpoint to average in {model_dir}/{CHECKPOINTS}")
    prefixes = list(state.all_model_checkpoint_paths)[-n:]
    model, *_ = load_model(model_dir, prefixes[0])
    variables = model.trainable_variables
    sums = [variable.numpy().astype(np.float64) for variable in variables]
    for prefix in prefixes[1:]:
        read_weights(model, prefix)
        for total, variable in zip(sums, variables, strict=True):
            total += variable.numpy()
    for total, variable in zip(sums, variables, strict=True):
        variable.assign((total / len(prefixes)).astype(variable.dtype))
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), os.path.join(model_dir, AVERAGED), max_to_keep=1
    )
    prefix = manager.save(checkpoint_number=checkpoint_step(prefixes[-1]))
    logging.info(
        "Averaged %d checkpoints (steps %s) into %s",
        len(prefixes),
        ", ".join(str(checkpoint_step(p)) for p in prefixes),
        prefix,
    )
    return prefix
