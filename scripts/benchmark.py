"""Benchmarks of t2t_lite on Multi30k; prints numbers (and writes JSON), never asserts.

Subcommands:
    train    training tokens/s (source + target SentencePiece pieces, without EOS/BOS and
             padding, counted as OpenNMT-tf counts them) and peak memory.
    decode   sentences/s and target tokens/s on test2016, greedy and beam 4, several batch
             sizes, with BLEU and mean output length (a trained model directory is needed);
             then 2 batches at a time on 1 intra-op thread each (--parallel_batches), then
             the same model exported to CTranslate2, float32 and int8 (if installed).
    scaling  greedy decode time against source length (1, 2, 4, 8 sentences glued together):
             with the key/value cache, time per generated token should stay about flat.
    flops    the model's FLOPs per training step against the measured peak matmul throughput
             of this machine (float32 and bfloat16).
    all      train, decode (if --model_dir is given), scaling and flops, one table.

Usage:
    python scripts/benchmark.py train [--set key=value ...] [--steps 60] [--compare-onmt]
    python scripts/benchmark.py decode --model_dir runs/quickstart [--batch_sizes 16 32 64]
    python scripts/benchmark.py all --model_dir runs/quickstart --json bench.json

`train` and `flops` use --config (default `configs/multi30k_cpu.yaml`) with the comparison
model's dropout and batch size (`_COMPARISON_MODEL`), then --set.
`--compare-onmt` (train, decode, all) also runs ../shared/bench/onmt_anchor.sh (OpenNMT-tf
2.32 / TF 2.12 and, with decode, CTranslate2) on the same data and prints the ratios.
The vocabulary and the data cache of `train` and `flops` are kept in --work_dir.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The OpenNMT-tf comparison model (onmt_anchor.sh): the multi30k_cpu preset's 3+3 layers,
# d=256 and 8k shared vocabulary, with OpenNMT-tf's dropout (0.1 everywhere), 4,096-token
# batches and sources without EOS (OpenNMT-tf adds none). Applied before --set.
_COMPARISON_MODEL = [
    "model.dropout=0.1",
    "model.attention_dropout=0.1",
    "model.ffn_dropout=0.1",
    "model.source_eos=false",
    "train.batch_tokens=4096",
]
_ANCHOR = os.path.join(_REPO, "..", "shared", "bench", "onmt_anchor.sh")
# The data dir when T2T_DATA_DIR is unset and it exists (as scripts/env.sh).
_SHARED_DATA = os.path.normpath(os.path.join(_REPO, "..", "shared", "data"))


def _train_state(args: argparse.Namespace):
    """Config, vocabularies and a fresh TrainState for the benchmark config."""
    import keras
    import tensorflow as tf

    from t2t_lite.config import load_config
    from t2t_lite.data import check_sources, load_pairs
    from t2t_lite.training.train_state import TrainState
    from t2t_lite.vocab import build_vocabularies, load_vocabularies

    cfg = load_config(args.config, _COMPARISON_MODEL + args.set)
    check_sources(cfg.data, ["train"])
    os.makedirs(args.work_dir, exist_ok=True)
    try:
        src_vocab, tgt_vocab = load_vocabularies(args.work_dir)
    except FileNotFoundError:
        src, tgt = load_pairs(cfg.data, "train")
        src_vocab, tgt_vocab = build_vocabularies(cfg, args.work_dir, src, tgt)
    keras.utils.set_random_seed(cfg.train.seed)
    state = TrainState(cfg, src_vocab, tgt_vocab, tf.distribute.get_strategy())
    return cfg, src_vocab, tgt_vocab, state


def _batches(cfg, src_vocab, tgt_vocab, work_dir):
    from t2t_lite.data import cached_train_pairs, make_train_dataset

    pairs = cached_train_pairs(cfg, src_vocab, tgt_vocab, os.path.join(work_dir, "data_cache"))
    return iter(make_train_dataset(pairs, cfg.train, source_eos=cfg.model.source_eos))


def benchmark_train(args: argparse.Namespace) -> list[dict]:
    """Trains `args.warmup_steps + args.steps` steps; times the last `args.steps`."""
    cfg, src_vocab, tgt_vocab, state = _train_state(args)
    batches = _batches(cfg, src_vocab, tgt_vocab, args.work_dir)

    def step():
        return state.train_step([next(batches) for _ in range(cfg.train.accumulate_steps)])

    start = time.perf_counter()
    for _ in range(args.warmup_steps):
        step()
    warmup_seconds = time.perf_counter() - start
    tokens, start = 0.0, time.perf_counter()
    for _ in range(args.steps):
        stats = step()
        tokens += stats.tokens
    seconds = time.perf_counter() - start
    return [
        {
            "system": "t2t_lite",
            "what": "train",
            "settings": " ".join(args.set) or "comparison model",
            "tokens_per_s": round(tokens / seconds),
            "sec_per_step": round(seconds / args.steps, 3),
            "warmup_s": round(warmup_seconds, 1),
            "final_loss": round(stats.loss, 3),
            "traces": state.traces,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    ]


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


def _timed_translate(translator, lines, beam_size, batch_size, parallel_batches=1):
    """(hypotheses, seconds, target tokens) after one untimed warm-up call (tracing)."""
    kwargs = dict(
        beam_size=beam_size,
        max_batch_size=batch_size,
        batch_tokens=10**9,
        parallel_batches=parallel_batches,
    )
    translator.translate(lines[: batch_size * parallel_batches], **kwargs)
    translator.reset_stats()
    start = time.perf_counter()
    hyps = translator.translate(lines, **kwargs)
    return hyps, time.perf_counter() - start, translator.stats.target_tokens


def benchmark_decode(args: argparse.Namespace) -> list[dict]:
    """test2016 with greedy and beam 4 at several batch sizes (sentences per batch)."""
    from t2t_lite.inference.scoring import score_translations

    translator, prefix = _translator(args)
    src, ref = _test_set(args)
    rows = []
    for beam in (1, 4):
        for batch_size in args.batch_sizes:
            hyps, seconds, target_tokens = _timed_translate(translator, src, beam, batch_size)
            rows.append(
                {
                    "system": "t2t_lite",
                    "what": f"decode beam {beam}",
                    "batch": batch_size,
                    "sentences_per_s": round(len(src) / seconds, 1),
                    "tgt_tokens_per_s": round(target_tokens / seconds),
                    "mean_output_pieces": round(target_tokens / len(src), 1),
                    "bleu": score_translations(hyps, ref)["bleu"],
                    "checkpoint": os.path.basename(prefix),
                }
            )
            print(_row(rows[-1]), flush=True)
    return rows


def _decode_parallel_batches(args, results):
    """Worker process, so that TensorFlow starts with 1 intra-op thread: translates test2016
    with `args.parallel_batches` batches of 32 at a time (t2t-translate --parallel_batches=N
    --intra_threads=1)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    from t2t_lite.inference.scoring import score_translations

    translator, _ = _translator(args)
    src, ref = _test_set(args)
    for beam in (1, 4):
        hyps, seconds, target_tokens = _timed_translate(
            translator, src, beam, 32, parallel_batches=args.parallel_batches
        )
        results.put(
            {
                "system": f"t2t_lite ({args.parallel_batches} parallel batches x 1 intra-op "
                "thread)",
                "what": f"decode beam {beam}",
                "batch": 32,
                "sentences_per_s": round(len(src) / seconds, 1),
                "tgt_tokens_per_s": round(target_tokens / seconds),
                "mean_output_pieces": round(target_tokens / len(src), 1),
                "bleu": score_translations(hyps, ref)["bleu"],
            }
        )


