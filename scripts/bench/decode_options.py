"""Cost of each decoding option against plain greedy and beam search on Multi30k test2016.

Each row: sentences/s with the option, and its ratio to the plain search of the same beam
(sampling at beam 1 should stay near 1.0: one draw per step instead of the argmax).
The ensemble rows decode with --model_dir's model and --ensemble's (default: a second copy
of --model_dir's, which costs what two different models cost); the alignment rows carry the
attention through the search.
"""

from __future__ import annotations

import argparse
import time

from bench.common import format_row
from bench.decode import _test_set, _translator

# (beam, label, translate keyword arguments); the first of each beam is the plain search.
OPTIONS = [
    (1, "greedy", {}),
    (1, "sampling_topk=0", {"sampling_topk": 0}),
    (1, "sampling_topk=10", {"sampling_topk": 10}),
    (1, "sampling_topp=0.9", {"sampling_topk": 0, "sampling_topp": 0.9}),
    (1, "no_repeat_ngram_size=3", {"no_repeat_ngram_size": 3}),
    (1, "repetition_penalty=1.2", {"repetition_penalty": 1.2}),
    (1, "target_prefix", {"target_prefixes": None}),
    (1, "alignments", {"alignments": True}),
    (1, "ensemble of 2", {"ensemble": True}),
    (4, "beam 4", {}),
    (4, "no_repeat_ngram_size=3", {"no_repeat_ngram_size": 3}),
    (4, "repetition_penalty=1.2", {"repetition_penalty": 1.2}),
    (4, "target_prefix", {"target_prefixes": None}),
    (4, "alignments", {"alignments": True}),
    (4, "ensemble of 2", {"ensemble": True}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--batch_size and --ensemble."""
    parser.add_argument("--batch_size", type=int, default=32, help="sentences per batch")
    parser.add_argument(
        "--ensemble",
        default="",
        help="model directory ensembled with --model_dir's (default: --model_dir again)",
    )


def run(args: argparse.Namespace) -> list[dict]:
    """Times every entry of OPTIONS after one untimed warm-up call (tracing)."""
    from t2t_lite.inference.translator import Translator

    translator, _ = _translator(args)
    ensemble = Translator.from_model_dir(
        args.model_dir, args.checkpoint, [args.ensemble or args.model_dir]
    )
    src, _ = _test_set(args)
    plain_greedy = translator.translate(src, beam_size=1)
    prefixes = [" ".join(t.split()[:2]) for t in plain_greedy]  # the model's own first words
    rows, base = [], {}
    for beam, label, options in OPTIONS:
        options = dict(options)
        decoder = ensemble if options.pop("ensemble", False) else translator
        if "target_prefixes" in options:
            options = {"target_prefixes": prefixes}
        kwargs = dict(
            beam_size=beam, max_batch_size=args.batch_size, batch_tokens=10**9, parallel_batches=1
        )
        decoder.translate(src[: args.batch_size], **kwargs, **{
            k: (v[: args.batch_size] if k == "target_prefixes" else v) for k, v in options.items()
        })  # fmt: skip
        start = time.perf_counter()
        decoder.translate(src, **kwargs, **options)
        rate = len(src) / (time.perf_counter() - start)
        base.setdefault(beam, rate)
        row = {
            "system": "t2t_lite",
            "what": f"decode beam {beam}, {label}",
            "batch": args.batch_size,
            "sentences_per_s": round(rate, 1),
            "vs_plain": round(rate / base[beam], 3),
        }
        rows.append(row)
        print(format_row(row), flush=True)
    return rows
