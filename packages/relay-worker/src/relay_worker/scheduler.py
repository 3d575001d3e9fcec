"""The scheduler (SPEC S5.11): periodic jobs under named database leases; it never sends.

Jobs:

=====================  ==========================  ==============================================
``due_actions``        every pass (``tick_seconds``)  reminders and team escalations now due
``outbox_relay``       every pass                  reclaim expired delivery leases, then enqueue
                                                   due pending intents not enqueued for
                                                   ``delivery.requeue_after_seconds``
``silence_lifecycle``  30 s                        silences that started or ended (S3.6)
=====================  ==========================  ==============================================

Each job runs only while this scheduler holds the lease named after it (``uow.leases``:
insert, renew, or take over an expired one with the next fencing token); leases are renewed
every third of their TTL, and released on a graceful stop. Correctness does not depend on
the lease: every timer action in the core is a conditional update and intents have unique
idempotency keys, so a scheduler that lost its lease while paused changes nothing. Time
comes from the relay's clock; a database that cannot be reached makes the loop back off
from 1 s to 30 s, then carry on where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import attrs

from relay_adapters.dispatch_redis import pending_unqueued
from relay_adapters.logging import get_logger
from relay_core.bootstrap import Relay
from relay_core.domain.errors import StorageUnavailable
from relay_core.domain.model import SchedulerLease
from relay_core.ports.dispatch import Dispatcher
from relay_core.services import delivery, lifecycle

__all__ = [
    "DUE_ACTIONS",
    "EXPIRED_ROW_JOBS",
    "OUTBOX_RELAY",
    "SILENCE_LIFECYCLE",
    "Job",
    "JobOutcome",
    "OutboxDispatcher",
    "Scheduler",
    "default_holder",
    "expired_rows_job",
]

DUE_ACTIONS: Final = "due_actions"
OUTBOX_RELAY: Final = "outbox_relay"
SILENCE_LIFECYCLE: Final = "silence_lifecycle"

_log = get_logger("relay.scheduler")
_MIN_BACKOFF: Final = 1.0


def default_holder() -> str:
    """``<host>:<pid>:<random>``: unique per scheduler instance, readable in the lease table."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@runtime_checkable
class OutboxDispatcher(Protocol):
    """A dispatcher that reports which ids it sent (``RedisDispatcher``); errors propagate."""

    async def dispatch(self, intent_ids: Sequence[int]) -> list[int]: ...


@attrs.frozen(kw_only=True)
class Job:
    """A named periodic job; ``interval`` None means every pass."""

    name: str
    interval: float | None
    run: Callable[[dt.datetime], Awaitable[Any]]


@attrs.frozen(kw_only=True)
class JobOutcome:
    """What one pass did with one job."""

    name: str
    ran: bool
    result: Any = None
    reason: str = ""
    """Why it did not run: ``not_due``, ``lease_held_elsewhere`` or ``error``."""