def benchmark_parallel_decode(args: argparse.Namespace) -> list[dict]:
    """The thread-setting lever: several batches at a time, each op on 1 thread, against one
    batch at a time using every core (the rows of `benchmark_decode`)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    worker = context.Process(target=_decode_parallel_batches, args=(args, results))
    worker.start()
    rows = [results.get() for _ in (1, 4)]
    worker.join()
    if worker.exitcode:
        raise RuntimeError(f"the parallel-batches decoding worker failed ({worker.exitcode})")
    for row in rows:
        print(_row(row), flush=True)
    return rows


def benchmark_ctranslate2(args: argparse.Namespace) -> list[dict]:
    """The same model exported to CTranslate2: float32 and int8 speed on test2016 (1 intra-op
    thread x 2 parallel batches, the fastest setting on 2 cores), and how often its greedy
    output equals ours."""
    import tempfile

    from t2t_lite.export.ctranslate2 import (
        ctranslate2_translate,
        export_ctranslate2,
        load_ctranslate2_translator,
    )
    from t2t_lite.inference.scoring import score_translations

    translator, prefix = _translator(args)
    src, ref = _test_set(args)
    ours_greedy = translator.translate(src, beam_size=1)
    src_vocab, tgt_vocab = translator.source_vocab, translator.target_vocab
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = export_ctranslate2(translator.model, src_vocab, tgt_vocab, os.path.join(tmp, "ct2"))
        for compute_type in ("float32", "int8"):
            ct2 = load_ctranslate2_translator(out, compute_type, intra_threads=1, inter_threads=2)
            for beam in (4, 1):

                def run(lines, beam=beam, ct2=ct2):
                    return ctranslate2_translate(
                        ct2,
                        lines,
                        src_vocab,
                        tgt_vocab,
                        beam_size=beam,
                        max_batch_size=32,
                        length_penalty=translator.decode.alpha if beam > 1 else 0.0,
                    )

                run(src[:64])
                start = time.perf_counter()
                hyps = run(src)
                seconds = time.perf_counter() - start
                row = {
                    "system": f"ctranslate2 {compute_type} (1 intra x 2 inter threads)",
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
                print(_row(row), flush=True)
    return rows


def benchmark_scaling(args: argparse.Namespace) -> list[dict]:
    """Greedy decode cost per generated token for sources 1, 2, 4 and 8 sentences long."""
    translator, _ = _translator(args)
    src, _ = _test_set(args)
    rows = []
    for glue in (1, 2, 4, 8):
        lines = [" ".join(src[i * glue : (i + 1) * glue]) for i in range(64)]
        _, seconds, target_tokens = _timed_translate(translator, lines, 1, 32)
        source_pieces = translator.stats.source_tokens / len(lines)
        rows.append(
            {
                "system": "t2t_lite",
                "what": f"greedy, sources of {glue} sentence(s)",
                "mean_source_pieces": round(source_pieces, 1),
                "mean_output_pieces": round(target_tokens / len(lines), 1),
                "ms_per_output_piece": round(1000 * seconds / max(target_tokens, 1), 3),
            }
        )
        print(_row(rows[-1]), flush=True)
    return rows


def peak_matmul_flops(dtype: str, n: int = 2048, repeats: int = 20) -> float:
    """Measured FLOP/s of an `[n, n] x [n, n]` matmul chain in `dtype` on this machine."""
    import tensorflow as tf

    a = tf.random.normal([n, n], dtype=tf.float32)
    a = tf.cast(a, dtype) / n**0.5

    @tf.function
    def chain(x):
        for _ in range(repeats):
            x = tf.matmul(x, a)
        return tf.reduce_sum(tf.cast(x, tf.float32))

    chain(a)  # trace and warm up
    start = time.perf_counter()
    chain(a).numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def training_flops(cfg, batch: dict) -> float:
    """FLOPs of one training step (forward + backward = 3 x forward) on a padded batch."""
    b, s = batch["source"].shape
    t = batch["target_in"].shape[1]
    m = cfg.model
    d, f, vocab = m.d_model, m.d_ff, cfg.vocab.size
    enc = b * s * (2 * 4 * d * d + 2 * 2 * d * f) + 2 * 2 * b * s * s * d
    dec = b * t * (2 * 6 * d * d + 2 * 2 * d * f) + 2 * b * s * 2 * d * d  # + memory k/v
    dec += 2 * 2 * b * t * t * d + 2 * 2 * b * t * s * d  # self and cross attention
    output = 2 * b * t * d * vocab
    return 3.0 * (m.num_encoder_layers * enc + m.num_decoder_layers * dec + output)


def benchmark_flops(args: argparse.Namespace) -> list[dict]:
    """Model FLOPs per step and per second of training against the machine's matmul peak."""
    cfg, src_vocab, tgt_vocab, state = _train_state(args)
    batches = _batches(cfg, src_vocab, tgt_vocab, args.work_dir)
    sample = [next(batches) for _ in range(50)]
    flops = sum(training_flops(cfg, b) for b in sample) / len(sample)
    for b in sample[:10]:  # warm-up and tracing
        state.train_step([b])
    start = time.perf_counter()
    for b in sample[10:]:
        state.train_step([b])
    achieved = flops / ((time.perf_counter() - start) / (len(sample) - 10))
    rows = []
    for dtype in ("float32", "bfloat16"):
        peak = peak_matmul_flops(dtype)
        rows.append(
            {
                "system": "t2t_lite",
                "what": f"FLOPs vs {dtype} matmul peak",
                "settings": " ".join(args.set) or "comparison model",
                "gflop_per_step": round(flops / 1e9, 1),
                "achieved_gflops": round(achieved / 1e9, 1),
                "peak_matmul_gflops": round(peak / 1e9, 1),
                "fraction_of_peak": round(achieved / peak, 3),
            }
        )
        print(_row(rows[-1]), flush=True)
    return rows


