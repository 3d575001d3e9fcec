"""One real-time end-to-end reminder (SPEC S5.4): the embedded ``relay serve`` with a 60 s interval.

Everything else about reminder and escalation timing is tested with the fake clock; this test
checks the real thing once: a real ``relay serve`` process (web + scheduler + in-process worker,
default 1 s tick) pages a local webhook receiver at once, then reminds about 60 s later.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.testing.pytest_plugin import LocalHttpServer

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

pytestmark = pytest.mark.slow

INTERVAL = 60


async def test_worker_realtime_reminder_arrives_60_seconds_after_the_page(
    tmp_path: Path, sqlite_url: str, local_http_server: LocalHttpServer
) -> None:
    receiver = local_http_server
    store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    try:
        ids = await seed_world(
            store,
            channel_type="webhook",
            channel_config={"webhook_url": f"{receiver.url}/h"},
            reminder=INTERVAL,
        )
        token = await add_route_token(store, ids["route"])
    finally:
        await store.aclose()
    port = free_port()
    env = child_env(tmp_path, sqlite_url)
    env.update(
        RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST="127.0.0.1/32",
        RELAY_SCHEDULER__TICK_SECONDS="1",  # the default tick
        RELAY_DELIVERY__LEASE_SECONDS="60",
    )
    arrivals: list[float] = []

    async def requests_arrived(count: int) -> bool:
        while len(arrivals) < len(receiver.requests):
            arrivals.append(time.monotonic())
        return len(receiver.requests) >= count

    with children(env, tmp_path) as kids:
        kids.start_relay("serve", "serve", "--port", str(port))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_live(client, kids)
            response = await client.post(
                "/api/integrations/alertmanager",
                content=am_payload(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert response.status_code in (200, 201, 202), response.text
            await wait_until("the first page", lambda: requests_arrived(1), seconds=10)
            await wait_until("the reminder", lambda: requests_arrived(2), seconds=INTERVAL + 15)

    first, second = (json.loads(r.body) for r in receiver.requests[:2])
    assert (first["event_type"], second["event_type"]) == ("notification", "reminder")
    assert first["group_id"] == second["group_id"]
    gap = arrivals[1] - arrivals[0]
    # Due 60 s after the page was due; found by the next 1 s tick, then delivered at once.
    assert INTERVAL - 1.5 <= gap <= INTERVAL + 5.0, gap
    assert receiver.requests[0].header("webhook-id") != receiver.requests[1].header("webhook-id")
