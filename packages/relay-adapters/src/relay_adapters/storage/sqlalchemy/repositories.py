"""Repositories of the storage port over SQLAlchemy Core, for SQLite and PostgreSQL.

The query language and its semantics are those of :mod:`relay_core.ports.storage`, with the
in-memory adapter as the reference: ``None`` sorts first ascending (last descending), ties
are broken by ``id`` in the same direction, ``field__ne=x`` also matches NULL, soft-deleted
rows are invisible to every read and to ``update_where``.

Two details keep the planners on the indexes of :mod:`.tables`:

* boolean filters are rendered as the literals ``true``/``false`` (``1``/``0`` on SQLite), so
  partial indexes such as ``alerts ... WHERE group_open = true`` match textually on SQLite and
  even in PostgreSQL's generic plans;
* ``NULLS FIRST/LAST`` is only written when the sort column can hold NULL in the result, so a
  plain B-tree order serves ``ORDER BY``.

Unique violations become :class:`~relay_core.domain.errors.Conflict` without poisoning the
transaction: inserts use ``ON CONFLICT DO NOTHING`` and updates of tables with unique keys run
inside a savepoint on PostgreSQL (SQLite only aborts the failing statement anyway).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from relay_adapters.storage.sqlalchemy.tables import LEASES_TABLE, entity_columns, metadata
from relay_core.domain import constants as c
from relay_core.domain.errors import Conflict, StorageUnavailable
from relay_core.domain.model import NotificationIntent, SchedulerLease
from relay_core.ports.storage import UNIQUE_KEYS, split_lookup, split_order

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "SqlAlchemyIntentRepository",
    "SqlAlchemyLeaseRepository",
    "SqlAlchemyRepository",
    "translate_error",
]

T = TypeVar("T")

# SQLSTATE classes that mean "the database is not available right now", not "your query is wrong":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown,
# cannot connect now), 40 transaction rollback (serialization failure, deadlock), 55P03 lock timeout.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "40")
_UNAVAILABLE_SQLSTATES = frozenset({"55P03"})
_MISSING_SCHEMA = "database schema is missing or outdated: run `relay migrate`"


def _sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    if _sqlstate(exc) == "23505":
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code in (1555, 2067):  # SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
        return True
    return "UNIQUE constraint failed" in str(exc.orig)


def translate_error(exc: BaseException, *, table: str | None = None) -> Exception | None:
    """The domain error for a driver error, or None when it is a bug that should propagate.

    Unique violations become ``Conflict``; unreachable or locked databases, timeouts and a
    missing schema become ``StorageUnavailable`` (SPEC S2.16).
    """
    where = f"{table}: " if table else ""
    if isinstance(exc, sa_exc.IntegrityError):
        return (
            Conflict(f"{where}a row with the same unique key already exists")
            if _is_unique_violation(exc)
            else None
        )
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection in time
        return StorageUnavailable()
    if isinstance(exc, sa_exc.DBAPIError):
        state = _sqlstate(exc)
        text = str(exc.orig).lower()
        if state == "42P01" or "no such table" in text or "no such column" in text or state == "42703":
            return StorageUnavailable(_MISSING_SCHEMA)
        if exc.connection_invalidated or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return StorageUnavailable()
        if state is not None and (
            state[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or state in _UNAVAILABLE_SQLSTATES
        ):
            return StorageUnavailable()
        return None
    if isinstance(exc, OSError):  # refused, unreachable, DNS, TimeoutError
        return StorageUnavailable()
    return None


def utcnow() -> dt.datetime:
    """Wall-clock time for the bookkeeping columns (the domain passes its own ``now``)."""
    return dt.datetime.now(dt.UTC)


class ConnectionSource(Protocol):
    """What a repository needs from its unit of work."""

    @property
    def connection(self) -> AsyncConnection: ...

    @property
    def dialect_name(self) -> str: ...


def _dialect_insert(dialect_name: str, table: sa.Table) -> Any:
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert support for {dialect_name}")


class _Base:
    _name: str
    _uow: ConnectionSource

    async def _execute(self, statement: sa.Executable, *, savepoint: bool = False) -> CursorResult[Any]:
        conn = self._uow.connection
        try:
            if savepoint and self._uow.dialect_name == "postgresql":
                # PostgreSQL aborts the whole transaction on an error; the savepoint keeps the
                # unit of work usable after a Conflict, as with the other adapters.
                async with conn.begin_nested():
                    return await conn.execute(statement)
            return await conn.execute(statement)
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            mapped = translate_error(exc, table=self._name)
            if mapped is None:
                raise
            raise mapped from exc


class SqlAlchemyRepository(_Base, Generic[T]):
    """One entity's table behind the generic ``Repository`` protocol."""

    def __init__(self, uow: ConnectionSource, name: str) -> None:
        self._uow = uow
        self._name = name
        self._spec = entity_columns(name)
        self._cls: type[T] = self._spec.entity
        self.table: sa.Table = metadata.tables[name]
        self._columns = tuple(self.table.c[f] for f in self._spec.fields)
        self._writable = tuple(f for f in self._spec.fields if f != "id")
        self._fields = frozenset(self._spec.fields)
        self._unique = bool(UNIQUE_KEYS.get(name)) or any(ix.unique for ix in self.table.indexes)

    # --- conversion -----------------------------------------------------------------------

    def _entity(self, row: Sequence[Any]) -> T:
        return self._cls(**dict(zip(self._spec.fields, row, strict=True)))

    def _row(self, entity: Any, *, insert: bool) -> dict[str, Any]:
        values = {f: getattr(entity, f) for f in self._writable}
        now = utcnow()
        for name in self._spec.bookkeeping:
            if insert or name == "updated_at":
                values[name] = now
        return values

    def _column(self, field: str) -> sa.Column[Any]:
        if field not in self._fields:
            raise ValueError(f"{self._name} has no field {field!r}")
        return self.table.c[field]

    # --- query building -------------------------------------------------------------------

    def _condition(self, key: str, value: Any) -> sa.ColumnElement[bool]:
        field, op = split_lookup(key)
        col = self._column(field)
        if op == "eq":
            if value is None:
                return col.is_(None)
            if isinstance(value, bool):
                return col == (sa.true() if value else sa.false())
            return col == value
        if op == "ne":
            if value is None:
                return col.is_not(None)
            literal = (sa.true() if value else sa.false()) if isinstance(value, bool) else value
            return sa.or_(col != literal, col.is_(None)) if col.nullable else col != literal
        if op == "in":
            values = list(value)
            present = [v for v in values if v is not None]
            condition = col.in_(present)
            return sa.or_(condition, col.is_(None)) if len(present) < len(values) else condition
        if op == "isnull":
            return col.is_(None) if value else col.is_not(None)
        if value is None:  # an ordering against NULL matches nothing, as in the reference adapter
            return sa.false()
        if op == "lt":
            return col < value
        if op == "lte":
            return col <= value
        if op == "gt":
            return col > value
        if op == "gte":
            return col >= value
        raise ValueError(f"unknown lookup {op!r}")

    def where_clause(self, where: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions for ``find``-style filters, plus the soft-delete filter."""
        conditions = [self._condition(k, v) for k, v in where.items()]
        if self._spec.soft_delete:
            conditions.append(self.table.c.deleted_at.is_(None))
        return conditions

    def _order(self, order_by: str, where: Mapping[str, Any]) -> list[sa.ColumnElement[Any]]:
        field, desc = split_order(order_by)
        col = self._column(field)
        ident = self.table.c.id
        if field == "id":
            return [ident.desc() if desc else ident.asc()]
        if col.nullable and not _excludes_null(field, where):
            first = col.desc().nulls_last() if desc else col.asc().nulls_first()
        else:
            first = col.desc() if desc else col.asc()
        return [first, ident.desc() if desc else ident.asc()]

    def select_statement(
        self, *, order_by: str = "id", limit: int | None = None, offset: int = 0, **where: Any
    ) -> sa.Select[Any]:
        """The ``SELECT`` that :meth:`find` runs (for EXPLAIN in benchmarks and tests)."""
        stmt = (
            sa.select(*self._columns).where(*self.where_clause(where)).order_by(*self._order(order_by, where))
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return stmt

    # --- the Repository protocol ----------------------------------------------------------

    async def get(self, id: int) -> T | None:
        stmt = sa.select(*self._columns).where(self.table.c.id == id, *self.where_clause({}))
        row = (await self._execute(stmt)).first()
        return self._entity(row) if row is not None else None

    async def add(self, entity: T) -> T:
        values = self._row(entity, insert=True)
        stmt: Any
        if self._unique:
            stmt = _dialect_insert(self._uow.dialect_name, self.table).values(values).on_conflict_do_nothing()
        else:
            stmt = sa.insert(self.table).values(values)
        row = (await self._execute(stmt.returning(self.table.c.id))).first()
        if row is None:
            raise Conflict(f"{self._name}: {self._unique_description()} already exists")
        return _evolve(entity, id=row[0])

    def _unique_description(self) -> str:
        keys = [", ".join(k) for k in UNIQUE_KEYS.get(self._name, ())]
        keys += [", ".join(col.name for col in ix.columns) for ix in self.table.indexes if ix.unique]
        return " or ".join(f"({k})" for k in keys) or "a unique key"

    async def update(self, entity: T) -> T:
        ident = entity.id  # type: ignore[attr-defined]  # every entity has an id
        values = self._row(entity, insert=False)
        stmt = sa.update(self.table).where(self.table.c.id == ident).values(values)
        result = await self._execute(stmt, savepoint=self._unique)
        if result.rowcount == 0:
            raise KeyError(f"{self._name} {ident} does not exist")
        return entity

    async def update_where(self, id: int, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> T | None:
        unknown = set(changes) - set(self._writable)
        if unknown:
            raise TypeError(f"{self._name}: cannot change {', '.join(sorted(unknown))}")
        values = dict(changes)
        if "updated_at" in self._spec.bookkeeping:
            values["updated_at"] = utcnow()
        stmt = (
            sa.update(self.table)
            .where(self.table.c.id == id, *self.where_clause(expect))
            .values(values)
            .returning(*self._columns)
        )
        row = (await self._execute(stmt, savepoint=self._unique)).first()
        return self._entity(row) if row is not None else None

    async def find(
        self, *, order_by: str = "id", limit: int | None = None, offset: int = 0, **where: Any
    ) -> list[T]:
        stmt = self.select_statement(order_by=order_by, limit=limit, offset=offset, **where)
        return [self._entity(row) for row in await self._execute(stmt)]

    async def first(self, *, order_by: str = "id", **where: Any) -> T | None:
        found = await self.find(order_by=order_by, limit=1, **where)
        return found[0] if found else None

    async def count(self, **where: Any) -> int:
        stmt = sa.select(sa.func.count()).select_from(self.table).where(*self.where_clause(where))
        return int((await self._execute(stmt)).scalar_one())

    async def delete(self, id: int) -> None:
        await self._execute(sa.delete(self.table).where(self.table.c.id == id))


def _excludes_null(field: str, where: Mapping[str, Any]) -> bool:
    """True when the filters already rule out NULL in ``field`` (so no NULLS FIRST/LAST is needed)."""
    for key, value in where.items():
        name, op = split_lookup(key)
        if name != field:
            continue
        if op in ("lt", "lte", "gt", "gte"):
            return True
        if op == "eq" and value is not None:
            return True
        if op == "isnull" and not value:
            return True
        if op == "ne" and value is None:
            return True
        if op == "in" and None not in list(value):
            return True
    return False


def _evolve(entity: Any, **changes: Any) -> Any:
    return attrs.evolve(entity, **changes)


class SqlAlchemyIntentRepository(SqlAlchemyRepository[NotificationIntent]):
    """The outbox (SPEC S5.7, S5.8)."""

    def __init__(self, uow: ConnectionSource, name: str = "intents") -> None:
        super().__init__(uow, name)

    async def add_unique(self, intent: NotificationIntent) -> NotificationIntent | None:
        stmt = (
            _dialect_insert(self._uow.dialect_name, self.table)
            .values(self._row(intent, insert=True))
            .on_conflict_do_nothing(index_elements=[self.table.c.idempotency_key])
            .returning(self.table.c.id)
        )
        row = (await self._execute(stmt)).first()
        return None if row is None else _evolve(intent, id=row[0])

    def claim_statement(
        self,
        *,
        owner: str,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
        ids: Sequence[int] | None = None,
    ) -> sa.Update:
        """``WITH due AS (<due pending ids> FOR UPDATE SKIP LOCKED) UPDATE … FROM due … RETURNING``.

        On PostgreSQL the sub-select skips rows another claimer holds, so concurrent workers
        split the batch instead of queueing on it; the outer ``status = 'pending'`` re-check
        makes a row claimed in between drop out. The sub-select is a CTE because a locking
        CTE is evaluated exactly once, whereas ``IN (subquery)`` may be re-run by a nested
        loop and then lock (and hand out) more rows than ``limit``; ``UPDATE … FROM due`` lets the
        planner start from the at most ``limit`` due ids. SQLite ignores
        ``FOR UPDATE``: there the unit of work runs under ``BEGIN IMMEDIATE``, so claimers
        are serialised.
        """
        t = self.table
        pending = sa.literal(c.INTENT_PENDING, sa.Text(), literal_execute=True)
        due = sa.select(t.c.id).where(t.c.status == pending, t.c.due_at <= now)
        if ids is not None:
            due = due.where(t.c.id.in_(list(ids)))
        due_ids = (
            due.order_by(t.c.priority, t.c.due_at, t.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        values: dict[str, Any] = {
            "status": c.INTENT_SENDING,
            "lease_owner": owner,
            "lease_until": lease_until,
            "attempt_count": t.c.attempt_count + 1,
        }
        if "updated_at" in self._spec.bookkeeping:
            values["updated_at"] = utcnow()
        return (
            sa.update(t)
            .where(t.c.id == due_ids.c.id, t.c.status == pending)
            .values(values)
            .returning(*self._columns)
        )

    async def claim(
        self,
        *,
        owner: str,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
        ids: Sequence[int] | None = None,
    ) -> list[NotificationIntent]:
        if limit <= 0 or (ids is not None and not ids):
            return []
        stmt = self.claim_statement(owner=owner, now=now, lease_until=lease_until, limit=limit, ids=ids)
        claimed = [self._entity(row) for row in await self._execute(stmt)]
        # RETURNING order is unspecified; hand the batch out in claim order.
        claimed.sort(key=lambda i: (i.priority, i.due_at, i.id))
        return claimed


class SqlAlchemyLeaseRepository(_Base):
    """Named scheduler leases with fencing tokens (SPEC S5.11)."""

    def __init__(self, uow: ConnectionSource) -> None:
        self._uow = uow
        self._name = LEASES_TABLE
        self.table = metadata.tables[LEASES_TABLE]

    @staticmethod
    def _lease(row: Any) -> SchedulerLease:
        return SchedulerLease(
            name=row.name,
            holder=row.holder,
            fencing_token=row.fencing_token,
            expires_at=row.expires_at,
            renewed_at=row.renewed_at,
        )

    async def acquire(
        self, name: str, holder: str, now: dt.datetime, ttl_seconds: int
    ) -> SchedulerLease | None:
        t = self.table
        expires = now + dt.timedelta(seconds=ttl_seconds)
        stamp = utcnow()
        columns = (t.c.name, t.c.holder, t.c.fencing_token, t.c.expires_at, t.c.renewed_at)
        insert = (
            _dialect_insert(self._uow.dialect_name, t)
            .values(
                name=name,
                holder=holder,
                fencing_token=1,
                expires_at=expires,
                renewed_at=now,
                created_at=stamp,
                updated_at=stamp,
            )
            .on_conflict_do_nothing(index_elements=[t.c.name])
            .returning(*columns)
        )
        row = (await self._execute(insert)).first()
        if row is not None:
            return self._lease(row)
        # Renew our own lease, or take over an expired one with the next fencing token.
        takeover = (
            sa.update(t)
            .where(t.c.name == name, sa.or_(t.c.holder == holder, t.c.expires_at < now))
            .values(
                holder=holder,
                expires_at=expires,
                renewed_at=now,
                updated_at=stamp,
                fencing_token=sa.case((t.c.holder == holder, t.c.fencing_token), else_=t.c.fencing_token + 1),
            )
            .returning(*columns)
        )
        row = (await self._execute(takeover)).first()
        return self._lease(row) if row is not None else None

    async def release(self, name: str, holder: str) -> None:
        t = self.table
        mine = sa.and_(t.c.name == name, t.c.holder == holder)
        row = (await self._execute(sa.select(t.c.renewed_at).where(mine))).first()
        if row is None:
            return
        expired = row.renewed_at - dt.timedelta(seconds=1)
        await self._execute(sa.update(t).where(mine).values(expires_at=expired, updated_at=utcnow()))
