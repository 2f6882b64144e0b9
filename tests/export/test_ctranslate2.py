"""CTranslate2 export: CTranslate2 translates like `Translator` and scores like the model."""

import os
import sys
from difflib import SequenceMatcher

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from t2t_lite.constants import CHECKPOINTS
from t2t_lite.export.ctranslate2 import (
    ctranslate2_translate,
    export_ctranslate2,
    load_ctranslate2_translator,
)
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import load_model
from t2t_lite.vocab import load_vocabularies
from tests.helpers import made_up_sentences, run_cli
from tests.trained_model import copy_batch, make_trained_model_dir

pytest.importorskip("ctranslate2")

VARIANTS = {
    "pre_shared": ["model.norm=pre"],
    "post_separate_untied_no_source_eos": [
        "model.norm=post",
        "model.source_eos=false",
        "vocab.shared=false",
        "model.share_embeddings=false",
        "model.tie_output=false",
    ],
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def trained(request, tmp_path_factory):
    """`(model, cfg, src_vocab, tgt_vocab)`: the tiny preset trained to upper-case its input,
    saved as a model directory (the vocabularies' folder) for the command-line tools."""
    # Cap every translation at max_length (EOS included), the one limit CTranslate2 has.
    decode = ["decode.max_length_a=0", "decode.max_length_b=64", "model.max_length=64"]
    model_dir = str(tmp_path_factory.mktemp(request.param))
    make_trained_model_dir(model_dir, VARIANTS[request.param] + decode)
    model, cfg, src_vocab, tgt_vocab, _ = load_model(model_dir)
    return model, cfg, src_vocab, tgt_vocab


def test_translations_and_log_probs_match(trained, tmp_path):
    model, cfg, src_vocab, tgt_vocab = trained
    output_dir = tmp_path / "ct2"
    output_dir.mkdir()  # an existing empty directory is fine
    assert export_ctranslate2(model, src_vocab, tgt_vocab, str(output_dir)) == str(output_dir)
    assert not [name for name in os.listdir(tmp_path) if name != "ct2"]  # no temp dir left

    lines = made_up_sentences(50, seed=5) + ["", " \t "]
    ours = Translator(model, src_vocab, tgt_vocab, cfg.decode)
    translator = load_ctranslate2_translator(output_dir, intra_threads=1)
    # The export directory alone is enough: it holds the SentencePiece models.
    ct2_src_vocab, ct2_tgt_vocab = load_vocabularies(output_dir)
    # No length penalty on either side (alpha=0, length_penalty=0): the only setting where
    # the two searches score alike. Greedy is K=1 with alpha=0 (with alpha > 0 our K=1 search
    # may still prefer a longer finished hypothesis).
    translations = {}
    for beam_size in (1, 4):
        translations[beam_size] = expected = ours.translate(lines, beam_size=beam_size, alpha=0.0)
        got = ctranslate2_translate(
            translator,
            lines,
            ct2_src_vocab,
            ct2_tgt_vocab,
            beam_size=beam_size,
            length_penalty=0.0,
            max_length=model.max_length,
        )
        differ = [(a, b) for a, b in zip(expected, got, strict=True) if a != b]
        assert len(differ) <= 0.02 * len(lines), (beam_size, differ)  # a near-tie at most
    greedy = translations[1]
    assert sum(text.isupper() for text in greedy) > len(lines) // 2  # trained, not degenerate

    # Same log-probabilities for our greedy translations, token by token.
    source_sp = spm.SentencePieceProcessor(model_file=src_vocab.path)
    target_sp = spm.SentencePieceProcessor(model_file=tgt_vocab.path)
    source_ids, target_ids = src_vocab.encode(lines[:50]), tgt_vocab.encode(greedy[:50])
    scored = translator.score_batch(
        [source_sp.id_to_piece(ids) for ids in source_ids],
        [target_sp.id_to_piece(ids) for ids in target_ids],
    )
    source, target_in, target_out = copy_batch(source_ids, target_ids, model.source_eos)
    log_probs = tf.nn.log_softmax(model((source, target_in))).numpy()  # [B, T, V]
    for row, result in enumerate(scored):
        n = len(target_ids[row]) + 1  # with EOS
        expected = log_probs[row, np.arange(n), target_out[row, :n]]
        np.testing.assert_allclose(result.log_probs, expected, atol=1e-4)


def test_cli_exports_int8_weights_that_translate_alike(trained, tmp_path):
    model, cfg, src_vocab, tgt_vocab = trained
    model_dir = os.path.dirname(src_vocab.path)
    float32 = export_ctranslate2(model, src_vocab, tgt_vocab, str(tmp_path / "float32"))
    int8 = str(tmp_path / "int8")
    result = run_cli(
        "export",
        f"--model_dir={model_dir}",
        f"--output={int8}",
        "--format=ctranslate2",
        "--quantization=int8",
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote ctranslate2 of {os.path.join(model_dir, CHECKPOINTS, 'ckpt-1')}" in result.stdout
    # The linear weights are stored as int8 (the float32 position table stays as it is).
    size = {d: os.path.getsize(os.path.join(d, "model.bin")) for d in (float32, int8)}
    assert size[int8] < 0.7 * size[float32]

    lines = made_up_sentences(50, seed=5)
    expected = Translator(model, src_vocab, tgt_vocab, cfg.decode).translate(
        lines, beam_size=1, alpha=0.0
    )
    translator = load_ctranslate2_translator(int8, intra_threads=1)  # the saved type: int8
    assert translator.compute_type == "int8_float32"
    got = ctranslate2_translate(
        translator, lines, src_vocab, tgt_vocab, length_penalty=0.0, max_length=model.max_length
    )
    # int8 rounding flips near-ties of this tiny, little-trained (D = 32) model, and a
    # translation continues differently from a flip on: how many lines stay identical depends
    # on the CPU's kernels (31 and 39 of 50 for the two variants on an Intel Xeon, 35 or more
    # on an AMD EPYC). Character by character they stay close: 0.89 on average for both
    # variants there, where the lines that part early score 0.1-0.3.
    similarity = [SequenceMatcher(None, a, b).ratio() for a, b in zip(expected, got, strict=True)]
    assert sum(similarity) / len(lines) >= 0.8


def test_refuses_non_empty_output_dir(trained, tmp_path):
    model, _, src_vocab, tgt_vocab = trained
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        export_ctranslate2(model, src_vocab, tgt_vocab, str(tmp_path))
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_missing_ctranslate2_names_the_extra(trained, tmp_path, monkeypatch):
    model, _, src_vocab, tgt_vocab = trained
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # `import ctranslate2` now fails
    with pytest.raises(ImportError, match=r"t2t_lite\[export\]"):
        export_ctranslate2(model, src_vocab, tgt_vocab, str(tmp_path / "ct2"))
