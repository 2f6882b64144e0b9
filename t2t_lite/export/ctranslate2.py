"""Export to CTranslate2, and translation with the exported model.

`export_ctranslate2` fills a `ctranslate2.specs.TransformerSpec` with the weights of a
`Transformer` and writes a CTranslate2 model directory:

    model.bin                 weights (optionally quantized, e.g. int8)
    config.json               special tokens, add_source_eos, layer_norm_epsilon
    shared_vocabulary.json    the SentencePiece pieces in id order (or source_/target_...)
    vocab.model               the SentencePiece model (or vocab.src.model + vocab.tgt.model)

Our layout needs no reshuffling: self-attention already projects with one fused `[D, 3D]`
matrix and cross-attention with `[D, D]` + fused `[D, 2D]`, as CTranslate2 does. Two things do
need care, and both are handled here:

- Positions. CTranslate2's built-in sinusoids start counting at 1 (OpenNMT-tf); ours start at
  0. The export therefore stores the exact table of `t2t_lite.layers.positional.sinusoids`.
- Special tokens. Our sources end with EOS unless `model.source_eos` is false
  (`add_source_eos`), the decoder starts from BOS,
  and a translation may be empty (`ctranslate2_translate` passes `min_decoding_length=0`).

Without a length penalty (`length_penalty=0` here, `alpha=0` in `Translator`) both give the
same translations, greedy or with a beam. With one they differ: CTranslate2 divides the
log-probability by `length ** length_penalty`, we by the GNMT `((5 + length) / 6) ** alpha`.

Example:
    >>> export_ctranslate2(model, src_vocab, tgt_vocab, "runs/m/ct2", quantization="int8")
    >>> translator = load_ctranslate2_translator("runs/m/ct2", compute_type="int8")
    >>> ctranslate2_translate(translator, ["A dog runs."], src_vocab, tgt_vocab, beam_size=4)
    ['Ein Hund rennt.']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import sentencepiece as spm
import tensorflow as tf

from t2t_lite.atomic import atomic_directory
from t2t_lite.constants import BOS_ID, EOS_ID, SHARED_VOCAB, SOURCE_VOCAB, TARGET_VOCAB, UNK_ID
from t2t_lite.data.text import normalize
from t2t_lite.layers import (
    DecoderLayer,
    Dense,
    EncoderLayer,
    LayerNormalization,
    MultiHeadAttention,
)
from t2t_lite.layers.positional import sinusoids
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary

if TYPE_CHECKING:
    import ctranslate2

# CTranslate2's default `max_input_length`; the stored position table covers at least this many
# positions so that CTranslate2's defaults never index past it.
MIN_POSITIONS = 1024


def _import_ctranslate2() -> Any:
    try:
        import ctranslate2
    except ImportError as e:
        raise ImportError(
            "CTranslate2 support needs the ctranslate2 package: pip install 't2t_lite[export]'"
        ) from e
    return ctranslate2


def export_ctranslate2(
    model: Transformer,
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    output_dir: str | os.PathLike,
    quantization: str | None = None,
) -> str:
    """Writes `model` as a CTranslate2 model directory (atomically: built beside, then renamed).

    Args:
        model: a built Transformer with its weights.
        source_vocab: the source vocabulary the model was trained with.
        target_vocab: the target vocabulary.
        output_dir: directory to create; it may exist if it is empty.
        quantization: None (float32 weights) or a CTranslate2 weight type: "int8",
            "int8_float32", "int8_float16", "int16", "float16", ...

    Returns:
        `output_dir`.

    Raises:
        ImportError: ctranslate2 is not installed.
        FileExistsError: `output_dir` exists and is not an empty directory.
        ValueError: the vocabularies do not fit the model, or source and target name their
            special pieces differently; or `quantization` is not a CTranslate2 type.
    """
    ct2 = _import_ctranslate2()
    output_dir = os.fspath(output_dir)
    with atomic_directory(output_dir) as temp:
        spec = _transformer_spec(ct2.specs, model, source_vocab, target_vocab)
        spec.validate()
        spec.optimize(quantization=quantization)
        spec.save(temp)
    return output_dir


def _transformer_spec(
    specs: Any, model: Transformer, source_vocab: Vocabulary, target_vocab: Vocabulary
) -> Any:
    """The filled (not yet validated) `ctranslate2.specs.TransformerSpec` of `model`."""
    pre_norm = model.norm == "pre"
    spec = specs.TransformerSpec.from_config(
        (model.num_encoder_layers, model.num_decoder_layers),
        model.num_heads,
        pre_norm=pre_norm,
        no_final_norm=not pre_norm,
    )
    _set_vocabularies(spec, model, source_vocab, target_vocab)
    spec.config.layer_norm_epsilon = float(model.encoder.blocks[0].attention_norm.epsilon)

    positions = _position_table(model.d_model, max(model.max_length, MIN_POSITIONS))
    encoder, decoder = model.encoder, model.decoder
    spec.encoder.embeddings[0].weight = _numpy(model.source_embedding.embeddings)
    spec.encoder.position_encodings.encodings = positions
    for layer_spec, layer in zip(spec.encoder.layer, encoder.blocks, strict=True):
        _set_attention(layer_spec.self_attention, layer.self_attention, layer.attention_norm)
        _set_ffn(layer_spec.ffn, layer)
    if pre_norm:
        _set_layer_norm(spec.encoder.layer_norm, encoder.final_norm)

    spec.decoder.embeddings.weight = _numpy(model.target_embedding.embeddings)
    spec.decoder.position_encodings.encodings = positions
    for layer_spec, layer in zip(spec.decoder.layer, decoder.blocks, strict=True):
        _set_attention(layer_spec.self_attention, layer.self_attention, layer.self_attention_norm)
        _set_attention(layer_spec.attention, layer.cross_attention, layer.cross_attention_norm)
        _set_ffn(layer_spec.ffn, layer)
    if pre_norm:
        _set_layer_norm(spec.decoder.layer_norm, decoder.final_norm)
    output = model.output_layer()  # the projection training and inference read
    kernel = _numpy(output.kernel)  # [V, D] = [out, in] when vocab_major, else [D, V]
    spec.decoder.projection.weight = (
        kernel if output.vocab_major else np.ascontiguousarray(kernel.T)
    )
    spec.decoder.projection.bias = _numpy(output.bias)
    return spec


def _set_vocabularies(
    spec: Any, model: Transformer, source_vocab: Vocabulary, target_vocab: Vocabulary
) -> None:
    """Registers the pieces, the special tokens and the SentencePiece model files."""
    source_pieces, target_pieces = _pieces(source_vocab), _pieces(target_vocab)
    for side, pieces, size in (
        ("source", source_pieces, model.source_vocab_size),
        ("target", target_pieces, model.target_vocab_size),
    ):
        if len(pieces) != size:
            raise ValueError(f"the {side} vocabulary has {len(pieces)} pieces, the model {size}")
    specials = {}
    for name, special_id in (("unk", UNK_ID), ("bos", BOS_ID), ("eos", EOS_ID)):
        if source_pieces[special_id] != target_pieces[special_id]:
            raise ValueError(
                f"CTranslate2 has one {name} token for both sides, but id {special_id} is "
                f"{source_pieces[special_id]!r} in {source_vocab.path} and "
                f"{target_pieces[special_id]!r} in {target_vocab.path}"
            )
        specials[name] = target_pieces[special_id]
    spec.register_source_vocabulary(source_pieces)
    spec.register_target_vocabulary(target_pieces)
    config = spec.config
    config.unk_token = specials["unk"]  # "<unk>", "<s>", "</s>" with our SentencePiece models
    config.bos_token = specials["bos"]
    config.eos_token = specials["eos"]
    config.decoder_start_token = specials["bos"]
    config.add_source_bos = False
    config.add_source_eos = bool(model.source_eos)  # sources are pieces (+ [EOS])
    if os.path.realpath(source_vocab.path) == os.path.realpath(target_vocab.path):
        spec.register_file(source_vocab.path, SHARED_VOCAB)
    else:
        spec.register_file(source_vocab.path, SOURCE_VOCAB)
        spec.register_file(target_vocab.path, TARGET_VOCAB)


def _pieces(vocab: Vocabulary) -> list[str]:
    """The SentencePiece pieces of `vocab`, in id order."""
    sp = spm.SentencePieceProcessor(model_file=vocab.path)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _position_table(depth: int, num_positions: int) -> np.ndarray:
    """Our encodings of positions 0 .. num_positions - 1: `[num_positions, D]` float32."""
    positions = tf.range(num_positions, dtype=tf.float32)  # [P]
    return sinusoids(positions, depth).numpy()  # [P, D]


def _numpy(variable: keras.Variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def _set_linear(spec: Any, dense: Dense) -> None:
    spec.weight = np.ascontiguousarray(_numpy(dense.kernel).T)  # Keras [in, out] -> [out, in]
    spec.bias = _numpy(dense.bias)


def _set_layer_norm(spec: Any, norm: LayerNormalization) -> None:
    spec.gamma = _numpy(norm.gamma)
    spec.beta = _numpy(norm.beta)


def _set_attention(spec: Any, attention: MultiHeadAttention, norm: LayerNormalization) -> None:
    """Self-attention: linear = [qkv, output]; cross-attention: [query, kv, output]. The
    sublayer's norm goes in the attention spec, pre- or post-norm alike."""
    if attention.self_attention:
        projections = [attention.qkv_proj, attention.out_proj]
    else:
        projections = [attention.q_proj, attention.kv_proj, attention.out_proj]
    for linear_spec, dense in zip(spec.linear, projections, strict=True):
        _set_linear(linear_spec, dense)
    _set_layer_norm(spec.layer_norm, norm)


