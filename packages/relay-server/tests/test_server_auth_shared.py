"""Login throttling and session revocation are shared by web processes through Redis (S9.2,
S13.5): two apps over the same storage and Redis namespace stand in for two processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from relay_adapters.settings import AuthSettings, RedisSettings, RelaySettings, ServerSettings
from relay_server.app import create_app

from .conftest import PASSWORD, World, build_world

REDIS_URL = os.environ.get("RELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    """A private key namespace on the shared Redis; only its own keys are removed afterwards."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        message = f"Redis is not reachable at {REDIS_URL}: {type(exc).__name__}"
        if os.environ.get("RELAY_REQUIRE_SERVICES") == "1":
            pytest.fail(message + "; RELAY_REQUIRE_SERVICES=1 requires it")
        pytest.skip(message)
    name = f"relay-test-{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        keys = [key async for key in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def _two_processes(namespace: str) -> tuple[World, Any]:
    settings = RelaySettings(
        server=ServerSettings(public_base_url="https://relay.test"),
        redis=RedisSettings(url=REDIS_URL, namespace=namespace),
        auth=AuthSettings(jwt_secret="s" * 40, login_account_max_failures=3, login_ip_max_failures=100),
    )
    world = await build_world(settings=settings)
    return world, create_app(relay=world.relay, settings=settings)


async def test_logout_in_one_process_ends_the_session_in_another(namespace: str) -> None:
    """A session revoked through one web process is refused by the other."""
    world, other_app = await _two_processes(namespace)
    async with AsyncTestClient(app=world.app) as first, AsyncTestClient(app=other_app) as second:
        login = await first.post("/api/auth/login", json={"username": "viewer", "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        assert (await second.get("/api/auth/me", headers=headers)).status_code == 200
        assert (await first.post("/api/auth/logout", headers=headers)).status_code == 200
        refused = await second.get("/api/auth/me", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"


async def test_failed_logins_in_one_process_block_the_account_in_another(namespace: str) -> None:
    """Failures counted by one web process block the account in the other (429 + Retry-After)."""
    world, other_app = await _two_processes(namespace)
    async with AsyncTestClient(app=world.app) as first, AsyncTestClient(app=other_app) as second:
        for _ in range(3):
            failed = await first.post("/api/auth/login", json={"username": "viewer", "password": "wrong-one"})
            assert failed.status_code == 401
        blocked = await second.post("/api/auth/login", json={"username": "viewer", "password": PASSWORD})
        assert blocked.status_code == 429, blocked.text
        assert int(blocked.headers["retry-after"]) > 0
        assert blocked.json()["retry_after"] == int(blocked.headers["retry-after"])
        # Another account is not affected.
        other = await second.post("/api/auth/login", json={"username": "manager", "password": PASSWORD})
        assert other.status_code == 200
