"""Running `t2t-serve`: the model's translator behind the batcher, served until SIGTERM.

On SIGTERM (or SIGINT) the server stops accepting connections, answers the requests in flight
(their batches included), closes the batcher and returns; `t2t-serve` then exits with status 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import signal
import threading
from collections.abc import Callable
from typing import Any

from absl import logging
from aiohttp import web

from t2t_lite.inference.translator import Hypothesis, Translator
from t2t_lite.serve.app import Service, create_app
from t2t_lite.serve.batcher import Batcher
from t2t_lite.serve.metrics import Metrics
from t2t_lite.serve.options import resolve
from t2t_lite.serve.request import Limits

# Each distinct setting (beam size, length penalty, sampling and repetition values) compiles a
# search of its own; past this many, the compiled searches are dropped and compiled again on
# use, so that requests trying many values cannot grow the memory without bound.
MAX_COMPILED_SEARCHES = 64


@dataclasses.dataclass
class ServeSettings:
    """The server's settings (the flags of `t2t-serve`).

    Attributes:
        host, port: where to listen (port 0: any free port, logged when ready).
        window_ms: how long the oldest queued request waits for others to share its batch.
        max_batch_sentences, max_batch_tokens: the size of one batch (lines, source pieces).
        parallel_batches: sub-batches decoded side by side within a batch.
        limits: what one request may ask for.
        defaults: option values that replace the model's config (None = keep it).
        shutdown_timeout: seconds the requests in flight get after SIGTERM.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    window_ms: float = 5.0
    max_batch_sentences: int = 64
    max_batch_tokens: int = 2048
    parallel_batches: int = 1
    limits: Limits = dataclasses.field(default_factory=Limits)
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    shutdown_timeout: float = 60.0


def batch_translate_fn(
    translator: Translator, parallel_batches: int
) -> Callable[[list[str], dict[str, Any], int], list[list[Hypothesis]]]:
    """Translates one batch of the batcher, split into `parallel_batches` sub-batches of
    similar length decoded side by side."""

    def translate(lines: list[str], kwargs: dict[str, Any], first_line: int):
        translator.trim_searches(MAX_COMPILED_SEARCHES)
        return translator.translate_nbest(
            lines,
            first_line=first_line,
            parallel_batches=parallel_batches,
            max_batch_size=math.ceil(len(lines) / parallel_batches),
            **kwargs,
        )

    return translate


def make_service(translator: Translator, settings: ServeSettings, model: str = "") -> Service:
    """The batcher, metrics, limits and defaults of a server over `translator`."""
    eos = 1 if translator.model.source_eos else 0  # the translator appends EOS to sources

    def lengths(lines: list[str]) -> list[int]:
        return [len(ids) + eos for ids in translator.source_vocab.encode(lines)]

    metrics = Metrics()
    batcher = Batcher(
        batch_translate_fn(translator, settings.parallel_batches),
        lengths,
        window=settings.window_ms / 1000,
        max_sentences=settings.max_batch_sentences,
        max_tokens=settings.max_batch_tokens,
        on_batch=metrics.batches.observe,
    )
    metrics.queue.read = lambda: batcher.waiting
    return Service(batcher, metrics, settings.limits, settings.defaults, translator.decode, model)


async def serve(
    service: Service,
    settings: ServeSettings,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Serves `service` on settings.host:settings.port until `stop` is set, then stops
    accepting, answers the requests in flight and closes the batcher."""
    runner = web.AppRunner(
        create_app(service),
        handler_cancellation=True,  # a client gone: its queued lines are dropped
        shutdown_timeout=settings.shutdown_timeout,
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    on_ready(url)
    try:
        await stop.wait()
    finally:
        logging.info("stopping: answering the requests in flight")
        await runner.cleanup()


def run(translator: Translator, settings: ServeSettings, model: str = "") -> None:
    """Warms up the search, then serves until SIGTERM or SIGINT (in the main thread)."""
    default_options = resolve({}, settings.defaults, translator.decode)
    translator.translate_nbest(["warm up"], **default_options)  # compiles the default search

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
        service = make_service(translator, settings, model)
        await serve(service, settings, stop, lambda url: logging.info("serving on %s", url))

    asyncio.run(main())
    logging.info("stopped")
