"""The README's quick start, end to end: its first command as a real process, and CI running both.

The first command is taken from README.md's ``## Quick start`` block and run as written
(``python3 dev.py serve --demo``), from the repository root, with only the data directory and
the port moved aside through ``RELAY_*`` variables. ``dev.py`` is pointed at a view of the
environment the tests run in (``RELAY_VENV``) whose install stamp is current, so it goes
straight to ``relay serve`` and never installs anything: in CI that environment is the fresh one
``python3 dev.py test`` just created.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
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

STARTUP_SECONDS = 60
ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    """The command lines of the first code block under README.md's ``## Quick start``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```\w*\n(.*?)```", section, re.S)
    assert match is not None, "the Quick start section has no code block"
    return [line.strip() for line in match[1].splitlines() if line.strip()]


def test_readme_quick_start_is_two_commands_and_ci_runs_them() -> None:
    """Exactly two commands: start the demo, run the whole suite; .ci/run runs the second as written."""
    serve, test = quick_start_commands()
    assert shlex.split(serve)[-2:] == ["serve", "--demo"]
    assert shlex.split(test)[-1] == "test"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci, f"{test!r} is not a line of .ci/run"
    # The first one runs in this module's end-to-end test, below.


def _venv_view(tmp_path: Path, python3: str) -> Path:
    """A directory dev.py accepts as an up-to-date environment: this environment's bin + a stamp."""
    view = tmp_path / "venv"
    view.mkdir()
    (view / "bin").symlink_to(Path(sys.executable).parent, target_is_directory=True)
    probe = subprocess.run(
        [python3, "-c", "import dev, json; print(json.dumps([dev.STAMP_NAME, dev.fingerprint()]))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stamp_name, fingerprint = json.loads(probe.stdout)
    (view / stamp_name).write_text(json.dumps({"fingerprint": fingerprint, "groups": []}))
    return view


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """The README's first command as a subprocess whose stdout is read line by line."""

    def __init__(self, command: str, data_dir: Path, port: int, venv: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.pop("VIRTUAL_ENV", None)
        env["RELAY_DATA_DIR"] = str(data_dir)
        env["RELAY_SERVER__PORT"] = str(port)
        env["RELAY_VENV"] = str(venv)
        self.port = port
        self.proc = subprocess.Popen(
            shlex.split(command),
            cwd=ROOT,
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
    command = quick_start_commands()[0]
    python3 = shutil.which(shlex.split(command)[0])
    if python3 is None:
        pytest.fail(f"{shlex.split(command)[0]} is not on PATH: the README's first command cannot run")
    srv = Server(command, tmp_path / "data", _free_port(), _venv_view(tmp_path, python3))
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

    url, headers, _body = _parse_curl(curl)
    assert url == f"http://127.0.0.1:{server.port}/api/integrations/alertmanager"
    assert headers["Authorization"] == f"Bearer {token}"
    # The printed command itself, run by curl (as a user would paste it).
    assert shutil.which("curl"), "curl is needed to run the printed command"
    sent = subprocess.run(
        [*shlex.split(curl), "--silent", "--show-error", "--write-out", "\n%{http_code}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    response_body, _, status = sent.stdout.rpartition("\n")
    assert status == "200", sent.stdout
    [item] = json.loads(response_body)
    assert item["outcome"] == "created"
    assert item["assignee"] in ("alice", "bob")

    assert server.stop() == 0
    rest = [server.lines.get_nowait() for _ in range(server.lines.qsize())]
    logs = [json.loads(line) for line in server.output + rest if line.startswith("{")]
    events = {entry.get("event") for entry in logs}
    assert {"relay.server.starting", "relay.worker.started", "relay.scheduler.started"} <= events
    assert "relay.server.stopped" in events
    assert not [entry for entry in logs if token in json.dumps(entry)], "the token must not be logged"
