"""How delivery work reaches the core: dramatiq actors, the Redis dispatcher, the outbox poller.

Actors carry intent ids only and are safe to run twice: the actor asks the core to claim
that id (``DeliverDueIntents(ids=(id,))``); a claim that fails, because the intent was
already delivered, cancelled, claimed by another worker or is not due yet, is a no-op.
Retries belong to the outbox (SPEC S5.9), so actors have ``max_retries=0``, and a message
lost from Redis is re-sent by the scheduler's ``outbox_relay`` job (SPEC S5.8).

Actor names follow ``relay.<area>.<verb>``. dramatiq does not validate actor names (only
queue names, which must match ``[a-zA-Z_][a-zA-Z0-9._-]*``), so the dotted names are used
as they are; :data:`ACTOR_NAMES` lists them.

**Event loop choice.** dramatiq actors are synchronous functions run by worker threads, while
the core is async. Every actor of one :func:`declare_actors` call submits its coroutine to
one :class:`EventLoopThread`, a single asyncio loop in a daemon thread, and waits for the
result. The alternative, one loop per worker thread, would break the adapters: a SQLAlchemy
async engine (asyncpg connections, the SQLite unit-of-work lock) and an httpx client are bound
to the loop that first used them, and one ``Relay`` is shared by every thread of a process.
With one loop, pools are shared and the threads' sends still overlap (they are I/O-bound
coroutines on the same loop). An actor interrupted while waiting (dramatiq time limit,
shutdown) stops waiting but does not cancel its coroutine: a send that already left is
better finished and recorded than abandoned into an ambiguous re-send.

The enqueue side (:class:`RedisDispatcher`, :data:`SEND_ACTOR`, :data:`DELIVERY_QUEUE`) lives in
:mod:`relay_adapters.dispatch_redis`, because the web process uses it too; it is re-exported here.

Without Redis, :class:`OutboxPoller` is the runner: it polls the outbox and is woken at
once by ``enqueue`` (it is itself a ``Dispatcher``), for ``relay worker`` without
``redis.url`` and for the in-process worker of ``relay serve``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Final, Self, TypeVar

import attrs
import dramatiq

from relay_adapters.dispatch_redis import DELIVERY_QUEUE, SEND_ACTOR, RedisDispatcher
from relay_adapters.logging import get_logger
from relay_core.bootstrap import Relay
from relay_core.domain.commands import DeliverDueIntents
from relay_core.domain.errors import StorageUnavailable

__all__ = [
    "ACTOR_NAMES",
    "DELIVERY_QUEUE",
    "SEND_ACTOR",
    "Actors",
    "EventLoopThread",
    "OutboxPoller",
    "RedisDispatcher",
    "RelayProvider",
    "declare_actors",
]

T = TypeVar("T")

#: Every actor name :func:`declare_actors` declares.
ACTOR_NAMES: Final = (SEND_ACTOR,)

#: Returns the process's :class:`Relay`; called on every message, so it may build it lazily.
RelayProvider = Callable[[], Relay]

_log = get_logger("relay.worker")
# How often a thread waiting on the loop wakes up, so dramatiq can interrupt it.
_WAIT_SLICE_SECONDS: Final = 1.0


class EventLoopThread:
    """One asyncio event loop running in a daemon thread; sync code submits coroutines to it.

    Args:
        name: The thread name (shows in stack dumps).

    The loop starts on first use (or :meth:`start`) and is closed by :meth:`stop`, which
    cancels whatever is still running on it.
    """

    def __init__(self, name: str = "relay-async") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started if needed)."""
        self.start()
        assert self._loop is not None
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start the loop thread; a no-op when it runs already."""
        with self._lock:
            if self._loop is not None:
                return self
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=self._main, args=(loop, ready), name=self._name, daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread
        return self

    @staticmethod
    def _main(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; the returned future is safe to wait on from any thread."""
        if self._thread is not None and threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("EventLoopThread.run() called from its own loop; await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception)."""
        future = self.submit(coro)
        while True:
            # Short waits keep the thread interruptible (dramatiq time limits and shutdown
            # raise asynchronously in the waiting thread, which only happens between waits).
            try:
                return future.result(_WAIT_SLICE_SECONDS)
            except concurrent.futures.TimeoutError:
                continue

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what still runs on the loop, close it and join the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop, self._thread = None, None
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)


@attrs.frozen(kw_only=True)
class Actors:
    """The actors of one broker, and the loop they run the core on."""

    broker: dramatiq.Broker
    send: dramatiq.Actor[[int], None]
    """``relay.delivery.send(intent_id)``."""
    runner: EventLoopThread

    @property
    def by_name(self) -> Mapping[str, dramatiq.Actor[Any, Any]]:
        """Actor name -> actor."""
        return {SEND_ACTOR: self.send}

    def close(self) -> None:
        """Stop the event loop thread (after the dramatiq worker has stopped)."""
        self.runner.stop()


