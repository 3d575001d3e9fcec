"""``/metrics`` after real flows, heartbeats and ``/readyz`` (SPEC S9.9, S1.8, S5.11).

One relay composed from settings (SQLite, the built-in webhook channel, Prometheus instrumentation)
with a fake clock: intake over HTTP, delivery to a local webhook receiver, a reminder and an
escalation from the scheduler loop, an acknowledgement over the API and voice callbacks; the scrape
must show each counter and histogram with its labels, and the database gauges.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from litestar.testing import AsyncTestClient

from relay_adapters.compose import aclose_relay, relay_from_settings
from relay_adapters.metrics import DELIVERY_LATENCY_BUCKETS, PrometheusInstrumentation
from relay_adapters.settings import (
    AlertsSettings,
    DatabaseSettings,
    MainSettings,
    RelaySettings,
    SecuritySettings,
    ServerSettings,
)
from relay_adapters.storage.sqlalchemy.schema import downgrade, migrate
from relay_core.bootstrap import Relay
from relay_core.domain.model import (
    ApiToken,
    Channel,
    Group,
    GroupMembership,
    Rotation,
    RotationMember,
    Route,
    Team,
    TeamMembership,
    User,
)
from relay_core.services.heartbeats import HeartbeatRunner
from relay_core.testing.fakes import FakeClock
from relay_core.testing.pytest_plugin import LocalHttpServer
from relay_server.app import create_app
from relay_server.auth import PERSONAL_TOKEN_PREFIX, ROUTE_TOKEN_PREFIX, new_token
from relay_server.controllers._support import STATE_KEY, ServerState
from relay_server.runtime import HeartbeatLoop, SchedulerLoop

START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
REMINDER = 120


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value in a Prometheus text exposition, None when absent (labels: subset)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)", line.strip())
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


@attrs.define
class Env:
    relay: Relay
    clock: FakeClock
    client: AsyncTestClient[Any]
    settings: RelaySettings
    ids: dict[str, int]
    tokens: dict[str, str]
    receiver: LocalHttpServer

    async def scrape(self) -> str:
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        return response.text


async def _seed(relay: Relay, receiver: LocalHttpServer) -> tuple[dict[str, int], dict[str, str]]:
    route_token, api_token = new_token(ROUTE_TOKEN_PREFIX), new_token(PERSONAL_TOKEN_PREFIX)
    async with relay.uow_factory() as uow:
        grp = await uow.groups.add(Group(slug="ops", name="Operations"))
        team = await uow.teams.add(
            Team(group_id=grp.id, slug="infra", name="Infrastructure", escalation_after_reminders=1)
        )
        users = []
        for name in ("ivan", "anna"):
            user = await uow.users.add(User(username=name, display_name=name.title()))
            await uow.group_memberships.add(GroupMembership(user_id=user.id, group_id=grp.id))
            await uow.team_memberships.add(TeamMembership(team_id=team.id, user_id=user.id, role="responder"))
            users.append(user)
        rot = await uow.rotations.add(
            Rotation(
                team_id=team.id,
                name="primary",
                start_at=dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC),
                rotation_type="weekly",
                handoff_time="09:00",
                timezone="UTC",
                reminder_interval_seconds=REMINDER,
            )
        )
        for position, user in enumerate(users):
            await uow.rotation_members.add(
                RotationMember(rotation_id=rot.id, user_id=user.id, position=position)
            )
        hook = await uow.channels.add(
            Channel(
                group_id=grp.id,
                team_id=team.id,
                name="hook",
                channel_type="webhook",
                config={"webhook_url": f"{receiver.url}/hook"},
            )
        )
        voice = await uow.channels.add(
            Channel(
                group_id=grp.id,
                team_id=team.id,
                name="phone",
                channel_type="voice_call",
                config={"provider": "stub"},
                callback_secret="voice-callback-secret-0123456789",
                enabled=False,
            )
        )
        route = await uow.routes.add(
            Route(
                team_id=team.id,
                name="prometheus",
                source="alertmanager",
                rotation_id=rot.id,
                channel_ids=(hook.id,),
                intake_token_hash=route_token.hash,
                intake_token_prefix=route_token.prefix,
            )
        )
        await uow.api_tokens.add(
            ApiToken(
                user_id=users[0].id,
                name="ack",
                token_prefix=api_token.prefix,
                token_hash=api_token.hash,
                scopes=("alerts:write",),
            )
        )
        await uow.commit()
    ids = {"route": route.id, "hook": hook.id, "voice": voice.id, "team": team.id}
    return ids, {"route": route_token.raw, "api": api_token.raw}


def _settings(tmp_path: Path, url: str) -> RelaySettings:
    return RelaySettings(
        main=MainSettings(
            secret_key="metrics-test-secret-key-0123456789abcdef", data_dir=str(tmp_path / "data")
        ),
        database=DatabaseSettings(url=url),
        server=ServerSettings(public_base_url="https://relay.test"),
        alerts=AlertsSettings(group_wait_seconds=0),
        security=SecuritySettings(outbound_private_network_allowlist=("127.0.0.1/32",)),
    )


@pytest.fixture
async def env(tmp_path: Path, local_http_server: LocalHttpServer) -> AsyncIterator[Env]:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    await migrate(url)
    settings = _settings(tmp_path, url)
    clock = FakeClock(START)
    relay = relay_from_settings(settings, clock=clock)
    assert isinstance(relay.ctx.metrics, PrometheusInstrumentation)
    ids, tokens = await _seed(relay, local_http_server)
    app = create_app(relay=relay, settings=settings)
    state: ServerState = app.state[STATE_KEY]
    state.metrics.gauges_for(relay).ttl = 0  # every scrape reads the database
    try:
        async with AsyncTestClient(app=app) as client:
            yield Env(relay, clock, client, settings, ids, tokens, local_http_server)
    finally:
        await aclose_relay(relay)


ALERT = {
    "version": "4",
    "status": "firing",
    "receiver": "relay",
    "groupLabels": {"alertname": "DiskFull"},
    "commonLabels": {"alertname": "DiskFull"},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"},
            "annotations": {"summary": "Disk full on db-1"},
            "startsAt": "2026-06-01T09:59:00Z",
            "fingerprint": "fp-disk-1",
        }
    ],
}


async def test_metrics_follow_intake_delivery_reminder_escalation_ack_and_callbacks(env: Env) -> None:
    before = await env.scrape()
    assert sample(before, "relay_notifications_total") is None
    assert sample(before, "relay_outbox_oldest_pending_age_seconds") == 0.0

    # Intake over HTTP: an open firing group and one pending intent for the webhook channel.
    response = await env.client.post(
        "/api/integrations/alertmanager",
        json=ALERT,
        headers={"Authorization": f"Bearer {env.tokens['route']}"},
    )
    assert response.status_code in (200, 201, 202), response.text
    env.clock.advance(dt.timedelta(seconds=3))
    text = await env.scrape()
    assert sample(text, "relay_alerts_received_total", source="alertmanager", outcome="created") == 1.0
    assert sample(text, "relay_alert_groups_open", status="firing", severity="critical") == 1.0
    assert sample(text, "relay_outbox_pending", channel_type="webhook") == 1.0
    assert sample(text, "relay_outbox_oldest_pending_age_seconds") == 3.0

    # Delivery through the local webhook receiver.
    assert await env.relay.run_until_idle() == 1
    assert len(env.receiver.requests) == 1
    text = await env.scrape()
    assert (
        sample(
            text,
            "relay_notifications_total",
            channel_type="webhook",
            event_type="notification",
            outcome="sent",
        )
        == 1.0
    )
    # Due 3 s before it was sent (fake clock): counted in the 5 s bucket, not in the 2.5 s one.
    assert 5 in DELIVERY_LATENCY_BUCKETS
    assert sample(text, "relay_delivery_latency_seconds_bucket", channel_type="webhook", le="2.5") == 0.0
    assert sample(text, "relay_delivery_latency_seconds_bucket", channel_type="webhook", le="5.0") == 1.0
    assert sample(text, "relay_delivery_latency_seconds_sum", channel_type="webhook") == 3.0
    assert sample(text, "relay_time_to_first_notification_seconds_count") == 1.0
    assert sample(text, "relay_outbox_pending", channel_type="webhook") is None
    assert sample(text, "relay_outbox_oldest_pending_age_seconds") == 0.0

    # The scheduler loop: nothing due yet, then a reminder, then (after one reminder) an escalation.
    loop = SchedulerLoop(env.relay, tick_seconds=1)
    assert await loop.run_once() == 0
    text = await env.scrape()
    assert sample(text, "relay_scheduler_job_duration_seconds_count", job="due_actions") == 1.0
    assert (sample(text, "relay_scheduler_last_success_timestamp_seconds", job="due_actions") or 0) > 1.7e9
    assert sample(text, "relay_reminders_total") == 0.0
    env.clock.advance(dt.timedelta(seconds=REMINDER + 1))
    assert await loop.run_once() == 1
    text = await env.scrape()
    assert sample(text, "relay_reminders_total") == 1.0
    assert sample(text, "relay_outbox_pending", channel_type="webhook") == 1.0
    await env.relay.run_until_idle()
    env.clock.advance(dt.timedelta(seconds=REMINDER + 1))
    assert await loop.run_once() == 1
    await env.relay.run_until_idle()
    text = await env.scrape()
    assert sample(text, "relay_escalations_total", mode="team") == 1.0
    assert sample(text, "relay_scheduler_job_duration_seconds_count", job="due_actions") == 3.0
    sent = {
        event: sample(
            text, "relay_notifications_total", channel_type="webhook", event_type=event, outcome="sent"
        )
        for event in ("notification", "reminder", "escalation")
    }
    assert sent == {"notification": 1.0, "reminder": 1.0, "escalation": 1.0}
    assert sample(text, "relay_time_to_first_notification_seconds_count") == 1.0  # only the first page

    # Acknowledge over the API: the group leaves the firing gauge.
    async with env.relay.uow_factory() as uow:
        [group] = await uow.alert_groups.find()
    response = await env.client.post(
        f"/api/alerts/{group.id}/ack", json={}, headers={"Authorization": f"Bearer {env.tokens['api']}"}
    )
    assert response.status_code == 200, response.text
    text = await env.scrape()
    assert sample(text, "relay_acknowledgements_total", via="api") == 1.0
    assert sample(text, "relay_alert_groups_open", status="acknowledged", severity="critical") == 1.0
    assert sample(text, "relay_alert_groups_open", status="firing") is None

    # Voice callbacks: one with a wrong secret (403), one accepted by the stub provider (no events).
    path = f"/api/integrations/voice/callback/{env.ids['voice']}"
    rejected = await env.client.post(f"{path}/wrong-secret", json={"x": 1})
    assert rejected.status_code == 403
    accepted = await env.client.post(f"{path}/voice-callback-secret-0123456789", json={"x": 2})
    assert accepted.status_code == 200, accepted.text
    text = await env.scrape()
    assert (
        sample(text, "relay_callbacks_received_total", kind="voice", result="voice_callback_rejected") == 1.0
    )
    assert (
        sample(text, "relay_callbacks_received_total", kind="voice", result=accepted.json()["status"]) == 1.0
    )

    # No ids as label values anywhere (S9.9).
    for line in text.splitlines():
        if not line.startswith("#") and "{" in line:
            assert not re.search(r'(^|[{,])\w*id="', line[line.index("{") :]), line


async def test_failed_and_skipped_deliveries_are_counted(env: Env) -> None:
    env.receiver.respond(status=400)  # permanent failure
    response = await env.client.post(
        "/api/integrations/alertmanager",
        json=ALERT,
        headers={"Authorization": f"Bearer {env.tokens['route']}"},
    )
    assert response.status_code in (200, 201, 202)
    await env.relay.run_until_idle()
    text = await env.scrape()
    labels = {"channel_type": "webhook", "event_type": "notification"}
    assert sample(text, "relay_notifications_total", **labels, outcome="failed") == 1.0
    assert sample(text, "relay_notifications_total", **labels, outcome="sent") is None
    assert sample(text, "relay_delivery_latency_seconds_count", channel_type="webhook") is None


async def test_heartbeats_and_readyz(env: Env, tmp_path: Path) -> None:
    runner = HeartbeatRunner(env.relay.ctx, ["web", "worker", "scheduler"], host="relay-test")
    await runner.once()
    async with env.relay.uow_factory() as uow:
        rows = await uow.process_heartbeats.find(order_by="role")
    assert [row.role for row in rows] == ["scheduler", "web", "worker"]
    assert {row.seen_at for row in rows} == {START}
    env.clock.advance(dt.timedelta(seconds=10))
    await runner.once()
    async with env.relay.uow_factory() as uow:
        assert {row.seen_at for row in await uow.process_heartbeats.find()} == {
            START + dt.timedelta(seconds=10)
        }
        assert await uow.process_heartbeats.count() == 3
    text = await env.scrape()
    assert sample(text, "relay_scheduler_job_duration_seconds_count", job="process_heartbeat") == 2.0

    # A process gone for longer than the stale limit is removed by the next beat of another one.
    other = HeartbeatRunner(env.relay.ctx, ["worker"], host="relay-test")
    env.clock.advance(dt.timedelta(seconds=runner.stale_after + 1))
    await other.once()
    async with env.relay.uow_factory() as uow:
        left = await uow.process_heartbeats.find()
    assert [row.process_id for row in left] == [me.process_id for me in other.identities]

    ready = await env.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "database": "ok",
        "redis": "disabled",
        "migrations": {"applied": 2, "total": 2},
    }


async def test_readyz_is_503_with_pending_migrations_and_unreachable_redis(env: Env) -> None:
    url = env.settings.database_url
    await downgrade(url, "0001")
    pending = await env.client.get("/readyz")
    assert pending.status_code == 503
    assert pending.json() == {
        "status": "not_ready",
        "database": "ok",
        "redis": "disabled",
        "migrations": {"applied": 1, "total": 2},
    }
    await migrate(url)
    assert (await env.client.get("/readyz")).status_code == 200

    state: ServerState = env.client.app.state[STATE_KEY]
    # Redis configured but nothing listens there.
    state.settings = attrs.evolve(
        state.settings, redis=attrs.evolve(state.settings.redis, url="redis://127.0.0.1:9/0")
    )
    down = await env.client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["redis"] == "unavailable"
    assert down.json()["status"] == "not_ready"


async def test_readyz_is_503_while_draining(env: Env) -> None:
    env.client.app.state["relay_draining"] = True
    response = await env.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert response.json()["draining"] is True


async def test_embedded_heartbeat_loop_writes_a_row_per_role_and_removes_them_on_stop(env: Env) -> None:
    loop = HeartbeatLoop(env.relay, ["web", "worker", "scheduler"], interval=0.05)
    loop.start()
    try:
        for _ in range(200):
            async with env.relay.uow_factory() as uow:
                rows = await uow.process_heartbeats.find()
            if len(rows) == 3:
                break
            await asyncio.sleep(0.02)
    finally:
        await loop.stop()
    assert sorted(row.role for row in rows) == ["scheduler", "web", "worker"]
    assert len({row.host for row in rows}) == 1
    async with env.relay.uow_factory() as uow:
        assert await uow.process_heartbeats.count() == 0  # a clean stop deletes its rows
