"""SPEC S13.2 fault scenarios with real processes: a worker SIGKILLed mid-send, a Redis restart.

Worker and scheduler run as child processes (``worker_support.py`` calls ``run_worker`` /
``run_scheduler`` with settings from the environment) against a SQLite file, Redis and a
local HTTP receiver. Waiting here is polling for other processes, never time logic.

The Redis-restart test starts its own ``redis-server`` on a free port instead of stopping
the shared one on 6379, which other test runs may be using at the same moment.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from relay_adapters.compose import aclose_relay, relay_from_settings
from relay_adapters.settings import RelaySettings, load_settings
from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.bootstrap import Relay
from relay_core.domain import constants as c
from relay_core.testing.pytest_plugin import LocalHttpServer
from relay_worker.actors import DELIVERY_QUEUE, RedisDispatcher, declare_actors
from relay_worker.broker import make_broker

from .conftest import unavailable
from .worker_support import (
    HttpPostChannel,
    child_env,
    children,
    free_port,
    post_alert,
    seed_world,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


@contextlib.asynccontextmanager
async def web_process(settings: RelaySettings) -> AsyncIterator[Relay]:
    """What the web process does: commit, then enqueue through dramatiq (the test's own relay)."""
    broker = make_broker(settings)

    def no_relay() -> Relay:
        raise RuntimeError("the web process does not consume")

    dispatcher = RedisDispatcher(declare_actors(broker, no_relay))
    relay = relay_from_settings(settings, dispatcher=dispatcher, channels=[HttpPostChannel()])
    dispatcher.bind(relay)
    try:
        yield relay
    finally:
        await aclose_relay(relay)
        broker.close()


async def intents(relay: Relay) -> list[Any]:
    async with relay.uow_factory() as uow:
        return await uow.intents.find()


async def test_worker_sigkill_mid_send_delivers_exactly_once_per_webhook_id(
    tmp_path: Path, sqlite_url: str, redis_url: str, namespace: str, local_http_server: LocalHttpServer
) -> None:
    """A worker killed while its request is in flight: after restart the receiver sees one webhook-id."""
    receiver = local_http_server
    receiver.enqueue(200, {"ok": True}, hang=True)  # the first request never gets its answer
    store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    try:
        ids = await seed_world(
            store, channel_type="test_http", channel_config={"url": f"{receiver.url}/hook"}
        )
    finally:
        await store.aclose()
    env = child_env(tmp_path, sqlite_url, redis_url, namespace)
    settings = load_settings(env)

    with children(env, tmp_path) as kids:
        kids.start("scheduler", "scheduler")
        worker_a = kids.start("worker-a", "worker", "1")
        async with web_process(settings) as relay:
            await post_alert(relay, ids["route"])

            async def first_request_arrived() -> bool:
                return len(receiver.requests) >= 1

            await wait_until("the first delivery request", first_request_arrived)
            worker_a.send_signal(signal.SIGKILL)
            worker_a.wait(10)
            [intent] = await intents(relay)
            assert intent.status == c.INTENT_SENDING  # the dead worker's lease

            kids.start("worker-b", "worker", "1")

            async def sent() -> bool:
                return [i.status for i in await intents(relay)] == [c.INTENT_SENT]

            await wait_until("the re-send after lease expiry", sent)
            [intent] = await intents(relay)

    keys = [request.header("webhook-id") for request in receiver.requests]
    assert keys == [intent.idempotency_key, intent.idempotency_key]  # one ambiguous re-send, same key
    assert len(set(keys)) == 1  # a receiver deduplicating on webhook-id sees exactly one
    assert intent.ambiguous_count == 1
    assert intent.attempt_count == 2


def start_redis(port: int, logs: Path) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        unavailable("redis-server is not installed")
    assert server is not None
    log = (logs / f"redis-{port}.log").open("ab")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc


async def redis_ready(url: str) -> None:
    async def ping() -> bool:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    await wait_until("redis-server to answer PING", ping, seconds=10)


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)  # no persistence configured: every message is gone
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def test_worker_redis_restart_loses_no_intent(
    tmp_path: Path, sqlite_url: str, local_http_server: LocalHttpServer
) -> None:
    """Messages lost in a Redis restart (before consumption, and under running workers) are re-enqueued."""
    receiver = local_http_server
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path)
    try:
        await redis_ready(url)
        store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
        try:
            ids = await seed_world(
                store, channel_type="test_http", channel_config={"url": f"{receiver.url}/hook"}
            )
        finally:
            await store.aclose()
        env = child_env(tmp_path, sqlite_url, url, "relay-fault")
        settings = load_settings(env)
        client = redis.Redis.from_url(url)

        async with web_process(settings) as relay:
            # 1. Enqueued, then Redis restarts before any worker consumed the messages.
            for n in range(3):
                await post_alert(relay, ids["route"], fingerprint=f"before-{n}")
            assert client.hlen(f"relay-fault:{DELIVERY_QUEUE}.msgs") == 3
            stop_redis(server)
            server = start_redis(port, tmp_path)
            await redis_ready(url)
            assert client.hlen(f"relay-fault:{DELIVERY_QUEUE}.msgs") == 0

            with children(env, tmp_path) as kids:
                kids.start("scheduler", "scheduler")
                kids.start("worker", "worker", "2")

                async def all_sent(count: int) -> bool:
                    found = await intents(relay)
                    return len(found) == count and all(i.status == c.INTENT_SENT for i in found)

                await wait_until("the 3 intents lost with Redis", lambda: all_sent(3))

                # 2. Redis restarts under a running worker and scheduler; alerts arrive meanwhile.
                stop_redis(server)
                for n in range(2):
                    await post_alert(relay, ids["route"], fingerprint=f"during-{n}")
                server = start_redis(port, tmp_path)
                await redis_ready(url)
                await wait_until("the 2 intents committed while Redis was down", lambda: all_sent(5))
                found = await intents(relay)
        client.close()
    finally:
        stop_redis(server)

    keys = [request.header("webhook-id") for request in receiver.requests]
    assert sorted(keys) == sorted(i.idempotency_key for i in found)  # each exactly once
