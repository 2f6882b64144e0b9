"""Training data prepared in one streaming pass: vocabulary sample, tokenized shards, manifest.

`prepare_training_data` turns the training corpora into memory-mapped shards
(`t2t_lite.data.shards`), training the vocabularies on the way when the model directory is
new. Each corpus is read exactly once, line by line, and never held whole in memory:

1. The pass reads the two files side by side, checks UTF-8, normalizes whitespace, skips
   pairs with an empty side, hashes the bytes it reads (for the manifest), counts the lines
   (two files of different lengths stop it with one line naming both files and counts), and
   writes the normalized pairs into raw chunks of `CHUNK_PAIRS` pairs in a temporary folder.
   When a vocabulary is to be trained, the same pass draws its uniform random sample of
   `vocab.input_sentence_size` sentences (reservoir sampling, `Reservoir`).
2. When the pass is over, SentencePiece trains on the sample (unless the vocabularies exist
   already, in which case each chunk is handed to tokenization as soon as it is complete,
   while the pass goes on).
3. A pool of processes, one per core, each with its own SentencePiece processors, tokenizes
   the chunks, drops pairs longer than `data.max_src_length` / `data.max_tgt_length`, and
   writes one shard per chunk; the raw chunk is deleted once its shard is written.

So the text is read from the original files once; the raw chunks are read once more, from
the temporary folder, by the tokenizers. Memory is bounded by the sample, one chunk per
process and the reader's buffers, whatever the corpus size.

Each corpus is cached on its own in `<model_dir>/data_cache/<name>-<hash of its paths>/`.
A cache is built in a temporary sibling folder and renamed into place when complete, so an
interrupted or failed preparation leaves no half-built cache. A later run reuses it when its
manifest still fits (see `t2t_lite.data.shards.open_cache`) and rebuilds it otherwise.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import random
import shutil
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import sentencepiece as spm
from absl import logging

from t2t_lite.config import Config
from t2t_lite.constants import DATA_CACHE
from t2t_lite.data import shards as shard_files
from t2t_lite.data.errors import DataError
from t2t_lite.data.shards import ShardedCorpus
from t2t_lite.data.sources import CorpusSource, file_sha256, source_fingerprint, train_corpora
from t2t_lite.data.text import decode_line
from t2t_lite.data.tfds_source import read_tfds_pairs
from t2t_lite.data.token_pairs import TokenPairs, filter_by_length
from t2t_lite.vocab import Vocabulary, build_vocabularies, load_vocabularies

CHUNK_PAIRS = 200_000
_ENCODE_BATCH = 10_000


class Reservoir:
    """A uniform random sample of at most `size` items of a stream (Li's algorithm L).

    After `n` items, every `size`-subset of them is equally likely; the cost per item not
    taken is a comparison. Items carry a tag (e.g. 0 source, 1 target). While the stream has
    no more than `size` items, all are kept in their order.

    Args:
        size: the sample size; 0 keeps every item.
        seed: seeds the sampling.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seen = size, 0
        self.items: list[str] = []
        self.tags: list[int] = []
        self._rng = random.Random(seed)
        self._w = 1.0
        self._next = size - 1  # index of the next item to take (advanced once full)

    @property
    def overflowed(self) -> bool:
        """Whether items were left out (the sample is no longer the whole stream)."""
        return 0 < self.size < self.seen

    def add(self, item: str, tag: int) -> None:
        seen = self.seen
        self.seen = seen + 1
        if not self.size or seen < self.size:
            self.items.append(item)
            self.tags.append(tag)
            if seen + 1 == self.size:
                self._advance()
        elif seen == self._next:
            slot = self._rng.randrange(self.size)
            self.items[slot], self.tags[slot] = item, tag
            self._advance()

    def _advance(self) -> None:
        rng, k = self._rng, self.size
        self._w *= math.exp(math.log(1.0 - rng.random()) / k)
        skip = math.floor(math.log(1.0 - rng.random()) / math.log1p(-self._w)) if self._w < 1 else 0
        self._next += skip + 1

    def texts(self, tag: int) -> list[str]:
        """The sampled items with `tag`, in the order they were added (unless overflowed)."""
        return [item for item, t in zip(self.items, self.tags, strict=True) if t == tag]


def _open(path: str):
    if path.endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    return open(path, "rb", buffering=1 << 20)


def _count_rest(f) -> int:
    return sum(1 for _ in f)


class _HashingReader:
    """Iterates the raw lines of a file, feeding every byte into a SHA-256."""

    def __init__(self, path: str):
        self.path = path
        self.digest = hashlib.sha256()
        self._file = _open(path)

    def __iter__(self) -> Iterator[bytes]:
        update = self.digest.update
        for line in self._file:
            update(line)
            yield line

    def close(self) -> None:
        self._file.close()


def _text_pairs(corpus: CorpusSource, hashes: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Streams the normalized pairs of two parallel files; fills `hashes` when done.

    Raises:
        DataError: invalid UTF-8 (file and line), unreadable file, or different line counts.
    """
    readers = [_HashingReader(corpus.src), _HashingReader(corpus.tgt)]
    number = 0
    try:
        src_lines, tgt_lines = iter(readers[0]), iter(readers[1])
        for number, (raw_src, raw_tgt) in enumerate(
            itertools.zip_longest(src_lines, tgt_lines), start=1
        ):
            if raw_src is None or raw_tgt is None:
                counts = [number - 1, number - 1]
                longer = 0 if raw_tgt is None else 1
                counts[longer] += 1 + _count_rest(src_lines if longer == 0 else tgt_lines)
                raise DataError(
                    f"parallel files differ in length: {corpus.src} has {counts[0]} lines, "
                    f"{corpus.tgt} has {counts[1]} lines"
                )
            try:
                src, tgt = raw_src.decode("utf-8"), raw_tgt.decode("utf-8")
            except UnicodeDecodeError:
                for raw, path in [(raw_src, corpus.src), (raw_tgt, corpus.tgt)]:
                    decode_line(raw, f"{path}, line {number}")
                raise
            yield " ".join(src.split()), " ".join(tgt.split())
    except (OSError, EOFError) as e:
        raise DataError(f"{corpus.name}: cannot read: {e}") from None
    finally:
        for reader in readers:
            reader.close()
    hashes[corpus.src], hashes[corpus.tgt] = (r.digest.hexdigest() for r in readers)


def _source_records(corpus: CorpusSource, cfg: Config) -> list[dict[str, Any]]:
    """How the manifest identifies the corpus' sources (without the hashes of the bytes)."""
    if not corpus.src:
        return [{"fingerprint": source_fingerprint(cfg.data, "train")}]
    records = []
    for path in (corpus.src, corpus.tgt):
        stat = os.stat(path)
        records.append({"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return records


def _cache_dir(root: str, corpus: CorpusSource) -> str:
    key = hashlib.sha256(json.dumps([corpus.src, corpus.tgt]).encode()).hexdigest()[:16]
    base = os.path.basename(corpus.src) if corpus.src else "tfds"
    return os.path.join(root, f"{base}-{key}")


def _expected(
    sources: list[dict[str, Any]], cfg: Config, vocabs: tuple[Vocabulary, Vocabulary]
) -> dict[str, Any]:
    """The manifest entries a cache of a corpus whose `_source_records` are `sources` must
    have to be used with `vocabs`."""
    return {
        "sources": sources,
        "vocab": [file_sha256(v.path) for v in vocabs],
        "max_lengths": [cfg.data.max_src_length, cfg.data.max_tgt_length],
    }


# Tokenization workers: the processors are loaded once per process and model file.
_PROCESSORS: dict[str, spm.SentencePieceProcessor] = {}


def _processor(path: str) -> spm.SentencePieceProcessor:
    if path not in _PROCESSORS:
        _PROCESSORS[path] = spm.SentencePieceProcessor(model_file=path)
    return _PROCESSORS[path]


def _tokenize_chunk(job: dict[str, Any]) -> dict[str, Any]:
    """Tokenizes raw chunk `job["index"]` into a shard; returns its manifest record."""
    src_sp, tgt_sp = _processor(job["src_model"]), _processor(job["tgt_model"])
    raw = [os.path.join(job["raw_dir"], f"{job['index']:05d}.{side}") for side in ("src", "tgt")]
    parts, dropped = [], 0
    with open(raw[0], encoding="utf-8") as fs, open(raw[1], encoding="utf-8") as ft:
        while src := [line[:-1] for line in itertools.islice(fs, _ENCODE_BATCH)]:
            tgt = [line[:-1] for line in itertools.islice(ft, _ENCODE_BATCH)]
            pairs = TokenPairs.from_lists(
                src_sp.encode(src, out_type=int), tgt_sp.encode(tgt, out_type=int)
            )
            pairs, n = filter_by_length(pairs, *job["max_lengths"])
            parts.append(pairs)
            dropped += n
    pairs = TokenPairs.concatenate(parts) if parts else TokenPairs.from_lists([], [])
    record = shard_files.write_shard(pairs, job["out_dir"], job["index"], np.dtype(job["dtype"]))
    for path in raw:
        os.remove(path)
    return {**record, "dropped": dropped}


class _CorpusBuild:
    """The cache of one corpus while it is built: raw chunks, then shards, then the rename."""

    def __init__(self, corpus: CorpusSource, cfg: Config, final_dir: str):
        self.corpus, self.cfg, self.final_dir = corpus, cfg, final_dir
        # Left by a killed run (the model directory's lock keeps other writers out).
        for stale in glob.glob(glob.escape(final_dir) + ".building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.dir = f"{final_dir}.building-{os.getpid()}"
        self.raw_dir = os.path.join(self.dir, "raw")
        os.makedirs(self.raw_dir)
        self.hashes: dict[str, str] = {}
        self.sources = _source_records(corpus, cfg)
        self.chunks = 0
        self.read = self.empty = 0
        self.results: list[Any] = []

    def write_chunks(self, pairs: Iterator[tuple[str, str]], reservoirs: list[Reservoir]):
        """Splits `pairs` into raw chunk files, feeding the reservoirs; yields each finished
        chunk's index (so it can be tokenized while the pass goes on)."""
        files = None
        for src, tgt in pairs:
            self.read += 1
            if not src or not tgt:
                self.empty += 1
                continue
            if files is None:
                # Closed when the chunk is full, or after the last pair.
                files = [
                    open(os.path.join(self.raw_dir, f"{self.chunks:05d}.{side}"), "w", 1 << 20)  # noqa: SIM115
                    for side in ("src", "tgt")
                ]
                count = 0
            files[0].write(src + "\n")
            files[1].write(tgt + "\n")
            if reservoirs:  # one shared sample, or one per side
                reservoirs[0].add(src, 0)
                reservoirs[-1].add(tgt, 1)
            count += 1
            if count == CHUNK_PAIRS:
                for f in files:
                    f.close()
                files = None
                self.chunks += 1
                yield self.chunks - 1
        if files is not None:
            for f in files:
                f.close()
            self.chunks += 1
            yield self.chunks - 1

    def job(self, index: int, vocabs: tuple[Vocabulary, Vocabulary]) -> dict[str, Any]:
        return {
            "index": index,
            "raw_dir": self.raw_dir,
            "out_dir": self.dir,
            "src_model": vocabs[0].path,
            "tgt_model": vocabs[1].path,
            "max_lengths": [self.cfg.data.max_src_length, self.cfg.data.max_tgt_length],
            "dtype": shard_files.ids_dtype(max(v.size for v in vocabs)).name,
        }

    def finish(self, vocabs: tuple[Vocabulary, Vocabulary], seconds: float) -> list[TokenPairs]:
        """Collects the shards, writes the manifest, renames the folder into place."""
        records = sorted((r.get() for r in self.results), key=lambda r: r["index"])
        kept = sum(r["pairs"] for r in records)
        dropped = sum(r["dropped"] for r in records)
        data, name = self.cfg.data, self.corpus.name
        if self.empty:
            logging.info(
                "%s: skipped %d of %d pairs with an empty side", name, self.empty, self.read
            )
        if not kept:
            if not dropped:
                raise DataError(f"{name}: no sentence pairs")
            raise DataError(
                f"{name}: all {dropped} training pairs are longer than data.max_src_length="
                f"{data.max_src_length} or data.max_tgt_length={data.max_tgt_length}"
            )
        os.rmdir(self.raw_dir)
        for source in self.sources:
            if "path" in source:
                source["sha256"] = self.hashes[source["path"]]
        manifest = {
            **_expected(self.sources, self.cfg, vocabs),
            "pairs": kept,
            "dropped": dropped,
            "shards": records,
        }
        shard_files.write_manifest(self.dir, manifest)
        shutil.rmtree(self.final_dir, ignore_errors=True)
        os.replace(self.dir, self.final_dir)
        logging.info(
            "%s: %d pairs tokenized into %d shards in %.1fs (%.0f pairs/s); dropped %d longer "
            "than %d (source) or %d (target) pieces with EOS",
            name,
            self.read,
            len(records),
            seconds,
            self.read / max(seconds, 1e-9),
            dropped,
            data.max_src_length,
            data.max_tgt_length,
        )
        return shard_files.open_shards(self.final_dir, manifest, verify=False)

    def abandon(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _pairs(corpus: CorpusSource, cfg: Config, hashes: dict[str, str]):
    if corpus.src:
        return _text_pairs(corpus, hashes)
    src, tgt = read_tfds_pairs(cfg.data, "train")
    return zip(src, tgt, strict=True)


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def prepare_training_data(
    cfg: Config, model_dir: str, train_vocab: bool
) -> tuple[Vocabulary, Vocabulary, list[ShardedCorpus]]:
    """The vocabularies and the tokenized training corpora of a model directory.

    Args:
        cfg: the configuration (`data`, `vocab`, `train.seed`).
        model_dir: the model directory; the caches go to its `data_cache/`.
        train_vocab: build the vocabularies (`build_vocabularies`, trained on a sample drawn
            while the corpora are read), else read them from `model_dir`.

    Returns:
        `(src_vocab, tgt_vocab, corpora)`, one `ShardedCorpus` per configured corpus.

    Raises:
        DataError: a missing or malformed file (different line counts, invalid UTF-8), or no
            pair left; nothing is left in `data_cache/` by the failed corpus.
    """
    corpora = train_corpora(cfg.data)
    root = os.path.join(model_dir, DATA_CACHE)
    vocabs = None if train_vocab else load_vocabularies(model_dir)
    shards: list[list[TokenPairs] | None] = [None] * len(corpora)
    if vocabs is not None:
        for i, corpus in enumerate(corpora):
            shards[i] = shard_files.open_cache(
                _cache_dir(root, corpus), _expected(_source_records(corpus, cfg), cfg, vocabs)
            )
            if shards[i] is not None:
                logging.info("%s: %d cached pairs", corpus.name, sum(map(len, shards[i])))
    todo = [i for i, s in enumerate(shards) if s is None]
    if todo:
        shards = _build(cfg, model_dir, root, corpora, todo, shards, vocabs)
        vocabs = load_vocabularies(model_dir)
    return (
        *vocabs,
        [ShardedCorpus(tuple(s), c.weight, c.name) for c, s in zip(corpora, shards, strict=True)],
    )


def _build(cfg, model_dir, root, corpora, todo, shards, vocabs):
    """Reads the corpora `todo` once each, trains the vocabularies if `vocabs` is None,
    tokenizes them in a process pool; returns `shards` completed."""
    start = time.perf_counter()
    v = cfg.vocab
    reservoirs = []
    if vocabs is None:
        seed = cfg.train.seed
        count = 1 if v.shared else 2
        reservoirs = [Reservoir(v.input_sentence_size, seed + i) for i in range(count)]
    builds: list[_CorpusBuild] = []
    context = multiprocessing.get_context("fork")
    pool = context.Pool(_workers())
    try:
        for i in todo:
            build = _CorpusBuild(corpora[i], cfg, _cache_dir(root, corpora[i]))
            builds.append(build)
            logging.info("Reading %s", corpora[i].name)
            for index in build.write_chunks(_pairs(corpora[i], cfg, build.hashes), reservoirs):
                if vocabs is not None:
                    build.results.append(
                        pool.apply_async(_tokenize_chunk, (build.job(index, vocabs),))
                    )
        if vocabs is None:
            logging.info(
                "Read %d pairs in %.1fs", sum(b.read for b in builds), time.perf_counter() - start
            )
            src_texts, tgt_texts = _sample_texts(reservoirs)
            vocabs = build_vocabularies(cfg, model_dir, src_texts, tgt_texts)
            del src_texts, tgt_texts, reservoirs
            for build in builds:
                build.results = [
                    pool.apply_async(_tokenize_chunk, (build.job(k, vocabs),))
                    for k in range(build.chunks)
                ]
        for i, build in zip(todo, builds, strict=True):
            shards[i] = build.finish(vocabs, time.perf_counter() - start)
    except BaseException:
        pool.terminate()
        for build in builds:
            build.abandon()
        raise
    pool.close()
    pool.join()
    return shards


def _sample_texts(reservoirs: list[Reservoir]) -> tuple[list[str], list[str]]:
    """The sentences to train the vocabularies on: `(source, target)`.

    Shared (one reservoir): source and target sentences of the one sample, in reading order
    when the sample holds every sentence (so the texts are those `load_pairs` returns,
    chained). Else the source sample's and the target sample's sentences.
    """
    return reservoirs[0].texts(0), reservoirs[-1].texts(1)
