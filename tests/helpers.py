"""Helpers shared by the tests."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")

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


# The environment of a command-line tool run by the tests: this checkout, CPU only, quiet.
CLI_ENV = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")

# Lines TensorFlow's C++ runtime may log before TF_CPP_MIN_LOG_LEVEL applies.
_CPP_LOG = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]"
    r"|To enable the following instructions:"
)


def cli_command(tool: str, *args: str) -> list[str]:
    """The command line of `python -m t2t_lite.cli.<tool> ARGS`."""
    return [sys.executable, "-m", f"t2t_lite.cli.{tool}", *args]


def run_cli(
    tool: str,
    *args: str,
    stdin: bytes | str | None = None,
    text: bool = False,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Runs `python -m t2t_lite.cli.<tool> ARGS` from the repository; returns the completed
    process (stdout and stderr as bytes, or as str if `text`)."""
    return subprocess.run(
        cli_command(tool, *args),
        input=stdin,
        capture_output=True,
        text=text,
        cwd=REPO,
        env=CLI_ENV,
        timeout=timeout,
    )


def stderr_lines(process: subprocess.CompletedProcess) -> list[str]:
    """The lines a tool wrote to stderr, without TensorFlow's C++ log lines."""
    stderr = process.stderr if isinstance(process.stderr, str) else process.stderr.decode()
    return [line for line in stderr.splitlines() if not _CPP_LOG.match(line)]


def run_serialization_test(layer: keras.layers.Layer, *inputs, **call_kwargs):
    """Checks a layer survives a config round trip: same config, same outputs with its weights.

    The layer is called once (to build it), re-created from its config, given the original
    weights, and must then produce identical outputs.
    """
    expected = layer(*inputs, **call_kwargs)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone(*inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    actual = clone(*inputs, **call_kwargs)
    tf.nest.map_structure(
        lambda a, b: np.testing.assert_array_equal(a.numpy(), b.numpy()), expected, actual
    )
    # Also through Keras' own serializer (registered class names).
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config


SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qua", "fe", "dor", "im"]


def made_up_sentences(n: int, seed: int = 0) -> list[str]:
    """Deterministic short sentences of made-up words (one fixed list of 150 words; `seed`
    picks the sentences), for tiny vocabularies."""
    word_rng = np.random.default_rng(0)
    words = ["".join(word_rng.choice(SYLLABLES, size=word_rng.integers(1, 4))) for _ in range(150)]
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=rng.integers(2, 9))) for _ in range(n)]


def make_model_dir(path: str, norm: str = "pre", overrides: list[str] | None = None) -> str:
    """A model directory (config, shared vocabulary, one checkpoint) of the tiny preset with
    random weights, written the way t2t-train lays it out."""
    from t2t_lite.config import apply_overrides, load_config
    from t2t_lite.constants import CHECKPOINTS, CONFIG_FILE
    from t2t_lite.model_dir import build_model
    from t2t_lite.vocab import build_vocabularies

    cfg = load_config(os.path.join(CONFIGS, "tiny.yaml"), [f"model.norm={norm}"])
    cfg = apply_overrides(cfg, overrides or [])
    texts = made_up_sentences(300)
    src_vocab, tgt_vocab = build_vocabularies(cfg, path, texts, texts[::-1])
    with open(os.path.join(path, CONFIG_FILE), "w", encoding="utf-8") as f:
        f.write(cfg.to_yaml())
    model = build_model(cfg, src_vocab, tgt_vocab)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), os.path.join(path, CHECKPOINTS), max_to_keep=1
    )
    manager.save(checkpoint_number=1)
    return path
