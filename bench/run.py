#!/usr/bin/env python3
"""Relay's performance harness (SPEC S12): prints a table and writes bench/results/latest.json.

Run with ``python bench/run.py`` (or ``nox -s bench``); ``--quick`` is a short smoke run,
``--long`` the long one. Every figure is measured here, never asserted in unit tests.

Scenarios (each starts from a fresh database; PostgreSQL databases are created and dropped here):

* ``intake``      real HTTP against a real ``relay serve --no-worker`` process (SQLite, and
                  PostgreSQL with ``--no-scheduler``), load from a separate process
                  (``bench/loadgen.py``): alerts/s and p50/p95/p99 at concurrency 1, 8, 32 for
                  single-alert and 50-alert Alertmanager posts (T1, T2).
* ``ceiling``     the same load against a bare Litestar POST handler (``bench/bare_app.py``);
                  intake as a ratio of it (T7).
* ``first_send``  intake -> first byte at a local webhook receiver: embedded ``relay serve``
                  on SQLite (T3) and the production topology (web + ``relay worker`` +
                  ``relay scheduler`` + Redis on its own DB number and key namespace, PostgreSQL).
* ``memory``      resident memory of the embedded ``relay serve`` holding 100k stored alerts,
                  after one alert-list query and 60 s idle (T6).
* ``scheduler``   one ``due_actions`` pass with 1k and 100k open groups, 100 due (T4), in-process.
* ``oncall``      on-call lookup with 100 and 10k overrides (T5), in-process.

Options: ``--quick``, ``--long``, ``--skip-postgres``, ``--only SECTION[,SECTION]``.
PostgreSQL: ``RELAY_BENCH_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``);
Redis: ``RELAY_BENCH_REDIS`` (default ``redis://127.0.0.1:6379/13``; only keys under a
per-run namespace are written and deleted afterwards, nothing is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
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
REDIS_URL = os.environ.get("RELAY_BENCH_REDIS", "redis://127.0.0.1:6379/13")
T0 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
PY = sys.executable
SECTIONS = ("intake", "ceiling", "first_send", "memory", "scheduler", "oncall")


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(pct(samples_ms, 50), 4),
        "p95_ms": round(pct(samples_ms, 95), 4),
        "p99_ms": round(pct(samples_ms, 99), 4),
        "mean_ms": round(statistics.fmean(samples_ms), 4),
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- on-call lookup ----------------------------------------------------------------------


def bench_oncall(quick: bool, count: int = 10_000) -> dict[str, Any]:
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
        for i in range(count)
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
    return {"overrides": count, "index_build_ms": round(build_ms, 2), **summary(samples)}


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


async def _rearm(factory: Any, due: int) -> None:
    """Make the first ``due`` seeded groups due again (firing, reminder timer in the past)."""
    import sqlalchemy as sa

    from relay_adapters.storage.sqlalchemy.tables import metadata

    table = metadata.tables["alert_groups"]
    when = T0 - dt.timedelta(seconds=1)
    keys = [f"k{i}" for i in range(due)]
    async with factory.engine.begin() as conn:
        await conn.execute(
            sa.update(table)
            .where(table.c.group_key.in_(keys))
            .values(status="firing", next_reminder_at=when, next_action_at=when, escalation_level=0)
        )


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
            ticks: list[float] = []
            actions: list[int] = []
            for round_ in range(3):
                if round_:
                    await _rearm(factory, 100)  # the same 100 groups are due again
                s = time.perf_counter()
                actions.append(await relay.tick())
                ticks.append((time.perf_counter() - s) * 1000)
            s = time.perf_counter()
            again = await relay.tick()  # nothing is due now
            idle_ms = (time.perf_counter() - s) * 1000
            out[f"open_{total}"] = {
                "due": 100,
                "actions": actions,
                "tick_ms": round(statistics.median(ticks), 1),
                "tick_ms_rounds": [round(t, 1) for t in ticks],
                "idle_tick_ms": round(idle_ms, 2),
                "idle_tick_actions": again,
            }
            await factory.aclose()
        finally:
            await cleanup()
    return out


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cmd: list[str]) -> list[str]:
    """Pin a server to (at most) two cores where the OS allows (SPEC S12.3)."""
    taskset = shutil.which("taskset")
    cores = sorted(os.sched_getaffinity(0))[:2] if hasattr(os, "sched_getaffinity") else []
    if taskset and cores:
        return [taskset, "-c", ",".join(map(str, cores)), *cmd]
    return cmd


class Proc:
    """A child process with its output in a log file; stopped with SIGTERM, then killed."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=logdir
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self, timeout: float = 20) -> None:  # noqa: ASYNC109
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def server_env(tmp: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    data = tmp / f"data-{uuid.uuid4().hex[:6]}"
    data.mkdir(parents=True, exist_ok=True)
    env.update(
        RELAY_DATA_DIR=str(data),
        RELAY_DATABASE_URL=database_url,
        RELAY_SECRET_KEY="bench-" + "k" * 40,
        RELAY_LOG_LEVEL="WARNING",
        RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST="127.0.0.1/32",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


async def wait_healthy(port: int, proc: Proc, timeout: float = 60) -> None:  # noqa: ASYNC109
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{proc.name} not healthy within {timeout} s:\n{proc.tail()}")


async def start_relay(
    tmp: Path, database_url: str, *flags: str, env_extra: dict[str, str] | None = None
) -> tuple[Proc, int]:
    last: Exception | None = None
    for _attempt in range(3):  # a start-up failure is retried once or twice before giving up
        port = free_port()
        env = server_env(tmp, database_url, **(env_extra or {}))
        cmd = pinned([PY, "-m", "relay_server", "serve", "--host", "127.0.0.1", "--port", str(port), *flags])
        proc = Proc("relay-serve", cmd, env, tmp)
        try:
            await wait_healthy(port, proc)
        except RuntimeError as exc:
            last = exc
            await proc.stop()
            log(f"relay serve did not start, retrying: {str(exc).splitlines()[-1]}")
            await asyncio.sleep(5)
            continue
        return proc, port
    assert last is not None
    raise last


async def start_bare(tmp: Path) -> tuple[Proc, int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = pinned(
        [
            PY,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--no-server-header",
        ]
    )
    proc = Proc("bare-litestar", cmd, env, tmp)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return proc, port
        if proc.proc.poll() is not None:
            break
        await asyncio.sleep(0.2)
    raise RuntimeError(f"bare app did not start:\n{proc.tail()}")


async def loadgen(*args: str) -> dict[str, Any]:
    """Run ``bench/loadgen.py`` as a separate process and parse its JSON line."""
    proc = await asyncio.create_subprocess_exec(
        PY,
        str(ROOT / "bench" / "loadgen.py"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {err.decode()[-2000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


# --- databases and worlds ------------------------------------------------------------------


class Databases:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    async def make(self, engine: str) -> tuple[str, Callable[[], Awaitable[None]]]:
        if engine == "postgresql":
            return await _pg_database()
        path = self.tmp / f"{uuid.uuid4().hex}.db"

        async def cleanup() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - tiny bench cleanup

        return f"sqlite:///{path}", cleanup


async def http_world(url: str, *, webhook_url: str | None) -> dict[str, Any]:
    """Migrate ``url``; create a team, rotation, (webhook channel), an Alertmanager route with an
    intake token (empty ``group_by``: one group per alert) and an admin with an API token."""
    from relay_adapters.storage.sqlalchemy.schema import migrate
    from relay_adapters.storage.sqlalchemy.uow import SqlAlchemyUnitOfWorkFactory
    from relay_core.domain.model import (
        ApiToken,
        Channel,
        Group,
        Rotation,
        RotationMember,
        Route,
        Team,
        User,
    )
    from relay_server.auth import PERSONAL_TOKEN_PREFIX, ROUTE_TOKEN_PREFIX, new_token

    await migrate(url)
    factory = SqlAlchemyUnitOfWorkFactory(url)
    route_token = new_token(ROUTE_TOKEN_PREFIX)
    api_token = new_token(PERSONAL_TOKEN_PREFIX)
    now = dt.datetime.now(dt.UTC)
    try:
        async with factory() as uow:
            grp = await uow.groups.add(Group(slug="bench", name="Bench"))
            team = await uow.teams.add(Team(group_id=grp.id, slug="bench", name="Bench"))
            user = await uow.users.add(User(username="oncall", phone="+15550000000"))
            admin = await uow.users.add(User(username="benchadmin", is_admin=True))
            await uow.api_tokens.add(
                ApiToken(
                    user_id=admin.id,
                    name="bench",
                    token_prefix=api_token.prefix,
                    token_hash=api_token.hash,
                    scopes=("*",),
                )
            )
            rot = await uow.rotations.add(
                Rotation(team_id=team.id, name="r", start_at=now - dt.timedelta(days=1))
            )
            await uow.rotation_members.add(RotationMember(rotation_id=rot.id, user_id=user.id, position=0))
            channel_ids: tuple[int, ...] = ()
            if webhook_url:
                chan = await uow.channels.add(
                    Channel(
                        group_id=grp.id,
                        team_id=team.id,
                        name="bench-webhook",
                        channel_type="webhook",
                        config={"webhook_url": webhook_url},
                    )
                )
                channel_ids = (chan.id,)
            route = await uow.routes.add(
                Route(
                    team_id=team.id,
                    name="am",
                    source="alertmanager",
                    rotation_id=rot.id,
                    channel_ids=channel_ids,
                    intake_token_prefix=route_token.prefix,
                    intake_token_hash=route_token.hash,
                )
            )
            await uow.commit()
    finally:
        await factory.aclose()
    return {
        "token": route_token.raw,
        "api_token": api_token.raw,
        "team": team.id,
        "route": route.id,
        "rotation": rot.id,
        "user": user.id,
    }


# --- scenarios -----------------------------------------------------------------------------


async def intake_scenario(
    tmp: Path, dbs: Databases, engine: str, batch: int, concurrencies: tuple[int, ...], timing: Timing
) -> dict[str, Any]:
    """One fresh database and server per (engine, batch); the concurrencies run one after another."""
    url, cleanup = await dbs.make(engine)
    out: dict[str, Any] = {}
    try:
        # Intents are written (the route has a webhook channel) but nothing is sent: the receiver
        # is a closed port and there is no worker in the process; intake cost is what is measured.
        world = await http_world(url, webhook_url=f"http://127.0.0.1:{free_port()}/sink")
        flags = ["--no-worker"] + (["--no-scheduler"] if engine == "postgresql" else [])
        proc, port = await start_relay(tmp, url, *flags)
        try:
            for conc in concurrencies:
                log(f"intake {engine} batch={batch} concurrency={conc}")
                out[f"c{conc}"] = await loadgen(
                    "load",
                    "--url",
                    f"http://127.0.0.1:{port}/api/integrations/alertmanager",
                    "--token",
                    world["token"],
                    "--concurrency",
                    str(conc),
                    "--batch",
                    str(batch),
                    "--warmup",
                    str(timing.warmup),
                    "--duration",
                    str(timing.duration),
                    "--tag",
                    f"b{batch}c{conc}",
                )
        finally:
            await proc.stop()
    finally:
        await cleanup()
    return out


async def ceiling_scenario(
    tmp: Path, batches: tuple[int, ...], concurrencies: tuple[int, ...], timing: Timing
) -> dict[str, Any]:
    proc, port = await start_bare(tmp)
    out: dict[str, Any] = {}
    try:
        for batch in batches:
            for conc in concurrencies:
                log(f"ceiling batch={batch} concurrency={conc}")
                out[f"batch_{batch}_c{conc}"] = await loadgen(
                    "load",
                    "--url",
                    f"http://127.0.0.1:{port}/api/integrations/alertmanager",
                    "--concurrency",
                    str(conc),
                    "--batch",
                    str(batch),
                    "--warmup",
                    str(timing.ceiling_warmup),
                    "--duration",
                    str(timing.ceiling_duration),
                )
    finally:
        await proc.stop()
    return out


async def first_send_embedded(tmp: Path, dbs: Databases, timing: Timing) -> dict[str, Any]:
    url, cleanup = await dbs.make("sqlite")
    receiver = free_port()
    try:
        world = await http_world(url, webhook_url=f"http://127.0.0.1:{receiver}/hook")
        proc, port = await start_relay(tmp, url)
        try:
            log("first send: embedded (relay serve, SQLite)")
            return await loadgen(
                "firstsend",
                "--url",
                f"http://127.0.0.1:{port}/api/integrations/alertmanager",
                "--token",
                world["token"],
                "--rate",
                str(timing.rate),
                "--receiver-port",
                str(receiver),
                "--warmup",
                str(timing.warmup),
                "--duration",
                str(timing.duration),
                "--drain",
                "10",
            )
        finally:
            await proc.stop()
    finally:
        await cleanup()


async def first_send_production(tmp: Path, dbs: Databases, timing: Timing) -> dict[str, Any]:
    import redis.asyncio as aioredis

    url, cleanup = await dbs.make("postgresql")
    receiver = free_port()
    namespace = f"relay-bench-{uuid.uuid4().hex[:8]}"
    procs: list[Proc] = []
    try:
        world = await http_world(url, webhook_url=f"http://127.0.0.1:{receiver}/hook")
        extra = {"RELAY_REDIS_URL": REDIS_URL, "RELAY_REDIS__NAMESPACE": namespace}
        web, port = await start_relay(tmp, url, "--no-worker", "--no-scheduler", env_extra=extra)
        procs.append(web)
        for name in ("worker", "scheduler"):
            env = server_env(tmp, url, **extra)
            procs.append(Proc(f"relay-{name}", pinned([PY, "-m", "relay_server", name]), env, tmp))
        await asyncio.sleep(3)
        for p in procs:
            if p.proc.poll() is not None:
                raise RuntimeError(f"{p.name} exited:\n{p.tail()}")
        log("first send: production (web + relay worker + relay scheduler, Redis, PostgreSQL)")
        return await loadgen(
            "firstsend",
            "--url",
            f"http://127.0.0.1:{port}/api/integrations/alertmanager",
            "--token",
            world["token"],
            "--rate",
            str(timing.rate),
            "--receiver-port",
            str(receiver),
            "--warmup",
            str(timing.warmup),
            "--duration",
            str(timing.duration),
            "--drain",
            "15",
        )
    finally:
        for p in procs:
            await p.stop()
        client = aioredis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{namespace}*", count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
        await cleanup()


async def seed_alerts(url: str, world: dict[str, Any], total: int) -> None:
    """Bulk-insert ``total`` open groups with one child alert each (no timers due)."""
    import hashlib

    import sqlalchemy as sa

    from relay_adapters.storage.sqlalchemy.tables import metadata
    from relay_adapters.storage.sqlalchemy.uow import make_engine

    groups, alerts = metadata.tables["alert_groups"], metadata.tables["alerts"]
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    try:
        async with engine.begin() as conn:
            first_id = 1 + int(
                (await conn.execute(sa.select(sa.func.coalesce(sa.func.max(groups.c.id), 0)))).scalar_one()
            )
            for start in range(0, total, 5000):
                rows, children = [], []
                for i in range(start, min(total, start + 5000)):
                    key = (
                        f"source=alertmanager|team_id={world['team']}|route_id={world['route']}"
                        f"|dedup_key=m{i}"
                    )
                    labels = {"alertname": "Seeded", "instance": f"host{i}:9100", "severity": "warning"}
                    rows.append(
                        {
                            "id": first_id + i,
                            "team_id": world["team"],
                            "route_id": world["route"],
                            "rotation_id": world["rotation"],
                            "assignee_id": world["user"],
                            "category_id": None,
                            "source": "alertmanager",
                            "group_key": key,
                            "group_key_hash": hashlib.sha256(key.encode()).hexdigest(),
                            "title": f"Seeded alert {i}",
                            "message": "Seeded for the memory scenario",
                            "severity": "warning",
                            "status": "firing",
                            "previous_status": None,
                            "common_labels": labels,
                            "event_link": None,
                            "acknowledged_by": None,
                            "acknowledged_at": None,
                            "resolved_by": None,
                            "resolved_at": None,
                            "resolved_via": None,
                            "first_seen_at": now,
                            "last_seen_at": now,
                            "alert_count": 1,
                            "firing_count": 1,
                            "resolved_count": 0,
                            "silenced_count": 0,
                            "notified": True,
                            "last_notification_at": now,
                            "reminder_count": 0,
                            "escalation_level": 0,
                            "next_reminder_at": None,
                            "next_action_at": None,
                            "lifecycle_version": 0,
                            "update_seq": 0,
                            "test": False,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    children.append(
                        {
                            "group_id": first_id + i,
                            "team_id": world["team"],
                            "route_id": world["route"],
                            "source": "alertmanager",
                            "external_id": f"m{i}",
                            "dedup_key": f"m{i}",
                            "title": f"Seeded alert {i}",
                            "message": "Seeded for the memory scenario",
                            "severity": "warning",
                            "original_severity": "warning",
                            "labels": labels,
                            "annotations": {"summary": f"Seeded alert {i}"},
                            "payload": {"labels": labels, "fingerprint": f"m{i}"},
                            "status": "firing",
                            "starts_at": now,
                            "ends_at": None,
                            "first_seen_at": now,
                            "last_seen_at": now,
                            "resolved_at": None,
                            "group_open": True,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                await conn.execute(sa.insert(groups), rows)
                await conn.execute(sa.insert(alerts), children)
    finally:
        await engine.dispose()


class MemoryProbe:
    """T6: an embedded ``relay serve`` holding ``total`` alerts; RSS after a list query + idle."""

    def __init__(self, tmp: Path, dbs: Databases, total: int, idle: float) -> None:
        self.tmp, self.dbs, self.total, self.idle = tmp, dbs, total, idle
        self.proc: Proc | None = None
        self.cleanup: Callable[[], Awaitable[None]] | None = None
        self.queried_at = 0.0
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        import httpx

        url, self.cleanup = await self.dbs.make("sqlite")
        world = await http_world(url, webhook_url=None)
        log(f"memory: seeding {self.total} alerts")
        s = time.perf_counter()
        await seed_alerts(url, world, self.total)
        self.info["seed_s"] = round(time.perf_counter() - s, 1)
        self.proc, port = await start_relay(self.tmp, url)
        self.info["rss_after_start_mb"] = rss_mb(self.proc.pid)
        async with httpx.AsyncClient(timeout=60) as client:
            s = time.perf_counter()
            resp = await client.get(
                f"http://127.0.0.1:{port}/api/alerts",
                headers={"Authorization": f"Bearer {world['api_token']}"},
            )
            self.info["list_status"] = resp.status_code
            self.info["list_ms"] = round((time.perf_counter() - s) * 1000, 1)
            body = resp.json() if resp.status_code == 200 else {}
            self.info["list_total"] = body.get("total") if isinstance(body, dict) else None
        self.info["rss_after_query_mb"] = rss_mb(self.proc.pid)
        self.queried_at = time.monotonic()

    async def finish(self) -> dict[str, Any]:
        assert self.proc is not None
        wait = self.queried_at + self.idle - time.monotonic()
        if wait > 0:
            log(f"memory: idling {wait:.0f} s more")
            await asyncio.sleep(wait)
        self.info["idle_s"] = self.idle
        self.info["rss_mb"] = rss_mb(self.proc.pid)
        self.info["alerts"] = self.total
        await self.proc.stop()
        if self.cleanup is not None:
            await self.cleanup()
        return self.info


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` (and its children, none for ``relay serve``), in MB."""
    import psutil

    proc = psutil.Process(pid)
    # taskset exec()s the command, so the pid is the Relay process itself.
    total = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
    return round(total / 1024 / 1024, 1)


# --- machine and report --------------------------------------------------------------------


async def machine_info(with_pg: bool) -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # noqa: ASYNC240
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():  # noqa: ASYNC240
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    pg_version = None
    if with_pg:
        import asyncpg

        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(PG_ADMIN)
            pg_version = await conn.fetchval("SHOW server_version")
            await conn.close()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_available": affinity,
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


class Timing:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.warmup, self.duration = {"quick": (2, 5), "long": (10, 60)}.get(mode, (5, 20))
        # The bare handler is stable within a second or two: shorter windows keep the run under 10 min.
        self.ceiling_warmup, self.ceiling_duration = {"quick": (1, 3), "long": (5, 30)}.get(mode, (1, 6))
        self.rate = 10 if mode == "quick" else 20
        self.memory_alerts = 20_000 if mode == "quick" else 100_000
        self.memory_idle = 10 if mode == "quick" else 60


def _entry(
    rid: str | None,
    scenario: str,
    value: float | None,
    unit: str,
    target: str | None,
    met: bool | None,
    **details: Any,
) -> dict[str, Any]:
    return {
        "id": rid,
        "scenario": scenario,
        "value": value,
        "unit": unit,
        "target": target,
        "met": met,
        "details": details,
    }


def build_results(raw: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    intake = raw.get("intake", {})
    ceiling = raw.get("ceiling", {})
    best: dict[str, tuple[float, str]] = {}
    for engine, tid in (("sqlite", "T1"), ("postgresql", "T2")):
        for batch in (1, 50):
            runs = intake.get(engine, {}).get(f"batch_{batch}", {})
            for conc_key, r in runs.items():
                out.append(
                    _entry(
                        None,
                        f"intake_{engine}_batch{batch}_{conc_key}",
                        r["alerts_per_s"],
                        "alerts/s",
                        None,
                        None,
                        concurrency=r["concurrency"],
                        requests=r["requests"],
                        errors=r["errors"] + r["exceptions"],
                        p50_ms=r["p50_ms"],
                        p95_ms=r["p95_ms"],
                        p99_ms=r["p99_ms"],
                        statuses=r["statuses"],
                        first_error=r["first_error"],
                    )
                )
            if batch == 1 and runs:
                key, r = max(runs.items(), key=lambda kv: kv[1]["alerts_per_s"])
                errors = r["errors"] + r["exceptions"]
                best[engine] = (r["alerts_per_s"], key)
                out.append(
                    _entry(
                        tid,
                        f"intake_{engine}_single",
                        r["alerts_per_s"],
                        "alerts/s",
                        ">= 2000",
                        r["alerts_per_s"] >= 2000 and errors == 0,
                        concurrency=r["concurrency"],
                        p50_ms=r["p50_ms"],
                        p99_ms=r["p99_ms"],
                        errors=errors,
                    )
                )
    fs = raw.get("first_send", {})
    if "embedded" in fs:
        r = fs["embedded"]
        out.append(
            _entry(
                "T3",
                "first_send_embedded",
                r["p99_ms"],
                "ms p99",
                "<= 250",
                r["p99_ms"] <= 250 and r["lost"] == 0 and r["errors"] == 0,
                p50_ms=r["p50_ms"],
                p95_ms=r["p95_ms"],
                lost=r["lost"],
                delivered=r["delivered"],
                rate_per_s=r["rate_per_s"],
                errors=r["errors"],
            )
        )
    if "production" in fs:
        r = fs["production"]
        out.append(
            _entry(
                None,
                "first_send_production",
                r["p99_ms"],
                "ms p99",
                None,
                None,
                p50_ms=r["p50_ms"],
                p95_ms=r["p95_ms"],
                lost=r["lost"],
                delivered=r["delivered"],
                rate_per_s=r["rate_per_s"],
                errors=r["errors"],
            )
        )
    sched = raw.get("scheduler", {})
    ratios = {}
    for engine, runs in sched.items():
        small = runs.get("open_1000")
        big = next((v for k, v in runs.items() if k != "open_1000"), None)
        if small and big:
            ratios[engine] = round(big["tick_ms"] / small["tick_ms"], 2)
            for k, v in runs.items():
                out.append(_entry(None, f"scheduler_tick_{engine}_{k}", v["tick_ms"], "ms", None, None, **v))
    if ratios:
        worst = max(ratios.values())
        out.append(
            _entry(
                "T4",
                "scheduler_tick_100_due",
                worst,
                "x (100k vs 1k open)",
                "<= 2",
                worst <= 2,
                ratios=ratios,
                quick_sizes=quick,
            )
        )
    oc = raw.get("oncall", {})
    if "overrides_100" in oc and "overrides_10000" in oc:
        a, b = oc["overrides_100"], oc["overrides_10000"]
        ratio = round(b["p50_ms"] / a["p50_ms"], 2)
        out.append(
            _entry(
                "T5",
                "oncall_lookup",
                ratio,
                "x (10k vs 100 overrides)",
                "<= 2",
                ratio <= 2,
                p50_ms_100=a["p50_ms"],
                p50_ms_10k=b["p50_ms"],
                p99_ms_10k=b["p99_ms"],
            )
        )
    if "memory" in raw:
        m = raw["memory"]
        out.append(_entry("T6", "memory_embedded", m["rss_mb"], "MB", "<= 150", m["rss_mb"] <= 150, **m))
    if ceiling:
        for batch in (1, 50):
            for conc_key, r in intake.get("sqlite", {}).get(f"batch_{batch}", {}).items():
                c = ceiling.get(f"batch_{batch}_{conc_key}")
                if not c or not c["alerts_per_s"]:
                    continue
                ratio = round(r["alerts_per_s"] / c["alerts_per_s"], 4)
                out.append(
                    _entry(
                        None,
                        f"ceiling_batch{batch}_{conc_key}",
                        c["alerts_per_s"],
                        "alerts/s",
                        None,
                        None,
                        relay_sqlite_ratio=ratio,
                        p50_ms=c["p50_ms"],
                        p99_ms=c["p99_ms"],
                    )
                )
        if "sqlite" in best:
            value, conc_key = best["sqlite"]
            c = ceiling.get(f"batch_1_{conc_key}")
            if c and c["alerts_per_s"]:
                ratio = round(value / c["alerts_per_s"], 4)
                out.append(
                    _entry(
                        "T7",
                        "intake_vs_bare_litestar",
                        round(100 * ratio, 1),
                        "%",
                        ">= 50",
                        ratio >= 0.5,
                        relay_alerts_per_s=value,
                        bare_alerts_per_s=c["alerts_per_s"],
                        load=f"single-alert posts, {conc_key}",
                    )
                )
    out.append(
        _entry(
            "T8",
            "intake_vs_incidentrelay",
            None,
            "x",
            ">= 10",
            None,
            note="no IncidentRelay instance URL given",
        )
    )
    return out


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nRelay bench {report['run_id']} ({report['mode']}), {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores, load avg at start {report['machine']['load_avg_at_start']}"
    )
    print(f"{'id':4} {'scenario':38} {'value':>12} {'unit':24} {'target':>8} {'met':>5}  details")
    print("-" * 140)
    for r in report["results"]:
        d = r["details"]
        keys = ("p50_ms", "p95_ms", "p99_ms", "errors", "lost", "concurrency", "relay_sqlite_ratio", "ratios")
        det = ", ".join(f"{k}={d[k]}" for k in keys if k in d and d[k] is not None)
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        value = "-" if r["value"] is None else f"{r['value']:,}"
        print(
            f"{r['id'] or '':4} {r['scenario']:38} {value:>12} {r['unit']:24} {r['target'] or '':>8} "
            f"{met:>5}  {det}"
        )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    mode = "quick" if args.quick else ("long" if args.long else "default")
    timing = Timing(mode)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s): {', '.join(sorted(unknown))}")
    engines = ("sqlite",) if args.skip_postgres else ("sqlite", "postgresql")
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    dbs = Databases(tmp)
    started = time.monotonic()
    report: dict[str, Any] = {
        "run_id": uuid.uuid4().hex[:12],
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "mode": mode,
        "machine": await machine_info("postgresql" in engines),
    }
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}

    async def attempt(name: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run one scenario; a failure is recorded in the report and the run goes on."""
        try:
            return await make()
        except Exception as exc:
            errors[name] = f"{exc.__class__.__name__}: {str(exc)[-1500:]}"
            log(f"{name} FAILED: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            return None

    probes: list[MemoryProbe] = []
    concurrencies = (1, 8, 32)
    batches = (1, 50)
    try:
        if "intake" in only:
            raw["intake"] = {}
            for engine in engines:
                raw["intake"][engine] = {}
                for batch in batches:
                    done = await attempt(
                        f"intake_{engine}_batch{batch}",
                        lambda e=engine, b=batch: intake_scenario(tmp, dbs, e, b, concurrencies, timing),
                    )
                    if done is not None:
                        raw["intake"][engine][f"batch_{batch}"] = done
        # The memory probe's server then idles while the ceiling, first-send and in-process sections run.
        probe: MemoryProbe | None = None
        if "memory" in only:
            probe = MemoryProbe(tmp, dbs, timing.memory_alerts, timing.memory_idle)
            probes.append(probe)
            if await attempt("memory", lambda: _started(probe)) is None:
                probe = None
        if "ceiling" in only:
            done = await attempt("ceiling", lambda: ceiling_scenario(tmp, batches, concurrencies, timing))
            if done is not None:
                raw["ceiling"] = done
        if "first_send" in only:
            raw["first_send"] = {}
            done = await attempt("first_send_embedded", lambda: first_send_embedded(tmp, dbs, timing))
            if done is not None:
                raw["first_send"]["embedded"] = done
            if "postgresql" in engines:
                done = await attempt("first_send_production", lambda: first_send_production(tmp, dbs, timing))
                if done is not None:
                    raw["first_send"]["production"] = done
        if "oncall" in only:
            log("on-call lookup")
            raw["oncall"] = {
                "overrides_100": bench_oncall(args.quick, 100),
                "overrides_10000": bench_oncall(args.quick, 10_000),
            }
        if "scheduler" in only:
            raw["scheduler"] = {}
            for engine in engines:
                log(f"scheduler tick {engine}")

                async def make(engine: str = engine) -> tuple[str, Callable[[], Awaitable[None]]]:
                    return await dbs.make(engine)

                done = await attempt(f"scheduler_{engine}", lambda m=make: bench_scheduler(m, args.quick))
                if done is not None:
                    raw["scheduler"][engine] = done
        if probe is not None:
            done = await attempt("memory", probe.finish)
            if done is not None:
                raw["memory"] = done
    finally:
        for leftover in probes:
            if leftover.proc is not None:
                await leftover.proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["results"] = build_results(raw, args.quick)
    report["errors"] = errors
    report["raw"] = raw
    return report


async def _started(probe: MemoryProbe) -> bool:
    await probe.start()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 s warm-up + 5 s per scenario, smaller sizes")
    parser.add_argument("--long", action="store_true", help="10 s warm-up + 60 s per scenario")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print_table(report)
    for name, error in report["errors"].items():
        print(f"\nFAILED {name}: {error.splitlines()[-1] if error else ''}")
    print(f"\nelapsed {report['elapsed_s']} s; written: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
