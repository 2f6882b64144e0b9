"""Checkpoints of a model directory: saving, resuming, the best one by BLEU, averaging.

The layout is the one of `t2t_lite.constants`: `checkpoints/` (model, optimizer, step),
`best/` with `best.json`, `averaged/`. A save that fails (a full disk) leaves no partial
files and the folder's `checkpoint` state untouched (`save_checkpoint`); a resumed run
removes what an interrupted save left and moves unreadable checkpoints aside
(`resume_checkpoint`), so it continues from the newest intact one.

Example:
    >>> prefix = average_checkpoints("runs/m", 5)   # -> "runs/m/averaged/ckpt-3000"
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import text_format

from t2t_lite.atomic import write_file_atomic
from t2t_lite.constants import AVERAGED, BEST, BEST_JSON, CHECKPOINT_STATE, CHECKPOINTS, CORRUPT
from t2t_lite.model_dir import (
    CorruptCheckpointError,
    build_model,
    check_checkpoint_fits,
    checkpoint_prefixes,
    checkpoint_step,
    read_config,
    read_weights,
    verify_checkpoint,
)
from t2t_lite.training.write_errors import write_error
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import load_vocabularies

# The files of a checkpoint `ckpt-N` (CheckpointManager's names): its index and data shards.
_CHECKPOINT_FILE = re.compile(r"ckpt-(\d+)\.(index|data-\d+-of-\d+)")


def save_checkpoint(
    manager: tf.train.CheckpointManager, step: int, what: str = "the training checkpoint"
) -> str:
    """`manager.save(checkpoint_number=step)`, leaving nothing half-written if it fails.

    Returns:
        The prefix of the checkpoint saved.

    Raises:
        WriteError: naming the checkpoint, the cause (for a full disk, the free space) and
            the last complete checkpoint, which the folder's state still points to.
    """
    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as e:
        remove_save_remnants(manager.directory)
        latest = tf.train.latest_checkpoint(manager.directory)
        intact = (
            f"{latest} is complete and still the latest; the same command resumes from it"
            if latest
            else "no earlier checkpoint exists"
        )
        prefix = os.path.join(manager.directory, f"ckpt-{step}")
        raise write_error(prefix, what, e, intact) from None


def remove_save_remnants(directory: str) -> list[str]:
    """Removes what an interrupted or failed save left in a checkpoint folder.

    That is: `ckpt-N_temp/` directories and temporary files, and the files of a checkpoint
    newer than the newest one the `checkpoint` state lists (a save stopped before recording
    it; resuming from the recorded one computes it again). Returns the names removed.
    """
    if not os.path.isdir(directory):
        return []
    recorded = checkpoint_prefixes(directory)
    newest = checkpoint_step(recorded[-1]) if recorded else None
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        match = _CHECKPOINT_FILE.fullmatch(name)
        unrecorded = match is not None and newest is not None and int(match[1]) > newest
        temporary = ".tempstate" in name or name.startswith(CHECKPOINT_STATE + ".tmp")
        if name.endswith("_temp") and os.path.isdir(path):
            shutil.rmtree(path)
        elif temporary or unrecorded:
            os.remove(path)
        else:
            continue
        removed.append(name)
    if removed:
        logging.warning(
            "Removed what an interrupted save left in %s: %s", directory, ", ".join(removed)
        )
    return removed


def move_aside(prefix: str) -> str:
    """Moves the files of checkpoint `prefix` into its folder's `corrupt/` (renamed, never
    deleted) and removes it from the folder's `checkpoint` state; returns the new prefix."""
    directory, name = os.path.split(prefix)
    aside = os.path.join(directory, CORRUPT)
    os.makedirs(aside, exist_ok=True)
    target, copy = os.path.join(aside, name), 1
    while _checkpoint_files(target):
        copy += 1
        target = os.path.join(aside, f"{name}.{copy}")
    for path in _checkpoint_files(prefix):
        os.replace(path, target + path[len(prefix) :])
    _forget(directory, prefix)
    return target


