"""t2t-evaluate: translate a source file and score it against references with sacreBLEU.

    t2t-evaluate --model_dir=runs/m30k --src=test2016.en --ref=test2016.de

Prints BLEU and chrF with their sacreBLEU signatures (detokenized, cased output; default 13a
tokenization), and one JSON line with the same numbers for scripts.
"""

import json
import sys

from absl import flags

from t2t_lite.cli import common
from t2t_lite.data.text import read_parallel
from t2t_lite.inference.ensemble import load_ensemble
from t2t_lite.inference.scoring import score_translations
from t2t_lite.inference.streaming import finish_output, open_output
from t2t_lite.inference.translator import Translator

FLAGS = flags.FLAGS
common.define_translation()
flags.DEFINE_string("src", None, "Source sentences, one per line.", required=True)
flags.DEFINE_string("ref", None, "Reference translations, line-aligned with --src.", required=True)
flags.DEFINE_string("output", "", "Also write the translations to this file.")
flags.DEFINE_list(
    "ensemble",
    [],
    "More model directories decoding together with --model_dir's model (as t2t-translate "
    "--ensemble).",
)


def main(argv):
    del argv
    common.apply_decoding_flags()
    sources, references = read_parallel(FLAGS.src, FLAGS.ref)
    models, cfg, src_vocab, tgt_vocab, prefixes = load_ensemble(
        FLAGS.model_dir, FLAGS.checkpoint, FLAGS.ensemble
    )
    translator = Translator(models[0], src_vocab, tgt_vocab, cfg.decode, models[1:])
    prefix = ", ".join(prefixes)
    out, temp = open_output(FLAGS.output) if FLAGS.output else (None, None)
    ok = False
    try:
        hypotheses = translator.translate(
            sources,
            beam_size=FLAGS.beam_size,
            alpha=FLAGS.alpha,
            batch_tokens=FLAGS.batch_tokens,
            parallel_batches=FLAGS.parallel_batches,
        )
        if out:
            out.writelines(h + "\n" for h in hypotheses)
        ok = True
    finally:
        if out:
            finish_output(out, temp, FLAGS.output, ok)
    scores = score_translations(hypotheses, references)
    print(f"checkpoint: {prefix}")
    print(f"BLEU = {scores['bleu']:.2f}  {scores['bleu_signature']}")
    print(f"chrF = {scores['chrf']:.2f}  {scores['chrf_signature']}")
    print(f"speed: {translator.stats.summary()}", file=sys.stderr)
    print(json.dumps(dict(scores, checkpoint=prefix, sentences=len(sources))))


def run():
    common.run("t2t-evaluate", main)


if __name__ == "__main__":
    run()
