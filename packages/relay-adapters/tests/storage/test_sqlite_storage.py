"""The storage contract on SQLite (aiosqlite), one fresh migrated file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_adapters.storage.sqlalchemy.encryption import derive_encryption_key
from relay_core.testing.storage_contract import StorageContract


class TestSqliteStorage(StorageContract):
    @pytest.fixture
    async def uow_factory(self, sqlite_url: str) -> AsyncIterator[SqlAlchemyUnitOfWorkFactory]:
        # With secrets encrypted at rest, as every process built by compose runs (SPEC S13.4).
        key = derive_encryption_key(secret_key="contract-" + "k" * 32)
        factory = SqlAlchemyUnitOfWorkFactory(sqlite_url, encryption_key=key)
        yield factory
        await factory.aclose()
