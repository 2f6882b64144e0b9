"""Writing files and directories so that a failure never leaves a half-written one in place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


def write_file_atomic(path: str, data: str | bytes) -> None:
    """Writes `data` (text as UTF-8) to a temporary file beside `path`, then renames it."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


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
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        yield temp
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)
        os.replace(temp, output_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
