"""Writing files and directories so that a failure never leaves a half-written one in place.

Everything is written under a temporary name beside its target (`.<name>.tmp-<random>`, in the
same directory so the final rename stays on one file system) and renamed over the target once
complete. New files and directories get the permissions of any program's output (0666 or 0777
less the umask, e.g. 0644 and 0755), so whoever is given a model directory can read it.

Example:
    >>> write_file_atomic("runs/m/best.json", text)
    >>> with atomic_open("out.npz", binary=True) as f:
    ...     np.savez(f, ids=ids)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from typing import IO


def _temp_path(path: str) -> str:
    """A fresh hidden name beside `path`."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.tmp-{secrets.token_hex(6)}")


class AtomicFile:
    """A file written under a temporary name beside `path`, renamed to `path` by `commit`.

    Until `commit`, an existing file at `path` is left untouched; `discard` removes the
    temporary file. `atomic_open` wraps the two in a `with` block.

    Args:
        path: the file to write (replaced if it exists); its directory must exist.
        binary: open for bytes instead of UTF-8 text.

    Raises:
        FileNotFoundError: the directory of `path` does not exist.

    Example:
        >>> out = AtomicFile("out.txt")
        >>> out.file.write("line\\n")
        >>> out.commit()   # or out.discard() after a failure
    """

    def __init__(self, path: str, binary: bool = False):
        self.path = path
        self.temp = _temp_path(path)
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        self.file: IO = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")

    def commit(self) -> None:
        """Flushes the file to disk and renames it to `path` (the temporary file is removed if
        that fails)."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Closes and removes the temporary file; `path` is left as it was."""
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


@contextlib.contextmanager
def atomic_open(path: str, binary: bool = False) -> Iterator[IO]:
    """Yields a file open for writing that replaces `path` when the block succeeds.

    On an exception the temporary file is removed and `path` is left as it was.

    Args:
        path: the file to write; its directory must exist.
        binary: open for bytes instead of UTF-8 text.
    """
    out = AtomicFile(path, binary)
    try:
        yield out.file
    except BaseException:
        out.discard()
        raise
    out.commit()


def write_file_atomic(path: str, data: str | bytes) -> None:
    """Writes `data` (text as UTF-8) to `path` through `atomic_open`."""
    with atomic_open(path, binary=True) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_directory(output_dir: str, flag: str = "--output") -> Iterator[str]:
    """Yields a temporary directory beside `output_dir`, renamed to it when the block succeeds.

    An existing empty `output_dir` is replaced; on failure the temporary directory is removed
    and `output_dir` is left as it was.

    Raises:
        FileExistsError: `output_dir` exists and is not an empty directory (the message names
            it with `flag`).
    """
    if os.path.exists(output_dir) and not (
        os.path.isdir(output_dir) and not os.listdir(output_dir)
    ):
        raise FileExistsError(f"{flag} {output_dir} exists and is not empty")
    os.makedirs(os.path.dirname(os.path.abspath(output_dir)), exist_ok=True)
    temp = _temp_path(output_dir)
    os.mkdir(temp)  # 0777 less the umask
    try:
        yield temp
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)
        os.replace(temp, output_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
