"""``relay worker`` and ``relay scheduler``: the only module with process-level side effects.

It sets up logging, installs SIGTERM/SIGINT handlers (graceful stop: workers finish in-flight
sends, schedulers release their leases; a second signal gets the default behaviour) and, for
``relay worker --processes N``, supervises N child processes. Everything else in
``relay_worker`` is plain objects that the ``relay serve`` in-process mode and tests build
directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.process import BaseProcess
from typing import Any, Final

import dramatiq

from relay_adapters.channels.inbound import TelegramPolling
from relay_adapters.compose import aclose_relay, relay_from_settings
from relay_adapters.dispatch_redis import redis_dispatcher
from relay_adapters.logging import configure_logging, get_logger
from relay_adapters.settings import RelaySettings
from relay_core.bootstrap import Relay
from relay_core.ports.channels import ChannelSender
from relay_core.services.heartbeats import HeartbeatRunner
from relay_core.services.retention import RetentionPolicy
from relay_worker.actors import EventLoopThread, OutboxPoller, RedisDispatcher, declare_actors
from relay_worker.broker import make_broker
from relay_worker.scheduler import (
    EXPIRED_ROW_JOBS,
    Scheduler,
    expired_rows_job,
    retention_cleanup_job,
    voice_status_poll_job,
)

__all__ = ["SHUTDOWN_TIMEOUT_SECONDS", "run_scheduler", "run_worker"]

#: How long a stopping worker waits for in-flight sends (SPEC S5.10).
SHUTDOWN_TIMEOUT_SECONDS: Final = 30.0
#: How long a stopping process waits for its heartbeat to delete its row (the database may be down).
HEARTBEAT_STOP_SECONDS: Final = 5.0
_STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
_log = get_logger("relay.worker")


# --- signals ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _signals(on_stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM/SIGINT call ``on_stop`` once, then get their previous handlers back.

    Outside the main thread (embedded use) nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}

    def handler(signum: int, _frame: Any) -> None:
        _log.info("relay.process.stopping", signal=signal.Signals(signum).name)
        for sig, old in previous.items():
            signal.signal(sig, old)
        on_stop()

    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _loop_signals(loop: asyncio.AbstractEventLoop, on_stop: Callable[[], None]) -> Iterator[None]:
    """Like :func:`_signals` for code running in ``loop`` (handlers run inside the loop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed: list[signal.Signals] = []

    def handler(sig: signal.Signals) -> None:
        _log.info("relay.process.stopping", signal=sig.name)
        for each in installed:
            loop.remove_signal_handler(each)
        installed.clear()
        on_stop()

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, handler, sig)
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


# --- worker ----------------------------------------------------------------------------------


def run_worker(
    settings: RelaySettings,
    *,
    processes: int = 1,
    threads: int | None = None,
    channels: Sequence[ChannelSender] = (),
    setup_logging: bool = True,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT_SECONDS,
) -> int:
    """Run delivery workers until SIGTERM/SIGINT; the process exit code.

    Args:
        settings: Loaded settings. With ``redis.url``: a dramatiq worker consuming
            ``relay.delivery.send`` messages. Without: outbox polling every
            ``worker.poll_interval_ms`` (SPEC S5.8).
        processes: Worker processes; above 1 this process supervises spawned children
            (restarting any that dies) and delivers nothing itself.
        threads: Concurrent sends per process (``worker.threads`` by default).
        channels: Channel sender instances added to the registry's (tests, embedders).
        setup_logging: Configure logging from ``settings.logging`` first.
        shutdown_timeout: Seconds to wait for in-flight sends on stop.
    """
    if setup_logging:
        configure_logging(settings)
    threads = threads or settings.worker.threads
    if processes > 1:
        return _supervise(settings, processes, threads, tuple(channels), setup_logging, shutdown_timeout)
    return _worker_process(settings, threads, tuple(channels), shutdown_timeout)


