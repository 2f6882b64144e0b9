"""Translating a file or a stream line by line: one output line per input line, in order."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator, Sequence
from typing import BinaryIO, TextIO

from absl import logging

from t2t_lite.atomic import AtomicFile
from t2t_lite.data.errors import DataError
from t2t_lite.data.text import decode_line, normalize
from t2t_lite.inference.alignment import format_alignment
from t2t_lite.inference.translator import Hypothesis, Translator


def _more_input_ready(stream: BinaryIO) -> bool:
    """True if a read from `stream` would not block (always True for regular files)."""
    try:
        if os.path.isfile(f"/dev/fd/{stream.fileno()}") or not hasattr(select, "select"):
            return True
        ready, _, _ = select.select([stream], [], [], 0)
        return bool(ready)
    except (OSError, ValueError):  # not a real file descriptor (e.g. io.BytesIO in tests)
        return True


def read_chunks(stream: BinaryIO, name: str, chunk_lines: int) -> Iterator[list[str]]:
    """Yields lists of decoded lines: full chunks of `chunk_lines`, or fewer as soon as no
    more input is waiting (so an interactive stdin gets answers without end of file).

    Lines are split on `\\n` only (a stray `\\r`, U+2028 or U+0085 stays inside its line).

    Raises:
        DataError: a line is not valid UTF-8 (names the input and the line number).
    """
    chunk: list[str] = []
    number = 0
    while True:
        raw = stream.readline()
        if not raw:
            break
        number += 1
        chunk.append(decode_line(raw, f"{name}, line {number}").rstrip("\n"))
        if len(chunk) >= chunk_lines or not _more_input_ready(stream):
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def format_hypotheses(index: int, hyps: list[Hypothesis], n_best: int) -> str:
    """Output lines for one input line (with a trailing newline).

    1-best: the translation alone. n-best (N > 1): N lines in the Moses n-best format,
    `INDEX ||| TRANSLATION ||| SCORE`, with the 0-based input line index, best first.
    """

    # Normalized: one output line per hypothesis, whatever the model emits.
    if n_best == 1:
        return normalize(hyps[0].text) + "\n"
    return "".join(f"{index} ||| {normalize(h.text)} ||| {h.score:.4f}\n" for h in hyps)


def read_prefixes(path: str) -> list[str]:
    """The lines of a target-prefix file (split on `\\n` only, like the input).

    Raises:
        DataError: a line is not valid UTF-8 (names the file and the line number).
    """
    with open(path, "rb") as f:
        return [
            decode_line(raw, f"{path}, line {number}").rstrip("\n")
            for number, raw in enumerate(f, start=1)
        ]


def translate_stream(
    translator: Translator,
    source: BinaryIO,
    source_name: str,
    target: TextIO,
    chunk_lines: int = 1000,
    target_prefixes: Sequence[str] | None = None,
    alignments: TextIO | None = None,
    **search_kwargs,
) -> int:
    """Translates `source` chunk by chunk into `target`; returns the number of input lines.

    `target_prefixes` has one entry per input line (or is None). With `alignments`, one line
    of Pharaoh-format piece alignments is written there per output line (n-best lines
    included, same order; an empty input line gives empty ones). `search_kwargs` (beam_size,
    alpha, n_best, batch_tokens, parallel_batches, sampling and repetition options) go to
    `translate_nbest`.

    Raises:
        DataError: `target_prefixes` does not have one entry per input line.
    """
    n_best = search_kwargs.get("n_best") or translator.decode.n_best
    done = 0
    for chunk in read_chunks(source, source_name, chunk_lines):
        if target_prefixes is not None:
            if len(target_prefixes) < done + len(chunk):
                raise DataError(
                    f"the target prefixes have {len(target_prefixes)} lines, fewer than the "
                    f"input ({done + len(chunk)} lines or more): one prefix line per input line"
                )
            search_kwargs["target_prefixes"] = target_prefixes[done : done + len(chunk)]
        if alignments is not None:
            search_kwargs["alignments"] = True
        results = translator.translate_nbest(chunk, first_line=done + 1, **search_kwargs)
        target.write("".join(format_hypotheses(done + i, h, n_best) for i, h in enumerate(results)))
        target.flush()
        if alignments is not None:
            alignments.write(
                "".join(format_alignment(h.alignment) + "\n" for hyps in results for h in hyps)
            )
            alignments.flush()
        done += len(chunk)
        logging.info("translated %d lines: %s", done, translator.stats.summary())
    if target_prefixes is not None and len(target_prefixes) != done:
        raise DataError(
            f"the target prefixes have {len(target_prefixes)} lines, the input {done}: "
            "one prefix line per input line"
        )
    return done


def open_output(path: str) -> tuple[TextIO, AtomicFile | None]:
    """`(file, pending)`: stdout for "-" (`pending` None), else an `AtomicFile` beside `path`
    that `finish_output` renames into place, so a failed run never leaves a partial output.

    Raises:
        FileNotFoundError: the directory of `path` does not exist.
    """
    if path == "-":
        return sys.stdout, None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output directory does not exist: {directory}")
    pending = AtomicFile(path)
    return pending.file, pending


def finish_output(file: TextIO, pending: AtomicFile | None, path: str, ok: bool) -> None:
    """Completes `open_output`: renames the file into place if `ok`, else removes it (stdout
    is only flushed). `path` is the one given to `open_output`."""
    if pending is None:
        file.flush()
    elif ok:
        pending.commit()
    else:
        pending.discard()
