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
import functools
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from relay_adapters.storage.sqlalchemy.cache import CACHEABLE, ReadCache
from relay_adapters.storage.sqlalchemy.encryption import SEALED_COLUMNS, SecretBox
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

    async def _execute(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None, *, savepoint: bool = False
    ) -> CursorResult[Any]:
        uow: Any = self._uow
        lazy = getattr(uow, "lazy_connection", None)
        conn: AsyncConnection = await lazy() if lazy is not None else uow.connection
        if not isinstance(statement, sa.Select):
            written = getattr(uow, "mark_written", None)
            if written is not None:
                written(self._name)
        try:
            if savepoint and self._uow.dialect_name == "postgresql":
                # PostgreSQL aborts the whole transaction on an error; the savepoint keeps the
                # unit of work usable after a Conflict, as with the other adapters.
                async with conn.begin_nested():
                    return await conn.execute(statement, params)
            return await conn.execute(statement, params)
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            mapped = translate_error(exc, table=self._name)
            if mapped is None:
                raise
            raise mapped from exc

    async def _execute_many(
        self,
        statement: sa.Executable,
        rows: list[dict[str, Any]] | dict[str, Any],
        *,
        savepoint: bool = False,
    ) -> None:
        uow: Any = self._uow
        lazy = getattr(uow, "lazy_connection", None)
        conn: AsyncConnection = await lazy() if lazy is not None else uow.connection
        written = getattr(uow, "mark_written", None)
        if written is not None:
            written(self._name)
        try:
            # PostgreSQL: keep the transaction usable after an error. SQLite: an executemany
            # stopped by a unique violation keeps the rows before it, so the batch needs a
            # savepoint to be all or nothing (one row is atomic by itself).
            if savepoint and (self._uow.dialect_name == "postgresql" or isinstance(rows, list)):
                async with conn.begin_nested():
                    await conn.execute(statement, rows)
            else:
                await conn.execute(statement, rows)
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            mapped = translate_error(exc, table=self._name)
            if mapped is None:
                raise
            raise mapped from exc


# --- statement shapes ---------------------------------------------------------------------
#
# Building a SQLAlchemy expression (coercions, bind parameters, cache key) costs more than
# running a simple indexed query, so each repository builds a statement once per *shape* of
# call (which filters, which operators, NULL or not, which columns change) with named bind
# parameters, and passes the values at execution time.

_Shape = tuple[tuple[str, Any], ...]


def _filter_shape(where: Mapping[str, Any]) -> tuple[_Shape, list[Any]]:
    """The cache key of a filter mapping and the values of its bind parameters, in order.

    The variant of each filter decides the SQL: ``None`` becomes ``IS [NOT] NULL``, booleans
    become literals (partial indexes), an ``in`` list containing ``None`` adds ``OR IS NULL``.
    """
    shape: list[tuple[str, Any]] = []
    values: list[Any] = []
    for key, value in where.items():
        _, op = split_lookup(key)
        variant: Any
        if op == "in":
            items = list(value)
            present = [v for v in items if v is not None]
            variant = "in+null" if len(present) < len(items) else "in"
            values.append(present)
        elif op == "isnull":
            variant = bool(value)
        elif value is None:
            variant = "null"
        elif isinstance(value, bool) and op in ("eq", "ne"):
            variant = value
        else:
            variant = "bind"
            values.append(value)
        shape.append((key, variant))
    return tuple(shape), values


def _excludes_null(field: str, shape: _Shape) -> bool:
    """True when the filters rule out NULL in ``field``, so ``ORDER BY`` needs no NULLS FIRST/LAST."""
    for key, variant in shape:
        name, op = split_lookup(key)
        if name != field:
            continue
        if op in ("lt", "lte", "gt", "gte") or (op == "in" and variant == "in"):
            return True
        if (op == "eq" and variant != "null") or (op == "ne" and variant == "null"):
            return True
        if op == "isnull" and variant is False:
            return True
    return False


