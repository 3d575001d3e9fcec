"""Handing committed intents to the delivery workers through dramatiq on Redis (SPEC S5.8).

The enqueue side of the production queue, shared by every process that commits intents: the web
process (``relay serve --no-worker`` or the ASGI app, right after a command committed), the
scheduler's ``outbox_relay`` job and the workers themselves (retries found by their commands).
The consuming side, the ``relay.delivery.send`` actor, lives in ``relay_worker.actors``; both
agree on the actor name and queue below, which is all a dramatiq message needs.

Needs the ``dramatiq`` and ``redis`` distributions (``relay-adapters[redis]``); nothing imports
this module unless ``redis.url`` is set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, Final

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from relay_adapters.logging import get_logger
from relay_adapters.settings import RelaySettings
from relay_core.bootstrap import Relay
from relay_core.domain import constants as c
from relay_core.domain.model import NotificationIntent

__all__ = [
    "DELIVERY_QUEUE",
    "REDIS_CONNECT_TIMEOUT_SECONDS",
    "REDIS_SOCKET_TIMEOUT_SECONDS",
    "SEND_ACTOR",
    "RedisDispatcher",
    "declare_send_stub",
    "make_broker",
    "pending_unqueued",
    "redis_client",
    "redis_dispatcher",
    "relay_outbox",
]

#: ``relay.delivery.send(intent_id: int)``: claim and deliver one outbox intent.
SEND_ACTOR: Final = "relay.delivery.send"
#: The dramatiq queue of delivery messages (Redis keys ``<namespace>:delivery``…).
DELIVERY_QUEUE: Final = "delivery"

# Without timeouts redis-py waits forever on a host that drops packets; a web process that
# enqueues after commit must not hang on that, and a worker must notice and reconnect.
REDIS_CONNECT_TIMEOUT_SECONDS: Final = 5.0
# dramatiq's Redis commands are Lua scripts that never block server-side, so a generous read
# timeout only fires on a dead connection.
REDIS_SOCKET_TIMEOUT_SECONDS: Final = 30.0
#: After a failed enqueue, a background dispatcher leaves Redis alone this long (seconds):
#: the scheduler's ``outbox_relay`` sends what was committed meanwhile.
PAUSE_AFTER_FAILURE_SECONDS: Final = 5.0

_log = get_logger("relay.dispatch")


def redis_client(url: str) -> redis.Redis:
    """A Redis client for ``url`` with bounded connect and read timeouts."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
    )


def make_broker(
    settings: RelaySettings, *, middleware: Sequence[dramatiq.Middleware] | None = None
) -> dramatiq.Broker:
    """A new broker for ``settings``.

    Args:
        settings: ``redis.url`` selects :class:`RedisBroker` (keys prefixed with
            ``redis.namespace``); an empty URL gives a :class:`StubBroker`, which only
            in-process tests consume (``relay worker`` without Redis polls the outbox instead).
        middleware: Replaces dramatiq's default middleware when given.

    The broker is not installed with ``dramatiq.set_broker``: actors are declared on it
    explicitly, so several brokers can live side by side.
    """
    mw: Any = list(middleware) if middleware is not None else None
    url = settings.redis.url
    if url:
        redis_broker: Any = RedisBroker  # its __init__ is unannotated
        broker: dramatiq.Broker = redis_broker(
            client=redis_client(url), namespace=settings.redis.namespace, middleware=mw
        )
        return broker
    return StubBroker(middleware=mw)


def declare_send_stub(broker: dramatiq.Broker) -> dramatiq.Actor[[int], None]:
    """``relay.delivery.send`` on ``broker`` for a process that only sends messages.

    Same name, queue and options as the worker's actor, so the messages are the worker's; running
    it here is a programming error.
    """

    def send(intent_id: int) -> None:
        raise RuntimeError(f"{SEND_ACTOR} is consumed by `relay worker`, not by this process")

    declare = dramatiq.actor(broker=broker, actor_name=SEND_ACTOR, queue_name=DELIVERY_QUEUE, max_retries=0)
    actor: dramatiq.Actor[[int], None] = declare(send)
    return actor


