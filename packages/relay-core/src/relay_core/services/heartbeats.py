"""Process heartbeats (SPEC S1.8, S5.11 ``process_heartbeat``): every web, worker and scheduler
process upserts its own row every 10 s; rows not seen for a while are deleted."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import logging
import os
import secrets
from collections.abc import Sequence

import attrs

from relay_core.domain.model import ProcessHeartbeat
from relay_core.services.context import Context

log = logging.getLogger("relay.heartbeat")

#: Roles of SPEC S1.8.
ROLES: frozenset[str] = frozenset({"web", "worker", "scheduler"})
#: Interval of the ``process_heartbeat`` job (S5.11).
HEARTBEAT_INTERVAL_SECONDS = 10.0
#: A row not refreshed for this long belongs to a process that is gone and is deleted.
STALE_AFTER_SECONDS = 300.0


@attrs.frozen(kw_only=True)
class ProcessIdentity:
    """What a process says about itself in its heartbeat row."""

    process_id: str
    role: str
    host: str
    version: str
    started_at: dt.datetime

    def __attrs_post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown process role {self.role!r}")


async def beat(
    ctx: Context, identities: Sequence[ProcessIdentity], *, now: dt.datetime | None = None
) -> None:
    """Upsert the rows of ``identities`` with ``seen_at = now`` (one transaction)."""
    now = now or ctx.clock.now()
    async with ctx.uow_factory() as uow:
        for me in identities:
            row = await uow.process_heartbeats.first(process_id=me.process_id)
            if row is None:
                # Each process writes only its own row, so no other writer races this insert.
                await uow.process_heartbeats.add(
                    ProcessHeartbeat(
                        process_id=me.process_id,
                        role=me.role,
                        host=me.host,
                        version=me.version,
                        started_at=me.started_at,
                        seen_at=now,
                    )
                )
            else:
                await uow.process_heartbeats.update_where(row.id, {}, {"seen_at": now})
        await uow.commit()


async def remove_stale(
    ctx: Context, *, now: dt.datetime | None = None, older_than_seconds: float = STALE_AFTER_SECONDS
) -> int:
    """Delete rows not refreshed for ``older_than_seconds``; returns how many."""
    now = now or ctx.clock.now()
    cutoff = now - dt.timedelta(seconds=older_than_seconds)
    async with ctx.uow_factory() as uow:
        stale = await uow.process_heartbeats.find(seen_at__lt=cutoff, limit=500)
        for row in stale:
            await uow.process_heartbeats.delete(row.id)
        await uow.commit()
    return len(stale)


async def forget(ctx: Context, process_ids: Sequence[str]) -> None:
    """Delete the rows of a process that stops cleanly."""
    async with ctx.uow_factory() as uow:
        for pid in process_ids:
            row = await uow.process_heartbeats.first(process_id=pid)
            if row is not None:
                await uow.process_heartbeats.delete(row.id)
        await uow.commit()


async def list_processes(ctx: Context) -> list[ProcessHeartbeat]:
    """Every heartbeat row, newest first."""
    async with ctx.uow_factory() as uow:
        return await uow.process_heartbeats.find(order_by="-seen_at", limit=1000)


def process_version() -> str:
    """The installed Relay version (``relay-core``'s distribution), ``0+unknown`` if not installed."""
    try:
        return importlib.metadata.version("relay-core")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def identities(roles: Sequence[str], started_at: dt.datetime, *, host: str) -> list[ProcessIdentity]:
    """This process's heartbeat identities: one row per role it plays (``relay serve`` is web,
    and with its embedded loops also worker and scheduler). ``process_id`` is
    ``<host>:<pid>:<random>:<role>``, unique per process start; the shell passes ``host``
    (the core does no I/O)."""
    base = f"{host}:{os.getpid()}:{secrets.token_hex(3)}"
    version = process_version()
    return [
        ProcessIdentity(
            process_id=f"{base}:{role}", role=role, host=host, version=version, started_at=started_at
        )
        for role in roles
    ]


class HeartbeatRunner:
    """The ``process_heartbeat`` job (S5.11) of one process: upsert its rows every ``interval``
    seconds, delete stale rows of processes that are gone, report job metrics (S9.9), and
    delete its own rows on a clean stop. Runs in every process, not under a lease."""

    job = "process_heartbeat"

    def __init__(
        self,
        ctx: Context,
        roles: Sequence[str],
        *,
        host: str,
        interval: float = HEARTBEAT_INTERVAL_SECONDS,
        stale_after: float = STALE_AFTER_SECONDS,
    ) -> None:
        self.ctx = ctx
        self.identities = identities(roles, ctx.clock.now(), host=host)
        self.interval = interval
        self.stale_after = stale_after
        self._stop = asyncio.Event()

    async def once(self) -> None:
        started = self.ctx.clock.now()
        ok = False
        try:
            now = self.ctx.clock.now()
            await beat(self.ctx, self.identities, now=now)
            await remove_stale(self.ctx, now=now, older_than_seconds=self.stale_after)
            ok = True
        finally:
            ended = self.ctx.clock.now()
            self.ctx.metrics.job_finished(
                job=self.job,
                seconds=(ended - started).total_seconds(),
                success=ok,
                timestamp=ended.timestamp(),
            )

    async def run(self) -> None:
        """Beat until :meth:`stop`; errors are logged and retried at the next interval."""
        self._stop.clear()
        while not self._stop.is_set():
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("process heartbeat failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
        with contextlib.suppress(Exception):
            await forget(self.ctx, [me.process_id for me in self.identities])

    def stop(self) -> None:
        self._stop.set()
