"""Multi-worker training: the strategy, the chief, where each worker writes, agreement checks.

With `TF_CONFIG` set, `t2t-train` is one worker of a `MultiWorkerMirroredStrategy`. All
workers must see the model directory on a filesystem they share: they read the chief's
vocabularies, tokenized training data and latest checkpoint from it, and `check_agreement`
makes sure they start from the same step. Only the chief writes into it. tf.distribute has
every worker save when the chief saves, so each other worker saves into a temporary
directory of its own (`write_dir`), removed when training ends unless `T2T_KEEP_WORKER_TMP=1`.

Example:
    >>> strategy = make_strategy()
    >>> with write_dir(model_dir, is_chief(strategy)) as out_dir:
    ...     check_agreement(strategy, "the step to start from", step)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import get_args

import numpy as np
import tensorflow as tf
from absl import logging

from t2t_lite.config import ConfigError, MixedPrecision

KEEP_WORKER_TMP = "T2T_KEEP_WORKER_TMP"
# train.mixed_precision values once "auto" is resolved, in the order `agreed_precision` sends.
PRECISIONS = tuple(p for p in get_args(MixedPrecision) if p != "auto")


def make_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored with `TF_CONFIG`, Mirrored with several GPUs, else the default."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


@contextlib.contextmanager
def write_dir(model_dir: str, chief: bool) -> Iterator[str]:
    """The directory this worker writes into: `model_dir` for the chief, else a temporary one.

    A non-chief worker's directory is new (under `$TMPDIR`) and removed on exit, unless the
    environment sets `T2T_KEEP_WORKER_TMP=1` (tests compare what it saved with the chief's).
    """
    if chief:
        yield model_dir
        return
    path = tempfile.mkdtemp(prefix="t2t_worker-")
    try:
        yield path
    finally:
        if os.environ.get(KEEP_WORKER_TMP) == "1":
            logging.info("Kept this worker's temporary directory %s (%s=1)", path, KEEP_WORKER_TMP)
        else:
            shutil.rmtree(path, ignore_errors=True)


def gathered(strategy: tf.distribute.Strategy, value: int) -> np.ndarray:
    """`value` of every replica of every worker, `[replicas]` (int64).

    A collective: every worker must call it at the same point of the run, which also makes
    it a barrier. Free with one replica.
    """
    if strategy.num_replicas_in_sync == 1:
        return np.array([value], np.int64)
    local = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([value], tf.int64)
    )
    return strategy.gather(local, axis=0).numpy()


def check_agreement(strategy: tf.distribute.Strategy, what: str, value: int) -> None:
    """Raises unless every replica of every worker passes the same `value` (`gathered`).

    Raises:
        ConfigError: naming `what` and the values, e.g. the workers do not share the model
            directory's filesystem and found different checkpoints.
    """
    values = gathered(strategy, value)
    if values.min() != values.max():
        raise ConfigError(
            f"the workers disagree on {what} (from {values.min()} to {values.max()}); they must "
            "all see the model directory on a shared filesystem"
        )


def agreed_precision(strategy: tf.distribute.Strategy, policy: str) -> str:
    """The precision every worker trains in, given what this one resolved "auto" to.

    Each worker resolves `train.mixed_precision: auto` on its own machine, and a CPU close to
    the bfloat16 threshold can measure either way (`t2t_lite.hardware`). Where the workers
    agree, `policy`; where they do not, "none" (float32, which every machine runs natively),
    with a warning. A collective, as `gathered`.
    """
    values = gathered(strategy, PRECISIONS.index(policy))
    if values.min() == values.max():
        return policy
    found = sorted({PRECISIONS[v] for v in values.tolist()})
    logging.warning(
        "mixed precision: float32: the workers resolved train.mixed_precision=auto to %s; "
        "float32 is the precision all of them run natively",
        " and ".join("float32" if p == "none" else p for p in found),
    )
    return "none"
