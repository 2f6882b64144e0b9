"""t2t-translate: one output line per input line, user errors in one line."""

import os

import keras
import tensorflow as tf

from t2t_lite.constants import CHECKPOINTS
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import build_model, load_model
from tests.helpers import AWKWARD, made_up_sentences, make_model_dir, run_cli


def test_cli_translate_preserves_lines(model_dir, translator, tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes("\n".join(AWKWARD).encode() + b"\n")
    out = tmp_path / "out.txt"
    result = run_cli(
        "translate",
        f"--model_dir={model_dir}",
        f"--input={src}",
        f"--output={out}",
        "--beam_size=2",
        "--batch_tokens=50",
        "--parallel_batches=2",
        "--intra_threads=1",
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(AWKWARD)
    assert lines[:-1] == [" ".join(t.split()) for t in translator.translate(AWKWARD, beam_size=2)]
    assert b"sentences/s" in result.stderr
    assert b"line 5 has 300 pieces" in result.stderr or b"line 5 has" in result.stderr
    # stdin -> stdout with n-best: N lines per input line, indices in order.
    result = run_cli(
        "translate",
        f"--model_dir={model_dir}",
        "--n_best=2",
        "--beam_size=2",
        stdin=b"a dog\n\nthe cat\n",
    )
    assert result.returncode == 0, result.stderr.decode()
    rows = result.stdout.decode().splitlines()
    assert [r.split(" ||| ")[0] for r in rows] == ["0", "0", "1", "1", "2", "2"]


def test_cli_errors_are_clear(model_dir, tmp_path):
    result = run_cli("translate", f"--model_dir={tmp_path}")
    assert result.returncode == 2 and b"not a model directory" in result.stderr
    result = run_cli("translate", f"--model_dir={model_dir}", "--input=/nonexistent/x")
    assert result.returncode == 2 and b"/nonexistent/x" in result.stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xc3\x28 broken\n")
    out = tmp_path / "never.txt"
    result = run_cli("translate", f"--model_dir={model_dir}", f"--input={bad}", f"--output={out}")
    assert result.returncode == 2 and b"line 2: invalid UTF-8" in result.stderr
    assert not out.exists() and os.listdir(tmp_path) == ["bad.txt"]
    result = run_cli("translate", f"--model_dir={model_dir}", "--beam_size=0")
    assert result.returncode != 0 and b"--beam_size must be >= 1" in result.stderr
    result = run_cli("translate", f"--model_dir={model_dir}", "--parallel_batches=0")
    assert result.returncode != 0 and b"--parallel_batches must be auto or >= 1" in result.stderr


def test_checkpoint_path_selects_those_weights(tmp_path):
    model_dir = make_model_dir(str(tmp_path / "model"))  # ckpt-1
    model, cfg, src_vocab, tgt_vocab, _ = load_model(model_dir)
    keras.utils.set_random_seed(99)
    other = build_model(cfg, src_vocab, tgt_vocab)  # other random weights, saved as ckpt-2
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=other), os.path.join(model_dir, CHECKPOINTS), max_to_keep=2
    )
    manager.save(checkpoint_number=2)
    lines = made_up_sentences(8, seed=11)
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    outputs = {}
    for weights, number in ((model, 1), (other, 2)):
        prefix = os.path.join(model_dir, CHECKPOINTS, f"ckpt-{number}")
        result = run_cli(
            "translate",
            f"--model_dir={model_dir}",
            f"--checkpoint={prefix}",
            f"--input={tmp_path / 'in.txt'}",
            text=True,
        )
        assert result.returncode == 0, result.stderr
        outputs[number] = result.stdout.splitlines()
        translator = Translator(weights, src_vocab, tgt_vocab, cfg.decode)
        assert outputs[number] == [" ".join(t.split()) for t in translator.translate(lines)]
    assert sum(a != b for a, b in zip(outputs[1], outputs[2], strict=True)) >= 6
