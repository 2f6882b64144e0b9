"""Decoding speed of a trained model on Multi30k test2016.

`run`: sentences/s and target tokens/s, greedy and beam 4, several batch sizes, with BLEU and
mean output length; then 2 batches at a time on 1 intra-op thread each (--parallel_batches),
timed cold (tracing included, as t2t-translate reports its speed) and warm; then the same model
exported to CTranslate2, float32 and int8 (if installed), warm.
`run_scaling`: greedy decode time against source length (1, 2, 4, 8 sentences glued
together): with the key/value cache, the time per generated token stays about flat.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import format_row, match_ctranslate2_isa


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--model_dir, --checkpoint and --sentences: the model and test sentences to decode."""
    parser.add_argument(
        "--model_dir", required=required, help="a trained model directory, e.g. runs/m30k"
    )
    parser.add_argument("--checkpoint", default="", help="latest|best|averaged|PATH")
    parser.add_argument("--sentences", type=int, default=0, help="first N test sentences")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--batch_sizes and --parallel_batches."""
    parser.add_argument(
        "--batch_sizes", type=int, nargs="+", default=[16, 32, 64], help="sentences per batch"
    )
    parser.add_argument(
        "--parallel_batches",
        type=int,
        default=2,
        help="batches at a time in the 1-intra-op-thread comparison",
    )


def _test_set(args):
    from t2t_lite.data import read_lines, resolve_path

    src = read_lines(resolve_path(os.path.join("multi30k", "test2016.en")))
    ref = read_lines(resolve_path(os.path.join("multi30k", "test2016.de")))
    return src[: args.sentences or None], ref[: args.sentences or None]


def _translator(args):
    from t2t_lite.inference.translator import Translator
    from t2t_lite.model_dir import load_model

    model, cfg, src_vocab, tgt_vocab, prefix = load_model(args.model_dir, args.checkpoint)
    return Translator(model, src_vocab, tgt_vocab, cfg.decode), prefix


def _translate_kwargs(beam_size, batch_size, parallel_batches):
    return dict(
        beam_size=beam_size,
        max_batch_size=batch_size,
        batch_tokens=10**9,
        parallel_batches=parallel_batches,
    )


def _timed_translate(translator, lines, beam_size, batch_size, parallel_batches=1):
    """(hypotheses, seconds, target tokens) after one untimed warm-up call (tracing)."""
    kwargs = _translate_kwargs(beam_size, batch_size, parallel_batches)
    translator.translate(lines[: batch_size * parallel_batches], **kwargs)
    translator.reset_stats()
    start = time.perf_counter()
    hyps = translator.translate(lines, **kwargs)
    return hyps, time.perf_counter() - start, translator.stats.target_tokens


def _decode_row(system, beam, batch_size, src, ref, hyps, seconds, target_tokens) -> dict:
    from t2t_lite.inference.scoring import score_translations

    return {
        "system": system,
        "what": f"decode beam {beam}",
        "batch": batch_size,
        "sentences_per_s": round(len(src) / seconds, 1),
        "tgt_tokens_per_s": round(target_tokens / seconds),
        "mean_output_pieces": round(target_tokens / len(src), 1),
        "bleu": score_translations(hyps, ref)["bleu"],
    }


def one_batch_at_a_time(args: argparse.Namespace) -> list[dict]:
    """test2016 with greedy and beam 4 at several batch sizes (sentences per batch)."""
    translator, prefix = _translator(args)
    src, ref = _test_set(args)
    rows = []
    for beam in (1, 4):
        for batch_size in args.batch_sizes:
            hyps, seconds, target_tokens = _timed_translate(translator, src, beam, batch_size)
            row = _decode_row("t2t_lite", beam, batch_size, src, ref, hyps, seconds, target_tokens)
            row["checkpoint"] = os.path.basename(prefix)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def _parallel_batches_worker(args, results):
    """Worker process, so that TensorFlow starts with 1 intra-op thread (and the graph
    optimizer as `t2t-translate --parallel_batches=N --intra_threads=1` sets it): translates
    test2016 with `args.parallel_batches` batches of 32 at a time. Each beam size is first
    timed cold, on a new translator, as t2t-translate reports its own speed (tracing
    included), then warm."""
    from t2t_lite.hardware import apply_decode_layout, decode_layout

    apply_decode_layout(decode_layout(parallel_batches=args.parallel_batches, intra_threads=1))
    src, ref = _test_set(args)
    system = f"t2t_lite ({args.parallel_batches} parallel batches x 1 intra-op thread)"
    for beam in (1, 4):
        translator, _ = _translator(args)
        start = time.perf_counter()
        translator.translate(src, **_translate_kwargs(beam, 32, args.parallel_batches))
        cold = time.perf_counter() - start
        hyps, seconds, target_tokens = _timed_translate(
            translator, src, beam, 32, parallel_batches=args.parallel_batches
        )
        row = _decode_row(system, beam, 32, src, ref, hyps, seconds, target_tokens)
        row["sentences_per_s_tracing_included"] = round(len(src) / cold, 1)
        results.put(row)


def parallel_batches(args: argparse.Namespace) -> list[dict]:
    """The thread-setting lever: several batches at a time, each op on 1 thread, against one
    batch at a time using every core (the rows of `one_batch_at_a_time`)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    worker = context.Process(target=_parallel_batches_worker, args=(args, results))
    worker.start()
    rows = [results.get() for _ in (1, 4)]
    worker.join()
    if worker.exitcode:
        raise RuntimeError(f"the parallel-batches decoding worker failed ({worker.exitcode})")
    for row in rows:
        print(format_row(row), flush=True)
    return rows


