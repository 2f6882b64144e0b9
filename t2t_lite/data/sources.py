"""Sentence pairs for a split, from parallel text files or TensorFlow Datasets.

`check_sources` validates the `data:` settings without reading any data, so a missing file or
an unknown dataset stops a run before any work starts; `load_pairs` reads a split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence

from absl import logging

from t2t_lite.config import DataConfig
from t2t_lite.data.errors import DataError
from t2t_lite.data.paths import resolve_path
from t2t_lite.data.text import read_parallel
from t2t_lite.data.tfds_source import read_tfds_pairs, tfds_builder, tfds_languages, tfds_split

SPLITS = ("train", "valid")


@dataclasses.dataclass(frozen=True)
class CorpusSource:
    """One training corpus: two aligned text files (resolved paths), or the TFDS train split.

    Attributes:
        src: the source file ("" for TFDS).
        tgt: the target file ("" for TFDS).
        weight: its share of the batches when there are several corpora.
    """

    src: str = ""
    tgt: str = ""
    weight: float = 1.0

    @property
    def name(self) -> str:
        """What log lines and cache folders call the corpus."""
        return f"{self.src} / {self.tgt}" if self.src else "tfds"


def train_corpora(cfg: DataConfig) -> list[CorpusSource]:
    """The training corpora: `data.train`, else `data.train_src`/`data.train_tgt`, else TFDS.

    Raises:
        DataError: a file does not exist, or no training data is configured.
    """
    if cfg.source == "tfds":
        return [CorpusSource()]
    if cfg.train:
        return [CorpusSource(resolve_path(c.src), resolve_path(c.tgt), c.weight) for c in cfg.train]
    return [CorpusSource(*_text_paths(cfg, "train"))]


def _text_paths(cfg: DataConfig, split: str) -> tuple[str, str]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    src_key, tgt_key = f"{split}_src", f"{split}_tgt"
    src, tgt = getattr(cfg, src_key), getattr(cfg, tgt_key)
    if not src or not tgt:
        raise DataError(f"data.source=text needs data.{src_key} and data.{tgt_key}")
    return resolve_path(src), resolve_path(tgt)


def check_sources(cfg: DataConfig, splits: Sequence[str] = SPLITS) -> None:
    """Checks that every file of `splits` exists (every corpus of `data.train`), or that the
    TFDS dataset is known.

    Raises:
        DataError: naming the missing file (and where it was looked for) or the bad setting.
    """
    if cfg.source == "tfds":
        tfds_builder(cfg)
        return
    for split in splits:
        if split == "train":
            train_corpora(cfg)
        else:
            _text_paths(cfg, split)


def _drop_empty(src: list[str], tgt: list[str], where: str) -> tuple[list[str], list[str]]:
    keep = [i for i, (s, t) in enumerate(zip(src, tgt, strict=True)) if s and t]
    if len(keep) == len(src):
        return src, tgt
    logging.info(
        "%s: skipped %d of %d pairs with an empty side", where, len(src) - len(keep), len(src)
    )
    return [src[i] for i in keep], [tgt[i] for i in keep]


def load_pairs(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    """Reads the sentence pairs of a split, whitespace-normalized, without empty pairs.

    Args:
        cfg: the `data:` section; `source` chooses text files or TFDS.
        split: "train" or "valid".

    Returns:
        `(sources, targets)`, aligned lists of equal length.

    Raises:
        DataError: missing file, unknown dataset, different line counts, invalid UTF-8, or
            no pair left.
    """
    if cfg.source == "tfds":
        where = f"{cfg.tfds_name}[{tfds_split(cfg, split)}]"
        src, tgt = read_tfds_pairs(cfg, split)
    elif split == "train" and cfg.train:
        where, src, tgt = "data.train", [], []
        for corpus in train_corpora(cfg):
            more_src, more_tgt = read_parallel(corpus.src, corpus.tgt)
            src += more_src
            tgt += more_tgt
    else:
        src_path, tgt_path = _text_paths(cfg, split)
        where = f"{src_path} / {tgt_path}"
        src, tgt = read_parallel(src_path, tgt_path)
    src, tgt = _drop_empty(src, tgt, where)
    if not src:
        raise DataError(f"{where}: no sentence pairs")
    logging.info("%s: %d pairs", where, len(src))
    return src, tgt


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, as hex (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_fingerprint(cfg: DataConfig, split: str) -> str:
    """A hash that changes whenever the data `load_pairs(cfg, split)` returns may change.

    Text files are hashed by content; a TFDS split by name, version, split, languages and
    data dir. Used to key caches of tokenized data.
    """
    if cfg.source == "tfds":
        builder = tfds_builder(cfg)
        parts = {
            "tfds": builder.info.full_name,
            "split": tfds_split(cfg, split),
            "langs": tfds_languages(cfg, builder),
            "data_dir": builder.data_dir,
        }
    elif split == "train" and cfg.train:
        parts = {"text": [[file_sha256(c.src), file_sha256(c.tgt)] for c in train_corpora(cfg)]}
    else:
        parts = {"text": [file_sha256(p) for p in _text_paths(cfg, split)]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
