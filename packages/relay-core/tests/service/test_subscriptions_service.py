"""Subscription fan-out next to the on-call path (SPEC S8.4, S8.5)."""

from __future__ import annotations

import json

from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_core.domain.model import Channel, RoleGroup, Subscription

from .conftest import World, am_payload


async def _post(world: World, body: dict) -> list:
    items = AlertmanagerSource().parse(json.dumps(body).encode(), {}, {})
    return await world.relay.ingest("alertmanager", items, route_id=world.ids["route"])


async def _subscribe(world: World) -> dict[str, int]:
    async with world.relay.uow_factory() as uow:
        team = await uow.teams.get(world.ids["team"])
        cats = {cat.slug: cat for cat in await uow.categories.find()}
        if not cats:
            from relay_core.services.intake import ensure_builtin_categories

            cats = {cat.slug: cat for cat in await ensure_builtin_categories(uow)}
        out = {}
        for slug, sev in (("billing", ()), ("infrastructure", ("critical",))):
            channel = await uow.channels.add(
                Channel(group_id=team.group_id, name=f"{slug}-room", channel_type="recording")
            )
            role = await uow.role_groups.add(
                RoleGroup(group_id=team.group_id, slug=f"{slug}-admins", name=slug)
            )
            await uow.subscriptions.add(
                Subscription(
                    group_id=team.group_id,
                    category_id=cats[slug].id,
                    role_group_id=role.id,
                    name=slug,
                    channel_ids=(channel.id,),
                    severities=sev,
                    events=("created", "acknowledged", "resolved"),
                )
            )
            out[slug] = channel.id
        await uow.commit()
    return out


def _by_channel(world: World, channel_id: int) -> list[str]:
    return [m.event_type for m in world.channel.messages if m.channel.id == channel_id]


async def test_billing_alert_reaches_only_billing_subscribers(world: World) -> None:
    """An alert labelled category=billing goes to the billing room, not the infrastructure room."""
    rooms = await _subscribe(world)
    [result] = await _post(world, am_payload(category="billing"))
    assert result.category == "billing"
    await world.relay.run_until_idle()
    assert _by_channel(world, rooms["billing"]) == ["notification"]
    assert _by_channel(world, rooms["infrastructure"]) == []
    assert _by_channel(world, world.ids["chat"]) == ["notification"]
    await world.relay.acknowledge(result.group_id, user_id=world.ids["ivan"])
    await world.relay.run_until_idle()
    assert _by_channel(world, rooms["billing"]) == ["notification", "acknowledged"]


async def test_severity_filter_keeps_a_warning_out(world: World) -> None:
    """An infrastructure subscription for critical alerts does not receive a warning."""
    rooms = await _subscribe(world)
    await _post(world, am_payload(severity="warning", fingerprint="w1"))
    await _post(world, am_payload(severity="critical", fingerprint="c1"))
    await world.relay.run_until_idle()
    assert _by_channel(world, rooms["infrastructure"]) == ["notification"]
    assert [m.group.severity for m in world.channel.messages if m.channel.id == rooms["infrastructure"]] == [
        "critical"
    ]
