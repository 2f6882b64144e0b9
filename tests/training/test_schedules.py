"""Learning-rate schedules: values at known steps and get_config round trips."""

import keras
import numpy as np
import pytest

from t2t_lite.config import ConfigError, TrainConfig
from t2t_lite.training.schedules import TransformerSchedule, WarmupStepSchedule, make_schedule


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


def test_make_schedule_from_config():
    cfg = TrainConfig(schedule="warmup_step", learning_rate=1e-3, warmup_steps=10)
    assert isinstance(make_schedule(cfg, 64), WarmupStepSchedule)
    assert isinstance(make_schedule(TrainConfig(), 64), TransformerSchedule)
    with pytest.raises(ConfigError, match="increasing"):
        bad = TrainConfig(schedule="warmup_step", boundaries=[10, 5], factors=[0.5, 0.1])
        make_schedule(bad, 64)
    with pytest.raises(ConfigError, match="warmup_steps"):
        make_schedule(TrainConfig(warmup_steps=0), 64)
