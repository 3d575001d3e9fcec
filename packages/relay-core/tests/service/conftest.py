"""Shared world for service tests: one team, three responders, a daily rotation, a route."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest

from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain.model import (
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
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock, FakeVoiceProvider, RecordingChannel

START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


@attrs.define
class World:
    relay: Relay
    clock: FakeClock
    channel: RecordingChannel
    voice: type[FakeVoiceProvider]
    ids: dict[str, int]


async def build_world(
    *, reminder: int = 300, escalate_after: int = 2, group_by: tuple[str, ...] = ()
) -> World:
    clock = FakeClock(START)
    recording = RecordingChannel()
    voice = FakeVoiceProvider.isolated()
    relay = bootstrap(
        uow_factory=InMemoryUnitOfWorkFactory(),
        clock=clock,
        settings=CoreSettings(public_base_url="https://relay.test"),
        channels=[recording],
        voice_providers={"fake": voice},
    )
    ids: dict[str, int] = {}
    async with relay.uow_factory() as uow:
        grp = await uow.groups.add(Group(slug="ops", name="Operations"))
        team = await uow.teams.add(
            Team(
                group_id=grp.id,
                slug="infra",
                name="Infrastructure",
                escalation_after_reminders=escalate_after,
            )
        )
        users = []
        for name, phone in (("ivan", "+15550001111"), ("sergey", "+15550002222"), ("anna", "+15550003333")):
            user = await uow.users.add(User(username=name, display_name=name.title(), phone=phone))
            await uow.group_memberships.add(GroupMembership(user_id=user.id, group_id=grp.id))
            await uow.team_memberships.add(TeamMembership(team_id=team.id, user_id=user.id, role="responder"))
            users.append(user)
            ids[name] = user.id
        rot = await uow.rotations.add(
            Rotation(
                team_id=team.id,
                name="primary",
                start_at=dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC),
                rotation_type="weekly",
                handoff_time="09:00",
                timezone="UTC",
                reminder_interval_seconds=reminder,
            )
        )
        # A weekly rotation starting 2026-05-01 (a Friday): on 2026-06-01 (Monday 10:00) slot 5 is running.
        for position, user in enumerate(users):
            await uow.rotation_members.add(
                RotationMember(rotation_id=rot.id, user_id=user.id, position=position)
            )
        chat = await uow.channels.add(
            Channel(group_id=grp.id, team_id=team.id, name="chat", channel_type="recording")
        )
        phone = await uow.channels.add(
            Channel(
                group_id=grp.id,
                team_id=team.id,
                name="phone",
                channel_type="voice_call",
                config={"provider": "fake"},
                callback_secret="cb-secret-123",
            )
        )
        route = await uow.routes.add(
            Route(
                team_id=team.id,
                name="prometheus",
                source="alertmanager",
                rotation_id=rot.id,
                channel_ids=(chat.id, phone.id),
                group_by=group_by,
            )
        )
        await uow.commit()
    ids.update(team=team.id, rotation=rot.id, chat=chat.id, phone=phone.id, route=route.id)
    return World(relay=relay, clock=clock, channel=recording, voice=voice, ids=ids)


def am_payload(
    *,
    status: str = "firing",
    fingerprint: str = "fp-disk-1",
    alertname: str = "DiskFull",
    severity: str = "critical",
    **labels: Any,
) -> dict[str, Any]:
    """An Alertmanager v4 webhook body with one alert."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "relay",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": alertname, "severity": severity, "instance": "host1:9100", **labels},
                "annotations": {"summary": "Disk is full", "description": "/var is 95% full"},
                "startsAt": "2026-06-01T09:59:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }


@pytest.fixture
async def world() -> World:
    return await build_world()
