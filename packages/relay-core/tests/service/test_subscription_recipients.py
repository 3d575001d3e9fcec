"""Subscription recipients on e-mail/SMS, opt-in/out, dedup, delays, escalation (SPEC S8.4, S8.5)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, ClassVar

from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_core.domain.model import (
    Channel,
    GroupMembership,
    RoleGroup,
    RoleGroupContact,
    RoleGroupMember,
    Subscription,
    SubscriptionPreference,
    User,
)
from relay_core.ports.channels import ChannelCapabilities
from relay_core.services.intake import ensure_builtin_categories
from relay_core.services.subscriptions import SUBSCRIPTION_SMS_CHANNEL
from relay_core.testing.fakes import RecordingChannel

from .conftest import World, am_payload


class RecordingSms(RecordingChannel):
    """A person-addressed ``sms`` sender that records instead of calling a provider."""

    name: ClassVar[str] = "sms"
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(person_addressed=True)


async def _post(world: World, **kwargs: Any) -> Any:
    items = AlertmanagerSource().parse(json.dumps(am_payload(**kwargs)).encode(), {}, {})
    [result] = await world.relay.ingest("alertmanager", items, route_id=world.ids["route"])
    return result


async def _audience(world: World, **sub: Any) -> tuple[RecordingSms, dict[str, int]]:
    """Role group with ivan, sergey (opted out), a no-phone user and a contact; SMS subscription."""
    sms = RecordingSms()
    world.relay.ctx.senders["sms"] = sms
    ids: dict[str, int] = {}
    async with world.relay.uow_factory() as uow:
        team = await uow.teams.get(world.ids["team"])
        assert team is not None
        cats = {cat.slug: cat for cat in await ensure_builtin_categories(uow)}
        nophone = await uow.users.add(User(username="nophone"))
        await uow.group_memberships.add(GroupMembership(user_id=nophone.id, group_id=team.group_id))
        role = await uow.role_groups.add(RoleGroup(group_id=team.group_id, slug="admins", name="Admins"))
        for user_id in (world.ids["ivan"], world.ids["sergey"], nophone.id):
            await uow.role_group_members.add(RoleGroupMember(role_group_id=role.id, user_id=user_id))
        await uow.role_group_contacts.add(
            RoleGroupContact(role_group_id=role.id, name="CFO", phone="+15559990000")
        )
        # The same phone as ivan, as a contact: one message per address.
        await uow.role_group_contacts.add(
            RoleGroupContact(role_group_id=role.id, name="Ivan's", phone="+15550001111")
        )
        room = await uow.channels.add(
            Channel(group_id=team.group_id, name="exec-room", channel_type="recording")
        )
        values: dict[str, Any] = {
            "group_id": team.group_id,
            "category_id": cats[sub.pop("category", "infrastructure")].id,
            "role_group_id": role.id,
            "name": "admins",
            "channel_types": ("sms",),
            "channel_ids": (room.id,),
            **sub,
        }
        subscription = await uow.subscriptions.add(Subscription(**values))
        await uow.subscription_preferences.add(
            SubscriptionPreference(
                subscription_id=subscription.id, user_id=world.ids["sergey"], opted_in=False
            )
        )
        await uow.commit()
        ids.update(sub=subscription.id, room=room.id, role=role.id)
    return sms, ids


def _phones(sms: RecordingSms, event_type: str = "notification") -> list[str]:
    return sorted(
        (m.recipient.phone if m.recipient else None) or "" for m in sms.messages if m.event_type == event_type
    )


async def test_sms_per_recipient_with_skips_and_dedup(world: World) -> None:
    """Members and contacts with a phone get one SMS each; opted-out and phoneless ones are skipped."""
    sms, ids = await _audience(world)
    result = await _post(world)
    await world.relay.run_until_idle()
    assert _phones(sms) == ["+15550001111", "+15559990000"]
    room = [m for m in world.channel.messages if m.channel.id == ids["room"]]
    assert [m.text.splitlines()[0] for m in room] == [
        "[Infrastructure] NOTIFICATION: [CRITICAL] Disk is full"
    ]
    async with world.relay.uow_factory() as uow:
        events = await uow.events.find(group_id=result.group_id, event_type="subscription_recipient_skipped")
        assert sorted(e.data["reason"] for e in events) == ["opted_out", "phone_missing"]
        channel = await uow.channels.first(channel_type="sms")
        assert channel is not None
        assert channel.name == SUBSCRIPTION_SMS_CHANNEL
    await world.relay.resolve(result.group_id, user_id=world.ids["ivan"])
    await world.relay.run_until_idle()
    assert _phones(sms, "resolved") == ["+15550001111", "+15559990000"]


async def test_requires_opt_in(world: World) -> None:
    """With requires_opt_in only members who opted in are reached; contacts always are."""
    sms, ids = await _audience(world, requires_opt_in=True)
    async with world.relay.uow_factory() as uow:
        await uow.subscription_preferences.add(
            SubscriptionPreference(subscription_id=ids["sub"], user_id=world.ids["anna"], opted_in=True)
        )
        await uow.commit()
    await _post(world)
    await world.relay.run_until_idle()
    # ivan did not opt in; his phone still gets one message as the "Ivan's" contact; the CFO too.
    assert _phones(sms) == ["+15550001111", "+15559990000"]
    assert all(m.recipient is not None and m.recipient.user_id is None for m in sms.messages)


async def test_notify_after_drops_short_incidents(world: World) -> None:
    """A group resolved before notify_after_seconds sends subscribers neither created nor resolved."""
    sms, ids = await _audience(world, notify_after_seconds=600)
    result = await _post(world)
    await world.relay.run_until_idle()
    assert sms.messages == []
    world.clock.advance(dt.timedelta(seconds=120))
    await world.relay.resolve(result.group_id, user_id=world.ids["ivan"])
    world.clock.advance(dt.timedelta(seconds=600))
    await world.relay.run_until_idle()
    assert sms.messages == []
    assert [m for m in world.channel.messages if m.channel.id == ids["room"]] == []


async def test_lasting_incident_reaches_subscribers_after_delay(world: World) -> None:
    """After notify_after_seconds a still-firing group is delivered, and its resolution follows."""
    sms, _ids = await _audience(world, notify_after_seconds=600)
    result = await _post(world)
    world.clock.advance(dt.timedelta(seconds=601))
    await world.relay.run_until_idle()
    assert _phones(sms) == ["+15550001111", "+15559990000"]
    await world.relay.resolve(result.group_id, user_id=world.ids["ivan"])
    await world.relay.run_until_idle()
    assert _phones(sms, "resolved") == ["+15550001111", "+15559990000"]


async def test_escalated_event_and_advisory_prefix(world: World) -> None:
    """Subscribers of ``escalated`` hear about escalations; advisory categories say [Advisory]."""
    _sms, ids = await _audience(world, category="configurable", events=("created", "escalated"))
    await _post(world, category="configurable")
    for _ in range(6):
        world.clock.advance(dt.timedelta(seconds=301))
        await world.relay.tick()
        await world.relay.run_until_idle()
    room = [m for m in world.channel.messages if m.channel.id == ids["room"]]
    assert [m.event_type for m in room][:2] == ["notification", "escalation"]
    assert all(m.text.startswith("[Advisory] ") for m in room)
