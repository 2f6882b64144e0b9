"""Training statistics between two progress reports: throughput, time left, the log line.

`Progress.update` takes each update's `StepStats`; at a logging step `Progress.report` closes
the window of updates since the previous report into a `Report`, whose `log_line()` goes to
the absl log and whose `write_summaries` writes the training scalars to TensorBoard
(`t2t_lite.training.summaries`).

Example:
    >>> progress = Progress(total_steps=3000, max_minutes=0)
    >>> progress.update(100, stats)                # after every update
    >>> report = progress.report(learning_rate)    # every `train.log_every` updates
    >>> report.log_line()
    'step 100/3000  loss 5.1230  lr 2.400e-04  12,345 tok/s  elapsed 1m05s  left 31m20s'
    >>> report.write_summaries(summaries)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from t2t_lite.training.summaries import Summaries
from t2t_lite.training.train_state import StepStats


def format_duration(seconds: float) -> str:
    """`3725` -> `"1h02m05s"`, `65` -> `"1m05s"`, `5` -> `"5s"`."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclasses.dataclass(frozen=True)
class Report:
    """The progress at one logging step.

    Attributes:
        step: updates done in total.
        total_steps: `train.steps`.
        loss: training loss of the last update.
        learning_rate: learning rate of the last update.
        grad_norm: gradient norm of the last update (before clipping).
        tokens_per_sec: source and target pieces per second since the previous report.
        elapsed: seconds since training (this run) started.
        remaining: estimated seconds left, at the pace since the previous report.
    """

    step: int
    total_steps: int
    loss: float
    learning_rate: float
    grad_norm: float
    tokens_per_sec: float
    elapsed: float
    remaining: float

    def log_line(self) -> str:
        """E.g. `step 100/3000  loss 5.1230  lr 2.400e-04  12,345 tok/s  elapsed 5s  left 2m30s`."""
        return (
            f"step {self.step}/{self.total_steps}  loss {self.loss:.4f}  "
            f"lr {self.learning_rate:.3e}  {self.tokens_per_sec:,.0f} tok/s  "
            f"elapsed {format_duration(self.elapsed)}  left {format_duration(self.remaining)}"
        )

    def write_summaries(self, summaries: Summaries) -> None:
        """The training scalars, at `step`."""
        summaries.train(
            self.step,
            {
                "loss": self.loss,
                "learning_rate": self.learning_rate,
                "grad_norm": self.grad_norm,
                "tokens_per_sec": self.tokens_per_sec,
            },
        )


class Progress:
    """Counts the updates and tokens of the current window and the time since the start.

    Args:
        total_steps: `train.steps`.
        max_minutes: `train.max_minutes` (0 = no limit); the time left is at most what
            remains of it.
        clock: monotonic seconds (`time.monotonic`; tests pass a fake clock).

    Attributes:
        step: the step of the last update seen.
        loss: training loss of the last update (NaN before any update).
        elapsed: seconds from the start to the last update.
    """

    def __init__(
        self,
        total_steps: int,
        max_minutes: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total_steps = total_steps
        self.max_minutes = max_minutes
        self._clock = clock
        self._start = self._window_start = clock()
        self._window_tokens, self._window_steps = 0.0, 0
        self.step, self.loss, self.grad_norm, self.elapsed = 0, float("nan"), float("nan"), 0.0

    def update(self, step: int, stats: StepStats) -> None:
        """Records update `step` (its loss, gradient norm and tokens)."""
        self.step, self.loss, self.grad_norm = step, stats.loss, stats.grad_norm
        self._window_tokens += stats.tokens
        self._window_steps += 1
        self.elapsed = self._clock() - self._start

    @property
    def time_up(self) -> bool:
        """Whether `max_minutes` had passed at the last update (never without a limit)."""
        return bool(self.max_minutes) and self.elapsed >= self.max_minutes * 60

    def report(self, learning_rate: float) -> Report:
        """The progress now (throughput over the window); starts a new window."""
        now = self._clock()
        window = now - self._window_start
        remaining = (self.total_steps - self.step) * (window / max(self._window_steps, 1))
        if self.max_minutes:
            remaining = min(remaining, max(self.max_minutes * 60 - self.elapsed, 0.0))
        report = Report(
            step=self.step,
            total_steps=self.total_steps,
            loss=self.loss,
            learning_rate=learning_rate,
            grad_norm=self.grad_norm,
            tokens_per_sec=self._window_tokens / max(window, 1e-9),
            elapsed=self.elapsed,
            remaining=remaining,
        )
        self._window_start, self._window_tokens, self._window_steps = now, 0.0, 0
        return report