class _TableStatements:
    """Per-table metadata and the statements built for it, shared by every unit of work."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.spec = entity_columns(name)
        self.table: sa.Table = metadata.tables[name]
        t = self.table
        self.columns = tuple(t.c[f] for f in self.spec.fields)
        self.writable = tuple(f for f in self.spec.fields if f != "id")
        self.fields = frozenset(self.spec.fields)
        self.unique = bool(UNIQUE_KEYS.get(name)) or any(ix.unique for ix in t.indexes)
        visible = [t.c.deleted_at.is_(None)] if self.spec.soft_delete else []
        self.get = sa.select(*self.columns).where(t.c.id == sa.bindparam("b_id"), *visible)
        self.insert = sa.insert(t).returning(t.c.id)
        self.insert_many = sa.insert(t)
        self.update = sa.update(t).where(t.c.id == sa.bindparam("b_id"))
        self.delete = sa.delete(t).where(t.c.id == sa.bindparam("b_id"))
        self._cache: dict[Any, Any] = {}

    def cached(self, key: Any, build: Any) -> Any:
        statement = self._cache.get(key)
        if statement is None:
            if len(self._cache) > 1000:  # shapes come from code, not data; this is only a fuse
                self._cache.clear()
            statement = self._cache[key] = build()
        return statement

    def column(self, field: str) -> sa.Column[Any]:
        if field not in self.fields:
            raise ValueError(f"{self.name} has no field {field!r}")
        return self.table.c[field]

    def conditions(self, shape: _Shape, prefix: str = "w") -> list[sa.ColumnElement[bool]]:
        """SQL for a filter shape (bind parameters ``<prefix>0``, ``<prefix>1`` …), plus soft delete."""
        out: list[sa.ColumnElement[bool]] = []
        names = (f"{prefix}{n}" for n in itertools.count())
        for key, variant in shape:
            field, op = split_lookup(key)
            col = self.column(field)
            param = functools.partial(_bind, names, col, expanding=(op == "in"))
            if op == "isnull":
                out.append(col.is_(None) if variant else col.is_not(None))
            elif op == "in":
                condition = col.in_(param())
                out.append(sa.or_(condition, col.is_(None)) if variant == "in+null" else condition)
            elif variant == "null":
                # = None is IS NULL, != None is IS NOT NULL; an ordering against NULL matches nothing.
                out.append(col.is_(None) if op == "eq" else col.is_not(None) if op == "ne" else sa.false())
            elif op in ("eq", "ne"):
                value = (sa.true() if variant else sa.false()) if isinstance(variant, bool) else param()
                if op == "eq":
                    out.append(col == value)
                else:
                    # Like the reference adapter, `field__ne=x` also matches NULL.
                    out.append(sa.or_(col != value, col.is_(None)) if col.nullable else col != value)
            elif op == "lt":
                out.append(col < param())
            elif op == "lte":
                out.append(col <= param())
            elif op == "gt":
                out.append(col > param())
            elif op == "gte":
                out.append(col >= param())
            else:
                raise ValueError(f"unknown lookup {op!r}")
        if self.spec.soft_delete:
            out.append(self.table.c.deleted_at.is_(None))
        return out

    def order(self, order_by: str, shape: _Shape) -> list[sa.ColumnElement[Any]]:
        field, desc = split_order(order_by)
        col = self.column(field)
        ident = self.table.c.id
        if field == "id":
            return [ident.desc() if desc else ident.asc()]
        if col.nullable and not _excludes_null(field, shape):
            first = col.desc().nulls_last() if desc else col.asc().nulls_first()
        else:
            first = col.desc() if desc else col.asc()
        return [first, ident.desc() if desc else ident.asc()]

    def select(self, shape: _Shape, order_by: str, limit: bool, offset: bool) -> sa.Select[Any]:
        def build() -> sa.Select[Any]:
            stmt = (
                sa.select(*self.columns).where(*self.conditions(shape)).order_by(*self.order(order_by, shape))
            )
            if limit:
                stmt = stmt.limit(sa.bindparam("b_limit", type_=sa.Integer()))
            if offset:
                stmt = stmt.offset(sa.bindparam("b_offset", type_=sa.Integer()))
            return stmt

        return self.cached(("select", shape, order_by, limit, offset), build)  # type: ignore[no-any-return]

    def count(self, shape: _Shape) -> sa.Select[Any]:
        def build() -> sa.Select[Any]:
            return sa.select(sa.func.count()).select_from(self.table).where(*self.conditions(shape))

        return self.cached(("count", shape), build)  # type: ignore[no-any-return]

    def update_where(self, shape: _Shape, changes: tuple[str, ...]) -> sa.Update:
        def build() -> sa.Update:
            t = self.table
            values = {name: sa.bindparam(f"v_{name}", type_=t.c[name].type) for name in changes}
            return (
                sa.update(t)
                .where(t.c.id == sa.bindparam("b_id"), *self.conditions(shape))
                .values(values)
                .returning(*self.columns)
            )

        return self.cached(("update_where", shape, changes), build)  # type: ignore[no-any-return]

    def insert_ignoring_conflicts(self, dialect_name: str, *conflict_target: str) -> Any:
        """``INSERT … ON CONFLICT [(target)] DO NOTHING RETURNING id`` for this dialect."""

        def build() -> Any:
            insert = _dialect_insert(dialect_name, self.table)
            target = [self.table.c[name] for name in conflict_target] or None
            return insert.on_conflict_do_nothing(index_elements=target).returning(self.table.c.id)

        return self.cached(("insert_ignore", dialect_name, conflict_target), build)

    def unique_description(self) -> str:
        keys = [", ".join(k) for k in UNIQUE_KEYS.get(self.name, ())]
        keys += [", ".join(col.name for col in ix.columns) for ix in self.table.indexes if ix.unique]
        return " or ".join(f"({k})" for k in keys) or "a unique key"


def _bind(names: Iterator[str], col: sa.Column[Any], *, expanding: bool) -> sa.BindParameter[Any]:
    return sa.bindparam(next(names), type_=col.type, expanding=expanding)


_STATEMENTS: dict[str, _TableStatements] = {}


def _statements(name: str) -> _TableStatements:
    found = _STATEMENTS.get(name)
    if found is None:
        found = _STATEMENTS[name] = _TableStatements(name)
    return found


def _params(values: list[Any], prefix: str = "w") -> dict[str, Any]:
    return {f"{prefix}{n}": value for n, value in enumerate(values)}


class SqlAlchemyRepository(_Base, Generic[T]):
    """One entity's table behind the generic ``Repository`` protocol."""

    def __init__(self, uow: ConnectionSource, name: str) -> None:
        self._uow = uow
        self._name = name
        self._s = _statements(name)
        self._cls: type[T] = self._s.spec.entity
        self._fields = self._s.spec.fields
        self.table: sa.Table = self._s.table
        # Secret columns are encrypted at rest (SPEC S13.4; see .encryption).
        self._sealed: Mapping[str, str] = SEALED_COLUMNS.get(name, {})
        self._box: SecretBox = getattr(uow, "secret_box", None) or SecretBox(None)

    # --- conversion -----------------------------------------------------------------------

    def _entity(self, row: Sequence[Any]) -> T:
        values = dict(zip(self._fields, row, strict=True))
        for column, kind in self._sealed.items():
            values[column] = self._box.open(self._name, column, kind, values[column])
        return self._cls(**values)

    def _seal(self, values: dict[str, Any]) -> dict[str, Any]:
        for column, kind in self._sealed.items():
            if column in values:
                values[column] = self._box.seal(self._name, column, kind, values[column])
        return values

    def _check_filters(self, where: Mapping[str, Any]) -> None:
        """Encrypted columns can only be tested for NULL: their stored bytes differ every write."""
        if not self._sealed:
            return
        for key, value in where.items():
            field, op = split_lookup(key)
            if field in self._sealed and not (op == "isnull" or (op in ("eq", "ne") and value is None)):
                raise ValueError(f"{self._name}.{field} is encrypted at rest and cannot be filtered on")

    def _row(self, entity: Any, *, insert: bool) -> dict[str, Any]:
        values = self._seal({f: getattr(entity, f) for f in self._s.writable})
        now = utcnow()
        for name in self._s.spec.bookkeeping:
            if insert or name == "updated_at":
                values[name] = now
        return values

    # --- statements for inspection --------------------------------------------------------

    def select_statement(
        self, *, order_by: str = "id", limit: int | None = None, offset: int = 0, **where: Any
    ) -> sa.Select[Any]:
        """The ``SELECT`` that :meth:`find` runs, with its values bound (for EXPLAIN)."""
        statement, params = self._find(order_by, limit, offset, where)
        return statement.params(params)

    def _find(
        self, order_by: str, limit: int | None, offset: int, where: Mapping[str, Any]
    ) -> tuple[sa.Select[Any], dict[str, Any]]:
        self._check_filters(where)
        shape, values = _filter_shape(where)
        params = _params(values)
        if limit is not None:
            params["b_limit"] = limit
        if offset:
            params["b_offset"] = offset
        return self._s.select(shape, order_by, limit is not None, bool(offset)), params

    # --- the Repository protocol ----------------------------------------------------------

    def _cache(self) -> tuple[ReadCache, int] | None:
        """The read cache for this table, when it applies to this unit of work."""
        uow: Any = self._uow
        cache: ReadCache | None = getattr(uow, "read_cache", None)
        if cache is None or self._name not in CACHEABLE or self._name in uow.written:
            return None
        return cache, cache.generation(self._name)

    async def get(self, id: int) -> T | None:
        cached = self._cache()
        if cached is not None:
            hit, value = cached[0].get(self._name, ("get", id))
            if hit:
                return value  # type: ignore[no-any-return]
        row = (await self._execute(self._s.get, {"b_id": id})).first()
        entity = self._entity(row) if row is not None else None
        if cached is not None and entity is not None:
            cached[0].put(self._name, ("get", id), entity, cached[1])
        return entity

    async def add(self, entity: T) -> T:
        statement = (
            self._s.insert_ignoring_conflicts(self._uow.dialect_name) if self._s.unique else self._s.insert
        )
        row = (await self._execute(statement, self._row(entity, insert=True))).first()
        if row is None:
            raise Conflict(f"{self._name}: {self._s.unique_description()} already exists")
        return _evolve(entity, id=row[0])

    async def add_many(self, entities: Sequence[T]) -> None:
        """Insert ``entities`` in one ``executemany`` round trip, without reading ids back.

        For rows nothing reads back in the same unit of work (timeline events, explain traces
        of a multi-alert intake request). All or nothing: a unique violation raises
        ``Conflict``, writes none of the rows and leaves the unit of work usable.
        """
        if not entities:
            return
        rows = [self._row(entity, insert=True) for entity in entities]
        # One row: a plain execute (an executemany of one costs the batching machinery for nothing).
        await self._execute_many(
            self._s.insert_many, rows if len(rows) > 1 else rows[0], savepoint=self._s.unique
        )

    async def update(self, entity: T) -> T:
        ident = entity.id  # type: ignore[attr-defined]  # every entity has an id
        params = self._row(entity, insert=False) | {"b_id": ident}
        result = await self._execute(self._s.update, params, savepoint=self._s.unique)
        if result.rowcount == 0:
            raise KeyError(f"{self._name} {ident} does not exist")
        return entity

    async def update_where(self, id: int, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> T | None:
        unknown = set(changes) - set(self._s.writable)
        if unknown:
            raise TypeError(f"{self._name}: cannot change {', '.join(sorted(unknown))}")
        self._check_filters(expect)
        values = self._seal(dict(changes))
        if "updated_at" in self._s.spec.bookkeeping:
            values["updated_at"] = utcnow()
        shape, expected = _filter_shape(expect)
        statement = self._s.update_where(shape, tuple(values))
        params = _params(expected) | {f"v_{k}": v for k, v in values.items()} | {"b_id": id}
        row = (await self._execute(statement, params, savepoint=self._s.unique)).first()
        return self._entity(row) if row is not None else None

    async def find(
        self, *, order_by: str = "id", limit: int | None = None, offset: int = 0, **where: Any
    ) -> list[T]:
        cached = self._cache()
        key: Any = None
        if cached is not None:
            try:
                key = ("find", order_by, limit, offset, *sorted((k, _hashable(v)) for k, v in where.items()))
                hash(key)
            except TypeError:
                cached = None
            else:
                hit, value = cached[0].get(self._name, key)
                if hit:
                    return list(value)
        statement, params = self._find(order_by, limit, offset, where)
        found = [self._entity(row) for row in await self._execute(statement, params)]
        if cached is not None and (found or limit != 1):
            cached[0].put(self._name, key, tuple(found), cached[1])
        return found

    async def first(self, *, order_by: str = "id", **where: Any) -> T | None:
        found = await self.find(order_by=order_by, limit=1, **where)
        return found[0] if found else None

    async def count(self, **where: Any) -> int:
        self._check_filters(where)
        shape, values = _filter_shape(where)
        return int((await self._execute(self._s.count(shape), _params(values))).scalar_one())

    async def delete(self, id: int) -> None:
        await self._execute(self._s.delete, {"b_id": id})


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, set, frozenset)) else value


