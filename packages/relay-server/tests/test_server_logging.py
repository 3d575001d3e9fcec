"""Logging hygiene (SPEC S13.7): server logs never carry tokens, passwords or full phone numbers."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from .conftest import PASSWORD, World

AM = json.loads((Path(__file__).parent / "fixtures" / "alertmanager_v4.json").read_text())


async def test_a_run_logs_no_secrets(
    world: World, client: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Intake, login, token creation, failures and an internal error leave no secret in the server's logs."""
    route_token = world.tokens["route_alertmanager"]
    with caplog.at_level(logging.DEBUG):
        await client.post(
            "/api/integrations/alertmanager", json=AM, headers=world.bearer("route_alertmanager")
        )
        await client.post(
            "/api/integrations/alertmanager", json=AM, headers={"Authorization": "Bearer rly_r_wrong"}
        )
        login = await client.post("/api/auth/login", json={"username": "manager", "password": PASSWORD})
        await client.post("/api/auth/login", json={"username": "manager", "password": "wrong-password-123"})
        session = login.json()["token"]
        created = await client.post(
            "/api/profile/tokens",
            json={"name": "x", "scopes": ["*"]},
            headers={"Authorization": f"Bearer {session}"},
        )
        world.storage.down = True
        await client.get("/api/alerts", headers={"Authorization": f"Bearer {session}"})
        world.storage.down = False
        await client.get("/api/admin/users", headers=world.auth("admin"))
    # httpx is the test's own client logging its request lines; everything else is the server.
    server_text = "\n".join(
        r.getMessage() + str(r.exc_text or "") for r in caplog.records if r.name != "httpx"
    )
    for secret in (
        route_token,
        PASSWORD,
        "wrong-password-123",
        session,
        created.json()["token"],
        "+15550001111",
    ):
        assert secret not in server_text