def run_onmt(args: argparse.Namespace, decode: bool) -> list[dict]:
    """Runs the OpenNMT-tf anchor script and returns its JSON lines."""
    command = ["bash", _ANCHOR, "--steps", str(args.onmt_steps)] + (["--ct2"] if decode else [])
    print(
        f"running {' '.join(command)} (installs its own venv under /tmp the first time)", flush=True
    )
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def ratios(ours: list[dict], theirs: list[dict]) -> list[str]:
    """Lines comparing our figures with the anchor's on the same measure."""
    lines = []
    train = [r for r in ours if r["what"] == "train"]
    onmt_train = [r for r in theirs if r.get("what") == "train"]
    if train and onmt_train and onmt_train[0].get("tokens_per_s"):
        ratio = train[0]["tokens_per_s"] / onmt_train[0]["tokens_per_s"]
        lines.append(f"train tokens/s: t2t_lite / OpenNMT-tf = {ratio:.2f}x")
    for beam in (4, 1):
        what = f"decode beam {beam}"
        mine = [
            r
            for r in ours
            if r["what"] == what and r.get("batch") == 32 and r["system"].startswith("t2t_lite")
        ]
        # CTranslate2 on our export (same model), then OpenNMT-tf and CTranslate2 on theirs.
        others = [
            dict(r, system=f"{r['system']} on our export")
            for r in ours
            if r["what"].startswith(what) and not r["system"].startswith("t2t_lite")
        ] + [r for r in theirs if r.get("what", "").startswith(what)]
        for row in mine:
            for other in others:
                ratio = row["sentences_per_s"] / other["sentences_per_s"]
                lines.append(
                    f"beam {beam} sentences/s: {row['system']} / {other['system']} = {ratio:.2f}x"
                )
    return lines