def _checkpoint_files(prefix: str) -> list[str]:
    pattern = glob.escape(prefix)
    return glob.glob(pattern + ".index") + glob.glob(pattern + ".data-*")


def _forget(directory: str, prefix: str) -> None:
    """Removes `prefix` from the `checkpoint` state of `directory` (the file goes with the
    last checkpoint it lists)."""
    path = os.path.join(directory, CHECKPOINT_STATE)
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return
    with open(path, encoding="utf-8") as f:  # as written: relative paths stay relative
        saved = text_format.Parse(f.read(), type(state)())
    paths = list(saved.all_model_checkpoint_paths)
    times = list(saved.all_model_checkpoint_timestamps)
    keep = [
        i
        for i, p in enumerate(paths)
        if os.path.normpath(os.path.join(directory, p)) != os.path.normpath(prefix)
    ]
    if not keep:
        os.remove(path)
        return
    del saved.all_model_checkpoint_paths[:], saved.all_model_checkpoint_timestamps[:]
    saved.all_model_checkpoint_paths.extend(paths[i] for i in keep)
    if len(times) == len(paths):
        saved.all_model_checkpoint_timestamps.extend(times[i] for i in keep)
    saved.model_checkpoint_path = paths[keep[-1]]
    write_file_atomic(path, text_format.MessageToString(saved))


def _newest_readable(directory: str, move: bool) -> str | None:
    """The newest checkpoint of `directory` that reads completely; the unreadable newer ones
    are moved aside if `move` (else skipped), with a warning naming the one used instead."""
    corrupt = []
    found = None
    for prefix in reversed(checkpoint_prefixes(directory)):
        try:
            verify_checkpoint(prefix)
        except CorruptCheckpointError as e:
            corrupt.append(f"{e}: moved it to {move_aside(prefix)}" if move else f"{e}: skipped it")
            continue
        found = prefix
        break
    for problem in corrupt:
        instead = f"using {found} instead" if found else f"no intact checkpoint left in {directory}"
        logging.warning("%s; %s", problem, instead)
    return found


def resume_checkpoint(model_dir: str, model: Transformer, chief: bool = True) -> str | None:
    """The newest intact training checkpoint of `model_dir` to resume from (None if none).

    On the chief (the one writer of the directory) it first removes what interrupted saves
    left in `checkpoints/`, `best/` and `averaged/`, and moves each folder's unreadable
    newest checkpoints aside into its `corrupt/` (for `best/`, with the `best.json` that
    describes it); a warning names each and the checkpoint used instead. Other workers
    skip unreadable checkpoints without touching the directory.

    Args:
        model_dir: the model directory.
        model: the model to resume; the checkpoint's variables must fit it.
        chief: whether this process writes the model directory.

    Raises:
        ModelDirError: the newest intact checkpoint does not fit `model` (an incompatible
            version of t2t_lite, another configuration, other vocabularies).
    """

    def newest(folder: str) -> str | None:
        directory = os.path.join(model_dir, folder)
        if chief:
            _restore_state(directory)
            remove_save_remnants(directory)
        return _newest_readable(directory, move=chief)

    listed_best = checkpoint_prefixes(os.path.join(model_dir, BEST))
    best = newest(BEST)
    if chief and listed_best and best != listed_best[-1]:
        _move_best_json_aside(model_dir, listed_best[-1])
    newest(AVERAGED)
    prefix = newest(CHECKPOINTS)
    if prefix:
        check_checkpoint_fits(prefix, model, *load_vocabularies(model_dir))
    return prefix


