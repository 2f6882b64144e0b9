"""t2t-translate --engine=ctranslate2: CTranslate2's own results, cached exports, our input
handling."""

import dataclasses
import json
import logging
import os

import pytest
import sentencepiece as spm

from t2t_lite.constants import CTRANSLATE2_CACHE, CTRANSLATE2_CHECKPOINT
from t2t_lite.data.text import normalize
from t2t_lite.export.ct2_translator import CTranslate2Translator
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import load_model
from tests.helpers import AWKWARD, made_up_sentences, make_model_dir, run_cli
from tests.trained_model import make_trained_model_dir, save_checkpoint

ctranslate2 = pytest.importorskip("ctranslate2")

# One length limit for every sentence (max_length = 64 tokens, EOS included), as the plain
# CTranslate2 call below has.
ONE_LIMIT = ["decode.max_length_a=0", "decode.max_length_b=64"]
LINES = made_up_sentences(40, seed=5) + AWKWARD


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("trained"))
    make_trained_model_dir(path, ONE_LIMIT)
    return path


def plain_ctranslate2(export_dir, vocab_path, lines, beam_size, alpha, n_best=1):
    """CTranslate2's Python API on our SentencePiece pieces: `[(texts, scores)]` per line."""
    sp = spm.SentencePieceProcessor(model_file=vocab_path)
    translator = ctranslate2.Translator(export_dir, device="cpu", intra_threads=1)
    texts = [normalize(line) for line in lines]
    todo = [i for i, text in enumerate(texts) if text]
    pieces = [sp.encode(texts[i], out_type=str)[:63] for i in todo]  # + EOS = max_length
    results = translator.translate_batch(
        pieces,
        beam_size=beam_size,
        num_hypotheses=n_best,
        length_penalty=alpha,
        max_decoding_length=63,
        min_decoding_length=0,
        return_scores=True,
    )
    out = [([""] * n_best, [0.0] * n_best)] * len(lines)
    for i, result in zip(todo, results, strict=True):
        # Written one line per hypothesis: whitespace normalized (streaming.format_hypotheses).
        out[i] = ([normalize(sp.decode(h)) for h in result.hypotheses], list(result.scores))
    return out


@pytest.mark.parametrize("beam_size,alpha,n_best", [(1, 0.0, 1), (4, 0.6, 1), (3, 0.0, 2)])
def test_cli_equals_exported_model_in_ctranslate2(trained_dir, tmp_path, beam_size, alpha, n_best):
    source = tmp_path / "in.txt"
    source.write_bytes("\n".join(LINES).encode() + b"\n")
    output = tmp_path / "out.txt"
    result = run_cli(
        "translate",
        f"--model_dir={trained_dir}",
        f"--input={source}",
        f"--output={output}",
        "--engine=ctranslate2",
        f"--beam_size={beam_size}",
        f"--alpha={alpha}",
        f"--n_best={n_best}",
        "--intra_threads=1",
    )
    assert result.returncode == 0, result.stderr.decode()
    long_line = LINES.index("big " * 300) + 1
    assert f"input line {long_line} has".encode() in result.stderr  # cut, with a warning
    rows = output.read_text(encoding="utf-8").split("\n")[:-1]

    export_dir = str(tmp_path / "exported")
    result = run_cli("export", f"--model_dir={trained_dir}", f"--output={export_dir}",
                     "--format=ctranslate2")  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    expected = plain_ctranslate2(
        export_dir, os.path.join(export_dir, "vocab.model"), LINES, beam_size, alpha, n_best
    )
    if n_best == 1:
        assert rows == [texts[0] for texts, _ in expected]
    else:
        assert len(rows) == n_best * len(LINES)
        for i, (texts, scores) in enumerate(expected):
            got = [row.split(" ||| ") for row in rows[i * n_best : (i + 1) * n_best]]
            assert [g[0] for g in got] == [str(i)] * n_best
            assert [g[1] for g in got] == texts
            if texts[0]:
                assert [float(g[2]) for g in got] == pytest.approx(scores, abs=1e-4)


def test_greedy_mostly_equals_tensorflow(trained_dir):
    """Greedy search on both engines, also with a per-sentence length limit that cuts some
    translations (sentences go to CTranslate2 grouped by their limit)."""
    engine, prefix = CTranslate2Translator.from_model_dir(trained_dir, intra_threads=1)
    model, cfg, src_vocab, tgt_vocab, prefix_tf = load_model(trained_dir)
    assert prefix == prefix_tf
    lines = made_up_sentences(60, seed=9)
    for decode in (cfg.decode, dataclasses.replace(cfg.decode, max_length_a=0.5, max_length_b=2)):
        engine.decode = decode
        ours = Translator(model, src_vocab, tgt_vocab, decode).translate_nbest(lines, beam_size=1)
        theirs = engine.translate_nbest(lines, beam_size=1)
        same = [a[0].text == b[0].text for a, b in zip(ours, theirs, strict=True)]
        assert sum(same) >= 0.95 * len(lines)
        for line, a, b, equal in zip(lines, ours, theirs, same, strict=True):
            limit = engine.max_decoding_length(len(src_vocab.encode([line])[0]) + 1)
            assert b[0].length <= limit
            if equal and a[0].length < limit:  # ended by EOS, not by the limit
                assert b[0].length == a[0].length
                assert b[0].score == pytest.approx(a[0].score, abs=1e-3)  # no penalty at K=1
    cut = engine.translate(["ka lo mi ne ru sa to vi"], beam_size=1)[0]
    assert 0 < len(cut.split()) < 8  # the limit (0.5 * 9 + 2 tokens) cut it


