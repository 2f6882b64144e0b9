"""Benchmarks of t2t_lite on Multi30k; prints numbers (and writes JSON), never asserts.

Subjects (one module each in scripts/bench/):
    train    training tokens/s (source + target SentencePiece pieces, without EOS/BOS and
             padding, counted as OpenNMT-tf counts them) and peak memory.
    decode   sentences/s and target tokens/s on test2016, greedy and beam 4, several batch
             sizes, with BLEU and mean output length (a trained model directory is needed);
             then 2 batches at a time on 1 intra-op thread each (--parallel_batches), then
             the same model exported to CTranslate2, float32 and int8 (if installed; capped
             at AVX2 too where ONEDNN_MAX_CPU_ISA caps TensorFlow below AVX-512).
    decode_options  the cost of each decoding option (sampling, target prefix, repetition
             control, alignments, a 2-model ensemble) against plain greedy and beam 4, as
             sentences/s and a ratio.
    scaling  greedy decode time against source length (1, 2, 4, 8 sentences glued together):
             with the key/value cache, time per generated token should stay about flat.
    serve    t2t-serve on loopback: sentences/s and p50/p99 latency at 1, 8, 32 concurrent
             clients against t2t-translate on the same sentences; then a soak of mixed valid,
             oversized, malformed and abandoned requests (statuses checked, RSS before/after).
    flops    the model's FLOPs per training step against the measured peak matmul throughput
             of this machine (float32 and bfloat16).
    all      train, flops, and decode and scaling if --model_dir is given.

Usage:
    python scripts/benchmark.py train [--set key=value ...] [--steps 60] [--compare-onmt]
    python scripts/benchmark.py decode --model_dir runs/m30k [--batch_sizes 16 32 64]
    python scripts/benchmark.py decode_options --model_dir runs/m30k [--batch_size 32]
    python scripts/benchmark.py serve --model_dir runs/m30k [--mode load|soak|all]
    python scripts/benchmark.py all --model_dir runs/m30k --json bench.json
    python scripts/benchmark.py SUBJECT --help

`train` and `flops` use --config (default `configs/multi30k_cpu.yaml`) with the OpenNMT-tf
comparison model's dropout, batch size and source layout (`bench.train.COMPARISON_MODEL`),
then --set; the vocabulary and the data cache are kept in --work_dir.
`--compare-onmt` (train, decode, all) also runs the OpenNMT-tf anchor script (--onmt_anchor;
OpenNMT-tf 2.32 / TF 2.12 and, with decode, CTranslate2) on the same data and prints the
ratios. Every run starts with the machine line and the commit, which --json also records.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the bench package
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # t2t_lite

from bench import common, decode, decode_options, flops, onmt, serve, train  # noqa: E402


def _all_decode_model_arguments(parser: argparse.ArgumentParser) -> None:
    decode.add_model_arguments(parser, required=False)


def _run_all(args: argparse.Namespace) -> list[dict]:
    rows = train.run(args) + flops.run(args)
    if args.model_dir:
        rows += decode.run(args) + decode.run_scaling(args)
    return rows


# Each subject: one line of help, its options, and what it runs.
_SUBJECTS = {
    "train": (
        "training tokens/s and peak memory",
        [train.add_model_arguments, train.add_arguments, onmt.add_arguments],
        train.run,
    ),
    "decode": (
        "decoding speed and BLEU on test2016, also with parallel batches and CTranslate2",
        [decode.add_model_arguments, decode.add_arguments, onmt.add_arguments],
        decode.run,
    ),
    "decode_options": (
        "the cost of each decoding option against plain greedy and beam search",
        [decode.add_model_arguments, decode_options.add_arguments],
        decode_options.run,
    ),
    "serve": (
        "t2t-serve under load (1, 8, 32 clients) against t2t-translate, and a soak",
        [decode.add_model_arguments, serve.add_arguments],
        serve.run,
    ),
    "scaling": (
        "greedy decoding time per output piece against source length",
        [decode.add_model_arguments],
        decode.run_scaling,
    ),
    "flops": (
        "FLOPs per training step against the machine's matmul peak",
        [train.add_model_arguments, flops.add_arguments],
        flops.run,
    ),
    "all": (
        "train and flops, then decode and scaling if --model_dir is given",
        [
            train.add_model_arguments,
            train.add_arguments,
            flops.add_arguments,
            _all_decode_model_arguments,
            decode.add_arguments,
            onmt.add_arguments,
        ],
        _run_all,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="python scripts/benchmark.py SUBJECT --help lists a subject's options.",
    )
    subjects = parser.add_subparsers(dest="subject", required=True, metavar="SUBJECT")
    for name, (help_line, adders, _) in _SUBJECTS.items():
        sub = subjects.add_parser(name, help=help_line, description=help_line)
        for add in adders:
            add(sub)
        sub.add_argument("--json", help="also write the rows, machine line and commit here")
    args = parser.parse_args(argv)
    if getattr(args, "compare_onmt", False):
        onmt.check_anchor(subjects.choices[args.subject], args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    common.use_shared_data()
    command = " ".join(["python", "scripts/benchmark.py"] + (argv or sys.argv[1:]))
    print(f"{command}\nmachine: {common.machine_line()}\ncommit: {common.commit()}", flush=True)
    report = common.machine_report()
    decoding = report["decoding"]
    print(
        f"precision (auto): {report['precision']['auto']} ({report['precision']['reason']}); "
        f"decoding (auto): {decoding['parallel_batches']} batches x {decoding['intra_threads']} "
        f"intra-op threads; matmul peak GFLOP/s: "
        + ", ".join(f"{k} {v:,}" for k, v in report["peak_matmul_gflops"].items()),
        flush=True,
    )
    from t2t_lite.config import ConfigError
    from t2t_lite.data.errors import DataError

    try:
        rows = _SUBJECTS[args.subject][2](args)
    except (ConfigError, DataError, FileNotFoundError, ValueError) as e:
        print(f"benchmark.py {args.subject}: error: {e}", file=sys.stderr)
        sys.exit(2)
    if getattr(args, "compare_onmt", False):
        decoding = any(r["what"].startswith("decode") for r in rows)
        theirs = onmt.run(args, decode=decoding)
        comparisons = onmt.ratios(rows, theirs)
        rows += theirs
        for line in comparisons:
            print(line)
    print("\n".join(common.format_row(r) for r in rows))
    if args.json:
        common.write_json(args.json, command, report, rows)


if __name__ == "__main__":
    main()
