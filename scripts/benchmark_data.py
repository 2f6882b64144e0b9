"""Benchmarks the data side; prints, never asserts.

Multi30k (default): the first-run cost (one streaming pass: reading, SentencePiece training,
tokenization into the shard cache), the cached pipeline's throughput in tokens/s, and the
batch statistics of one training epoch.

Scaling (`--sizes`): for each size N, a synthetic corpus made by
`make_corpus.py N <corpus_dir>/train-N` (1 to 3 Multi30k pairs glued per line; made once and
kept unless `--clean`), then `t2t-train` on it in a fresh model directory for `--steps`
updates, then a second run on the same directory (cache and vocabulary present). Reported per
size: preparation time and pairs/s, time to the first training step (first and second run),
peak memory (proportional set size of the trainer and its tokenizing processes, so pages
they share count once) during preparation and during the first `--steps` updates, the cache
size on disk, and the cached input pipeline's tokens/s against the tokens/s training
consumes.

Usage:
    python scripts/benchmark_data.py [--config configs/multi30k_cpu.yaml] [--set key=value ...]
    python scripts/benchmark_data.py --sizes=100000,1000000,4000000 [--with_20m] [--clean]
    python scripts/benchmark_data.py --formats

Targets on 2 CPU cores: 4M pairs <= 120 s to the first step and peak RSS <= 2 GB; the second
run <= 20 s to its first step; 20M pairs peak RSS <= 3 GB; the input pipeline >= 10x the
tokens/s training consumes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil
from absl import app, flags

from t2t_lite.config import load_config
from t2t_lite.constants import DATA_CACHE
from t2t_lite.data import check_sources, make_train_dataset, prepare_training_data

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The data dir when T2T_DATA_DIR is unset and it exists (as scripts/env.sh).
_SHARED_DATA = os.path.normpath(os.path.join(_REPO, "..", "shared", "data"))
_MAKE_CORPUS = os.path.normpath(os.path.join(_REPO, "..", "shared", "bench", "make_corpus.py"))

CONFIG = flags.DEFINE_string(
    "config", os.path.join(_REPO, "configs", "multi30k_cpu.yaml"), "Configuration preset."
)
SET = flags.DEFINE_multi_string("set", [], "Overrides, section.key=value.")
WORK_DIR = flags.DEFINE_string("work_dir", "", "Where to write vocab and cache (default: temp).")
SIZES = flags.DEFINE_list("sizes", [], "Corpus sizes (pairs) to measure scaling on.")
WITH_20M = flags.DEFINE_bool("with_20m", False, "Add a 20,000,000-pair corpus to --sizes.")
CORPUS_DIR = flags.DEFINE_string("corpus_dir", "/tmp/big", "Where the synthetic corpora go.")
MAKE_CORPUS = flags.DEFINE_string("make_corpus", _MAKE_CORPUS, "The corpus generator.")
STEPS = flags.DEFINE_integer("steps", 100, "Training updates per scaling run.")
CLEAN = flags.DEFINE_bool("clean", False, "Delete each synthetic corpus after measuring it.")
FORMATS = flags.DEFINE_bool(
    "formats", False, "Compare memory-mapped .npy shards with TFRecord (300,000 pairs)."
)


def _epoch(dataset) -> dict[str, float]:
    """Iterates one epoch; returns seconds, batches, real tokens and padding fractions."""
    start = time.perf_counter()
    real, padded, src_pad, tgt_pad = [], [], [], []
    for batch in dataset.as_numpy_iterator():
        source, target = batch["source"], batch["target_out"]
        src_real, tgt_real = np.count_nonzero(source), np.count_nonzero(target)
        real.append(src_real + tgt_real)
        padded.append(source.size + target.size)
        src_pad.append(1 - src_real / source.size)
        tgt_pad.append(1 - tgt_real / target.size)
    return {
        "seconds": time.perf_counter() - start,
        "batches": len(real),
        "tokens": float(sum(real)),
        "padded": float(sum(padded)),
        "src_pad": float(np.mean(src_pad)),
        "tgt_pad": float(np.mean(tgt_pad)),
    }


def _timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label:<44s} {time.perf_counter() - start:7.2f} s")
    return result


def multi30k(work_dir: str) -> None:
    cfg = load_config(CONFIG.value, SET.value)
    check_sources(cfg.data, splits=["train"])
    print(
        f"config {CONFIG.value}; vocab {cfg.vocab.type} {cfg.vocab.size}; "
        f"batch_tokens {cfg.train.batch_tokens}; bucket_width {cfg.train.bucket_width}"
    )
    *_, corpora = _timed(
        "first run: read + SentencePiece + tokenize",
        lambda: prepare_training_data(cfg, work_dir, train_vocab=True),
    )
    *_, corpora = _timed(
        "second run: open the cache (checksums)",
        lambda: prepare_training_data(cfg, work_dir, train_vocab=False),
    )
    print(f"pairs kept after the length filter: {sum(len(c) for c in corpora)}")
    dataset = make_train_dataset(corpora, cfg.train, repeat=False)
    for name in ["epoch 1 (includes tf.data warm-up)", "epoch 2"]:
        s = _epoch(dataset)
        print(
            f"{name}: {s['seconds']:.2f} s, {s['batches']} batches, "
            f"{s['tokens'] / s['seconds']:,.0f} tokens/s (non-padding source + target), "
            f"{s['padded'] / s['seconds']:,.0f} padded tokens/s"
        )
    print(
        f"batches/epoch {s['batches']}; mean batch {s['tokens'] / s['batches']:.0f} real tokens; "
        f"mean padding fraction: source {s['src_pad']:.3f}, target {s['tgt_pad']:.3f}, "
        f"overall {1 - s['tokens'] / s['padded']:.3f}"
    )


class _Run:
    """One `t2t-train` process: when it reached which log line, and its peak RSS per phase."""

    _STEP = re.compile(r"step (\d+)/\d+ .* ([\d,]+) tok/s")

    def __init__(self, args: list[str]):
        self.start = time.perf_counter()
        self.first_step: float | None = None
        self.prepared: float | None = None
        self.rss = {"preparation": 0, "training": 0}
        self.tokens_per_sec: list[float] = []
        self.process = subprocess.Popen(
            args, stderr=subprocess.STDOUT, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        watcher = threading.Thread(target=self._watch_memory, daemon=True)
        watcher.start()
        self.log = []
        for line in self.process.stdout:
            self.log.append(line)
            now = time.perf_counter() - self.start
            if "tokenized into" in line and self.prepared is None:
                self.prepared = now
            match = self._STEP.search(line)
            if match:
                self.first_step = self.first_step or now
                if int(match.group(1)) > 1:
                    self.tokens_per_sec.append(float(match.group(2).replace(",", "")))
        self.process.wait()
        watcher.join()
        if self.process.returncode:
            sys.stdout.writelines(self.log[-20:])
            raise RuntimeError(f"t2t-train exited with status {self.process.returncode}")

    def _watch_memory(self) -> None:
        try:
            parent = psutil.Process(self.process.pid)
            while self.process.poll() is None:
                rss = 0
                for proc in [parent, *parent.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        # Proportional: pages the forked tokenizers share count once.
                        rss += proc.memory_full_info().pss
                phase = "preparation" if self.first_step is None else "training"
                self.rss[phase] = max(self.rss[phase], rss)
                time.sleep(0.25)
        except psutil.Error:
            pass


def _du(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def _pipeline_tokens_per_sec(cfg, model_dir: str, batches: int = 1000) -> float:
    *_, corpora = prepare_training_data(cfg, model_dir, train_vocab=False)
    iterator = make_train_dataset(corpora, cfg.train).as_numpy_iterator()
    next(iterator)
    start, tokens = time.perf_counter(), 0
    for _ in range(batches):
        batch = next(iterator)
        tokens += np.count_nonzero(batch["source"]) + np.count_nonzero(batch["target_out"])
    return tokens / (time.perf_counter() - start)


def scaling(size: int, work_dir: str) -> None:
    prefix = os.path.join(CORPUS_DIR.value, f"train-{size}")
    if not os.path.isfile(prefix + ".de"):
        subprocess.run([sys.executable, MAKE_CORPUS.value, str(size), prefix], check=True)
    model_dir = os.path.join(work_dir, f"model-{size}")
    shutil.rmtree(model_dir, ignore_errors=True)
    overrides = [
        f"data.train_src={prefix}.en",
        f"data.train_tgt={prefix}.de",
        "train.eval_every=0",
        "train.log_every=1",
        "train.max_minutes=0",
        f"train.save_every={STEPS.value}",
        *SET.value,
    ]
    base = [sys.executable, "-m", "t2t_lite.cli.train", f"--config={CONFIG.value}"]
    base += [f"--model_dir={model_dir}"]

    def run(steps: int) -> _Run:
        sets = [f"--set={o}" for o in [*overrides, f"train.steps={steps}"]]
        return _Run(base + sets)

    first = run(STEPS.value)
    second = run(STEPS.value + 5)
    cfg = load_config(CONFIG.value, overrides)
    pipeline = _pipeline_tokens_per_sec(cfg, model_dir)
    consumed = float(np.median(first.tokens_per_sec)) if first.tokens_per_sec else float("nan")
    gb = 1 << 30
    print(
        f"{size:>10,d} pairs | preparation {first.prepared:6.1f} s "
        f"({size / first.prepared:,.0f} pairs/s) | first step {first.first_step:6.1f} s, "
        f"second run {second.first_step:5.1f} s | peak PSS preparation "
        f"{first.rss['preparation'] / gb:.2f} GB, training {first.rss['training'] / gb:.2f} GB "
        f"| cache {_du(os.path.join(model_dir, DATA_CACHE)) / gb:.2f} GB | pipeline "
        f"{pipeline:,.0f} tok/s vs training {consumed:,.0f} tok/s ({pipeline / consumed:.0f}x)",
        flush=True,
    )
    shutil.rmtree(model_dir, ignore_errors=True)
    if CLEAN.value:
        for ext in (".en", ".de"):
            os.remove(prefix + ext)


def formats(work_dir: str, n: int = 300_000) -> None:
    """Writes `n` random pairs as a .npy shard and as TFRecord; times writing and reading."""
    import tensorflow as tf

    from t2t_lite.data import shards
    from t2t_lite.data.pipeline import padded_rows
    from t2t_lite.data.token_pairs import TokenPairs

    rng = np.random.default_rng(0)

    def ragged() -> tuple[np.ndarray, np.ndarray]:
        splits = np.concatenate([[0], np.cumsum(rng.integers(5, 60, n))]).astype(np.int64)
        return rng.integers(4, 8000, splits[-1]).astype(np.int32), splits

    pairs = TokenPairs(*ragged(), *ragged())
    start = time.perf_counter()
    record = shards.write_shard(pairs, work_dir, 0, np.dtype(np.uint16))
    write = time.perf_counter() - start
    size = sum(os.path.getsize(shards.shard_path(work_dir, 0, f)) for f in shards.FIELDS)
    start = time.perf_counter()
    (mapped,) = shards.open_shards(work_dir, {"shards": [record]})
    opened = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(3000):
        rows = rng.integers(0, n, 64)
        padded_rows(mapped.src_values, mapped.src_splits, rows, 1)
        padded_rows(mapped.tgt_values, mapped.tgt_splits, rows, 1)
    read = time.perf_counter() - start
    print(
        f"npy: write {n / write:,.0f} pairs/s, {size / n:.0f} B/pair, open + verify "
        f"{opened:.2f} s, random batches of 64: {3000 * 64 / read:,.0f} pairs/s"
    )
    path = os.path.join(work_dir, "pairs.tfrecord")
    start = time.perf_counter()
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(n):
            sides = {
                "src": pairs.src_values[pairs.src_splits[i] : pairs.src_splits[i + 1]],
                "tgt": pairs.tgt_values[pairs.tgt_splits[i] : pairs.tgt_splits[i + 1]],
            }
            feature = {
                k: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
                for k, v in sides.items()
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    write = time.perf_counter() - start
    spec = {side: tf.io.VarLenFeature(tf.int64) for side in ("src", "tgt")}
    dataset = tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(64)
    start = time.perf_counter()
    for _ in dataset.map(lambda x: tf.io.parse_example(x, spec)):
        pass
    read = time.perf_counter() - start
    print(
        f"tfrecord: write {n / write:,.0f} pairs/s, {os.path.getsize(path) / n:.0f} B/pair, "
        f"in order, batches of 64 parsed: {n / read:,.0f} pairs/s (no random access)"
    )


def benchmark(work_dir: str) -> None:
    if FORMATS.value:
        formats(work_dir)
        return
    sizes = [int(float(s)) for s in SIZES.value] + ([20_000_000] if WITH_20M.value else [])
    if not sizes:
        multi30k(work_dir)
        return
    print(f"config {CONFIG.value}; {os.cpu_count()} CPUs; load average {os.getloadavg()}")
    for size in sizes:
        scaling(size, work_dir)


def main(argv: list[str]) -> None:
    del argv
    if not os.environ.get("T2T_DATA_DIR") and os.path.isdir(_SHARED_DATA):
        os.environ["T2T_DATA_DIR"] = _SHARED_DATA
    if WORK_DIR.value:
        benchmark(WORK_DIR.value)
        return
    work_dir = tempfile.mkdtemp(prefix="t2t_bench_data_")
    try:
        benchmark(work_dir)
    finally:
        shutil.rmtree(work_dir)


if __name__ == "__main__":
    app.run(main)
