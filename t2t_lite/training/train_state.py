"""What training updates and checkpoints: model, optimizer, step; and the one train step.

`TrainState.train_step` is a single `tf.function`, built once: the trainer traces it for the
dataset's `[None, None]` batch spec before the first update (`trace_train_step`), and every
batch runs that trace; without it, `reduce_retracing=True` makes batches of new bucket shapes
reuse a generalized trace. Under a `tf.distribute` strategy every replica computes the
gradient of its share of the loss, the loss sum being divided once by the GLOBAL number of
target tokens (an all-reduced count), so the update does not depend on how many replicas
share the global batch. The step also sums the replicas' votes to stop
(`t2t_lite.training.stopping`), so all workers stop after the same update.

Example:
    >>> state = TrainState(cfg, src_vocab, tgt_vocab, strategy)
    >>> stats = state.train_step([batch])   # one update; `accumulate_steps` batches
    >>> stats.loss, stats.grad_norm
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from t2t_lite.config import Config, ConfigError
from t2t_lite.data import tokens_per_batch
from t2t_lite.hardware import training_precision
from t2t_lite.model_dir import build_model
from t2t_lite.training.losses import cross_entropy, token_weight
from t2t_lite.training.optimizer import Adam
from t2t_lite.training.schedules import make_schedule
from t2t_lite.training.stopping import STOP_REASONS
from t2t_lite.training.workers import agreed_precision
from t2t_lite.vocab import Vocabulary

Batch = dict[str, tf.Tensor]
SUM = tf.distribute.ReduceOp.SUM

_POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@dataclasses.dataclass
class StepStats:
    """What one update reports (Python numbers, global over replicas).

    Attributes:
        loss: mean label-smoothed cross-entropy per target token.
        tokens: source plus target pieces of the update (`tokens_per_batch`: EOS not counted).
        target_tokens: non-padding target tokens (the loss weight).
        grad_norm: global norm of the gradient before clipping.
        stop_votes: per `STOP_REASONS`, how many replicas voted to stop.
    """

    loss: float
    tokens: float
    target_tokens: float
    grad_norm: float
    stop_votes: tuple[float, ...]


@contextlib.contextmanager
def dtype_policy(mixed_precision: str) -> Iterator[None]:
    """Sets the global Keras dtype policy for `train.mixed_precision` while models are built."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(_POLICIES[mixed_precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


