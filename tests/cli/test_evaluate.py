"""t2t-evaluate: BLEU and chrF of the model's translations, with signatures and a JSON line;
--output written whole or not at all; user errors in one line."""

import json
import os

from t2t_lite.inference.scoring import score_translations
from t2t_lite.model_dir import find_checkpoint
from tests.helpers import made_up_sentences, run_cli, stderr_lines


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_scores_signatures_and_output(model_dir, translator, tmp_path):
    sources = made_up_sentences(12, seed=7)
    hypotheses = translator.translate(sources)
    assert len(set(hypotheses)) > 6  # the model's outputs differ, so the scores tell
    references = hypotheses[:6] + made_up_sentences(6, seed=8)  # half right, half wrong
    write_lines(tmp_path / "src.txt", sources)
    write_lines(tmp_path / "ref.txt", references)
    output = tmp_path / "out.txt"
    output.write_text("an older output\n")
    result = run_cli(
        "evaluate",
        f"--model_dir={model_dir}",
        f"--src={tmp_path / 'src.txt'}",
        f"--ref={tmp_path / 'ref.txt'}",
        f"--output={output}",
        text=True,
    )
    assert result.returncode == 0, result.stderr
    expected = score_translations(hypotheses, references)
    assert 0 < expected["bleu"] < 100
    prefix = find_checkpoint(model_dir)
    checkpoint, bleu, chrf, summary = result.stdout.splitlines()
    assert checkpoint == f"checkpoint: {prefix}"
    assert bleu == f"BLEU = {expected['bleu']:.2f}  {expected['bleu_signature']}"
    assert chrf == f"chrF = {expected['chrf']:.2f}  {expected['chrf_signature']}"
    assert "tok:13a" in bleu and "case:mixed" in bleu
    assert json.loads(summary) == dict(expected, checkpoint=prefix, sentences=12)
    assert "sentences/s" in result.stderr
    # The translations replace the old output whole; no temporary file is left.
    assert output.read_text(encoding="utf-8") == "".join(h + "\n" for h in hypotheses)
    assert sorted(os.listdir(tmp_path)) == ["out.txt", "ref.txt", "src.txt"]


def test_errors_are_one_line_and_leave_the_output_alone(model_dir, tmp_path):
    write_lines(tmp_path / "src.txt", ["a dog", "a cat", "a bird"])
    write_lines(tmp_path / "ref.txt", ["ein Hund", "eine Katze"])
    output = tmp_path / "out.txt"
    output.write_text("kept\n")
    result = run_cli(
        "evaluate",
        f"--model_dir={model_dir}",
        f"--src={tmp_path / 'src.txt'}",
        f"--ref={tmp_path / 'ref.txt'}",
        f"--output={output}",
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert stderr_lines(result) == [
        f"t2t-evaluate: error: parallel files differ in length: {tmp_path / 'src.txt'} has 3 "
        f"lines, {tmp_path / 'ref.txt'} has 2 lines"
    ]
    assert output.read_text() == "kept\n"
    assert sorted(os.listdir(tmp_path)) == ["out.txt", "ref.txt", "src.txt"]
    # An --output in a missing directory is refused before translating.
    result = run_cli(
        "evaluate",
        f"--model_dir={model_dir}",
        f"--src={tmp_path / 'src.txt'}",
        f"--ref={tmp_path / 'src.txt'}",
        f"--output={tmp_path / 'missing' / 'out.txt'}",
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert stderr_lines(result) == [
        f"t2t-evaluate: error: output directory does not exist: {tmp_path / 'missing'}"
    ]
    assert "sentences/s" not in result.stderr
