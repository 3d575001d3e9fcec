"""What the SQL adapter adds to the storage contract: partial unique indexes, index use, errors, locking."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import sqlalchemy as sa

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWork, SqlAlchemyUnitOfWorkFactory
from relay_adapters.storage.sqlalchemy.repositories import SqlAlchemyIntentRepository
from relay_adapters.storage.sqlalchemy.tables import metadata
from relay_core.domain import constants as c
from relay_core.domain.errors import Conflict, StorageUnavailable
from relay_core.domain.model import Alert, AlertGroup, NotificationIntent, Route, Team

NOW = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
async def factory(sql_url: str) -> AsyncIterator[SqlAlchemyUnitOfWorkFactory]:
    made = SqlAlchemyUnitOfWorkFactory(sql_url)
    yield made
    await made.aclose()


def _group(**fields: Any) -> AlertGroup:
    values: dict[str, Any] = {
        "team_id": 1,
        "route_id": 1,
        "source": "alertmanager",
        "group_key": "k",
        "group_key_hash": "h",
        "first_seen_at": NOW,
        "last_seen_at": NOW,
    }
    values.update(fields)
    return AlertGroup(**values)


def _alert(**fields: Any) -> Alert:
    values: dict[str, Any] = {
        "group_id": 1,
        "team_id": 1,
        "route_id": 1,
        "source": "alertmanager",
        "dedup_key": "disk-full",
        "first_seen_at": NOW,
        "last_seen_at": NOW,
    }
    values.update(fields)
    return Alert(**values)


async def test_one_open_group_per_group_key(factory: SqlAlchemyUnitOfWorkFactory) -> None:
    """A second open group for (team, group_key_hash) conflicts; after resolving the first, one is allowed."""
    async with factory() as uow:
        first = await uow.alert_groups.add(_group())
        with pytest.raises(Conflict):
            await uow.alert_groups.add(_group(status=c.GROUP_ACKNOWLEDGED))
        await uow.alert_groups.add(_group(team_id=2))
        await uow.alert_groups.update(attrs.evolve(first, status=c.GROUP_RESOLVED))
        reopened = await uow.alert_groups.add(_group())
        await uow.alert_groups.add(_group(status="merged"))
        with pytest.raises(Conflict):
            await uow.alert_groups.update_where(first.id, {}, {"status": c.GROUP_FIRING})
        await uow.commit()
    async with factory() as uow:
        assert await uow.alert_groups.count(team_id=1, group_key_hash="h") == 3
        assert await uow.alert_groups.first(team_id=1, group_key_hash="h", status__in=["firing"]) == reopened


async def test_one_open_child_per_dedup_identity(factory: SqlAlchemyUnitOfWorkFactory) -> None:
    """Open children are unique per (team, source, dedup_key); children of closed groups are not."""
    async with factory() as uow:
        await uow.alerts.add(_alert(group_open=False))
        await uow.alerts.add(_alert(group_open=False))
        open_child = await uow.alerts.add(_alert())
        with pytest.raises(Conflict):
            await uow.alerts.add(_alert(group_id=2))
        await uow.alerts.add(_alert(source="zabbix"))
        await uow.commit()
    async with factory() as uow:
        found = await uow.alerts.first(
            team_id=1, source="alertmanager", dedup_key="disk-full", group_open=True
        )
        assert found == open_child


async def test_intake_token_hash_is_unique(factory: SqlAlchemyUnitOfWorkFactory) -> None:
    """Two routes cannot share an intake token hash; routes without a token can."""
    route = Route(team_id=1, name="r1", source="alertmanager", intake_token_hash="ab" * 32)
    async with factory() as uow:
        await uow.routes.add(route)
        with pytest.raises(Conflict):
            await uow.routes.add(attrs.evolve(route, name="r2"))
        await uow.routes.add(attrs.evolve(route, name="r3", intake_token_hash=None))
        await uow.routes.add(attrs.evolve(route, name="r4", intake_token_hash=None))
        await uow.commit()


async def test_bookkeeping_timestamps(factory: SqlAlchemyUnitOfWorkFactory) -> None:
    """created_at and updated_at are filled on insert, and updated_at moves on update."""
    async with factory() as uow:
        team = await uow.teams.add(Team(group_id=1, slug="ops", name="Ops"))
        await uow.commit()
    table = metadata.tables["teams"]

    async def stamps() -> tuple[dt.datetime, dt.datetime]:
        async with factory() as uow:
            row = (await uow.connection.execute(sa.select(table.c.created_at, table.c.updated_at))).one()
            return row.created_at, row.updated_at

    created, updated = await stamps()
    assert created == updated
    assert created.tzinfo is not None
    async with factory() as uow:
        await uow.teams.update(attrs.evolve(team, name="Operations"))
        await uow.commit()
    created_again, updated_again = await stamps()
    assert created_again == created
    assert updated_again > updated


def _assert_index_scan(plan: str, index: str) -> None:
    """No full scan in the plan, an index scan, and the expected index when one is named."""
    assert "Seq Scan" not in plan, plan
    assert not re.search(r"^SCAN (?!due$)\w+$", plan, re.MULTILINE), plan  # `due` is the claim CTE
    assert "Index" in plan or "INDEX" in plan, plan
    assert index in plan, plan


def _explain(uow: SqlAlchemyUnitOfWork, statement: Any) -> str:
    compiled = statement.compile(dialect=uow.connection.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if uow.dialect_name == "sqlite" else "EXPLAIN "
    return prefix + str(compiled)


@pytest.mark.parametrize(
    ("repository", "query", "index"),
    [
        (
            "alerts",
            {"team_id": 1, "source": "s", "dedup_key": "d", "group_open": True, "limit": 1},
            "uq_alerts_open_dedup_key",
        ),
        (
            "alert_groups",
            {"next_action_at__lte": NOW, "order_by": "next_action_at", "limit": 500},
            "ix_alert_groups_next_action_at",
        ),
        (
            "alert_groups",
            {"team_id": 1, "group_key_hash": "h", "limit": 1},
            "ix_alert_groups_team_id_group_key_hash",
        ),
        ("intents", {"status": "sending", "lease_until__lt": NOW}, "ix_intents_"),
    ],
)
async def test_hot_queries_can_use_their_index(
    factory: SqlAlchemyUnitOfWorkFactory, repository: str, query: dict[str, Any], index: str
) -> None:
    """The dedup lookup, the due query and the open-group and lease lookups are index scans on both engines.

    SQLite's planner is rule-based, so the exact index is checked there; PostgreSQL's depends
    on statistics (empty tables here), so only "an index, no sequential scan" is.
    """
    async with factory() as uow:
        if uow.dialect_name == "postgresql":
            # Tables are empty: forbid sequential scans to learn whether the index is usable at all.
            await uow.connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        repo: Any = getattr(uow, repository)
        plan = await uow.connection.exec_driver_sql(_explain(uow, repo.select_statement(**query)))
        text = "\n".join(str(row[-1]) for row in plan)
        _assert_index_scan(text, index if uow.dialect_name == "sqlite" else "")


async def test_claim_uses_the_claim_index(factory: SqlAlchemyUnitOfWorkFactory) -> None:
    """The claim's sub-select is a range scan on ix_intents_claim."""
    async with factory() as uow:
        if uow.dialect_name == "postgresql":
            await uow.connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        statement = cast(SqlAlchemyIntentRepository, uow.intents).claim_statement(
            owner="w", now=NOW, lease_until=NOW, limit=10
        )
        plan = await uow.connection.exec_driver_sql(_explain(uow, statement))
        _assert_index_scan("\n".join(str(row[-1]) for row in plan), "ix_intents_claim")


