"""``relay diagnose`` (installation checks and the per-alert report) and ``relay retention run``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from relay_core.bootstrap import Relay
from relay_core.domain import constants as c
from relay_core.domain.commands import IngestAlerts
from relay_core.domain.model import (
    ActionToken,
    Alert,
    AlertEvent,
    AlertGroup,
    AuditLog,
    CallbackReceipt,
    DeliveryAttempt,
    ExplainTrace,
    Notification,
    NotificationIntent,
)
from relay_server.demo import demo_alertmanager_payload

from .conftest import Cli

REDIS_URL = os.environ.get("RELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_ADMIN_DSN = os.environ.get(
    "RELAY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STRONG_KEY = "k9V2-" + secrets.token_urlsafe(40)


def _unavailable(reason: str) -> None:
    if os.environ.get("RELAY_REQUIRE_SERVICES", "") not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (RELAY_REQUIRE_SERVICES=1)")
    pytest.skip(f"{reason}; set RELAY_REQUIRE_SERVICES=1 to make this a failure")


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _checks(cli: Cli, *, expect_exit: int) -> dict[str, dict[str, str]]:
    result = cli("diagnose", "--json")
    assert result.exit_code == expect_exit, (result.stdout, result.stderr)
    return {row["check"]: row for row in json.loads(result.stdout)}


# --- diagnose: installation checks --------------------------------------------------------------


def test_diagnose_passes_on_a_migrated_embedded_install(cli: Cli) -> None:
    """A migrated SQLite database, no Redis, default settings: every check passes, exit 0."""
    cli.ok("migrate")
    checks = _checks(cli, expect_exit=0)
    assert {row["status"] for row in checks.values()} == {"ok"}
    assert checks["database"]["detail"] == "sqlite: connected"
    assert checks["schema"]["detail"] == "all model tables and columns exist"
    assert checks["migrations"]["detail"] == "no pending migrations"
    assert "not configured" in checks["redis"]["detail"]
    assert "builtin" in checks["plugins"]["detail"]
    human = cli.ok("diagnose").stdout
    assert "relay diagnose" in human
    assert "public_base_url" in human


def test_diagnose_reports_each_misconfiguration_and_exits_1(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weak secret, broken SMTP, bad allow-list entry, unreachable Redis and PostgreSQL: all failed."""
    port = _closed_port()
    monkeypatch.setenv("RELAY_DATABASE_URL", f"postgresql://relay:db-pass-123@127.0.0.1:{port}/relay")
    monkeypatch.setenv("RELAY_REDIS_URL", f"redis://:redis-pass-456@127.0.0.1:{port}/0")
    monkeypatch.setenv("RELAY_SECRET_KEY", "change-me")
    monkeypatch.setenv("RELAY_SMTP__HOST", "smtp.example.com")
    monkeypatch.setenv("RELAY_SMTP__USE_SSL", "true")
    monkeypatch.setenv("RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST", "10.0.0.0/8,not-a-network")
    monkeypatch.setenv("RELAY_PUBLIC_BASE_URL", "http://127.0.0.1:8080")
    # A placeholder secret shorter than 32 characters is a configuration error with PostgreSQL.
    checks = _checks(cli, expect_exit=1)
    assert list(checks) == ["configuration"]
    assert "secret_key" in checks["configuration"]["detail"]

    monkeypatch.setenv("RELAY_SECRET_KEY", "a" * 40)
    result = cli("diagnose", "--json")
    assert result.exit_code == 1
    assert "db-pass-123" not in result.stdout + result.stderr
    assert "redis-pass-456" not in result.stdout + result.stderr
    checks = {row["check"]: row for row in json.loads(result.stdout)}
    assert checks["database"]["status"] == "fail"
    assert checks["database"]["detail"].startswith("postgresql:")
    assert checks["redis"]["status"] == "fail"
    assert checks["secret_key"]["status"] == "fail"
    assert checks["smtp"]["status"] == "fail"
    assert "smtp.from" in checks["smtp"]["detail"]
    assert "exclude each other" in checks["smtp"]["detail"]
    assert checks["outbound"]["status"] == "fail"
    assert "'not-a-network'" in checks["outbound"]["detail"]
    # Production (PostgreSQL) with a loopback public URL: a warning, not a failure.
    assert checks["public_base_url"]["status"] == "warn"
    assert "failed: " in result.stderr
    assert "database" in result.stderr


