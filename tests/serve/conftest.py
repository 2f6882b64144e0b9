"""A real t2t-serve server on a free loopback port, run in a thread of the test process."""

import asyncio
import json
import threading
import urllib.error
import urllib.request

import pytest

from t2t_lite.serve.request import Limits
from t2t_lite.serve.server import ServeSettings, make_service, serve

# Small limits, so that the tests reach each of them with small bodies.
LIMITS = Limits(max_body_bytes=4096, max_lines=8, max_chars=200, max_beam_size=4)


class RunningServer:
    """`serve()` in a thread with its own event loop; `url` once ready, `close()` to stop."""

    def __init__(self, translator, settings: ServeSettings):
        self.translator = translator
        self.settings = settings
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the server did not start")

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        self.service = make_service(self.translator, self.settings, model="tiny")

        def ready(url):
            self.url = url
            self._ready.set()

        await serve(self.service, self.settings, self.stop, ready)

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def server(translator):
    """A server over the tiny model: port 0 (a free one), 20 ms window, small limits."""
    settings = ServeSettings(port=0, window_ms=20, max_batch_sentences=16, limits=LIMITS)
    running = RunningServer(translator, settings)
    yield running
    running.close()


def request(url: str, body: bytes | dict | None = None, method: str | None = None):
    """`(status, headers, body)` of one HTTP request (a dict body is sent as JSON); the body
    is parsed as JSON when the answer is JSON."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    if headers.get_content_type() == "application/json":
        return status, headers, json.loads(raw)
    return status, headers, raw.decode()