async def test_missing_schema_is_storage_unavailable(empty_sql_url: str) -> None:
    """A database that was never migrated answers StorageUnavailable, naming `relay migrate`."""
    if empty_sql_url.startswith("sqlite"):
        Path(sa.make_url(empty_sql_url).database or "").parent.mkdir()
    factory = SqlAlchemyUnitOfWorkFactory(empty_sql_url)
    try:
        async with factory() as uow:
            with pytest.raises(StorageUnavailable, match="relay migrate"):
                await uow.teams.count()
    finally:
        await factory.aclose()


async def test_unreachable_postgres_is_storage_unavailable() -> None:
    """Nothing listening at the PostgreSQL address means StorageUnavailable, quickly."""
    factory = SqlAlchemyUnitOfWorkFactory("postgresql://postgres@127.0.0.1:1/relay", connect_timeout=2)
    try:
        with pytest.raises(StorageUnavailable):
            async with factory():
                pass
    finally:
        await factory.aclose()


async def test_sqlite_lock_held_elsewhere_is_storage_unavailable(sqlite_url: str) -> None:
    """Another process holding SQLite's write lock past the busy timeout makes a unit of work give up."""
    path = sa.make_url(sqlite_url).database or ""
    other = sqlite3.connect(path, isolation_level=None)
    factory = SqlAlchemyUnitOfWorkFactory(sqlite_url, sqlite_busy_timeout_ms=200)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageUnavailable):
            async with factory():
                pass
        other.execute("ROLLBACK")
        async with factory() as uow:
            assert await uow.teams.count() == 0
    finally:
        other.close()
        await factory.aclose()


