#!/usr/bin/env python3
"""Relay's performance harness (SPEC S12): prints a table and writes bench/results/latest.json.

Run with ``python3 dev.py bench`` (or ``.venv/bin/python bench/run.py``). Every figure is
measured here, never asserted in unit tests. Sections:

* ``oncall_lookup``     on-call resolution with 10k overrides on one rotation (pure core).
* ``intake_service``    the intake use case in-process (one request = one transaction) on
                        SQLite and PostgreSQL: single-alert and 50-alert Alertmanager posts.
* ``scheduler_tick``    one ``due_actions`` pass with 1k and 100k open groups, 100 due.

Options: ``--quick`` (smaller samples), ``--skip-postgres``, ``--only SECTION``.
PostgreSQL is used at ``RELAY_BENCH_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``);
each run creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("RELAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(pct(samples_ms, 50), 3),
        "p95_ms": round(pct(samples_ms, 95), 3),
        "p99_ms": round(pct(samples_ms, 99), 3),
        "mean_ms": round(statistics.fmean(samples_ms), 3),
    }


# --- on-call lookup ----------------------------------------------------------------------


def bench_oncall(quick: bool) -> dict[str, Any]:
    from relay_core.domain import rotation
    from relay_core.domain.model import Rotation, RotationMember, RotationOverride

    rot = Rotation(id=1, team_id=1, name="r", start_at=T0 - dt.timedelta(days=400), timezone="Europe/Berlin")
    members = [RotationMember(id=i, rotation_id=1, user_id=i, position=i) for i in range(5)]
    overrides = [
        RotationOverride(
            id=i + 1,
            rotation_id=1,
            user_id=i % 5,
            starts_at=T0 - dt.timedelta(days=400) + dt.timedelta(hours=i),
            ends_at=T0 - dt.timedelta(days=400) + dt.timedelta(hours=i, minutes=30),
            created_at=T0,
        )
        for i in range(10_000)
    ]
    started = time.perf_counter()
    index = rotation.OverrideIndex(overrides)
    build_ms = (time.perf_counter() - started) * 1000
    samples = []
    n = 2_000 if quick else 20_000
    for i in range(n):
        t = T0 - dt.timedelta(days=400) + dt.timedelta(minutes=(i * 37) % (400 * 24 * 60))
        s = time.perf_counter()
        rotation.oncall_at(rot, members, index, t)
        samples.append((time.perf_counter() - s) * 1000)
    return {"overrides": 10_000, "index_build_ms": round(build_ms, 2), **summary(samples)}


# --- storage helpers ---------------------------------------------------------------------


async def _pg_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    import asyncpg

    name = f"relay_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN.rsplit("/", 1)[0]

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    return f"{base}/{name}", drop


async def _world(url: str, *, reminder: int = 300) -> Any:
    """Migrate ``url`` and create a team, a rotation, a route and a recording channel."""
    from relay_adapters.storage.sqlalchemy.schema import migrate
    from relay_adapters.storage.sqlalchemy.uow import SqlAlchemyUnitOfWorkFactory
    from relay_core.bootstrap import bootstrap
    from relay_core.domain.model import Channel, Group, Rotation, RotationMember, Route, Team, User
    from relay_core.services.context import CoreSettings
    from relay_core.testing.fakes import FakeClock, RecordingChannel

    await migrate(url)
    factory = SqlAlchemyUnitOfWorkFactory(url)
    clock = FakeClock(T0)
    relay = bootstrap(
        uow_factory=factory, clock=clock, settings=CoreSettings(), channels=[RecordingChannel()]
    )
    async with factory() as uow:
        grp = await uow.groups.add(Group(slug="bench", name="Bench"))
        team = await uow.teams.add(Team(group_id=grp.id, slug="bench", name="Bench"))
        user = await uow.users.add(User(username="oncall", phone="+15550000000"))
        rot = await uow.rotations.add(
            Rotation(
                team_id=team.id,
                name="r",
                start_at=T0 - dt.timedelta(days=1),
                reminder_interval_seconds=reminder,
            )
        )
        await uow.rotation_members.add(RotationMember(rotation_id=rot.id, user_id=user.id, position=0))
        chan = await uow.channels.add(
            Channel(group_id=grp.id, team_id=team.id, name="rec", channel_type="recording")
        )
        route = await uow.routes.add(
            Route(
                team_id=team.id, name="am", source="alertmanager", rotation_id=rot.id, channel_ids=(chan.id,)
            )
        )
        await uow.commit()
    return relay, factory, clock, {"team": team.id, "route": route.id, "rotation": rot.id, "user": user.id}


def _am_body(n: int, offset: int) -> bytes:
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "Bench", "severity": "critical", "instance": f"host{offset + i}:9100"},
            "annotations": {"summary": f"Bench alert {offset + i}"},
            "startsAt": "2026-06-01T09:59:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"fp-{offset + i}",
        }
        for i in range(n)
    ]
    return json.dumps({"version": "4", "status": "firing", "receiver": "relay", "alerts": alerts}).encode()


async def bench_intake(url: str, quick: bool) -> dict[str, Any]:
    from relay_adapters.intake.alertmanager import AlertmanagerSource

    relay, factory, _clock, ids = await _world(url)
    source = AlertmanagerSource()
    out: dict[str, Any] = {}
    try:
        for batch, requests in ((1, 200 if quick else 1000), (50, 20 if quick else 100)):
            samples = []
            started = time.perf_counter()
            for r in range(requests):
                body = _am_body(batch, offset=batch * 100_000 + r * batch)
                s = time.perf_counter()
                items = source.parse(body, {}, {})
                await relay.ingest("alertmanager", items, route_id=ids["route"])
                samples.append((time.perf_counter() - s) * 1000)
            wall = time.perf_counter() - started
            out[f"batch_{batch}"] = {**summary(samples), "alerts_per_s": round(batch * requests / wall, 1)}
    finally:
        await factory.aclose()
    return out


async def _seed_groups(factory: Any, ids: dict[str, int], total: int, due: int) -> None:
    """Bulk-insert ``total`` open firing groups; ``due`` of them have a reminder due now."""
    import sqlalchemy as sa

    from relay_adapters.storage.sqlalchemy.tables import metadata

    table = metadata.tables["alert_groups"]
    rows = []
    for i in range(total):
        when = T0 - dt.timedelta(seconds=1) if i < due else T0 + dt.timedelta(seconds=60 + i)
        rows.append(
            {
                "team_id": ids["team"],
                "route_id": ids["route"],
                "rotation_id": ids["rotation"],
                "assignee_id": ids["user"],
                "category_id": None,
                "source": "alertmanager",
                "group_key": f"k{i}",
                "group_key_hash": uuid.uuid4().hex,
                "title": f"Seeded {i}",
                "message": "",
                "severity": "critical",
                "status": "firing",
                "previous_status": None,
                "common_labels": {},
                "event_link": None,
                "acknowledged_by": None,
                "acknowledged_at": None,
                "resolved_by": None,
                "resolved_at": None,
                "resolved_via": None,
                "first_seen_at": T0,
                "last_seen_at": T0,
                "alert_count": 1,
                "firing_count": 1,
                "resolved_count": 0,
                "silenced_count": 0,
                "notified": True,
                "last_notification_at": T0,
                "reminder_count": 0,
                "escalation_level": 0,
                "next_reminder_at": when,
                "next_action_at": when,
                "lifecycle_version": 0,
                "update_seq": 0,
                "test": False,
                "created_at": T0,
                "updated_at": T0,
            }
        )
    engine = factory.engine
    async with engine.begin() as conn:
        for start in range(0, total, 5000):
            await conn.execute(sa.insert(table), rows[start : start + 5000])


async def bench_scheduler(
    url_factory: Callable[[], Awaitable[tuple[str, Callable[[], Awaitable[None]]]]], quick: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sizes = (1_000, 20_000) if quick else (1_000, 100_000)
    for total in sizes:
        url, cleanup = await url_factory()
        try:
            relay, factory, _clock, ids = await _world(url)
            await _seed_groups(factory, ids, total, due=100)
            s = time.perf_counter()
            taken = await relay.tick()
            tick_ms = (time.perf_counter() - s) * 1000
            s = time.perf_counter()
            again = await relay.tick()
            idle_ms = (time.perf_counter() - s) * 1000
            out[f"open_{total}"] = {
                "due": 100,
                "actions": taken,
                "tick_ms": round(tick_ms, 1),
                "idle_tick_ms": round(idle_ms, 2),
                "second_tick_actions": again,
            }
            await factory.aclose()
        finally:
            await cleanup()
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "python": sys.version.split()[0],
    }
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))

    async def sqlite_db() -> tuple[str, Callable[[], Awaitable[None]]]:
        path = tmp / f"{uuid.uuid4().hex}.db"

        async def cleanup() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - tiny bench cleanup

        return f"sqlite:///{path}", cleanup

    engines: dict[str, Callable[[], Awaitable[tuple[str, Callable[[], Awaitable[None]]]]]] = {
        "sqlite": sqlite_db
    }
    if not args.skip_postgres:
        engines["postgresql"] = _pg_database
    if args.only in (None, "oncall_lookup"):
        results["oncall_lookup"] = bench_oncall(args.quick)
    if args.only in (None, "intake_service"):
        results["intake_service"] = {}
        for name, make in engines.items():
            url, cleanup = await make()
            try:
                results["intake_service"][name] = await bench_intake(url, args.quick)
            finally:
                await cleanup()
    if args.only in (None, "scheduler_tick"):
        results["scheduler_tick"] = {
            name: await bench_scheduler(make, args.quick) for name, make in engines.items()
        }
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"{'measure':58} {'value':>40}")
    print("-" * 99)

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and not any(k.endswith("_ms") or k == "alerts_per_s" for k in node):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value)
        else:
            text = ", ".join(f"{k}={v}" for k, v in node.items()) if isinstance(node, dict) else str(node)
            print(f"{prefix:58} {text:>40}")

    walk("", {k: v for k, v in results.items() if k not in ("started_at", "python")})


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--only", choices=("oncall_lookup", "intake_service", "scheduler_tick"))
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nwritten: {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
