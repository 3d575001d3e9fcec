"""Alembic environment for Relay's schema (SPEC S10.5).

Normally driven by :mod:`relay_adapters.storage.sqlalchemy.schema`, which hands over an open
connection in ``config.attributes["connection"]`` inside one transaction. Running the
``alembic`` command against this directory also works: the URL then comes from
``sqlalchemy.url`` (any Relay URL; the async driver is chosen as for the application).

One history serves both engines: SQLite gets batch mode (``ALTER TABLE`` by copy).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from relay_adapters.storage.sqlalchemy.tables import JSONValue, UTCDateTime, metadata

config = context.config


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write Relay's column types as plain SQLAlchemy types, so migrations never import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, JSONValue):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")'
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        render_item=render_item,
        compare_type=False,
        **kwargs,
    )


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True, render_as_batch=bool(url and url.startswith("sqlite")))
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    from relay_adapters.storage.sqlalchemy.uow import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
elif (shared := config.attributes.get("connection")) is not None:
    run_on(shared)
else:
    asyncio.run(_run_with_url(config.get_main_option("sqlalchemy.url") or ""))
