"""The SavedModel (strings in, strings out) translates as t2t-translate does."""

import json
import os
import subprocess
import sys

import pytest

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
    lines = AWKWARD[:4] + AWKWARD[5:7] + made_up_sentences(5, 4)
    script = (
        "import sys, json, tensorflow as tf, tensorflow_text\n"
        f"m = tf.saved_model.load({str(export)!r})\n"
        "lines = json.loads(sys.stdin.read())\n"
        "out = m.signatures['serving_default'](sources=tf.constant(lines))\n"
        "assert 't2t_lite' not in sys.modules\n"
        "print(json.dumps([t.decode() for t in out['translations'].numpy()]))\n"
    )
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
