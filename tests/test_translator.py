import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.model_dir import find_checkpoint, load_model
from t2t_lite.streaming import format_hypotheses, read_chunks
from t2t_lite.translator import Hypothesis, Translator, length_batches
from t2t_lite.vocab import BOS_ID, EOS_ID
from tests.helpers import REPO, made_up_sentences, make_model_dir

# Inputs that must each give exactly one output line, in order.
AWKWARD = [
    "a dog runs",
    "",
    "   ",
    "\t a  red\u00a0ball \t",
    "big " * 300,  # longer than the model's max_length (64): truncated with a warning
    "Ein Hund läuft. Собака бежит. 犬が走る。 كلب يجري",
    "the cat 🐈 sits 😀 on the ball 👍🏽",
    "control\x07chars\x1b[31m and\x00nul",
    "a\rcarriage return and a\u2028line separator and \x85 next line",
    "the end",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(str(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def translator(model_dir):
    model, cfg, src_vocab, tgt_vocab, _ = load_model(model_dir)
    return Translator(model, src_vocab, tgt_vocab, cfg.decode)


def uncached_greedy(model, source_ids, max_len):
    """Greedy decoding that re-runs the full decoder on the whole prefix at every step."""
    ids = tf.fill([source_ids.shape[0], 1], BOS_ID)
    for _ in range(max_len):
        logits = model((source_ids, ids))[:, -1]  # [B, V]
        ids = tf.concat([ids, tf.argmax(logits, -1, output_type=tf.int32)[:, None]], 1)
    return ids[:, 1:].numpy()


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_cached_and_uncached_decoding_agree(tmp_path, norm):
    model, cfg, src_vocab, tgt_vocab, _ = load_model(make_model_dir(str(tmp_path), norm))
    lines = made_up_sentences(6, seed=3)
    translator = Translator(model, src_vocab, tgt_vocab, cfg.decode)
    encoded = translator.encode(lines, range(1, 7))
    source = np.zeros([6, max(map(len, encoded))], np.int32)
    for i, e in enumerate(encoded):
        source[i, : len(e)] = e
    out = translator.search_fn(1, 0.0, 1)(tf.constant(source))
    reference = uncached_greedy(model, tf.constant(source), out.ids.shape[2])
    for row in range(6):
        n = int(out.lengths[row, 0])
        expected = list(reference[row])
        if EOS_ID in expected:
            expected = expected[: expected.index(EOS_ID) + 1]
        got = list(out.ids[row, 0, :n].numpy())
        assert got[:-1] == expected[: n - 1]
        # The last token is the model's choice, or EOS forced at the length limit.
        limit = np.ceil(cfg.decode.max_length_a * len(encoded[row])) + cfg.decode.max_length_b
        assert got[-1] == expected[n - 1] or (got[-1] == EOS_ID and n == limit)


def test_translate_keeps_one_result_per_line_in_order(translator):
    out = translator.translate(AWKWARD, beam_size=2)
    assert len(out) == len(AWKWARD)
    assert out[1] == "" and out[2] == ""
    assert translator.stats.truncated >= 1
    # Each line translated alone gives the same result as inside the batch.
    for line, batched in zip(AWKWARD, out, strict=True):
        assert translator.translate([line], beam_size=2) == [batched]


def test_parallel_batches_give_the_same_results_in_order(translator):
    lines = made_up_sentences(30, 3) + [""]
    one = translator.translate_nbest(lines, beam_size=2, n_best=2, batch_tokens=40)
    translator.reset_stats()
    three = translator.translate_nbest(
        lines, beam_size=2, n_best=2, batch_tokens=40, parallel_batches=3
    )
    assert three == one
    assert translator.stats.sentences == len(lines) and translator.stats.target_tokens > 0


def test_nbest_sorted_and_distinct(translator):
    results = translator.translate_nbest(made_up_sentences(4, 9), beam_size=4, n_best=3)
    for hyps in results:
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True) and len(hyps) == 3
    with pytest.raises(ValueError, match="n_best"):
        translator.translate_nbest(["a"], beam_size=2, n_best=3)


def test_length_batches_respect_budget_and_cover_everything():
    lengths = [5, 1, 30, 7, 7, 2, 100, 3]
    batches = length_batches(list(range(8)), lengths, 32)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 32
    capped = length_batches(list(range(8)), lengths, 1000, max_batch_size=3)
    assert [len(b) for b in capped] == [3, 3, 2]


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


def run_cli(module, *args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", f"t2t_lite.{module}", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )


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


def test_find_checkpoint_choices(tmp_path):
    model_dir = make_model_dir(str(tmp_path))
    assert find_checkpoint(model_dir).endswith("checkpoints/ckpt-1")
    with pytest.raises(FileNotFoundError, match="best not found"):
        find_checkpoint(model_dir, "best")
    model, *_ = load_model(model_dir)
    checkpoint = tf.train.Checkpoint(model=model)
    for folder, step in (("averaged", 1), ("best", 1), ("checkpoints", 2)):
        tf.train.CheckpointManager(checkpoint, os.path.join(model_dir, folder), 3).save(step)
    # The average is older than the latest training checkpoint: the default skips it.
    assert find_checkpoint(model_dir).endswith("best/ckpt-1")
    assert find_checkpoint(model_dir, "averaged").endswith("averaged/ckpt-1")
    assert find_checkpoint(model_dir, "latest").endswith("checkpoints/ckpt-2")
    tf.train.CheckpointManager(checkpoint, os.path.join(model_dir, "averaged"), 3).save(2)
    assert find_checkpoint(model_dir).endswith("averaged/ckpt-2")


@pytest.mark.parametrize("source_eos", [True, False])
def test_saved_model_matches_translator_in_a_fresh_process(
    model_dir, translator, tmp_path, source_eos
):
    pytest.importorskip("tensorflow_text")
    if not source_eos:  # a model whose sources have no EOS (OpenNMT-tf's layout)
        model_dir = str(tmp_path / "no_source_eos")
        os.makedirs(model_dir)
        make_model_dir(model_dir, overrides=["model.source_eos=false"])
        model, cfg, src_vocab, tgt_vocab, _ = load_model(model_dir)
        assert not model.source_eos
        translator = Translator(model, src_vocab, tgt_vocab, cfg.decode)
    export = tmp_path / "exported"
    result = run_cli("export", f"--model_dir={model_dir}", f"--output={export}")
    assert result.returncode == 0, result.stderr.decode()
    lines = AWKWARD[:4] + AWKWARD[5:7] + made_up_sentences(5, 4)
    script = (
        "import sys, json, tensorflow as tf, tensorflow_text\n"
        f"m = tf.saved_model.load({str(export)!r})\n"
        "lines = json.loads(sys.stdin.read())\n"
        "out = m.signatures['serving_default'](sources=tf.constant(lines))\n"
        "assert 't2t_lite' not in sys.modules\n"
        "print(json.dumps([t.decode() for t in out['translations'].numpy()]))\n"
    )
    import json

    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(lines).encode(),
        capture_output=True,
        timeout=300,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr.decode()
    exported = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert exported == translator.translate(lines)
    # Exporting again into the same, now non-empty, directory is refused.
    result = run_cli("export", f"--model_dir={model_dir}", f"--output={export}")
    assert result.returncode == 2 and b"not empty" in result.stderr
