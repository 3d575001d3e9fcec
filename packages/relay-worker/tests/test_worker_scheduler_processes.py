"""SPEC S13.2 with real processes on PostgreSQL: three ``relay scheduler`` processes at once, and the
lease holder paused (SIGSTOP) beyond its lease, then resumed (SIGCONT).

Three schedulers tick every 50 ms for well over 200 ticks against one PostgreSQL database, with a
1 s reminder interval so that reminders and team escalations happen every second. Expected:
another scheduler takes over while the holder is paused (the fencing token moves on), the resumed
one changes nothing, and no group ever gets two timer actions (reminder or escalation) within one
interval, nor a duplicate reminder or escalation intent.

The in-process variant with a fake clock and split-brain schedulers is in
``test_worker_scheduler.py``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_adapters.storage.sqlalchemy.uow import IDLE_IN_TRANSACTION_TIMEOUT_MS
from relay_core.bootstrap import bootstrap
from relay_core.domain import constants as c
from relay_core.services.context import CoreSettings

from .conftest import postgres_database
from .worker_support import child_env, children, post_alert, seed_world, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]

TICK = 0.05
LEASE_TTL = 2
INTERVAL = 1  # seconds between reminders
RUN_SECONDS = 16.0  # >= 200 ticks of each scheduler, pause included
TIMER_EVENTS = ("reminder_sent", "escalated")


async def lease_row(url: str, name: str) -> tuple[str, int] | None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        row = await conn.fetchrow("SELECT holder, fencing_token FROM scheduler_leases WHERE name = $1", name)
    finally:
        await conn.close()
    return None if row is None else (str(row["holder"]), int(row["fencing_token"]))


async def test_worker_three_scheduler_processes_and_a_paused_leader_never_double_a_timer(
    tmp_path: Path,
) -> None:
    async with postgres_database() as url:
        store = SqlAlchemyUnitOfWorkFactory(url)
        relay = bootstrap(uow_factory=store, settings=CoreSettings(group_wait_seconds=0))
        try:
            ids = await seed_world(
                store,
                channel_type="webhook",
                channel_config={"webhook_url": "http://127.0.0.1:9/never-delivered"},  # no worker runs
                reminder=INTERVAL,
            )
            for n in range(3):
                await post_alert(relay, ids["route"], fingerprint=f"fp-{n}")
            env = child_env(tmp_path, url)
            env.update(
                RELAY_SCHEDULER__TICK_SECONDS=str(TICK), RELAY_SCHEDULER__LEASE_TTL_SECONDS=str(LEASE_TTL)
            )
            started = time.monotonic()
            with children(env, tmp_path) as kids:
                procs = {kids.start(f"scheduler-{n}", "scheduler").pid: n for n in range(3)}

                async def held() -> bool:
                    return await lease_row(url, "due_actions") is not None

                await wait_until("a scheduler to take the due_actions lease", held)
                await asyncio.sleep(3.0)
                row = await lease_row(url, "due_actions")
                assert row is not None
                leader, token_before = row
                leader_pid = int(leader.split(":")[-2])
                assert leader_pid in procs

                # The leader freezes beyond its lease: another scheduler must take over.
                os.kill(leader_pid, signal.SIGSTOP)
                try:

                    async def taken_over() -> bool:
                        now = await lease_row(url, "due_actions")
                        return now is not None and now[0] != leader

                    # Frozen inside a transaction, the leader holds the lease row's lock until
                    # PostgreSQL ends its idle session (IDLE_IN_TRANSACTION_TIMEOUT_MS).
                    await wait_until(
                        "another scheduler to take over",
                        taken_over,
                        seconds=LEASE_TTL + IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000 + 10,
                    )
                    await asyncio.sleep(1.0)
                finally:
                    os.kill(leader_pid, signal.SIGCONT)
                await asyncio.sleep(max(RUN_SECONDS - (time.monotonic() - started), 3.0))
                for name, proc in kids.procs:
                    assert proc.poll() is None, f"{name} died"
                after = await lease_row(url, "due_actions")
            elapsed = time.monotonic() - started

            async with store() as uow:
                events = [e for e in await uow.events.find() if e.event_type in TIMER_EVENTS]
                reminders = await uow.intents.find(event_type=c.EV_REMINDER)
                escalations = await uow.intents.find(event_type=c.EV_ESCALATION)
        finally:
            await store.aclose()

    assert after is not None
    assert after[1] > token_before  # fencing token moved on with the takeover
    by_group: dict[int, list[float]] = collections.defaultdict(list)
    for event in events:
        by_group[event.group_id].append(event.created_at.timestamp())
    assert len(by_group) == 3
    for group_id, times in by_group.items():
        times.sort()
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # One timer action per due time: two schedulers acting on one due time would be ~0 s apart.
        assert min(gaps) >= INTERVAL * 0.9, (group_id, gaps)
        assert INTERVAL * 6 <= len(times) <= elapsed / INTERVAL + 1, (group_id, len(times))
    escalated = sum(1 for e in events if e.event_type == "escalated")
    assert escalated >= 3  # escalations happened too (every third timer action)
    assert len(escalations) == escalated  # one channel: one intent per escalation
    assert len(reminders) == len(events) - escalated
    keys = [i.idempotency_key for i in (*reminders, *escalations)]
    assert len(keys) == len(set(keys))
