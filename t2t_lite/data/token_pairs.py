"""Tokenized sentence pairs stored flat in NumPy, and the on-disk cache of the training set.

Ids are pieces only (no BOS/EOS); `t2t_lite.data.pipeline` adds the special ids when it builds
examples. Each side is a ragged array: `values` holds every sentence's ids back to back and
`splits[i]:splits[i + 1]` is sentence i, like `tf.RaggedTensor.from_row_splits`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import time
from collections.abc import Sequence

import numpy as np
from absl import logging

from t2t_lite.atomic import atomic_open
from t2t_lite.config import Config
from t2t_lite.data.errors import DataError
from t2t_lite.data.sources import file_sha256, load_pairs, source_fingerprint
from t2t_lite.vocab import Vocabulary

_CACHE_FORMAT = 1
_ENCODE_CHUNK = 100_000


def _ragged(ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=splits[-1])
    return values, splits


@dataclasses.dataclass(frozen=True, eq=False)
class TokenPairs:
    """Aligned source and target id sequences.

    Attributes:
        src_values: int32 `[sum of source lengths]`, the source ids back to back.
        src_splits: int64 `[N + 1]`, sentence i is `src_values[src_splits[i]:src_splits[i+1]]`.
        tgt_values: int32, the target ids back to back.
        tgt_splits: int64 `[N + 1]`.
    """

    src_values: np.ndarray
    src_splits: np.ndarray
    tgt_values: np.ndarray
    tgt_splits: np.ndarray

    @classmethod
    def from_lists(
        cls, src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]]
    ) -> TokenPairs:
        """Builds pairs from two equally long lists of id lists (e.g. `Vocabulary.encode`)."""
        if len(src_ids) != len(tgt_ids):
            raise DataError(f"{len(src_ids)} source but {len(tgt_ids)} target sequences")
        return cls(*_ragged(src_ids), *_ragged(tgt_ids))

    @classmethod
    def concatenate(cls, parts: Sequence[TokenPairs]) -> TokenPairs:
        """Joins several TokenPairs in order."""

        def join(values: list[np.ndarray], splits: list[np.ndarray]) -> list[np.ndarray]:
            offsets = np.cumsum([0] + [s[-1] for s in splits[:-1]])
            tails = [s[1:] + o for s, o in zip(splits, offsets, strict=True)]
            return [np.concatenate(values), np.concatenate([[0], *tails]).astype(np.int64)]

        src = join([p.src_values for p in parts], [p.src_splits for p in parts])
        tgt = join([p.tgt_values for p in parts], [p.tgt_splits for p in parts])
        return cls(*src, *tgt)

    def __len__(self) -> int:
        return len(self.src_splits) - 1

    @property
    def src_lengths(self) -> np.ndarray:
        """int64 `[N]`: pieces per source sentence (EOS not counted)."""
        return np.diff(self.src_splits)

    @property
    def tgt_lengths(self) -> np.ndarray:
        """int64 `[N]`: pieces per target sentence (BOS/EOS not counted)."""
        return np.diff(self.tgt_splits)

    def select(self, keep: np.ndarray) -> TokenPairs:
        """The pairs where the boolean `[N]` mask `keep` is True, in order."""

        def take(values: np.ndarray, splits: np.ndarray) -> list[np.ndarray]:
            lengths = np.diff(splits)
            kept = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
            return [values[np.repeat(keep, lengths)], kept]

        return TokenPairs(
            *take(self.src_values, self.src_splits), *take(self.tgt_values, self.tgt_splits)
        )

    def save(self, path: str) -> None:
        """Writes an `.npz` file atomically (temporary file, then rename)."""
        with atomic_open(path, binary=True) as f:
            np.savez(f, **dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str) -> TokenPairs:
        """Reads a file written by `save`."""
        with np.load(path) as data:
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def encode_pairs(
    src_vocab: Vocabulary,
    tgt_vocab: Vocabulary,
    src_texts: Sequence[str],
    tgt_texts: Sequence[str],
) -> TokenPairs:
    """Tokenizes aligned texts in chunks, so memory stays close to the flat id arrays."""
    if len(src_texts) != len(tgt_texts):
        raise DataError(f"{len(src_texts)} source but {len(tgt_texts)} target sentences")
    chunks = [
        TokenPairs.from_lists(
            src_vocab.encode(src_texts[i : i + _ENCODE_CHUNK]),
            tgt_vocab.encode(tgt_texts[i : i + _ENCODE_CHUNK]),
        )
        for i in range(0, len(src_texts), _ENCODE_CHUNK)
    ]
    return TokenPairs.concatenate(chunks) if chunks else TokenPairs.from_lists([], [])


def filter_by_length(
    pairs: TokenPairs, max_src_length: int, max_tgt_length: int
) -> tuple[TokenPairs, int]:
    """Drops pairs whose source or target is longer than allowed, EOS included.

    Returns:
        `(kept_pairs, number_dropped)`.
    """
    keep = (pairs.src_lengths + 1 <= max_src_length) & (pairs.tgt_lengths + 1 <= max_tgt_length)
    return pairs.select(keep), int(len(pairs) - keep.sum())


def cached_train_pairs(
    cfg: Config, src_vocab: Vocabulary, tgt_vocab: Vocabulary, cache_dir: str | None
) -> TokenPairs:
    """The tokenized, length-filtered training pairs, from `cache_dir` when possible.

    The cache file is named by a hash of the training data, both vocabularies and the length
    limits, so any change to them tokenizes again; a hit reads no text at all.

    Args:
        cfg: the configuration; `cfg.data` is used.
        src_vocab: source vocabulary.
        tgt_vocab: target vocabulary.
        cache_dir: directory of cache files (created if missing); None disables the cache.

    Raises:
        DataError: as `load_pairs`, or when no pair is short enough.
    """
    data = cfg.data
    key = {
        "format": _CACHE_FORMAT,
        "data": source_fingerprint(data, "train"),
        "vocab": [file_sha256(src_vocab.path), file_sha256(tgt_vocab.path)],
        "max_lengths": [data.max_src_length, data.max_tgt_length],
    }
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = os.path.join(cache_dir, f"train-{name}.npz") if cache_dir else None
    if path and os.path.isfile(path):
        pairs = TokenPairs.load(path)
        logging.info("Loaded %d tokenized training pairs from %s", len(pairs), path)
        return pairs
    start = time.perf_counter()
    src, tgt = load_pairs(data, "train")
    pairs, dropped = filter_by_length(
        encode_pairs(src_vocab, tgt_vocab, src, tgt), data.max_src_length, data.max_tgt_length
    )
    logging.info(
        "Tokenized %d training pairs in %.1fs; dropped %d longer than %d (source) or %d "
        "(target) pieces with EOS",
        len(src),
        time.perf_counter() - start,
        dropped,
        data.max_src_length,
        data.max_tgt_length,
    )
    if not len(pairs):
        raise DataError(
            f"all {len(src)} training pairs are longer than data.max_src_length="
            f"{data.max_src_length} or data.max_tgt_length={data.max_tgt_length}"
        )
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        pairs.save(path)
        logging.info("Cached tokenized training pairs in %s", path)
    return pairs
