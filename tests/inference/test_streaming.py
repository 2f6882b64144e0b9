"""Streaming input and output of t2t-translate: chunks split on newlines only, n-best format."""

import pytest

from t2t_lite.inference.streaming import format_hypotheses, read_chunks
from t2t_lite.inference.translator import Hypothesis


def test_read_chunks_splits_on_newline_only():
    import io

    data = "a\rb\nc\u2028d\n\ne".encode()
    chunks = list(read_chunks(io.BytesIO(data), "x", 2))
    assert chunks == [["a\rb", "c\u2028d"], ["", "e"]]
    with pytest.raises(Exception, match="x, line 2: invalid UTF-8"):
        list(read_chunks(io.BytesIO(b"ok\n\xff\n"), "x", 10))


def test_nbest_format():
    hyps = [Hypothesis("x y", -0.5, 3), Hypothesis("x\nz", -1.25, 3)]
    assert format_hypotheses(7, hyps, 2) == "7 ||| x y ||| -0.5000\n7 ||| x z ||| -1.2500\n"
    assert format_hypotheses(7, hyps, 1) == "x y\n"
