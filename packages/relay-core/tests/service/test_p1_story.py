"""The whole P1 story in-process: route, group, page, remind, escalate, DTMF acknowledge, silence."""

from __future__ import annotations

import json

import pytest

from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_core.domain import constants as c
from relay_core.testing.fakes import FakeVoiceProvider

from .conftest import World, am_payload


async def _post(world: World, body: dict) -> list:
    items = AlertmanagerSource().parse(json.dumps(body).encode(), {}, {})
    return await world.relay.ingest("alertmanager", items, route_id=world.ids["route"])


async def _group(world: World, group_id: int):
    async with world.relay.uow_factory() as uow:
        return await uow.alert_groups.get(group_id)


async def test_alert_is_paged_reminded_escalated_and_acknowledged_by_dtmf(world: World) -> None:
    """An Alertmanager alert pages the on-call user, reminds twice, escalates, and DTMF 1 stops it all."""
    [result] = await _post(world, am_payload())
    assert result.outcome == c.OUTCOME_CREATED
    assert result.status == c.GROUP_FIRING
    first = result.assignee
    assert first in ("ivan", "sergey", "anna")

    await world.relay.run_until_idle()
    assert world.channel.event_types == ["notification"]
    assert [call.phone for call in world.voice.calls] == [
        {"ivan": "+15550001111", "sergey": "+15550002222", "anna": "+15550003333"}[first]
    ]
    text = world.channel.messages[0].text
    assert text.startswith("NOTIFICATION: [CRITICAL] Disk is full")
    assert f"Alert URL: https://relay.test/alerts/{result.group_id}" in text

    # Nothing is due before the interval.
    world.clock.advance(299)
    assert await world.relay.tick() == 0

    for expected in (1, 2):
        world.clock.advance(1 if expected == 1 else 300)
        assert await world.relay.tick() == 1
        await world.relay.run_until_idle()
        group = await _group(world, result.group_id)
        assert group.reminder_count == expected
    assert world.channel.event_types == ["notification", "reminder", "reminder"]

    world.clock.advance(300)
    assert await world.relay.tick() == 1
    await world.relay.run_until_idle()
    group = await _group(world, result.group_id)
    assert group.escalation_level == 1
    assert group.reminder_count == 0
    assert group.assignee_id != world.ids[first]
    assert world.channel.event_types[-1] == "escalation"
    escalation_call = world.voice.calls[-1]
    assert escalation_call.event_type == "escalation"

    async with world.relay.uow_factory() as uow:
        record = await uow.notifications.first(
            channel_id=world.ids["phone"], recipient_key=f"user:{group.assignee_id}"
        )
    body = {"call_id": record.external_message_id, "event_type": "dtmf", "digit": "1"}
    raw = json.dumps(body).encode()
    from relay_core.domain.commands import HandleVoiceCallback

    outcome = await world.relay.handle(
        HandleVoiceCallback(channel_id=world.ids["phone"], secret="cb-secret-123", payload=body, raw_body=raw)
    )
    assert outcome.events[0]["action"] == "acknowledge"
    assert outcome.events[0]["result"] == "applied"
    group = await _group(world, result.group_id)
    assert group.status == c.GROUP_ACKNOWLEDGED
    assert group.acknowledged_by == group.assignee_id
    assert group.next_action_at is None

    await world.relay.run_until_idle()
    sent_after_ack = list(world.channel.event_types)
    assert sent_after_ack[-1] == "acknowledged"
    calls_after_ack = len(world.voice.calls)

    for _ in range(10):
        world.clock.advance(300)
        assert await world.relay.tick() == 0
        await world.relay.run_until_idle()
    assert world.channel.event_types == sent_after_ack
    assert len(world.voice.calls) == calls_after_ack


async def test_repeated_firing_signal_does_not_page_again(world: World) -> None:
    """A second identical post updates the alert without a second page."""
    [first] = await _post(world, am_payload())
    [second] = await _post(world, am_payload())
    assert second.outcome == c.OUTCOME_UPDATED
    assert second.group_id == first.group_id
    await world.relay.run_until_idle()
    assert world.channel.event_types == ["notification"]


