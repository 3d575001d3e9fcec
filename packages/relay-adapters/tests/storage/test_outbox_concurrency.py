"""Outbox claims with real worker processes on PostgreSQL and SQLite (SPEC S5.8, S5.10).

Each worker is a separate Python process (``claim_worker.py``) with its own engine and pool,
started together through a file barrier so their claims genuinely overlap.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory, make_engine
from relay_adapters.storage.sqlalchemy.tables import metadata
from relay_core.domain import constants as c
from relay_core.domain.model import NotificationIntent

WORKER = Path(__file__).with_name("claim_worker.py")
NOW = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC)
INTENTS = 500


async def _seed(url: str, count: int) -> list[int]:
    """Insert ``count`` due pending intents in one executemany; returns their ids."""
    table = metadata.tables["intents"]
    rows = [
        {
            "idempotency_key": f"{n}:1:channel:notification:0",
            "group_id": n,
            "channel_id": 1,
            "recipient_key": "channel",
            "event_type": c.EV_NOTIFICATION,
            "reason": "",
            "priority": n % 4,
            "status": c.INTENT_PENDING,
            "due_at": NOW - dt.timedelta(seconds=n % 50),
            "attempt_count": 0,
            "max_attempts": 5,
            "ambiguous_count": 0,
            "created_at": NOW,
            "updated_at": NOW,
        }
        for n in range(count)
    ]
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(table), rows)
            return list((await conn.execute(sa.select(table.c.id).order_by(table.c.id))).scalars())
    finally:
        await engine.dispose()


def _run_workers(
    url: str, workdir: Path, owners: list[str], *, batch: int, mode: str
) -> dict[str, dict[str, Any]]:
    """Start one process per owner, release them at once, wait, and return their reports."""
    procs = {
        owner: subprocess.Popen(
            [sys.executable, str(WORKER), url, owner, NOW.isoformat(), str(batch), str(workdir), mode],
            stderr=subprocess.PIPE,
            text=True,
        )
        for owner in owners
    }
    try:
        deadline = time.monotonic() + 60
        while not all((workdir / f"{o}.ready").exists() for o in owners):
            for owner, proc in procs.items():
                assert proc.poll() is None, f"{owner} exited early: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        (workdir / "go").touch()
        for owner, proc in procs.items():
            _, stderr = proc.communicate(timeout=120)
            expected = 137 if mode == "crash" else 0
            assert proc.returncode == expected, f"{owner} exited with {proc.returncode}: {stderr}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    reports = {o: json.loads((workdir / f"{o}.json").read_text()) for o in owners}
    (workdir / "go").unlink()
    for owner in owners:
        (workdir / f"{owner}.ready").unlink()
    return reports


async def test_two_worker_processes_never_share_an_intent(sql_url: str, tmp_path: Path) -> None:
    """Two processes claiming from one outbox of 500 intents split it: no intent twice, none left behind."""
    ids = await _seed(sql_url, INTENTS)
    reports = _run_workers(sql_url, tmp_path, ["worker-a", "worker-b"], batch=5, mode="send")
    a, b = (set(reports[o]["claimed"]) for o in ("worker-a", "worker-b"))
    assert len(reports["worker-a"]["claimed"]) == len(a)
    assert len(reports["worker-b"]["claimed"]) == len(b)
    assert a.isdisjoint(b), f"claimed by both: {sorted(a & b)[:10]}"
    assert a | b == set(ids)
    assert a
    assert b, "both workers must have taken part for the test to mean anything"
    factory = SqlAlchemyUnitOfWorkFactory(sql_url)
    try:
        async with factory() as uow:
            assert await uow.intents.count(status=c.INTENT_SENT) == INTENTS
            # A double claim would have counted a second attempt.
            assert await uow.intents.count(attempt_count__ne=1) == 0
            assert await uow.intents.count(lease_owner="worker-a") == len(a)
            assert await uow.intents.count(lease_owner="worker-b") == len(b)
    finally:
        await factory.aclose()


async def test_expired_lease_of_a_killed_worker_is_reclaimed(sql_url: str, tmp_path: Path) -> None:
    """Intents of a worker killed mid-send return to pending after lease expiry; another worker sends them."""
    ids = await _seed(sql_url, 30)
    crashed = _run_workers(sql_url, tmp_path, ["doomed"], batch=10, mode="crash")["doomed"]["claimed"]
    assert len(crashed) == 10
    factory = SqlAlchemyUnitOfWorkFactory(sql_url)
    try:
        async with factory() as uow:
            # Before expiry nothing is reclaimable.
            assert await uow.intents.find(status=c.INTENT_SENDING, lease_until__lt=NOW) == []
            later = NOW + dt.timedelta(seconds=61)
            expired: list[NotificationIntent] = await uow.intents.find(
                status=c.INTENT_SENDING, lease_until__lt=later
            )
            assert sorted(i.id for i in expired) == sorted(crashed)
            for intent in expired:
                back = await uow.intents.update_where(
                    intent.id,
                    {"status": c.INTENT_SENDING, "lease_until": intent.lease_until},
                    {
                        "status": c.INTENT_PENDING,
                        "lease_owner": None,
                        "lease_until": None,
                        "ambiguous_count": intent.ambiguous_count + 1,
                    },
                )
                assert back is not None
            await uow.commit()
        reports = _run_workers(sql_url, tmp_path, ["rescuer"], batch=7, mode="send")
        assert sorted(reports["rescuer"]["claimed"]) == sorted(ids)
        async with factory() as uow:
            assert await uow.intents.count(status=c.INTENT_SENT) == 30
            reclaimed = await uow.intents.find(id__in=crashed)
            assert {(i.attempt_count, i.ambiguous_count, i.lease_owner) for i in reclaimed} == {
                (2, 1, "rescuer")
            }
            others = await uow.intents.find(id__in=sorted(set(ids) - set(crashed)))
            assert {(i.attempt_count, i.ambiguous_count) for i in others} == {(1, 0)}
    finally:
        await factory.aclose()