def ctranslate2(args: argparse.Namespace) -> list[dict]:
    """The same model exported to CTranslate2: float32 and int8 speed on test2016 (1 intra-op
    thread x 2 parallel batches, the fastest setting on 2 cores), and how often its greedy
    output equals ours."""
    import tempfile

    isa = match_ctranslate2_isa()
    from t2t_lite.export.ctranslate2 import (
        ctranslate2_translate,
        export_ctranslate2,
        load_ctranslate2_translator,
    )
    from t2t_lite.inference.scoring import score_translations

    translator, _ = _translator(args)
    src, ref = _test_set(args)
    ours_greedy = translator.translate(src, beam_size=1)
    src_vocab, tgt_vocab = translator.source_vocab, translator.target_vocab
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = export_ctranslate2(translator.model, src_vocab, tgt_vocab, os.path.join(tmp, "ct2"))
        for compute_type in ("float32", "int8"):
            ct2 = load_ctranslate2_translator(out, compute_type, intra_threads=1, inter_threads=2)
            for beam in (4, 1):

                def translate(lines, beam=beam, ct2=ct2):
                    return ctranslate2_translate(
                        ct2,
                        lines,
                        src_vocab,
                        tgt_vocab,
                        beam_size=beam,
                        max_batch_size=32,
                        length_penalty=translator.decode.alpha if beam > 1 else 0.0,
                    )

                translate(src[:64])
                start = time.perf_counter()
                hyps = translate(src)
                seconds = time.perf_counter() - start
                row = {
                    "system": f"ctranslate2 {compute_type} (1 intra x 2 inter threads)"
                    + (f" {isa}" if isa else ""),
                    "what": f"decode beam {beam}",
                    "batch": 32,
                    "sentences_per_s": round(len(src) / seconds, 1),
                    "tgt_tokens_per_s": round(
                        sum(len(tgt_vocab.encode([h])[0]) + 1 for h in hyps) / seconds
                    ),
                    "bleu": score_translations(hyps, ref)["bleu"],
                }
                if beam == 1:
                    same = sum(a == b for a, b in zip(hyps, ours_greedy, strict=True))
                    row["same_greedy_output_as_t2t_lite"] = round(same / len(src), 4)
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def run(args: argparse.Namespace) -> list[dict]:
    """One batch at a time, parallel batches, then CTranslate2."""
    return one_batch_at_a_time(args) + parallel_batches(args) + ctranslate2(args)


def run_scaling(args: argparse.Namespace) -> list[dict]:
    """Greedy decode cost per generated token for sources 1, 2, 4 and 8 sentences long."""
    translator, _ = _translator(args)
    src, _ = _test_set(args)
    rows = []
    for glue in (1, 2, 4, 8):
        lines = [" ".join(src[i * glue : (i + 1) * glue]) for i in range(64)]
        _, seconds, target_tokens = _timed_translate(translator, lines, 1, 32)
        source_pieces = translator.stats.source_tokens / len(lines)
        row = {
            "system": "t2t_lite",
            "what": f"greedy, sources of {glue} sentence(s)",
            "mean_source_pieces": round(source_pieces, 1),
            "mean_output_pieces": round(target_tokens / len(lines), 1),
            "ms_per_output_piece": round(1000 * seconds / max(target_tokens, 1), 3),
        }
        rows.append(row)
        print(format_row(row), flush=True)
    return rows
