"""Shared test setup: quiet TensorFlow, CPU only, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model directory of the tiny preset with random weights (see helpers.make_model_dir)."""
    from tests.helpers import make_model_dir

    return make_model_dir(str(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def translator(model_dir):
    """A Translator over `model_dir`'s model."""
    from t2t_lite.inference.translator import Translator
    from t2t_lite.model_dir import load_model

    model, cfg, src_vocab, tgt_vocab, _ = load_model(model_dir)
    return Translator(model, src_vocab, tgt_vocab, cfg.decode)
