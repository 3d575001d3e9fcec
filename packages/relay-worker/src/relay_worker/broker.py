"""The dramatiq broker of a worker process: Redis in production, the stub broker without Redis.

:func:`make_broker` builds a new broker each call and never installs it as dramatiq's global
broker: actors are declared on it explicitly (``relay_worker.actors.declare_actors``), so
importing this package has no side effect and tests can run several brokers side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from relay_adapters.settings import RelaySettings

__all__ = ["REDIS_CONNECT_TIMEOUT_SECONDS", "REDIS_SOCKET_TIMEOUT_SECONDS", "make_broker", "redis_client"]

# Without timeouts redis-py waits forever on a host that drops packets; a web process that
# enqueues after commit must not hang on that, and a worker must notice and reconnect.
REDIS_CONNECT_TIMEOUT_SECONDS: Final = 5.0
# dramatiq's Redis commands are Lua scripts that never block server-side, so a generous read
# timeout only fires on a dead connection.
REDIS_SOCKET_TIMEOUT_SECONDS: Final = 30.0


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

    The broker is not installed with ``dramatiq.set_broker``.
    """
    mw: Any = list(middleware) if middleware is not None else None
    url = settings.redis.url
    if url:
        return RedisBroker(client=redis_client(url), namespace=settings.redis.namespace, middleware=mw)
    return StubBroker(middleware=mw)
