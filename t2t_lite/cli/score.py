"""t2t-score: the log-probability of given translations under a model.

    t2t-score --model_dir=runs/m30k --src=test.en --tgt=test.de --output=test.scores

Writes one line per (source, target) pair, in input order (OpenNMT-tf's `score` format with
the mean added):

    SCORE ||| MEAN ||| TARGET

SCORE is the summed log-probability of the target's pieces and EOS given the source
(teacher forced; what the beam search reports as a hypothesis' log-probability), MEAN is
SCORE divided by the number of scored tokens (pieces + 1), TARGET the target line with its
whitespace normalized. With --with_tokens_score (or --per_piece) a fourth field holds one
log-probability per piece, then EOS's, separated by spaces:

    SCORE ||| MEAN ||| TARGET ||| LP_1 ... LP_n LP_EOS

An empty target is scored as EOS alone, an empty source as a source of EOS alone, each with
a warning naming the line; files of different lengths are an error. Speed goes to stderr.
"""

import sys
import time

from absl import flags, logging

from t2t_lite.cli import common
from t2t_lite.data.text import read_parallel
from t2t_lite.inference.scorer import PairScore, Scorer
from t2t_lite.inference.streaming import finish_output, open_output
from t2t_lite.model_dir import load_model

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model directory written by t2t-train.", required=True)
flags.DEFINE_string("src", None, "Source sentences, one per line.", required=True)
flags.DEFINE_string("tgt", None, "Translations to score, line-aligned with --src.", required=True)
flags.DEFINE_string(
    "checkpoint",
    "",
    "latest, best, averaged, or a checkpoint path; default: averaged, else best, else latest.",
)
flags.DEFINE_string("output", "-", "Output file (written when complete), or - for stdout.")
flags.DEFINE_integer("batch_tokens", None, "Tokens per batch; default: decode.batch_tokens.")
flags.DEFINE_bool("with_tokens_score", False, "Also write each piece's log-probability.")
flags.DEFINE_alias("per_piece", "with_tokens_score")
common.flag_at_least("batch_tokens", 1)


def format_score(score: PairScore, target: str, with_tokens: bool) -> str:
    """One output line (with its newline): `SCORE ||| MEAN ||| TARGET[ ||| LP ...]`."""
    line = f"{score.log_prob:.6f} ||| {score.mean:.6f} ||| {target}"
    if with_tokens:
        line += " ||| " + " ".join(f"{lp:.4f}" for lp in score.token_log_probs)
    return line + "\n"


def main(argv):
    del argv
    sources, targets = read_parallel(FLAGS.src, FLAGS.tgt)
    model, cfg, src_vocab, tgt_vocab, prefix = load_model(FLAGS.model_dir, FLAGS.checkpoint)
    logging.info("scoring with %s", prefix)
    scorer = Scorer(model, src_vocab, tgt_vocab, FLAGS.batch_tokens or cfg.decode.batch_tokens)
    out, pending = open_output(FLAGS.output)
    ok = False
    try:
        start = time.perf_counter()
        scores = scorer.score(sources, targets)
        seconds = time.perf_counter() - start
        out.writelines(
            format_score(score, target, FLAGS.with_tokens_score)
            for score, target in zip(scores, targets, strict=True)
        )
        ok = True
    finally:
        finish_output(out, pending, FLAGS.output, ok)
    tokens = sum(len(score.token_log_probs) for score in scores)
    print(
        f"t2t-score: {len(scores)} pairs, {tokens} target tokens in {seconds:.1f}s "
        f"({len(scores) / max(seconds, 1e-9):.1f} pairs/s)",
        file=sys.stderr,
    )


def run():
    common.run("t2t-score", main)


if __name__ == "__main__":
    run()
