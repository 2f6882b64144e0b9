"""t2t-translate decoding options: one line per input line in order, prefixes, clear errors."""

import pytest

from tests.helpers import made_up_sentences, run_cli

LINES = [*made_up_sentences(4, seed=9), "", "  "]


def test_prefixes_sampling_and_repetition_control(model_dir, translator, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    prefixes = [" ".join(s.split()[:2]) for s in made_up_sentences(len(LINES), seed=10)]
    prefixes[2] = ""
    prefix_file = tmp_path / "prefix.txt"
    prefix_file.write_text("\n".join(prefixes) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    result = run_cli(
        "translate",
        f"--model_dir={model_dir}",
        f"--input={src}",
        f"--output={out}",
        f"--target_prefix={prefix_file}",
        "--beam_size=2",
        "--no_repeat_ngram_size=3",
        "--repetition_penalty=1.2",
        "--chunk_lines=2",
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(LINES)
    expected = translator.translate(
        LINES, beam_size=2, target_prefixes=prefixes, no_repeat_ngram_size=3,
        repetition_penalty=1.2,
    )  # fmt: skip
    assert lines[:-1] == [" ".join(t.split()) for t in expected]
    for line, prefix, output in zip(LINES, prefixes, lines, strict=False):
        assert output.startswith(prefix) if line.strip() else output == ""
    # Sampling: N samples per line in the n-best format, reproducible with the same seed.
    args = ["--beam_size=1", "--sampling_topk=5", "--sampling_topp=0.9", "--n_best=3"]
    stdin = "\n".join(LINES).encode() + b"\n"
    runs = [
        run_cli("translate", f"--model_dir={model_dir}", *args, f"--seed={seed}", stdin=stdin)
        for seed in (1, 1)
    ]
    for result in runs:
        assert result.returncode == 0, result.stderr.decode()
    rows = runs[0].stdout.decode().splitlines()
    assert [r.split(" ||| ")[0] for r in rows] == [str(i) for i in range(len(LINES)) for _ in "abc"]
    assert runs[0].stdout == runs[1].stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sampling_topp=1.5"], b"--sampling_topp must be in (0, 1]"),
        (["--repetition_penalty=-1"], b"--repetition_penalty must be > 0"),
        (["--sampling_topk=0", "--beam_size=4"], b"needs --beam_size=1"),
        (["--seed=-3"], b"--seed must be >= 0"),
    ],
)
def test_bad_values_give_one_line_and_exit_2(model_dir, args, message):
    result = run_cli("translate", f"--model_dir={model_dir}", *args, stdin=b"ka lo\n")
    assert result.returncode == 2, result.stderr.decode()
    assert message in result.stderr
    stderr = result.stderr.decode()
    errors = [line for line in stderr.splitlines() if line.startswith("t2t-translate: error:")]
    assert len(errors) == 1 and message.decode() in errors[0] and "Traceback" not in stderr


def test_prefix_file_with_the_wrong_line_count(model_dir, tmp_path):
    prefix_file = tmp_path / "prefix.txt"
    prefix_file.write_text("ka\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    result = run_cli(
        "translate",
        f"--model_dir={model_dir}",
        f"--target_prefix={prefix_file}",
        f"--output={out}",
        stdin=b"ka lo\nmi ne\n",
    )
    assert result.returncode == 2 and b"one prefix line per input line" in result.stderr
    assert not out.exists()
