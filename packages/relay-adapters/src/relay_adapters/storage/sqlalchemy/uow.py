"""Unit of work and engine set-up for SQLite (aiosqlite's dialect; database files run ``sqlite3``
on the event loop through :mod:`.sqlite_inline`) and PostgreSQL (asyncpg).

One unit of work is one database transaction on one pooled connection. On SQLite every unit
of work starts with ``BEGIN IMMEDIATE``: it takes the write lock up front, so a transaction
never fails half-way on a lock upgrade and the outbox claim is safe across processes; readers
of other processes are not blocked thanks to WAL. Within one process, units of work queue on
an ``asyncio.Lock`` first, which hands the lock over without SQLite's busy-wait sleeps.
Waiting longer than ``sqlite_busy_timeout_ms`` raises ``StorageUnavailable`` (SPEC S2.16).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from relay_adapters.storage.sqlalchemy.cache import ReadCache
from relay_adapters.storage.sqlalchemy.encryption import SecretBox
from relay_adapters.storage.sqlalchemy.repositories import (
    SqlAlchemyIntentRepository,
    SqlAlchemyLeaseRepository,
    SqlAlchemyRepository,
    translate_error,
)
from relay_adapters.storage.sqlalchemy.sqlite_inline import InlineConnection, connect_inline
from relay_adapters.storage.sqlalchemy.tables import json_dumps
from relay_core.domain.errors import StorageUnavailable
from relay_core.domain.model import (
    ActionToken,
    Alert,
    AlertEvent,
    AlertGroup,
    ApiToken,
    AuditLog,
    CallbackEvent,
    CallbackReceipt,
    Category,
    CategoryRule,
    Channel,
    DeliveryAttempt,
    ExplainTrace,
    Group,
    GroupMembership,
    Notification,
    ProcessHeartbeat,
    RoleGroup,
    RoleGroupContact,
    RoleGroupMember,
    Rotation,
    RotationLayer,
    RotationMember,
    RotationOverride,
    Route,
    Silence,
    SilenceApplication,
    Subscription,
    SubscriptionPreference,
    Team,
    TeamMembership,
    User,
)
from relay_core.ports.storage import ENTITIES, IntentRepository, LeaseRepository, Repository

__all__ = ["SqlAlchemyUnitOfWork", "SqlAlchemyUnitOfWorkFactory", "async_url", "make_engine"]

#: PostgreSQL ends a session idle inside a transaction this long (ms), releasing its locks.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 15_000

# Sync drivers people put in URLs, mapped to the async driver of the same database.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


def async_url(url: str | sa.URL) -> sa.URL:
    """``sqlite:///relay.db`` -> ``sqlite+aiosqlite:///relay.db``; ``postgresql://`` -> asyncpg."""
    parsed = sa.make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def make_engine(
    url: str | sa.URL,
    *,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int = 10,
    connect_timeout: float = 5,
    sqlite_busy_timeout_ms: int = 5000,
    sqlite_inline: bool = True,
) -> AsyncEngine:
    """An async engine set up for Relay (SPEC S10.3 ``database.*``).

    SQLite: WAL, ``synchronous=NORMAL``, foreign keys on, the busy timeout, and
    ``BEGIN IMMEDIATE`` for every transaction (SQLAlchemy emits BEGIN itself instead of the
    ``sqlite3`` module's legacy transaction handling). PostgreSQL: a connect timeout that also
    bounds the wait for a pooled connection, and pre-ping so a restarted server is survived.

    ``sqlite_inline`` (the default): a database file is opened through
    :mod:`.sqlite_inline`, which runs ``sqlite3`` on the event loop instead of aiosqlite's
    thread and waits for another process's write lock asynchronously.
    """
    target = async_url(url)
    backend = target.get_backend_name()
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps}
    if backend == "sqlite":
        database = target.database or ""
        if database and database != ":memory:" and "mode=memory" not in str(target):
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=connect_timeout)
        kwargs["connect_args"] = {"timeout": sqlite_busy_timeout_ms / 1000}
        if sqlite_inline and database and database != ":memory:" and not target.query:
            kwargs["async_creator"] = connect_inline(database, sqlite_busy_timeout_ms)
        engine = create_async_engine(target, **kwargs)
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        return engine
    if backend == "postgresql":
        kwargs.update(
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=connect_timeout,
            pool_pre_ping=True,
        )
        if target.get_driver_name() == "asyncpg":
            kwargs["connect_args"] = {
                "timeout": connect_timeout,
                "server_settings": {
                    "application_name": "relay",
                    # A client frozen inside a transaction (SIGSTOP, a VM pause) must not keep
                    # its row locks, e.g. on a scheduler lease, longer than this (SPEC S13.2):
                    # the server ends its session; relay never waits on I/O inside one.
                    "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
                },
            }
        else:
            kwargs["connect_args"] = {"connect_timeout": int(connect_timeout)}
        return create_async_engine(target, **kwargs)
    raise ValueError(f"unsupported database URL {target.render_as_string(hide_password=True)!r}")


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN (below) instead of the sqlite3 module's implicit one.
        dbapi_connection.isolation_level = None
        # An inline connection never sleeps on the loop: it retries SQLITE_BUSY asynchronously.
        inline = isinstance(getattr(dbapi_connection, "_connection", None), InlineConnection)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {0 if inline else int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class SqlAlchemyUnitOfWork:
    """One transaction over every repository (``relay_core.ports.storage.UnitOfWork``).

    Repositories are :class:`SqlAlchemyRepository` (``intents``: :class:`SqlAlchemyIntentRepository`,
    ``leases``: :class:`SqlAlchemyLeaseRepository`); they are typed with the port's protocols
    because the port declares them as plain (invariant) attributes.
    """

    groups: Repository[Group]
    users: Repository[User]
    group_memberships: Repository[GroupMembership]
    teams: Repository[Team]
    team_memberships: Repository[TeamMembership]
    api_tokens: Repository[ApiToken]
    audit: Repository[AuditLog]
    rotations: Repository[Rotation]
    rotation_layers: Repository[RotationLayer]
    rotation_members: Repository[RotationMember]
    overrides: Repository[RotationOverride]
    categories: Repository[Category]
    routes: Repository[Route]
    channels: Repository[Channel]
    silences: Repository[Silence]
    category_rules: Repository[CategoryRule]
    role_groups: Repository[RoleGroup]
    role_group_members: Repository[RoleGroupMember]
    role_group_contacts: Repository[RoleGroupContact]
    subscriptions: Repository[Subscription]
    subscription_preferences: Repository[SubscriptionPreference]
    alert_groups: Repository[AlertGroup]
    alerts: Repository[Alert]
    silence_applications: Repository[SilenceApplication]
    events: Repository[AlertEvent]
    traces: Repository[ExplainTrace]
    intents: IntentRepository
    notifications: Repository[Notification]
    attempts: Repository[DeliveryAttempt]
    callbacks: Repository[CallbackEvent]
    callback_receipts: Repository[CallbackReceipt]
    action_tokens: Repository[ActionToken]
    process_heartbeats: Repository[ProcessHeartbeat]
    leases: LeaseRepository

    def __init__(self, factory: SqlAlchemyUnitOfWorkFactory) -> None:
        self._factory = factory
        self._conn: AsyncConnection | None = None
        self.secret_box: SecretBox = factory.secret_box
        for name in ENTITIES:
            repo: Any
            if name == "intents":
                repo = SqlAlchemyIntentRepository(self, name)
            else:
                repo = SqlAlchemyRepository(self, name)
            setattr(self, name, repo)
        self.leases = SqlAlchemyLeaseRepository(self)
        self.read_cache: ReadCache | None = factory.read_cache
        self.written: set[str] = set()
        self._entered = False
        self._lazy = factory.lazy_begin

    @property
    def connection(self) -> AsyncConnection:
        """The transaction's connection; only inside ``async with`` (after the first statement
        when the factory begins transactions lazily)."""
        if self._conn is None:
            raise RuntimeError("a unit of work is used inside `async with uow:` only")
        return self._conn

    async def lazy_connection(self) -> AsyncConnection:
        """The transaction's connection, beginning the transaction on first use."""
        if self._conn is None:
            if not self._entered:
                raise RuntimeError("a unit of work is used inside `async with uow:` only")
            await self._begin()
        assert self._conn is not None
        return self._conn

    def mark_written(self, table: str) -> None:
        """A statement of this unit of work writes ``table``: drop its cached reads."""
        self.written.add(table)
        if self.read_cache is not None:
            self.read_cache.invalidate(table)

    def _end(self) -> None:
        if self.read_cache is not None:
            for table in self.written:
                self.read_cache.invalidate(table)
        self.written = set()

    @property
    def dialect_name(self) -> str:
        return self._factory.dialect_name

    async def __aenter__(self) -> Self:
        if self._conn is not None or self._entered:
            raise RuntimeError("this unit of work is already in use")
        self._entered = True
        if not self._lazy:
            try:
                await self._begin()
            except BaseException:
                self._entered = False
                raise
        return self

    async def _begin(self) -> None:
        """Take the connection (and on SQLite the process-local write lock) and BEGIN."""
        await self._factory._acquire_local(self)
        conn: AsyncConnection | None = None
        try:
            conn = await self._factory.engine.connect()
            await conn.begin()
        except BaseException as exc:
            if conn is not None:
                await _close_quietly(conn)
            self._factory._release_local(self)
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc
        self._conn = conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        self._entered = False
        try:
            if conn is not None:
                await _close_quietly(conn)
        finally:
            self._end()
            self._factory._release_local(self)

    async def commit(self) -> None:
        if self._conn is None and self._lazy and self._entered:
            return  # nothing was executed: nothing to commit
        try:
            await self.connection.commit()
            self._end()
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def rollback(self) -> None:
        if self._conn is None and self._lazy and self._entered:
            return
        try:
            await self.connection.rollback()
            self._end()
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc


def _mapped(exc: BaseException) -> Exception | None:
    """The domain error for a failure to connect, begin or commit; None to re-raise as is."""
    if isinstance(exc, (sa_exc.SQLAlchemyError, OSError)):
        return translate_error(exc)
    return None


async def _close_quietly(conn: AsyncConnection) -> None:
    """Roll back and return the connection to the pool; a broken one is discarded."""
    try:
        await conn.rollback()
    except Exception:
        with contextlib.suppress(Exception):  # the connection is gone either way
            await conn.invalidate()
    finally:
        await asyncio.shield(conn.close())


class SqlAlchemyUnitOfWorkFactory:
    """Makes units of work over one engine (``relay_core.ports.storage.UnitOfWorkFactory``).

    Args:
        url: ``sqlite:///path/relay.db`` or ``postgresql://user@host/db``; the async driver is
            chosen automatically (aiosqlite, asyncpg).
        echo: log every statement (debugging).
        pool_size, max_overflow: connection pool bounds.
        connect_timeout: seconds to wait for a connection (and for a free pooled one).
        sqlite_busy_timeout_ms: how long SQLite waits for the write lock before
            ``StorageUnavailable``.
        read_cache_ttl: seconds configuration reads are cached across units of work
            (:class:`~relay_adapters.storage.sqlalchemy.cache.ReadCache`); 0 disables it.
        lazy_begin: take the connection and BEGIN at the first statement instead of on
            ``async with``, so a unit of work served entirely from the cache costs nothing;
            ``connection`` is then only available after a repository call.
        encryption_key: the 32-byte key channel and provider secrets are encrypted with at rest
            (:func:`~relay_adapters.storage.sqlalchemy.encryption.derive_encryption_key` of
            ``main.encryption_key``/``main.secret_key``; SPEC S13.4). Every process sharing the
            database must use the same key. None (tools, tests): secrets are written in clear and
            encrypted ones cannot be read.
        sqlite_inline: run SQLite statements on the event loop (:mod:`.sqlite_inline`) rather
            than on aiosqlite's thread; False restores aiosqlite.

    A factory, its engine and its units of work belong to the event loop that first uses
    them (as asyncpg and aiosqlite connections do); ``aclose`` on that loop disposes them.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 10,
        max_overflow: int = 10,
        connect_timeout: float = 5,
        sqlite_busy_timeout_ms: int = 5000,
        read_cache_ttl: float = 0,
        lazy_begin: bool = False,
        encryption_key: bytes | None = None,
        sqlite_inline: bool = True,
    ) -> None:
        self.url = async_url(url)
        self.secret_box = SecretBox(encryption_key)
        self.read_cache: ReadCache | None = ReadCache(read_cache_ttl) if read_cache_ttl > 0 else None
        self.lazy_begin = lazy_begin
        self.engine = make_engine(
            self.url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_timeout=connect_timeout,
            sqlite_busy_timeout_ms=sqlite_busy_timeout_ms,
            sqlite_inline=sqlite_inline,
        )
        self.dialect_name: str = self.engine.dialect.name
        self._local_timeout = sqlite_busy_timeout_ms / 1000
        self._local_lock: asyncio.Lock | None = asyncio.Lock() if self.dialect_name == "sqlite" else None
        self._local_holder: SqlAlchemyUnitOfWork | None = None

    def __call__(self) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(self)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    async def _acquire_local(self, uow: SqlAlchemyUnitOfWork) -> None:
        if self._local_lock is None:
            return
        try:
            async with asyncio.timeout(self._local_timeout):
                await self._local_lock.acquire()
        except TimeoutError:
            raise StorageUnavailable() from None
        self._local_holder = uow

    def _release_local(self, uow: SqlAlchemyUnitOfWork) -> None:
        if self._local_lock is not None and self._local_holder is uow:
            self._local_holder = None
            self._local_lock.release()
