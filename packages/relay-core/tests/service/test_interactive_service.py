"""Chat actions and signed action links in the service layer (SPEC S6.3-S6.6, S9.3)."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from relay_core.domain import constants as c
from relay_core.domain.actions import ActionClaims, ActionRejected, ActionTokenUsed, sign_action
from relay_core.domain.model import Channel, Group, NormalizedAlert, Team
from relay_core.services.interactive import apply_chat_action, use_action_link, user_can_respond

from .conftest import World


async def _group_id(world: World) -> int:
    alert = NormalizedAlert(source="alertmanager", dedup_key="disk", title="Disk is full")
    [result] = await world.relay.ingest("alertmanager", [alert], route_id=world.ids["route"])
    assert result.group_id is not None
    return result.group_id


async def _chat_channel(world: World, *, team_id: int | None, group_id: int | None = None) -> int:
    async with world.relay.uow_factory() as uow:
        team = await uow.teams.get(world.ids["team"])
        assert team is not None
        channel = await uow.channels.add(
            Channel(
                group_id=group_id if group_id is not None else team.group_id,
                team_id=team_id,
                name="mm",
                channel_type="mattermost",
            )
        )
        user = await uow.users.get(world.ids["ivan"])
        assert user is not None
        await uow.users.update(attrs.evolve(user, mattermost_user_id="mm-ivan"))
        await uow.commit()
    return channel.id


async def test_responder_rights_follow_active_memberships(world: World) -> None:
    """A team responder loses the right when the team or group membership is deactivated."""
    async with world.relay.uow_factory() as uow:
        team = await uow.teams.get(world.ids["team"])
        user = await uow.users.get(world.ids["ivan"])
        assert team is not None
        assert user is not None
        assert await user_can_respond(uow, user, team)
        membership = await uow.group_memberships.first(user_id=user.id, group_id=team.group_id)
        assert membership is not None
        await uow.group_memberships.update(attrs.evolve(membership, active=False))
        assert not await user_can_respond(uow, user, team)
        assert await user_can_respond(uow, attrs.evolve(user, is_admin=True), team)
        assert not await user_can_respond(uow, attrs.evolve(user, is_admin=True, active=False), team)


async def test_group_level_channel_acts_for_its_groups_teams_only(world: World) -> None:
    """A group-level chat channel (no team) may act on alerts of its group's teams, not of others."""
    group_id = await _group_id(world)
    own = await _chat_channel(world, team_id=None)
    async with world.relay.uow_factory() as uow:
        other = await uow.groups.add(Group(slug="other", name="Other"))
        await uow.teams.add(Team(group_id=other.id, slug="other-team", name="Other team"))
        await uow.commit()
    foreign = await _chat_channel(world, team_id=None, group_id=other.id)
    with pytest.raises(ActionRejected, match="does not belong"):
        await apply_chat_action(
            world.relay.ctx,
            via="mattermost",
            channel_id=foreign,
            group_id=group_id,
            action="acknowledge",
            external_user_id="mm-ivan",
        )
    outcome = await apply_chat_action(
        world.relay.ctx,
        via="mattermost",
        channel_id=own,
        group_id=group_id,
        action="acknowledge",
        external_user_id="mm-ivan",
    )
    assert (outcome.result, outcome.status, outcome.user_id) == ("applied", "acknowledged", world.ids["ivan"])


async def test_acknowledging_a_resolved_group_is_ignored(world: World) -> None:
    """A late Acknowledge click on a resolved alert changes nothing and says so."""
    group_id = await _group_id(world)
    channel = await _chat_channel(world, team_id=world.ids["team"])
    await world.relay.resolve(group_id, user_id=world.ids["sergey"])
    outcome = await apply_chat_action(
        world.relay.ctx,
        via="mattermost",
        channel_id=channel,
        group_id=group_id,
        action="acknowledge",
        external_user_id="mm-ivan",
    )
    assert (outcome.result, outcome.status) == ("ignored", c.GROUP_RESOLVED)
    assert outcome.message == f"Alert #{group_id} is already resolved"


async def test_action_link_is_single_use_and_attributed(world: World) -> None:
    """The first use acts as the logged-in responder and records the jti; a second use is refused."""
    group_id = await _group_id(world)
    claims = ActionClaims(
        jti="jti-1",
        group_id=group_id,
        action="resolve",
        channel_id=world.ids["chat"],
        user_id=world.ids["sergey"],
        expires_at=world.clock.now() + dt.timedelta(hours=1),
    )
    token = sign_action(world.relay.ctx.settings.secret_key, claims)
    outcome = await use_action_link(world.relay.ctx, token, user_id=world.ids["anna"], require_login=True)
    assert (outcome.result, outcome.status, outcome.user_id) == ("applied", "resolved", world.ids["anna"])
    async with world.relay.uow_factory() as uow:
        used = await uow.action_tokens.first(jti="jti-1")
        group = await uow.alert_groups.get(group_id)
    assert used is not None
    assert used.used_at == world.clock.now()
    assert group is not None
    assert group.resolved_by == world.ids["anna"]
    with pytest.raises(ActionTokenUsed):
        await use_action_link(world.relay.ctx, token, user_id=world.ids["anna"], require_login=True)
