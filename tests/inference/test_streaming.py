"""Streaming input and output of t2t-translate: chunks split on newlines only, n-best format."""

import io
import os
import types

import pytest

from t2t_lite.inference.streaming import (
    finish_output,
    format_hypotheses,
    open_output,
    read_chunks,
    translate_stream,
)
from t2t_lite.inference.translator import Hypothesis


def test_read_chunks_splits_on_newline_only():
    data = "a\rb\nc\u2028d\n\ne".encode()
    chunks = list(read_chunks(io.BytesIO(data), "x", 2))
    assert chunks == [["a\rb", "c\u2028d"], ["", "e"]]
    with pytest.raises(Exception, match="x, line 2: invalid UTF-8"):
        list(read_chunks(io.BytesIO(b"ok\n\xff\n"), "x", 10))


def test_nbest_format():
    hyps = [Hypothesis("x y", -0.5, 3), Hypothesis("x\nz", -1.25, 3)]
    assert format_hypotheses(7, hyps, 2) == "7 ||| x y ||| -0.5000\n7 ||| x z ||| -1.2500\n"
    assert format_hypotheses(7, hyps, 1) == "x y\n"


class ScriptedTranslator:
    """Translates a line to its upper case; raises on the chunk number `fail_at` (1-based)."""

    def __init__(self, fail_at=0):
        self.fail_at, self.chunks = fail_at, 0
        self.decode = types.SimpleNamespace(n_best=1)
        self.stats = types.SimpleNamespace(summary=lambda: "")

    def translate_nbest(self, chunk, first_line, **kwargs):
        self.chunks += 1
        if self.chunks == self.fail_at:
            raise RuntimeError(f"failed at line {first_line}")
        return [[Hypothesis(line.upper(), 0.0, 1)] for line in chunk]


def translate_file(tmp_path, translator) -> bool:
    """Runs `translate_stream` into `out.txt` as t2t-translate does; True on success."""
    target, pending = open_output(str(tmp_path / "out.txt"))
    ok = False
    try:
        translate_stream(translator, io.BytesIO(b"a\nb\nc\n"), "in", target, chunk_lines=2)
        ok = True
    except RuntimeError:
        pass
    finally:
        finish_output(target, pending, str(tmp_path / "out.txt"), ok)
    return ok


def test_output_is_replaced_only_when_every_chunk_is_translated(tmp_path):
    (tmp_path / "out.txt").write_text("old\n")
    translator = ScriptedTranslator(fail_at=2)
    assert not translate_file(tmp_path, translator)
    assert translator.chunks == 2  # the first chunk was written before the failure
    assert os.listdir(tmp_path) == ["out.txt"]
    assert (tmp_path / "out.txt").read_text() == "old\n"
    assert translate_file(tmp_path, ScriptedTranslator())
    assert os.listdir(tmp_path) == ["out.txt"]
    assert (tmp_path / "out.txt").read_text() == "A\nB\nC\n"
