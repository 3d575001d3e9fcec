"""The production web process hands committed intents to Redis itself (SPEC S5.8, S10.4).

``relay serve --no-worker --no-scheduler`` with ``redis.url`` sends ``relay.delivery.send`` right
after the intake transaction commits, so a notification does not wait for the scheduler's
``outbox_relay`` (which stays the safety net); ``relay serve --no-worker`` alone also runs that
``outbox_relay`` enqueue in its scheduler loop. No ``relay scheduler`` runs here: the message in
Redis can only come from the web process. Then a ``relay worker`` consumes it and the receiver
gets it once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from pathlib import Path

import httpx
import pytest
import redis

from relay_adapters.dispatch_redis import DELIVERY_QUEUE, RedisDispatcher, redis_dispatcher
from relay_adapters.settings import RedisSettings, RelaySettings
from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain import constants as c
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock, RecordingChannel
from relay_core.testing.pytest_plugin import LocalHttpServer

from .worker_support import (
    START,
    add_route_token,
    am_payload,
    child_env,
    children,
    free_port,
    post_alert,
    seed_world,
    wait_live,
    wait_until,
)


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize(
    ("group_wait", "serve_flags"),
    [
        # Due at once: the intake request's commit sends it (no scheduler anywhere).
        pytest.param(None, ("--no-worker", "--no-scheduler"), id="after-commit"),
        # Due 2 s later: the web process's own scheduler loop sends it when it falls due
        # (`relay serve --no-worker` alone, SPEC S10.4), no `relay scheduler` needed.
        pytest.param(2, ("--no-worker",), id="web-scheduler-when-due"),
    ],
)
async def test_worker_web_process_enqueues_to_redis_right_after_commit(
    tmp_path: Path,
    sqlite_url: str,
    redis_url: str,
    namespace: str,
    local_http_server: LocalHttpServer,
    group_wait: int | None,
    serve_flags: tuple[str, ...],
) -> None:
    receiver = local_http_server
    store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    try:
        ids = await seed_world(
            store,
            channel_type="webhook",
            channel_config={"webhook_url": f"{receiver.url}/h"},
            group_wait=group_wait,
        )
        token = await add_route_token(store, ids["route"])
        port = free_port()
        env = child_env(tmp_path, sqlite_url, redis_url, namespace)
        env.update(RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST="127.0.0.1/32")
        client_redis = redis.Redis.from_url(redis_url)
        messages = f"{namespace}:{DELIVERY_QUEUE}.msgs"

        with children(env, tmp_path) as kids:
            kids.start_relay("web", "serve", *serve_flags, "--port", str(port))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await wait_live(client, kids)
                response = await client.post(
                    "/api/integrations/alertmanager",
                    content=am_payload(),
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                assert response.status_code in (200, 201, 202), response.text

            async def enqueued() -> bool:
                # The intent is marked enqueued just before its message leaves: wait for both.
                async with store() as uow:
                    found = await uow.intents.find()
                marked = len(found) == 1 and found[0].enqueued_at is not None
                return marked and client_redis.hlen(messages) >= 1

            await wait_until("the web process to enqueue the intent", enqueued, seconds=10)
            assert client_redis.hlen(messages) == 1  # the message waits for a worker
            assert receiver.requests == []

            kids.start_relay("worker", "worker", "--threads", "1")

            async def sent() -> bool:
                async with store() as uow:
                    return [i.status for i in await uow.intents.find()] == [c.INTENT_SENT]

            await wait_until("the worker to deliver the message", sent)
            async with store() as uow:
                [intent] = await uow.intents.find()
        client_redis.close()
    finally:
        await store.aclose()
    assert len(receiver.requests) == 1
    assert intent.attempt_count == 1


async def test_worker_web_dispatcher_does_not_hold_up_a_commit_when_redis_hangs() -> None:
    """Background enqueue: a Redis that never answers costs the committing request nothing; after
    the failure the intent stays pending and un-enqueued (for outbox_relay) and the next commits
    leave Redis alone for a while."""
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        dispatcher = redis_dispatcher(RelaySettings(redis=RedisSettings(url=url, namespace="relay-x")))
        assert dispatcher is not None
        assert dispatcher.background
        relay = bootstrap(
            uow_factory=InMemoryUnitOfWorkFactory(),
            clock=FakeClock(START),
            settings=CoreSettings(group_wait_seconds=0),
            channels=[RecordingChannel()],
            dispatcher=dispatcher,
        )
        dispatcher.bind(relay)
        ids = await seed_world(relay.uow_factory)
        started = time.monotonic()
        await post_alert(relay, ids["route"])
        assert time.monotonic() - started < 2.0  # not the 5 s connect / 30 s read timeout
        assert dispatcher.in_flight == 1  # still waiting for the silent server
    # Closing the listener resets the waiting connection: the enqueue fails.
    try:
        await dispatcher.drain()
        assert dispatcher.in_flight == 0
        await post_alert(relay, ids["route"], fingerprint="fp-2")
        assert dispatcher.in_flight == 0  # paused after the failure: no new attempt
    finally:
        await dispatcher.aclose()
    async with relay.uow_factory() as uow:
        found = await uow.intents.find()
    assert [(i.status, i.enqueued_at) for i in found] == [(c.INTENT_PENDING, None)] * 2


@pytest.mark.services
async def test_worker_asgi_app_enqueues_to_redis_after_commit(
    tmp_path: Path,
    sqlite_url: str,
    redis_url: str,
    namespace: str,
    local_http_server: LocalHttpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``relay_server.asgi:app`` (an external ASGI server's web process) enqueues like ``relay serve``."""
    from litestar.testing import AsyncTestClient

    from relay_server.asgi import build_app

    store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    try:
        ids = await seed_world(
            store, channel_type="webhook", channel_config={"webhook_url": f"{local_http_server.url}/h"}
        )
        token = await add_route_token(store, ids["route"])
        for name, value in child_env(tmp_path, sqlite_url, redis_url, namespace).items():
            if name.startswith("RELAY_"):
                monkeypatch.setenv(name, value)
        app = build_app()
        async with AsyncTestClient(app=app) as client:
            response = await client.post(
                "/api/integrations/alertmanager",
                content=am_payload(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert response.status_code in (200, 201, 202), response.text

            client_redis = redis.Redis.from_url(redis_url)
            messages = f"{namespace}:{DELIVERY_QUEUE}.msgs"

            async def enqueued() -> bool:
                # The intent is marked enqueued just before its message leaves: wait for both.
                async with store() as uow:
                    found = await uow.intents.find()
                marked = len(found) == 1 and found[0].enqueued_at is not None
                return marked and client_redis.hlen(messages) >= 1

            try:
                await wait_until("the app to enqueue the intent", enqueued, seconds=10)
                assert client_redis.hlen(messages) == 1
            finally:
                client_redis.close()
    finally:
        await store.aclose()
    assert local_http_server.requests == []  # nothing consumes here: the message waits for a worker


async def test_worker_dispatcher_marks_the_intent_before_the_message_leaves() -> None:
    """The message must find its intent already marked ``enqueued_at`` and unlocked: marking after
    the send raced with a fast worker's ``FOR UPDATE SKIP LOCKED`` claim, which then skipped the
    row and left the intent to the outbox relay's 10 s re-enqueue (seen as an 11 s bench tail)."""
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    box: dict[str, Relay] = {}

    async def enqueued_at(intent_id: int) -> object:
        async with box["relay"].uow_factory() as uow:
            intent = await uow.intents.get(intent_id)
            await uow.commit()
        return intent.enqueued_at if intent is not None else "missing"

    class Sender:
        def send(self, intent_id: int) -> None:  # runs in a worker thread, like dramatiq's send
            seen.append(asyncio.run_coroutine_threadsafe(enqueued_at(intent_id), loop).result(5))

    class Actor:
        send = Sender()

    dispatcher = RedisDispatcher(Actor())
    relay = bootstrap(
        uow_factory=InMemoryUnitOfWorkFactory(),
        clock=FakeClock(START),
        settings=CoreSettings(group_wait_seconds=0),
        channels=[RecordingChannel()],
        dispatcher=dispatcher,
    )
    dispatcher.bind(relay)
    box["relay"] = relay
    ids = await seed_world(relay.uow_factory)
    await post_alert(relay, ids["route"])
    assert seen, "the committed intent was not dispatched"
    assert all(isinstance(value, dt.datetime) for value in seen), seen
