"""Reading a model directory: its config, a checkpoint choice, and the model with its weights.

The directory's layout (file and folder names) is defined in `t2t_lite.constants`. Every
checkpoint is verified when it is chosen: all its tensors are read (so a truncated, empty or
damaged file shows, through TensorFlow's checksums), and its model variables are compared
with the model the configuration and vocabularies build. The default choice skips an
unreadable checkpoint with a warning; a checkpoint named explicitly must be readable.

Example:
    >>> model, cfg, src_vocab, tgt_vocab, prefix = load_model("runs/m")
    >>> prefix
    'runs/m/averaged/ckpt-3000'
"""

from __future__ import annotations

import glob
import os

import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2

from t2t_lite.config import Config, ConfigError, load_config
from t2t_lite.constants import AVERAGED, BEST, CHECKPOINTS, CONFIG_FILE
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary, load_vocabularies

CHECKPOINT_CHOICES = ("latest", "best", "averaged")
# The key under which a checkpoint stores its object graph (names of objects and variables).
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_SHOWN = 3  # variables named in a message about differing variables


class ModelDirError(Exception):
    """A model directory that cannot be used as asked; the message says which file and why.

    Raised for an unreadable or incompatible checkpoint, a directory another `t2t-train`
    writes, and a write that failed (a full disk); the command-line tools report it in one
    line.
    """


class CorruptCheckpointError(ModelDirError):
    """A checkpoint whose files cannot be read completely (truncated, empty or damaged)."""


def read_config(model_dir: str) -> Config:
    """The configuration saved in a model directory; clear error if there is none.

    Raises:
        ConfigError: `model_dir` is not a model directory, or its `config.yaml` does not fit
            this version of t2t_lite (e.g. an unknown key), naming the key.
    """
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ConfigError(f"{model_dir} is a file, not a model directory")
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise ConfigError(f"{model_dir} is not a model directory: {CONFIG_FILE} is missing")
    try:
        return load_config(path, saved=True)
    except ConfigError as e:
        raise ConfigError(
            f"{e}; {path} was written by an incompatible version of t2t_lite or edited by hand"
        ) from None


def verify_checkpoint(prefix: str) -> None:
    """Reads every tensor of the checkpoint `prefix`; raises if any cannot be read completely.

    Raises:
        CorruptCheckpointError: naming the checkpoint and what is wrong with it.
    """
    if not tf.io.gfile.exists(prefix + ".index"):
        raise CorruptCheckpointError(f"checkpoint {prefix} is incomplete: its .index is missing")
    try:
        reader = tf.train.load_checkpoint(prefix)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except IndexError as e:  # the reader's error for a data file shorter than its index says
        raise CorruptCheckpointError(f"checkpoint {prefix} is truncated ({e})") from None
    except (tf.errors.OpError, ValueError, RuntimeError) as e:
        reason = (getattr(e, "message", None) or str(e)).strip().splitlines()[0]
        raise CorruptCheckpointError(f"checkpoint {prefix} is unreadable ({reason})") from None


def model_variable_shapes(model: Transformer) -> dict[str, list[int]]:
    """`{path: shape}` of a model's variables, paths as a checkpoint names them (`encoder/...`)."""
    shapes: dict[str, list[int]] = {}

    def walk(obj, path: str, ancestors: frozenset[int]) -> None:
        for name, child in tf.train.TrackableView.children(obj).items():
            child_path = f"{path}/{name}" if path else name
            if hasattr(child, "shape") and hasattr(child, "assign"):  # a (Keras) variable
                shapes[child_path] = list(child.shape)
            elif id(child) not in ancestors:
                walk(child, child_path, ancestors | {id(child)})

    walk(model, "", frozenset({id(model)}))
    return shapes


def checkpoint_variable_shapes(prefix: str, root: str = "model") -> dict[str, list[int]]:
    """`{path: shape}` of the variables a checkpoint holds under its object `root`."""
    reader = tf.train.load_checkpoint(prefix)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
    stored = reader.get_variable_to_shape_map()
    shapes: dict[str, list[int]] = {}

    def walk(node_id: int, path: str, ancestors: frozenset[int]) -> None:
        for child in graph.nodes[node_id].children:
            child_path = f"{path}/{child.local_name}" if path else child.local_name
            node = graph.nodes[child.node_id]
            values = [a.checkpoint_key for a in node.attributes if a.name == "VARIABLE_VALUE"]
            if values:
                shapes[child_path] = list(stored[values[0]])
            elif child.node_id not in ancestors:
                walk(child.node_id, child_path, ancestors | {child.node_id})

    for child in graph.nodes[0].children:
        if child.local_name == root:
            walk(child.node_id, "", frozenset({child.node_id}))
    return shapes


