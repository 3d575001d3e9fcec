"""Alembic migrations on both engines: empty to head, check-schema, down and up again (SPEC S10.5)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from relay_adapters.storage.sqlalchemy import (
    SqlAlchemyUnitOfWorkFactory,
    async_url,
    check_schema,
    downgrade,
    make_engine,
    migrate,
    pending_migrations,
)
from relay_adapters.storage.sqlalchemy.schema import MIGRATIONS_DIR
from relay_adapters.storage.sqlalchemy.tables import metadata
from relay_core.domain.model import AlertGroup, NotificationIntent, ProcessHeartbeat, Team

NOW = dt.datetime(2026, 5, 1, 8, 30, tzinfo=dt.UTC)


async def _write_some_rows(url: str) -> dict[str, int]:
    factory = SqlAlchemyUnitOfWorkFactory(url)
    try:
        async with factory() as uow:
            team = await uow.teams.add(Team(group_id=1, slug="ops", name="Ops"))
            group = await uow.alert_groups.add(
                AlertGroup(
                    team_id=team.id,
                    route_id=1,
                    source="alertmanager",
                    group_key="k",
                    group_key_hash="h",
                    first_seen_at=NOW,
                    last_seen_at=NOW,
                    next_action_at=NOW,
                )
            )
            await uow.intents.add(
                NotificationIntent(
                    idempotency_key=f"{group.id}:1:channel:notification:0",
                    group_id=group.id,
                    event_type="notification",
                    due_at=NOW,
                    created_at=NOW,
                )
            )
            await uow.commit()
        async with factory() as uow:
            return {"teams": await uow.teams.count(), "intents": await uow.intents.count()}
    finally:
        await factory.aclose()


async def _model_differences(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            def diff(sync_conn: sa.Connection) -> list[Any]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": False})
                return list(compare_metadata(context, metadata))

            return await conn.run_sync(diff)
    finally:
        await engine.dispose()


async def _write_heartbeat(url: str) -> dict[str, int]:
    factory = SqlAlchemyUnitOfWorkFactory(url)
    try:
        async with factory() as uow:
            await uow.process_heartbeats.add(
                ProcessHeartbeat(
                    process_id="host:1:abc", role="web", host="host", version="1", started_at=NOW, seen_at=NOW
                )
            )
            await uow.commit()
        async with factory() as uow:
            return {
                "teams": await uow.teams.count(),
                "process_heartbeats": await uow.process_heartbeats.count(),
            }
    finally:
        await factory.aclose()


def test_migrations_ship_inside_the_package() -> None:
    """The Alembic environment, template and versions live in the installed package."""
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")) == [
        "0001_initial.py",
        "0002_process_heartbeats.py",
    ]


async def test_empty_database_migrates_to_head(empty_sql_url: str) -> None:
    """An empty database has every migration pending, reaches head, and then checks clean."""
    assert await pending_migrations(empty_sql_url) == ["0001", "0002"]
    assert "missing table: alert_groups" in await check_schema(empty_sql_url)
    await migrate(empty_sql_url)
    assert await pending_migrations(empty_sql_url) == []
    assert await check_schema(empty_sql_url) == []
    await migrate(empty_sql_url)  # idempotent
    assert await pending_migrations(empty_sql_url) == []


async def test_migrated_schema_matches_the_model(empty_sql_url: str) -> None:
    """Autogenerate finds nothing to add or drop between the migrated database and tables.py."""
    await migrate(empty_sql_url)
    assert await _model_differences(empty_sql_url) == []


async def test_downgrade_and_upgrade_again_with_data(empty_sql_url: str) -> None:
    """Upgrade, write rows, downgrade to base, upgrade again: the schema is whole and writable each time."""
    await migrate(empty_sql_url)
    assert await _write_some_rows(empty_sql_url) == {"teams": 1, "intents": 1}
    await downgrade(empty_sql_url, "base")
    problems = await check_schema(empty_sql_url)
    assert len(problems) == len(metadata.tables)
    assert all(line.startswith("missing table: ") for line in problems)
    assert await pending_migrations(empty_sql_url) == ["0001", "0002"]
    await migrate(empty_sql_url, "0001")
    assert await check_schema(empty_sql_url) == [
        "missing table: process_heartbeats",
    ]
    assert await pending_migrations(empty_sql_url) == ["0002"]
    await migrate(empty_sql_url, "0002")
    assert await check_schema(empty_sql_url) == []
    assert await _write_some_rows(empty_sql_url) == {"teams": 1, "intents": 1}
    await downgrade(empty_sql_url, "0001")  # 0002's downgrade keeps the data of 0001
    assert await check_schema(empty_sql_url) == ["missing table: process_heartbeats"]
    await migrate(empty_sql_url)
    assert await _write_heartbeat(empty_sql_url) == {"teams": 1, "process_heartbeats": 1}
    await downgrade(empty_sql_url, "base")
    await migrate(empty_sql_url)
    assert await pending_migrations(empty_sql_url) == []


async def test_check_schema_names_each_missing_piece(empty_sql_url: str) -> None:
    """check-schema reports a dropped column and a dropped index by name."""
    await migrate(empty_sql_url)
    engine = make_engine(empty_sql_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP INDEX ix_alerts_group_id"))
            await conn.execute(sa.text("ALTER TABLE alerts DROP COLUMN payload"))
    finally:
        await engine.dispose()
    assert await check_schema(empty_sql_url) == [
        "missing column: alerts.payload",
        "missing index: alerts.ix_alerts_group_id",
    ]


async def test_concurrent_migrations_converge(empty_sql_url: str) -> None:
    """Two migrations started at once both succeed and leave one schema at head."""
    await asyncio.gather(migrate(empty_sql_url), migrate(empty_sql_url))
    assert await pending_migrations(empty_sql_url) == []
    assert await check_schema(empty_sql_url) == []


async def test_sqlite_migrate_creates_the_data_directory(empty_sqlite_url: str) -> None:
    """Migrating a SQLite URL whose directory does not exist yet creates it."""
    path = Path(sa.make_url(empty_sqlite_url).database or "")
    assert not path.parent.exists()
    await migrate(empty_sqlite_url)
    assert await asyncio.to_thread(path.is_file)
    assert await check_schema(empty_sqlite_url) == []


@pytest.mark.parametrize("url", ["sqlite:///relay.db", "postgresql://u@h/db", "postgres://u@h/db"])
def test_urls_get_an_async_driver(url: str) -> None:
    """Plain database URLs are mapped to the async driver of their engine."""
    assert async_url(url).get_driver_name() in ("aiosqlite", "asyncpg")
