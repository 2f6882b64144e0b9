"""Translating with CTranslate2: the engine behind `t2t-translate --engine=ctranslate2`.

`CTranslate2Translator` has the interface of `Translator` (`translate`, `translate_nbest`,
`decode`, `stats`), so `t2t_lite.inference.streaming` drives either. Input is handled as
`Translator` handles it: whitespace normalized, an empty line gives empty hypotheses without
reaching the model, a long line is cut to the model's `max_length` with a warning naming it
(`t2t_lite.inference.encoding`); sources are passed to CTranslate2 as our SentencePiece
pieces, which adds EOS as our sources have it.

The model is the checkpoint's CTranslate2 export, made on first use and cached in the model
directory (`t2t_lite.export.ctranslate2_cache`). Options map as follows:

- `beam_size`, `n_best`: CTranslate2's `beam_size` and `num_hypotheses`.
- `alpha`: CTranslate2's `length_penalty`. The two normalizations differ: CTranslate2 ranks
  finished hypotheses by `log_prob / pieces ** alpha` (EOS not counted), `Translator` by
  `log_prob / ((5 + pieces + 1) / 6) ** alpha` (GNMT). With `alpha = 0` both rank by the
  log-probability and search alike; with `alpha > 0` CTranslate2 favours long hypotheses a
  little more (for a given alpha its penalty grows like `pieces`, ours like `pieces + 6`).
  A beam of 1 is greedy search without a penalty in both. Reported scores are CTranslate2's.
- The length limit: `ceil(max_length_a * S) + max_length_b` tokens including EOS, at most the
  model's `max_length`, as in `Translator` (S counts the source's EOS); CTranslate2 takes one
  `max_decoding_length` per call, so sentences are sent in one call per limit.
- `batch_tokens`: CTranslate2's `max_batch_size` with `batch_type="tokens"`.
- The compute type (`int8`, ...) and threads are chosen when the model is loaded.

Example:
    >>> translator, prefix = CTranslate2Translator.from_model_dir("runs/m", compute_type="int8")
    >>> translator.translate(["A dog runs.", ""], beam_size=4)
    ['Ein Hund rennt.', '']
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sentencepiece as spm

from t2t_lite.config import DecodeConfig
from t2t_lite.data.text import normalize
from t2t_lite.export.ctranslate2 import export_ctranslate2, load_ctranslate2_translator
from t2t_lite.export.ctranslate2_cache import cached_export
from t2t_lite.inference.beam_search import NEG_INF
from t2t_lite.inference.encoding import encode_lines
from t2t_lite.inference.translator import Hypothesis, TranslationStats
from t2t_lite.vocab import Vocabulary

# CTranslate2's compute types (`ctranslate2.get_supported_compute_types` says which this
# machine runs); "default" keeps the type the weights were exported in (float32).
COMPUTE_TYPES = (
    "default",
    "auto",
    "float32",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
)


class CTranslate2Translator:
    """Translates lists of sentences with a CTranslate2 model; the interface of `Translator`.

    Args:
        translator: a `ctranslate2.Translator` of an `export_ctranslate2` directory.
        source_vocab: vocabulary of the source side.
        target_vocab: vocabulary of the target side.
        decode: decoding defaults; `translate_nbest`'s keyword arguments override them.
        max_length: the model's `max_length` (sources are cut to it, translations end by it).
        source_eos: whether the model's sources end with EOS (CTranslate2 adds it).
    """

    def __init__(
        self,
        translator: Any,
        source_vocab: Vocabulary,
        target_vocab: Vocabulary,
        decode: DecodeConfig | None = None,
        max_length: int = 256,
        source_eos: bool = True,
    ):
        self.translator = translator
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.decode = decode or DecodeConfig()
        self.max_length = max_length
        self.source_eos = source_eos
        self.stats = TranslationStats()
        self._source_sp = spm.SentencePieceProcessor(model_file=source_vocab.path)
        self._target_sp = spm.SentencePieceProcessor(model_file=target_vocab.path)

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str,
        checkpoint: str = "",
        compute_type: str = "default",
        parallel_batches: int = 1,
        intra_threads: int = 0,
    ) -> tuple[CTranslate2Translator, str]:
        """Loads the CTranslate2 export of a model directory's checkpoint (made if needed).

        Args:
            model_dir: the model directory.
            checkpoint: which checkpoint (see `t2t_lite.model_dir.find_checkpoint`).
            compute_type: one of `COMPUTE_TYPES`.
            parallel_batches: batches translated at the same time (`inter_threads`).
            intra_threads: threads per batch (0: CTranslate2 picks).

        Returns:
            `(translator, checkpoint_prefix)`.

        Raises:
            ImportError: ctranslate2 is not installed.
            ValueError: this machine does not run `compute_type` (the message lists the
                ones it does).
        """
        from t2t_lite.model_dir import build_model, find_checkpoint, read_config, read_weights
        from t2t_lite.vocab import load_vocabularies

        cfg = read_config(model_dir)
        src_vocab, tgt_vocab = load_vocabularies(model_dir)
        prefix = find_checkpoint(model_dir, checkpoint)

        def export(directory: str) -> None:
            model = build_model(cfg, src_vocab, tgt_vocab)
            read_weights(model, prefix)
            export_ctranslate2(model, src_vocab, tgt_vocab, directory)

        with cached_export(model_dir, prefix, export) as export_dir:
            try:
                translator = load_ctranslate2_translator(
                    export_dir, compute_type, intra_threads, inter_threads=parallel_batches
                )
            except ValueError as e:
                import ctranslate2 as ct2

                supported = ", ".join(sorted(ct2.get_supported_compute_types("cpu")))
                raise ValueError(
                    f"compute type {compute_type}: {e} (this machine runs: {supported})"
                ) from None
        engine = cls(
            translator,
            src_vocab,
            tgt_vocab,
            cfg.decode,
            max_length=cfg.model.max_length,
            source_eos=cfg.model.source_eos,
        )
        return engine, prefix

    def reset_stats(self) -> None:
        self.stats = TranslationStats()

    def max_decoding_length(self, source_length: int) -> int:
        """The most tokens a translation may have, EOS included, for a source of
        `source_length` tokens (EOS included): the rule of `translator.search_batch`."""
        cfg = self.decode
        limit = math.ceil(cfg.max_length_a * source_length) + cfg.max_length_b
        return max(1, min(limit, self.max_length))

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
        **options: Any,
    ) -> list[list[Hypothesis]]:
        """Translates every line; returns `n_best` hypotheses per line, best first.

        Arguments as in `Translator.translate_nbest`; `parallel_batches` is fixed when the
        model is loaded (`from_model_dir`) and ignored here. `options` with a value other
        than None go to `ctranslate2.Translator.translate_batch` (e.g. `sampling_topk`,
        `repetition_penalty`, `no_repeat_ngram_size`).

        Returns:
            One list of hypotheses per input line, in input order; `Hypothesis.length`
            counts the pieces and EOS, `Hypothesis.score` is CTranslate2's score.
        """
        del parallel_batches
        cfg = self.decode
        beam_size = beam_size or cfg.beam_size
        alpha = cfg.alpha if alpha is None else alpha
        n_best = n_best or cfg.n_best
        batch_tokens = batch_tokens or cfg.batch_tokens
        if n_best > beam_size:
            raise ValueError(f"n_best={n_best} cannot exceed beam_size={beam_size}")
        start = time.perf_counter()
        texts = [normalize(line) for line in lines]
        results: list[list[Hypothesis]] = [[Hypothesis("", 0.0, 0)] * n_best for _ in texts]
        todo = [i for i, text in enumerate(texts) if text]
        eos = int(self.source_eos)
        encoded, truncated = encode_lines(
            self.source_vocab,
            [texts[i] for i in todo],
            [first_line + i for i in todo],
            self.max_length - eos,
        )
        self.stats.truncated += truncated
        by_limit: dict[int, list[int]] = defaultdict(list)  # limit -> positions in `todo`
        for j, ids in enumerate(encoded):
            by_limit[self.max_decoding_length(len(ids) + eos)].append(j)
        options = {name: value for name, value in options.items() if value is not None}
        batching = (
            dict(max_batch_size=max_batch_size, batch_type="examples")
            if max_batch_size
            else dict(max_batch_size=batch_tokens, batch_type="tokens")
        )
        pending = []  # (positions, async results): every call runs before any is awaited
        for limit, positions in sorted(by_limit.items()):
            if limit <= 1:  # only EOS fits: an empty translation, as the search gives
                continue
            pending.append(
                (
                    positions,
                    self.translator.translate_batch(
                        [self._source_sp.id_to_piece(encoded[j]) for j in positions],
                        asynchronous=True,
                        beam_size=beam_size,
                        num_hypotheses=n_best,
                        length_penalty=alpha if beam_size > 1 else 0.0,
                        max_input_length=0,  # already cut to the model's max_length
                        max_decoding_length=limit - 1,  # EOS not counted
                        min_decoding_length=0,  # a translation may be empty, as ours
                        return_scores=True,
                        **batching,
                        **options,
                    ),
                )
            )
        for positions, calls in pending:
            for j, call in zip(positions, calls, strict=True):
                results[todo[j]] = self._hypotheses(call.result(), n_best)
        self.stats.sentences += len(lines)
        self.stats.source_tokens += sum(len(ids) + eos for ids in encoded)
        self.stats.target_tokens += sum(results[i][0].length for i in todo)
        self.stats.seconds += time.perf_counter() - start
        return results

    def _hypotheses(self, result: Any, n_best: int) -> list[Hypothesis]:
        """A CTranslate2 `TranslationResult` as `n_best` hypotheses (empty slots padded with
        score `NEG_INF` and length 0, as the beam search pads them)."""
        ids = [self._target_sp.piece_to_id(tokens) for tokens in result.hypotheses]
        texts = self.target_vocab.decode_batch(ids)
        hyps = [
            Hypothesis(text, float(score), len(pieces) + 1)
            for text, score, pieces in zip(texts, result.scores, ids, strict=True)
        ]
        return hyps + [Hypothesis("", NEG_INF, 0)] * (n_best - len(hyps))

    def translate(self, lines: Sequence[str], **kwargs) -> list[str]:
        """The best translation of every line (see `translate_nbest` for the arguments)."""
        kwargs["n_best"] = 1
        return [hyps[0].text for hyps in self.translate_nbest(lines, **kwargs)]
