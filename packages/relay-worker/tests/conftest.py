"""Fixtures of the worker tests: real Redis and PostgreSQL (skipped with a reason unless required),
SQLite files.

Redis is expected at ``RELAY_TEST_REDIS_URL`` (``redis://127.0.0.1:6379/0``), PostgreSQL at
``RELAY_TEST_POSTGRES_DSN`` (``postgresql://postgres@127.0.0.1:5432/postgres``). Each test gets
its own Redis key namespace and its own ``relay_test_<hex>`` database, both removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis
import sqlalchemy as sa

from relay_adapters.storage.sqlalchemy import migrate

REDIS_URL = os.environ.get("RELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_ADMIN_DSN = os.environ.get(
    "RELAY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def services_required() -> bool:
    return os.environ.get("RELAY_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when ``RELAY_REQUIRE_SERVICES=1`` (CI)."""
    if services_required():
        pytest.fail(f"{reason} (RELAY_REQUIRE_SERVICES=1)")
    pytest.skip(f"{reason}; set RELAY_REQUIRE_SERVICES=1 to make this a failure")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis server's URL, once it answered PING."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A Redis key namespace of this test only; its keys are deleted afterwards."""
    ns = f"relay-test-{secrets.token_hex(4)}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{ns}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database file."""
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    await migrate(url)
    return url


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A migrated, throwaway PostgreSQL database (dropped afterwards)."""
    name = f"relay_test_{secrets.token_hex(8)}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        target = sa.make_url(POSTGRES_ADMIN_DSN).render_as_string(hide_password=True)
        unavailable(f"PostgreSQL is not reachable at {target}: {exc}")
    url = sa.make_url(POSTGRES_ADMIN_DSN).set(database=name).render_as_string(hide_password=False)
    try:
        await migrate(url)
        yield url
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database of the kind named by the indirect parameter: ``sqlite`` or ``postgres``."""
    if request.param == "postgres":
        async with postgres_database() as url:
            yield url
    else:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        await migrate(url)
        yield url
