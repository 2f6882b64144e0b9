"""The batcher with a scripted translate function: merging, fairness, groups, cancellation."""

import asyncio
import itertools
import threading
import time

import pytest

from t2t_lite.inference.translator import Hypothesis
from t2t_lite.serve.batcher import Batcher, Stopping
from t2t_lite.serve.request import TranslationRequest

_solo = itertools.count()


def make_request(lines, beam_size=4, solo=False, prefixes=None):
    kwargs = {"beam_size": beam_size, "n_best": 1}
    per_line = {"target_prefixes": prefixes} if prefixes is not None else {}
    group = ("solo", next(_solo)) if solo else ("shared", beam_size, prefixes is not None)
    return TranslationRequest(list(lines), False, kwargs, per_line, (), group)


class Scripted:
    """Translates "x" to "beam:x" (or fails on "fail"), recording every batch."""

    def __init__(self, seconds=0.0):
        self.seconds = seconds
        self.batches = []  # (lines, kwargs, first_line)
        self.lock = threading.Lock()

    def __call__(self, lines, kwargs, first_line):
        with self.lock:
            self.batches.append((list(lines), dict(kwargs), first_line))
        time.sleep(self.seconds)
        if "fail" in lines:
            raise ValueError("cannot translate 'fail'")
        return [[Hypothesis(f"{kwargs['beam_size']}:{line}", 0.0, 1)] for line in lines]


def run_batcher(scripted, coroutine_fn, **kwargs):
    """Runs `coroutine_fn(batcher)` with a started batcher; returns its result."""
    settings = dict(window=0.02, max_sentences=8, max_tokens=1000)
    settings.update(kwargs)

    async def main():
        batcher = Batcher(
            scripted, lambda lines: [len(line.split()) + 1 for line in lines], **settings
        )
        batcher.start()
        try:
            return await coroutine_fn(batcher)
        finally:
            await batcher.close()

    return asyncio.run(main())


def texts(hypotheses):
    return [hyps[0].text for hyps in hypotheses]


def test_requests_in_the_window_share_a_batch_and_keep_their_order():
    scripted = Scripted()
    requests = [make_request([f"r{i} a", f"r{i} b"]) for i in range(3)]

    async def go(batcher):
        return await asyncio.gather(*(batcher.translate(r) for r in requests))

    results = run_batcher(scripted, go)
    assert [texts(r) for r in results] == [[f"4:r{i} a", f"4:r{i} b"] for i in range(3)]
    assert len(scripted.batches) == 1
    assert scripted.batches[0][0] == ["r0 a", "r0 b", "r1 a", "r1 b", "r2 a", "r2 b"]


def test_a_full_batch_takes_one_line_from_each_request_in_turn():
    scripted = Scripted()
    requests = [make_request([f"r{i} a", f"r{i} b", f"r{i} c"]) for i in range(3)]

    async def go(batcher):
        return await asyncio.gather(*(batcher.translate(r) for r in requests))

    run_batcher(scripted, go, max_sentences=4)
    assert scripted.batches[0][0] == ["r0 a", "r0 b", "r1 a", "r2 a"]


def test_a_huge_request_is_split_and_does_not_starve_small_ones():
    scripted = Scripted(seconds=0.01)
    huge = make_request([f"h{i}" for i in range(40)])
    small = [make_request([f"s{i}"]) for i in range(3)]
    done_order = []

    async def go(batcher):
        async def one(name, request):
            result = await batcher.translate(request)
            done_order.append(name)
            return result

        first = asyncio.ensure_future(one("huge", huge))
        await asyncio.sleep(0.03)  # the huge request's first batch is running
        rest = [asyncio.ensure_future(one(f"small{i}", r)) for i, r in enumerate(small)]
        return await asyncio.gather(first, *rest)

    results = run_batcher(scripted, go, max_sentences=8)
    assert texts(results[0]) == [f"4:h{i}" for i in range(40)]
    assert [texts(r) for r in results[1:]] == [[f"4:s{i}"] for i in range(3)]
    assert all(len(lines) <= 8 for lines, _, _ in scripted.batches)
    assert done_order[-1] == "huge"  # the small ones got in between its batches
    assert done_order.index("small2") < 3