def _worker_process(
    settings: RelaySettings, threads: int, channels: Sequence[ChannelSender], shutdown_timeout: float
) -> int:
    if settings.redis.url:
        return _run_dramatiq_worker(settings, threads, channels, shutdown_timeout)
    return asyncio.run(_run_polling_worker(settings, threads, channels, shutdown_timeout))


def _run_dramatiq_worker(
    settings: RelaySettings, threads: int, channels: Sequence[ChannelSender], shutdown_timeout: float
) -> int:
    stop = threading.Event()
    runner = EventLoopThread("relay-worker-loop")
    broker = make_broker(settings)
    cell: list[Relay] = []
    actors = declare_actors(broker, lambda: cell[0], runner=runner)
    dispatcher = RedisDispatcher(actors)
    relay = relay_from_settings(settings, dispatcher=dispatcher, channels=channels)
    dispatcher.bind(relay)
    cell.append(relay)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=1000)
    # process_heartbeat (S1.8), on the loop thread
    heartbeat = HeartbeatRunner(relay.ctx, ["worker"], host=socket.gethostname())
    with _signals(stop.set):
        worker.start()
        _log.info("relay.worker.started", mode="dramatiq", threads=threads, worker_id=relay.ctx.worker_id)
        beating = runner.submit(heartbeat.run())
        try:
            while not stop.wait(1.0):
                pass
        finally:
            # The heartbeat deletes its row and ends; then the messages in flight finish.
            runner.loop.call_soon_threadsafe(heartbeat.stop)
            with contextlib.suppress(Exception):
                beating.result(timeout=HEARTBEAT_STOP_SECONDS)
            # Finishes the messages in flight; their leases are released by recording results.
            worker.stop(timeout=int(shutdown_timeout * 1000))
            try:
                runner.run(aclose_relay(relay))
            finally:
                actors.close()
                broker.close()
            _log.info("relay.worker.stopped", worker_id=relay.ctx.worker_id)
    return 0


async def _run_polling_worker(
    settings: RelaySettings, threads: int, channels: Sequence[ChannelSender], shutdown_timeout: float
) -> int:
    poller = OutboxPoller(poll_interval=settings.worker.poll_interval_ms / 1000, concurrency=threads)
    relay = relay_from_settings(settings, dispatcher=poller, channels=channels)
    poller.bind(relay)
    loop = asyncio.get_running_loop()
    heartbeat = HeartbeatRunner(relay.ctx, ["worker"], host=socket.gethostname())
    with _loop_signals(loop, poller.stop):
        _log.info("relay.worker.started", mode="polling", threads=threads, worker_id=relay.ctx.worker_id)
        beating = asyncio.create_task(heartbeat.run())
        try:
            await poller.run()
        finally:
            heartbeat.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(beating, HEARTBEAT_STOP_SECONDS)
            await aclose_relay(relay)
            _log.info("relay.worker.stopped", worker_id=relay.ctx.worker_id)
    return 0


def _child_main(
    settings: RelaySettings,
    threads: int,
    channels: Sequence[ChannelSender],
    setup_logging: bool,
    shutdown_timeout: float,
) -> None:
    if setup_logging:
        configure_logging(settings)
    raise SystemExit(_worker_process(settings, threads, channels, shutdown_timeout))


def _supervise(
    settings: RelaySettings,
    processes: int,
    threads: int,
    channels: Sequence[ChannelSender],
    setup_logging: bool,
    shutdown_timeout: float,
) -> int:
    # spawn, not fork: children start clean (no inherited locks, loops or sockets).
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def spawn(number: int) -> BaseProcess:
        process = ctx.Process(
            target=_child_main,
            args=(settings, threads, channels, setup_logging, shutdown_timeout),
            name=f"relay-worker-{number}",
        )
        process.start()
        _log.info("relay.worker.child_started", child=number, pid=process.pid)
        return process

    with _signals(stop.set):
        children = [spawn(n) for n in range(processes)]
        started = [time.monotonic()] * processes
        while not stop.wait(0.5):
            for number, child in enumerate(children):
                if child.is_alive():
                    continue
                _log.warning("relay.worker.child_exited", child=number, exitcode=child.exitcode)
                if time.monotonic() - started[number] < 5.0 and stop.wait(1.0):
                    break  # crash loop: breathe, unless we are stopping anyway
                children[number] = spawn(number)
                started[number] = time.monotonic()
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: graceful in the child
        deadline = time.monotonic() + shutdown_timeout + 5.0
        for child in children:
            child.join(max(deadline - time.monotonic(), 0.1))
            if child.is_alive():
                _log.warning("relay.worker.child_killed", pid=child.pid)
                child.kill()
                child.join(5.0)
    return 0


