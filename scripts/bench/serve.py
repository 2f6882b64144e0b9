"""t2t-serve under load on loopback, against t2t-translate on the same sentences.

`run` runs the load test, the soak, or both (--mode).

Load: the server (a subprocess, --beam_size as given) gets the test2016 sentences from
C concurrent clients (a Python asyncio load generator), one sentence per request, for each C
of --clients: sentences/s, p50 and p99 latency, and the ratio to the sentences/s of
`t2t-translate`'s path (`Translator.translate` on the same sentences as one file, traced
first), measured before the server starts. The clients share the machine with the server.

Soak: --soak_requests requests from 16 clients, mixing valid single sentences,
oversized bodies, too many lines, invalid UTF-8, malformed JSON, unknown options and clients
that disconnect right after sending; every answer's status is checked (valid answers also
against the sentence's first translation), and the server's RSS is reported before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

from bench.common import REPO, format_row
from bench.decode import _test_set, _translator

# The soak server's limits (small, so that oversized requests stay cheap to send).
SOAK_LIMITS = {"max_body_bytes": 16384, "max_lines": 16, "max_chars": 1000}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--mode, --clients, --beam_size, --batch_window_ms, --soak_requests."""
    parser.add_argument("--mode", choices=["load", "soak", "all"], default="all")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients"
    )
    parser.add_argument("--beam_size", type=int, default=4, help="beam size of every request")
    parser.add_argument("--batch_window_ms", type=float, default=5.0, help="t2t-serve's window")
    parser.add_argument(
        "--soak_requests", type=int, default=10_000, help="requests of the soak (serve_soak)"
    )


class Server:
    """`t2t-serve --port=0 ARGS` as a subprocess, its URL read from its log."""

    def __init__(self, *args: str):
        env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "t2t_lite.cli.serve", "--port=0", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.url, self.log = "", []
        ready = threading.Event()

        def read():
            for line in self.process.stderr:
                self.log.append(line)
                match = re.search(r"serving on (http://\S+)", line)
                if match:
                    self.url = match.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        ready.wait(600)
        if not self.url:
            self.stop()
            raise RuntimeError("t2t-serve did not start:\n" + "".join(self.log[-20:]))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return round(kb / 1024, 1)

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(120)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(url: str, sentences: list[str], clients: int) -> tuple[float, list[float]]:
    """(seconds, per-request latencies) of `clients` clients sending one sentence each."""
    import aiohttp

    queue = iter(sentences)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client():
            for sentence in queue:
                start = time.perf_counter()
                async with http.post(url + "/translate", json={"text": sentence}) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"status {r.status} for {sentence!r}")
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - start, latencies


def run(args: argparse.Namespace) -> list[dict]:
    """The load test and/or the soak, as --mode says."""
    rows = run_load(args) if args.mode in ("load", "all") else []
    return rows + (run_soak(args) if args.mode in ("soak", "all") else [])


def run_load(args: argparse.Namespace) -> list[dict]:
    """sentences/s and latency at each --clients, and the ratio to t2t-translate's path."""
    src, _ = _test_set(args)
    translator, _ = _translator(args)
    translator.translate(src[:64], beam_size=args.beam_size)  # traces the search
    start = time.perf_counter()
    translator.translate(src, beam_size=args.beam_size)
    baseline = len(src) / (time.perf_counter() - start)
    del translator
    rows = [
        {
            "system": "t2t-translate",
            "what": f"one file, beam {args.beam_size}",
            "sentences": len(src),
            "sentences_per_s": round(baseline, 1),
        }
    ]
    print(format_row(rows[0]), flush=True)
    server = _start(args)
    try:
        asyncio.run(_load(server.url, src[:32], 8))  # warm-up
        for clients in args.clients:
            seconds, latencies = asyncio.run(_load(server.url, src, clients))
            rate = len(src) / seconds
            row = {
                "system": "t2t-serve",
                "what": f"{clients} clients x 1 sentence, beam {args.beam_size}",
                "sentences": len(src),
                "sentences_per_s": round(rate, 1),
                "p50_ms": round(1000 * _percentile(latencies, 0.5), 1),
                "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
                "vs_translate": round(rate / baseline, 3),
            }
            rows.append(row)
            print(format_row(row), flush=True)
    finally:
        server.stop()
    return rows


def _start(args: argparse.Namespace, *extra: str) -> Server:
    flags = [f"--model_dir={args.model_dir}", f"--beam_size={args.beam_size}"]
    flags += [f"--batch_window_ms={args.batch_window_ms}", *extra]
    if args.checkpoint:
        flags.append(f"--checkpoint={args.checkpoint}")
    return Server(*flags)


