"""Translating sentences with a trained model: batching, beam search, detokenization.

`Translator.translate_nbest` is the one path every tool uses (`t2t-translate`,
`t2t-evaluate`, validation BLEU during training): it sorts sentences by length, batches
them by a token budget, runs one `tf.function` beam search per batch, and returns results in
the original order, exactly one entry per input sentence.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
from absl import logging

from t2t_lite.config import DecodeConfig
from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID
from t2t_lite.data.batching import length_batches
from t2t_lite.data.text import normalize
from t2t_lite.hardware import decode_layout
from t2t_lite.inference.beam_search import BeamSearchOutput, beam_search
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary


@dataclasses.dataclass
class Hypothesis:
    """One translation: detokenized text, score (log-prob / length penalty), piece count."""

    text: str
    score: float
    length: int


@dataclasses.dataclass
class TranslationStats:
    """Counters of a Translator since its creation (or the last `reset_stats`)."""

    sentences: int = 0
    source_tokens: int = 0
    target_tokens: int = 0
    seconds: float = 0.0
    truncated: int = 0

    def summary(self) -> str:
        rate = self.seconds or float("nan")
        return (
            f"{self.sentences} sentences in {self.seconds:.1f}s: "
            f"{self.sentences / rate:.1f} sentences/s, {self.target_tokens / rate:.0f} target "
            f"tokens/s ({self.truncated} truncated)"
        )


def search_batch(
    model: Transformer,
    source_ids: tf.Tensor,
    decode: DecodeConfig,
    beam_size: int,
    alpha: float,
    n_best: int = 1,
) -> BeamSearchOutput:
    """Beam search over one batch of sources `[B, S]` (pieces + EOS, 0 = padding; no EOS
    when `model.source_eos` is false).

    Each sentence may produce `ceil(max_length_a * source_length) + max_length_b` pieces (EOS
    included), at most the model's `max_length`. Beam 1 is greedy search: the length penalty
    is then ignored, so the first hypothesis to end wins, as in a plain argmax loop.
    """
    step, cache = model.step_fn(source_ids, beam_size)
    source_lengths = tf.reduce_sum(tf.cast(source_ids != PAD_ID, tf.float32), 1)  # [B]
    max_lengths = tf.cast(
        tf.math.ceil(decode.max_length_a * source_lengths) + decode.max_length_b, tf.int32
    )
    max_lengths = tf.minimum(max_lengths, model.max_length)  # [B]
    start_ids = tf.fill([tf.shape(source_ids)[0]], BOS_ID)
    alpha = 0.0 if beam_size == 1 else alpha
    return beam_search(step, start_ids, cache, beam_size, EOS_ID, max_lengths, alpha, n_best)


class Translator:
    """Translates lists of sentences with a `Transformer` and its vocabularies.

    Args:
        model: a built Transformer with weights.
        source_vocab: vocabulary of the source side.
        target_vocab: vocabulary of the target side.
        decode: decoding defaults (beam size, length penalty, length limit, batch tokens);
            the keyword arguments of `translate_nbest` override them per call.

    Example:
        >>> translator = Translator(model, src_vocab, tgt_vocab, cfg.decode)
        >>> translator.translate(["A dog runs.", ""], beam_size=4)
        ['Ein Hund rennt.', '']
    """

    def __init__(
        self,
        model: Transformer,
        source_vocab: Vocabulary,
        target_vocab: Vocabulary,
        decode: DecodeConfig | None = None,
    ):
        self.model = model
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.decode = decode or DecodeConfig()
        self.stats = TranslationStats()
        self._searches: dict[tuple, Callable] = {}

    def reset_stats(self) -> None:
        self.stats = TranslationStats()

    def search_fn(self, beam_size: int, alpha: float, n_best: int) -> Callable:
        """The compiled search for these settings: `source_ids [B, S] -> BeamSearchOutput`.

        Traced once per setting; the input signature keeps batch and length dynamic so
        differently shaped batches reuse the same graph.
        """
        key = (beam_size, alpha, n_best)
        if key not in self._searches:
            model, cfg = self.model, self.decode

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
            def search(source_ids):
                return search_batch(model, source_ids, cfg, beam_size, alpha, n_best)

            self._searches[key] = search
        return self._searches[key]

    def encode(self, lines: Sequence[str], line_numbers: Sequence[int]) -> list[list[int]]:
        """Piece ids (+ EOS if the model's sources end with it) per line, cut to the model's
        maximum length with a warning that names the line (`line_numbers[i]` is the input line
        number of `lines[i]`)."""
        eos = [EOS_ID] if self.model.source_eos else []
        limit = self.model.max_length - len(eos)  # pieces
        encoded = self.source_vocab.encode(lines)
        for number, ids in zip(line_numbers, encoded, strict=True):
            if len(ids) > limit:
                logging.warning(
                    "input line %d has %d pieces; the model takes at most %d: truncated",
                    number,
                    len(ids),
                    limit,
                )
                self.stats.truncated += 1
                del ids[limit:]
            ids.extend(eos)
        return encoded

    def translate_nbest(
        self,
        lines: Sequence[str],
        beam_size: int | None = None,
        alpha: float | None = None,
        n_best: int | None = None,
        batch_tokens: int | None = None,
        first_line: int = 1,
        max_batch_size: int = 0,
        parallel_batches: int | str | None = None,
    ) -> list[list[Hypothesis]]:
        """Translates every line; returns `n_best` hypotheses per line, best first.

        Whitespace is normalized first; an empty (or whitespace-only) line yields `n_best`
        empty hypotheses with score 0 and is never sent to the model.

        Args:
            lines: source sentences, one per entry.
            beam_size, alpha, n_best, batch_tokens, parallel_batches: override the `decode`
                defaults; parallel_batches "auto": `t2t_lite.hardware.decode_layout`.
            first_line: line number of `lines[0]`, for warnings about long lines.
            max_batch_size: at most this many sentences per batch (0 = no limit).

        Returns:
            One list of hypotheses per input line, in input order.
        """
        cfg = self.decode
        beam_size = beam_size or cfg.beam_size
        alpha = cfg.alpha if alpha is None else alpha
        n_best = n_best or cfg.n_best
        batch_tokens = batch_tokens or cfg.batch_tokens
        parallel_batches = parallel_batches or cfg.parallel_batches
        if parallel_batches == "auto":
            parallel_batches = decode_layout().parallel_batches
        if n_best > beam_size:
            raise ValueError(f"n_best={n_best} cannot exceed beam_size={beam_size}")
        start = time.perf_counter()
        texts = [normalize(line) for line in lines]
        results: list[list[Hypothesis]] = [
            [Hypothesis("", 0.0, 0)] * n_best if not t else [] for t in texts
        ]
        todo = [i for i, t in enumerate(texts) if t]
        encoded = self.encode([texts[i] for i in todo], [first_line + i for i in todo])
        encoded_by_line = dict(zip(todo, encoded, strict=True))
        search = self.search_fn(beam_size, alpha, n_best)

        def run(batch: list[int]) -> tuple[np.ndarray, ...]:
            width = max(len(encoded_by_line[i]) for i in batch)
            source = np.zeros([len(batch), width], np.int32)  # [B, S], 0 = padding
            for row, i in enumerate(batch):
                source[row, : len(encoded_by_line[i])] = encoded_by_line[i]
            out = search(tf.constant(source))
            return source, out.ids.numpy(), out.scores.numpy(), out.lengths.numpy()

        batches = length_batches(todo, [len(e) for e in encoded], batch_tokens, max_batch_size)
        with ThreadPoolExecutor(max(1, min(parallel_batches, len(batches)))) as pool:
            # map() yields in batch order; results are unpacked here, in this thread.
            for batch, (source, ids, scores, out_lengths) in zip(
                batches, pool.map(run, batches), strict=True
            ):
                for row, i in enumerate(batch):
                    hyps = self.target_vocab.decode_batch(ids[row])
                    results[i] = [
                        Hypothesis(text, float(score), int(length))
                        for text, score, length in zip(
                            hyps, scores[row], out_lengths[row], strict=True
                        )
                    ]
                self.stats.source_tokens += int(np.sum(source != PAD_ID))
                self.stats.target_tokens += int(np.sum(out_lengths[:, 0]))
        self.stats.sentences += len(lines)
        self.stats.seconds += time.perf_counter() - start
        return results

    def translate(self, lines: Sequence[str], **kwargs) -> list[str]:
        """The best translation of every line (see `translate_nbest` for the arguments)."""
        kwargs["n_best"] = 1
        return [hyps[0].text for hyps in self.translate_nbest(lines, **kwargs)]
