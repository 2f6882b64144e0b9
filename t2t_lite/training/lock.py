"""One writer per model directory: `t2t-train` holds an exclusive lock for its whole run.

The lock is an `fcntl.flock` on `<model_dir>/train.lock` (`t2t_lite.constants.LOCK_FILE`),
which holds the pid and host of its holder. A second trainer on the same directory stops at
once, naming them. The kernel releases a flock when its holder dies (kill -9, a reboot), so
a lock file left behind is taken over, with a warning naming the process that left it. On a
filesystem without flock, the pid decides: a lock file whose process no longer runs on this
host is taken over, any other is respected. Readers (t2t-translate, t2t-evaluate,
t2t-export) take no lock: translating from a directory while it trains is fine.

Example:
    >>> with model_dir_lock("runs/m"):
    ...     train_into("runs/m")        # a second `model_dir_lock("runs/m")` raises meanwhile
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator

from absl import logging

from t2t_lite.constants import LOCK_FILE
from t2t_lite.model_dir import ModelDirError

# flock errors meaning the filesystem does not support it (as on some network filesystems).
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class ModelDirInUse(ModelDirError):
    """Another process holds the model directory's lock."""


@contextlib.contextmanager
def model_dir_lock(model_dir: str, enabled: bool = True) -> Iterator[None]:
    """Holds the exclusive lock of `model_dir` (created if missing) while the block runs.

    Args:
        model_dir: the model directory.
        enabled: False on the other workers of a multi-worker run: only the chief writes
            the directory, so only it takes the lock; then this does nothing.

    Raises:
        ModelDirError: `model_dir` is a file.
        ModelDirInUse: another process holds the lock, naming the directory, its pid and
            host.
    """
    if not enabled:
        yield
        return
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ModelDirError(f"model directory {model_dir} is a file, not a directory")
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, LOCK_FILE)
    fd = _acquire(model_dir, path)
    try:
        previous = _holder(fd)
        if previous and not _is_me(previous):
            logging.warning(
                "Took over the lock %s left by %s, which no longer holds it (it ended without "
                "releasing it, e.g. killed or by a reboot)",
                path,
                _describe(previous),
            )
        os.ftruncate(fd, 0)
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.pwrite(fd, (json.dumps(dict(_me(), since=since)) + "\n").encode(), 0)
        os.fsync(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if _same_file(fd, path):
                os.remove(path)  # removed while still locked: no one takes an orphaned file
        os.close(fd)


def _acquire(model_dir: str, path: str) -> int:
    """Opens and locks the lock file; returns its descriptor."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ModelDirInUse(
                f"model directory {model_dir} is in use by another t2t-train: "
                f"{_describe(holder)} holds {path}; wait for it to finish or stop it"
            ) from None
        except OSError as e:
            if e.errno not in _NO_FLOCK:
                os.close(fd)
                raise
            _check_holder_without_flock(fd, model_dir, path)
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder removed the file as we locked it: lock the new one


def _check_holder_without_flock(fd: int, model_dir: str, path: str) -> None:
    """Raises unless the lock file's holder (on a filesystem without flock) is gone."""
    holder = _holder(fd)
    if not holder or _is_me(holder):
        return
    if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid", 0)):
        return
    os.close(fd)
    raise ModelDirInUse(
        f"model directory {model_dir} is in use by another t2t-train: {_describe(holder)} "
        f"holds {path} (this filesystem has no flock: remove {path} if that process has ended)"
    )


def _holder(fd: int) -> dict | None:
    """The holder recorded in the lock file: `{"pid", "host", "since"}`, or None if empty."""
    text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {"unreadable": text[:80]}
    return holder if isinstance(holder, dict) else {"unreadable": text[:80]}


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _is_me(holder: dict) -> bool:
    return {k: holder.get(k) for k in ("pid", "host")} == _me()


def _describe(holder: dict | None) -> str:
    if not holder:
        return "a process that has not yet written its pid"
    if "pid" not in holder:
        return f"an unknown process (lock file content {holder.get('unreadable')!r})"
    since = f" since {holder['since']}" if holder.get("since") else ""
    return f"process {holder['pid']} on host {holder.get('host', '?')}{since}"


def _alive(pid: int) -> bool:
    """Whether a process `pid` runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(fd: int, path: str) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (stat.st_dev, stat.st_ino) == (opened.st_dev, opened.st_ino)
