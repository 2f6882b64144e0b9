"""t2t-translate --ensemble and --alignments: outputs, alignment lines, refusals in one line."""

from t2t_lite.inference.alignment import format_alignment
from tests.helpers import made_up_sentences, make_model_dir, run_cli, stderr_lines

LINES = [*made_up_sentences(3, seed=13), ""]


def test_ensemble_with_alignments_and_n_best(model_dir, translator, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out, aligned = tmp_path / "out.txt", tmp_path / "align.txt"
    result = run_cli(
        "translate",
        f"--model_dir={model_dir}",
        f"--ensemble={model_dir}",
        f"--input={src}",
        f"--output={out}",
        f"--alignments={aligned}",
        "--beam_size=2",
        "--n_best=2",
    )
    assert result.returncode == 0, result.stderr.decode()
    expected = translator.translate_nbest(LINES, beam_size=2, n_best=2, alignments=True)
    rows = out.read_text(encoding="utf-8").splitlines()
    assert [r.split(" ||| ")[1] for r in rows] == [
        " ".join(h.text.split()) for hyps in expected for h in hyps
    ]
    assert aligned.read_text(encoding="utf-8").split("\n") == [
        *(format_alignment(h.alignment) for hyps in expected for h in hyps),
        "",
    ]


def test_another_vocabulary_and_ctranslate2_are_refused(model_dir, tmp_path):
    (tmp_path / "other").mkdir()
    other = make_model_dir(str(tmp_path / "other"), overrides=["vocab.size=90"])
    out = tmp_path / "out.txt"
    for extra, message in (
        ([], f"{other} has another target vocabulary than {model_dir}"),
        (["--engine=ctranslate2"], "--ensemble needs --engine=tensorflow"),
    ):
        result = run_cli(
            "translate", f"--model_dir={model_dir}", f"--ensemble={other}", f"--output={out}",
            *extra, stdin="ka lo\n", text=True,
        )  # fmt: skip
        assert result.returncode == 2
        lines = stderr_lines(result)
        assert len(lines) == 1 and message in lines[0], lines
        assert not out.exists()