E = TypeVar("E")


def _evolve(entity: E, **changes: Any) -> E:
    evolved: E = attrs.evolve(entity, **changes)  # type: ignore[misc]  # entities are attrs classes
    return evolved


class SqlAlchemyIntentRepository(SqlAlchemyRepository[NotificationIntent]):
    """The outbox (SPEC S5.7, S5.8)."""

    def __init__(self, uow: ConnectionSource, name: str = "intents") -> None:
        super().__init__(uow, name)

    async def add_unique(self, intent: NotificationIntent) -> NotificationIntent | None:
        statement = self._s.insert_ignoring_conflicts(self._uow.dialect_name, "idempotency_key")
        row = (await self._execute(statement, self._row(intent, insert=True))).first()
        return None if row is None else _evolve(intent, id=row[0])

    def _claim(self, with_ids: bool, bound: Mapping[str, Any] | None = None) -> sa.Update:
        """``WITH due AS (<due pending ids> FOR UPDATE SKIP LOCKED) UPDATE … FROM due … RETURNING``.

        On PostgreSQL the sub-select skips rows another claimer holds, so concurrent workers
        split the batch instead of queueing on it; the outer ``status = 'pending'`` re-check
        makes a row claimed in between drop out. The sub-select is a CTE because a locking
        CTE is evaluated exactly once, whereas ``IN (subquery)`` may be re-run by a nested
        loop and then lock (and hand out) more rows than ``limit``; ``UPDATE … FROM due``
        lets the planner start from the at most ``limit`` due ids. SQLite ignores
        ``FOR UPDATE``: there the unit of work runs under ``BEGIN IMMEDIATE``, so claimers
        are serialised.

        Built once per shape with bind parameters; ``bound`` builds a copy with the values
        inlined, for EXPLAIN.
        """
        t = self.table

        def param(name: str, type_: Any = None, *, expanding: bool = False) -> sa.BindParameter[Any]:
            value = bound[name] if bound is not None else None
            return sa.bindparam(name, value, type_=type_, expanding=expanding)

        def build() -> sa.Update:
            pending = sa.literal(c.INTENT_PENDING, sa.Text(), literal_execute=True)
            due = sa.select(t.c.id).where(
                t.c.status == pending, t.c.due_at <= param("b_now", t.c.due_at.type)
            )
            if with_ids:
                due = due.where(t.c.id.in_(param("b_ids", expanding=True)))
            due_ids = (
                due.order_by(t.c.priority, t.c.due_at, t.c.id)
                .limit(param("b_limit", sa.Integer()))
                .with_for_update(skip_locked=True)
                .cte("due")
            )
            values: dict[str, Any] = {
                "status": sa.literal(c.INTENT_SENDING, sa.Text()),
                "lease_owner": param("v_owner", t.c.lease_owner.type),
                "lease_until": param("v_lease_until", t.c.lease_until.type),
                "attempt_count": t.c.attempt_count + 1,
            }
            if "updated_at" in self._s.spec.bookkeeping:
                values["updated_at"] = param("v_updated_at", t.c.updated_at.type)
            return (
                sa.update(t)
                .where(t.c.id == due_ids.c.id, t.c.status == pending)
                .values(values)
                .returning(*self._s.columns)
            )

        if bound is not None:
            return build()
        return self._s.cached(("claim", with_ids), build)  # type: ignore[no-any-return]

    def claim_statement(
        self,
        *,
        owner: str,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
        ids: Sequence[int] | None = None,
    ) -> sa.Update:
        """The claim's ``UPDATE`` with its values inlined (for EXPLAIN)."""
        params = self._claim_params(owner, now, lease_until, limit, ids)
        return self._claim(ids is not None, params)

    def _claim_params(
        self, owner: str, now: dt.datetime, lease_until: dt.datetime, limit: int, ids: Sequence[int] | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "b_now": now,
            "b_limit": limit,
            "v_owner": owner,
            "v_lease_until": lease_until,
            "v_updated_at": utcnow(),
        }
        if ids is not None:
            params["b_ids"] = list(ids)
        return params

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
        params = self._claim_params(owner, now, lease_until, limit, ids)
        claimed = [self._entity(row) for row in await self._execute(self._claim(ids is not None), params)]
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
