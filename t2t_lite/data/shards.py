"""Tokenized corpora on disk: memory-mapped shards of token ids, and a manifest vouching for them.

The cache of one training corpus is a directory:

    manifest.json                 what the shards were made from and their checksums
    00000.src_values.npy          source ids of shard 0, back to back (uint16, or int32 when
                                  the vocabulary has more than 65,536 pieces)
    00000.src_splits.npy          int64 row splits: sentence i is values[splits[i]:splits[i+1]]
    00000.tgt_values.npy, 00000.tgt_splits.npy, 00001.* ...

A shard is read as a `TokenPairs` whose arrays are `np.memmap`s: nothing is loaded until a
batch touches it. The manifest records the source files (path, size, modification time and
the SHA-256 of the bytes read), the vocabularies' SHA-256, the length limits and every shard
file's SHA-256, so `open_cache` can tell a cache that still fits from one to rebuild: a
changed source or vocabulary, other limits, or a missing, truncated or corrupt shard file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging

from t2t_lite.atomic import write_file_atomic
from t2t_lite.data.sources import file_sha256
from t2t_lite.data.token_pairs import TokenPairs

FORMAT = 1
MANIFEST = "manifest.json"
FIELDS = tuple(f.name for f in dataclasses.fields(TokenPairs))


@dataclasses.dataclass(frozen=True)
class ShardedCorpus:
    """A tokenized training corpus: its shards and its sampling weight.

    Attributes:
        shards: the shards, in corpus order (each a `TokenPairs`, usually memory-mapped).
        weight: batches are drawn from several corpora in proportion to their weights.
        name: what log lines call it (e.g. its source file).
    """

    shards: tuple[TokenPairs, ...]
    weight: float = 1.0
    name: str = ""

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards)


def shard_path(directory: str, index: int, field: str) -> str:
    return os.path.join(directory, f"{index:05d}.{field}.npy")


def ids_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else int32: half the disk and page cache for most models."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.int32)


def write_shard(pairs: TokenPairs, directory: str, index: int, dtype: np.dtype) -> dict[str, Any]:
    """Writes shard `index` of `directory`; returns its manifest record (pairs, checksums)."""
    files = {}
    for field in FIELDS:
        array = getattr(pairs, field)
        array = array.astype(dtype if field.endswith("values") else np.int64, copy=False)
        path = shard_path(directory, index, field)
        np.save(path, array)
        files[field] = file_sha256(path)
    return {"index": index, "pairs": len(pairs), "files": files}


def write_manifest(directory: str, manifest: dict[str, Any]) -> None:
    write_file_atomic(
        os.path.join(directory, MANIFEST), json.dumps({"format": FORMAT, **manifest}, indent=1)
    )


def read_manifest(directory: str) -> dict[str, Any] | None:
    """The manifest of `directory`, or None if it is missing, unreadable or of another format."""
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def stale_reason(manifest: dict[str, Any] | None, expected: dict[str, Any]) -> str | None:
    """Why a cache with `manifest` does not fit `expected` (its inputs), or None if it does.

    `expected` holds the manifest's keys that describe the inputs: "sources" (a list of
    `{path, size, mtime_ns}` or a fingerprint), "vocab" (hashes) and "max_lengths".
    """
    if manifest is None:
        return "no complete cache"
    for key, value in expected.items():
        if key == "sources":
            if _identities(manifest.get("sources", [])) != _identities(value):
                return "a source file changed since its shards were made"
        elif manifest.get(key) != value:
            return f"{key} changed since the shards were made"
    return None


def _identities(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What identifies each source (the SHA-256 of its bytes is left out)."""
    return [{k: s.get(k) for k in ("path", "size", "mtime_ns", "fingerprint")} for s in sources]


def open_shards(directory: str, manifest: dict[str, Any], verify: bool = True) -> list[TokenPairs]:
    """The shards listed in `manifest`, memory-mapped.

    Args:
        directory: the cache directory.
        manifest: its manifest.
        verify: check every file's SHA-256 against the manifest first.

    Raises:
        ValueError: a file is missing, truncated or corrupt (its checksum differs).
    """
    shards = []
    for record in manifest["shards"]:
        arrays = {}
        for field in FIELDS:
            path = shard_path(directory, record["index"], field)
            if verify:
                try:
                    digest = file_sha256(path)
                except OSError as e:
                    raise ValueError(f"{path}: cannot read: {e}") from None
                if digest != record["files"][field]:
                    raise ValueError(f"{path}: checksum mismatch (truncated or corrupt)")
            arrays[field] = np.load(path, mmap_mode="r")
        pairs = TokenPairs(**arrays)
        if len(pairs) != record["pairs"]:
            raise ValueError(f"{directory}: shard {record['index']} has the wrong size")
        shards.append(pairs)
    return shards


def open_cache(directory: str, expected: dict[str, Any]) -> list[TokenPairs] | None:
    """The shards of `directory` if its manifest fits `expected` and every file checks out;
    else None (with a log line saying why, when there was a cache)."""
    manifest = read_manifest(directory)
    reason = stale_reason(manifest, expected)
    if reason is None:
        try:
            return open_shards(directory, manifest)
        except ValueError as e:
            reason = str(e)
    if os.path.isdir(directory):
        logging.warning("Rebuilding %s: %s", directory, reason)
    return None


def total_tokens(shards: Sequence[TokenPairs]) -> int:
    """Source plus target pieces of all shards (from the row splits only)."""
    return sum(int(s.src_splits[-1]) + int(s.tgt_splits[-1]) for s in shards)