def _set_ffn(spec: Any, layer: EncoderLayer | DecoderLayer) -> None:
    _set_linear(spec.linear_0, layer.feed_forward.inner)
    _set_linear(spec.linear_1, layer.feed_forward.outer)
    _set_layer_norm(spec.layer_norm, layer.ffn_norm)


def load_ctranslate2_translator(
    translator_dir: str | os.PathLike,
    compute_type: str = "default",
    intra_threads: int = 0,
    inter_threads: int = 1,
) -> ctranslate2.Translator:
    """Loads an exported model on the CPU.

    Args:
        translator_dir: a directory written by `export_ctranslate2`.
        compute_type: "default" (the type the weights were saved in), "float32", "int8", ...
        intra_threads: threads per translation (0: CTranslate2 picks).
        inter_threads: translations run in parallel.
    """
    ct2 = _import_ctranslate2()
    return ct2.Translator(
        os.fspath(translator_dir),
        device="cpu",
        compute_type=compute_type,
        intra_threads=intra_threads,
        inter_threads=inter_threads,
    )


def ctranslate2_translate(
    translator: ctranslate2.Translator,
    lines: Sequence[str],
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    beam_size: int = 1,
    max_batch_size: int = 0,
    batch_type: str = "examples",
    length_penalty: float = 1.0,
    max_length: int = 256,
    **options: Any,
) -> list[str]:
    """Translates `lines` with CTranslate2, tokenizing and detokenizing like `Translator`.

    Whitespace is normalized; an empty line gives "" without reaching the model. Sources are
    tokenized to our piece ids and passed as piece strings; CTranslate2 appends EOS.

    Args:
        translator: from `load_ctranslate2_translator`.
        lines: source sentences.
        source_vocab: the source vocabulary of the exported model.
        target_vocab: the target vocabulary.
        beam_size: 1 for greedy search.
        max_batch_size: sentences (or tokens, see `batch_type`) per batch; 0 = one batch.
        batch_type: "examples" or "tokens".
        length_penalty: CTranslate2's `score / length ** length_penalty` (not our GNMT alpha).
        max_length: the model's `max_length`: sources are cut to it and translations end by
            it, EOS included, as in `Translator`. CTranslate2 has this one limit per call;
            `Translator` also stops a sentence at `max_length_a * S + max_length_b`.
        **options: more `ctranslate2.Translator.translate_batch` arguments.

    Returns:
        One translation per line.
    """
    texts = [normalize(line) for line in lines]
    todo = [i for i, text in enumerate(texts) if text]
    source_sp = spm.SentencePieceProcessor(model_file=source_vocab.path)
    target_sp = spm.SentencePieceProcessor(model_file=target_vocab.path)
    source_ids = source_vocab.encode([texts[i] for i in todo])
    tokens = [source_sp.id_to_piece(ids) for ids in source_ids]
    options.setdefault("min_decoding_length", 0)  # like ours, CTranslate2 may then emit EOS first
    results = translator.translate_batch(
        tokens,
        beam_size=beam_size,
        max_batch_size=max_batch_size,
        batch_type=batch_type,
        length_penalty=length_penalty,
        max_input_length=max_length,  # EOS included; CTranslate2 keeps EOS when cutting
        max_decoding_length=max_length - 1,  # EOS not counted
        **options,
    )
    target_ids = [target_sp.piece_to_id(result.hypotheses[0]) for result in results]
    translations = [""] * len(texts)
    for i, text in zip(todo, target_vocab.decode_batch(target_ids), strict=True):
        translations[i] = text
    return translations
