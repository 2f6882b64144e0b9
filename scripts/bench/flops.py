"""How far from the hardware: the model's FLOPs per training step and per second against the
measured peak matmul throughput of this machine (float32 and bfloat16)."""

from __future__ import annotations

import argparse
import time

from bench import train
from bench.common import format_row, matmul_dtypes, peak_matmul_flops, training_flops


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--batches and --peak_size (the model comes from `train.add_model_arguments`)."""
    parser.add_argument(
        "--batches", type=int, default=50, help="training batches: 10 untimed, the rest timed"
    )
    parser.add_argument(
        "--peak_size", type=int, default=2048, help="n of the [n, n] matmuls timed for the peak"
    )


def run(args: argparse.Namespace) -> list[dict]:
    """Model FLOPs per step and per second of training against the machine's matmul peak."""
    if args.batches <= 10:
        raise ValueError("--batches must be above 10 (the first 10 are warm-up)")
    cfg, state, batches = train.train_state(args)
    sample = [next(batches) for _ in range(args.batches)]
    flops = sum(training_flops(cfg, b) for b in sample) / len(sample)
    for b in sample[:10]:  # warm-up and tracing
        state.train_step([b])
    start = time.perf_counter()
    for b in sample[10:]:
        state.train_step([b])
    achieved = flops / ((time.perf_counter() - start) / (len(sample) - 10))
    rows = []
    for dtype in matmul_dtypes():
        peak = peak_matmul_flops(dtype, n=args.peak_size)
        row = {
            "system": "t2t_lite",
            "what": f"FLOPs vs {dtype} matmul peak",
            "settings": " ".join(args.set) or "comparison model",
            "gflop_per_step": round(flops / 1e9, 1),
            "achieved_gflops": round(achieved / 1e9, 1),
            "peak_matmul_gflops": round(peak / 1e9, 1),
            "fraction_of_peak": round(achieved / peak, 3),
        }
        rows.append(row)
        print(format_row(row), flush=True)
    return rows
