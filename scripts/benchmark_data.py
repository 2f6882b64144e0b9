"""Benchmarks the data side on a real corpus (Multi30k by default); prints, never asserts.

Reports the first-run cost (reading, SentencePiece training, tokenization into the cache), the
cached pipeline's throughput in tokens/s, and the batch statistics of one training epoch.

Usage:
    python scripts/benchmark_data.py [--config configs/multi30k_cpu.yaml] [--set key=value ...]

Targets on 2 CPU cores: first-run tokenization < 20 s, cached pipeline >= 100,000 tokens/s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import numpy as np
from absl import app, flags

from t2t_lite.config import load_config
from t2t_lite.data import cached_train_pairs, check_sources, load_pairs, make_train_dataset
from t2t_lite.vocab import build_vocabularies

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The data dir when T2T_DATA_DIR is unset and it exists (as scripts/env.sh).
_SHARED_DATA = os.path.normpath(os.path.join(_REPO, "..", "shared", "data"))

CONFIG = flags.DEFINE_string(
    "config", os.path.join(_REPO, "configs", "multi30k_cpu.yaml"), "Configuration preset."
)
SET = flags.DEFINE_multi_string("set", [], "Overrides, section.key=value.")
WORK_DIR = flags.DEFINE_string("work_dir", "", "Where to write vocab and cache (default: temp).")


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


def benchmark(work_dir: str) -> None:
    cfg = load_config(CONFIG.value, SET.value)
    check_sources(cfg.data, splits=["train"])
    cache_dir = os.path.join(work_dir, "data_cache")
    print(
        f"config {CONFIG.value}; vocab {cfg.vocab.type} {cfg.vocab.size}; "
        f"batch_tokens {cfg.train.batch_tokens}; bucket_width {cfg.train.bucket_width}"
    )

    src, tgt = _timed("read training text", lambda: load_pairs(cfg.data, "train"))
    src_vocab, tgt_vocab = _timed(
        "train SentencePiece", lambda: build_vocabularies(cfg, work_dir, src, tgt)
    )
    pairs = _timed(
        "first run: read + tokenize + filter + cache",
        lambda: cached_train_pairs(cfg, src_vocab, tgt_vocab, cache_dir),
    )
    pairs = _timed(
        "second run: load the cache",
        lambda: cached_train_pairs(cfg, src_vocab, tgt_vocab, cache_dir),
    )
    print(f"pairs: {len(src)} read, {len(pairs)} kept after the length filter")

    dataset = make_train_dataset(pairs, cfg.train, repeat=False)
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
