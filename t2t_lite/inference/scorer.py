"""Scoring given translations: the log-probability of a target given its source.

The score of a pair is the summed log-probability of the target's pieces and EOS, teacher
forced (the decoder reads `[BOS] + target`), i.e. exactly the `log_probs` the beam search
reports for a hypothesis with those pieces (`BeamSearchOutput.log_probs`; with alpha = 0 or a
beam of 1 also its `scores`). A beam search score with a length penalty is this sum divided by
`length_penalty(pieces + 1, alpha)`.

Pairs are batched as translation is: sorted by length (the longer side), cut by a token
budget (`t2t_lite.data.batching.length_batches`), one `tf.function` forward pass per batch,
results returned in input order.

Both sides are normalized and tokenized as `Translator.encode` does, and cut to the model's
`max_length` (EOS included) with a warning naming the line. Every pair gets a score:

- an empty target is scored as EOS alone (the probability of translating to nothing);
- an empty source is scored with a source of EOS alone (what the model sees of an empty
  sentence when `model.source_eos` is true; also used when it is false);

each with a warning naming the line.

Example:
    >>> scorer = Scorer(model, src_vocab, tgt_vocab)
    >>> [s.log_prob for s in scorer.score(["A dog runs."], ["Ein Hund rennt."])]
    [-2.31...]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import sentencepiece as spm
import tensorflow as tf
from absl import logging

from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID
from t2t_lite.data.batching import length_batches
from t2t_lite.data.text import normalize
from t2t_lite.inference.encoding import encode_lines
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary


@dataclasses.dataclass
class PairScore:
    """The score of one (source, target) pair.

    Attributes:
        log_prob: summed log-probability of the target pieces and EOS.
        token_log_probs: the log-probability of each target piece, then of EOS.
        tokens: the target pieces, then the EOS piece (as `token_log_probs`).
    """

    log_prob: float
    token_log_probs: list[float]
    tokens: list[str]

    @property
    def mean(self) -> float:
        """`log_prob` per scored token (pieces + EOS)."""
        return self.log_prob / len(self.token_log_probs)


def target_log_probs(model: Transformer, source_ids: tf.Tensor, target_ids: tf.Tensor) -> tf.Tensor:
    """Teacher-forced log-probability of every target token, in one forward pass.

    Only the non-padding positions are projected to the vocabulary (`[N, V]` logits for the
    batch's N target tokens), as in training.

    Args:
        model: the Transformer.
        source_ids: int32 `[B, S]` sources as the translator feeds them, 0 = padding.
        target_ids: int32 `[B, T]` target pieces followed by EOS, 0 = padding.

    Returns:
        float32 `[B, T]`: `log p(target_ids[b, t] | source, target_ids[b, :t])`, 0 at padding.
    """
    batch = tf.shape(target_ids)[0]
    decoder_input = tf.concat(
        [tf.fill([batch, 1], BOS_ID), target_ids[:, :-1]], axis=1
    )  # [B, T]: BOS + target, shifted right (padding stays padding)
    decoder_input = tf.where(target_ids != PAD_ID, decoder_input, PAD_ID)
    outputs = model.decode_outputs((source_ids, decoder_input)).outputs  # [B, T, D]
    mask = target_ids != PAD_ID  # [B, T]
    positions = tf.where(mask)  # [N, 2]
    logits = model.project(tf.gather_nd(outputs, positions))  # [N, D] -> [N, V] float32
    labels = tf.gather_nd(target_ids, positions)  # [N]
    label_logits = tf.gather(logits, labels, batch_dims=1)  # [N]
    log_probs = label_logits - tf.reduce_logsumexp(logits, axis=-1)  # [N]
    return tf.scatter_nd(positions, log_probs, tf.shape(target_ids, out_type=tf.int64))


class Scorer:
    """Scores (source, target) pairs with a `Transformer` and its vocabularies.

    Args:
        model: a built Transformer with weights.
        source_vocab: vocabulary of the source side.
        target_vocab: vocabulary of the target side.
        batch_tokens: default token budget of a batch: `pairs * longest side <= batch_tokens`
            (a batch's `[N, V]` logits hold at most this many rows).
    """

    def __init__(
        self,
        model: Transformer,
        source_vocab: Vocabulary,
        target_vocab: Vocabulary,
        batch_tokens: int = 4096,
    ):
        self.model = model
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.batch_tokens = batch_tokens
        self._target_sp = spm.SentencePieceProcessor(model_file=target_vocab.path)
        self._forward: Callable | None = None

    def forward_fn(self) -> Callable:
        """The compiled `target_log_probs` of this model: `(source [B, S], target [B, T]) ->
        [B, T]`, traced once (batch and lengths are dynamic)."""
        if self._forward is None:
            model = self.model
            spec = tf.TensorSpec([None, None], tf.int32)

            @tf.function(input_signature=[spec, spec], reduce_retracing=True, autograph=False)
            def forward(source_ids, target_ids):
                return target_log_probs(model, source_ids, target_ids)

            self._forward = forward
        return self._forward

    def score_ids(
        self,
        source_ids: Sequence[Sequence[int]],
        target_ids: Sequence[Sequence[int]],
        batch_tokens: int | None = None,
    ) -> list[np.ndarray]:
        """Per-token log-probabilities of tokenized pairs, in input order.

        Args:
            source_ids: each source as the model reads it (pieces + EOS when the model's
                sources end with it), not empty.
            target_ids: each target's pieces followed by EOS.
            batch_tokens: token budget per batch; default: the scorer's.

        Returns:
            One float32 array per pair, `len(target_ids[i])` long.
        """
        if len(source_ids) != len(target_ids):
            raise ValueError(f"{len(source_ids)} sources for {len(target_ids)} targets")
        forward = self.forward_fn()
        lengths = [max(len(s), len(t)) for s, t in zip(source_ids, target_ids, strict=True)]
        results: list[np.ndarray] = [np.zeros([0], np.float32)] * len(source_ids)
        batches = length_batches(
            list(range(len(source_ids))), lengths, batch_tokens or self.batch_tokens
        )
        for batch in batches:
            source = _pad([source_ids[i] for i in batch])  # [B, S]
            target = _pad([target_ids[i] for i in batch])  # [B, T]
            log_probs = forward(tf.constant(source), tf.constant(target)).numpy()  # [B, T]
            for row, i in enumerate(batch):
                results[i] = log_probs[row, : len(target_ids[i])]
        return results

    def score(
        self,
        sources: Sequence[str],
        targets: Sequence[str],
        first_line: int = 1,
        batch_tokens: int | None = None,
    ) -> list[PairScore]:
        """Scores every (source, target) pair of text lines; one `PairScore` per pair.

        Args:
            sources: source sentences.
            targets: their translations, line-aligned with `sources`.
            first_line: line number of the first pair, for warnings.
            batch_tokens: token budget per batch; default: the scorer's.

        Raises:
            ValueError: `sources` and `targets` differ in length.
        """
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources for {len(targets)} targets")
        model = self.model
        numbers = list(range(first_line, first_line + len(sources)))
        source_texts = [normalize(line) for line in sources]
        target_texts = [normalize(line) for line in targets]
        source_eos = [EOS_ID] if model.source_eos else []
        source_ids, _ = encode_lines(
            self.source_vocab, source_texts, numbers, model.max_length - len(source_eos), "source"
        )
        target_ids, _ = encode_lines(
            self.target_vocab, target_texts, numbers, model.max_length - 1, "target"
        )
        for number, source, target, ids in zip(
            numbers, source_texts, target_texts, source_ids, strict=True
        ):
            if not target:
                logging.warning("line %d: empty target: scored as EOS alone", number)
            if not source:
                logging.warning("line %d: empty source: scored with a source of EOS alone", number)
            ids.extend(source_eos if ids else [EOS_ID])
        for ids in target_ids:
            ids.append(EOS_ID)
        log_probs = self.score_ids(source_ids, target_ids, batch_tokens)
        return [
            PairScore(
                log_prob=float(np.sum(lp, dtype=np.float64)),
                token_log_probs=lp.tolist(),
                tokens=self._target_sp.id_to_piece(ids),
            )
            for ids, lp in zip(target_ids, log_probs, strict=True)
        ]


def _pad(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """`[B, L]` int32, 0-padded, L the longest row."""
    out = np.zeros([len(rows), max(map(len, rows))], np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out
