"""The SavedModel (strings in, strings out) translates and scores as t2t-translate does; its
`translate_ids` signature decodes piece ids as the Translator's search does."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import load_model
from tests.helpers import AWKWARD, made_up_sentences, make_model_dir, run_cli


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
    # Every character Python's str.split() takes for whitespace, as t2t-translate does.
    lines = AWKWARD + ["a\vvertical\ftab\x1cand\u3000more", *made_up_sentences(5, 4)]
    # translate_ids takes what the Translator feeds its search: pieces (+ EOS), 0-padded.
    encoded = translator.encode(made_up_sentences(4, 5), range(1, 5))
    source_ids = np.zeros([4, max(map(len, encoded))], np.int32)  # [B, S]
    for row, ids in enumerate(encoded):
        source_ids[row, : len(ids)] = ids
    script = (
        "import sys, json, tensorflow as tf, tensorflow_text\n"
        f"m = tf.saved_model.load({str(export)!r})\n"
        "given = json.loads(sys.stdin.read())\n"
        "out = m.signatures['serving_default'](sources=tf.constant(given['lines']))\n"
        "ids = m.signatures['translate_ids'](source_ids=tf.constant(given['ids'], tf.int32))\n"
        "assert 't2t_lite' not in sys.modules\n"
        "print(json.dumps({\n"
        "    'translations': [t.decode() for t in out['translations'].numpy()],\n"
        "    'scores': out['scores'].numpy().tolist(),\n"
        "    'ids': ids['ids'].numpy().tolist(),\n"
        "    'lengths': ids['lengths'].numpy().tolist(),\n"
        "    'id_scores': ids['scores'].numpy().tolist(),\n"
        "}))\n"
    )
    given = {"lines": lines, "ids": source_ids.tolist()}
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(given).encode(),
        capture_output=True,
        timeout=300,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr.decode()
    exported = json.loads(result.stdout.decode().strip().splitlines()[-1])
    best = [hyps[0] for hyps in translator.translate_nbest(lines, n_best=1)]
    for i, line in enumerate(lines):  # every line, the over-long and odd-character ones too
        assert exported["translations"][i] == best[i].text, (i, line)
    np.testing.assert_allclose(exported["scores"], [h.score for h in best], rtol=1e-5, atol=1e-5)

    cfg = translator.decode
    search = translator.search_fn(cfg.beam_size, cfg.alpha, 1)(tf.constant(source_ids))
    lengths = search.lengths[:, 0].numpy()  # [B]
    assert exported["lengths"] == lengths.tolist()
    for row, n in enumerate(lengths):
        assert exported["ids"][row][:n] == search.ids[row, 0, :n].numpy().tolist()
        assert not any(exported["ids"][row][n:])  # 0 after EOS
    np.testing.assert_allclose(exported["id_scores"], search.scores[:, 0], rtol=1e-5, atol=1e-5)
    # Exporting again into the same, now non-empty, directory is refused.
    result = run_cli("export", f"--model_dir={model_dir}", f"--output={export}")
    assert result.returncode == 2 and b"not empty" in result.stderr


def test_signature_options_default_to_serving_default_and_match_the_translator(
    model_dir, translator, tmp_path
):
    pytest.importorskip("tensorflow_text")
    from t2t_lite.export.saved_model import DEFAULT_OPTIONS, export_saved_model

    model, cfg, src_vocab, tgt_vocab, _ = load_model(model_dir)
    export = export_saved_model(model, src_vocab, tgt_vocab, cfg.decode, str(tmp_path / "m"))
    loaded = tf.saved_model.load(export)
    with_options = loaded.signatures["translate_with_options"]
    specs = with_options.structured_input_signature[1]
    assert set(specs) == {"sources", *DEFAULT_OPTIONS}
    lines = made_up_sentences(4, seed=14) + [""]

    def translate(**options):
        options = {
            k: tf.constant(v, specs[k].dtype) for k, v in {**DEFAULT_OPTIONS, **options}.items()
        }
        out = with_options(sources=tf.constant(lines), **options)["translations"].numpy()
        return [t.decode() for t in out]

    plain = loaded.signatures["serving_default"](sources=tf.constant(lines))["translations"]
    assert translate() == [t.decode() for t in plain.numpy()]
    for options in (
        {"no_repeat_ngram_size": 2, "repetition_penalty": 1.5},
        {"sampling_topk": 5, "sampling_topp": 0.9, "sampling_temperature": 0.8, "seed": 3},
    ):
        beam = {"beam_size": 1, "first_line": 0} if "seed" in options else {}
        expected = translator.translate(lines, **beam, **options)
        assert translate(**options) == expected
    assert translate(sampling_topk=0, seed=1) != translate(sampling_topk=0, seed=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="sampling_topp must be <= 1"):
        translate(sampling_topp=2.0)
