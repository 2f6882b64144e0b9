"""Export to a TensorFlow SavedModel that translates strings, with tokenization in the graph.

The SavedModel has three signatures:

- `serving_default`: `sources` string `[B]` -> `translations` string `[B]`, `scores` float32
  `[B]`. Whitespace is normalized and over-long inputs are cut exactly as `t2t-translate` does;
  an empty input gives an empty translation.
- `translate_ids`: `source_ids` int32 `[B, S]` (pieces + EOS unless the model's
  `source_eos` is false, 0 = padding) -> `ids` int32
  `[B, L]` (ending with EOS, 0 after it), `lengths` int32 `[B]`, `scores` float32 `[B]`.
- `translate_with_options`: `serving_default` with the decoding options that cost little in
  the graph, as scalar inputs named as t2t-translate's flags: `sampling_topk` int32 (1 =
  beam search as `serving_default`; any other value samples at beam 1),
  `sampling_topp` float32, `sampling_temperature` float32, `seed` int64 (sample streams are
  keyed by the row in the request), `no_repeat_ngram_size` int32, `repetition_penalty`
  float32. A signature's inputs are all required (TensorFlow has no optional signature
  inputs), so `DEFAULT_OPTIONS` lists the values that give `serving_default`'s output.
  Out-of-range values fail the call with an InvalidArgumentError naming the option.

The beam size, length penalty and length limit are the model's `decode` settings at export.
Ensembles, alignments, target prefixes and n-best lists are not exported (t2t-translate and
the Python `Translator` have them).

SentencePiece runs inside the graph through tensorflow-text (`pip install t2t_lite[export]`);
loading needs TensorFlow and `import tensorflow_text`, not t2t_lite:

    import tensorflow as tf, tensorflow_text  # noqa: F401 (registers the SentencePiece ops)
    translate = tf.saved_model.load("exported").signatures["serving_default"]
    translate(sources=tf.constant(["A dog runs."]))["translations"]
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf

from t2t_lite.atomic import atomic_directory
from t2t_lite.config import DecodeConfig
from t2t_lite.constants import EOS_ID, PAD_ID
from t2t_lite.inference.constraints import Constraints
from t2t_lite.inference.sampling import Sampling
from t2t_lite.inference.translator import search_batch
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary

# The `translate_with_options` inputs that reproduce `serving_default`.
DEFAULT_OPTIONS = {
    "sampling_topk": 1,
    "sampling_topp": 1.0,
    "sampling_temperature": 1.0,
    "seed": 0,
    "no_repeat_ngram_size": 0,
    "repetition_penalty": 1.0,
}
_OPTION_SPECS = [
    tf.TensorSpec([], tf.int32, name="sampling_topk"),
    tf.TensorSpec([], tf.float32, name="sampling_topp"),
    tf.TensorSpec([], tf.float32, name="sampling_temperature"),
    tf.TensorSpec([], tf.int64, name="seed"),
    tf.TensorSpec([], tf.int32, name="no_repeat_ngram_size"),
    tf.TensorSpec([], tf.float32, name="repetition_penalty"),
]

# Python's str.split() whitespace (what t2t-translate collapses), in RE2 syntax; RE2's \s
# lacks the vertical tab \x0b.
_WHITESPACE = r"[\s\pZ\x{0b}\x{1c}-\x{1f}\x{85}]+"


def _tokenizer(vocab: Vocabulary):
    try:
        import tensorflow_text as tf_text
    except ImportError:
        raise ImportError(
            "SavedModel export needs tensorflow-text: pip install 't2t_lite[export]'"
        ) from None
    with open(vocab.path, "rb") as f:
        return tf_text.SentencepieceTokenizer(model=f.read(), out_type=tf.int32)


class TranslationModule(tf.Module):
    """The exported object: the model's weights, the tokenizers, and the three signatures.

    Args:
        model: a built Transformer with weights.
        source_vocab, target_vocab: its vocabularies.
        decode: beam size, length penalty and length limit baked into the export.
    """

    def __init__(
        self,
        model: Transformer,
        source_vocab: Vocabulary,
        target_vocab: Vocabulary,
        decode: DecodeConfig,
    ):
        super().__init__(name="t2t_lite_translation")
        self.model = model
        self.source_tokenizer = _tokenizer(source_vocab)
        self.target_tokenizer = _tokenizer(target_vocab)
        self.decode = decode

    @tf.function(
        input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")],
        autograph=False,
    )
    def translate_ids(self, source_ids):
        cfg = self.decode
        out = search_batch(self.model, source_ids, cfg, cfg.beam_size, cfg.alpha)
        return {"ids": out.ids[:, 0], "lengths": out.lengths[:, 0], "scores": out.scores[:, 0]}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="source_ids"),
            *_OPTION_SPECS,
        ],
        autograph=False,
    )
    def translate_ids_with_options(
        self,
        source_ids,
        sampling_topk,
        sampling_topp,
        sampling_temperature,
        seed,
        no_repeat_ngram_size,
        repetition_penalty,
    ):
        checks = [
            tf.debugging.assert_non_negative(sampling_topk, message="sampling_topk must be >= 0"),
            tf.debugging.assert_greater(sampling_topp, 0.0, message="sampling_topp must be > 0"),
            tf.debugging.assert_less_equal(
                sampling_topp, 1.0, message="sampling_topp must be <= 1"
            ),
            tf.debugging.assert_greater(
                sampling_temperature, 0.0, message="sampling_temperature must be > 0"
            ),
            tf.debugging.assert_non_negative(seed, message="seed must be >= 0"),
            tf.debugging.assert_non_negative(
                no_repeat_ngram_size, message="no_repeat_ngram_size must be >= 0"
            ),
            tf.debugging.assert_greater(
                repetition_penalty, 0.0, message="repetition_penalty must be > 0"
            ),
        ]
        cfg = self.decode
        constraints = Constraints(no_repeat_ngram_size, repetition_penalty)
        sampling = Sampling(sampling_topk, sampling_topp, sampling_temperature, seed)
        keys = tf.range(tf.shape(source_ids)[0])

        def first(out):
            return out.ids[:, 0], out.lengths[:, 0], out.scores[:, 0]

        def search():
            return first(
                search_batch(
                    self.model, source_ids, cfg, cfg.beam_size, cfg.alpha, constraints=constraints
                )
            )

        def sample():
            return first(
                search_batch(
                    self.model,
                    source_ids,
                    cfg,
                    1,
                    0.0,
                    constraints=constraints,
                    sampling=sampling,
                    keys=keys,
                )  # fmt: skip
            )

        with tf.control_dependencies(checks):
            ids, lengths, scores = tf.cond(tf.not_equal(sampling_topk, 1), sample, search)
        return {"ids": ids, "lengths": lengths, "scores": scores}

    def _source_ids(self, sources):
        """Strings `[B]` -> (normalized text `[B]`, source ids `[B, S]`), as t2t-translate."""
        text = tf.strings.strip(tf.strings.regex_replace(sources, _WHITESPACE, " "))  # [B]
        eos = tf.fill([tf.shape(sources)[0], int(self.model.source_eos)], EOS_ID)  # [B, 0 or 1]
        limit = self.model.max_length - int(self.model.source_eos)
        pieces = self.source_tokenizer.tokenize(text)[:, :limit]  # ragged
        return text, tf.concat([pieces, eos], axis=1).to_tensor(PAD_ID)  # [B, S]

    def _translations(self, text, out):
        """The `translate_ids` outputs -> `{"translations", "scores"}`; empty text -> ""."""
        ids = tf.RaggedTensor.from_tensor(
            out["ids"], lengths=tf.maximum(out["lengths"] - 1, 0)
        )  # drop EOS
        translations = self.target_tokenizer.detokenize(ids)  # [B]
        empty = tf.equal(text, "")
        return {
            "translations": tf.where(empty, "", translations),
            "scores": tf.where(empty, 0.0, out["scores"]),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sources")])
    def translate_strings(self, sources):
        text, source_ids = self._source_ids(sources)
        return self._translations(text, self.translate_ids(source_ids))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sources"), *_OPTION_SPECS])
    def translate_strings_with_options(self, sources, *options):
        text, source_ids = self._source_ids(sources)
        return self._translations(text, self.translate_ids_with_options(source_ids, *options))


def export_saved_model(
    model: Transformer,
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    decode: DecodeConfig,
    output_dir: str,
) -> str:
    """Writes the SavedModel to `output_dir` (atomically: built beside it, then renamed).

    Raises:
        FileExistsError: `output_dir` exists and is not empty.
    """
    module = TranslationModule(model, source_vocab, target_vocab, decode)
    with atomic_directory(output_dir) as temp:
        tf.saved_model.save(
            module,
            temp,
            signatures={
                "serving_default": module.translate_strings,
                "translate_ids": module.translate_ids,
                "translate_with_options": module.translate_strings_with_options,
            },
        )
        extra = os.path.join(temp, "assets.extra")  # the vocabularies, for users' own tools
        os.makedirs(extra, exist_ok=True)
        for name in {source_vocab.path, target_vocab.path}:
            shutil.copy(name, extra)
    return output_dir
