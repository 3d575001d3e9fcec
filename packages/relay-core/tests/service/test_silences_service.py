"""Silences at intake and in the lifecycle job (SPEC S3.6)."""

from __future__ import annotations

import datetime as dt
import json

import attrs

from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_core.domain import constants as c
from relay_core.domain.model import Silence

from .conftest import World, am_payload


async def _post(world: World, body: dict) -> list:
    items = AlertmanagerSource().parse(json.dumps(body).encode(), {}, {})
    return await world.relay.ingest("alertmanager", items, route_id=world.ids["route"])


async def _silence(world: World, **changes: object) -> Silence:
    now = world.clock.now()
    silence = Silence(
        team_id=world.ids["team"],
        name="maintenance",
        matchers={"alertname": "DiskFull"},
        starts_at=now - dt.timedelta(minutes=1),
        ends_at=now + dt.timedelta(hours=1),
    )
    async with world.relay.uow_factory() as uow:
        stored = await uow.silences.add(attrs.evolve(silence, **changes))
        await uow.commit()
    return stored


async def test_alert_matching_active_silence_is_stored_silenced_and_sends_nothing(world: World) -> None:
    """A new alert under an active silence creates a silenced group with no page and no reminder."""
    await _silence(world)
    [result] = await _post(world, am_payload())
    assert result.status == c.GROUP_SILENCED
    await world.relay.run_until_idle()
    world.clock.advance(3600)
    assert await world.relay.tick() == 0
    assert world.channel.event_types == []


async def test_ended_silence_releases_and_pages_never_notified_group(world: World) -> None:
    """When the silence ends, its alerts fire again and the never-notified group gets its first page."""
    silence = await _silence(world, ends_at=world.clock.now() + dt.timedelta(minutes=10))
    [result] = await _post(world, am_payload())
    world.clock.advance(601)
    silenced, released = await world.relay.silence_lifecycle()
    assert (silenced, released) == (0, 1)
    await world.relay.run_until_idle()
    assert world.channel.event_types == ["notification"]
    async with world.relay.uow_factory() as uow:
        group = await uow.alert_groups.get(result.group_id)
        apps = await uow.silence_applications.find(silence_id=silence.id)
    assert group.status == c.GROUP_FIRING
    assert group.next_action_at is not None
    assert [a.active for a in apps] == [False]


async def test_silence_with_apply_to_existing_mutes_a_firing_group(world: World) -> None:
    """A silence starting with apply_to_existing silences open firing alerts and stops reminders."""
    [result] = await _post(world, am_payload())
    await world.relay.run_until_idle()
    await _silence(world, apply_to_existing=True, starts_at=world.clock.now() + dt.timedelta(seconds=30))
    world.clock.advance(31)
    assert await world.relay.silence_lifecycle() == (1, 0)
    async with world.relay.uow_factory() as uow:
        group = await uow.alert_groups.get(result.group_id)
    assert group.status == c.GROUP_SILENCED
    assert group.next_action_at is None
    world.clock.advance(3000)
    assert await world.relay.tick() == 0
    await world.relay.run_until_idle()
    assert world.channel.event_types == ["notification"]


async def test_silence_without_reactivate_leaves_alert_silenced(world: World) -> None:
    """reactivate_on_end = false keeps released alerts silenced."""
    await _silence(world, ends_at=world.clock.now() + dt.timedelta(minutes=5), reactivate_on_end=False)
    [result] = await _post(world, am_payload())
    world.clock.advance(301)
    assert await world.relay.silence_lifecycle() == (0, 0)
    async with world.relay.uow_factory() as uow:
        group = await uow.alert_groups.get(result.group_id)
    assert group.status == c.GROUP_SILENCED
