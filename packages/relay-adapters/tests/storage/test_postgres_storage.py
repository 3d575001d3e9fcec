"""The storage contract on the real PostgreSQL server (asyncpg), in a throwaway database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_adapters.storage.sqlalchemy.encryption import derive_encryption_key
from relay_core.testing.storage_contract import StorageContract

pytestmark = pytest.mark.services


class TestPostgresStorage(StorageContract):
    @pytest.fixture
    async def uow_factory(self, postgres_url: str) -> AsyncIterator[SqlAlchemyUnitOfWorkFactory]:
        # With secrets encrypted at rest, as every process built by compose runs (SPEC S13.4).
        key = derive_encryption_key(secret_key="contract-" + "k" * 32)
        factory = SqlAlchemyUnitOfWorkFactory(postgres_url, encryption_key=key)
        yield factory
        await factory.aclose()