def declare_actors(
    broker: dramatiq.Broker,
    relay_provider: RelayProvider,
    *,
    runner: EventLoopThread | None = None,
) -> Actors:
    """Declare Relay's actors on ``broker`` (explicitly; dramatiq's global broker is not used).

    Args:
        broker: From :func:`relay_worker.broker.make_broker` (or any dramatiq broker).
        relay_provider: Returns the :class:`Relay` the actors work with. It is called for
            every message, from dramatiq's worker threads, so it must be cheap and thread-safe.
        runner: The event loop the core runs on; a new :class:`EventLoopThread` by default.
            Every async resource of the relay (database pool, HTTP client) must only ever be
            used on this loop.
    """
    loop = runner if runner is not None else EventLoopThread("relay-worker-loop")

    def send(intent_id: int) -> None:
        """Claim and deliver one intent; a failed claim (already handled, not due) is a no-op."""
        relay = relay_provider()
        command = DeliverDueIntents(ids=(int(intent_id),), limit=1)
        try:
            handled = loop.run(relay.handle(command))
        except Exception as exc:
            # The outbox is the source of truth: a message that fails here (database down,
            # a bug) leaves the intent pending or leased, and the scheduler's outbox_relay
            # re-enqueues it. Raising would only dead-letter a copy in Redis.
            _log.warning(
                "relay.worker.send_failed",
                intent_id=intent_id,
                error_type=type(exc).__name__,
                error=str(exc)[:500],
            )
            return
        if not handled:
            _log.debug("relay.worker.send_noop", intent_id=intent_id)

    declare = dramatiq.actor(broker=broker, actor_name=SEND_ACTOR, queue_name=DELIVERY_QUEUE, max_retries=0)
    actor: dramatiq.Actor[[int], None] = declare(send)
    return Actors(broker=broker, send=actor, runner=loop)


class OutboxPoller:
    """Delivers due intents without a broker: polls the outbox, and is woken after commits.

    Args:
        relay: The relay to deliver with; may be given later with :meth:`bind`, so the
            poller can be the relay's dispatcher.
        poll_interval: Seconds between polls when idle (``worker.poll_interval_ms`` / 1000).
        concurrency: Sends in flight at most (``worker.threads``).
        max_backoff: Longest wait after ``StorageUnavailable`` (doubling from 1 s).

    One lane polls; the others wait until there is work (a wake-up or a lane that found some),
    so an idle worker costs one query per interval. :meth:`run` returns after :meth:`stop`
    once in-flight deliveries have finished.
    """

    def __init__(
        self,
        relay: Relay | None = None,
        *,
        poll_interval: float = 0.2,
        concurrency: int = 8,
        max_backoff: float = 30.0,
    ) -> None:
        self._relay = relay
        self.poll_interval = poll_interval
        self.concurrency = max(1, concurrency)
        self.max_backoff = max_backoff
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False
        self.delivered = 0

    def bind(self, relay: Relay) -> None:
        self._relay = relay

    async def enqueue(self, intent_ids: Sequence[int]) -> None:
        """The ``Dispatcher`` port: wake the lanes."""
        if intent_ids:
            self.wake()

    def wake(self) -> None:
        """Make idle lanes look for work now (thread-safe)."""
        self._call_in_loop(lambda: self._wake.set() if self._wake is not None else None)

    def stop(self) -> None:
        """Ask :meth:`run` to return after in-flight deliveries (thread-safe)."""
        self._stop_requested = True
        self._call_in_loop(lambda: self._stopping.set() if self._stopping is not None else None)

    def _call_in_loop(self, fn: Callable[[], object]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    async def run(self) -> None:
        """Deliver until :meth:`stop`."""
        if self._relay is None:
            raise RuntimeError("OutboxPoller.bind(relay) first")
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        if self._stop_requested:
            self._stopping.set()
        lanes = [
            asyncio.create_task(self._lane(n), name=f"relay-outbox-{n}") for n in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*lanes)
        finally:
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)

    async def run_once(self, *, limit: int = 100) -> int:
        """Deliver what is due now, one claim at a time; the number of intents handled."""
        assert self._relay is not None, "OutboxPoller.bind(relay) first"
        handled = 0
        while handled < limit:
            got = await self._relay.deliver_due(limit=1)
            if not got:
                break
            handled += got
        self.delivered += handled
        return handled

    async def _lane(self, number: int) -> None:
        assert self._relay is not None
        assert self._wake is not None
        assert self._stopping is not None
        backoff = 0.0
        while not self._stopping.is_set():
            try:
                handled = await self._relay.deliver_due(limit=1)
            except StorageUnavailable:
                backoff = min(max(backoff * 2, 1.0), self.max_backoff)
                _log.warning("relay.worker.storage_unavailable", retry_in=backoff)
                await self._wait(self._stopping, backoff)
                continue
            except Exception as exc:
                backoff = min(max(backoff * 2, 1.0), self.max_backoff)
                _log.error("relay.worker.poll_failed", error_type=type(exc).__name__, error=str(exc)[:500])
                await self._wait(self._stopping, backoff)
                continue
            backoff = 0.0
            if handled:
                self.delivered += handled
                self._wake.set()  # there may be more: let idle lanes join in
                continue
            if number == 0:
                await self._wait_any(self.poll_interval)
            else:
                await self._wait_any(None)
            self._wake.clear()

    async def _wait_any(self, seconds: float | None) -> None:
        assert self._wake is not None
        assert self._stopping is not None
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self._stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