class Scheduler:
    """Runs the scheduler jobs of one process.

    Args:
        relay: The relay whose storage, clock and settings the jobs use.
        holder: This instance's lease holder name (:func:`default_holder` by default).
        tick_seconds: Seconds between passes of :meth:`run_forever` (``scheduler.tick_seconds``).
        lease_ttl: Lease TTL in seconds (``scheduler.lease_ttl_seconds``); renewed every third.
        dispatcher: Receives due intents found by ``outbox_relay`` (a ``RedisDispatcher`` in
            production). None when workers poll the outbox: then ``outbox_relay`` only
            reclaims expired leases.
        silence_interval: Seconds between ``silence_lifecycle`` runs (30).
        max_backoff: Longest wait after ``StorageUnavailable``.
        sleep: Replaces the wait between passes (tests); it gets the seconds to wait. The
            default waits on the stop signal, so :meth:`stop` takes effect at once.
        extra_jobs: More jobs (e.g. ``voice_status_poll`` once the core has it), each under
            its own lease named after it.
    """

    def __init__(
        self,
        relay: Relay,
        *,
        holder: str | None = None,
        tick_seconds: float = 1.0,
        lease_ttl: int = 30,
        dispatcher: Dispatcher | None = None,
        silence_interval: float = 30.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        extra_jobs: Sequence[Job] = (),
    ) -> None:
        if lease_ttl <= 0:
            raise ValueError("lease_ttl must be positive")
        self.relay = relay
        self.holder = holder or default_holder()
        self.tick_seconds = tick_seconds
        self.lease_ttl = lease_ttl
        self.dispatcher = dispatcher
        self.max_backoff = max_backoff
        self._sleep = sleep
        self.jobs: tuple[Job, ...] = (
            Job(name=DUE_ACTIONS, interval=None, run=self._due_actions),
            Job(name=OUTBOX_RELAY, interval=None, run=self._outbox_relay),
            Job(name=SILENCE_LIFECYCLE, interval=silence_interval, run=self._silence_lifecycle),
            *extra_jobs,
        )
        names = [job.name for job in self.jobs]
        if len(names) != len(set(names)):
            raise ValueError(f"job names must be unique: {names}")
        self._leases: dict[str, SchedulerLease] = {}
        self._last_run: dict[str, dt.datetime] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False
        self.backoff = 0.0
        """The current wait after ``StorageUnavailable`` (0 when healthy)."""

    # --- leases ------------------------------------------------------------------------

    @property
    def last_success(self) -> dict[str, dt.datetime]:
        """Job name -> relay time of its last successful run here (for metrics, S9.9)."""
        return dict(self._last_run)

    @property
    def held_leases(self) -> dict[str, SchedulerLease]:
        """The leases this instance believes it holds (name -> lease)."""
        return dict(self._leases)

    def _lease_fresh(self, name: str, now: dt.datetime) -> bool:
        lease = self._leases.get(name)
        if lease is None or lease.holder != self.holder:
            return False
        renew_at = lease.renewed_at + dt.timedelta(seconds=self.lease_ttl / 3)
        return now < renew_at and now < lease.expires_at

    async def _hold(self, names: Sequence[str], now: dt.datetime) -> set[str]:
        """Acquire or renew the leases ``names`` (one transaction); the names held."""
        wanted = [n for n in names if not self._lease_fresh(n, now)]
        if wanted:
            got: dict[str, SchedulerLease | None] = {}
            async with self.relay.uow_factory() as uow:
                for name in wanted:
                    got[name] = await uow.leases.acquire(name, self.holder, now, self.lease_ttl)
                await uow.commit()
            for name, lease in got.items():
                if lease is not None and lease.holder == self.holder:
                    previous = self._leases.get(name)
                    if previous is None or previous.fencing_token != lease.fencing_token:
                        _log.info(
                            "relay.scheduler.lease_acquired",
                            job=name,
                            holder=self.holder,
                            fencing_token=lease.fencing_token,
                        )
                    self._leases[name] = lease
                elif self._leases.pop(name, None) is not None:
                    _log.info("relay.scheduler.lease_lost", job=name, holder=self.holder)
        return {n for n in names if self._valid(n, now)}

    def _valid(self, name: str, now: dt.datetime) -> bool:
        lease = self._leases.get(name)
        return lease is not None and lease.holder == self.holder and now < lease.expires_at

    async def release_leases(self) -> None:
        """Give up every lease held (graceful stop), so another scheduler takes over at once."""
        if not self._leases:
            return
        names = list(self._leases)
        self._leases.clear()
        async with self.relay.uow_factory() as uow:
            for name in names:
                await uow.leases.release(name, self.holder)
            await uow.commit()
        _log.info("relay.scheduler.leases_released", holder=self.holder, jobs=names)

    # --- jobs --------------------------------------------------------------------------

    async def _due_actions(self, now: dt.datetime) -> int:
        return await lifecycle.due_actions(self.relay.ctx, now=now)

    async def _silence_lifecycle(self, now: dt.datetime) -> tuple[int, int]:
        return await self.relay.silence_lifecycle(now)

    async def _outbox_relay(self, now: dt.datetime) -> dict[str, int]:
        reclaimed = await delivery.reclaim_expired(self.relay.ctx, now=now)
        enqueued = 0
        if self.dispatcher is not None:
            ids = await self.pending_unqueued(now)
            try:
                if not ids:
                    pass
                elif isinstance(self.dispatcher, OutboxDispatcher):
                    enqueued = len(await self.dispatcher.dispatch(ids))
                else:
                    await self.dispatcher.enqueue(ids)
                    enqueued = len(ids)
            except StorageUnavailable:
                raise
            except Exception as exc:
                # The broker is down: the intents stay pending and the next pass tries again.
                _log.warning(
                    "relay.scheduler.enqueue_failed",
                    pending=len(ids),
                    error_type=type(exc).__name__,
                    error=str(exc)[:300],
                )
        return {"reclaimed": reclaimed, "enqueued": enqueued}

    async def pending_unqueued(self, now: dt.datetime) -> list[int]:
        """Ids of due pending intents that need a message (SPEC S5.8), most urgent first."""
        return await pending_unqueued(self.relay, now)

    # --- passes ------------------------------------------------------------------------

    def _due(self, job: Job, now: dt.datetime) -> bool:
        if job.interval is None:
            return True
        last = self._last_run.get(job.name)
        if last is None:
            return True
        # Half a tick of slack: wall-clock time and the loop's monotonic sleeps drift apart.
        slack = min(self.tick_seconds / 2, job.interval / 2)
        return (now - last).total_seconds() >= job.interval - slack

    async def run_once(self) -> list[JobOutcome]:
        """One pass: renew or take the leases, then run each due job this instance holds.

        ``StorageUnavailable`` propagates (after the jobs not yet run are skipped), any
        other error of a job is logged and the next job runs.
        """
        now = self.relay.clock.now()
        names = [job.name for job in self.jobs]
        held = await self._hold(names, now)
        outcomes: list[JobOutcome] = []
        for job in self.jobs:
            now = self.relay.clock.now()
            if job.name not in held or not self._valid(job.name, now):
                outcomes.append(JobOutcome(name=job.name, ran=False, reason="lease_held_elsewhere"))
                continue
            if not self._due(job, now):
                outcomes.append(JobOutcome(name=job.name, ran=False, reason="not_due"))
                continue
            started = asyncio.get_running_loop().time()
            try:
                result = await job.run(now)
            except StorageUnavailable:
                self._job_metrics(job.name, started, success=False)
                raise
            except Exception as exc:
                self._job_metrics(job.name, started, success=False)
                _log.error(
                    "relay.scheduler.job_failed",
                    job=job.name,
                    error_type=type(exc).__name__,
                    error=str(exc)[:500],
                    exc_info=True,
                )
                outcomes.append(JobOutcome(name=job.name, ran=False, reason="error"))
                continue
            self._last_run[job.name] = now
            self._job_metrics(job.name, started, success=True)
            duration_ms = round((asyncio.get_running_loop().time() - started) * 1000, 1)
            if _worth_logging(result):
                _log.info("relay.scheduler.job_done", job=job.name, result=result, duration_ms=duration_ms)
            outcomes.append(JobOutcome(name=job.name, ran=True, result=result))
        return outcomes

    def _job_metrics(self, name: str, started: float, *, success: bool) -> None:
        """``relay_scheduler_job_duration_seconds`` / ``..._last_success_timestamp_seconds`` (S9.9)."""
        seconds = asyncio.get_running_loop().time() - started
        self.relay.ctx.metrics.job_finished(job=name, seconds=seconds, success=success, timestamp=time.time())

    async def run_forever(self) -> None:
        """Run passes every ``tick_seconds`` until :meth:`stop`; then release the leases.

        A pass that fails (``StorageUnavailable``, or anything unexpected) is retried after
        1 s, 2 s, 4 s … up to ``max_backoff``; the first good pass resets the wait.
        """
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stop_requested:
            self._stop_event.set()
        _log.info("relay.scheduler.started", holder=self.holder, tick_seconds=self.tick_seconds)
        try:
            while not self._stop_event.is_set():
                try:
                    await self.run_once()
                except Exception as exc:
                    self.backoff = min(max(self.backoff * 2, _MIN_BACKOFF), self.max_backoff)
                    if isinstance(exc, StorageUnavailable):
                        _log.warning(
                            "relay.scheduler.storage_unavailable", retry_in=self.backoff, error=str(exc)
                        )
                    else:
                        _log.error(
                            "relay.scheduler.pass_failed",
                            retry_in=self.backoff,
                            error_type=type(exc).__name__,
                            exc_info=True,
                        )
                    await self._pause(self.backoff)
                    continue
                if self.backoff:
                    _log.info("relay.scheduler.storage_recovered")
                self.backoff = 0.0
                await self._pause(self.tick_seconds)
        finally:
            try:
                await self.release_leases()
            except Exception as exc:  # the database may be the reason we stop
                _log.warning("relay.scheduler.release_failed", error_type=type(exc).__name__)
            _log.info("relay.scheduler.stopped", holder=self.holder)

    async def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        assert self._stop_event is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return after the current pass (thread-safe)."""
        self._stop_requested = True
        loop, event = self._loop, self._stop_event
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    @property
    def stopping(self) -> bool:
        return self._stop_requested


def _worth_logging(result: Any) -> bool:
    if isinstance(result, dict):
        return any(bool(v) for v in result.values())
    if isinstance(result, tuple):
        return any(bool(v) for v in result)
    return bool(result)


def voice_status_poll_job(relay: Relay, interval: float = 30.0) -> Job:
    """The ``voice_status_poll`` job (SPEC S7.7): polling-only voice providers, every 30 s."""
    from relay_core.services.voice import poll_voice_calls

    async def run(now: dt.datetime) -> int:
        return await poll_voice_calls(relay.ctx, now=now)

    return Job(name="voice_status_poll", interval=interval, run=run)


def retention_cleanup_job(relay: Relay, policy: Any, interval: float = 86400.0) -> Job:
    """The ``retention_cleanup`` job (SPEC S10.7): one ``relay retention run`` pass per interval.

    ``policy`` is a :class:`relay_core.services.retention.RetentionPolicy`.
    """
    from relay_core.services.retention import run_retention

    async def run(now: dt.datetime) -> dict[str, int]:
        report = await run_retention(relay.uow_factory, policy, now=now)
        return {kind: count for kind, count in report.counts.items() if count}

    return Job(name="retention_cleanup", interval=interval, run=run)


#: The hourly jobs that delete expired rows (SPEC S5.11): job name -> repository.
EXPIRED_ROW_JOBS: Final = {
    "callback_receipt_cleanup": "callback_receipts",
    "action_token_cleanup": "action_tokens",
}


def expired_rows_job(relay: Relay, name: str, *, batch_size: int = 500, interval: float = 3600.0) -> Job:
    """``callback_receipt_cleanup`` or ``action_token_cleanup``: delete rows whose ``expires_at`` has
    passed, in batches of ``batch_size`` (one transaction each); the job's result is the count."""
    repository = EXPIRED_ROW_JOBS[name]

    async def run(now: dt.datetime) -> int:
        removed = 0
        while True:
            async with relay.uow_factory() as uow:
                repo = getattr(uow, repository)
                rows = await repo.find(expires_at__lt=now, limit=batch_size, order_by="id")
                for row in rows:
                    await repo.delete(row.id)
                await uow.commit()
            removed += len(rows)
            if len(rows) < batch_size:
                return removed

    return Job(name=name, interval=interval, run=run)
