"""Parallel plain-text files (optionally gzipped), one sentence per line."""

from __future__ import annotations

import gzip
import os

from t2t_lite.data.errors import DataError


def normalize(line: str) -> str:
    """Strips `line` and collapses internal whitespace (tabs, NBSP, runs of spaces) to one space."""
    return " ".join(line.split())


def decode_line(raw: bytes, where: str) -> str:
    """`raw` decoded as UTF-8; `where` (e.g. "file, line 3") names it in the error.

    Raises:
        DataError: `raw` is not valid UTF-8; the message shows the bytes around the error.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{where}: invalid UTF-8 at byte {e.start} of the line "
            f"({raw[max(0, e.start - 10) : e.start + 10]!r})"
        ) from None


def read_lines(path: str | os.PathLike) -> list[str]:
    """Reads a UTF-8 text file (gzipped if the name ends in `.gz`), normalizing every line.

    Lines are split on `\\n` only, so stray `\\r`, U+2028 or U+0085 inside a line cannot shift
    the alignment between the two sides of a parallel corpus.

    Raises:
        DataError: a line is not valid UTF-8 (the message names file and line number), or a
            gzipped file is corrupt.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    lines = []
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                lines.append(normalize(decode_line(raw, f"{path}, line {number}")))
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    return lines


def read_parallel(src_path: str, tgt_path: str) -> tuple[list[str], list[str]]:
    """Reads two aligned files; line i of one translates line i of the other.

    Raises:
        DataError: the files have different line counts (both files and counts are named),
            or `read_lines` failed.
    """
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(
            f"parallel files differ in length: {src_path} has {len(src)} lines, "
            f"{tgt_path} has {len(tgt)} lines"
        )
    return src, tgt