class TrainState:
    """Model, optimizer and step counter created under a strategy, with the train step.

    Args:
        cfg: the configuration (`model`, `train` sections).
        src_vocab: source vocabulary.
        tgt_vocab: target vocabulary.
        strategy: the `tf.distribute.Strategy` whose scope holds the variables.

    Attributes:
        mixed_precision: `train.mixed_precision` resolved for this machine ("none",
            "bfloat16" or "float16"; `t2t_lite.hardware.resolve_precision`).
        model: the Transformer (built).
        optimizer: Adam (wrapped in a `LossScaleOptimizer` for float16), built.
        step: int64 variable, the number of updates done.
        checkpoint: `tf.train.Checkpoint` of model, optimizer, step and dropout RNG states.
        traces: how many times the train step was traced (for tests and logs).

    Raises:
        ConfigError: `train.jit_compile` with more than one replica.
    """

    def __init__(
        self,
        cfg: Config,
        src_vocab: Vocabulary,
        tgt_vocab: Vocabulary,
        strategy: tf.distribute.Strategy,
    ):
        t = cfg.train
        if t.jit_compile and strategy.num_replicas_in_sync > 1:
            raise ConfigError(
                "train.jit_compile=true is supported with one replica only, found "
                f"{strategy.num_replicas_in_sync}"
            )
        self.cfg = cfg
        self.strategy = strategy
        self.schedule = make_schedule(t, cfg.model.d_model)
        self.mixed_precision = training_precision(t.mixed_precision)  # "auto" resolved, logged
        if t.mixed_precision == "auto":
            self.mixed_precision = agreed_precision(strategy, self.mixed_precision)
        with dtype_policy(self.mixed_precision), strategy.scope():
            self.model = build_model(cfg, src_vocab, tgt_vocab)
            optimizer = Adam(
                learning_rate=self.schedule,
                beta_1=t.adam_beta1,
                beta_2=t.adam_beta2,
                epsilon=t.adam_epsilon,
            )
            if self.mixed_precision == "float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # Dropout seed-generator states are Keras variables that tf.train.Checkpoint does not
        # reach through the model; saving them makes a resumed run draw the same masks.
        seeds = [v.value for v in self.model.non_trainable_variables if "seed_generator" in v.path]
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step, dropout_seeds=seeds
        )
        self.traces = 0
        # No AutoGraph: the steps have no Python control flow on tensors, and converting the
        # model's source would cost seconds of tracing.
        self._train_step = tf.function(
            self._step, reduce_retracing=True, jit_compile=t.jit_compile, autograph=False
        )
        self._eval_step = tf.function(self._loss_sum, reduce_retracing=True, autograph=False)

    def trace_train_step(self, batch_spec) -> None:
        """Traces the train step for batches of `batch_spec`, before the first update.

        `batch_spec` is e.g. a distributed iterator's `element_spec` (`[None, None]` shapes).
        A batch whose spec this trace covers runs it rather than a new trace, so every update
        runs the same graph and a run resumed from a checkpoint rounds as an uninterrupted
        run does; a first trace specialized to one batch's shape rounds differently, which
        shows in the attention key biases (their gradient is rounding noise, which Adam
        scales up to full-size steps).
        """
        votes = tf.TensorSpec([len(STOP_REASONS)], tf.float32)
        batches = (batch_spec,) * self.cfg.train.accumulate_steps
        self._train_step.get_concrete_function(batches, votes)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the last update (of the first one before any update)."""
        return float(self.schedule(tf.maximum(self.optimizer.iterations - 1, 0)))

    def train_step(
        self, batches: Sequence[Batch], stop_votes: Sequence[float] | None = None
    ) -> StepStats:
        """One update from `train.accumulate_steps` batches (distributed values or dicts).

        `stop_votes` (default none) are this worker's votes to stop, one 0/1 per
        `STOP_REASONS`; `StepStats.stop_votes` has their sum over all replicas.
        """
        if stop_votes is None:
            stop_votes = np.zeros(len(STOP_REASONS))
        results = self._train_step(tuple(batches), tf.constant(stop_votes, tf.float32))
        *scalars, votes = (self.strategy.experimental_local_results(x)[0] for x in results)
        return StepStats(*map(float, scalars), stop_votes=tuple(votes.numpy().tolist()))

    def eval_loss(self, dataset: tf.data.Dataset) -> float:
        """Mean loss per target token over a finite dataset of (undistributed) batches."""
        total, weight = 0.0, 0.0
        for batch in dataset:
            loss_sum, batch_weight = self._eval_step(batch)
            total += float(loss_sum)
            weight += float(batch_weight)
        return total / max(weight, 1.0)

    def _loss_sum(self, batch: Batch, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        decoded = self.model.decode_outputs((batch["source"], batch["target_in"]), training)
        # Only non-padding positions go through the [D, V] projection and the loss (9% of
        # the positions of a batch are padding at bucket width 2).
        return cross_entropy(
            decoded.outputs,
            batch["target_out"],
            self.cfg.train.label_smoothing,
            output_layer=self.model.output_layer(),
        )

    def _step(self, batches: tuple[Batch, ...], stop_votes: tf.Tensor):
        self.traces += 1  # runs only while tracing
        return self.strategy.run(self._replica_step, args=(batches, stop_votes))

    def _replica_step(self, batches: tuple[Batch, ...], stop_votes: tf.Tensor):
        ctx = tf.distribute.get_replica_context()
        variables = self.model.trainable_variables
        loss_scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        # The global weight is known from the labels before the forward pass, so each
        # batch's loss sum is divided by it once, inside the tape.
        weight = ctx.all_reduce(SUM, tf.add_n([token_weight(b["target_out"]) for b in batches]))
        tokens = tf.add_n([tf.cast(tokens_per_batch(b), tf.float32) for b in batches])
        # The stop votes ride along with the token count: one all-reduce for both.
        counts = ctx.all_reduce(SUM, tf.concat([[tokens], stop_votes], axis=0))
        tokens, stop_votes = counts[0], counts[1:]
        grads, loss_sum = None, 0.0
        for batch in batches:
            with tf.GradientTape() as tape:
                batch_loss, _ = self._loss_sum(batch, training=True)
                objective = batch_loss / weight
                if loss_scaled:
                    objective = self.optimizer.scale_loss(objective)
            batch_grads = [tf.convert_to_tensor(g) for g in tape.gradient(objective, variables)]
            grads = (
                batch_grads
                if grads is None
                else [a + b for a, b in zip(grads, batch_grads, strict=True)]
            )
            loss_sum += batch_loss
        loss = ctx.all_reduce(SUM, loss_sum) / weight
        # Keras sums the replicas' gradients when applying them; the global norm needs that
        # sum already (an extra all-reduce with several replicas, the identity with one).
        grad_norm = tf.linalg.global_norm(ctx.all_reduce(SUM, grads))
        if loss_scaled:
            grad_norm /= tf.cast(self.optimizer.dynamic_scale, tf.float32)
        if self.cfg.train.clip_norm > 0:
            factor = tf.minimum(1.0, self.cfg.train.clip_norm / grad_norm)
            grads = [g * tf.cast(factor, g.dtype) for g in grads]
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, tokens, weight, grad_norm, stop_votes