def test_diagnose_warns_about_a_broad_allow_list_and_plain_http(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.ok("migrate")
    monkeypatch.setenv("RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST", "0.0.0.0/0")
    monkeypatch.setenv("RELAY_PUBLIC_BASE_URL", "http://relay.example.com")
    monkeypatch.setenv("RELAY_SECRET_KEY", STRONG_KEY)
    checks = _checks(cli, expect_exit=0)
    assert checks["outbound"]["status"] == "warn"
    assert "0.0.0.0/0" in checks["outbound"]["detail"]
    assert checks["public_base_url"]["status"] == "warn"
    assert "https" in checks["public_base_url"]["detail"]
    assert checks["secret_key"] == {
        "check": "secret_key",
        "status": "ok",
        "detail": f"set ({len(STRONG_KEY)} characters)",
    }


def test_diagnose_lists_invalid_configuration(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_LOGGING__FORMAT", "xml")
    monkeypatch.setenv("RELAY_TELEGRAM__MODE", "carrier-pigeon")
    checks = _checks(cli, expect_exit=1)
    assert checks["configuration"]["status"] == "fail"
    assert "logging.format" in checks["configuration"]["detail"]
    assert "telegram.mode" in checks["configuration"]["detail"]


def test_diagnose_sees_a_pending_sqlite_schema(cli: Cli) -> None:
    """An existing but unmigrated SQLite file: pending migrations and missing tables fail."""
    cli.data_dir.mkdir(parents=True)
    engine = sa.create_engine(f"sqlite:///{cli.data_dir / 'relay.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    checks = _checks(cli, expect_exit=1)
    assert checks["database"]["status"] == "ok"
    assert checks["migrations"]["status"] == "fail"
    assert "relay migrate" in checks["migrations"]["detail"]
    assert checks["schema"]["status"] == "fail"
    assert "missing table:" in checks["schema"]["detail"]


def _admin(statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    """An empty throwaway database on the shared PostgreSQL server (dropped afterwards)."""
    name = f"relay_test_{secrets.token_hex(6)}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        _unavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {type(exc).__name__}")
    try:
        yield sa.make_url(POSTGRES_ADMIN_DSN).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.services
def test_diagnose_against_postgresql_and_redis(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real services: pending migrations on an empty database fail; after `relay migrate` all pass."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    with _postgres_database() as url:
        monkeypatch.setenv("RELAY_DATABASE_URL", url)
        monkeypatch.setenv("RELAY_REDIS_URL", REDIS_URL)
        monkeypatch.setenv("RELAY_SECRET_KEY", STRONG_KEY)
        monkeypatch.setenv("RELAY_PUBLIC_BASE_URL", "https://relay.example.com")
        checks = _checks(cli, expect_exit=1)
        assert checks["database"]["status"] == "ok"
        assert checks["migrations"]["status"] == "fail"
        assert checks["redis"]["status"] == "ok"
        assert "answers" in checks["redis"]["detail"]
        cli.ok("migrate")
        checks = _checks(cli, expect_exit=0)
        assert checks["schema"]["status"] == "ok"


# --- diagnose --alert ---------------------------------------------------------------------------


async def _ingest_demo_alert(relay: Relay) -> int:
    async with relay.uow_factory() as uow:
        route = await uow.routes.first(name="demo-alertmanager")
    assert route is not None
    assert relay.registry is not None
    parser = relay.registry.intake_sources()["alertmanager"]()
    items = parser.parse(json.dumps(demo_alertmanager_payload()).encode(), {}, {})
    await relay.handle(IngestAlerts(source="alertmanager", items=items, route_id=route.id))
    async with relay.uow_factory() as uow:
        group = await uow.alert_groups.first(route_id=route.id)
        assert group is not None
        channel = await uow.channels.first(channel_type="webhook")
        assert channel is not None
        now = relay.clock.now()
        intent = await uow.intents.add(
            NotificationIntent(
                idempotency_key=f"diag-test-{group.id}",
                group_id=group.id,
                channel_id=channel.id,
                event_type=c.EV_NOTIFICATION,
                status=c.INTENT_FAILED,
                due_at=now,
                attempt_count=1,
                last_error="HTTP 500 from receiver",
                created_at=now,
                finished_at=now,
            )
        )
        await uow.attempts.add(
            DeliveryAttempt(
                intent_id=intent.id,
                attempt_no=1,
                started_at=now,
                finished_at=now,
                outcome="failed",
                http_status=500,
                error="call to +15550100001 failed: Bearer rly_r_supersecrettoken123",
            )
        )
        await uow.commit()
    return group.id


def test_diagnose_alert_reports_one_group_redacted(cli: Cli) -> None:
    cli.ok("demo-data")
    group_id = cli.query(_ingest_demo_alert)
    result = cli.ok("diagnose", "--alert", str(group_id), "--json")
    report = json.loads(result.stdout)
    assert report["group"]["id"] == group_id
    assert report["route"]["name"] == "demo-alertmanager"
    assert report["team"]["slug"] == "infra"
    assert [a["dedup_key"] for a in report["alerts"]]
    assert report["traces"], "the intake trace of the group is part of the report"
    [delivery] = [d for d in report["deliveries"] if d["idempotency_key"] == f"diag-test-{group_id}"]
    assert delivery["status"] == "failed"
    [attempt] = delivery["attempts"]
    assert attempt["http_status"] == 500
    assert "webhook" in {ch["type"] for ch in report["channels"]}
    assert "+15550100001" not in result.stdout
    assert "***0001" in result.stdout
    assert "rly_r_supersecrettoken123" not in result.stdout
    human = cli.ok("diagnose", "--alert", str(group_id)).stdout
    assert f"Alert group {group_id}" in human
    assert "attempt 1: failed HTTP 500" in human
    assert "+15550100001" not in human


def test_diagnose_alert_unknown_group_exits_1(cli: Cli) -> None:
    cli.ok("migrate")
    result = cli("diagnose", "--alert", "4242")
    assert result.exit_code == 1
    assert "alert group not found: 4242" in result.stderr


def test_diagnose_alert_includes_matching_log_lines(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.ok("demo-data")
    group_id = cli.query(_ingest_demo_alert)
    log_file = cli.data_dir / "relay.log"
    lines = [
        {"event": "relay.notification.failed", "alert_group_id": group_id, "phone": "+15550100002"},
        {"event": "relay.notification.sent", "alert_group_id": group_id + 1000},
    ]
    log_file.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    monkeypatch.setenv("RELAY_LOGGING__FILE", str(log_file))
    report = cli.json("diagnose", "--alert", str(group_id), "--json")
    assert [entry["event"] for entry in report["log_lines"]] == ["relay.notification.failed"]
    assert report["log_lines"][0]["phone"] == "***0002"


# --- retention ----------------------------------------------------------------------------------

DAY = dt.timedelta(days=1)


async def _seed(relay: Relay) -> dict[str, int]:
    """Old resolved group with children, an old open group, old and recent traces and intents."""
    now = relay.clock.now()
    old = now - 100 * DAY
    ids: dict[str, int] = {}
    async with relay.uow_factory() as uow:

        def group(status: str, resolved_at: dt.datetime | None, key: str) -> AlertGroup:
            return AlertGroup(
                team_id=1,
                route_id=1,
                source="webhook",
                group_key=key,
                group_key_hash=key,
                status=status,
                resolved_at=resolved_at,
                first_seen_at=old,
                last_seen_at=old,
            )

        gone = await uow.alert_groups.add(group(c.GROUP_RESOLVED, old, "old-resolved"))
        recent = await uow.alert_groups.add(group(c.GROUP_RESOLVED, now - DAY, "recent-resolved"))
        open_ = await uow.alert_groups.add(group(c.GROUP_FIRING, None, "old-open"))
        ids.update(gone=gone.id, recent=recent.id, open=open_.id)
        for g in (gone, recent, open_):
            await uow.alerts.add(
                Alert(
                    group_id=g.id,
                    team_id=1,
                    route_id=1,
                    source="webhook",
                    dedup_key=f"d{g.id}",
                    first_seen_at=old,
                    last_seen_at=old,
                    group_open=g.status == c.GROUP_FIRING,
                )
            )
            await uow.events.add(AlertEvent(group_id=g.id, event_type="created", created_at=old))
        await uow.traces.add(
            ExplainTrace(
                trace_id="t-group",
                group_id=gone.id,
                source="webhook",
                outcome="created",
                started_at=old,
                finished_at=old,
            )
        )
        for tid, when in (("t-old", old), ("t-new", now - DAY)):
            await uow.traces.add(
                ExplainTrace(
                    trace_id=tid,
                    source="webhook",
                    outcome="routing_failed",
                    started_at=when,
                    finished_at=when,
                )
            )

        async def intent(key: str, group_id: int, status: str) -> NotificationIntent:
            added = await uow.intents.add(
                NotificationIntent(
                    idempotency_key=key,
                    group_id=group_id,
                    event_type="notification",
                    status=status,
                    due_at=old,
                    created_at=old,
                    finished_at=old if status != c.INTENT_PENDING else None,
                )
            )
            await uow.attempts.add(
                DeliveryAttempt(
                    intent_id=added.id, attempt_no=1, started_at=old, finished_at=old, outcome="sent"
                )
            )
            return added

        await intent("gone-sent", gone.id, c.INTENT_SENT)
        await intent("open-sent", open_.id, c.INTENT_SENT)
        await intent("open-pending", open_.id, c.INTENT_PENDING)
        note = await uow.notifications.add(
            Notification(group_id=gone.id, channel_id=1, created_at=old, updated_at=old)
        )
        ids["notification"] = note.id
        await uow.action_tokens.add(
            ActionToken(jti="expired", group_id=open_.id, action="ack", expires_at=now - DAY)
        )
        await uow.action_tokens.add(
            ActionToken(jti="valid", group_id=open_.id, action="ack", expires_at=now + DAY)
        )
        await uow.callback_receipts.add(CallbackReceipt(channel_id=1, digest="x", expires_at=now - DAY))
        await uow.audit.add(
            AuditLog(action="resolve", object_type="alert_group", group_id=gone.id, created_at=old)
        )
        await uow.commit()
    return ids


async def _inventory(relay: Relay) -> dict[str, Any]:
    async with relay.uow_factory() as uow:
        return {
            "groups": sorted(g.group_key for g in await uow.alert_groups.find()),
            "alerts": await uow.alerts.count(),
            "events": await uow.events.count(),
            "traces": sorted(t.trace_id for t in await uow.traces.find()),
            "intents": sorted(i.idempotency_key for i in await uow.intents.find()),
            "attempts": await uow.attempts.count(),
            "notifications": await uow.notifications.count(),
            "action_tokens": sorted(t.jti for t in await uow.action_tokens.find()),
            "callback_receipts": await uow.callback_receipts.count(),
            "audit": await uow.audit.count(),
        }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The database kind the command runs on: the SQLite default, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    with _postgres_database() as url:
        monkeypatch.setenv("RELAY_DATABASE_URL", url)
        monkeypatch.setenv("RELAY_SECRET_KEY", STRONG_KEY)
        yield "postgres"


def test_retention_dry_run_counts_and_run_deletes(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setenv("RELAY_RETENTION__ALERT_DAYS", "30")
    monkeypatch.setenv("RELAY_RETENTION__BATCH_SIZE", "1")  # several batches per rule
    cli.ok("migrate")
    cli.query(_seed)
    before = cli.query(_inventory)

    dry = cli.json("retention", "run", "--dry-run", "--json")
    assert dry["applied"] is False
    expected = {
        "alert_groups": 1,
        "alerts": 1,
        "events": 1,
        "traces": 2,  # the old group's trace and the old standalone one
        "silence_applications": 0,
        "intents": 2,  # the old group's intent, the open group's finished one
        "attempts": 2,
        "notifications": 1,
        "callbacks": 0,
        "action_tokens": 1,
        "callback_receipts": 1,
    }
    assert dry["counts"] == expected
    assert dry["total"] == sum(expected.values())
    assert cli.query(_inventory) == before, "a dry run writes nothing"

    done = cli.json("retention", "run", "--json")
    assert done["applied"] is True
    assert done["counts"] == expected
    after = cli.query(_inventory)
    assert after["groups"] == ["old-open", "recent-resolved"]
    assert after["alerts"] == 2
    assert after["events"] == 2
    assert after["traces"] == ["t-new"]
    assert after["intents"] == ["open-pending"]
    assert after["attempts"] == 1
    assert after["notifications"] == 0
    assert after["action_tokens"] == ["valid"]
    assert after["callback_receipts"] == 0
    assert after["audit"] == before["audit"], "audit logs are never deleted"

    again = cli.json("retention", "run", "--json")
    assert again["total"] == 0


def test_retention_keeps_groups_when_alert_days_is_zero(cli: Cli) -> None:
    """The default ``alert_days = 0`` keeps every group; the other rules still apply."""
    cli.ok("migrate")
    cli.query(_seed)
    report = cli.json("retention", "run", "--json")
    assert report["cutoffs"]["alert_groups"] is None
    assert report["counts"]["alert_groups"] == 0
    assert report["counts"]["traces"] == 1
    assert cli.query(_inventory)["groups"] == ["old-open", "old-resolved", "recent-resolved"]
    human = cli.ok("retention", "run", "--alert-days", "30", "--dry-run").stdout
    assert "would delete" in human
    assert "alert_groups" in human


def test_retention_rejects_negative_days(cli: Cli) -> None:
    result = cli("retention", "run", "--alert-days", "-1")
    assert result.exit_code == 2


def test_retention_reports_invalid_settings(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_RETENTION__BATCH_SIZE", "0")
    result = cli("retention", "run")
    assert result.exit_code == 1
    assert "retention.batch_size" in result.stderr


def test_the_schedulers_run_the_retention_pass(cli: Cli) -> None:
    """The embedded scheduler loop and the worker's ``retention_cleanup`` job run the same pass."""
    from relay_core.services.retention import RetentionPolicy
    from relay_server.runtime import SchedulerLoop
    from relay_worker.scheduler import retention_cleanup_job

    cli.ok("migrate")
    cli.query(_seed)
    policy = RetentionPolicy(alert_days=30)

    async def embedded(relay: Relay) -> tuple[list[str], list[str]]:
        loop = SchedulerLoop(relay, retention=policy, retention_interval=3600)
        assert await loop.run_once() is not None, "the loop holds the lease"
        groups = sorted(g.group_key for g in await _all_groups(relay))
        # A second pass within the interval does not run: a new old resolved group stays.
        await _add_old_resolved_group(relay, "second")
        await loop.run_once()
        await loop.release_lease()
        return groups, sorted(g.group_key for g in await _all_groups(relay))

    first, second = cli.query(embedded)
    assert first == ["old-open", "recent-resolved"]
    assert second == ["old-open", "recent-resolved", "second"]

    async def worker_job(relay: Relay) -> dict[str, int]:
        job = retention_cleanup_job(relay, policy, interval=86400)
        assert job.name == "retention_cleanup"
        assert job.interval == 86400
        result: dict[str, int] = await job.run(relay.clock.now())
        return result

    assert cli.query(worker_job) == {"alert_groups": 1}
    assert sorted(g.group_key for g in cli.query(_all_groups)) == ["old-open", "recent-resolved"]


async def _all_groups(relay: Relay) -> list[AlertGroup]:
    async with relay.uow_factory() as uow:
        return await uow.alert_groups.find()


async def _add_old_resolved_group(relay: Relay, key: str) -> None:
    old = relay.clock.now() - 100 * DAY
    async with relay.uow_factory() as uow:
        await uow.alert_groups.add(
            AlertGroup(
                team_id=1,
                route_id=1,
                source="webhook",
                group_key=key,
                group_key_hash=key,
                status=c.GROUP_RESOLVED,
                resolved_at=old,
                first_seen_at=old,
                last_seen_at=old,
            )
        )
        await uow.commit()


def test_diagnose_probes_the_smtp_server(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listening SMTP port passes; a closed one is a warning (another host may be the sender)."""
    cli.ok("migrate")
    monkeypatch.setenv("RELAY_SMTP__FROM", "relay@example.com")
    monkeypatch.setenv("RELAY_SMTP__HOST", "127.0.0.1")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        monkeypatch.setenv("RELAY_SMTP__PORT", str(listener.getsockname()[1]))
        checks = _checks(cli, expect_exit=0)
    assert checks["smtp"]["status"] == "ok"
    assert "STARTTLS" in checks["smtp"]["detail"]
    assert "accepts connections" in checks["smtp"]["detail"]
    monkeypatch.setenv("RELAY_SMTP__PORT", str(_closed_port()))
    checks = _checks(cli, expect_exit=0)
    assert checks["smtp"]["status"] == "warn"
    assert "not reachable" in checks["smtp"]["detail"]
