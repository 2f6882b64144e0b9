"""Export to a TensorFlow SavedModel that translates strings, with tokenization in the graph.

The SavedModel has two signatures:

- `serving_default`: `sources` string `[B]` -> `translations` string `[B]`, `scores` float32
  `[B]`. Whitespace is normalized and over-long inputs are cut exactly as `t2t-translate` does;
  an empty input gives an empty translation.
- `translate_ids`: `source_ids` int32 `[B, S]` (pieces + EOS unless the model's
  `source_eos` is false, 0 = padding) -> `ids` int32
  `[B, L]` (ending with EOS, 0 after it), `lengths` int32 `[B]`, `scores` float32 `[B]`.

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
from t2t_lite.inference.translator import search_batch
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary

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
    """The exported object: the model's weights, the tokenizers, and the two signatures.

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

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")])
    def translate_ids(self, source_ids):
        cfg = self.decode
        out = search_batch(self.model, source_ids, cfg, cfg.beam_size, cfg.alpha)
        return {"ids": out.ids[:, 0], "lengths": out.lengths[:, 0], "scores": out.scores[:, 0]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sources")])
    def translate_strings(self, sources):
        text = tf.strings.strip(tf.strings.regex_replace(sources, _WHITESPACE, " "))  # [B]
        eos = tf.fill([tf.shape(sources)[0], int(self.model.source_eos)], EOS_ID)  # [B, 0 or 1]
        limit = self.model.max_length - int(self.model.source_eos)
        pieces = self.source_tokenizer.tokenize(text)[:, :limit]  # ragged
        source_ids = tf.concat([pieces, eos], axis=1).to_tensor(PAD_ID)  # [B, S]
        out = self.translate_ids(source_ids)
        ids = tf.RaggedTensor.from_tensor(
            out["ids"], lengths=tf.maximum(out["lengths"] - 1, 0)
        )  # drop EOS
        translations = self.target_tokenizer.detokenize(ids)  # [B]
        empty = tf.equal(text, "")
        return {
            "translations": tf.where(empty, "", translations),
            "scores": tf.where(empty, 0.0, out["scores"]),
        }


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
            },
        )
        extra = os.path.join(temp, "assets.extra")  # the vocabularies, for users' own tools
        os.makedirs(extra, exist_ok=True)
        for name in {source_vocab.path, target_vocab.path}:
            shutil.copy(name, extra)
    return output_dir