async def test_orphan_resolve_is_ignored_and_stores_only_a_trace(world: World) -> None:
    """A resolve for an alert Relay never saw is answered 'ignored' and creates no group."""
    [result] = await _post(world, am_payload(status="resolved"))
    assert result.outcome == c.OUTCOME_IGNORED
    assert result.processing_status == c.PROCESSING_STOPPED
    async with world.relay.uow_factory() as uow:
        assert await uow.alert_groups.count() == 0
        trace = await uow.traces.first(trace_id=result.trace_id)
    assert "orphan_resolve_ignored" in [s.code for s in trace.steps]


async def test_source_resolve_sends_resolved_update_and_stops_reminders(world: World) -> None:
    """A resolved signal after a page resolves the group, edits the message and stops reminders."""
    [created] = await _post(world, am_payload())
    await world.relay.run_until_idle()
    world.clock.advance(60)
    [resolved] = await _post(world, am_payload(status="resolved"))
    assert resolved.status == c.GROUP_RESOLVED
    await world.relay.run_until_idle()
    assert world.channel.event_types == ["notification", "resolved"]
    assert world.channel.sent[-1].operation == "update"
    group = await _group(world, created.group_id)
    assert group.resolved_via == c.VIA_SOURCE
    world.clock.advance(3000)
    assert await world.relay.tick() == 0


async def test_resolve_before_first_page_cancels_it(world: World) -> None:
    """A group resolved while its first page is still pending sends nothing at all."""
    [created] = await _post(world, am_payload())
    await world.relay.resolve(created.group_id, user_id=world.ids["ivan"])
    await world.relay.run_until_idle()
    assert world.channel.event_types == []
    assert world.voice.calls == []


async def test_firing_again_within_window_reopens_and_pages(world: World) -> None:
    """A resolved alert that fires again inside the dedup window reopens its group and pages anew."""
    [created] = await _post(world, am_payload())
    await world.relay.run_until_idle()
    await _post(world, am_payload(status="resolved"))
    await world.relay.run_until_idle()
    world.clock.advance(120)
    [again] = await _post(world, am_payload())
    assert again.group_id == created.group_id
    assert again.status == c.GROUP_FIRING
    await world.relay.run_until_idle()
    assert world.channel.event_types == ["notification", "resolved", "notification"]


async def test_new_firing_child_reopens_acknowledged_group(tmp_path) -> None:
    """With group_by alertname, a new firing alert in an acknowledged group reopens it and pages."""
    from .conftest import build_world

    world = await build_world(group_by=("alertname",))
    [first] = await _post(world, am_payload(fingerprint="a"))
    world.clock.advance(30)
    await world.relay.run_until_idle()
    await world.relay.acknowledge(first.group_id, user_id=world.ids["ivan"])
    await world.relay.run_until_idle()
    [second] = await _post(world, am_payload(fingerprint="b"))
    assert second.outcome == c.OUTCOME_ADDED
    assert second.status == c.GROUP_FIRING
    await world.relay.run_until_idle()
    assert world.channel.event_types == ["notification", "acknowledged", "notification"]


async def test_voice_callback_with_wrong_secret_changes_nothing(world: World) -> None:
    """A callback with a bad secret is refused and leaves the group firing."""
    from relay_core.domain.commands import HandleVoiceCallback
    from relay_core.domain.errors import PermissionDenied

    [created] = await _post(world, am_payload())
    await world.relay.run_until_idle()
    body = {"call_id": world.voice.calls and "x", "event_type": "dtmf", "digit": "1"}
    with pytest.raises(PermissionDenied, match="voice callback rejected") as caught:
        await world.relay.handle(
            HandleVoiceCallback(channel_id=world.ids["phone"], secret="nope", payload=body, raw_body=b"{}")
        )
    assert caught.value.code == "voice_callback_rejected"
    group = await _group(world, created.group_id)
    assert group.status == c.GROUP_FIRING


def test_fake_provider_is_isolated_per_world() -> None:
    """Each world gets its own fake provider records."""
    assert FakeVoiceProvider.isolated().calls == []
