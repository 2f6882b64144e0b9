"""Training throughput: tokens/s (source + target SentencePiece pieces, without EOS/BOS and
padding, counted as OpenNMT-tf counts them) and peak memory of the comparison model."""

from __future__ import annotations

import argparse
import os
import resource
import time

from bench.common import REPO, format_row, peak_matmul_flops, training_flops

# The OpenNMT-tf comparison model (onmt_anchor.sh): the multi30k_cpu preset's 3+3 layers,
# d=256 and 8k shared vocabulary, with OpenNMT-tf's dropout (0.1 everywhere), 4,096-token
# batches and sources without EOS (OpenNMT-tf adds none). Applied before --set.
COMPARISON_MODEL = [
    "model.dropout=0.1",
    "model.attention_dropout=0.1",
    "model.ffn_dropout=0.1",
    "model.source_eos=false",
    "train.batch_tokens=4096",
]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --set and --work_dir: the model and data that train and flops measure."""
    parser.add_argument(
        "--config",
        default=os.path.join(REPO, "configs", "multi30k_cpu.yaml"),
        help="preset; the comparison model's settings are applied to it, then --set",
    )
    parser.add_argument("--set", action="append", default=[], help="section.key=value")
    parser.add_argument(
        "--work_dir",
        default=os.path.join("/tmp", "t2t_benchmark_train"),
        help="where the vocabulary and the data cache are kept between runs",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--warmup_steps and --steps."""
    parser.add_argument("--warmup_steps", type=int, default=20, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=60, help="timed steps")


def train_state(args: argparse.Namespace):
    """Config, vocabularies, a fresh TrainState and the training batches of --config."""
    import keras
    import tensorflow as tf

    from t2t_lite.config import load_config
    from t2t_lite.data import cached_train_pairs, check_sources, load_pairs, make_train_dataset
    from t2t_lite.training.train_state import TrainState
    from t2t_lite.vocab import build_vocabularies, load_vocabularies

    cfg = load_config(args.config, COMPARISON_MODEL + args.set)
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
    pairs = cached_train_pairs(cfg, src_vocab, tgt_vocab, cache)
    batches = iter(make_train_dataset(pairs, cfg.train, source_eos=cfg.model.source_eos))
    return cfg, state, batches


def run(args: argparse.Namespace) -> list[dict]:
    """Trains `args.warmup_steps + args.steps` steps; times the last `args.steps`."""
    cfg, state, batches = train_state(args)

    def step():
        return state.train_step([next(batches) for _ in range(cfg.train.accumulate_steps)])

    start = time.perf_counter()
    for _ in range(args.warmup_steps):
        step()
    warmup_seconds = time.perf_counter() - start
    tokens, timed, start = 0.0, [], time.perf_counter()
    for _ in range(args.steps):
        group = [next(batches) for _ in range(cfg.train.accumulate_steps)]
        stats = state.train_step(group)
        tokens += stats.tokens
        timed += group
    seconds = time.perf_counter() - start
    flops = sum(training_flops(cfg, b) for b in timed)  # counted outside the timed loop
    dtype = state.model.compute_dtype  # the precision "auto" (or --set) chose
    peak = peak_matmul_flops(dtype)
    row = {
        "system": "t2t_lite",
        "what": "train",
        "settings": " ".join(args.set) or "comparison model",
        "tokens_per_s": round(tokens / seconds),
        "sec_per_step": round(seconds / args.steps, 3),
        "warmup_s": round(warmup_seconds, 1),
        "final_loss": round(stats.loss, 3),
        "precision": dtype,
        "achieved_gflops": round(flops / seconds / 1e9, 1),
        "fraction_of_peak": round(flops / seconds / peak, 3),
        "traces": state.traces,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(format_row(row), flush=True)
    return [row]
