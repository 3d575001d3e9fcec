"""The embedded topology (SPEC S10.4): web + scheduler + in-process worker in one process.

:func:`serve` is what ``relay serve`` runs: prepare the database (migrations), compose the
:class:`~relay_core.bootstrap.Relay`, optionally create demo data, then run uvicorn with the
Litestar app, whose lifespan starts and stops the background loops:

* :class:`EmbeddedWorker` delivers due intents every ``worker.poll_interval_ms`` and at once
  when :class:`InProcessDispatcher` is told that a command committed new intents;
* :class:`SchedulerLoop` runs ``Relay.tick`` (reminders, escalations, lease reclaim) every
  ``scheduler.tick_seconds`` while it holds the ``due_actions`` lease (SPEC S5.11).

Correctness never depends on these loops being alone: timer actions and claims are
compare-and-set in storage, so several processes may run them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from relay_adapters.compose import aclose_relay, ensure_secret_key, redis_dispatcher, relay_from_settings
from relay_adapters.logging import configure_logging, get_logger
from relay_adapters.settings import RelaySettings
from relay_core.bootstrap import Relay
from relay_core.domain.errors import RelayError

if TYPE_CHECKING:
    from relay_adapters.dispatch_redis import RedisDispatcher
from relay_core.services.retention import RetentionPolicy

__all__ = [
    "DUE_ACTIONS_LEASE",
    "EmbeddedWorker",
    "HeartbeatLoop",
    "InProcessDispatcher",
    "SchedulerLoop",
    "StartupError",
    "attach_background",
    "prepare_storage",
    "serve",
]

log = get_logger("relay.runtime")

#: Name of the scheduler lease of the ``due_actions`` job (SPEC S5.11).
DUE_ACTIONS_LEASE = "due_actions"


class StartupError(RuntimeError):
    """Start-up cannot continue; the message tells the operator what to do."""


# --- dispatcher and worker -------------------------------------------------------------------


class InProcessDispatcher:
    """The ``Dispatcher`` port for the embedded worker: committed intents wake it up at once."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.enqueued = 0

    async def enqueue(self, intent_ids: Sequence[int]) -> None:
        if intent_ids:
            self.enqueued += len(intent_ids)
            self._event.set()

    def wake(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, seconds: float) -> bool:
        """Wait until woken or ``seconds`` pass; True when woken."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class _Loop:
    """A background task with a stop signal and bounded shutdown."""

    name = "loop"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"relay-{self.name}")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Signal the loop to stop and wait for it, cancelling it after ``grace_seconds``."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._on_stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._after_stop()

    def _on_stop(self) -> None:
        return None

    async def _after_stop(self) -> None:
        return None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _run(self) -> None:
        raise NotImplementedError


class EmbeddedWorker(_Loop):
    """Delivers due intents in-process (SPEC S10.4 embedded queue).

    Args:
        relay: The relay whose outbox to deliver.
        dispatcher: Wakes the worker when intents are committed; polls only without it.
        poll_interval: Seconds between polls (``worker.poll_interval_ms`` / 1000); intents that
            become due later (group wait, retries) are found by these polls.
        batch_size: Intents claimed per ``deliver_due`` call.
    """

    name = "worker"

    def __init__(
        self,
        relay: Relay,
        *,
        dispatcher: InProcessDispatcher | None = None,
        poll_interval: float = 0.2,
        batch_size: int = 50,
    ) -> None:
        super().__init__()
        self.relay = relay
        self.dispatcher = dispatcher or InProcessDispatcher()
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.delivered = 0

    def _on_stop(self) -> None:
        self.dispatcher.wake()

    async def run_once(self) -> int:
        """Deliver until nothing is due now; returns the intents handled."""
        total = 0
        while not self._stopping.is_set():
            handled = await self.relay.deliver_due(limit=self.batch_size)
            if not handled:
                break
            total += handled
        self.delivered += total
        return total

    async def _run(self) -> None:
        log.info("relay.worker.started", poll_interval=self.poll_interval)
        while not self._stopping.is_set():
            # Clear first: a wake-up that arrives while delivering triggers another round.
            self.dispatcher.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay.worker.error")
            if self._stopping.is_set():
                break
            await self.dispatcher.wait(self.poll_interval)
        log.info("relay.worker.stopped", delivered=self.delivered)


class SchedulerLoop(_Loop):
    """Runs ``Relay.tick`` every ``tick_seconds`` under the ``due_actions`` lease (SPEC S5.11).

    The lease is taken or renewed at every tick; while another scheduler holds it, the tick
    does nothing. On stop the lease is released so another process takes over at once.
    """

    name = "scheduler"

    def __init__(
        self,
        relay: Relay,
        *,
        tick_seconds: float = 1.0,
        lease_ttl_seconds: int = 30,
        holder: str | None = None,
        lease_name: str = DUE_ACTIONS_LEASE,
        retention: Any = None,
        retention_interval: float = 86400.0,
        queue: RedisDispatcher | None = None,
    ) -> None:
        super().__init__()
        self.relay = relay
        self.queue = queue
        """With Redis and no in-process worker: the ``outbox_relay`` enqueue (SPEC S5.8)."""
        self.retention = retention
        """A ``RetentionPolicy`` for the ``retention_cleanup`` pass (SPEC S10.7); None: no cleanup."""
        self.retention_interval = retention_interval
        self._last_retention_pass: dt.datetime | None = None
        self.tick_seconds = tick_seconds
        self.lease_ttl_seconds = lease_ttl_seconds
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_name = lease_name
        self.ticks = 0
        self.has_lease = False
        self._last_silence_pass: dt.datetime | None = None

    async def acquire_lease(self) -> bool:
        """Take or renew the lease; False while another holder's lease is valid."""
        now = self.relay.clock.now()
        async with self.relay.uow_factory() as uow:
            lease = await uow.leases.acquire(self.lease_name, self.holder, now, self.lease_ttl_seconds)
            await uow.commit()
        if (lease is not None) != self.has_lease:
            log.info(
                "relay.scheduler.lease_acquired" if lease is not None else "relay.scheduler.lease_lost",
                lease=self.lease_name,
                holder=self.holder,
                fencing_token=lease.fencing_token if lease is not None else None,
            )
        self.has_lease = lease is not None
        return self.has_lease

    async def run_once(self) -> int | None:
        """One tick: the number of timer actions taken, or None without the lease."""
        if not await self.acquire_lease():
            return None
        async with self._job("due_actions"):
            taken = await self.relay.tick()
        self.ticks += 1
        if self.queue is not None:
            from relay_adapters.dispatch_redis import relay_outbox

            try:
                async with self._job("outbox_relay"):
                    await relay_outbox(self.relay, self.queue, self.relay.clock.now())
            except RelayError:
                raise
            except Exception as exc:  # Redis is down: the intents wait for the next tick
                log.warning("relay.scheduler.enqueue_failed", error_type=type(exc).__name__)
        # The silence lifecycle job (SPEC S3.6) runs every 30 s under the same lease.
        now = self.relay.clock.now()
        if self._last_silence_pass is None or (now - self._last_silence_pass).total_seconds() >= 30:
            async with self._job("silence_lifecycle"):
                await self.relay.silence_lifecycle(now)
            self._last_silence_pass = now
            # S7.7 voice_status_poll, every 30 s under the same lease.
            from relay_core.services.voice import poll_voice_calls

            async with self._job("voice_status_poll"):
                await poll_voice_calls(self.relay.ctx, now=now)
        # S10.7 retention_cleanup, every retention.cleanup_interval_seconds under the same lease.
        if self.retention is not None and (
            self._last_retention_pass is None
            or (now - self._last_retention_pass).total_seconds() >= self.retention_interval
        ):
            from relay_core.services.retention import run_retention

            self._last_retention_pass = now
            async with self._job("retention_cleanup"):
                report = await run_retention(self.relay.uow_factory, self.retention, now=now)
            if report.total:
                log.info("relay.retention.cleaned", **{k: v for k, v in report.counts.items() if v})
        if taken:
            log.info("relay.scheduler.actions_taken", job=self.lease_name, actions=taken)
        return taken

    @contextlib.asynccontextmanager
    async def _job(self, name: str) -> AsyncIterator[None]:
        """Report one job run to ``relay_scheduler_job_duration_seconds`` and, when it succeeds,
        ``relay_scheduler_last_success_timestamp_seconds`` (SPEC S5.11, S9.9)."""
        started = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.relay.ctx.metrics.job_finished(
                job=name, seconds=time.perf_counter() - started, success=ok, timestamp=time.time()
            )

    async def release_lease(self) -> None:
        if not self.has_lease:
            return
        async with self.relay.uow_factory() as uow:
            await uow.leases.release(self.lease_name, self.holder)
            await uow.commit()
        self.has_lease = False

    async def _run(self) -> None:
        log.info("relay.scheduler.started", tick_seconds=self.tick_seconds, holder=self.holder)
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay.scheduler.error", job=self.lease_name)
            await self._sleep(self.tick_seconds)
        log.info("relay.scheduler.stopped", ticks=self.ticks)

    async def _after_stop(self) -> None:
        try:
            await self.release_lease()
        except Exception:
            log.exception("relay.scheduler.release_failed", job=self.lease_name)


