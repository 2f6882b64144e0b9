"""Training a Transformer into a model directory: `train(cfg, model_dir)`.

A fresh directory gets `config.yaml` (written atomically) and the vocabularies; a directory
with a `config.yaml` is resumed from its latest checkpoint at the exact step, with optimizer
state, learning rate and data order intact (the training batches already consumed are
skipped). A saved configuration that differs in a key that can change the weights is refused
unless `overwrite_config=True`; `t2t_lite.config.RESUMABLE_KEYS` may change freely (e.g.
raising `train.steps` to train longer).

Each update of the loop goes: the train step (`TrainState.train_step`), the check for a NaN
or Inf loss, every `train.log_every` updates the progress line and training scalars
(`t2t_lite.training.progress`), every `train.eval_every` validation, every
`train.save_every` a checkpoint, then the stop votes.

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
import math
import os
import shutil
from collections.abc import Iterator

import keras
import sacrebleu
import tensorflow as tf
from absl import logging

from t2t_lite.atomic import write_file_atomic
from t2t_lite.config import RESUMABLE_KEYS, Config, ConfigError, config_diff
from t2t_lite.constants import BOS_ID, CHECKPOINTS, CONFIG_FILE, EOS_ID
from t2t_lite.data import (
    ShardedCorpus,
    TokenPairs,
    check_sources,
    load_pairs,
    make_eval_dataset,
    make_train_dataset,
    prepare_training_data,
)
from t2t_lite.hardware import resolve_auto
from t2t_lite.inference.translator import Translator
from t2t_lite.model_dir import checkpoint_step, read_config
from t2t_lite.training.checkpoints import (
    BestCheckpoint,
    average_checkpoints,
    resume_checkpoint,
    save_checkpoint,
)
from t2t_lite.training.lock import model_dir_lock
from t2t_lite.training.progress import Progress
from t2t_lite.training.stopping import StopRequests, agreed_reason
from t2t_lite.training.summaries import Summaries
from t2t_lite.training.train_state import StepStats, TrainState
from t2t_lite.training.workers import check_agreement, is_chief, make_strategy, write_dir
from t2t_lite.training.write_errors import reporting_write_errors
from t2t_lite.vocab import Vocabulary

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


@dataclasses.dataclass(frozen=True)
class _Run:
    """What `train` prepares in the model directory before training starts.

    Attributes:
        cfg: the resolved configuration.
        model_dir: the model directory.
        strategy: the `tf.distribute.Strategy` training runs under.
        chief: whether this worker writes into `model_dir` (see `t2t_lite.training.workers`).
        src_vocab: source vocabulary.
        tgt_vocab: target vocabulary.
        corpora: the tokenized training corpora (memory-mapped shards).
        write_config: whether `config.yaml` is new or changed (written once the latest
            checkpoint is known to fit the configuration).
    """

    cfg: Config
    model_dir: str
    strategy: tf.distribute.Strategy
    chief: bool
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    corpora: list[ShardedCorpus]
    write_config: bool


class _Validation:
    """Validation loss and greedy BLEU, the best model, and whether BLEU stopped improving.

    Each evaluation writes the scores, sample translations and an attention heatmap to
    TensorBoard and keeps the model with the best BLEU (`BestCheckpoint`).
    """

    def __init__(
        self,
        cfg: Config,
        state: TrainState,
        src_vocab: Vocabulary,
        tgt_vocab: Vocabulary,
        best: BestCheckpoint,
    ):
        self.cfg, self.state, self.best = cfg, state, best
        self.sources, self.refs = load_pairs(cfg.data, "valid")
        src_ids = [ids[: cfg.data.max_src_length - 1] for ids in src_vocab.encode(self.sources)]
        tgt_ids = [ids[: cfg.data.max_tgt_length - 1] for ids in tgt_vocab.encode(self.refs)]
        pairs = TokenPairs.from_lists(src_ids, tgt_ids)
        self.dataset = make_eval_dataset(pairs, cfg.train.batch_tokens, cfg.model.source_eos)
        self.first = (src_ids[0] + [EOS_ID] * cfg.model.source_eos, [BOS_ID] + tgt_ids[0])
        # One translator for the whole run: its search is traced once, not at every evaluation.
        self.translator = Translator(state.model, src_vocab, tgt_vocab, cfg.decode)
        self.stale = 0  # evaluations since BLEU last improved

    def __call__(self, step: int, summaries: Summaries) -> None:
        """Evaluates the model after update `step`; writes the results to `summaries`."""
        loss = self.state.eval_loss(self.dataset)
        count = self.cfg.train.eval_sentences or len(self.sources)
        hyps = self.translator.translate(self.sources[:count], beam_size=1)
        bleu = sacrebleu.corpus_bleu(hyps, [self.refs[:count]]).score
        samples = list(zip(self.sources, self.refs, hyps, strict=False))[:NUM_SAMPLES]
        src, tgt_in = (tf.constant([ids], tf.int32) for ids in self.first)
        _, attention = self.state.model((src, tgt_in), return_attention=True)  # [1, H, T, S]
        summaries.valid(step, {"loss": loss, "bleu": bleu}, samples, attention)
        logging.info("step %d  valid loss %.4f  BLEU %.2f (%d sentences)", step, loss, bleu, count)
        self.stale = 0 if self.best.update(step, bleu, loss) else self.stale + 1

    @property
    def stalled(self) -> bool:
        """BLEU has not improved for `train.early_stopping` evaluations (never if that is 0)."""
        patience = self.cfg.train.early_stopping
        return bool(patience) and self.stale >= patience


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
) -> _Run:
    """The run's vocabularies and tokenized training pairs, and whether to write config.yaml.

    The chief builds the vocabularies of a fresh directory and tokenizes the training data
    (or reads it from `data_cache/`) in one streaming pass (`prepare_training_data`); the
    other workers wait for it, then read both from the model directory. A resumed run keeps
    the saved `vocab.byte_fallback`: the key only shapes a vocabulary being trained.
    config.yaml is written by the trainer once the model and any checkpoint have been
    loaded, so a checkpoint that does not fit a changed config leaves the saved config as it
    was.
    """
    fresh = not os.path.isfile(os.path.join(model_dir, CONFIG_FILE))
    changes = []
    if not fresh:
        saved = read_config(model_dir)
        vocab = dataclasses.replace(cfg.vocab, byte_fallback=saved.vocab.byte_fallback)
        cfg = dataclasses.replace(cfg, vocab=vocab)
        changes = check_resume_config(saved, cfg, overwrite_config)
    if changes:
        logging.warning("Configuration changes on resume:\n  %s", "\n  ".join(changes))
    if chief:
        src_vocab, tgt_vocab, corpora = prepare_training_data(cfg, model_dir, train_vocab=fresh)
    # A barrier: the other workers read what the chief has just written.
    check_agreement(strategy, "whether the model directory is new", int(fresh))
    if not chief:  # a cache hit
        src_vocab, tgt_vocab, corpora = prepare_training_data(cfg, model_dir, train_vocab=False)
    return _Run(
        cfg=cfg,
        model_dir=model_dir,
        strategy=strategy,
        chief=chief,
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        corpora=corpora,
        write_config=fresh or bool(changes),
    )


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
            run = _prepare_model_dir(cfg, model_dir, overwrite_config, strategy, chief)
            with write_dir(model_dir, chief) as out_dir:
                return _Trainer(run, out_dir)()
        except BaseException:
            if chief:
                cleanup()
            raise


class _Trainer:
    """One worker's training: the state restored from `run.model_dir`, then the loop.

    Args:
        run: what `train` prepared.
        out_dir: where this worker saves its checkpoints (`run.model_dir` for the chief).
    """

    def __init__(self, run: _Run, out_dir: str):
        cfg, t = run.cfg, run.cfg.train
        self.run = run
        keras.utils.set_random_seed(t.seed)
        self.state = TrainState(cfg, run.src_vocab, run.tgt_vocab, run.strategy)
        self.last_saved = _restore(self.state, run.model_dir, run.chief)
        self.start_step = int(self.state.step.numpy())
        check_agreement(run.strategy, "the step to start from", self.start_step)
        if run.write_config and run.chief:
            write_file_atomic(os.path.join(run.model_dir, CONFIG_FILE), cfg.to_yaml())
        # Every worker saves (tf.distribute); a non-chief worker into its temporary `out_dir`.
        self.manager = tf.train.CheckpointManager(
            self.state.checkpoint,
            os.path.join(out_dir, CHECKPOINTS),
            max_to_keep=t.keep_checkpoints,
        )
        self.best = BestCheckpoint(
            run.model_dir,
            tf.train.Checkpoint(model=self.state.model, step=self.state.step),
            scratch_dir=None if run.chief else out_dir,
        )
        self.validation = None
        if t.eval_every:
            self.validation = _Validation(cfg, self.state, run.src_vocab, run.tgt_vocab, self.best)
        self.iterator = _train_batches(run, self.start_step)
        self.state.trace_train_step(self.iterator.element_spec)
        self.summaries = Summaries(run.model_dir, enabled=run.chief)
        if self.start_step == 0:
            as_run = resolve_auto(cfg, precision=self.state.mixed_precision)
            self.summaries.config(0, as_run.to_yaml())

    def __call__(self) -> TrainResult:
        """Trains until `train.steps` or an agreed stop request; saves; returns how it ended."""
        t, state, validation = self.run.cfg.train, self.state, self.validation
        step, stop_reason = self.start_step, None
        progress = Progress(t.steps, t.max_minutes)
        with StopRequests() as requests, contextlib.closing(self.summaries):
            while step < t.steps and stop_reason is None:
                batches = [next(self.iterator) for _ in range(t.accumulate_steps)]
                stats = state.train_step(batches, requests.votes())
                step += 1
                self._check_finite(step, stats)
                state.step.assign(step)
                progress.update(step, stats)
                if step % t.log_every == 0 or step == t.steps:
                    report = progress.report(state.learning_rate)
                    logging.info(report.log_line())
                    report.write_summaries(self.summaries)
                if validation and step % t.eval_every == 0:
                    validation(step, self.summaries)
                    requests.early_stopping = validation.stalled
                if step % t.save_every == 0:
                    self.last_saved = save_checkpoint(self.manager, step)
                requests.time_up = progress.time_up
                # This step's votes were cast before it: every worker stops after the same step.
                stop_reason = agreed_reason(stats.stop_votes)
        return self._finish(step, stop_reason or "steps", progress.loss)

    def _check_finite(self, step: int, stats: StepStats) -> None:
        """Raises FloatingPointError if update `step` has a NaN or Inf loss or gradient norm.

        With a float16 loss scale a non-finite gradient norm is expected now and then: the
        optimizer skips that update and lowers the scale.
        """
        loss_scaled = self.state.mixed_precision == "float16"  # resolved by TrainState
        if math.isfinite(stats.loss) and (math.isfinite(stats.grad_norm) or loss_scaled):
            return
        raise FloatingPointError(
            f"step {step}: the loss is {stats.loss} and the gradient norm {stats.grad_norm}; "
            f"training stopped without saving, the last checkpoint ({self.last_saved or 'none'}) "
            "is intact. Lower train.learning_rate or set train.clip_norm."
        )

    def _finish(self, step: int, stop_reason: str, loss: float) -> TrainResult:
        """Saves the last update (unless saved already), averages checkpoints if asked."""
        t = self.run.cfg.train
        if self.last_saved is None or checkpoint_step(self.last_saved) != step:
            self.last_saved = save_checkpoint(self.manager, step)
        logging.info(
            "Training stopped at step %d (%s); checkpoint %s", step, stop_reason, self.last_saved
        )
        interrupted = stop_reason in ("SIGINT", "SIGTERM")
        if interrupted:
            logging.info("Run the same command again to resume from step %d", step)
        if self.run.chief and t.average_last > 1 and not interrupted:
            average_checkpoints(self.run.model_dir, t.average_last, t.average_within)
        best_bleu = self.best.bleu if self.best.bleu != float("-inf") else None
        return TrainResult(step, stop_reason, loss, self.last_saved, best_bleu)


def _train_batches(run: _Run, start_step: int) -> Iterator:
    """The distributed training batches, from the first one after update `start_step`."""
    t = run.cfg.train

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        per_pipeline = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        consumed = start_step * t.accumulate_steps * per_pipeline
        return make_train_dataset(
            run.corpora, t, input_context=ctx, skip=consumed, source_eos=run.cfg.model.source_eos
        )

    return iter(run.strategy.distribute_datasets_from_function(dataset_fn))
