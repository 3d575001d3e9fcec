"""The storage contract on the in-memory reference adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.testing.storage_contract import StorageContract


class TestInMemoryStorage(StorageContract):
    @pytest.fixture
    async def uow_factory(self) -> AsyncIterator[InMemoryUnitOfWorkFactory]:
        factory = InMemoryUnitOfWorkFactory()
        yield factory
        await factory.aclose()
