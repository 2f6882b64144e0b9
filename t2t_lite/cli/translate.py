"""t2t-translate: translate a file or stdin with a model directory.

    t2t-translate --model_dir=runs/m30k --input=test.en --output=test.de --beam_size=4

Writes exactly one line per input line, in input order (an empty input line gives an empty
line). With --n_best=N > 1, writes N lines per input line in the Moses n-best format
`INDEX ||| TRANSLATION ||| SCORE` (0-based input index, best first). Reads stdin in chunks
and answers without waiting for end of file. Speed (sentences/s, tokens/s) goes to stderr.

With --engine=ctranslate2 the checkpoint's CTranslate2 export translates (made on first use
and kept in MODEL_DIR/ctranslate2/; --compute_type=int8 etc. choose its precision); how the
options map is described in `t2t_lite.export.ct2_translator`.
"""

import sys

from absl import flags, logging

from t2t_lite.cli import common
from t2t_lite.export.ct2_translator import COMPUTE_TYPES, CTranslate2Translator
from t2t_lite.inference.streaming import finish_output, open_output, translate_stream
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import load_model

FLAGS = flags.FLAGS
common.define_translation()
flags.DEFINE_string("input", "-", "Source file, or - for stdin.")
flags.DEFINE_string("output", "-", "Output file (written when complete), or - for stdout.")
flags.DEFINE_integer("n_best", 1, "Hypotheses per input line (<= beam size).")
flags.DEFINE_integer("chunk_lines", 1000, "Lines read (and sorted by length) at a time.")
common.flag_at_least("n_best", 1)
common.flag_at_least("chunk_lines", 1)
flags.DEFINE_enum(
    "engine",
    "tensorflow",
    ["tensorflow", "ctranslate2"],
    "tensorflow: the checkpoint; ctranslate2: its CTranslate2 export, made on first use and "
    "kept in MODEL_DIR/ctranslate2 (--alpha is then CTranslate2's length_penalty).",
)
flags.DEFINE_enum(
    "compute_type", "default", COMPUTE_TYPES, "CTranslate2 compute type (--engine=ctranslate2)."
)


def main(argv):
    del argv
    common.apply_intra_threads()
    if FLAGS.engine == "ctranslate2":
        translator, prefix = load_ct2_translator()
    else:
        if FLAGS["compute_type"].present:
            raise flags.ValidationError("--compute_type needs --engine=ctranslate2")
        model, cfg, src_vocab, tgt_vocab, prefix = load_model(FLAGS.model_dir, FLAGS.checkpoint)
        translator = Translator(model, src_vocab, tgt_vocab, cfg.decode)
    logging.info("translating with %s", prefix)
    beam_size = FLAGS.beam_size or translator.decode.beam_size
    if FLAGS.n_best > beam_size:
        raise flags.ValidationError(f"--n_best={FLAGS.n_best} exceeds beam size {beam_size}")
    source = sys.stdin.buffer if FLAGS.input == "-" else open(FLAGS.input, "rb")  # noqa: SIM115
    target, temp = open_output(FLAGS.output)
    ok = False
    try:
        translate_stream(
            translator,
            source,
            "stdin" if FLAGS.input == "-" else FLAGS.input,
            target,
            chunk_lines=FLAGS.chunk_lines,
            beam_size=beam_size,
            alpha=FLAGS.alpha,
            n_best=FLAGS.n_best,
            batch_tokens=FLAGS.batch_tokens,
            parallel_batches=FLAGS.parallel_batches,
        )
        ok = True
    finally:
        finish_output(target, temp, FLAGS.output, ok)
        if source is not sys.stdin.buffer:
            source.close()
    print(f"t2t-translate: {translator.stats.summary()}", file=sys.stderr)


def load_ct2_translator() -> tuple[CTranslate2Translator, str]:
    """The --engine=ctranslate2 translator and its checkpoint; setup errors as flag errors."""
    try:
        return CTranslate2Translator.from_model_dir(
            FLAGS.model_dir,
            FLAGS.checkpoint,
            compute_type=FLAGS.compute_type,
            parallel_batches=FLAGS.parallel_batches,
            intra_threads=FLAGS.intra_threads,
        )
    except (ImportError, ValueError) as e:
        raise flags.ValidationError(f"--engine=ctranslate2: {e}") from None


def run():
    common.run("t2t-translate", main)


if __name__ == "__main__":
    run()
