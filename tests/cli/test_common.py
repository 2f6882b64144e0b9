"""Every t2t-* tool: `--help` shows the tool's own flags; a flag error is one line, status 2."""

import pytest

from tests.helpers import run_cli, stderr_lines

# One flag of the tool's own module, and one of t2t_lite.cli.common's that the tool uses.
OWN_FLAGS = {
    "train": ("--overwrite_config", "--model_dir"),
    "translate": ("--n_best", "--intra_threads"),
    "evaluate": ("--ref", "--parallel_batches"),
    "export": ("--quantization", "--checkpoint"),
}

FLAG_ERRORS = [
    ("train", [], "--config is required"),
    ("train", ["--config=c.yaml", "--model_dir=m", "--overwrite_config=maybe"], "true or false"),
    ("train", ["--config=c.yaml", "--model_dir=m", "extra"], "unexpected arguments ['extra']"),
    ("translate", ["--beam_size=0"], "--model_dir is required; --beam_size must be >= 1"),
    ("translate", ["--model_dir=m", "--beam_size=two"], "--beam_size=two: expected an integer"),
    ("translate", ["--model_dir=m", "--beam=4"], "Unknown command line flag 'beam'"),
    ("evaluate", ["--model_dir=m", "--src=s"], "--ref is required"),
    ("evaluate", ["--model_dir=m", "--src=s", "--ref=r", "--alpha=high"], "expected a number"),
    ("evaluate", ["--model_dir=m", "--src=s", "--ref=r", "--n_best=2"], "Unknown command line"),
    ("export", ["--model_dir=m", "--output=o", "--format=onnx"], "one of saved_model, ctrans"),
    ("export", ["--model_dir=m", "--output=o", "--quantization=int8"], "--format=ctranslate2"),
    ("export", ["--model_dir=", "--output=o"], "--model_dir must not be empty"),
    ("export", ["--model_dir=m", "--output=o", "--average_within=0"], "must be in (0, 1]"),
]


@pytest.mark.parametrize("tool", sorted(OWN_FLAGS))
def test_help_lists_the_tools_own_flags_only(tool):
    result = run_cli(tool, "--help", text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"t2t-{tool}: ")  # the module docstring
    for flag in OWN_FLAGS[tool]:
        assert f"\n  {flag}:" in result.stdout
    # TensorFlow's flags (defined when it is imported) and absl's stay under --helpfull.
    assert "op_conversion_fallback_to_while_loop" not in result.stdout
    assert "--verbosity" not in result.stdout
    assert stderr_lines(result) == []


@pytest.mark.parametrize(("tool", "args", "expected"), FLAG_ERRORS)
def test_a_flag_error_is_one_line_and_status_2(tool, args, expected):
    result = run_cli(tool, *args, text=True, timeout=120)
    lines = stderr_lines(result)
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"t2t-{tool}: error: ") and expected in lines[0], lines
    assert result.stdout == ""
