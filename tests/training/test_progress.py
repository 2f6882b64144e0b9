"""Training progress on a fake clock: throughput, time left, the log line, the scalars."""

import math

import pytest

from t2t_lite.training.progress import Progress, format_duration
from t2t_lite.training.train_state import StepStats


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeSummaries:
    def __init__(self):
        self.written = []

    def train(self, step, scalars):
        self.written.append((step, scalars))


def stats(tokens: float, loss: float = 2.0, grad_norm: float = 0.5) -> StepStats:
    return StepStats(loss, tokens, tokens / 2, grad_norm, stop_votes=(0.0, 0.0, 0.0, 0.0))


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (65, "1m05s"), (3725, "1h02m05s"), (0.4, "0s")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_each_report_covers_the_updates_since_the_previous_one():
    clock = FakeClock()
    progress = Progress(total_steps=100, clock=clock)
    assert math.isnan(progress.loss)
    for step in range(1, 5):
        clock.now += 0.5
        progress.update(step, stats(tokens=100, loss=3.0 - step / 10))
    report = progress.report(learning_rate=1e-3)
    assert (report.step, report.loss, report.tokens_per_sec) == (4, 2.6, 200)
    assert (report.elapsed, report.remaining) == (2.0, 48.0)  # 96 steps at 0.5 s
    assert report.log_line() == (
        "step 4/100  loss 2.6000  lr 1.000e-03  200 tok/s  elapsed 2s  left 48s"
    )
    clock.now += 4.0
    progress.update(5, stats(tokens=10_000))
    report = progress.report(learning_rate=2e-3)
    assert (report.tokens_per_sec, report.remaining) == (2500, 380.0)  # 95 steps at 4 s
    assert report.log_line() == (
        "step 5/100  loss 2.0000  lr 2.000e-03  2,500 tok/s  elapsed 6s  left 6m20s"
    )


def test_max_minutes_caps_the_time_left_and_ends_the_run():
    clock = FakeClock()
    progress = Progress(total_steps=1000, max_minutes=1.0, clock=clock)
    clock.now = 50.0
    progress.update(1, stats(tokens=10))
    assert not progress.time_up
    assert progress.report(learning_rate=1.0).remaining == 10.0  # not 999 * 50
    clock.now = 60.0
    progress.update(2, stats(tokens=10))
    assert progress.time_up
    assert progress.report(learning_rate=1.0).remaining == 0.0


def test_without_max_minutes_time_is_never_up():
    clock = FakeClock()
    progress = Progress(total_steps=10, clock=clock)
    clock.now = 1e9
    progress.update(1, stats(tokens=10))
    assert not progress.time_up


def test_the_scalars_keep_their_tensorboard_tags():
    clock = FakeClock()
    progress = Progress(total_steps=10, clock=clock)
    clock.now = 2.0
    progress.update(3, stats(tokens=50, loss=1.5, grad_norm=0.25))
    summaries = FakeSummaries()
    progress.report(learning_rate=0.01).write_summaries(summaries)
    expected = {"loss": 1.5, "learning_rate": 0.01, "grad_norm": 0.25, "tokens_per_sec": 25.0}
    assert summaries.written == [(3, expected)]
