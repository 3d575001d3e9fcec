"""The storage contract on SQLite (aiosqlite), one fresh migrated file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.testing.storage_contract import StorageContract


class TestSqliteStorage(StorageContract):
    @pytest.fixture
    async def uow_factory(self, sqlite_url: str) -> AsyncIterator[SqlAlchemyUnitOfWorkFactory]:
        factory = SqlAlchemyUnitOfWorkFactory(sqlite_url)
        yield factory
        await factory.aclose()