# Soak request kinds: (name, weight, the status expected; None = the client disconnects).
KINDS = [
    ("valid", 50, 200),
    ("oversized_body", 8, 413),
    ("too_many_lines", 8, 413),
    ("invalid_utf8", 8, 400),
    ("malformed_json", 8, 400),
    ("unknown_option", 8, 400),
    ("disconnect", 10, None),
]


def _soak_body(kind: str, sentence: str) -> bytes:
    if kind == "oversized_body":
        return json.dumps({"text": [sentence] * 2000}).encode()[: SOAK_LIMITS["max_body_bytes"] * 2]
    if kind == "too_many_lines":
        return json.dumps({"text": [sentence] * (SOAK_LIMITS["max_lines"] + 1)}).encode()
    if kind == "invalid_utf8":
        return b'{"text": "' + sentence.encode()[:10] + b'\xff\xfe"}'
    if kind == "malformed_json":
        return json.dumps({"text": sentence}).encode()[:-2]
    if kind == "unknown_option":
        return json.dumps({"text": sentence, "beam": 2}).encode()
    return json.dumps({"text": sentence}).encode()


async def _soak(url: str, sentences: list[str], expected: dict, count: int, seed: int = 0):
    """Counts of (kind, outcome) over `count` requests from 16 clients."""
    import aiohttp

    rng = random.Random(seed)
    names = [k for k, _, _ in KINDS]
    plan = rng.choices(names, weights=[w for _, w, _ in KINDS], k=count)
    want = {k: status for k, _, status in KINDS}
    host, port = url.removeprefix("http://").rsplit(":", 1)
    outcomes: dict[tuple[str, str], int] = {}
    todo = iter(enumerate(plan))

    def note(kind: str, outcome: str) -> None:
        outcomes[(kind, outcome)] = outcomes.get((kind, outcome), 0) + 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as http:

        async def client():
            for i, kind in todo:
                sentence = sentences[i % len(sentences)]
                body = _soak_body(kind, sentence)
                if want[kind] is None:  # send, then hang up before the answer
                    _, writer = await asyncio.open_connection(host, int(port))
                    writer.write(
                        b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body)
                    )
                    await writer.drain()
                    await asyncio.sleep(rng.random() * 0.05)
                    writer.close()
                    note(kind, "sent")
                    continue
                try:
                    async with http.post(url + "/translate", data=body) as r:
                        answer = await r.read()
                        status = r.status
                except aiohttp.ClientError as e:
                    note(kind, f"client error {type(e).__name__}")
                    continue
                if status != want[kind]:
                    note(kind, f"status {status}")
                elif kind == "valid" and json.loads(answer)["results"][0][
                    "translation"
                ] != expected.get(sentence):
                    note(kind, "other translation")
                else:
                    note(kind, "ok")

        await asyncio.gather(*(client() for _ in range(16)))
    return outcomes


def run_soak(args: argparse.Namespace) -> list[dict]:
    """--soak_requests mixed requests; every status checked, RSS before and after."""
    src, _ = _test_set(args)
    sentences = src[:200]
    limits = [f"--{name}={value}" for name, value in SOAK_LIMITS.items()]
    server = _start(args, *limits)
    try:
        expected = {}

        async def reference():
            import aiohttp

            async with aiohttp.ClientSession() as http:
                for sentence in sentences:
                    async with http.post(server.url + "/translate", json={"text": sentence}) as r:
                        expected[sentence] = (await r.json())["results"][0]["translation"]

        asyncio.run(reference())
        before = server.rss_mb()
        start = time.perf_counter()
        outcomes = asyncio.run(_soak(server.url, sentences, expected, args.soak_requests))
        seconds = time.perf_counter() - start
        after = server.rss_mb()
        alive = server.process.poll() is None
    finally:
        status = server.stop()
    bad = {f"{k}: {o}": n for (k, o), n in sorted(outcomes.items()) if o not in ("ok", "sent")}
    row = {
        "system": "t2t-serve",
        "what": "soak",
        "requests": args.soak_requests,
        "seconds": round(seconds, 1),
        "unexpected": sum(bad.values()),
        "alive": alive,
        "exit_status": status,
        "rss_mb_before": before,
        "rss_mb_after": after,
    }
    print(format_row(row), flush=True)
    for (kind, outcome), n in sorted(outcomes.items()):
        print(f"  {kind}: {outcome} x{n}", flush=True)
    return [row]
