"""The dramatiq broker of a worker process: Redis in production, the stub broker without Redis.

The factory lives in :mod:`relay_adapters.dispatch_redis`, shared with the web process that
enqueues after commit; it is re-exported here. :func:`make_broker` builds a new broker each call
and never installs it as dramatiq's global broker: actors are declared on it explicitly
(``relay_worker.actors.declare_actors``), so importing this package has no side effect and tests
can run several brokers side by side.
"""

from __future__ import annotations

from relay_adapters.dispatch_redis import (
    REDIS_CONNECT_TIMEOUT_SECONDS,
    REDIS_SOCKET_TIMEOUT_SECONDS,
    make_broker,
    redis_client,
)

__all__ = ["REDIS_CONNECT_TIMEOUT_SECONDS", "REDIS_SOCKET_TIMEOUT_SECONDS", "make_broker", "redis_client"]
