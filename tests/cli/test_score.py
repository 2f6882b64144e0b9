"""t2t-score: one line per pair, in order, the scorer's numbers; user errors in one line."""

import os

import pytest

from t2t_lite.data.text import normalize
from t2t_lite.inference.scorer import Scorer
from tests.helpers import AWKWARD, made_up_sentences, run_cli


def write_lines(path, lines):
    path.write_bytes("\n".join(lines).encode() + b"\n")
    return str(path)


def test_cli_scores_every_pair_in_order(model_dir, translator, tmp_path):
    sources = made_up_sentences(len(AWKWARD), seed=4)
    sources[2] = ""  # an empty source beside an empty target (AWKWARD[1])
    targets = AWKWARD
    src = write_lines(tmp_path / "src.txt", sources)
    tgt = write_lines(tmp_path / "tgt.txt", targets)
    out = tmp_path / "scores.txt"
    result = run_cli(
        "score",
        f"--model_dir={model_dir}",
        f"--src={src}",
        f"--tgt={tgt}",
        f"--output={out}",
        "--batch_tokens=64",
        "--per_piece",
    )
    assert result.returncode == 0, result.stderr.decode()
    stderr = result.stderr.decode()
    assert "line 2: empty target" in stderr and "line 3: empty source" in stderr
    assert "target line 5 has" in stderr  # the long target, cut to the model's max_length
    assert f"{len(targets)} pairs" in stderr
    rows = [row.split(" ||| ") for row in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(targets)
    scorer = Scorer(translator.model, translator.source_vocab, translator.target_vocab)
    expected = scorer.score(sources, targets)
    for row, target, score in zip(rows, targets, expected, strict=True):
        total, mean, text, pieces = row
        assert text == normalize(target)
        assert float(total) == pytest.approx(score.log_prob, abs=1e-5)
        assert float(mean) == pytest.approx(score.mean, abs=1e-5)
        token_scores = [float(x) for x in pieces.split()]
        assert len(token_scores) == len(score.token_log_probs)
        assert sum(token_scores) == pytest.approx(score.log_prob, abs=1e-3)
    assert len(rows[1][3].split()) == 1  # empty target: EOS alone

    # stdout, without per-piece scores.
    result = run_cli("score", f"--model_dir={model_dir}", f"--src={src}", f"--tgt={tgt}")
    assert result.returncode == 0, result.stderr.decode()
    lines = [line.split(" ||| ") for line in result.stdout.decode().splitlines()]
    assert [line[2] for line in lines] == [row[2] for row in rows]
    for line, row in zip(lines, rows, strict=True):  # other batches: rounding differs
        assert len(line) == 3
        assert float(line[0]) == pytest.approx(float(row[0]), abs=1e-4)


def test_cli_errors_are_clear(model_dir, tmp_path):
    src = write_lines(tmp_path / "src.txt", ["a", "b", "c"])
    tgt = write_lines(tmp_path / "tgt.txt", ["a", "b"])
    out = tmp_path / "never.txt"
    result = run_cli(
        "score", f"--model_dir={model_dir}", f"--src={src}", f"--tgt={tgt}", f"--output={out}"
    )
    assert result.returncode == 2
    message = result.stderr.decode().strip().splitlines()[-1]
    assert f"{src} has 3 lines" in message and f"{tgt} has 2 lines" in message
    assert not out.exists()
    result = run_cli(
        "score", f"--model_dir={model_dir}", f"--src={src}", f"--tgt={src}",
        f"--output={tmp_path}/missing/out.txt",
    )  # fmt: skip
    assert result.returncode == 2 and b"missing" in result.stderr
    result = run_cli("score", f"--model_dir={tmp_path}", f"--src={src}", f"--tgt={src}")
    assert result.returncode == 2 and b"not a model directory" in result.stderr
    result = run_cli("score", f"--model_dir={model_dir}", f"--src={src}", "--tgt=/nonexistent/x")
    assert result.returncode == 2 and b"/nonexistent/x" in result.stderr
    result = run_cli(
        "score", f"--model_dir={model_dir}", f"--src={src}", f"--tgt={src}", "--batch_tokens=0"
    )
    assert result.returncode != 0 and b"--batch_tokens must be >= 1" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["src.txt", "tgt.txt"]