class HeartbeatLoop(_Loop):
    """The ``process_heartbeat`` job (SPEC S1.8, S5.11) of this process: one row per role it plays
    (``web``, and ``worker``/``scheduler`` with the embedded loops), every 10 s, no lease."""

    name = "process_heartbeat"

    def __init__(self, relay: Relay, roles: Sequence[str], *, interval: float = 10.0) -> None:
        super().__init__()
        from relay_core.services.heartbeats import HeartbeatRunner

        self.runner = HeartbeatRunner(relay.ctx, roles, host=socket.gethostname(), interval=interval)

    def _on_stop(self) -> None:
        self.runner.stop()

    async def _run(self) -> None:
        await self.runner.run()


class TelegramPollingLoop(_Loop):
    """Telegram long polling (``telegram.mode = "polling"``, SPEC S6.6, S5.11 ``telegram_poll``).

    Runs :class:`relay_adapters.channels.inbound.TelegramPolling`: one ``getUpdates`` loop per
    distinct bot of the enabled telegram channels, each under its own lease.
    """

    name = "telegram"

    def __init__(self, relay: Relay, http: Any) -> None:
        super().__init__()
        from relay_adapters.channels.inbound import TelegramPolling

        holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.polling = TelegramPolling(relay, http, holder=holder)

    def _on_stop(self) -> None:
        self.polling.stop()

    async def _run(self) -> None:
        await self.polling.run()


