"""Schema management: Alembic migrations shipped in this package, and a live schema check.

``relay migrate`` calls :func:`migrate`; ``relay check-schema`` prints the lines of
:func:`check_schema` or ``Schema check OK: all model tables and columns exist.``; ``/readyz``
reports :func:`pending_migrations` (SPEC S10.5). Every function takes a Relay database URL
(``sqlite:///…`` or ``postgresql://…``) and opens and closes its own engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from relay_adapters.storage.sqlalchemy.repositories import translate_error
from relay_adapters.storage.sqlalchemy.tables import metadata
from relay_adapters.storage.sqlalchemy.uow import async_url, make_engine

__all__ = ["MIGRATIONS_DIR", "alembic_config", "check_schema", "downgrade", "migrate", "pending_migrations"]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"

# Serialises concurrent `relay migrate` runs on PostgreSQL (SQLite has BEGIN IMMEDIATE).
_MIGRATION_LOCK_KEY: Final = 0x52454C4159  # "RELAY"

R = TypeVar("R")


def alembic_config() -> Config:
    """An Alembic configuration pointing at the migrations shipped with this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _sqlite_file(url: str) -> Path | None:
    target = async_url(url)
    if target.get_backend_name() != "sqlite" or target.database in (None, "", ":memory:"):
        return None
    return Path(target.database or "")


async def _run(url: str, fn: Callable[[Connection], R], *, write: bool) -> R:
    target = async_url(url)
    path = _sqlite_file(url)
    if write and path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(target, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            if write:
                async with conn.begin():
                    if conn.dialect.name == "postgresql":
                        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
                    return await conn.run_sync(fn)
            return await conn.run_sync(fn)
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        mapped = translate_error(exc)
        if mapped is None:
            raise
        raise mapped from exc
    finally:
        await engine.dispose()


def _with_connection(connection: Connection) -> Config:
    config = alembic_config()
    config.attributes["connection"] = connection
    return config


async def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (an empty database to the latest schema)."""
    await _run(url, lambda conn: command.upgrade(_with_connection(conn), revision), write=True)


async def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"`` removes every table)."""
    await _run(url, lambda conn: command.downgrade(_with_connection(conn), revision), write=True)


async def pending_migrations(url: str) -> list[str]:
    """Revision ids not yet applied to the database, oldest first (empty = up to date)."""
    script = ScriptDirectory.from_config(alembic_config())

    def current(conn: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(conn).get_current_heads())

    path = _sqlite_file(url)
    heads = () if path is not None and not path.exists() else await _run(url, current, write=False)
    applied: set[str] = set()
    for head in heads:
        try:
            applied.update(rev.revision for rev in script.iterate_revisions(head, "base"))
        except Exception as exc:
            raise RuntimeError(
                f"the database is at revision {head!r}, unknown to this Relay version"
            ) from exc
    return [rev.revision for rev in reversed(list(script.walk_revisions())) if rev.revision not in applied]


def _differences(conn: Connection) -> list[str]:
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    problems: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            problems.append(f"missing table: {table.name}")
            continue
        columns = {col["name"] for col in inspector.get_columns(table.name)}
        problems.extend(
            f"missing column: {table.name}.{col.name}" for col in table.columns if col.name not in columns
        )
        indexes: set[Any] = {ix["name"] for ix in inspector.get_indexes(table.name)}
        indexes |= {uq["name"] for uq in inspector.get_unique_constraints(table.name)}
        problems.extend(
            f"missing index: {table.name}.{ix.name}" for ix in table.indexes if ix.name not in indexes
        )
        problems.extend(
            f"missing unique constraint: {table.name}.{uq.name}"
            for uq in table.constraints
            if isinstance(uq, sa.UniqueConstraint) and uq.name not in indexes
        )
    return problems


async def check_schema(url: str) -> list[str]:
    """Compare the live database with the model: one line per difference, empty when all is there.

    Lines read ``missing table: x``, ``missing column: t.c``, ``missing index: t.ix`` or
    ``missing unique constraint: t.uq``.
    """
    path = _sqlite_file(url)
    if path is not None and not path.exists():  # reading must not create the file
        return [f"missing table: {table.name}" for table in metadata.sorted_tables]
    return await _run(url, _differences, write=False)
