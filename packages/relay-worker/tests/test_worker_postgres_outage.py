"""SPEC S13.2 / S5.10 / S2.16 with real processes: PostgreSQL stopped during intake.

The production topology runs as real ``relay`` processes: ``relay serve --no-worker
--no-scheduler`` (the web process), ``relay worker`` (dramatiq on Redis) and ``relay scheduler``,
against a PRIVATE PostgreSQL server that the test stops and starts again (the shared one on
5432 is never touched), the shared Redis under a namespace of this test, and a local webhook
receiver. Expected: while the database is down intake answers 503 + ``Retry-After`` and stores
nothing; once it is back every alert accepted before (notifications due during the outage) and
after is notified exactly once, by the same worker and scheduler processes (no restart).
"""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory, migrate
from relay_core.testing.pytest_plugin import LocalHttpServer

from .private_postgres import PrivatePostgres, private_postgres
from .worker_support import (
    add_route_token,
    am_payload,
    child_env,
    children,
    free_port,
    seed_world,
    wait_live,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

GROUP_WAIT_SECONDS = 8  # accepted alerts fall due while the database is down


async def seed(url: str, receiver: LocalHttpServer) -> str:
    """Schema, the seeded world with a real ``webhook`` channel, and a route intake token."""
    await migrate(url)
    store = SqlAlchemyUnitOfWorkFactory(url)
    try:
        ids = await seed_world(
            store,
            channel_type="webhook",
            channel_config={"webhook_url": f"{receiver.url}/hook"},
            group_wait=GROUP_WAIT_SECONDS,
        )
        return await add_route_token(store, ids["route"])
    finally:
        await store.aclose()


async def stored_fingerprints(url: str) -> set[str]:
    store = SqlAlchemyUnitOfWorkFactory(url)
    try:
        async with store() as uow:
            return {a.labels["instance"] for a in await uow.alerts.find()}
    finally:
        await store.aclose()


def notified(receiver: LocalHttpServer) -> collections.Counter[str]:
    """Instance label of each alert notified at the receiver -> how many different webhook-ids."""
    seen: dict[str, set[str | None]] = collections.defaultdict(set)
    for request in receiver.requests:
        body: dict[str, Any] = json.loads(request.body)
        assert body["event_type"] == "notification", body
        seen[body["labels"]["instance"]].add(request.header("webhook-id"))
    return collections.Counter({k: len(v) for k, v in seen.items()})


async def test_worker_postgres_stopped_intake_503_then_every_accepted_alert_notified_once(
    tmp_path: Path, redis_url: str, namespace: str, local_http_server: LocalHttpServer
) -> None:
    receiver = local_http_server
    with private_postgres() as pg:
        await _scenario(tmp_path, pg, redis_url, namespace, receiver)


async def _scenario(
    tmp_path: Path, pg: PrivatePostgres, redis_url: str, namespace: str, receiver: LocalHttpServer
) -> None:
    await pg_create_database(pg, "relay")
    url = pg.url("relay")
    token = await seed(url, receiver)
    port = free_port()
    env = child_env(tmp_path, url, redis_url, namespace)
    env.update(
        RELAY_SERVER__PORT=str(port),
        RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST="127.0.0.1/32",
        RELAY_DATABASE__CONNECT_TIMEOUT_SECONDS="2",
        RELAY_SCHEDULER__TICK_SECONDS="0.5",
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def post(client: httpx.AsyncClient, fingerprint: str) -> httpx.Response:
        body = am_payload(fingerprint=fingerprint, alertname=f"Disk-{fingerprint}")
        return await client.post("/api/integrations/alertmanager", content=body, headers=headers, timeout=30)

    with children(env, tmp_path) as kids:
        kids.start_relay("web", "serve", "--no-worker", "--no-scheduler", "--port", str(port))
        worker = kids.start_relay("worker", "worker", "--threads", "2")
        scheduler = kids.start_relay("scheduler", "scheduler")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_live(client, kids)

            # 1. Accepted while the database is up; due GROUP_WAIT_SECONDS later.
            accepted = []
            for n in range(3):
                response = await post(client, f"before-{n}")
                assert response.status_code in (200, 201, 202), response.text
                accepted.append(f"before-{n}")

            # 2. The database goes away before those notifications are due.
            pg.stop("fast")
            assert receiver.requests == []  # nothing was due yet: all three wait for the database
            rejected = []
            for n in range(2):
                response = await post(client, f"during-{n}")
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"] == "5"
                error = response.json()
                assert (error["error"], error["message"]) == (
                    "storage_unavailable",
                    "alert storage is temporarily unavailable",
                )
                rejected.append(f"during-{n}")
            # The notifications fall due while the worker and scheduler cannot reach the database.
            await asyncio.sleep(GROUP_WAIT_SECONDS + 1)
            assert receiver.requests == []

            # 3. The database is back: the same processes carry on, new alerts are accepted.
            pg.start()
            response = await post(client, "after-0")
            assert response.status_code in (200, 201, 202), response.text
            accepted.append("after-0")

            async def all_notified() -> bool:
                return set(notified(receiver)) >= set(accepted)

            await wait_until("every accepted alert to be notified", all_notified, seconds=90)
            await asyncio.sleep(2.0)  # a duplicate would arrive now
            assert worker.poll() is None
            assert scheduler.poll() is None

    assert notified(receiver) == {fp: 1 for fp in accepted}  # exactly once, none for rejected ones
    assert len(receiver.requests) == len(accepted)
    pg_fingerprints = await stored_fingerprints(url)
    assert pg_fingerprints == set(accepted)  # the 503 answers stored nothing


async def pg_create_database(pg: PrivatePostgres, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg.admin_dsn, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