# --- wiring into the app ---------------------------------------------------------------------


def attach_background(
    app: Any, loops: Sequence[_Loop], *, on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
) -> Any:
    """Start ``loops`` in ``app``'s lifespan start-up and stop them first at shutdown.

    ``app`` is a Litestar application (``on_startup`` / ``on_shutdown`` hook lists).
    """

    async def start_loops() -> None:
        for loop in loops:
            loop.start()

    async def stop_loops() -> None:
        app.state["relay_draining"] = True  # /readyz answers 503 from now on (S9.9)
        for loop in reversed(loops):
            await loop.stop()
        for hook in on_shutdown:
            await hook()

    app.on_startup.append(start_loops)
    # First among the shutdown hooks: the loops use the relay that later hooks may close.
    app.on_shutdown.insert(0, stop_loops)
    return app


def _schema_call(name: str, *args: Any) -> Any:
    """Call ``relay_adapters.storage.sqlalchemy.schema.<name>``, sync or async alike."""
    from relay_adapters.storage.sqlalchemy import schema

    result = getattr(schema, name)(*args)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def prepare_storage(settings: RelaySettings, *, migrate: bool) -> None:
    """Bring the schema up to date before start (SPEC S10.1, S10.5).

    SQLite is migrated automatically; PostgreSQL only with ``migrate`` (``--migrate``), and
    otherwise pending migrations stop start-up with :class:`StartupError`. Must be called
    outside a running event loop.
    """
    if settings.is_memory:
        return
    url = settings.database_url
    if not settings.is_postgres or migrate:
        _schema_call("migrate", url)
        return
    pending = list(_schema_call("pending_migrations", url) or ())
    if pending:
        raise StartupError(
            f"the database has {len(pending)} pending migration(s) ({', '.join(map(str, pending))}); "
            "run `relay migrate` or start with `relay serve --migrate`"
        )