# --- scheduler -------------------------------------------------------------------------------


def run_scheduler(
    settings: RelaySettings,
    *,
    channels: Sequence[ChannelSender] = (),
    holder: str | None = None,
    setup_logging: bool = True,
) -> int:
    """Run the scheduler jobs (SPEC S5.11) until SIGTERM/SIGINT; the process exit code.

    With ``redis.url`` the ``outbox_relay`` job sends due intents to the workers through
    dramatiq; without, it only reclaims expired leases (workers poll the outbox). Several
    schedulers may run at once. With ``telegram.mode = "polling"`` (the default) the process
    also long-polls the Telegram bots of the enabled telegram channels (one process per bot,
    under a lease), as ``relay serve`` does in the embedded topology.
    """
    if setup_logging:
        configure_logging(settings)
    return asyncio.run(_run_scheduler(settings, tuple(channels), holder))


async def _run_scheduler(
    settings: RelaySettings, channels: Sequence[ChannelSender], holder: str | None
) -> int:
    # Sends only (never consumes); ``outbox_relay`` waits for each send, so not in the background.
    dispatcher = redis_dispatcher(settings, background=False)
    relay = relay_from_settings(settings, dispatcher=dispatcher, channels=channels)
    if dispatcher is not None:
        dispatcher.bind(relay)
    scheduler = Scheduler(
        relay,
        holder=holder,
        tick_seconds=settings.scheduler.tick_seconds,
        lease_ttl=settings.scheduler.lease_ttl_seconds,
        dispatcher=dispatcher,
        extra_jobs=[
            voice_status_poll_job(relay, settings.voice.poll_interval_seconds),
            retention_cleanup_job(
                relay,
                RetentionPolicy.of(settings.retention),
                max(60.0, float(settings.retention.cleanup_interval_seconds)),
            ),
            *(
                expired_rows_job(relay, name, batch_size=settings.retention.batch_size)
                for name in EXPIRED_ROW_JOBS
            ),
        ],
    )
    loop = asyncio.get_running_loop()
    with _loop_signals(loop, scheduler.stop):
        polling = _telegram_polling(settings, relay, scheduler.holder)
        polling_task = asyncio.create_task(polling.run()) if polling is not None else None
        # every scheduler beats, no lease (S5.11)
        heartbeat = HeartbeatRunner(relay.ctx, ["scheduler"], host=socket.gethostname())
        beating = asyncio.create_task(heartbeat.run())
        try:
            await scheduler.run_forever()
        finally:
            heartbeat.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(beating, HEARTBEAT_STOP_SECONDS)
            try:
                if polling is not None and polling_task is not None:
                    polling.stop()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(polling_task, SHUTDOWN_TIMEOUT_SECONDS)
            finally:
                if dispatcher is not None:
                    await dispatcher.aclose()
                await aclose_relay(relay)
    return 0


def _telegram_polling(settings: RelaySettings, relay: Relay, holder: str) -> TelegramPolling | None:
    """Telegram long polling for this scheduler process (``telegram.mode = "polling"``, SPEC S6.6).

    The same :class:`relay_adapters.channels.inbound.TelegramPolling` as ``relay serve`` runs:
    one ``getUpdates`` loop per bot of the enabled telegram channels, each under its own lease
    (``telegram_poll:<token digest>``), so with several schedulers one of them polls a bot.
    None in webhook mode or without an outbound HTTP client.
    """
    if settings.telegram.mode != "polling" or relay.ctx.http is None:
        return None
    return TelegramPolling(relay, relay.ctx.http, holder=holder)
