"""Databases for the storage tests: SQLite files in tmp_path and throwaway PostgreSQL databases.

PostgreSQL is expected at 127.0.0.1:5432 (user ``postgres``, trust auth), or wherever
``RELAY_TEST_POSTGRES_DSN`` points. When it is not reachable its tests are skipped, unless
``RELAY_REQUIRE_SERVICES=1`` (CI), which makes them fail (SPEC S10.9). Every database is created
for the tests and dropped afterwards: ``relay_test_<uuid>``.

Set-up that needs asyncio runs in a helper thread with its own event loop, so these fixtures
can be used from sync and async tests alike without touching the test's loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import sqlalchemy as sa

from relay_adapters.storage.sqlalchemy.schema import migrate
from relay_adapters.storage.sqlalchemy.tables import metadata

R = TypeVar("R")

POSTGRES_ADMIN_DSN = os.environ.get(
    "RELAY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def run_in_thread(coro: Coroutine[Any, Any, R]) -> R:
    """Run a coroutine to completion on a private event loop in another thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def database_url(admin_dsn: str, name: str) -> str:
    """The Relay URL of database ``name`` on the server of ``admin_dsn``."""
    return sa.make_url(admin_dsn).set(database=name).render_as_string(hide_password=False)


async def _ping(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=3)
    await conn.close()


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_postgres_database(admin_dsn: str) -> str:
    """Create an empty ``relay_test_<uuid>`` database; returns its name."""
    name = f"relay_test_{uuid.uuid4().hex[:16]}"
    run_in_thread(_admin(admin_dsn, f'CREATE DATABASE "{name}"'))
    return name


def drop_postgres_database(admin_dsn: str, name: str) -> None:
    """Drop a test database, disconnecting whoever is still connected."""
    run_in_thread(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> str:
    """A DSN for the ``postgres`` maintenance database; skips (or fails in CI) without a server."""
    try:
        run_in_thread(_ping(POSTGRES_ADMIN_DSN))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        target = sa.make_url(POSTGRES_ADMIN_DSN)
        message = (
            f"PostgreSQL not reachable at {target.host}:{target.port or 5432} ({type(exc).__name__}: {exc})"
        )
        if os.environ.get("RELAY_REQUIRE_SERVICES") == "1":
            pytest.fail(message + "; RELAY_REQUIRE_SERVICES=1 requires it")
        pytest.skip(message)
    return POSTGRES_ADMIN_DSN


@pytest.fixture(scope="module")
def postgres_database(postgres_admin_dsn: str) -> Iterator[str]:
    """A migrated PostgreSQL database shared by one test module; yields its URL."""
    name = create_postgres_database(postgres_admin_dsn)
    url = database_url(postgres_admin_dsn, name)
    try:
        run_in_thread(migrate(url))
        yield url
    finally:
        drop_postgres_database(postgres_admin_dsn, name)


async def _empty_tables(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    try:
        # Table names come from our own metadata, not from input.
        statements = [f'DELETE FROM "{table.name}"' for table in metadata.sorted_tables]  # noqa: S608
        await conn.execute("; ".join(statements))
    finally:
        await conn.close()


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The module's PostgreSQL database, emptied for this test."""
    run_in_thread(_empty_tables(postgres_database))
    return postgres_database


@pytest.fixture
def empty_postgres_url(postgres_admin_dsn: str) -> Iterator[str]:
    """A brand-new PostgreSQL database without any table, dropped after the test."""
    name = create_postgres_database(postgres_admin_dsn)
    try:
        yield database_url(postgres_admin_dsn, name)
    finally:
        drop_postgres_database(postgres_admin_dsn, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once and copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "relay.db"
    run_in_thread(migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh migrated SQLite file in tmp_path."""
    path = tmp_path / "relay.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    """A path for a SQLite database that does not exist yet."""
    return f"sqlite:///{tmp_path / 'data' / 'relay.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def sql_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database on each engine in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def empty_sql_url(request: pytest.FixtureRequest) -> str:
    """An empty database (no tables) on each engine in turn."""
    url: str = request.getfixturevalue(f"empty_{request.param}_url")
    return url
