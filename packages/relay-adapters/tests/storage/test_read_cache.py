"""The configuration read cache and lazy BEGIN of the SQL unit of work (intake performance, SPEC S12).

The whole storage contract runs again with both switched on (a long TTL, so staleness would
show), then the cache's own rules: writes invalidate at once, a writer sees its own rows, misses
are not cached, other processes' changes appear after the TTL, and a unit of work served from
the cache takes no connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.domain.model import Group, Route, Team
from relay_core.testing.storage_contract import StorageContract


class TestSqliteStorageWithReadCache(StorageContract):
    @pytest.fixture
    async def uow_factory(self, sqlite_url: str) -> AsyncIterator[SqlAlchemyUnitOfWorkFactory]:
        factory = SqlAlchemyUnitOfWorkFactory(sqlite_url, read_cache_ttl=60, lazy_begin=True)
        yield factory
        await factory.aclose()


@pytest.fixture
async def cached(sqlite_url: str) -> AsyncIterator[SqlAlchemyUnitOfWorkFactory]:
    factory = SqlAlchemyUnitOfWorkFactory(sqlite_url, read_cache_ttl=60, lazy_begin=True)
    yield factory
    await factory.aclose()


async def _route(factory: SqlAlchemyUnitOfWorkFactory) -> Route:
    async with factory() as uow:
        grp = await uow.groups.add(Group(slug="g", name="G"))
        team = await uow.teams.add(Team(group_id=grp.id, slug="t", name="T"))
        route = await uow.routes.add(Route(team_id=team.id, name="r", source="alertmanager"))
        await uow.commit()
    return route


async def test_a_committed_update_is_seen_by_the_next_read(cached: SqlAlchemyUnitOfWorkFactory) -> None:
    route = await _route(cached)
    async with cached() as uow:
        assert (await uow.routes.get(route.id)).name == "r"  # type: ignore[union-attr]
    async with cached() as uow:
        await uow.routes.update(route.__class__(**{**_fields(route), "name": "renamed"}))
        await uow.commit()
    async with cached() as uow:
        assert (await uow.routes.get(route.id)).name == "renamed"  # type: ignore[union-attr]
        assert [r.name for r in await uow.routes.find(source="alertmanager")] == ["renamed"]


async def test_a_writer_reads_its_own_rows_and_a_rollback_leaves_nothing_cached(
    cached: SqlAlchemyUnitOfWorkFactory,
) -> None:
    route = await _route(cached)
    async with cached() as uow:
        assert len(await uow.routes.find(team_id=route.team_id)) == 1
    async with cached() as uow:
        await uow.routes.add(Route(team_id=route.team_id, name="second", source="grafana"))
        assert len(await uow.routes.find(team_id=route.team_id)) == 2
        await uow.rollback()
    async with cached() as uow:
        assert [r.name for r in await uow.routes.find(team_id=route.team_id)] == ["r"]


async def test_misses_are_not_cached_and_other_processes_are_seen_after_the_ttl(sqlite_url: str) -> None:
    short = SqlAlchemyUnitOfWorkFactory(sqlite_url, read_cache_ttl=0.3, lazy_begin=True)
    other = SqlAlchemyUnitOfWorkFactory(sqlite_url)  # another process, as far as the cache knows
    try:
        route = await _route(other)
        async with short() as uow:
            assert await uow.routes.first(intake_token_hash="abc") is None
            assert (await uow.routes.get(route.id)).name == "r"  # type: ignore[union-attr]
        async with other() as uow:
            await uow.routes.update(route.__class__(**{**_fields(route), "intake_token_hash": "abc"}))
            await uow.commit()
        async with short() as uow:
            found = await uow.routes.first(intake_token_hash="abc")  # the miss was not remembered
            assert found is not None
            assert (await uow.routes.get(route.id)).intake_token_hash is None  # type: ignore[union-attr]
        await asyncio.sleep(0.35)
        async with short() as uow:
            assert (await uow.routes.get(route.id)).intake_token_hash == "abc"  # type: ignore[union-attr]
    finally:
        await short.aclose()
        await other.aclose()


async def test_a_unit_of_work_served_from_the_cache_takes_no_connection(
    cached: SqlAlchemyUnitOfWorkFactory,
) -> None:
    route = await _route(cached)
    async with cached() as uow:
        await uow.routes.get(route.id)
    assert cached.read_cache is not None
    hits = cached.read_cache.hits
    async with cached() as uow:
        assert (await uow.routes.get(route.id)) is not None
        with pytest.raises(RuntimeError):
            _ = uow.connection  # nothing was executed, so no transaction was begun
        await uow.commit()
    assert cached.read_cache.hits == hits + 1
    async with cached() as uow:  # the SQLite write lock was never taken, so this does not wait
        await uow.teams.get(route.team_id)
        assert uow.connection is not None


def _fields(entity: object) -> dict[str, object]:
    import attrs

    return attrs.asdict(entity, recurse=False)  # type: ignore[arg-type]