class RedisDispatcher:
    """The ``Dispatcher`` port over dramatiq: one ``relay.delivery.send`` message per due intent.

    Args:
        actor: The ``relay.delivery.send`` actor whose broker receives the messages (the
            worker's, or :func:`declare_send_stub`), or an object with that actor as ``send``.
        relay: The relay whose outbox is read and marked; may be given later with
            :meth:`bind` (the relay is usually built with this dispatcher).
        broker: Closed by :meth:`aclose` when given (the dispatcher owns it).
        background: ``enqueue`` returns at once and sends in a task (the web process: an
            intake answer never waits for Redis). After a failure such a dispatcher skips Redis
            for :data:`PAUSE_AFTER_FAILURE_SECONDS`.

    After a command commits, :meth:`enqueue` receives its intent ids. Intents already due
    and still pending get a message; later ones are left to the scheduler's ``outbox_relay``
    job, which enqueues them when they fall due (never broker delays, SPEC S5.11). Sent intents
    get ``enqueued_at = now``, so ``outbox_relay`` re-sends only those not enqueued for
    ``delivery.requeue_after_seconds``. Everything is best effort: a lost message is
    re-enqueued by the outbox relay and a duplicate one is a no-op.
    """

    def __init__(
        self,
        actor: Any,
        *,
        relay: Relay | None = None,
        broker: dramatiq.Broker | None = None,
        background: bool = False,
        pause_after_failure: float = PAUSE_AFTER_FAILURE_SECONDS,
    ) -> None:
        self._actor: dramatiq.Actor[[int], None] = actor if isinstance(actor, dramatiq.Actor) else actor.send
        self._relay = relay
        self._broker = broker
        self.background = background
        self.pause_after_failure = pause_after_failure
        self._paused_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, relay: Relay) -> None:
        """Read and mark the outbox of ``relay``."""
        self._relay = relay

    @property
    def in_flight(self) -> int:
        """Background enqueues still running."""
        return len(self._tasks)

    async def enqueue(self, intent_ids: Sequence[int]) -> None:
        """The port: dispatch, and log instead of raising (the commit has happened already)."""
        if not intent_ids:
            return
        if not self.background:
            await self._dispatch_logged(intent_ids)
            return
        if time.monotonic() < self._paused_until:
            return  # Redis failed a moment ago: outbox_relay sends these
        task = asyncio.get_running_loop().create_task(self._dispatch_logged(list(intent_ids)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch_logged(self, intent_ids: Sequence[int]) -> None:
        try:
            await self.dispatch(intent_ids)
        except Exception as exc:
            self._paused_until = time.monotonic() + self.pause_after_failure
            _log.warning(
                "relay.dispatch.enqueue_failed",
                intent_count=len(intent_ids),
                error_type=type(exc).__name__,
                error=str(exc)[:500],
            )

    async def dispatch(self, intent_ids: Sequence[int]) -> list[int]:
        """Send messages for the due pending intents among ``intent_ids``; the ids sent.

        Raises when the broker or the database fails before anything was sent.
        """
        ids = list(dict.fromkeys(int(i) for i in intent_ids))
        if not ids:
            return []
        relay = self._relay
        if relay is None:
            return await asyncio.to_thread(self._send_all, ids)
        now = relay.clock.now()
        # Mark first, send second: a worker that receives the message must find the row unlocked.
        # Marking after the send raced with the worker's claim (FOR UPDATE SKIP LOCKED skips a row
        # this process is still updating), and such an intent waited for the outbox relay.
        async with relay.uow_factory() as uow:
            due = await uow.intents.find(id__in=ids, status=c.INTENT_PENDING, due_at__lte=now)
            marked = [
                i.id
                for i in due
                if await uow.intents.update_where(i.id, {"status": c.INTENT_PENDING}, {"enqueued_at": now})
            ]
            await uow.commit()
        if not marked:
            return []
        try:
            sent = await asyncio.to_thread(self._send_all, marked)
        except Exception:
            await self._unmark(relay, marked)
            raise
        if len(sent) < len(marked):
            await self._unmark(relay, [i for i in marked if i not in set(sent)])
        return sent

    @staticmethod
    async def _unmark(relay: Relay, intent_ids: Sequence[int]) -> None:
        """Forget ``enqueued_at`` of intents whose message was never sent (the outbox relay sends them)."""
        async with relay.uow_factory() as uow:
            for intent_id in intent_ids:
                await uow.intents.update_where(intent_id, {"status": c.INTENT_PENDING}, {"enqueued_at": None})
            await uow.commit()

    def _send_all(self, ids: Sequence[int]) -> list[int]:
        sent: list[int] = []
        for intent_id in ids:
            try:
                self._actor.send(intent_id)
            except Exception as exc:
                if not sent:
                    raise
                _log.warning(
                    "relay.dispatch.partial",
                    sent=len(sent),
                    unsent=len(ids) - len(sent),
                    error_type=type(exc).__name__,
                )
                break
            sent.append(intent_id)
        return sent

    async def drain(self, seconds: float = 10.0) -> None:
        """Wait for background enqueues still running (cancelled after ``seconds``)."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Finish background enqueues, then close the broker if this dispatcher owns it."""
        await self.drain()
        broker, self._broker = self._broker, None
        if broker is not None:
            await asyncio.to_thread(broker.close)


async def pending_unqueued(relay: Relay, now: dt.datetime) -> list[int]:
    """Ids of due pending intents that need a message (SPEC S5.8), most urgent first.

    That is: never enqueued; enqueued longer than ``delivery.requeue_after_seconds`` ago (the
    message may be lost); or enqueued before they last fell due (a retry, a reclaimed lease, an
    edit that waited for its message), whose message has been consumed. At most
    ``scheduler.batch_size``.
    """
    settings = relay.ctx.settings
    batch = settings.scheduler_batch_size
    cutoff = now - dt.timedelta(seconds=settings.requeue_after_seconds)
    due: dict[str, Any] = {"status": c.INTENT_PENDING, "due_at__lte": now, "order_by": "due_at"}
    async with relay.uow_factory() as uow:
        never = await uow.intents.find(enqueued_at=None, limit=batch, **due)
        stale = await uow.intents.find(enqueued_at__lt=cutoff, limit=batch, **due)
        recent = await uow.intents.find(enqueued_at__gte=cutoff, limit=batch, **due)
        await uow.commit()
    fell_due = [i for i in recent if i.enqueued_at is not None and i.enqueued_at < i.due_at]
    picked: dict[int, NotificationIntent] = {i.id: i for i in (*never, *stale, *fell_due)}
    ordered = sorted(picked.values(), key=lambda i: (i.priority, i.due_at, i.id))
    return [i.id for i in ordered[:batch]]


async def relay_outbox(relay: Relay, dispatcher: RedisDispatcher, now: dt.datetime) -> int:
    """The enqueue half of the ``outbox_relay`` job: messages for :func:`pending_unqueued`; how many.

    Raises when the broker fails (the intents stay pending for the next pass).
    """
    ids = await pending_unqueued(relay, now)
    if not ids:
        return 0
    return len(await dispatcher.dispatch(ids))


def redis_dispatcher(settings: RelaySettings, *, background: bool = True) -> RedisDispatcher | None:
    """The dispatcher of a process that commits intents but does not consume them.

    None without ``redis.url``. The caller binds it to its relay (:meth:`RedisDispatcher.bind`)
    and closes it with :meth:`RedisDispatcher.aclose` before closing the relay.
    """
    if not settings.redis.url:
        return None
    broker = make_broker(settings)
    return RedisDispatcher(declare_send_stub(broker), broker=broker, background=background)