class _Signals:
    """SIGTERM/SIGINT before uvicorn runs stop start-up; after it ran they are already handled.

    uvicorn handles both signals while serving, shuts down gracefully and then re-raises the
    signal it caught through the previous handler: this one, which then does nothing, so a
    graceful stop exits 0.
    """

    def __init__(self) -> None:
        self.served = False
        self.received: int | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        if not self.served:
            raise KeyboardInterrupt

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)


def _create_app(relay: Relay, settings: RelaySettings) -> Any:
    from relay_server.app import create_app

    return create_app(relay=relay, settings=settings)


async def _serve_async(
    settings: RelaySettings,
    *,
    demo: bool,
    worker: bool,
    scheduler: bool,
    signals: _Signals,
    out: TextIO,
) -> int:
    import uvicorn

    dispatcher = InProcessDispatcher() if worker else None
    # Production web process (no in-process worker, SPEC S5.8): fresh intents go to the workers
    # through Redis right after commit; the scheduler's outbox_relay is the safety net.
    queue = None if worker else redis_dispatcher(settings)
    relay = relay_from_settings(settings, dispatcher=dispatcher or queue)
    if queue is not None:
        queue.bind(relay)
    try:
        if demo:
            from relay_server.demo import ensure_demo_data

            await ensure_demo_data(relay, settings, out=out)
        loops: list[_Loop] = []
        if worker:
            loops.append(
                EmbeddedWorker(
                    relay, dispatcher=dispatcher, poll_interval=settings.worker.poll_interval_ms / 1000
                )
            )
        if scheduler:
            loops.append(
                SchedulerLoop(
                    relay,
                    tick_seconds=settings.scheduler.tick_seconds,
                    lease_ttl_seconds=settings.scheduler.lease_ttl_seconds,
                    retention=RetentionPolicy.of(settings.retention),
                    retention_interval=settings.retention.cleanup_interval_seconds,
                    queue=queue,
                )
            )
            if settings.telegram.mode == "polling" and relay.ctx.http is not None:
                loops.append(TelegramPollingLoop(relay, relay.ctx.http))
        roles = ["web", *(["worker"] if worker else []), *(["scheduler"] if scheduler else [])]
        loops.append(HeartbeatLoop(relay, roles))
        app = attach_background(_create_app(relay, settings), loops)
        configure_logging(settings)  # the web framework may have installed its own handlers
        config = uvicorn.Config(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_config=None,
            lifespan="on",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=30,
        )
        server = uvicorn.Server(config)
        log.info(
            "relay.server.starting",
            host=settings.server.host,
            port=settings.server.port,
            worker=worker,
            scheduler=scheduler,
            database=_database_kind(settings),
        )
        signals.served = True
        await server.serve()
        if not server.started:
            return 1
        log.info("relay.server.stopped")
        return 0
    finally:
        try:
            if queue is not None:
                await queue.aclose()
        finally:
            await aclose_relay(relay)


def _database_kind(settings: RelaySettings) -> str:
    if settings.is_memory:
        return "memory"
    return "postgresql" if settings.is_postgres else "sqlite"


def serve(
    settings: RelaySettings,
    *,
    demo: bool = False,
    worker: bool = True,
    scheduler: bool = True,
    migrate: bool = False,
    out: TextIO | None = None,
) -> int:
    """Run the web server (and the scheduler and worker unless disabled) until stopped.

    Returns the process exit code: 0 after a graceful stop (SIGTERM, SIGINT), 1 when start-up
    fails (the reason is printed to stderr).
    """
    out = out or sys.stdout
    configure_logging(settings)
    signals = _Signals()
    signals.install()
    try:
        settings = ensure_secret_key(settings)
        prepare_storage(settings, migrate=migrate)
        return asyncio.run(
            _serve_async(settings, demo=demo, worker=worker, scheduler=scheduler, signals=signals, out=out)
        )
    except (StartupError, RelayError) as exc:
        print(f"relay: {exc or exc.__class__.__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0 if signals.received is not None else 130
