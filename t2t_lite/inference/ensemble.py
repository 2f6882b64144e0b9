"""Ensembles: several models decoding together, their distributions combined step by step.

Every model has its own encoder output, memory keys/values and self-attention cache; the
search sees one `step_fn` whose cache and memory are the tuples of the models' (reordered
and compacted like any cache and memory) and whose logits are the ensemble's
log-probabilities:

    log p(y | x) = log( (1/M) * sum_m p_m(y | x) )

the log of the mean probability, as fairseq combines its ensembles. The mixture is a
proper distribution (its log-softmax is itself), so the search, the length penalty,
sampling, target prefixes and repetition control treat it exactly as one model's logits
(the repetition penalty then scales these log-probabilities), and a model ensembled with
itself decodes as it does alone. The mean of the log-probabilities (a product of experts)
would instead let one confident model veto a token every other model likes.

The models share both vocabularies: one encoding of the source feeds every model, and the
distributions are over the same target pieces. `load_ensemble` refuses models whose
SentencePiece files differ, or whose sources disagree on ending with EOS.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import tensorflow as tf

from t2t_lite.config import Config
from t2t_lite.model_dir import ModelDirError, load_model
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary

__all__ = ["ensemble_step_fn", "load_ensemble", "vocabulary_digest"]


def ensemble_step_fn(models: Sequence[Transformer], source_ids: tf.Tensor, attention: bool = False):
    """`Transformer.step_fn` for one model or several (see the module docstring).

    Args:
        models: M >= 1 models sharing their vocabularies.
        source_ids: int `[B, S]`.
        attention: `step` also returns the alignment attention `[B*K, S]`, the mean of the
            models' (`Transformer` documents it).

    Returns:
        `(step, cache, memory)` as `Transformer.step_fn`; with one model, that model's own.
    """
    if len(models) == 1:
        return models[0].step_fn(source_ids, attention=attention)
    prepared = [m.step_fn(source_ids, attention=attention) for m in models]
    steps, caches, memories = zip(*prepared, strict=True)
    log_m = math.log(len(models))

    def step(ids, position, cache, memory):
        outs = [fn(ids, position, c, m) for fn, c, m in zip(steps, cache, memory, strict=True)]
        log_probs = tf.stack([tf.nn.log_softmax(out[0]) for out in outs])  # [M, B*K, V]
        combined = tf.reduce_logsumexp(log_probs, axis=0) - log_m  # [B*K, V]
        new_cache = tuple(out[1] for out in outs)
        if attention:
            mean = tf.reduce_mean(tf.stack([out[2] for out in outs]), axis=0)  # [B*K, S]
            return combined, new_cache, mean
        return combined, new_cache

    return step, tuple(caches), tuple(memories)


def vocabulary_digest(vocab: Vocabulary) -> str:
    """SHA-256 of a vocabulary's SentencePiece model file."""
    with open(vocab.path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_ensemble(
    model_dir: str, checkpoint: str = "", ensemble: Sequence[str] = ()
) -> tuple[list[Transformer], Config, Vocabulary, Vocabulary, list[str]]:
    """Loads `model_dir` (its `checkpoint`) and the default checkpoint of each `ensemble` dir.

    The first model's config gives the decoding defaults.

    Returns:
        `(models, config, source_vocab, target_vocab, checkpoint_prefixes)`.

    Raises:
        ModelDirError: a model's vocabularies (compared by SentencePiece file hash) or
            source EOS layout differ from `model_dir`'s; the one line names both directories.
        The errors of `t2t_lite.model_dir.load_model`.
    """
    model, cfg, src_vocab, tgt_vocab, prefix = load_model(model_dir, checkpoint)
    models, prefixes = [model], [prefix]
    digests = {"source": vocabulary_digest(src_vocab), "target": vocabulary_digest(tgt_vocab)}
    for other_dir in ensemble:
        other, _, other_src, other_tgt, other_prefix = load_model(other_dir)
        for side, vocab in (("target", other_tgt), ("source", other_src)):
            if vocabulary_digest(vocab) != digests[side]:
                raise ModelDirError(
                    f"--ensemble: {other_dir} has another {side} vocabulary than {model_dir} "
                    f"({vocab.path} differs from the first model's); an ensemble's models "
                    "share both vocabularies"
                )
        if other.source_eos != model.source_eos:
            raise ModelDirError(
                f"--ensemble: {other_dir} has model.source_eos={other.source_eos}, {model_dir} "
                f"{model.source_eos}; an ensemble's models encode their sources alike"
            )
        models.append(other)
        prefixes.append(other_prefix)
    return models, cfg, src_vocab, tgt_vocab, prefixes
