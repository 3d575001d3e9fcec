"""``run_worker`` and ``run_scheduler`` as real processes without Redis: polling, supervision, SIGTERM."""

from __future__ import annotations

import datetime as dt
import signal
from pathlib import Path

import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.bootstrap import bootstrap
from relay_core.domain import constants as c
from relay_core.services.context import CoreSettings
from relay_core.testing.pytest_plugin import LocalHttpServer

from .worker_support import child_env, children, post_alert, seed_world, wait_until

pytestmark = pytest.mark.slow


async def test_worker_polling_processes_deliver_and_stop_gracefully(
    tmp_path: Path, sqlite_url: str, local_http_server: LocalHttpServer
) -> None:
    """Without redis.url two supervised worker processes poll the outbox; SIGTERM stops all with exit 0."""
    receiver = local_http_server
    store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    relay = bootstrap(uow_factory=store, settings=CoreSettings(group_wait_seconds=0))
    try:
        ids = await seed_world(
            store, channel_type="test_http", channel_config={"url": f"{receiver.url}/hook"}
        )
        env = child_env(tmp_path, sqlite_url)
        env["RELAY_WORKER__POLL_INTERVAL_MS"] = "50"
        with children(env, tmp_path) as kids:
            scheduler = kids.start("scheduler", "scheduler")
            supervisor = kids.start("worker", "worker", "2", "2")
            for n in range(4):
                await post_alert(relay, ids["route"], fingerprint=f"poll-{n}")

            async def delivered() -> bool:
                async with store() as uow:
                    found = await uow.intents.find()
                return len(found) == 4 and all(i.status == c.INTENT_SENT for i in found)

            await wait_until("4 deliveries by the polling workers", delivered)

            async def scheduler_holds_leases() -> bool:
                async with store() as uow:
                    lease = await uow.leases.acquire("due_actions", "probe", dt.datetime.now(dt.UTC), 1)
                return lease is None

            await wait_until("the scheduler to hold its leases", scheduler_holds_leases)

            supervisor.send_signal(signal.SIGTERM)
            scheduler.send_signal(signal.SIGTERM)
            assert supervisor.wait(20) == 0
            assert scheduler.wait(20) == 0

        # A stopped scheduler released its leases: another one takes over at once.
        async with store() as uow:
            lease = await uow.leases.acquire("due_actions", "next", dt.datetime.now(dt.UTC), 30)
            await uow.commit()
        assert lease is not None
        assert lease.holder == "next"
        assert len({r.header("webhook-id") for r in receiver.requests}) == 4
        assert len(receiver.requests) == 4
    finally:
        await store.aclose()
