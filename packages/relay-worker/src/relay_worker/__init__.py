"""relay_worker: delivery workers and the scheduler of Relay (SPEC S5.8–S5.11).

- :mod:`relay_worker.broker`: ``make_broker(settings)`` -> ``RedisBroker`` or ``StubBroker``.
- :mod:`relay_worker.actors`: ``declare_actors(broker, relay_provider)`` (``relay.delivery.send``),
  ``RedisDispatcher`` (the ``Dispatcher`` port over dramatiq, from
  :mod:`relay_adapters.dispatch_redis`, which the web process uses too), ``OutboxPoller`` (no Redis).
- :mod:`relay_worker.scheduler`: ``Scheduler`` (``due_actions``, ``outbox_relay``,
  ``silence_lifecycle`` under database leases).
- :mod:`relay_worker.entrypoint`: ``run_worker`` / ``run_scheduler`` for ``relay worker`` and
  ``relay scheduler``, the only code with process-level side effects (and only when called).
"""

from __future__ import annotations

from relay_worker.actors import (
    ACTOR_NAMES,
    DELIVERY_QUEUE,
    SEND_ACTOR,
    Actors,
    EventLoopThread,
    OutboxPoller,
    RedisDispatcher,
    declare_actors,
)
from relay_worker.broker import make_broker
from relay_worker.entrypoint import run_scheduler, run_worker
from relay_worker.scheduler import Job, JobOutcome, Scheduler

__all__ = [
    "ACTOR_NAMES",
    "DELIVERY_QUEUE",
    "SEND_ACTOR",
    "Actors",
    "EventLoopThread",
    "Job",
    "JobOutcome",
    "OutboxPoller",
    "RedisDispatcher",
    "Scheduler",
    "declare_actors",
    "make_broker",
    "run_scheduler",
    "run_worker",
]
