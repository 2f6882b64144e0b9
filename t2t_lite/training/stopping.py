"""Stopping training early, on the same step on every worker: signals, time, early stopping.

Each worker notices its own reasons to stop: a SIGINT or SIGTERM it received, its own clock
passing `train.max_minutes`, validation BLEU that stopped improving (`train.early_stopping`).
It votes with them in the next update: the train step sums the votes of all replicas
(`TrainState.train_step(batches, stop_votes)`, packed into an all-reduce the step does
anyway), so all workers see the same sum, leave the training loop after that same update
for the same reason, and save the same checkpoint. A request thus takes effect one update
after it is made. With one device the sum is the vote itself.

Example:
    >>> with StopRequests() as requests:
    ...     while True:
    ...         stats = state.train_step(batches, requests.votes())
    ...         requests.time_up = time.monotonic() > deadline
    ...         if agreed_reason(stats.stop_votes):
    ...             break
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

import numpy as np
from absl import logging

# The reasons to stop early, in order of precedence when workers vote for different ones.
STOP_REASONS = ("SIGINT", "SIGTERM", "max_minutes", "early_stopping")


def agreed_reason(stop_votes: Sequence[float]) -> str | None:
    """The first of `STOP_REASONS` with a vote (votes summed over all replicas), or None."""
    return next((r for r, v in zip(STOP_REASONS, stop_votes, strict=True) if v > 0), None)


class StopRequests:
    """This worker's reasons to stop, as votes; catches SIGINT and SIGTERM while entered.

    The first SIGINT or SIGTERM becomes a request; a second SIGINT aborts at once
    (KeyboardInterrupt, no checkpoint; in a multi-worker run the other workers then fail
    when their next collective finds this one gone).

    Attributes:
        signal: "SIGINT" or "SIGTERM" once one was received, else None.
        time_up: set by the trainer when `train.max_minutes` have passed.
        early_stopping: set by the trainer when BLEU stopped improving.
    """

    def __init__(self):
        self.signal: str | None = None
        self.time_up = False
        self.early_stopping = False
        self._previous: dict[int, object] = {}

    def votes(self) -> np.ndarray:
        """`[len(STOP_REASONS)]` float32, 1 for each reason this worker has to stop."""
        wanted = {
            "SIGINT": self.signal == "SIGINT",
            "SIGTERM": self.signal == "SIGTERM",
            "max_minutes": self.time_up,
            "early_stopping": self.early_stopping,
        }
        return np.array([wanted[r] for r in STOP_REASONS], np.float32)

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        logging.warning("%s received: stopping after the next update and saving", self.signal)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
