"""The broker factory, and the dispatcher and actors wired through a real Redis server."""

from __future__ import annotations

import dramatiq
import dramatiq.broker
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from relay_adapters.settings import RedisSettings, RelaySettings
from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain import constants as c
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock, RecordingChannel
from relay_worker.actors import DELIVERY_QUEUE, EventLoopThread, RedisDispatcher, declare_actors
from relay_worker.broker import make_broker

from .worker_support import START, post_alert, seed_world


def test_worker_make_broker_without_redis_is_a_stub_and_sets_no_global_broker() -> None:
    """No redis.url gives a StubBroker; dramatiq's global broker is left alone."""
    before = dramatiq.broker.global_broker
    broker = make_broker(RelaySettings())
    try:
        assert isinstance(broker, StubBroker)
        assert dramatiq.broker.global_broker is before
    finally:
        broker.close()


def test_worker_make_broker_with_redis_url_uses_the_namespace() -> None:
    """A redis.url gives a RedisBroker whose keys live under redis.namespace (no connection yet)."""
    settings = RelaySettings(redis=RedisSettings(url="redis://127.0.0.1:1/0", namespace="acme"))
    broker = make_broker(settings)
    try:
        assert isinstance(broker, RedisBroker)
        assert broker.namespace == "acme"
        pool = broker.client.connection_pool
        assert pool.connection_kwargs["port"] == 1
        assert pool.connection_kwargs["socket_connect_timeout"] == 5.0
    finally:
        broker.close()


@pytest.mark.services
def test_worker_redis_dispatcher_and_actor_deliver_through_real_redis(redis_url: str, namespace: str) -> None:
    """Committed intents become messages in Redis under our namespace, and a Redis worker delivers them."""
    settings = RelaySettings(redis=RedisSettings(url=redis_url, namespace=namespace))
    broker = make_broker(settings)
    runner = EventLoopThread("test-redis-loop").start()
    channel = RecordingChannel()
    relays: list[Relay] = []
    actors = declare_actors(broker, lambda: relays[0], runner=runner)
    dispatcher = RedisDispatcher(actors)
    relay = bootstrap(
        uow_factory=InMemoryUnitOfWorkFactory(),
        clock=FakeClock(START),
        settings=CoreSettings(group_wait_seconds=0),
        channels=[channel],
        dispatcher=dispatcher,
    )
    dispatcher.bind(relay)
    relays.append(relay)
    client = redis.Redis.from_url(redis_url)
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=2)
    try:
        ids = runner.run(seed_world(relay.uow_factory))
        for fingerprint in ("a", "b"):
            runner.run(post_alert(relay, ids["route"], fingerprint=fingerprint))
        assert client.hlen(f"{namespace}:{DELIVERY_QUEUE}.msgs") == 2
        assert client.llen(f"{namespace}:{DELIVERY_QUEUE}") == 2

        worker.start()
        broker.join(DELIVERY_QUEUE, timeout=10_000)
        worker.join()

        assert channel.event_types == ["notification", "notification"]

        async def statuses() -> list[str]:
            async with relay.uow_factory() as uow:
                return [i.status for i in await uow.intents.find()]

        assert runner.run(statuses()) == [c.INTENT_SENT, c.INTENT_SENT]
        assert client.hlen(f"{namespace}:{DELIVERY_QUEUE}.msgs") == 0
    finally:
        worker.stop()
        broker.close()
        client.close()
        runner.stop()
