"""Helpers shared by the tests."""

import inspect
import os
import re
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")


def real_data_dir() -> str | None:
    """Where tests that use real corpora find them: the data dir, else shared/data beside the
    checkout (where `scripts/env.sh` points `T2T_DATA_DIR`); None if neither exists."""
    from t2t_lite.data import data_dir

    beside = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
    return data_dir() or (beside if os.path.isdir(beside) else None)


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


def constructor_args(layer: keras.layers.Layer) -> list[str]:
    """The named parameters of every `__init__` from the layer's class up to (not including)
    Keras' `Layer` and `Model`: what `**kwargs` passes on is a constructor argument too."""
    names = []
    for cls in type(layer).__mro__:
        if cls in (keras.layers.Layer, keras.Model) or not issubclass(cls, keras.layers.Layer):
            break
        if "__init__" not in vars(cls):
            continue
        for name, param in inspect.signature(vars(cls)["__init__"]).parameters.items():
            named = param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
            if named and name != "self" and name not in names:
                names.append(name)
    return names


def _assert_equal_outputs(expected, actual) -> None:
    tf.nest.assert_same_structure(expected, actual)
    for a, b in zip(tf.nest.flatten(expected), tf.nest.flatten(actual), strict=True):
        if a is None or b is None:
            assert a is b
        else:
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def run_serialization_test(layer: keras.layers.Layer, *inputs, **call_kwargs):
    """Checks a layer survives a config round trip: every constructor argument in its config
    and back, and the same outputs with its weights and seeds, in inference and training.

    Every named parameter of the constructors (see `constructor_args`) must be a key of
    `get_config()`, and a clone made with `from_config` must have the same value for each
    one the layer keeps as a plain attribute. The layer is called once (to build it), the
    clone gets its variables (weights and dropout seed states), and both must then give
    identical outputs with training off and with training on (the same dropout masks).
    """
    expected = layer(*inputs, **call_kwargs)
    config = layer.get_config()
    missing = [name for name in constructor_args(layer) if name not in config]
    assert not missing, f"{type(layer).__name__}.get_config() leaves out {missing}"
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    plain = (type(None), bool, int, float, str, tuple, list)
    for name in constructor_args(layer):
        value = getattr(layer, name, None)
        if isinstance(value, plain):
            assert getattr(clone, name) == value, name
    clone(*inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    _assert_equal_outputs(expected, clone(*inputs, **call_kwargs))
    # Training: the same seed states must give the same dropout masks, with the same rates.
    for original, copy in zip(layer.variables, clone.variables, strict=True):
        copy.assign(original)
    training_kwargs = dict(call_kwargs, training=True)
    _assert_equal_outputs(layer(*inputs, **training_kwargs), clone(*inputs, **training_kwargs))
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
