"""Relay's pytest plugin (entry point ``pytest11: relay``): fixtures for Relay and plugin tests.

Fixtures:

- ``fake_clock``: a :class:`~relay_core.testing.fakes.FakeClock` at 2026-06-01T07:00:00Z.
- ``recording_channel``: a fresh :class:`~relay_core.testing.fakes.RecordingChannel`.
- ``local_http_server``: a :class:`LocalHttpServer` on ``127.0.0.1`` with an ephemeral port.

:class:`LocalHttpServer` is test infrastructure and the only code in ``relay_core`` that opens
a socket; production code in ``relay_core`` never imports this module.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

import attrs
import pytest

# Assertions in the contract suites should explain themselves like test-module assertions.
pytest.register_assert_rewrite("relay_core.testing.contracts")

from relay_core.testing.fakes import FakeClock, RecordingChannel  # noqa: E402

__all__ = [
    "DEFAULT_FAKE_NOW",
    "CannedResponse",
    "LocalHttpServer",
    "RecordedRequest",
    "fake_clock",
    "local_http_server",
    "recording_channel",
]

DEFAULT_FAKE_NOW: Final = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)
_HANG_LIMIT_SECONDS: Final = 60.0
_POLL_INTERVAL_SECONDS: Final = 0.02


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    """The path without the query string, e.g. ``/alerts``."""
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    """Header names lower-cased."""
    body: bytes

    @property
    def target(self) -> str:
        """The path with its query string, as sent."""
        query = urllib.parse.urlencode(self.query, doseq=True)
        return f"{self.path}?{query}" if query else self.path

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or ``None``."""
        return self.headers.get(name.lower())


@attrs.frozen(kw_only=True)
class CannedResponse:
    """What the server answers."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    hang: bool = False
    """Accept the request but never answer (until the server stops): exercises client timeouts."""


def _canned(
    status: int,
    body: bytes | str | Mapping[str, Any] | list[Any],
    headers: Mapping[str, str] | None,
    hang: bool,
) -> CannedResponse:
    merged = dict(headers or {})
    if isinstance(body, bytes):
        payload = body
    elif isinstance(body, str):
        payload = body.encode()
        merged.setdefault("Content-Type", "text/plain; charset=utf-8")
    else:
        payload = json.dumps(body).encode()
        merged.setdefault("Content-Type", "application/json")
    return CannedResponse(status=status, body=payload, headers=merged, hang=hang)


class LocalHttpServer:
    """A recording HTTP server in a background thread, for adapter and plugin tests.

    Answers come, in order of preference, from the one-shot queue filled by :meth:`enqueue`,
    from a route set by :meth:`respond` with ``path`` (and optionally ``method``), and from the
    default set by :meth:`respond` without ``path`` (``200`` with an empty body at first).
    Every request is recorded before it is answered, so a client that got its response can
    inspect :attr:`requests` at once.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._queue: list[CannedResponse] = []
        self._routes: dict[tuple[str | None, str], CannedResponse] = {}
        self._default = CannedResponse()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> LocalHttpServer:
        """Bind an ephemeral port and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _QuietServer((self._host, 0), _make_handler(self))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_SECONDS},  # a quick stop() keeps test teardown fast
            name="relay-local-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving and close the socket."""
        self._release.set()
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> LocalHttpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- address -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LocalHttpServer is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://{self._host}:{self.port}"

    # --- answers and records -----------------------------------------------------------

    def respond(
        self,
        status: int = 200,
        body: bytes | str | Mapping[str, Any] | list[Any] = b"",
        headers: Mapping[str, str] | None = None,
        *,
        path: str | None = None,
        method: str | None = None,
        hang: bool = False,
    ) -> None:
        """Set the lasting answer: for ``path`` (and ``method``) when given, else the default.

        A mapping or list body is sent as JSON, a string as UTF-8 text.
        """
        canned = _canned(status, body, headers, hang)
        with self._lock:
            if path is None:
                self._default = canned
            else:
                self._routes[(method.upper() if method else None, path)] = canned

    def enqueue(
        self,
        status: int = 200,
        body: bytes | str | Mapping[str, Any] | list[Any] = b"",
        headers: Mapping[str, str] | None = None,
        *,
        hang: bool = False,
    ) -> None:
        """Queue a one-shot answer for the next request (first in, first out)."""
        canned = _canned(status, body, headers, hang)
        with self._lock:
            self._queue.append(canned)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request; fails when none arrived."""
        with self._lock:
            if not self._requests:
                raise AssertionError("the local HTTP server received no request")
            return self._requests[-1]

    def clear(self) -> None:
        """Forget recorded requests and queued answers (routes and the default stay)."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()

    # --- used by the handler thread ----------------------------------------------------

    def _record_and_choose(self, request: RecordedRequest) -> CannedResponse:
        with self._lock:
            self._requests.append(request)
            if self._queue:
                return self._queue.pop(0)
            for key in ((request.method, request.path), (None, request.path)):
                if key in self._routes:
                    return self._routes[key]
            return self._default

    def _wait_released(self) -> None:
        self._release.wait(_HANG_LIMIT_SECONDS)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout tests) is expected; do not print its traceback."""


def _make_handler(owner: LocalHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            body = self._read_body()
            parsed = urllib.parse.urlsplit(self.path)
            request = RecordedRequest(
                method=self.command,
                path=parsed.path,
                query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
            )
            canned = owner._record_and_choose(request)
            if canned.hang:
                owner._wait_released()
                self.close_connection = True
                return
            self.send_response(canned.status)
            for name, value in canned.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(canned.body)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
            """Keep test output quiet."""

    return Handler


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fake clock at 2026-06-01T07:00:00Z that moves only through ``advance``/``set``."""
    return FakeClock(DEFAULT_FAKE_NOW)


@pytest.fixture
def recording_channel() -> RecordingChannel:
    """A fresh in-memory ``recording`` channel."""
    return RecordingChannel()


@pytest.fixture
def local_http_server() -> Iterator[LocalHttpServer]:
    """A started :class:`LocalHttpServer`, stopped after the test."""
    server = LocalHttpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def relay(fake_clock: FakeClock, recording_channel: RecordingChannel) -> Any:
    """An in-process Relay: in-memory storage, the fake clock and the recording channel.

    Built-in intake sources and channels of installed plugins are available through
    ``relay.registry``; post payloads with ``relay.ingest``, move time with
    ``fake_clock.advance``, run ``relay.tick()`` and ``relay.run_until_idle()``, then
    inspect ``recording_channel.sent``.
    """
    from relay_core.bootstrap import bootstrap
    from relay_core.plugins import PluginRegistry, make_plugin_manager

    registry = PluginRegistry(make_plugin_manager())
    return bootstrap(clock=fake_clock, channels=[recording_channel], registry=registry)
