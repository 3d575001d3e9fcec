"""What the use cases report to the instrumentation port (SPEC S9.9), with the memory world.

Two channels page the same group: both sends are counted, but the group's first notification
once; reminders and team escalations come from ``due_actions``; a refused voice callback is
counted with its error code. The default is :class:`NullInstrumentation`.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_core.domain.errors import PermissionDenied
from relay_core.ports.metrics import NullInstrumentation, RecordingInstrumentation
from relay_core.services import voice

from .conftest import START, World, am_payload, build_world


async def test_instrumentation_sees_sends_first_page_reminder_escalation_and_callbacks() -> None:
    world: World = await build_world(reminder=60, escalate_after=1)
    assert isinstance(world.relay.ctx.metrics, NullInstrumentation)
    metrics = world.relay.ctx.metrics = RecordingInstrumentation()
    items = AlertmanagerSource().parse(json.dumps(am_payload()).encode(), {}, {})
    await world.relay.ingest("alertmanager", items, route_id=world.ids["route"])
    world.clock.advance(dt.timedelta(seconds=40))  # the first pages were due at intake (START)
    assert await world.relay.run_until_idle() == 2

    sends = [kw for hook, kw in metrics.calls if hook == "notification"]
    assert sorted((kw["channel_type"], kw["event_type"], kw["outcome"]) for kw in sends) == [
        ("recording", "notification", "sent"),
        ("voice_call", "notification", "sent"),
    ]
    latencies = [kw for hook, kw in metrics.calls if hook == "delivery_latency"]
    assert sorted(kw["seconds"] for kw in latencies) == [40.0, 40.0]
    firsts = [kw["seconds"] for hook, kw in metrics.calls if hook == "time_to_first_notification"]
    # Once for the group, measured from its first alert (received at START).
    assert firsts == [(START + dt.timedelta(seconds=40) - START).total_seconds()]

    metrics.calls.clear()
    world.clock.advance(dt.timedelta(seconds=61))
    assert await world.relay.tick() == 1
    world.clock.advance(dt.timedelta(seconds=61))
    assert await world.relay.tick() == 1
    assert [(hook, kw) for hook, kw in metrics.calls if hook in ("reminder", "escalation")] == [
        ("reminder", {}),
        ("escalation", {"mode": "team"}),
    ]

    metrics.calls.clear()
    with pytest.raises(PermissionDenied):
        await voice.handle_voice_callback(
            world.relay.ctx,
            world.ids["phone"],
            "wrong-secret",
            payload={},
            headers={},
            raw_body=b"{}",
            query_args={},
        )
    assert metrics.calls == [("callback", {"kind": "voice", "result": "voice_callback_rejected"})]
