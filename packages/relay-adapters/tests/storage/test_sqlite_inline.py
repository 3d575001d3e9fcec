"""The inline SQLite driver (``sqlite_inline``): same results; the loop never blocks on a lock."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import sqlalchemy as sa

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_adapters.storage.sqlalchemy.sqlite_inline import InlineConnection
from relay_core.domain.errors import Conflict, StorageUnavailable
from relay_core.domain.model import Group, Team


async def _driver_connection(factory: SqlAlchemyUnitOfWorkFactory) -> object:
    async with factory.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        return raw.driver_connection


async def test_file_databases_use_the_inline_driver_unless_switched_off(sqlite_url: str) -> None:
    inline = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    threaded = SqlAlchemyUnitOfWorkFactory(sqlite_url, sqlite_inline=False)
    try:
        assert isinstance(await _driver_connection(inline), InlineConnection)
        assert not isinstance(await _driver_connection(threaded), InlineConnection)
        async with inline() as uow:
            grp = await uow.groups.add(Group(slug="g", name="G"))
            await uow.teams.add(Team(group_id=grp.id, slug="t", name="T"))
            await uow.commit()
        async with threaded() as uow:  # what one driver wrote, the other reads
            assert [t.slug for t in await uow.teams.find()] == ["t"]
            with pytest.raises(Conflict):
                await uow.teams.add(Team(group_id=grp.id, slug="t", name="Again"))
        async with inline() as uow:
            pragma = (await uow.connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
            assert pragma == 0  # SQLite itself never sleeps on the event loop
            journal = (await uow.connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            assert journal == "wal"
    finally:
        await inline.aclose()
        await threaded.aclose()


async def test_waiting_for_another_process_lock_does_not_block_the_loop(sqlite_url: str) -> None:
    """The write lock held elsewhere is awaited asynchronously; the unit of work proceeds once released."""
    path = sa.make_url(sqlite_url).database or ""
    other = sqlite3.connect(path, isolation_level=None)
    factory = SqlAlchemyUnitOfWorkFactory(sqlite_url, sqlite_busy_timeout_ms=3000)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    async def release_later() -> None:
        await asyncio.sleep(0.3)
        other.execute("ROLLBACK")

    tick_task = asyncio.create_task(ticker())
    try:
        other.execute("BEGIN IMMEDIATE")
        release = asyncio.create_task(release_later())
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with factory() as uow:
            waited = loop.time() - started
            grp = await uow.groups.add(Group(slug="g", name="G"))
            await uow.commit()
        await release
        assert grp.id is not None
        assert 0.25 <= waited < 3
        # The loop ran other tasks meanwhile (a blocking wait would have allowed about none).
        assert ticks >= 20
        # A lock that is never released still ends in StorageUnavailable after the busy timeout.
        other.execute("BEGIN IMMEDIATE")
        short = SqlAlchemyUnitOfWorkFactory(sqlite_url, sqlite_busy_timeout_ms=100)
        try:
            with pytest.raises(StorageUnavailable):
                await short().__aenter__()
        finally:
            await short.aclose()
    finally:
        tick_task.cancel()
        other.close()
        await factory.aclose()
