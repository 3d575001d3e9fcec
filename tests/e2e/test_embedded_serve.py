"""``relay serve --demo`` as a real process: the first-run path of the README, end to end."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``python -m relay_server serve`` subprocess whose stdout is read line by line."""

    def __init__(self, data_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env["RELAY_DATA_DIR"] = str(data_dir)
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay_server", "serve", "--demo", "--port", str(port)],
            cwd=data_dir.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, deadline: float) -> re.Match[str]:
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.output.append(line)
            if match := regex.search(line):
                return match
        pytest.fail(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.output))

    def wait_healthy(self, deadline: float) -> None:
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "\n".join(self.output)
            try:
                if httpx.get(url, timeout=1).json() == {"status": "ok"}:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{url} did not answer within {STARTUP_SECONDS} s")

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed after 30 s) once all output has been read."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", _free_port())
    try:
        yield srv
    finally:
        srv.kill()


def _parse_curl(command: str) -> tuple[str, dict[str, str], str]:
    """URL, headers and body of the printed ``curl -X POST <url> -H ... -d <body>``."""
    args = shlex.split(command)
    assert args[0] == "curl"
    url = next(a for a in args if a.startswith("http"))
    headers = dict(args[i + 1].split(": ", 1) for i, a in enumerate(args) if a == "-H")
    body = args[args.index("-d") + 1]
    return url, headers, body


def test_serve_demo_accepts_the_printed_alert_and_stops_on_sigterm(server: Server) -> None:
    """serve --demo prints a login, a token and a curl; the curl's alert is accepted; SIGTERM exits 0."""
    deadline = time.monotonic() + STARTUP_SECONDS
    login = server.wait_for(r"Admin login:\s+(\S+) / (\S+)", deadline)
    assert login[1] == "admin"
    assert len(login[2]) >= 10
    token = server.wait_for(r"\(alertmanager\): (rly_r_[A-Za-z0-9_-]+)", deadline)[1]
    curl = server.wait_for(r"^\s*(curl .*)$", deadline)[1]
    server.wait_healthy(deadline)

    url, headers, body = _parse_curl(curl)
    assert url == f"http://127.0.0.1:{server.port}/api/integrations/alertmanager"
    assert headers["Authorization"] == f"Bearer {token}"
    response = httpx.post(url, headers=headers, content=body, timeout=10)
    assert response.status_code == 200, response.text
    [item] = response.json()
    assert item["outcome"] == "created"
    assert item["assignee"] in ("alice", "bob")

    assert server.stop() == 0
    rest = [server.lines.get_nowait() for _ in range(server.lines.qsize())]
    logs = [json.loads(line) for line in server.output + rest if line.startswith("{")]
    events = {entry.get("event") for entry in logs}
    assert {"relay.server.starting", "relay.worker.started", "relay.scheduler.started"} <= events
    assert "relay.server.stopped" in events
    assert not [entry for entry in logs if token in json.dumps(entry)], "the token must not be logged"
