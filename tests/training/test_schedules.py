"""Learning-rate schedules: values at known steps and get_config round trips."""

import keras
import numpy as np
import pytest

from t2t_lite.config import ConfigError, TrainConfig
from t2t_lite.training.schedules import TransformerSchedule, WarmupStepSchedule, make_schedule

STEPS = [1, 2, 9, 10, 11, 50, 99, 100, 101, 400, 4000, 4001]


def vaswani(step, scale, d_model, warmup):
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


@pytest.mark.parametrize("step", [1, 2, 100, 3999, 4000, 4001, 20000])
def test_transformer_schedule_matches_formula(step):
    schedule = TransformerSchedule(2.0, 512, 4000)
    # Keras passes the 0-based optimizer iterations; step counts from 1.
    np.testing.assert_allclose(float(schedule(step - 1)), vaswani(step, 2.0, 512, 4000), rtol=1e-6)


def test_transformer_schedule_peaks_at_warmup():
    schedule = TransformerSchedule(1.0, 256, 100)
    values = [float(schedule(i)) for i in range(300)]
    assert int(np.argmax(values)) == 99  # step 100


@pytest.mark.parametrize(
    "step, expected",
    [
        (1, 1e-3 / 100),
        (50, 0.5e-3),
        (100, 1e-3),
        (1000, 1e-3),
        (1001, 1e-4),
        (5000, 1e-4),
        (5001, 1e-5),
    ],
)
def test_warmup_step_schedule_values(step, expected):
    schedule = WarmupStepSchedule(1e-3, 100, boundaries=[1000, 5000], factors=[0.1, 0.01])
    np.testing.assert_allclose(float(schedule(step - 1)), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "schedule",
    [TransformerSchedule(2.0, 512, 4000), WarmupStepSchedule(5e-4, 10, [100, 200], [0.5, 0.25])],
)
def test_schedules_round_trip_config(schedule):
    config = schedule.get_config()
    clone = type(schedule).from_config(config)
    assert clone.get_config() == config
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert type(restored) is type(schedule)
    for iteration in (0, 9, 150, 250):
        assert float(restored(iteration)) == float(schedule(iteration))


def assert_same_schedule(schedule, direct) -> None:
    """Same class and the same value at every step of `STEPS`."""
    assert type(schedule) is type(direct)
    for step in STEPS:
        assert float(schedule(step - 1)) == float(direct(step - 1)), step


def test_make_schedule_from_config():
    cfg = TrainConfig(schedule="warmup_step", learning_rate=1e-3, warmup_steps=10)
    assert_same_schedule(make_schedule(cfg, 64), WarmupStepSchedule(1e-3, 10))
    assert_same_schedule(make_schedule(TrainConfig(), 64), TransformerSchedule(2.0, 64, 4000))
    with pytest.raises(ConfigError, match="increasing"):
        bad = TrainConfig(schedule="warmup_step", boundaries=[10, 5], factors=[0.5, 0.1])
        make_schedule(bad, 64)
    with pytest.raises(ConfigError, match="warmup_steps"):
        make_schedule(TrainConfig(warmup_steps=0), 64)


@pytest.mark.parametrize(
    "cfg, direct",
    [
        (
            TrainConfig(learning_rate=2.0, warmup_steps=50),
            TransformerSchedule(2.0, 64, 50),
        ),
        (  # no warmup: the peak from the first step
            TrainConfig(schedule="warmup_step", learning_rate=1e-3, warmup_steps=0),
            WarmupStepSchedule(1e-3, 0),
        ),
        (  # a boundary inside the warmup, another after it
            TrainConfig(
                schedule="warmup_step",
                learning_rate=1e-3,
                warmup_steps=100,
                boundaries=[10, 200],
                factors=[0.5, 0.1],
            ),
            WarmupStepSchedule(1e-3, 100, [10, 200], [0.5, 0.1]),
        ),
    ],
)
def test_make_schedule_equals_the_schedule_built_directly(cfg, direct):
    assert_same_schedule(make_schedule(cfg, 64), direct)


@pytest.mark.parametrize(
    "warmup, boundaries, factors, expected",
    [
        (0, [], [], {1: 1e-3, 2: 1e-3, 400: 1e-3}),
        (0, [10], [0.5], {1: 1e-3, 10: 1e-3, 11: 0.5e-3}),
        # Inside the warmup the factor multiplies the warmup ramp.
        (
            100,
            [10, 200],
            [0.5, 0.1],
            {1: 1e-5, 10: 1e-4, 11: 0.55e-4, 99: 0.495e-3, 100: 0.5e-3, 201: 1e-4},
        ),
    ],
)
def test_warmup_step_schedule_without_warmup_and_boundaries_inside_it(
    warmup, boundaries, factors, expected
):
    cfg = TrainConfig(
        schedule="warmup_step",
        learning_rate=1e-3,
        warmup_steps=warmup,
        boundaries=boundaries,
        factors=factors,
    )
    schedule = make_schedule(cfg, 64)
    for step, value in expected.items():
        np.testing.assert_allclose(float(schedule(step - 1)), value, rtol=1e-6, err_msg=step)
