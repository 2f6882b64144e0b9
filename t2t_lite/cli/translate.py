"""t2t-translate: translate a file or stdin with a model directory.

    t2t-translate --model_dir=runs/m30k --input=test.en --output=test.de --beam_size=4

Writes exactly one line per input line, in input order (an empty input line gives an empty
line). With --n_best=N > 1, writes N lines per input line in the Moses n-best format
`INDEX ||| TRANSLATION ||| SCORE` (0-based input index, best first). Reads stdin in chunks
and answers without waiting for end of file. Speed (sentences/s, tokens/s) goes to stderr.

Decoding options (named as in CTranslate2, combinable with each other and with beam or greedy
search; sampling needs --beam_size=1): --target_prefix, --sampling_topk, --sampling_topp,
--sampling_temperature, --seed, --no_repeat_ngram_size, --repetition_penalty.

With --ensemble=DIR[,DIR...] the models of those directories decode together with
--model_dir's (probabilities averaged step by step; same vocabularies; see
`t2t_lite.inference.ensemble`). With --alignments=PATH, PATH gets one line of source-target
piece alignments (`i-j` pairs, Pharaoh format) per output line.

With --engine=ctranslate2 the checkpoint's CTranslate2 export translates (made on first use
and kept in MODEL_DIR/ctranslate2/; --compute_type=int8 etc. choose its precision); how the
options map is described in `t2t_lite.export.ct2_translator`.
"""

import sys

from absl import flags, logging

from t2t_lite.cli import common
from t2t_lite.export.ct2_translator import COMPUTE_TYPES, CTranslate2Translator
from t2t_lite.inference.ensemble import load_ensemble
from t2t_lite.inference.streaming import (
    finish_output,
    open_output,
    read_prefixes,
    translate_stream,
)
from t2t_lite.inference.translator import Translator

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

flags.DEFINE_list(
    "ensemble",
    [],
    "More model directories (comma-separated) decoding together with --model_dir's model: "
    "probabilities averaged at every step, each with its default checkpoint. They must share "
    "--model_dir's vocabularies; --model_dir's config gives the decoding defaults.",
)
flags.DEFINE_string(
    "alignments",
    None,
    "Also write, per output line (n-best lines included, same order), the source-target "
    "piece alignments in Pharaoh format (`i-j`: source piece i, target piece j, 0-based) "
    "from the model's alignment attention (last decoder layer over the source, mean of its "
    "heads). Written when complete, like --output.",
)

# Decoding options, named as CTranslate2 names them; defaults from the config's decode section.
# Checked in `_decoding_options` (one-line error, exit 2), not by absl validators.
flags.DEFINE_string(
    "target_prefix",
    None,
    "File with one target prefix per input line (an empty line means none): each translation "
    "starts with its prefix and the search continues from it. Works with beam and greedy "
    "search and sampling.",
)
flags.DEFINE_integer(
    "sampling_topk",
    None,
    "Sample each token from the K most likely (1 = greedy search, no sampling; 0 = the whole "
    "vocabulary). Sampling needs --beam_size=1; --n_best is then the number of independent "
    "samples per line.",
)
flags.DEFINE_float(
    "sampling_topp",
    None,
    "With sampling: draw from the smallest set of most likely tokens whose probability "
    "reaches P, in (0, 1] (1 = off).",
)
flags.DEFINE_float(
    "sampling_temperature", None, "With sampling: divide log-probabilities by T > 0 first."
)
flags.DEFINE_integer(
    "seed",
    None,
    "With sampling: random seed (>= 0); the same seed gives the same output for a line "
    "whatever the batching.",
)
flags.DEFINE_integer(
    "no_repeat_ngram_size", None, "No n-gram of this size occurs twice in an output (0 = off)."
)
flags.DEFINE_float(
    "repetition_penalty",
    None,
    "CTRL penalty on tokens already generated: logit / R if positive, * R if negative "
    "(1 = off; > 1 discourages repetition).",
)
_OPTION_FLAGS = (
    "sampling_topk",
    "sampling_topp",
    "sampling_temperature",
    "seed",
    "no_repeat_ngram_size",
    "repetition_penalty",
)


def _decoding_options(decode, beam_size: int) -> dict:
    """The keyword arguments of `translate_nbest` for the option flags that are set.

    Raises:
        flags.ValidationError: a value is out of range or does not fit with the others.
    """
    from t2t_lite.inference.constraints import Constraints
    from t2t_lite.inference.sampling import Sampling

    options = {n: getattr(FLAGS, n) for n in _OPTION_FLAGS if getattr(FLAGS, n) is not None}
    if options.get("seed", 0) < 0:
        raise flags.ValidationError(f"--seed must be >= 0, got {FLAGS.seed}")
    value = {n: options.get(n, getattr(decode, n)) for n in _OPTION_FLAGS}
    sampling = Sampling(
        value["sampling_topk"], value["sampling_topp"], value["sampling_temperature"]
    )
    constraints = Constraints(value["no_repeat_ngram_size"], value["repetition_penalty"])
    try:
        sampling.validate()
        constraints.validate()
    except ValueError as e:
        raise flags.ValidationError(f"--{e}") from None
    if sampling.enabled and beam_size != 1:
        raise flags.ValidationError(
            f"--sampling_topk={sampling.topk} samples and needs --beam_size=1, "
            f"got beam size {beam_size}"
        )
    if FLAGS.n_best > beam_size and not sampling.enabled:
        raise flags.ValidationError(f"--n_best={FLAGS.n_best} exceeds beam size {beam_size}")
    return options


def main(argv):
    del argv
    common.apply_decoding_flags()
    if FLAGS.engine == "ctranslate2":
        for name in ("ensemble", "alignments"):
            if FLAGS[name].present:
                raise flags.ValidationError(
                    f"--{name} needs --engine=tensorflow (the CTranslate2 engine translates "
                    "with one model and returns no alignments)"
                )
        translator, prefix = load_ct2_translator()
    else:
        if FLAGS["compute_type"].present:
            raise flags.ValidationError("--compute_type needs --engine=ctranslate2")
        models, cfg, src_vocab, tgt_vocab, prefixes = load_ensemble(
            FLAGS.model_dir, FLAGS.checkpoint, FLAGS.ensemble
        )
        translator = Translator(models[0], src_vocab, tgt_vocab, cfg.decode, models[1:])
        prefix = ", ".join(prefixes)
    logging.info("translating with %s", prefix)
    beam_size = FLAGS.beam_size or translator.decode.beam_size
    options = _decoding_options(translator.decode, beam_size)
    prefixes = read_prefixes(FLAGS.target_prefix) if FLAGS.target_prefix else None
    if FLAGS.engine == "ctranslate2" and (prefixes is not None or "seed" in options):
        raise flags.ValidationError(
            "--target_prefix and --seed need --engine=tensorflow (the other options pass to "
            "CTranslate2 under the same names)"
        )
    source = sys.stdin.buffer if FLAGS.input == "-" else open(FLAGS.input, "rb")  # noqa: SIM115
    target, temp = open_output(FLAGS.output)
    aligned, aligned_temp = open_output(FLAGS.alignments) if FLAGS.alignments else (None, None)
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
            target_prefixes=prefixes,
            alignments=aligned,
            **options,
        )
        ok = True
    finally:
        finish_output(target, temp, FLAGS.output, ok)
        if aligned is not None:
            finish_output(aligned, aligned_temp, FLAGS.alignments, ok)
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
