"""Failed writes into a model directory (a full disk, other I/O errors) reported in one line.

The line names the path, what was being written and, for a full disk, the free space left,
so the user knows what to free; `t2t-train` exits with status 2 and the same command resumes
once the cause is fixed.

Example:
    >>> with reporting_write_errors("runs/m"):
    ...     write_file_atomic("runs/m/config.yaml", text)
    WriteError: cannot write runs/m/config.yaml: the disk is full (12.0 KB free in runs/m)
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator

import tensorflow as tf

from t2t_lite.model_dir import ModelDirError

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
# Failures only a write raises (OSError errno values): caught anywhere in a run, they can
# only come from writing.
_WRITE_ERRNOS = (errno.EROFS, errno.EFBIG, *_DISK_FULL_ERRNOS)


class WriteError(ModelDirError):
    """Writing into the model directory failed; nothing half-written is left in place."""


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (an OSError or a TensorFlow error) means the disk or quota is full."""
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        return True
    return isinstance(error, tf.errors.OpError) and any(t in error.message for t in _DISK_FULL_TEXT)


def free_space(path: str) -> str:
    """The free space of the filesystem holding `path` (or its nearest existing parent)."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    free = float(shutil.disk_usage(path or ".").free)
    if free < 1024:
        return f"{free:.0f} B"
    for unit in ("KB", "MB", "GB"):
        free /= 1024
        if free < 1024 or unit == "GB":
            break
    return f"{free:.1f} {unit}"


def write_error(path: str, what: str, error: BaseException, intact: str = "") -> WriteError:
    """A `WriteError` for `error` raised while writing `what` to `path`.

    Args:
        path: the file or checkpoint prefix being written.
        what: what it is, e.g. "the training checkpoint" ("" if the path says it).
        error: the OSError or TensorFlow error raised.
        intact: an extra sentence, e.g. which checkpoint is still complete.
    """
    if is_disk_full(error):
        reason = f"the disk is full ({free_space(path)} free in {os.path.dirname(path) or '.'})"
    else:
        if isinstance(error, tf.errors.OpError):
            text = error.message
        else:  # an OSError's own text repeats the path
            text = getattr(error, "strerror", None) or str(error)
        reason = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    what = f"{what} " if what else ""
    return WriteError(f"cannot write {what}{path}: {reason}" + (f"; {intact}" if intact else ""))


@contextlib.contextmanager
def reporting_write_errors(model_dir: str) -> Iterator[None]:
    """Turns a full disk (or a read-only filesystem, a file too large) escaping the block into
    a one-line `WriteError`.

    Writes with a clear owner (checkpoints) raise their own `WriteError` with more detail;
    this catches the others (the configuration, vocabularies, tokenized data, summaries),
    naming the file from the error (else `model_dir`).
    """
    try:
        yield
    except OSError as e:
        if e.errno not in _WRITE_ERRNOS:
            raise
        raise write_error(e.filename or model_dir, "", e) from None
    except tf.errors.OpError as e:
        if not is_disk_full(e):
            raise
        paths = re.findall(r"(/[^\s;:'\"]+)", e.message)
        raise write_error(paths[0] if paths else model_dir, "", e) from None
