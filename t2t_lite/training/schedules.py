"""Learning-rate schedules, as Keras `LearningRateSchedule`s that round-trip `get_config`.

Keras calls a schedule with the optimizer's `iterations`, which is 0 for the first update.
The formulas below count steps from 1, so both schedules evaluate them at
`step = iterations + 1`: the first update uses the value of step 1.

Example:
    >>> schedule = make_schedule(cfg.train, cfg.model.d_model)
    >>> optimizer = keras.optimizers.Adam(learning_rate=schedule)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from t2t_lite.config import ConfigError, TrainConfig


def _step(iterations) -> tf.Tensor:
    """float32 step counted from 1, from the optimizer's 0-based `iterations`."""
    return tf.cast(iterations, tf.float32) + 1.0


@keras.saving.register_keras_serializable(package="t2t_lite")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then inverse square-root decay (Vaswani et al. 2017, eq. 3).

    `lr(step) = scale * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)`, which
    peaks at `step = warmup_steps`.

    Args:
        scale: multiplier of the whole formula (`train.learning_rate`, 2.0 in the presets).
        d_model: D.
        warmup_steps: steps of linear warmup (at least 1).

    Call arguments:
        iterations: the optimizer's 0-based update count; step = iterations + 1.

    Example:
        >>> float(TransformerSchedule(1.0, 512, 4000)(3999))  # step 4000, the peak
        0.000698...

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 5.3.
    """

    def __init__(self, scale: float, d_model: int, warmup_steps: int):
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}")
        self.scale = scale
        self.d_model = d_model
        self.warmup_steps = warmup_steps

    def __call__(self, iterations):
        step = _step(iterations)
        decay = tf.minimum(tf.math.rsqrt(step), step * float(self.warmup_steps) ** -1.5)
        return self.scale * float(self.d_model) ** -0.5 * decay

    def get_config(self):
        return {"scale": self.scale, "d_model": self.d_model, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="t2t_lite")
class WarmupStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then piecewise-constant multiples of `peak`.

    `lr(step) = peak * step / warmup_steps` while `step < warmup_steps`; afterwards
    `peak * factors[i]` where `boundaries[i]` is the last boundary with `step > boundaries[i]`,
    or `peak` before the first boundary is passed (as `tf.keras` `PiecewiseConstantDecay`).

    Args:
        peak: the learning rate reached at the end of warmup.
        warmup_steps: steps of linear warmup (0 = none).
        boundaries: increasing steps at which the multiplier changes.
        factors: the multiplier after each boundary, `len(factors) == len(boundaries)`.

    Call arguments:
        iterations: the optimizer's 0-based update count; step = iterations + 1.

    Example:
        >>> s = WarmupStepSchedule(1e-3, 100, boundaries=[1000], factors=[0.1])
        >>> [round(float(s(i)), 6) for i in (49, 999, 1000)]  # steps 50, 1000, 1001
        [0.0005, 0.001, 0.0001]
    """

    def __init__(
        self,
        peak: float,
        warmup_steps: int,
        boundaries: Sequence[int] = (),
        factors: Sequence[float] = (),
    ):
        if len(boundaries) != len(factors):
            raise ValueError(
                f"boundaries and factors differ in length: {list(boundaries)} vs {list(factors)}"
            )
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"boundaries must be increasing, got {list(boundaries)}")
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.boundaries = list(boundaries)
        self.factors = list(factors)

    def __call__(self, iterations):
        step = _step(iterations)
        warmup = tf.minimum(1.0, step / float(max(self.warmup_steps, 1)))
        multiplier = tf.constant(1.0)
        for boundary, factor in zip(self.boundaries, self.factors, strict=True):
            multiplier = tf.where(step > float(boundary), tf.constant(float(factor)), multiplier)
        return self.peak * warmup * multiplier

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "boundaries": self.boundaries,
            "factors": self.factors,
        }


def make_schedule(
    cfg: TrainConfig, d_model: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The schedule `cfg.schedule` names, with `cfg.learning_rate` as its scale or peak.

    Raises:
        ConfigError: the schedule's settings are invalid (the message names the keys).
    """
    try:
        if cfg.schedule == "transformer":
            return TransformerSchedule(cfg.learning_rate, d_model, cfg.warmup_steps)
        return WarmupStepSchedule(cfg.learning_rate, cfg.warmup_steps, cfg.boundaries, cfg.factors)
    except ValueError as e:
        raise ConfigError(f"train.schedule={cfg.schedule}: {e}") from None