def _restore_state(directory: str) -> None:
    """Writes the `checkpoint` state of a folder whose state file is lost but whose `ckpt-N`
    files are there, so that a resumed run continues after them instead of saving over them."""
    if tf.train.get_checkpoint_state(directory) is not None:
        return
    prefixes = checkpoint_prefixes(directory)  # from the files
    if prefixes:
        tf.compat.v1.train.update_checkpoint_state(
            directory, prefixes[-1], all_model_checkpoint_paths=prefixes
        )
        logging.warning(
            "%s had no %s file; rebuilt it from the checkpoints there (%s)",
            directory,
            CHECKPOINT_STATE,
            ", ".join(os.path.basename(p) for p in prefixes),
        )


def _move_best_json_aside(model_dir: str, moved: str) -> None:
    best = read_best(model_dir)
    if best is None or best.get("step") != checkpoint_step(moved):
        return
    aside = os.path.join(model_dir, BEST, CORRUPT)
    target, copy = os.path.join(aside, BEST_JSON), 1
    while os.path.exists(target):
        copy += 1
        target = os.path.join(aside, f"{BEST_JSON}.{copy}")
    os.makedirs(aside, exist_ok=True)
    os.replace(os.path.join(model_dir, BEST_JSON), target)
    logging.warning("Moved %s (it describes %s) to %s", BEST_JSON, moved, target)


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
        save_checkpoint(self._manager, step, "the best checkpoint")
        self.bleu = bleu
        if self._write_json:
            scores = {"step": step, "bleu": bleu, "valid_loss": valid_loss}
            path = os.path.join(self._model_dir, BEST_JSON)
            try:
                write_file_atomic(path, json.dumps(scores, indent=2) + "\n")
            except OSError as e:
                raise write_error(path, "the best scores", e) from None
        logging.info("New best BLEU %.2f at step %d, saved in %s", bleu, step, BEST)
        return True


def average_checkpoints(model_dir: str, n: int, within: float = 1.0) -> str:
    """Averages the model weights of the last `n` training checkpoints into `averaged/`.

    Only the model is averaged and saved (no optimizer), under the step of the newest
    checkpoint, so `t2t_lite.model_dir.load_model(model_dir, "averaged")` reads it.
    Unreadable checkpoints are left out with a warning.

    Args:
        model_dir: a model directory with `config.yaml`, vocabularies and `checkpoints/`.
        n: how many of the newest checkpoints to average (fewer if fewer exist).
        within: of those, only the ones saved in this last fraction of the steps: at step
            `S - round(within * S)` or later, where S is the step of the newest readable
            checkpoint (always averaged); 1.0 = all `n` (`train.average_within`).

    Returns:
        The prefix of the averaged checkpoint.

    Raises:
        FileNotFoundError: there is no (readable) checkpoint in `<model_dir>/checkpoints`.
        ValueError: `n` is smaller than 1, or `within` is not in (0, 1].
        WriteError: the averaged checkpoint could not be written (e.g. a full disk).
    """
    if n < 1:
        raise ValueError(f"cannot average {n} checkpoints")
    if not 0.0 < within <= 1.0:
        raise ValueError(f"the averaging window {within} is not a fraction in (0, 1]")
    prefixes = []
    for prefix in checkpoint_prefixes(os.path.join(model_dir, CHECKPOINTS))[-n:]:
        try:
            verify_checkpoint(prefix)
            prefixes.append(prefix)
        except CorruptCheckpointError as e:
            logging.warning("%s: left out of the average", e)
    if not prefixes:
        raise FileNotFoundError(f"no checkpoint to average in {model_dir}/{CHECKPOINTS}")
    last = checkpoint_step(prefixes[-1])
    first = last - round(within * last)
    prefixes = [p for p in prefixes if checkpoint_step(p) >= first]
    cfg = read_config(model_dir)
    model = build_model(cfg, *load_vocabularies(model_dir))
    read_weights(model, prefixes[0])
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
    prefix = save_checkpoint(manager, checkpoint_step(prefixes[-1]), "the averaged checkpoint")
    logging.info(
        "Averaged %d checkpoints (steps %s; from step %d on) into %s",
        len(prefixes),
        ", ".join(str(checkpoint_step(p)) for p in prefixes),
        first,
        prefix,
    )
    return prefix
