#!/usr/bin/env python3
"""Storage benchmark: dedup lookups and the scheduler's due query with 100k open groups (SPEC S12.2).

For each engine (SQLite file, PostgreSQL at ``RELAY_BENCH_PG``), in a fresh migrated database:

1. bulk-load ``--groups`` open alert groups (one child alert each) with Core ``executemany``:
   60 % firing with a timer in the future, 40 % acknowledged without one, plus ``--due``
   firing groups whose ``next_action_at`` has passed; optionally ``--closed`` resolved groups;
2. time ``alerts.first(team_id=…, source=…, dedup_key=…, group_open=True)`` (90 % hits) inside
   one unit of work, and as a whole read-only unit of work (begin, lookup, rollback);
3. time ``alert_groups.find(next_action_at__lte=now, order_by="next_action_at", limit=500)``;
4. time an intake-like write transaction (dedup miss, open-group lookup, group + alert + event +
   trace + intent, commit) one at a time and 16 at once, to show ``BEGIN IMMEDIATE`` keeps
   SQLite intake fast;
5. time outbox claims of 50 from 10k pending intents;
6. print ``EXPLAIN`` of the dedup, due and claim statements and whether they use their index.

Prints p50/p99 per measurement and writes ``bench/results/storage.json``.

Usage: ``.venv/bin/python bench/storage_bench.py [--groups 100000] [--skip-postgres] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import asyncpg
import sqlalchemy as sa

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWork, SqlAlchemyUnitOfWorkFactory, migrate
from relay_adapters.storage.sqlalchemy.repositories import SqlAlchemyIntentRepository, SqlAlchemyRepository
from relay_adapters.storage.sqlalchemy.tables import metadata
from relay_core.domain import constants as c
from relay_core.domain.model import Alert, AlertEvent, AlertGroup, ExplainTrace, NotificationIntent, TraceStep

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "storage.json"
PG_ADMIN = os.environ.get("RELAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
TEAMS = 50
SOURCES = ("alertmanager", "zabbix", "grafana", "webhook")
MEASUREMENTS = (
    "dedup_lookup",
    "dedup_lookup_whole_uow",
    "due_query",
    "intake_tx_sequential",
    "intake_tx_concurrent_16",
    "claim_50_of_10k",
)
INDEXES = {
    "dedup_lookup": "uq_alerts_open_dedup_key",
    "due_query": "ix_alert_groups_next_action_at",
    "claim": "ix_intents_claim",
}


# --- statistics -------------------------------------------------------------------------------


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(pct(samples_ms, 50), 3),
        "p99_ms": round(pct(samples_ms, 99), 3),
        "mean_ms": round(statistics.fmean(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
    }


async def timed(n: int, fn: Callable[[int], Awaitable[Any]], *, warmup: int = 20) -> list[float]:
    for i in range(warmup):
        await fn(i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


# --- data -------------------------------------------------------------------------------------


def _key(n: int) -> tuple[int, str, str]:
    """(team_id, source, dedup_key) of group/alert number n."""
    return 1 + n % TEAMS, SOURCES[n % len(SOURCES)], f"fingerprint-{n:08d}"


def _group_rows(
    start: int, stop: int, *, due: int, closed: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    groups, alerts = [], []
    for n in range(start, stop):
        team_id, source, dedup_key = _key(n)
        if closed:
            status, next_action = c.GROUP_RESOLVED, None
        elif n < due:
            status, next_action = c.GROUP_FIRING, NOW - dt.timedelta(seconds=1 + n)
        elif n % 5 < 3:
            status, next_action = c.GROUP_FIRING, NOW + dt.timedelta(seconds=60 + n % 3600)
        else:
            status, next_action = c.GROUP_ACKNOWLEDGED, None
        seen = NOW - dt.timedelta(minutes=n % 10_000)
        groups.append(
            {
                "id": n + 1,
                "team_id": team_id,
                "route_id": team_id,
                "source": source,
                "group_key": f"source={source}|team_id={team_id}|dedup_key={dedup_key}",
                "group_key_hash": f"{n:064x}",
                "title": f"Disk full on host-{n}",
                "message": "",
                "severity": c.SEV_WARNING,
                "status": status,
                "common_labels": {"alertname": "DiskFull", "instance": f"host-{n}"},
                "first_seen_at": seen,
                "last_seen_at": seen,
                "alert_count": 1,
                "firing_count": 0 if closed else 1,
                "resolved_count": 1 if closed else 0,
                "silenced_count": 0,
                "notified": True,
                "reminder_count": 0,
                "escalation_level": 0,
                "next_action_at": next_action,
                "next_reminder_at": next_action,
                "lifecycle_version": 1,
                "update_seq": 0,
                "test": False,
                "created_at": seen,
                "updated_at": seen,
            }
        )
        alerts.append(
            {
                "group_id": n + 1,
                "team_id": team_id,
                "route_id": team_id,
                "source": source,
                "dedup_key": dedup_key,
                "title": f"Disk full on host-{n}",
                "message": "",
                "severity": c.SEV_WARNING,
                "labels": {"alertname": "DiskFull", "instance": f"host-{n}"},
                "annotations": {},
                "payload": {"fingerprint": dedup_key},
                "status": c.ALERT_RESOLVED if closed else c.ALERT_FIRING,
                "first_seen_at": seen,
                "last_seen_at": seen,
                "group_open": not closed,
                "created_at": seen,
                "updated_at": seen,
            }
        )
    return groups, alerts


async def load(factory: SqlAlchemyUnitOfWorkFactory, *, groups: int, due: int, closed: int) -> dict[str, Any]:
    """Bulk insert with Core executemany, in chunks, then ANALYZE."""
    g_table, a_table = metadata.tables["alert_groups"], metadata.tables["alerts"]
    started = time.perf_counter()
    chunk = 10_000
    async with factory.engine.begin() as conn:
        for begin in range(0, groups + closed, chunk):
            stop = min(begin + chunk, groups + closed)
            open_stop = min(stop, groups)
            if begin < groups:
                g_rows, a_rows = _group_rows(begin, open_stop, due=due, closed=False)
                await conn.execute(sa.insert(g_table), g_rows)
                await conn.execute(sa.insert(a_table), a_rows)
            if stop > groups:
                g_rows, a_rows = _group_rows(max(begin, groups), stop, due=0, closed=True)
                await conn.execute(sa.insert(g_table), g_rows)
                await conn.execute(sa.insert(a_table), a_rows)
        if conn.dialect.name == "postgresql":
            await conn.execute(
                sa.text("SELECT setval('alert_groups_id_seq', (SELECT max(id) FROM alert_groups))")
            )
    seconds = time.perf_counter() - started
    async with factory.engine.connect() as conn:
        await conn.execute(sa.text("ANALYZE"))
        await conn.commit()
    rows = 2 * (groups + closed)
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}


async def load_intents(factory: SqlAlchemyUnitOfWorkFactory, count: int) -> None:
    table = metadata.tables["intents"]
    rows = [
        {
            "idempotency_key": f"bench:{n}",
            "group_id": n + 1,
            "channel_id": 1,
            "recipient_key": "channel",
            "event_type": c.EV_NOTIFICATION,
            "reason": "",
            "priority": n % 4,
            "status": c.INTENT_PENDING,
            "due_at": NOW - dt.timedelta(seconds=n % 600),
            "attempt_count": 0,
            "max_attempts": 5,
            "ambiguous_count": 0,
            "created_at": NOW,
            "updated_at": NOW,
        }
        for n in range(count)
    ]
    async with factory.engine.begin() as conn:
        await conn.execute(sa.insert(table), rows)
    async with factory.engine.connect() as conn:
        await conn.execute(sa.text("ANALYZE"))
        await conn.commit()


# --- measurements -----------------------------------------------------------------------------


async def explain(uow: SqlAlchemyUnitOfWork, statement: Any) -> list[str]:
    compiled = statement.compile(dialect=uow.connection.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if uow.dialect_name == "sqlite" else "EXPLAIN "
    result = await uow.connection.exec_driver_sql(prefix + str(compiled))
    return [str(row[-1]) for row in result]


def _intake_entities(n: int) -> tuple[AlertGroup, str]:
    team_id, source, _ = _key(n)
    dedup_key = f"new-{uuid.uuid4().hex}"
    group = AlertGroup(
        team_id=team_id,
        route_id=team_id,
        source=source,
        group_key=f"source={source}|team_id={team_id}|dedup_key={dedup_key}",
        group_key_hash=uuid.uuid4().hex * 2,
        title="New alert",
        first_seen_at=NOW,
        last_seen_at=NOW,
        next_action_at=NOW + dt.timedelta(seconds=30),
    )
    return group, dedup_key


async def intake_once(factory: SqlAlchemyUnitOfWorkFactory, n: int) -> None:
    """Roughly what one single-alert intake writes (SPEC S2.11), in one transaction."""
    group, dedup_key = _intake_entities(n)
    async with factory() as uow:
        await uow.alerts.first(
            team_id=group.team_id, source=group.source, dedup_key=dedup_key, group_open=True
        )
        await uow.alert_groups.first(
            team_id=group.team_id, group_key_hash=group.group_key_hash, status__in=["firing", "acknowledged"]
        )
        group = await uow.alert_groups.add(group)
        alert = await uow.alerts.add(
            Alert(
                group_id=group.id,
                team_id=group.team_id,
                route_id=group.route_id,
                source=group.source,
                dedup_key=dedup_key,
                labels={"alertname": "DiskFull"},
                payload={"fingerprint": dedup_key},
                first_seen_at=NOW,
                last_seen_at=NOW,
            )
        )
        await uow.events.add(
            AlertEvent(group_id=group.id, alert_id=alert.id, event_type="created", created_at=NOW)
        )
        await uow.traces.add(
            ExplainTrace(
                trace_id=str(uuid.uuid4()),
                group_id=group.id,
                alert_id=alert.id,
                source=group.source,
                dedup_key=dedup_key,
                outcome=c.OUTCOME_CREATED,
                steps=(TraceStep(position=0, stage="alert_received", code="received"),),
                started_at=NOW,
                finished_at=NOW,
            )
        )
        await uow.intents.add_unique(
            NotificationIntent(
                idempotency_key=f"{group.id}:1:channel:notification:0",
                group_id=group.id,
                channel_id=1,
                event_type=c.EV_NOTIFICATION,
                due_at=NOW + dt.timedelta(seconds=30),
                created_at=NOW,
            )
        )
        await uow.commit()


async def bench_engine(url: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== {sa.make_url(url).get_backend_name()} ==", flush=True)
    await migrate(url)
    factory = SqlAlchemyUnitOfWorkFactory(url, pool_size=20, max_overflow=10)
    out: dict[str, Any] = {}
    try:
        out["load"] = await load(factory, groups=args.groups, due=args.due, closed=args.closed)
        print(
            f"loaded {out['load']['rows']} rows in {out['load']['seconds']} s ({out['load']['rows_per_s']}/s)"
        )
        rng = random.Random(7)
        keys = [
            _key(rng.randrange(args.groups)) if rng.random() < 0.9 else (1, "alertmanager", f"miss-{i}")
            for i in range(args.lookups + 50)
        ]
        async with factory() as uow:
            counts = {
                "open_groups": await uow.alert_groups.count(
                    status__in=[c.GROUP_FIRING, c.GROUP_ACKNOWLEDGED]
                ),
                "due_groups": await uow.alert_groups.count(next_action_at__lte=NOW),
            }
            out["dataset"] = counts
            print(f"dataset: {counts}")

            async def dedup(i: int) -> None:
                team_id, source, dedup_key = keys[i]
                await uow.alerts.first(team_id=team_id, source=source, dedup_key=dedup_key, group_open=True)

            out["dedup_lookup"] = summary(await timed(args.lookups, dedup))

            async def due_query(_: int) -> None:
                found = await uow.alert_groups.find(
                    next_action_at__lte=NOW, order_by="next_action_at", limit=500
                )
                assert len(found) == args.due, len(found)

            out["due_query"] = summary(await timed(args.due_runs, due_query, warmup=5))

            plans = {
                "dedup_lookup": await explain(
                    uow,
                    cast(SqlAlchemyRepository[Alert], uow.alerts).select_statement(
                        limit=1,
                        team_id=1,
                        source="alertmanager",
                        dedup_key="fingerprint-00000050",
                        group_open=True,
                    ),
                ),
                "due_query": await explain(
                    uow,
                    cast(SqlAlchemyRepository[AlertGroup], uow.alert_groups).select_statement(
                        next_action_at__lte=NOW, order_by="next_action_at", limit=500
                    ),
                ),
            }

        async def dedup_uow(i: int) -> None:
            team_id, source, dedup_key = keys[i]
            async with factory() as uow:
                await uow.alerts.first(team_id=team_id, source=source, dedup_key=dedup_key, group_open=True)

        out["dedup_lookup_whole_uow"] = summary(await timed(args.lookups, dedup_uow))

        out["intake_tx_sequential"] = summary(await timed(args.intakes, lambda i: intake_once(factory, i)))
        concurrency = 16
        latencies: list[float] = []

        async def one(i: int) -> None:
            started = time.perf_counter()
            await intake_once(factory, i)
            latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        for base in range(0, args.intakes, concurrency):
            await asyncio.gather(*(one(base + k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
        out["intake_tx_concurrent_16"] = summary(latencies) | {"tx_per_s": round(len(latencies) / elapsed)}

        await load_intents(factory, 10_000)

        async def claim(i: int) -> None:
            async with factory() as uow:
                got = await uow.intents.claim(
                    owner="bench", now=NOW, lease_until=NOW + dt.timedelta(seconds=60), limit=50
                )
                assert got, "ran out of intents"
                await uow.commit()

        out["claim_50_of_10k"] = summary(await timed(args.claims, claim, warmup=5))
        async with factory() as uow:
            plans["claim"] = await explain(
                uow,
                cast(SqlAlchemyIntentRepository, uow.intents).claim_statement(
                    owner="x", now=NOW, lease_until=NOW, limit=50
                ),
            )
        out["explain"] = {
            name: {
                "plan": plan,
                "index": INDEXES[name],
                "index_used": any(INDEXES[name] in line for line in plan),
            }
            for name, plan in plans.items()
        }
    finally:
        await factory.aclose()
    for name in MEASUREMENTS:
        figures = out[name]
        extra = f"  ({figures['tx_per_s']} tx/s)" if "tx_per_s" in figures else ""
        p50, p99 = figures["p50_ms"], figures["p99_ms"]
        print(f"{name:<26} p50 {p50:>8.3f} ms   p99 {p99:>8.3f} ms   n={figures['n']}{extra}")
    for name, info in out["explain"].items():
        print(f"EXPLAIN {name} (index {info['index']} used: {info['index_used']}):")
        for line in info["plan"]:
            print(f"    {line}")
    return out


async def postgres_database() -> tuple[str, str] | None:
    name = f"relay_bench_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}; skipped")
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), str(version)


async def drop_postgres(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000, help="open alert groups (default 100000)")
    parser.add_argument("--due", type=int, default=100, help="of which due now (default 100)")
    parser.add_argument("--closed", type=int, default=0, help="extra resolved groups (default 0)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.lookups = 500 if args.quick else 5_000
    args.due_runs = 50 if args.quick else 500
    args.intakes = 160 if args.quick else 1_600
    args.claims = 20 if args.quick else 150

    report: dict[str, Any] = {
        "run_id": uuid.uuid4().hex,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sa.__version__,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "params": {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)},
        "results": {},
    }
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        report["results"]["sqlite"] = await bench_engine(f"sqlite:///{tmp}/relay.db", args)
    if not args.skip_postgres:
        created = await postgres_database()
        if created is not None:
            url, version = created
            report["machine"]["postgresql"] = version
            try:
                report["results"]["postgresql"] = await bench_engine(url, args)
            finally:
                await drop_postgres(sa.make_url(url).database or "")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
