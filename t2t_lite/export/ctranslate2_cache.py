"""The CTranslate2 exports kept in a model directory, one per checkpoint, made on first use.

    <model_dir>/ctranslate2/<checkpoint>-<key>/     an `export_ctranslate2` directory
        ctranslate2_checkpoint.json                  the checkpoint it was made from

The JSON records the checkpoint prefix and the size and modification time of its `.index`
file; `<key>` is a hash of the same, so a checkpoint that is replaced (a new average under the
same name) gets a new export. An export is built in a temporary directory, its JSON written
into it, and the whole renamed into place: other processes see a complete export or none, and
when two build the same one at the same time, the first rename wins and both use it. Exports
whose checkpoint no longer exists as recorded are removed after a new one is built.

If the model directory cannot be written, the export goes to a temporary directory instead,
removed when the `cached_export` block ends (a loaded CTranslate2 model no longer needs it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

from absl import logging

from t2t_lite.constants import CTRANSLATE2_CACHE, CTRANSLATE2_CHECKPOINT


def checkpoint_identity(model_dir: str, prefix: str) -> dict:
    """What an export was made from: the checkpoint prefix (relative to `model_dir` when inside
    it) and the size and modification time (ns) of its `.index` file."""
    stat = os.stat(prefix + ".index")
    relative = os.path.relpath(os.path.abspath(prefix), os.path.abspath(model_dir))
    name = os.path.abspath(prefix) if relative.startswith("..") else relative
    return {"checkpoint": name, "index_size": stat.st_size, "index_mtime_ns": stat.st_mtime_ns}


def cache_entry(model_dir: str, identity: dict) -> str:
    """The export directory of a checkpoint: `<model_dir>/ctranslate2/<name>-<key>`."""
    key = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", identity["checkpoint"]).strip("-.")
    return os.path.join(model_dir, CTRANSLATE2_CACHE, f"{name}-{key}")


def _recorded(entry: str) -> dict | None:
    """The identity stored in an export directory, or None (missing or unreadable)."""
    try:
        with open(os.path.join(entry, CTRANSLATE2_CHECKPOINT), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_current(model_dir: str, recorded: dict | None) -> bool:
    """Whether the checkpoint of a recorded identity still exists unchanged."""
    if not recorded or "checkpoint" not in recorded:
        return False
    prefix = os.path.join(model_dir, recorded["checkpoint"])  # an absolute name stays absolute
    try:
        return checkpoint_identity(model_dir, prefix) == recorded
    except OSError:
        return False


def _build(export_fn, identity: dict, directory: str) -> None:
    """Fills the existing empty `directory` with an export and its identity JSON."""
    export_fn(directory)
    with open(os.path.join(directory, CTRANSLATE2_CHECKPOINT), "w", encoding="utf-8") as f:
        json.dump(identity, f, indent=2)
        f.write("\n")


def _remove_stale(model_dir: str, keep: str) -> None:
    """Removes the exports whose checkpoint is gone or changed (never `keep`)."""
    cache = os.path.join(model_dir, CTRANSLATE2_CACHE)
    for name in os.listdir(cache):
        entry = os.path.join(cache, name)
        if name.startswith(".") or os.path.samefile(entry, keep) or not os.path.isdir(entry):
            continue
        if not _is_current(model_dir, _recorded(entry)):
            logging.info("removing the CTranslate2 export of a replaced checkpoint: %s", entry)
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def cached_export(model_dir: str, prefix: str, export_fn) -> Iterator[str]:
    """Yields a CTranslate2 export of checkpoint `prefix`, from the cache or made now.

    Args:
        model_dir: the model directory (holds the cache).
        prefix: the checkpoint prefix (from `t2t_lite.model_dir.find_checkpoint`).
        export_fn: `export_fn(directory)` writes the export of `prefix` into an existing,
            empty directory (e.g. `export_ctranslate2` with the model's weights read).

    Yields:
        The export directory; valid inside the `with` block (a temporary export, made when
        the model directory is read-only, is removed at its end).
    """
    identity = checkpoint_identity(model_dir, prefix)
    entry = cache_entry(model_dir, identity)
    if _recorded(entry) == identity:
        yield entry
        return
    try:
        cache, name = os.path.split(entry)
        os.makedirs(cache, exist_ok=True)
        temp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=cache)
    except OSError as e:
        logging.warning(
            "cannot cache the CTranslate2 export in %s (%s): exporting to a temporary directory",
            model_dir,
            e,
        )
        with tempfile.TemporaryDirectory() as temp:
            _build(export_fn, identity, temp)
            yield temp
        return
    try:
        logging.info("exporting %s to CTranslate2 in %s", prefix, entry)
        _build(export_fn, identity, temp)
        try:
            os.rename(temp, entry)  # fails if another process made it first
        except OSError:
            if _recorded(entry) != identity:
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    _remove_stale(model_dir, entry)
    yield entry
