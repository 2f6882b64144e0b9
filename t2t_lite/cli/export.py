"""t2t-export: export a model directory for serving.

    t2t-export --model_dir=runs/m30k --output=exported              # TensorFlow SavedModel
    t2t-export --model_dir=runs/m30k --output=ct2 --format=ctranslate2 --quantization=int8

`--average_last=N` first averages the model weights of the last N checkpoints (of those in the
last `--average_within` fraction of the steps). The SavedModel decodes with --beam_size and
--alpha (default: the config's); CTranslate2 takes its search settings when it translates,
and stores float32 weights unless --quantization is given.
"""

from absl import flags, logging

from t2t_lite.cli import common
from t2t_lite.model_dir import load_model

FLAGS = flags.FLAGS
common.define_model_dir()
common.define_checkpoint()
common.define_search()
flags.DEFINE_string(
    "output", None, "Directory to create (must not exist or be empty).", required=True
)
flags.DEFINE_enum("format", "saved_model", ["saved_model", "ctranslate2"], "Export format.")
flags.DEFINE_enum(
    "quantization",
    None,
    ["int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16"],
    "CTranslate2 weight type; default: float32.",
)
flags.register_validator(
    "quantization",
    lambda value: value is None or FLAGS.format == "ctranslate2",
    message="--quantization needs --format=ctranslate2",
)
flags.DEFINE_integer("average_last", 0, "Average the last N checkpoints first (0/1 = off).")
common.flag_at_least("average_last", 0)
flags.DEFINE_float(
    "average_within",
    1.0,
    "With --average_last: only the checkpoints saved in this last fraction of the steps "
    "(as train.average_within; 1.0 = all N).",
)
flags.register_validator(
    "average_within",
    lambda value: 0.0 < value <= 1.0,
    message="--average_within must be in (0, 1]",
)


def main(argv):
    del argv
    checkpoint = FLAGS.checkpoint
    if FLAGS.average_last > 1:
        from t2t_lite.training.checkpoints import average_checkpoints

        checkpoint = average_checkpoints(FLAGS.model_dir, FLAGS.average_last, FLAGS.average_within)
        logging.info("averaged the last %d checkpoints into %s", FLAGS.average_last, checkpoint)
    model, cfg, src_vocab, tgt_vocab, prefix = load_model(FLAGS.model_dir, checkpoint)
    if FLAGS.beam_size:
        cfg.decode.beam_size = FLAGS.beam_size
    if FLAGS.alpha is not None:
        cfg.decode.alpha = FLAGS.alpha
    if FLAGS.format == "saved_model":
        from t2t_lite.export.saved_model import export_saved_model

        export_saved_model(model, src_vocab, tgt_vocab, cfg.decode, FLAGS.output)
    else:
        from t2t_lite.export.ctranslate2 import export_ctranslate2

        export_ctranslate2(model, src_vocab, tgt_vocab, FLAGS.output, FLAGS.quantization)
    print(f"t2t-export: wrote {FLAGS.format} of {prefix} to {FLAGS.output}")


def run():
    common.run("t2t-export", main)


if __name__ == "__main__":
    run()