def _row(row: dict) -> str:
    return "  ".join(
        f"{k}={v:,}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in row.items()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["train", "decode", "scaling", "flops", "all"])
    parser.add_argument("--config", default=os.path.join(_REPO, "configs", "multi30k_cpu.yaml"))
    parser.add_argument("--set", action="append", default=[], help="section.key=value")
    parser.add_argument("--warmup_steps", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--work_dir", default=os.path.join("/tmp", "t2t_benchmark_train"))
    parser.add_argument("--model_dir", help="trained model for decode/scaling")
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--sentences", type=int, default=0, help="first N test sentences")
    parser.add_argument(
        "--parallel_batches",
        type=int,
        default=2,
        help="decode: batches at a time in the 1-intra-op-thread comparison",
    )
    parser.add_argument("--compare-onmt", action="store_true", dest="compare_onmt")
    parser.add_argument("--onmt_steps", type=int, default=200)
    parser.add_argument("--json", help="also write all rows to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not os.environ.get("T2T_DATA_DIR") and os.path.isdir(_SHARED_DATA):
        os.environ["T2T_DATA_DIR"] = _SHARED_DATA
    if args.command in ("decode", "scaling") and not args.model_dir:
        parser.error(f"{args.command} needs --model_dir (a trained model, e.g. runs/quickstart)")
    plan = {
        "train": [benchmark_train],
        "decode": [benchmark_decode, benchmark_parallel_decode, benchmark_ctranslate2],
        "scaling": [benchmark_scaling],
        "flops": [benchmark_flops],
        "all": [benchmark_train, benchmark_flops]
        + (
            [benchmark_decode, benchmark_parallel_decode, benchmark_ctranslate2, benchmark_scaling]
            if args.model_dir
            else []
        ),
    }[args.command]
    rows = []
    for bench in plan:
        rows += bench(args)
    if args.compare_onmt:
        decoding = any(r["what"].startswith("decode") for r in rows)
        theirs = run_onmt(args, decode=decoding)
        comparisons = ratios(rows, theirs)
        rows += theirs
        for line in comparisons:
            print(line)
    print("\n".join(_row(r) for r in rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.path.insert(0, _REPO)
    main()
