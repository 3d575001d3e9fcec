"""The storage contract on the real PostgreSQL server (asyncpg), in a throwaway database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.testing.storage_contract import StorageContract

pytestmark = pytest.mark.services


class TestPostgresStorage(StorageContract):
    @pytest.fixture
    async def uow_factory(self, postgres_url: str) -> AsyncIterator[SqlAlchemyUnitOfWorkFactory]:
        factory = SqlAlchemyUnitOfWorkFactory(postgres_url)
        yield factory
        await factory.aclose()