def test_input_handling_and_options(trained_dir, caplog):
    caplog.set_level(logging.WARNING)
    engine, _ = CTranslate2Translator.from_model_dir(trained_dir, intra_threads=1)
    results = engine.translate_nbest(AWKWARD, beam_size=2, n_best=2, first_line=11)
    assert len(results) == len(AWKWARD) and all(len(h) == 2 for h in results)
    for line, hyps in zip(AWKWARD, results, strict=True):
        if not line.strip():
            assert [h.text for h in hyps] == ["", ""] and hyps[0].score == 0.0
        else:
            assert hyps[0].length > 0 and hyps[0].score >= hyps[1].score
    assert "input line 15 has" in caplog.text
    assert engine.stats.sentences == len(AWKWARD) and engine.stats.truncated == 1
    with pytest.raises(ValueError, match="n_best=3 cannot exceed beam_size=2"):
        engine.translate_nbest(["a"], beam_size=2, n_best=3)
    sampled = engine.translate(LINES[:5], sampling_topk=None, repetition_penalty=1.5)
    assert len(sampled) == 5
    int8, _ = CTranslate2Translator.from_model_dir(trained_dir, compute_type="int8")
    assert len(int8.translate(LINES)) == len(LINES)


def test_export_cached_per_checkpoint(tmp_path):
    model_dir = make_model_dir(str(tmp_path / "m"))
    cache = os.path.join(model_dir, CTRANSLATE2_CACHE)
    CTranslate2Translator.from_model_dir(model_dir)
    (first,) = os.listdir(cache)
    with open(os.path.join(cache, first, CTRANSLATE2_CHECKPOINT), encoding="utf-8") as f:
        recorded = json.load(f)
    assert recorded["checkpoint"] == os.path.join("checkpoints", "ckpt-1")
    model_bin = os.path.join(cache, first, "model.bin")
    made = os.stat(model_bin).st_mtime_ns
    CTranslate2Translator.from_model_dir(model_dir)  # reused, not rebuilt
    assert os.listdir(cache) == [first] and os.stat(model_bin).st_mtime_ns == made

    model, *_ = load_model(model_dir)
    for variable in model.trainable_variables:
        variable.assign(variable * 0.5)
    save_checkpoint(model, model_dir, 2)  # a new latest checkpoint: a second export
    engine, prefix = CTranslate2Translator.from_model_dir(model_dir, "latest")
    assert prefix.endswith("ckpt-2") and len(os.listdir(cache)) == 2
    assert first in os.listdir(cache)  # ckpt-1 is unchanged: its export stays
    save_checkpoint(model, model_dir, 1)  # ckpt-1 replaced: its old export is stale
    CTranslate2Translator.from_model_dir(model_dir, os.path.join(model_dir, "checkpoints/ckpt-1"))
    names = os.listdir(cache)
    assert len(names) == 2 and first not in names
    assert not [name for name in names if name.startswith(".")]  # no temporary directory left


def test_unwritable_cache_exports_to_a_temporary_directory(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    model_dir = make_model_dir(str(tmp_path / "m"))
    blocker = os.path.join(model_dir, CTRANSLATE2_CACHE)
    with open(blocker, "w") as f:  # the cache folder cannot be made
        f.write("not a directory")
    engine, _ = CTranslate2Translator.from_model_dir(model_dir)
    assert len(engine.translate(["a dog", ""])) == 2
    assert "cannot cache the CTranslate2 export" in caplog.text
    assert os.path.isfile(blocker) and sorted(os.listdir(model_dir)) == sorted(
        ["checkpoints", "config.yaml", "vocab.model", CTRANSLATE2_CACHE]
    )


def test_cli_errors(model_dir):
    result = run_cli("translate", f"--model_dir={model_dir}", "--compute_type=int8")
    assert result.returncode == 2 and b"--compute_type needs --engine=ctranslate2" in result.stderr
    result = run_cli(
        "translate", f"--model_dir={model_dir}", "--engine=ctranslate2", "--compute_type=int16"
    )
    if "int16" not in ctranslate2.get_supported_compute_types("cpu"):
        assert result.returncode == 2 and b"compute type int16" in result.stderr
    result = run_cli("translate", f"--model_dir={model_dir}", "--engine=onnx")
    assert result.returncode != 0 and b"--engine" in result.stderr
