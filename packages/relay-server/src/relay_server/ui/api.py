"""In-process calls from the UI's pages to the JSON API (SPEC S11.1: the UI uses the same API).

A page handler forwards the browser's cookies to ``/api/...`` on the same ASGI application, so
the API's authentication, RBAC and serialization decide what a page shows: the UI never reads
storage on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from litestar import Request

from relay_server.auth import CSRF_COOKIE, CSRF_HEADER

Query = Mapping[str, Any] | Sequence[tuple[str, Any]]


class ApiFailure(Exception):
    """A non-2xx answer of the JSON API."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body if isinstance(body, dict) else {}
        super().__init__(f"{status} {self.body.get('error', '')}")

    @property
    def code(self) -> str:
        return str(self.body.get("error", ""))

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) or f"HTTP {self.status}"


class Api:
    """Calls the JSON API of ``request.app`` as the browser that made ``request``."""

    def __init__(self, request: Request[Any, Any, Any]) -> None:
        self._request = request
        self._app = request.app

    def _headers(self, body: bytes | None) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = [(b"accept", b"application/json")]
        cookie = self._request.headers.get("cookie")
        if cookie:
            headers.append((b"cookie", cookie.encode("latin-1")))
        csrf = self._request.cookies.get(CSRF_COOKIE)
        if csrf:
            headers.append((CSRF_HEADER.lower().encode(), csrf.encode("latin-1")))
        request_id = self._request.headers.get("x-request-id")
        if request_id:
            headers.append((b"x-request-id", request_id.encode("latin-1")))
        if body is not None:
            headers.append((b"content-type", b"application/json"))
            headers.append((b"content-length", str(len(body)).encode()))
        return headers

    async def call(self, method: str, path: str, query: Query | None = None, data: Any = None) -> Any:
        """One API call; the decoded JSON answer, or :class:`ApiFailure` for a non-2xx status."""
        body = None if data is None else json.dumps(data).encode()
        items = list(query.items()) if isinstance(query, Mapping) else list(query or ())
        query_string = urlencode([(k, v) for k, v in items if v not in (None, "")], doseq=True)
        client = self._request.scope.get("client") or ("127.0.0.1", 0)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": self._request.scope.get("scheme", "http"),
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query_string.encode(),
            "headers": self._headers(body),
            "client": client,
            "server": self._request.scope.get("server") or ("127.0.0.1", 80),
            "state": {},
            "extensions": {},
        }
        sent = {"done": False}

        async def receive() -> dict[str, Any]:
            if not sent["done"]:
                sent["done"] = True
                return {"type": "http.request", "body": body or b"", "more_body": False}
            return {"type": "http.disconnect"}

        status = {"code": 500}
        chunks: list[bytes] = []

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self._app(scope, receive, send)  # type: ignore[arg-type]
        raw = b"".join(chunks)
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        if not 200 <= status["code"] < 300:
            raise ApiFailure(status["code"], decoded)
        return decoded

    async def get(self, path: str, query: Query | None = None) -> Any:
        return await self.call("GET", path, query)

    async def maybe(self, path: str, query: Query | None = None, default: Any = None) -> Any:
        """GET that answers ``default`` instead of failing (optional parts of a page)."""
        try:
            return await self.call("GET", path, query)
        except ApiFailure:
            return default
