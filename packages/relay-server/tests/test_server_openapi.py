"""The OpenAPI document, the offline Swagger UI, health, readiness and metrics (SPEC S9.8, S9.9)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from .conftest import World

PUBLIC = {
    "/api/auth/login",
    "/api/auth/logout",
    "/api/version",
    "/healthz",
    "/livez",
    "/readyz",
    "/metrics",
    # The demo webhook sink (S10.1 demo-data): Relay's own outbound webhooks cannot log in.
    "/api/simulator/sink/{name}",
}


async def test_openapi_document(client: AsyncTestClient[Any]) -> None:
    """/api/openapi.json is OpenAPI 3.1 "Relay API" with PascalCase operation ids and security schemes."""
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "Relay API"
    assert {"bearerAuth", "cookieAuth"} <= set(doc["components"]["securitySchemes"])
    operation_ids = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", op) for op in operation_ids), operation_ids
    assert "AcknowledgeAlert" in operation_ids
    assert "IngestAlertmanager" in operation_ids
    for path in (
        "/api/routes",
        "/api/rotations/{rotation_id}/overrides",
        "/api/calendar",
        "/api/channels/types",
    ):
        assert path in doc["paths"], path


async def test_every_protected_operation_requires_authentication(client: AsyncTestClient[Any]) -> None:
    """Every documented non-public, non-intake operation answers 401 without credentials."""
    doc = (await client.get("/api/openapi.json")).json()
    checked = 0
    for path, item in doc["paths"].items():
        if path in PUBLIC or path.startswith("/api/integrations/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in item:
            response = await client.request(method.upper(), concrete)
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["error"] == "unauthorized"
            checked += 1
    assert checked > 60


async def test_swagger_ui_is_served_offline(client: AsyncTestClient[Any]) -> None:
    """/docs serves Swagger UI whose scripts and styles come from Relay itself."""
    pytest.importorskip("swagger_ui_bundle")
    page = await client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), asset  # no CDN
        assert (await client.get(asset)).status_code == 200, asset


async def test_healthz(client: AsyncTestClient[Any]) -> None:
    """/healthz answers 200 {"status": "ok"}."""
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(world: World, client: AsyncTestClient[Any]) -> None:
    """/readyz is 200 while storage answers and 503 not_ready when it does not."""
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    world.storage.down = True
    not_ready = await client.get("/readyz")
    world.storage.down = False
    assert not_ready.status_code == 503
    assert not_ready.json()["status"] == "not_ready"


async def test_metrics_exposition(client: AsyncTestClient[Any]) -> None:
    """/metrics is Prometheus text with the HTTP latency histogram labelled by route template."""
    await client.get("/api/alerts/123")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'relay_http_request_duration_seconds_count{method="GET",route="/api/alerts/{group_id}"}'
        in response.text
    )
    assert "relay_build_info" in response.text


async def test_version(client: AsyncTestClient[Any]) -> None:
    """/api/version is public and names the database kind."""
    body = (await client.get("/api/version")).json()
    assert set(body) == {"version", "commit", "python", "database"}
