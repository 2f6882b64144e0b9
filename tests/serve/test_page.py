"""The page of GET / in headless Chromium, driven over the DevTools protocol: type a sentence,
click Translate, read the translation back.

Uses Debian's `chromium` (installed by .ci/run); skipped with a reason where it is missing,
except in CI (`CI` set), where its absence fails.
"""

import asyncio
import base64
import json
import os
import shutil
import subprocess

import aiohttp
import pytest

CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)


class Page:
    """One tab of a headless Chromium, over its DevTools websocket."""

    def __init__(self, session: aiohttp.ClientSession, websocket):
        self.session, self.websocket = session, websocket
        self._id = 0

    async def call(self, method: str, **params):
        """Sends one DevTools command and returns its result (events are skipped)."""
        self._id += 1
        await self.websocket.send_str(
            json.dumps({"id": self._id, "method": method, "params": params})
        )
        while True:
            message = json.loads((await self.websocket.receive()).data)
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 60):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        for _ in range(int(timeout / 0.05)):
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise TimeoutError(expression)

    async def click(self, selector: str):
        """A real mouse click in the middle of the element."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                clickCount=1,
            )  # fmt: skip


async def _devtools_port(profile: str, process: subprocess.Popen) -> int:
    """The port Chromium writes into DevToolsActivePort (--remote-debugging-port=0)."""
    path = os.path.join(profile, "DevToolsActivePort")
    for _ in range(600):
        if os.path.exists(path):
            with open(path) as f:
                first = f.readline().strip()
            if first:
                return int(first)
        assert process.poll() is None, "chromium exited"
        await asyncio.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


def test_the_page_translates_what_is_typed(server, translator, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is needed in CI: .ci/run installs Debian's chromium")
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    profile = str(tmp_path / "profile")
    process = subprocess.Popen(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "chromium.log", "wb"),  # noqa: SIM115 (closed with the process)
    )  # fmt: skip
    lines = ["a dog runs", "the red ball"]

    async def go():
        port = await _devtools_port(profile, process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                target = next(t for t in await r.json() if t["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(session, ws)
                await page.call("Page.navigate", url=server.url + "/")
                await page.wait_for("document.readyState === 'complete' && location.href")
                assert await page.evaluate("document.title") == "t2t-serve"
                await page.evaluate("document.getElementById('text').focus()")
                await page.call("Input.insertText", text="\n".join(lines))
                await page.evaluate("document.getElementById('beam_size').value = '1'")
                await page.click("#translate")
                took = await page.wait_for(
                    "/ms/.test(document.getElementById('time').textContent)"
                    " && document.getElementById('time').textContent"
                )
                output = await page.evaluate("document.getElementById('output').textContent")
                shot = await page.call("Page.captureScreenshot", format="png")
                (tmp_path / "page.png").write_bytes(base64.b64decode(shot["data"]))
                return took, output

    try:
        took, output = asyncio.run(asyncio.wait_for(go(), 120))
    finally:
        process.terminate()
        process.wait(30)
    assert output.splitlines() == translator.translate(lines, beam_size=1)
    assert "server" in took
