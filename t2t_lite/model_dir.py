"""Reading a model directory: its config, a checkpoint choice, and the model with its weights.

The directory's layout (file and folder names) is defined in `t2t_lite.constants`.
"""

from __future__ import annotations

import os

import tensorflow as tf

from t2t_lite.config import Config, ConfigError, load_config
from t2t_lite.constants import AVERAGED, BEST, CHECKPOINTS, CONFIG_FILE
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary, load_vocabularies

CHECKPOINT_CHOICES = ("latest", "best", "averaged")


def read_config(model_dir: str) -> Config:
    """The configuration saved in a model directory; clear error if there is none."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise ConfigError(f"{model_dir} is not a model directory: {CONFIG_FILE} is missing")
    return load_config(path)


def find_checkpoint(model_dir: str, checkpoint: str = "") -> str:
    """Resolves a checkpoint choice to a checkpoint prefix.

    Args:
        model_dir: the model directory.
        checkpoint: "" for the default: `averaged/` if it is as new as the latest training
            checkpoint (an average made at the end of training), else `best/` if kept, else
            the latest; or one of "latest", "best", "averaged"; or an explicit checkpoint
            prefix or directory.

    Raises:
        FileNotFoundError: naming what was looked for and where.
    """
    if checkpoint and checkpoint not in CHECKPOINT_CHOICES:
        path = checkpoint if os.path.isdir(checkpoint) else None
        prefix = tf.train.latest_checkpoint(path) if path else checkpoint
        if prefix and tf.io.gfile.exists(prefix + ".index"):
            return prefix
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    order = [checkpoint] if checkpoint else [AVERAGED, BEST, "latest"]
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINTS))
    for choice in order:
        folder = CHECKPOINTS if choice == "latest" else choice
        prefix = tf.train.latest_checkpoint(os.path.join(model_dir, folder))
        stale = (
            not checkpoint
            and choice == AVERAGED
            and latest
            and checkpoint_step(prefix) < checkpoint_step(latest)
        )
        if prefix and not stale:
            return prefix
    wanted = checkpoint or "any checkpoint"
    raise FileNotFoundError(f"{model_dir}: {wanted} not found (looked in {', '.join(order)})")


def checkpoint_step(prefix: str | None) -> int:
    """The step of a CheckpointManager prefix (`.../ckpt-1200` -> 1200; -1 for None)."""
    return int(prefix.rsplit("-", 1)[1]) if prefix else -1


def build_model(cfg: Config, src_vocab: Vocabulary, tgt_vocab: Vocabulary) -> Transformer:
    """A built (weights created) Transformer for a configuration and its vocabularies."""
    model = Transformer(
        source_vocab_size=src_vocab.size, target_vocab_size=tgt_vocab.size, **vars(cfg.model)
    )
    model.build()
    return model


def read_weights(model: Transformer, prefix: str) -> None:
    """Reads the model weights of checkpoint `prefix` into a built `model` (anything else the
    checkpoint holds, such as the optimizer, is skipped)."""
    tf.train.Checkpoint(model=model).read(prefix).expect_partial().assert_existing_objects_matched()


def load_model(
    model_dir: str, checkpoint: str = ""
) -> tuple[Transformer, Config, Vocabulary, Vocabulary, str]:
    """Reads config, vocabularies and weights from a model directory.

    Args:
        model_dir: the model directory.
        checkpoint: which checkpoint: a choice or a prefix (see `find_checkpoint`).

    Returns:
        `(model, config, source_vocab, target_vocab, checkpoint_prefix)`.
    """
    cfg = read_config(model_dir)
    src_vocab, tgt_vocab = load_vocabularies(model_dir)
    model = build_model(cfg, src_vocab, tgt_vocab)
    prefix = find_checkpoint(model_dir, checkpoint)
    read_weights(model, prefix)
    return model, cfg, src_vocab, tgt_vocab, prefix