async def test_sqlite_units_of_work_queue_in_process(sqlite_url: str) -> None:
    """Many concurrent units of work in one process all commit, one after the other, without busy errors."""
    factory = SqlAlchemyUnitOfWorkFactory(sqlite_url, sqlite_busy_timeout_ms=2000)

    async def intake(n: int) -> None:
        async with factory() as uow:
            group = await uow.alert_groups.add(_group(group_key_hash=f"h{n}"))
            await uow.alerts.add(_alert(group_id=group.id, dedup_key=f"d{n}"))
            await asyncio.sleep(0)
            await uow.commit()

    try:
        await asyncio.gather(*(intake(n) for n in range(50)))
        async with factory() as uow:
            assert await uow.alerts.count() == 50
        # A unit of work held open too long makes the next one give up, not hang.
        slow = SqlAlchemyUnitOfWorkFactory(sqlite_url, sqlite_busy_timeout_ms=100)
        try:
            async with slow():
                with pytest.raises(StorageUnavailable):
                    async with slow():
                        pass
        finally:
            await slow.aclose()
    finally:
        await factory.aclose()


@pytest.mark.services
async def test_postgres_isolation_and_skip_locked(postgres_url: str) -> None:
    """Uncommitted writes are invisible to others, and a concurrent claim skips rows another claim holds."""
    factory = SqlAlchemyUnitOfWorkFactory(postgres_url)
    try:
        async with factory() as uow:
            for n in range(4):
                await uow.intents.add(
                    NotificationIntent(
                        idempotency_key=f"k{n}",
                        event_type="notification",
                        priority=n,
                        due_at=NOW,
                        created_at=NOW,
                    )
                )
            await uow.commit()
        async with factory() as first, factory() as second:
            await first.teams.add(Team(group_id=1, slug="hidden", name="Hidden"))
            assert await second.teams.count() == 0
            held = await first.intents.claim(owner="a", now=NOW, lease_until=NOW, limit=2)
            assert [i.idempotency_key for i in held] == ["k0", "k1"]
            other = await asyncio.wait_for(
                second.intents.claim(owner="b", now=NOW, lease_until=NOW, limit=10), timeout=5
            )
            assert [i.idempotency_key for i in other] == ["k2", "k3"]
            await second.commit()
            await first.rollback()
        async with factory() as uow:
            assert await uow.intents.count(status="pending") == 2
            assert await uow.intents.count(lease_owner="b") == 2
    finally:
        await factory.aclose()
