"""Dynamic batching: concurrent requests merged into bounded, fair batches.

Requests wait in one queue. When the decoding thread is free, the batcher waits until the
oldest request is `window` seconds old (so that requests arriving together are translated
together), then takes lines from the requests whose options equal the oldest one's, one line
from each in turn, until the batch holds `max_sentences` lines or `max_tokens` source pieces.
A request with lines left goes to the back of the queue: a huge request is translated over
several batches, between which the others get their turn. Each batch runs in one worker
thread (`Translator.translate_nbest` sorts it by length and splits it into token-budget
batches), so the event loop keeps answering while the model decodes.

A request whose caller is gone (its future cancelled) loses its lines not yet in a batch; the
lines already in a batch are translated and their results dropped. A batch that fails is
tried again one request at a time, so only the request at fault gets the error.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from t2t_lite.inference.translator import Hypothesis
from t2t_lite.serve.request import TranslationRequest

# (lines, translate_nbest keyword arguments, line number of lines[0]) -> hypotheses per line.
TranslateFn = Callable[[list[str], dict[str, Any], int], list[list[Hypothesis]]]


class Stopping(Exception):
    """The batcher is closing and takes no new request."""


@dataclasses.dataclass(eq=False)
class _Pending:
    """A request in the queue: lines [0, taken) are in batches, `answered` are translated."""

    request: TranslationRequest
    lengths: list[int]
    future: asyncio.Future
    arrival: float
    results: list
    taken: int = 0
    answered: int = 0


# One request's lines [start, end) in a batch.
_Part = tuple[_Pending, int, int]


class Batcher:
    """Merges concurrent `TranslationRequest`s into batches translated by `translate`.

    Args:
        translate: translates one batch (called in the batcher's worker thread).
        lengths: source lengths in pieces of a list of lines (the batch token budget).
        window: seconds the oldest request waits for others before its batch starts.
        max_sentences: lines per batch.
        max_tokens: source pieces per batch (a longer single line still gets a batch).
        on_batch: called with the number of lines of each translated batch.

    Example:
        >>> batcher = Batcher(translate, lengths, window=0.005, max_sentences=64, max_tokens=2048)
        >>> batcher.start()  # inside the event loop
        >>> hypotheses = await batcher.translate(request)
        >>> await batcher.close()
    """

    def __init__(
        self,
        translate: TranslateFn,
        lengths: Callable[[list[str]], list[int]],
        window: float,
        max_sentences: int,
        max_tokens: int,
        on_batch: Callable[[int], None] = lambda sentences: None,
    ):
        self.window = window
        self.max_sentences = max_sentences
        self.max_tokens = max_tokens
        self._translate = translate
        self._lengths = lengths
        self._on_batch = on_batch
        self._queue: collections.deque[_Pending] = collections.deque()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="t2t-serve-decode")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        """Starts the batching task on the running event loop."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Translates what is queued, then stops the task and the worker thread."""
        self._closing = True
        if self._task is not None:
            self._wake.set()
            await self._task
        self._executor.shutdown(wait=True)

    @property
    def waiting(self) -> int:
        """Lines queued and not yet in a batch."""
        return sum(len(p.request.lines) - p.taken for p in self._queue if not p.future.done())

    async def translate(self, request: TranslationRequest) -> list[list[Hypothesis]]:
        """The hypotheses of every line of `request`, in order (translated in batches)."""
        if self._closing:
            raise Stopping("the server is stopping")
        if not request.lines:
            return []
        loop = asyncio.get_running_loop()
        pending = _Pending(
            request,
            self._lengths(request.lines),
            loop.create_future(),
            loop.time(),
            [None] * len(request.lines),
        )
        self._queue.append(pending)
        self._wake.set()
        return await pending.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._queue = collections.deque(p for p in self._queue if not p.future.done())
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._queue[0].arrival + self.window - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue  # the head may have gone meanwhile
            await self._translate_parts(self._take())

    def _take(self) -> list[_Part]:
        """Lines for the next batch, one from each request of the head's group in turn."""
        group = self._queue[0].request.group
        candidates = [p for p in self._queue if p.request.group == group]
        starts: dict[int, int] = {}  # id(pending) -> its first line in this batch
        sentences = tokens = 0
        full = False
        while not full:
            progressed = False
            for p in candidates:
                if p.taken == len(p.request.lines):
                    continue
                length = p.lengths[p.taken]
                if sentences >= self.max_sentences or (
                    sentences and tokens + length > self.max_tokens
                ):
                    full = True
                    break
                starts.setdefault(id(p), p.taken)
                p.taken += 1
                sentences += 1
                tokens += length
                progressed = True
            full = full or not progressed
        parts = [(p, starts[id(p)], p.taken) for p in candidates if id(p) in starts]
        for p, _, _ in parts:  # the rest of a request waits behind the others
            self._queue.remove(p)
            if p.taken < len(p.request.lines):
                self._queue.append(p)
        return parts

    async def _translate_parts(self, parts: list[_Part]) -> None:
        first = parts[0][0].request
        lines = [line for p, start, end in parts for line in p.request.lines[start:end]]
        kwargs = dict(first.kwargs)
        for key in first.per_line:
            kwargs[key] = [v for p, start, end in parts for v in p.request.per_line[key][start:end]]
        first_line = 1 + parts[0][1] if first.solo else 1
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self._executor, self._translate, lines, kwargs, first_line
            )
        except Exception as e:
            if len(parts) > 1:
                for part in parts:
                    await self._translate_parts([part])
            elif not parts[0][0].future.done():
                parts[0][0].future.set_exception(e)
            return
        self._on_batch(len(lines))
        offset = 0
        for p, start, end in parts:
            p.results[start:end] = results[offset : offset + end - start]
            offset += end - start
            p.answered += end - start
            if p.answered == len(p.request.lines) and not p.future.done():
                p.future.set_result(p.results)