def check_checkpoint_fits(
    prefix: str, model: Transformer, src_vocab: Vocabulary, tgt_vocab: Vocabulary
) -> None:
    """Checks that the checkpoint `prefix` holds exactly the variables of `model`, same shapes.

    Raises:
        ModelDirError: saying what differs: embeddings sized for another vocabulary (naming
            the vocabulary file), or variables missing, unknown or of another shape (a
            checkpoint of an incompatible version of t2t_lite or of another configuration).
    """
    expected, found = model_variable_shapes(model), checkpoint_variable_shapes(prefix)
    for side, vocab in (("source", src_vocab), ("target", tgt_vocab)):
        path = f"{side}_embedding/embeddings"
        if path in expected and path in found and expected[path][0] != found[path][0]:
            raise ModelDirError(
                f"the vocabulary {vocab.path} has {vocab.size} pieces but checkpoint {prefix} "
                f"has {side} embeddings for {found[path][0]}: the vocabulary does not belong to "
                "this checkpoint"
            )
    problems = []
    missing = sorted(set(expected) - set(found))
    unknown = sorted(set(found) - set(expected))
    reshaped = [p for p in expected if p in found and expected[p] != found[p]]
    if missing:
        problems.append(f"it lacks {len(missing)} variables of the model ({_some(missing)})")
    if unknown:
        problems.append(f"it has {len(unknown)} variables the model lacks ({_some(unknown)})")
    if reshaped:
        shapes = ", ".join(f"{p} {found[p]} != {expected[p]}" for p in reshaped[:_SHOWN])
        problems.append(f"{len(reshaped)} variables differ in shape ({shapes})")
    if problems:
        raise ModelDirError(
            f"checkpoint {prefix} does not fit the model built from {CONFIG_FILE}: "
            + "; ".join(problems)
            + ". It was written by an incompatible version of t2t_lite or with another "
            "configuration"
        )


def _some(paths: list[str]) -> str:
    return ", ".join(paths[:_SHOWN]) + (", ..." if len(paths) > _SHOWN else "")


def checkpoint_prefixes(directory: str) -> list[str]:
    """The checkpoints the `checkpoint` state file of `directory` lists, oldest first; without
    a state file, the `ckpt-N` checkpoints whose index file is there, by step."""
    state = tf.train.get_checkpoint_state(directory)
    if state:
        return list(state.all_model_checkpoint_paths)
    indexes = glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index"))
    prefixes = [path[: -len(".index")] for path in indexes]
    return sorted((p for p in prefixes if p.rsplit("-", 1)[1].isdigit()), key=checkpoint_step)


def find_checkpoint(model_dir: str, checkpoint: str = "") -> str:
    """Resolves a checkpoint choice to the prefix of a verified (readable) checkpoint.

    Args:
        model_dir: the model directory.
        checkpoint: "" for the default: `averaged/` if it is as new as the latest training
            checkpoint (an average made at the end of training), else `best/` if kept, else
            the latest; an unreadable one is skipped with a warning (down to older training
            checkpoints). Or one of "latest", "best", "averaged"; or an explicit checkpoint
            prefix or directory: these must be readable.

    Raises:
        FileNotFoundError: naming what was looked for and where.
        CorruptCheckpointError: the checkpoint named is unreadable (or, by default, all are).
    """
    if checkpoint and checkpoint not in CHECKPOINT_CHOICES:
        path = checkpoint if os.path.isdir(checkpoint) else None
        prefix = tf.train.latest_checkpoint(path) if path else checkpoint
        if prefix and tf.io.gfile.exists(prefix + ".index"):
            verify_checkpoint(prefix)
            return prefix
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    order = [checkpoint] if checkpoint else [AVERAGED, BEST, "latest"]
    training = checkpoint_prefixes(os.path.join(model_dir, CHECKPOINTS))
    latest = training[-1] if training else None
    candidates = []
    for choice in order:
        folder = CHECKPOINTS if choice == "latest" else choice
        prefixes = checkpoint_prefixes(os.path.join(model_dir, folder))[::-1]  # newest first
        if checkpoint:
            prefixes = prefixes[:1]
        elif choice == AVERAGED:  # an average older than the latest checkpoint is stale
            prefixes = [p for p in prefixes if checkpoint_step(p) >= checkpoint_step(latest)]
        candidates += prefixes
    for prefix in candidates:
        try:
            verify_checkpoint(prefix)
            return prefix
        except CorruptCheckpointError as e:
            if checkpoint:
                raise
            logging.warning("%s: skipped it", e)
    wanted = checkpoint or "any checkpoint"
    if candidates:
        raise CorruptCheckpointError(
            f"{model_dir}: no readable checkpoint ({', '.join(candidates)} are all unreadable)"
        )
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
        checkpoint: the checkpoint choice of `find_checkpoint`.

    Returns:
        `(model, config, source_vocab, target_vocab, checkpoint_prefix)`.

    Raises:
        ConfigError: no model directory, or a config this version cannot read.
        FileNotFoundError: no checkpoint (as chosen).
        ModelDirError: the checkpoint is unreadable or does not fit the model.
    """
    cfg = read_config(model_dir)
    src_vocab, tgt_vocab = load_vocabularies(model_dir)
    model = build_model(cfg, src_vocab, tgt_vocab)
    prefix = find_checkpoint(model_dir, checkpoint)
    check_checkpoint_fits(prefix, model, src_vocab, tgt_vocab)
    read_weights(model, prefix)
    return model, cfg, src_vocab, tgt_vocab, prefix
