"""An aiosqlite-compatible connection that runs ``sqlite3`` calls on the event loop (SPEC S12).

aiosqlite runs every call (execute, fetchall, close of the cursor, commit) on a worker thread
and hands the result back through a future: three thread hops per statement, about 0.2 ms of
CPU and 0.3–0.4 ms of latency each time, where the statement itself (an indexed lookup or a
one-row insert in WAL mode with ``synchronous=NORMAL``) costs 5–50 µs. On intake that hand-off
was most of the cost of an alert.

:class:`InlineConnection` offers the part of aiosqlite's interface SQLAlchemy's ``aiosqlite``
dialect uses (through ``create_async_engine(async_creator=...)``), and runs each call inline.
Nothing may block the loop for long, so the one wait SQLite can impose is taken asynchronously:
the connection's own ``busy_timeout`` is 0, and a statement refused with ``SQLITE_BUSY``
(another process holds the write lock) is retried after ``asyncio.sleep`` until the configured
busy timeout has passed, then fails with the same ``database is locked`` error as before. A
refused statement has done nothing, so retrying it is safe. Within one process, transactions
already queue on the unit-of-work factory's lock, so the retry only serves other processes.

What still runs on the loop: the statements themselves, and the WAL auto-checkpoint of a
commit now and then (a few ms). A long query (a large list, a retention delete) holds the loop
for its duration instead of a thread; it held the process's SQLite lock before anyway.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self

__all__ = ["InlineConnection", "InlineCursor", "connect_inline"]

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _BUSY_CODES
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


async def _retry_busy(call: Callable[[], Any], busy_timeout: float) -> Any:
    """``call()``; on ``SQLITE_BUSY`` sleep (1 ms doubling to 50 ms) and retry until the timeout."""
    try:
        return call()
    except sqlite3.OperationalError as exc:
        if not _is_busy(exc) or busy_timeout <= 0:
            raise
    loop = asyncio.get_running_loop()
    deadline = loop.time() + busy_timeout
    delay = 0.001
    while True:
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or loop.time() >= deadline:
                raise
        delay = min(delay * 2, 0.05)


class InlineCursor:
    """``aiosqlite.Cursor``'s interface over a ``sqlite3.Cursor``, without a thread."""

    def __init__(self, connection: InlineConnection) -> None:
        self._owner = connection
        self._cursor = connection._conn.cursor()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Self:
        await _retry_busy(lambda: self._cursor.execute(sql, parameters), self._owner.busy_timeout)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any] | dict[str, Any]]) -> Self:
        rows = list(parameters)
        await _retry_busy(lambda: self._cursor.executemany(sql, rows), self._owner.busy_timeout)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _ImmediateQueue:
    """Stands in for aiosqlite's request queue: SQLAlchemy's ``isolation_level`` setter puts
    ``(future, function)`` on it; the function runs at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(exc)
        else:
            future.set_result(result)


class InlineConnection:
    """``aiosqlite.Connection``'s interface (as SQLAlchemy uses it) over a ``sqlite3.Connection``."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self._connection: sqlite3.Connection | None = conn
        self.busy_timeout = busy_timeout
        self._tx = _ImmediateQueue()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        cursor = InlineCursor(self)
        return await cursor.execute(sql, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        await _retry_busy(self._conn.commit, self.busy_timeout)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            conn, self._connection = self._connection, None
            conn.close()

    def stop(self) -> None:
        """Forced close (SQLAlchemy's terminate)."""
        if self._connection is not None:
            conn, self._connection = self._connection, None
            conn.close()


def connect_inline(database: str, busy_timeout_ms: int) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: inline connections to a database file."""

    async def creator() -> InlineConnection:
        # busy_timeout 0: SQLite never sleeps on the loop; InlineCursor retries asynchronously.
        conn = sqlite3.connect(database, timeout=0, isolation_level=None, check_same_thread=False)
        return InlineConnection(conn, busy_timeout_ms / 1000)

    return creator
