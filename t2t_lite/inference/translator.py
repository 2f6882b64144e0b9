"""Translating sentences with a trained model: batching, beam search, detokenization.

`Translator.translate_nbest` is the one path every tool uses (`t2t-translate`,
`t2t-evaluate`, validation BLEU during training): it sorts sentences by length, batches
them by a token budget, runs one `tf.function` beam search per batch, and returns results in
the original order, exactly one entry per input sentence. It decodes with one model or an
ensemble of several (`t2t_lite.inference.ensemble`), and can align each output's pieces to
the source's (`alignments=True`, `t2t_lite.inference.alignment`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from t2t_lite.config import DecodeConfig
from t2t_lite.constants import BOS_ID, EOS_ID, PAD_ID
from t2t_lite.data.batching import length_batches
from t2t_lite.data.text import normalize
from t2t_lite.hardware import decode_layout
from t2t_lite.inference.alignment import alignment_pairs
from t2t_lite.inference.beam_search import BeamSearchOutput, beam_search, gather_beams
from t2t_lite.inference.constraints import Constraints, TargetPrefix
from t2t_lite.inference.encoding import encode_lines
from t2t_lite.inference.ensemble import ensemble_step_fn, load_ensemble
from t2t_lite.inference.sampling import Sampling, row_keys
from t2t_lite.transformer import Transformer
from t2t_lite.vocab import Vocabulary


@dataclasses.dataclass
class Hypothesis:
    """One translation: detokenized text, score (log-prob / length penalty), piece count
    (EOS included), and, when asked for, its `(source piece, target piece)` alignment
    (`t2t_lite.inference.alignment`)."""

    text: str
    score: float
    length: int
    alignment: list[tuple[int, int]] | None = None


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
    model: Transformer | Sequence[Transformer],
    source_ids: tf.Tensor,
    decode: DecodeConfig,
    beam_size: int,
    alpha: float,
    n_best: int = 1,
    constraints: Constraints | None = None,
    sampling: Sampling | None = None,
    prefix: TargetPrefix | None = None,
    keys: tf.Tensor | None = None,
    alignments: bool = False,
) -> BeamSearchOutput | tuple[BeamSearchOutput, tf.Tensor]:
    """Beam search over one batch of sources `[B, S]` (pieces + EOS, 0 = padding; no EOS
    when `model.source_eos` is false) with a model, or an ensemble given as a list of
    models (`t2t_lite.inference.ensemble`).

    Each sentence may produce `ceil(max_length_a * source_length) + max_length_b` pieces (EOS
    included), at least one more than its target prefix, at most the model's `max_length`.
    Beam 1 is greedy search: the length penalty is then ignored, so the first hypothesis to
    end wins, as in a plain argmax loop. With `sampling` (beam 1), each sentence gets `n_best`
    independent samples, best first; `keys` [B] (default 0..B-1) name the sentences' random
    streams. `constraints` and `prefix` as in `beam_search`. With `alignments`, returns
    `(output, attention [B, N, L, S])`: the alignment attention of every token (see
    `beam_search`).
    """
    if sampling is not None and not sampling.enabled:
        sampling = None
    models = list(model) if isinstance(model, list | tuple) else [model]
    step, cache, memory = ensemble_step_fn(models, source_ids, attention=alignments)
    attention_size = tf.shape(source_ids)[1] if alignments else None
    source_lengths = tf.reduce_sum(tf.cast(source_ids != PAD_ID, tf.float32), 1)  # [B]
    max_lengths = tf.cast(
        tf.math.ceil(decode.max_length_a * source_lengths) + decode.max_length_b, tf.int32
    )
    if prefix is not None:
        max_lengths = tf.maximum(max_lengths, prefix.lengths + 1)
    max_lengths = tf.minimum(max_lengths, min(m.max_length for m in models))  # [B]
    batch_size = tf.shape(source_ids)[0]
    start_ids = tf.fill([batch_size], BOS_ID)
    alpha = 0.0 if beam_size == 1 else alpha
    if sampling is None:
        return beam_search(
            step, start_ids, cache, beam_size, EOS_ID, max_lengths, alpha, n_best,
            constraints=constraints, prefix=prefix, attention_size=attention_size,
            memory=memory,
        )  # fmt: skip

    # N independent samples: N searches of beam 1 per sentence (row b*N + n).
    def repeat(t):
        return tf.repeat(t, n_best, axis=0)  # [B, ...] -> [B*N, ...]

    keys = tf.range(batch_size) if keys is None else keys
    found = beam_search(
        step, repeat(start_ids), tf.nest.map_structure(repeat, cache), 1, EOS_ID,
        repeat(max_lengths), 0.0, 1,
        constraints=constraints,
        prefix=None if prefix is None else TargetPrefix(*map(repeat, prefix)),
        sampling=sampling,
        sample_keys=row_keys(keys, n_best),
        attention_size=attention_size,
        memory=tf.nest.map_structure(repeat, memory),
    )  # fmt: skip
    if not alignments:
        return _samples_best_first(found, n_best)
    out, attention = found
    return _samples_best_first(out, n_best, attention)


def _samples_best_first(
    out: BeamSearchOutput, samples: int, attention: tf.Tensor | None = None
) -> BeamSearchOutput | tuple[BeamSearchOutput, tf.Tensor]:
    """[B*N, 1, ...] single-hypothesis outputs -> [B, N, ...], sorted by score per sentence;
    with `attention` [B*N, 1, L, S], returns `(output, attention [B, N, L, S])` in that order.
    """
    scores = tf.reshape(out.scores, [-1, samples])  # [B*N, 1] -> [B, N]
    scores, order = tf.math.top_k(scores, k=samples)  # [B, N]
    ids = tf.reshape(out.ids, [-1, samples, tf.shape(out.ids)[2]])  # [B*N, 1, L] -> [B, N, L]
    lengths = tf.reshape(out.lengths, [-1, samples])  # [B*N, 1] -> [B, N]
    log_probs = tf.reshape(out.log_probs, [-1, samples])  # [B*N, 1] -> [B, N]
    ids, lengths, log_probs = gather_beams((ids, lengths, log_probs), order)
    out = BeamSearchOutput(ids=ids, scores=scores, lengths=lengths, log_probs=log_probs)
    if attention is None:
        return out
    shape = tf.shape(attention)  # [B*N, 1, L, S]
    attention = tf.reshape(attention, [-1, samples, shape[2], shape[3]])  # [B, N, L, S]
    return out, gather_beams(attention, order)


class Translator:
    """Translates lists of sentences with a `Transformer` (or an ensemble) and its vocabularies.

    Args:
        model: a built Transformer with weights.
        source_vocab: vocabulary of the source side.
        target_vocab: vocabulary of the target side.
        decode: decoding defaults (beam size, length penalty, length limit, batch tokens);
            the keyword arguments of `translate_nbest` override them per call.
        ensemble: more models decoding with `model` (same vocabularies; see
            `t2t_lite.inference.ensemble`, and `from_model_dir` to load and check them).
            Sources are cut to the shortest `max_length` of the models.

    Raises:
        ValueError: the models of the ensemble disagree on `source_eos`.

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
        ensemble: Sequence[Transformer] = (),
    ):
        if any(m.source_eos != model.source_eos for m in ensemble):
            raise ValueError("the models of an ensemble must agree on source_eos")
        self.model = model
        self.models = [model, *ensemble]
        self.max_length = min(m.max_length for m in self.models)
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.decode = decode or DecodeConfig()
        self.stats = TranslationStats()
        self._searches: dict[tuple, Callable] = {}

    @classmethod
    def from_model_dir(
        cls, model_dir: str, checkpoint: str = "", ensemble: Sequence[str] = ()
    ) -> Translator:
        """A Translator over `model_dir` (its `checkpoint`) and the models of the `ensemble`
        directories (their default checkpoints), with `model_dir`'s decoding defaults.

        Raises:
            ModelDirError: an ensemble model's vocabularies differ from `model_dir`'s (one
                line naming both directories); the errors of `load_model`.
        """
        models, cfg, src_vocab, tgt_vocab, _ = load_ensemble(model_dir, checkpoint, ensemble)
        return cls(models[0], src_vocab, tgt_vocab, cfg.decode, ensemble=models[1:])

    def reset_stats(self) -> None:
        self.stats = TranslationStats()

    def trim_searches(self, limit: int) -> None:
        """Forgets every compiled search once there are more than `limit` of them: a server
        that sees many settings (`search_fn` compiles one search per setting) keeps its memory
        bounded; the settings still in use are compiled again."""
        if len(self._searches) > limit:
            self._searches.clear()

    def search_fn(
        self,
        beam_size: int,
        alpha: float,
        n_best: int,
        constraints: Constraints | None = None,
        sampling: Sampling | None = None,
        with_prefix: bool = False,
        alignments: bool = False,
    ) -> Callable:
        """The compiled search for these settings: `source_ids [B, S] -> BeamSearchOutput`.

        With any option (`constraints` or `sampling` enabled, `with_prefix`), the function
        takes `(source_ids [B, S], prefix_ids [B, P], prefix_lengths [B], keys [B] int64)`:
        the target prefixes (ignored unless `with_prefix`) and the sentences' random-stream
        keys (ignored unless sampling). With `alignments`, the output also carries the
        alignment attention: `(output, attention [B, N, L, S])`.

        Traced once per setting, without AutoGraph (the search's loop is an explicit
        `tf.while_loop`; converting the model's source would cost seconds); the input signature
        keeps batch and length dynamic so differently shaped batches reuse the same graph.
        """
        constraints = constraints if constraints is not None and constraints.enabled else None
        sampling = sampling if sampling is not None and sampling.enabled else None
        key = (beam_size, alpha, n_best, constraints, sampling, with_prefix)
        key += ("alignments",) if alignments else ()
        if key not in self._searches:
            model = self.models if len(self.models) > 1 else self.model
            cfg = self.decode
            if constraints is None and sampling is None and not with_prefix:

                @tf.function(
                    input_signature=[tf.TensorSpec([None, None], tf.int32)], autograph=False
                )
                def search(source_ids):
                    return search_batch(
                        model, source_ids, cfg, beam_size, alpha, n_best, alignments=alignments
                    )

            else:

                @tf.function(
                    input_signature=[
                        tf.TensorSpec([None, None], tf.int32),
                        tf.TensorSpec([None, None], tf.int32),
                        tf.TensorSpec([None], tf.int32),
                        tf.TensorSpec([None], tf.int64),
                    ],
                    autograph=False,
                )
                def search(source_ids, prefix_ids, prefix_lengths, keys):
                    prefix = TargetPrefix(prefix_ids, prefix_lengths) if with_prefix else None
                    return search_batch(
                        model, source_ids, cfg, beam_size, alpha, n_best,
                        constraints=constraints, sampling=sampling, prefix=prefix, keys=keys,
                        alignments=alignments,
                    )  # fmt: skip

            self._searches[key] = search
        return self._searches[key]

    def encode_prefixes(self, prefixes: Sequence[str], line_numbers: Sequence[int]) -> list:
        """Target piece ids of each prefix (no EOS), cut so that one more piece fits in the
        model's maximum length, with a warning that names the line."""
        texts = [normalize(p) for p in prefixes]
        limit = self.max_length - 1
        return encode_lines(self.target_vocab, texts, line_numbers, limit, "target prefix")[0]

    def encode(self, lines: Sequence[str], line_numbers: Sequence[int]) -> list[list[int]]:
        """Piece ids (+ EOS if the model's sources end with it) per line, cut to the model's
        maximum length with a warning that names the line (`line_numbers[i]` is the input line
        number of `lines[i]`; `t2t_lite.inference.encoding.encode_lines`)."""
        eos = [EOS_ID] if self.model.source_eos else []
        limit = self.max_length - len(eos)  # pieces
        encoded, truncated = encode_lines(self.source_vocab, lines, line_numbers, limit)
        self.stats.truncated += truncated
        for ids in encoded:
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
        target_prefixes: Sequence[str] | None = None,
        sampling_topk: int | None = None,
        sampling_topp: float | None = None,
        sampling_temperature: float | None = None,
        seed: int | None = None,
        no_repeat_ngram_size: int | None = None,
        repetition_penalty: float | None = None,
        alignments: bool = False,
    ) -> list[list[Hypothesis]]:
        """Translates every line; returns `n_best` hypotheses per line, best first.

        Whitespace is normalized first; an empty (or whitespace-only) line yields `n_best`
        empty hypotheses with score 0 and is never sent to the model.

        Args:
            lines: source sentences, one per entry.
            beam_size, alpha, n_best, batch_tokens, parallel_batches: override the `decode`
                defaults; parallel_batches "auto": `t2t_lite.hardware.decode_layout`.
            first_line: line number of `lines[0]`, for warnings about long lines; with
                sampling, also the random-stream key of the first line, so a line's samples
                do not depend on how the input is batched or chunked.
            max_batch_size: at most this many sentences per batch (0 = no limit).
            target_prefixes: one target prefix per line ("" = none): each translation
                starts with its prefix, and the search continues from it.
            sampling_topk, sampling_topp, sampling_temperature, seed: random sampling
                (`t2t_lite.inference.sampling.Sampling`; topk 1 = greedy, needs beam 1);
                n_best is then the number of independent samples per line.
            no_repeat_ngram_size, repetition_penalty: repetition control
                (`t2t_lite.inference.constraints.Constraints`).
            alignments: give every hypothesis its source-target piece alignment
                (`Hypothesis.alignment`, from the model's alignment attention; an empty
                line's hypotheses get an empty one).
            Options left None take the `decode` defaults.

        Returns:
            One list of hypotheses per input line, in input order.

        Raises:
            ValueError: an option is out of range, or `target_prefixes` does not have one
                entry per line.
        """
        cfg = self.decode
        beam_size = beam_size or cfg.beam_size
        alpha = cfg.alpha if alpha is None else alpha
        n_best = n_best or cfg.n_best
        batch_tokens = batch_tokens or cfg.batch_tokens
        parallel_batches = parallel_batches or cfg.parallel_batches
        if parallel_batches == "auto":
            parallel_batches = decode_layout().parallel_batches

        def pick(value, default):
            return default if value is None else value

        sampling = Sampling(
            topk=pick(sampling_topk, cfg.sampling_topk),
            topp=pick(sampling_topp, cfg.sampling_topp),
            temperature=pick(sampling_temperature, cfg.sampling_temperature),
            seed=pick(seed, cfg.seed),
        )
        constraints = Constraints(
            no_repeat_ngram_size=pick(no_repeat_ngram_size, cfg.no_repeat_ngram_size),
            repetition_penalty=pick(repetition_penalty, cfg.repetition_penalty),
        )
        sampling.validate()
        constraints.validate()
        if sampling.enabled and beam_size != 1:
            raise ValueError(f"sampling (sampling_topk != 1) needs beam_size=1, got {beam_size}")
        if n_best > beam_size and not sampling.enabled:
            raise ValueError(f"n_best={n_best} cannot exceed beam_size={beam_size}")
        if target_prefixes is not None and len(target_prefixes) != len(lines):
            raise ValueError(
                f"{len(target_prefixes)} target prefixes for {len(lines)} lines: one per line"
            )
        start = time.perf_counter()
        texts = [normalize(line) for line in lines]
        empty = Hypothesis("", 0.0, 0, [] if alignments else None)
        results: list[list[Hypothesis]] = [[empty] * n_best if not t else [] for t in texts]
        todo = [i for i, t in enumerate(texts) if t]
        encoded = self.encode([texts[i] for i in todo], [first_line + i for i in todo])
        encoded_by_line = dict(zip(todo, encoded, strict=True))
        with_prefix = target_prefixes is not None
        if with_prefix:
            prefixes = self.encode_prefixes(
                [target_prefixes[i] for i in todo], [first_line + i for i in todo]
            )
            prefix_by_line = dict(zip(todo, prefixes, strict=True))
        search = self.search_fn(
            beam_size, alpha, n_best, constraints, sampling, with_prefix, alignments
        )
        source_pieces = {i: len(e) - int(self.model.source_eos) for i, e in encoded_by_line.items()}
        plain = search.input_signature is not None and len(search.input_signature) == 1

        def run(batch: list[int]) -> tuple[np.ndarray, ...]:
            width = max(len(encoded_by_line[i]) for i in batch)
            source = np.zeros([len(batch), width], np.int32)  # [B, S], 0 = padding
            for row, i in enumerate(batch):
                source[row, : len(encoded_by_line[i])] = encoded_by_line[i]
            if plain:
                out = search(tf.constant(source))
            else:
                found = [prefix_by_line[i] for i in batch] if with_prefix else [[]] * len(batch)
                prefix_ids = np.zeros([len(batch), max(1, *map(len, found))], np.int32)
                for row, ids in enumerate(found):
                    prefix_ids[row, : len(ids)] = ids  # [B, P], 0 after each prefix
                out = search(
                    tf.constant(source),
                    tf.constant(prefix_ids),
                    tf.constant([len(ids) for ids in found], tf.int32),
                    tf.constant([first_line + i for i in batch], tf.int64),
                )
            out, attention = (out[0], out[1].numpy()) if alignments else (out, None)
            return source, out.ids.numpy(), out.scores.numpy(), out.lengths.numpy(), attention

        batches = length_batches(
            todo, [len(e) for e in encoded], batch_tokens, max_batch_size, parallel_batches
        )
        with ThreadPoolExecutor(max(1, min(parallel_batches, len(batches)))) as pool:
            # map() yields in batch order; results are unpacked here, in this thread.
            for batch, (source, ids, scores, out_lengths, attention) in zip(
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
                    if alignments:
                        for n, hyp in enumerate(results[i]):
                            hyp.alignment = alignment_pairs(
                                attention[row, n], hyp.length, source_pieces[i]
                            )
                self.stats.source_tokens += int(np.sum(source != PAD_ID))
                self.stats.target_tokens += int(np.sum(out_lengths[:, 0]))
        self.stats.sentences += len(lines)
        self.stats.seconds += time.perf_counter() - start
        return results

    def translate(self, lines: Sequence[str], **kwargs) -> list[str]:
        """The best translation of every line (see `translate_nbest` for the arguments)."""
        kwargs["n_best"] = 1
        return [hyps[0].text for hyps in self.translate_nbest(lines, **kwargs)]
