"""Error bodies are always {"error", "message", "details"} (SPEC S9.5)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from litestar import get
from litestar.testing import AsyncTestClient

from relay_core.domain.errors import Conflict

from .conftest import World


async def test_unknown_path_is_json_404(client: AsyncTestClient[Any]) -> None:
    """An unknown path answers a JSON not_found body."""
    response = await client.get("/api/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "not found", "details": []}


async def test_wrong_method_is_json_405(client: AsyncTestClient[Any]) -> None:
    """A known path with the wrong method answers a JSON method_not_allowed body."""
    response = await client.delete("/api/auth/login")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response.json()["details"] == []


async def test_relay_error_maps_status_and_code(world: World, client: AsyncTestClient[Any]) -> None:
    """A domain RelayError raised by a handler keeps its status, code and message."""

    @get("/api/test-conflict", sync_to_thread=False)
    def conflict() -> None:
        raise Conflict("alert group is resolved")

    world.app.register(conflict)
    response = await client.get("/api/test-conflict")
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "message": "alert group is resolved", "details": []}


async def test_unhandled_error_is_500_with_error_id(
    world: World, client: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception is a 500 internal_error whose error_id is logged, without the token."""

    @get("/api/test-boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("kaboom")

    world.app.register(boom)
    secret = world.tokens["all"]
    with caplog.at_level(logging.ERROR, logger="relay.server"):
        response = await client.get("/api/test-boom", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert body["details"] == []
    uuid.UUID(body["error_id"])
    assert body["error_id"] in caplog.text
    assert secret not in caplog.text
    assert "kaboom" not in response.text


async def test_resource_body_with_wrong_content_type_is_415(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """Resource endpoints refuse non-JSON bodies with 415."""
    response = await client.post(
        "/api/auth/login",
        content=b"username=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


async def test_resource_body_malformed_json_is_invalid_json(client: AsyncTestClient[Any]) -> None:
    """A malformed JSON resource body answers 400 invalid_json."""
    response = await client.post(
        "/api/auth/login", content=b'{"username": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


async def test_unknown_fields_are_named(client: AsyncTestClient[Any]) -> None:
    """Unknown fields in a resource body are 400 validation_error naming each one."""
    response = await client.post("/api/auth/login", json={"username": "a", "password": "b", "remember": True})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert {"loc": "$.remember", "message": "unknown field", "type": "extra_forbidden"} in body["details"]


async def test_field_errors_carry_locations(client: AsyncTestClient[Any]) -> None:
    """A missing required field is reported with its location and without echoing values."""
    response = await client.post("/api/auth/login", json={"username": "a"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["details"][0]["loc"] == "$.password" or "password" in body["details"][0]["message"]


async def test_request_id_is_echoed(client: AsyncTestClient[Any]) -> None:
    """X-Request-Id is echoed, and security headers are set on every answer."""
    response = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
