"""t2t-serve as a process: it answers, and SIGTERM finishes the request in flight, exit 0."""

import json
import re
import signal
import subprocess
import threading
import urllib.request

from tests.helpers import CLI_ENV, REPO, cli_command


class ServerProcess:
    """`python -m t2t_lite.cli.serve --port=0 ARGS`; `url` once it logs "serving on URL"."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            cli_command("serve", "--port=0", *args),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=CLI_ENV,
            text=True,
        )
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()  # keeps the pipe drained
        self._ready.wait(180)
        assert self.url, "\n".join(self.lines)

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            match = re.search(r"serving on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()


def test_sigterm_answers_the_request_in_flight_and_exits_0(model_dir):
    # A long window: the request is still waiting for its batch when SIGTERM arrives.
    server = ServerProcess(f"--model_dir={model_dir}", "--batch_window_ms=1500")
    try:
        answers = []

        def client():
            body = json.dumps({"text": ["a dog runs", "a cat"]}).encode()
            with urllib.request.urlopen(server.url + "/translate", body, timeout=60) as r:
                answers.append((r.status, json.load(r)))

        thread = threading.Thread(target=client)
        thread.start()
        threading.Event().wait(0.5)
        server.process.send_signal(signal.SIGTERM)
        thread.join(60)
        assert server.process.wait(60) == 0, "\n".join(server.lines)
    finally:
        if server.process.poll() is None:
            server.process.kill()
    ((status, body),) = answers
    assert status == 200
    assert len(body["results"]) == 2
    assert any("stopping" in line for line in server.lines)
