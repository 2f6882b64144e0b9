"""Training a Transformer into a model directory: `train(cfg, model_dir)`.

A fresh directory gets `config.yaml` (written atomically) and the vocabularies; a directory
with a `config.yaml` is resumed from its latest checkpoint at the exact step, with optimizer
state, learning rate and data order intact (the training batches already consumed are
skipped). A saved configuration that differs in a key that can change the weights is refused
unless `overwrite_config=True`; `RESUMABLE_KEYS` may change freely (e.g. raising
`train.steps` to train longer).

Training stops after `train.steps` updates, or early, one update after any of: a SIGINT or
SIGTERM, `train.max_minutes` passed, validation BLEU not improved for `train.early_stopping`
evaluations (all workers of a multi-worker run stop at the same step: `t2t_lite.training.stopping`);
in every case a checkpoint is saved and `train` returns normally (so the CLI exits with
status 0 and the same command resumes). A second SIGINT aborts at once (KeyboardInterrupt, no
save). A NaN or Inf loss raises `FloatingPointError` without saving, so the last good
checkpoint stays. If a fresh run fails before its first checkpoint, what it created in the
model directory is removed.

Multi-worker runs (`TF_CONFIG`, see `t2t_lite.training.workers`) need the model directory on a
filesystem all workers share: every worker reads the chief's vocabularies, tokenized data
and latest checkpoint from it; only the chief writes into it.

Example:
    >>> cfg = load_config("configs/tiny.yaml", ["data.train_src=train.en", ...])
    >>> result = train(cfg, "runs/tiny")
    >>> result.step, result.stop_reason
    (200, 'steps')
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time

import keras
import sacrebleu
import tensorflow as tf
from absl import logging

from t2t_lite.atomic import write_file_atomic
from t2t_lite.config import Config, ConfigError, TrainConfig, config_diff
from t2t_lite.constants import BOS_ID, CHECKPOINTS, CONFIG_FILE, DATA_CACHE, EOS_ID
from t2t_lite.data import (
    TokenPairs,
    cached_train_pairs,
    check_sources,
    eval_dataset,
    load_pairs,
    make_train_dataset,
)
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import checkpoint_step, read_config
from t2t_lite.training.checkpoints import (
    BestCheckpoint,
    average_checkpoints,
    resume_checkpoint,
    save_checkpoint,
)
from t2t_lite.training.lock import model_dir_lock
from t2t_lite.training.stopping import StopRequests, agreed_reason
from t2t_lite.training.summaries import Summaries, log_progress
from t2t_lite.training.train_state import TrainState
from t2t_lite.training.workers import check_agreement, is_chief, make_strategy, write_dir
from t2t_lite.training.write_errors import reporting_write_errors
from t2t_lite.vocab import Vocabulary, build_vocabularies, load_vocabularies

# Keys that cannot change the weights of the steps already taken: they may differ from the
# saved config on resume without --overwrite_config.
RESUMABLE_KEYS = frozenset(
    {
        "train.steps",
        "train.max_minutes",
        "train.log_every",
        "train.save_every",
        "train.keep_checkpoints",
        "train.eval_every",
        "train.eval_sentences",
        "train.early_stopping",
        "train.average_last",
    }
)
NUM_SAMPLES = 3


@dataclasses.dataclass
class TrainResult:
    """How a training run ended.

    Attributes:
        step: updates done in total (including earlier runs of the same directory).
        stop_reason: "steps", "max_minutes", "early_stopping", "SIGINT" or "SIGTERM".
        loss: training loss of the last update (NaN if no update was done).
        checkpoint: prefix of the last checkpoint saved (on a non-chief worker, in its
            temporary directory, removed when `train` returns; see `t2t_lite.training.workers`).
        best_bleu: best validation BLEU so far, or None without evaluation.
    """

    step: int
    stop_reason: str
    loss: float
    checkpoint: str | None
    best_bleu: float | None


def check_resume_config(saved: Config, cfg: Config, overwrite_config: bool) -> list[str]:
    """The differences between a saved and a new config; raises if they need the flag.

    Raises:
        ConfigError: listing the differing keys, when any is not in `RESUMABLE_KEYS` and
            `overwrite_config` is False.
    """
    changes = config_diff(saved, cfg)
    blocking = [c for c in changes if c.split(":", 1)[0] not in RESUMABLE_KEYS]
    if blocking and not overwrite_config:
        raise ConfigError(
            "the configuration differs from the one saved in the model directory:\n  "
            + "\n  ".join(blocking)
            + "\nuse a new --model_dir, or pass --overwrite_config to replace the saved "
            "configuration and resume from its checkpoint"
        )
    return changes


class _Validation:
    """Validation loss, greedy BLEU, samples and an attention heatmap for TensorBoard."""

    def __init__(
        self,
        cfg: Config,
        state: TrainState,
        src_vocab: Vocabulary,
        tgt_vocab: Vocabulary,
        sources: list[str],
        refs: list[str],
    ):
        self.cfg, self.state = cfg, state
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.sources, self.refs = sources, refs
        src_ids = [ids[: cfg.data.max_src_length - 1] for ids in src_vocab.encode(sources)]
        tgt_ids = [ids[: cfg.data.max_tgt_length - 1] for ids in tgt_vocab.encode(refs)]
        self.dataset = eval_dataset(src_ids, tgt_ids, cfg.train.batch_tokens, cfg.model.source_eos)
        self.first = (src_ids[0] + [EOS_ID] * cfg.model.source_eos, [BOS_ID] + tgt_ids[0])
        # One translator for the whole run: its search is traced once, not at every evaluation.
        self.translator = Translator(state.model, src_vocab, tgt_vocab, cfg.decode)

    def __call__(self, step: int, summaries: Summaries) -> tuple[float, float]:
        """Returns `(valid_loss, bleu)` and writes them with samples to TensorBoard."""
        loss = self.state.eval_loss(self.dataset)
        count = self.cfg.train.eval_sentences or len(self.sources)
        hyps = self.translator.translate(self.sources[:count], beam_size=1)
        bleu = sacrebleu.corpus_bleu(hyps, [self.refs[:count]]).score
        samples = list(zip(self.sources, self.refs, hyps, strict=False))[:NUM_SAMPLES]
        src, tgt_in = (tf.constant([ids], tf.int32) for ids in self.first)
        _, attention = self.state.model((src, tgt_in), return_attention=True)  # [1, H, T, S]
        summaries.valid(step, {"loss": loss, "bleu": bleu}, samples, attention)
        logging.info("step %d  valid loss %.4f  BLEU %.2f (%d sentences)", step, loss, bleu, count)
        return loss, bleu


class _Cleanup:
    """Removes what a fresh run created in the model directory if it fails early."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.existed = os.path.isdir(model_dir)
        self.before = set(os.listdir(model_dir)) if self.existed else set()
        self.fresh = not os.path.isfile(os.path.join(model_dir, CONFIG_FILE))

    def __call__(self) -> None:
        if not self.fresh or tf.train.latest_checkpoint(os.path.join(self.model_dir, CHECKPOINTS)):
            return
        if not self.existed:
            shutil.rmtree(self.model_dir, ignore_errors=True)
            return
        for name in set(os.listdir(self.model_dir)) - self.before:
            path = os.path.join(self.model_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        logging.info("Removed what this run created in %s", self.model_dir)


def _prepare_model_dir(
    cfg: Config,
    model_dir: str,
    overwrite_config: bool,
    strategy: tf.distribute.Strategy,
    chief: bool,
) -> tuple[Vocabulary, Vocabulary, TokenPairs, bool]:
    """The run's vocabularies and tokenized training pairs, and whether to write config.yaml.

    The chief builds the vocabularies of a fresh directory and tokenizes the training data
    (or reads it from `data_cache/`); the other workers wait for it, then read both from the
    model directory. config.yaml is written by the caller once the model and any checkpoint
    have been loaded, so a checkpoint that does not fit a changed config leaves the saved
    config as it was.
    """
    fresh = not os.path.isfile(os.path.join(model_dir, CONFIG_FILE))
    changes = [] if fresh else check_resume_config(read_config(model_dir), cfg, overwrite_config)
    if changes:
        logging.warning("Configuration changes on resume:\n  %s", "\n  ".join(changes))
    cache_dir = os.path.join(model_dir, DATA_CACHE)
    if chief:
        if fresh:
            vocabs = build_vocabularies(cfg, model_dir, *load_pairs(cfg.data, "train"))
        else:
            vocabs = load_vocabularies(model_dir)
        pairs = cached_train_pairs(cfg, *vocabs, cache_dir)
    # A barrier: the other workers read what the chief has just written.
    check_agreement(strategy, "whether the model directory is new", int(fresh))
    if not chief:
        vocabs = load_vocabularies(model_dir)
        pairs = cached_train_pairs(cfg, *vocabs, cache_dir)  # a cache hit
    return (*vocabs, pairs, fresh or bool(changes))


def _restore(state: TrainState, model_dir: str, chief: bool) -> str | None:
    """Restores the newest intact checkpoint of `model_dir` (on every worker); returns its
    prefix. The chief moves unreadable newer ones aside (`resume_checkpoint`)."""
    prefix = resume_checkpoint(model_dir, state.model, chief)
    if prefix:
        try:
            state.checkpoint.restore(prefix).assert_consumed()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise ConfigError(
                f"{prefix} does not fit the configuration ({e}); use a new --model_dir"
            ) from None
        logging.info("Resumed from %s at step %d", prefix, int(state.step.numpy()))
    return prefix


def train(
    cfg: Config,
    model_dir: str,
    overwrite_config: bool = False,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainResult:
    """Trains (or resumes training) a model in `model_dir`; see the module docstring.

    Args:
        cfg: the resolved configuration.
        model_dir: the model directory (created if missing).
        overwrite_config: replace a saved config that differs in weight-relevant keys.
        strategy: a `tf.distribute.Strategy`; default `make_strategy()`.

    Returns:
        A `TrainResult`.

    Raises:
        ConfigError: invalid configuration, or a saved config that differs.
        DataError: missing or malformed data (before any training work).
        FloatingPointError: the loss became NaN or Inf (naming the step).
    """
    cfg.validate()
    check_sources(cfg.data, ["train", "valid"] if cfg.train.eval_every else ["train"])
    strategy = strategy or make_strategy()
    chief = is_chief(strategy)
    cleanup = _Cleanup(model_dir)
    with model_dir_lock(model_dir, enabled=chief), reporting_write_errors(model_dir):
        try:
            prepared = _prepare_model_dir(cfg, model_dir, overwrite_config, strategy, chief)
            with write_dir(model_dir, chief) as out_dir:
                return _train(cfg, model_dir, out_dir, strategy, chief, *prepared)
        except BaseException:
            if chief:
                cleanup()
            raise


def _train(
    cfg: Config,
    model_dir: str,
    out_dir: str,
    strategy: tf.distribute.Strategy,
    chief: bool,
    src_vocab: Vocabulary,
    tgt_vocab: Vocabulary,
    pairs: TokenPairs,
    write_config: bool,
) -> TrainResult:
    t = cfg.train
    keras.utils.set_random_seed(t.seed)
    state = TrainState(cfg, src_vocab, tgt_vocab, strategy)
    last_saved = _restore(state, model_dir, chief)
    start_step = int(state.step.numpy())
    check_agreement(strategy, "the step to start from", start_step)
    if write_config and chief:
        write_file_atomic(os.path.join(model_dir, CONFIG_FILE), cfg.to_yaml())
    # Every worker saves (tf.distribute); a non-chief worker into its temporary `out_dir`.
    manager = tf.train.CheckpointManager(
        state.checkpoint, os.path.join(out_dir, CHECKPOINTS), max_to_keep=t.keep_checkpoints
    )

    validation = None
    if t.eval_every:
        sources, refs = load_pairs(cfg.data, "valid")
        validation = _Validation(cfg, state, src_vocab, tgt_vocab, sources, refs)
    best_checkpoint = tf.train.Checkpoint(model=state.model, step=state.step)
    best = BestCheckpoint(model_dir, best_checkpoint, scratch_dir=None if chief else out_dir)

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        per_pipeline = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        consumed = start_step * t.accumulate_steps * per_pipeline
        return make_train_dataset(
            pairs, t, input_context=ctx, skip=consumed, source_eos=cfg.model.source_eos
        )

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    state.fix_batch_spec(iterator.element_spec)
    summaries = Summaries(model_dir, enabled=chief)
    if start_step == 0:
        summaries.config(0, cfg.to_yaml())

    step, stop_reason, loss, stale = start_step, None, float("nan"), 0
    start = window_start = time.monotonic()
    window_tokens, window_steps = 0.0, 0
    with StopRequests() as requests, contextlib.closing(summaries):
        while step < t.steps and stop_reason is None:
            batches = [next(iterator) for _ in range(t.accumulate_steps)]
            stats = state.train_step(batches, requests.votes())
            step, loss = step + 1, stats.loss
            if not (_finite(stats.loss) and (_finite(stats.grad_norm) or _loss_scaled(t))):
                raise FloatingPointError(
                    f"step {step}: the loss is {stats.loss} and the gradient norm "
                    f"{stats.grad_norm}; training stopped without saving, the last checkpoint "
                    f"({last_saved or 'none'}) is intact. Lower train.learning_rate or set "
                    "train.clip_norm."
                )
            state.step.assign(step)
            window_tokens += stats.tokens
            window_steps += 1
            elapsed = time.monotonic() - start
            if step % t.log_every == 0 or step == t.steps:
                now = time.monotonic()
                tokens_per_sec = window_tokens / max(now - window_start, 1e-9)
                per_step = (now - window_start) / window_steps
                remaining = (t.steps - step) * per_step
                if t.max_minutes:
                    remaining = min(remaining, max(t.max_minutes * 60 - elapsed, 0.0))
                lr = state.learning_rate
                log_progress(step, t.steps, loss, lr, tokens_per_sec, elapsed, remaining)
                summaries.train(
                    step,
                    {
                        "loss": loss,
                        "learning_rate": lr,
                        "grad_norm": stats.grad_norm,
                        "tokens_per_sec": tokens_per_sec,
                    },
                )
                window_start, window_tokens, window_steps = now, 0.0, 0
            if validation and step % t.eval_every == 0:
                valid_loss, bleu = validation(step, summaries)
                stale = 0 if best.update(step, bleu, valid_loss) else stale + 1
                requests.early_stopping = bool(t.early_stopping) and stale >= t.early_stopping
            if step % t.save_every == 0:
                last_saved = save_checkpoint(manager, step)
            requests.time_up = bool(t.max_minutes) and elapsed >= t.max_minutes * 60
            # This step's votes were cast before it: every worker stops after the same step.
            stop_reason = agreed_reason(stats.stop_votes)
    stop_reason = stop_reason or "steps"
    if last_saved is None or checkpoint_step(last_saved) != step:
        last_saved = save_checkpoint(manager, step)
    logging.info("Training stopped at step %d (%s); checkpoint %s", step, stop_reason, last_saved)
    if stop_reason in ("SIGINT", "SIGTERM"):
        logging.info("Run the same command again to resume from step %d", step)
    if chief and t.average_last > 1 and stop_reason not in ("SIGINT", "SIGTERM"):
        average_checkpoints(model_dir, t.average_last)
    best_bleu = best.bleu if best.bleu != float("-inf") else None
    return TrainResult(step, stop_reason, loss, last_saved, best_bleu)


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def _loss_scaled(t: TrainConfig) -> bool:
    return t.mixed_precision == "float16"