def test_token_budget_bounds_a_batch_but_a_long_line_still_gets_one():
    scripted = Scripted()
    request = make_request(["a b c d e f g h i", "x", "y"])

    async def go(batcher):
        return await batcher.translate(request)

    result = run_batcher(scripted, go, max_tokens=5)
    assert texts(result) == ["4:a b c d e f g h i", "4:x", "4:y"]
    assert [lines for lines, _, _ in scripted.batches] == [["a b c d e f g h i"], ["x", "y"]]


def test_requests_with_other_options_are_not_mixed():
    scripted = Scripted()

    async def go(batcher):
        return await asyncio.gather(
            batcher.translate(make_request(["a"], beam_size=4)),
            batcher.translate(make_request(["b"], beam_size=1)),
            batcher.translate(make_request(["c"], beam_size=4)),
            batcher.translate(make_request(["d"], beam_size=4, prefixes=["p"])),
        )

    results = run_batcher(scripted, go)
    assert [texts(r) for r in results] == [["4:a"], ["1:b"], ["4:c"], ["4:d"]]
    batches = sorted(
        (lines, kwargs.get("target_prefixes")) for lines, kwargs, _ in scripted.batches
    )
    assert batches == [(["a", "c"], None), (["b"], None), (["d"], ["p"])]


def test_a_solo_request_keeps_its_line_numbers_across_batches():
    scripted = Scripted()
    requests = [make_request(["a", "b", "c"], solo=True), make_request(["d", "e"], solo=True)]

    async def go(batcher):
        return await asyncio.gather(*(batcher.translate(r) for r in requests))

    run_batcher(scripted, go, max_sentences=2)
    assert sorted((lines, first) for lines, _, first in scripted.batches) == [
        (["a", "b"], 1), (["c"], 3), (["d", "e"], 1)
    ]  # fmt: skip


def test_a_cancelled_request_loses_its_queued_lines_and_the_others_are_answered():
    scripted = Scripted(seconds=0.05)
    gone = make_request([f"g{i}" for i in range(20)])
    kept = make_request(["k0", "k1"])

    async def go(batcher):
        task = asyncio.ensure_future(batcher.translate(gone))
        other = asyncio.ensure_future(batcher.translate(kept))
        await asyncio.sleep(0.04)  # the first batch (gone's and kept's lines) is running
        task.cancel()
        result = await other
        assert batcher.waiting == 0
        return result

    assert texts(run_batcher(scripted, go, max_sentences=4)) == ["4:k0", "4:k1"]
    translated = [line for lines, _, _ in scripted.batches for line in lines]
    assert len([line for line in translated if line.startswith("g")]) < 20


def test_a_failing_batch_is_retried_per_request_so_only_the_faulty_one_fails():
    scripted = Scripted()

    async def go(batcher):
        return await asyncio.gather(
            batcher.translate(make_request(["fine"])),
            batcher.translate(make_request(["fail"])),
            return_exceptions=True,
        )

    fine, failed = run_batcher(scripted, go)
    assert texts(fine) == ["4:fine"]
    assert isinstance(failed, ValueError)


def test_close_answers_what_is_queued():
    scripted = Scripted(seconds=0.02)

    async def go(batcher):
        tasks = [
            asyncio.ensure_future(batcher.translate(make_request([f"x{i}"]))) for i in range(5)
        ]
        await asyncio.sleep(0)
        await batcher.close()
        with pytest.raises(Stopping, match="stopping"):
            await batcher.translate(make_request(["late"]))
        return [texts(t.result()) for t in tasks]

    assert run_batcher(scripted, go, max_sentences=2) == [[f"4:x{i}"] for i in range(5)]


def test_the_event_loop_runs_while_a_batch_decodes():
    scripted = Scripted(seconds=0.5)

    async def go(batcher):
        task = asyncio.ensure_future(batcher.translate(make_request(["slow"])))
        await asyncio.sleep(0.1)  # the batch is decoding in the worker thread
        start = time.perf_counter()
        for _ in range(10):
            await asyncio.sleep(0.001)
        ticks = time.perf_counter() - start
        assert not task.done() and batcher.waiting == 0
        return ticks, await task

    ticks, result = run_batcher(scripted, go)
    assert ticks < 0.25
    assert texts(result) == ["4:slow"]
