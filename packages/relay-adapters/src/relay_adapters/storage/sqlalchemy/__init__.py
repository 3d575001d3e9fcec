"""SQL storage for Relay: SQLite (embedded default) and PostgreSQL (production).

- :class:`SqlAlchemyUnitOfWorkFactory` implements ``relay_core.ports.storage.UnitOfWorkFactory``.
- :mod:`.schema`: ``migrate``, ``downgrade``, ``pending_migrations`` and ``check_schema`` over the
  Alembic migrations shipped in ``migrations/`` (SPEC S10.5).
- :mod:`.tables`: the SQLAlchemy Core metadata the migrations are written from.
"""

from __future__ import annotations

from relay_adapters.storage.sqlalchemy.schema import check_schema, downgrade, migrate, pending_migrations
from relay_adapters.storage.sqlalchemy.uow import (
    SqlAlchemyUnitOfWork,
    SqlAlchemyUnitOfWorkFactory,
    async_url,
    make_engine,
)

__all__ = [
    "SqlAlchemyUnitOfWork",
    "SqlAlchemyUnitOfWorkFactory",
    "async_url",
    "check_schema",
    "downgrade",
    "make_engine",
    "migrate",
    "pending_migrations",
]
