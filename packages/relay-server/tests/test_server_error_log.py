"""Every 5xx answer has an ``error_id`` that the JSON log line of the failure carries (SPEC S10.6)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from litestar import get
from litestar.testing import AsyncTestClient

from relay_adapters.logging import configure_logging
from relay_adapters.settings import LoggingSettings, RelaySettings

from .conftest import World


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The process logging configured as in production (JSON lines), into a buffer; restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_structlog = structlog.get_config()
    stream = io.StringIO()
    configure_logging(RelaySettings(logging=LoggingSettings(level="INFO", format="json")), stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


async def test_a_500_logs_one_json_line_with_its_error_id_and_traceback(
    world: World, client: AsyncTestClient[Any], json_log: io.StringIO
) -> None:
    @get("/api/test-explode", sync_to_thread=False)
    def explode() -> None:
        raise ZeroDivisionError("nothing to divide")

    world.app.register(explode)
    secret = world.tokens["all"]
    responses = [
        await client.get("/api/test-explode", headers={"Authorization": f"Bearer {secret}"}) for _ in range(2)
    ]
    for response in responses:
        assert response.status_code == 500
        assert response.json()["error"] == "internal_error"
        assert response.json()["message"] == "Internal server error"
        assert re.fullmatch(r"[0-9a-f]{32}", response.json()["error_id"])
    ids = [r.json()["error_id"] for r in responses]
    assert ids[0] != ids[1], "each failure has its own id"

    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    for error_id in ids:
        [entry] = [line for line in lines if line.get("error_id") == error_id]
        assert entry["level"] == "error"
        assert entry["logger"] == "relay.server"
        assert entry["event"].startswith("relay.http.unhandled_error")
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", entry["ts"])
        assert "ZeroDivisionError" in entry["exception"]
        assert "explode" in entry["exception"], "the traceback is logged with the id"
    assert secret not in json_log.getvalue()
