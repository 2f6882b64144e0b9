"""Benchmarks of t2t_lite on a real corpus (Multi30k by default); prints, never asserts.

Subcommands:
    train   training throughput (source + target non-padding tokens/s) and peak memory.

Usage:
    python scripts/benchmark.py train [--config configs/multi30k_cpu.yaml] [--set key=value ...]
        [--warmup_steps 20] [--steps 60] [--work_dir DIR]

The vocabulary and the tokenized-data cache are kept in --work_dir, so repeated runs (e.g.
comparing train.mixed_precision or train.jit_compile) skip SentencePiece training.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def benchmark_train(args: argparse.Namespace) -> dict[str, float]:
    """Trains `args.warmup_steps + args.steps` steps; times the last `args.steps`."""
    import keras
    import tensorflow as tf

    from t2t_lite.config import load_config
    from t2t_lite.data import check_sources, load_pairs, train_dataset
    from t2t_lite.train_state import TrainState
    from t2t_lite.vocab import build_vocabularies, load_vocabularies

    cfg = load_config(args.config, args.set)
    check_sources(cfg.data, ["train"])
    os.makedirs(args.work_dir, exist_ok=True)
    try:
        src_vocab, tgt_vocab = load_vocabularies(args.work_dir)
    except FileNotFoundError:
        src, tgt = load_pairs(cfg.data, "train")
        src_vocab, tgt_vocab = build_vocabularies(cfg, args.work_dir, src, tgt)
    keras.utils.set_random_seed(cfg.train.seed)
    state = TrainState(cfg, src_vocab, tgt_vocab, tf.distribute.get_strategy())
    cache = os.path.join(args.work_dir, "data_cache")
    batches = iter(train_dataset(cfg, src_vocab, tgt_vocab, cache))
    step = lambda: state.train_step([next(batches) for _ in range(cfg.train.accumulate_steps)])  # noqa: E731
    start = time.perf_counter()
    for _ in range(args.warmup_steps):
        step()
    warmup_seconds = time.perf_counter() - start
    tokens, start = 0.0, time.perf_counter()
    for _ in range(args.steps):
        stats = step()
        tokens += stats.tokens
    seconds = time.perf_counter() - start
    return {
        "tokens_per_sec": tokens / seconds,
        "sec_per_step": seconds / args.steps,
        "warmup_sec": warmup_seconds,
        "final_loss": stats.loss,
        "traces": state.traces,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="training tokens/s and peak memory")
    train.add_argument("--config", default=os.path.join(_REPO, "configs", "multi30k_cpu.yaml"))
    train.add_argument("--set", action="append", default=[], help="section.key=value")
    train.add_argument("--warmup_steps", type=int, default=20)
    train.add_argument("--steps", type=int, default=60)
    train.add_argument("--work_dir", default=os.path.join("/tmp", "t2t_benchmark_train"))
    train.set_defaults(run=benchmark_train)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = args.run(args)
    settings = " ".join(args.set) or "defaults"
    print(
        f"{args.command} [{settings}]: "
        + "  ".join(
            f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, _REPO)
    main()
