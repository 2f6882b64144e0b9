"""Counters, gauges and histograms rendered in the Prometheus text format (version 0.0.4).

metrics = Metrics()
metrics.requests.inc(path="/translate", status="200")
metrics.render()  # the body of GET /metrics
"""

from __future__ import annotations

import math
from collections.abc import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: a few milliseconds (a short sentence, greedy) to a minute (a full, slow batch).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Sentences per batch.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Counter:
    """A monotonic count, one series per label set."""

    kind = "counter"

    def __init__(self, name: str, help: str):
        self.name, self.help = name, help
        self.values: dict[tuple, float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0) + amount

    def samples(self) -> list[str]:
        return [f"{self.name}{_labels(dict(k))} {_number(v)}" for k, v in self.values.items()]


class Gauge:
    """A value read when scraped."""

    kind = "gauge"

    def __init__(self, name: str, help: str, read: Callable[[], float]):
        self.name, self.help, self.read = name, help, read

    def samples(self) -> list[str]:
        return [f"{self.name} {_number(self.read())}"]


class Histogram:
    """Observations counted in cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: tuple[float, ...]):
        self.name, self.help = name, help
        self.bounds = tuple(buckets) + (math.inf,)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.sum += value
        self.count += 1

    def samples(self) -> list[str]:
        lines, total = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            total += count
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {total}')
        lines.append(f"{self.name}_sum {_number(self.sum)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class Metrics:
    """Everything GET /metrics reports; `queue` reads the sentences waiting for a batch."""

    def __init__(self, queue: Callable[[], float] = lambda: 0):
        self.requests = Counter("t2t_requests_total", "HTTP requests answered, by path and status.")
        self.sentences = Counter("t2t_sentences_total", "Sentences translated.")
        self.batches = Histogram(
            "t2t_batch_sentences", "Sentences per translated batch.", BATCH_BUCKETS
        )
        self.latency = Histogram(
            "t2t_request_seconds", "Time from receiving to answering a /translate request.",
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.queue = Gauge("t2t_queue_sentences", "Sentences waiting for a batch.", queue)

    def render(self) -> str:
        out = []
        for metric in (self.requests, self.sentences, self.batches, self.latency, self.queue):
            out += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.kind}"]
            out += metric.samples()
        return "\n".join(out) + "\n"
