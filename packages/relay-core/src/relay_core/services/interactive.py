"""Acting from outside the web UI: chat buttons and signed action links (SPEC S6.3-S6.6, S5.6).

A chat callback (Mattermost button, Slack block action, Telegram callback query) names a channel,
an alert group, an action and the chat user who clicked. :func:`apply_chat_action` checks, in one
transaction, that the channel is an enabled channel of that type (and passes the provider's own
``verify``: signature, bot mode, room), that the group exists and belongs to the channel's team,
that the chat user is linked to an active Relay user (``mattermost_user_id``, ``slack_user_id``,
``telegram_user_id``) with responder rights on the team, and then acknowledges or resolves as that
user with ``via`` recorded. Any failed check raises and changes nothing.

Signed action links (S6.3) are checked by :func:`inspect_action_link` (the confirmation page,
which never acts) and used once by :func:`use_action_link` (an ``action_tokens`` row per used
``jti``; the unique key makes a concurrent second use fail too).

The message edits that follow an action are ordinary ``acknowledged``/``resolved`` intents of the
lifecycle service, delivered by the outbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from relay_core.domain import constants as c
from relay_core.domain.actions import (
    ActionClaims,
    ActionRejected,
    ActionTokenUsed,
    AlertNotFound,
    InvalidActionToken,
    verify_action,
)
from relay_core.domain.errors import Conflict
from relay_core.domain.model import (
    ActionToken,
    AlertGroup,
    CallbackEvent,
    CallbackReceipt,
    Channel,
    Team,
    User,
)
from relay_core.ports.metrics import error_result
from relay_core.ports.storage import UnitOfWork
from relay_core.services.common import Writer
from relay_core.services.context import Context
from relay_core.services.lifecycle import acknowledge_in, resolve_in

__all__ = [
    "CHAT_USER_FIELDS",
    "ActionLinkView",
    "ActionOutcome",
    "apply_chat_action",
    "inspect_action_link",
    "remember_callback",
    "use_action_link",
    "user_can_respond",
]

CHAT_USER_FIELDS: Final = {
    "mattermost": "mattermost_user_id",
    "slack": "slack_user_id",
    "telegram": "telegram_user_id",
}
"""Chat channel type (also the ``via`` value) -> the ``User`` field holding that chat's user id."""

ACTIONS: Final = (c.ACTION_ACKNOWLEDGE, c.ACTION_RESOLVE)
_DONE: Final = {c.ACTION_ACKNOWLEDGE: "acknowledged", c.ACTION_RESOLVE: "resolved"}

VerifyChannel = Callable[[Channel | None], None]
"""Provider check run on the stored channel before anything else; raises to refuse."""


@attrs.frozen(kw_only=True)
class ActionOutcome:
    """What an action from a chat button or a link did."""

    group_id: int
    action: str
    result: str
    """``applied``, or ``ignored`` when the group already had that status (or was resolved)."""
    status: str
    """The group's status afterwards."""
    user_id: int | None
    message: str
    """Short human answer: ``Alert #5 acknowledged``, ``Alert #5 is already resolved``."""


@attrs.frozen(kw_only=True)
class ActionLinkView:
    """What the confirmation page of a valid, unused action link shows."""

    claims: ActionClaims
    group_id: int
    title: str
    status: str
    team_id: int


async def user_can_respond(uow: UnitOfWork, user: User, team: Team) -> bool:
    """Responder rights (S9.3): admin, or an active responder/manager membership of ``team``.

    Like the API's access rules, a team role counts only while the user is an active member of
    the team's (active) group.
    """
    if not user.active or user.deleted_at is not None:
        return False
    if user.is_admin:
        return True
    if not team.active:
        return False
    membership = await uow.team_memberships.first(team_id=team.id, user_id=user.id, active=True)
    if membership is None or membership.role not in (c.TEAM_RESPONDER, c.TEAM_MANAGER):
        return False
    group = await uow.groups.get(team.group_id)
    if group is None or not group.active:
        return False
    in_group = await uow.group_memberships.first(user_id=user.id, group_id=team.group_id, active=True)
    return in_group is not None


def _outcome_message(group_id: int, action: str, result: str, status: str) -> str:
    if result == "applied":
        return f"Alert #{group_id} {_DONE[action]}"
    return f"Alert #{group_id} is already {status}"


async def _act(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    group: AlertGroup,
    action: str,
    *,
    user_id: int | None,
    via: str,
) -> tuple[str, str]:
    """Acknowledge or resolve; ``(result, status)``. Acknowledging a resolved group is ignored."""
    try:
        if action == c.ACTION_ACKNOWLEDGE:
            done = await acknowledge_in(uow, writer, group.id, user_id=user_id, via=via)
        else:
            done = await resolve_in(ctx, uow, writer, group.id, user_id=user_id, via=via)
    except Conflict:
        return "ignored", c.GROUP_RESOLVED
    return ("applied" if done.changed else "ignored"), done.status


async def _apply_chat_action(
    ctx: Context,
    *,
    via: str,
    channel_id: int,
    group_id: int,
    action: str,
    external_user_id: str | None,
    verify: VerifyChannel | None = None,
    payload: Mapping[str, Any] | None = None,
) -> ActionOutcome:
    """Apply a chat button click as the linked Relay user (S6.4-S6.6); see the module docs.

    Args:
        via: The chat type: ``mattermost``, ``slack`` or ``telegram`` (the channel type too).
        channel_id: Relay's channel id named by the (signed) callback.
        group_id: The alert group.
        action: ``acknowledge`` or ``resolve``.
        external_user_id: The chat's user id of whoever clicked.
        verify: Provider check of the stored channel (signature, mode, room); runs first.
        payload: What to keep on the callback record (no secrets).

    Raises:
        ActionRejected: 403 ``action_rejected`` (channel, team, user or rights).
        AlertNotFound: 404 ``alert_not_found``.
        Exception: whatever ``verify`` raises.
    """
    field = CHAT_USER_FIELDS.get(via)
    if field is None:
        raise ValueError(f"no chat user field for {via!r}")
    if action not in ACTIONS:
        raise ActionRejected(f"unknown action {action!r}")
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        channel = await uow.channels.get(channel_id)
        if verify is not None:
            verify(channel)
        if channel is None or channel.channel_type != via:
            raise ActionRejected(f"channel {channel_id} is not a {via} channel")
        if not channel.enabled:
            raise ActionRejected(f"channel {channel.name} is disabled")
        group = await uow.alert_groups.get(group_id)
        team = await uow.teams.get(group.team_id) if group is not None else None
        if group is None or team is None:
            raise AlertNotFound(f"alert #{group_id} not found")
        if channel.group_id != team.group_id or (channel.team_id is not None and channel.team_id != team.id):
            raise ActionRejected(f"alert #{group_id} does not belong to the team of channel {channel.name}")
        user = await uow.users.first(**{field: str(external_user_id)}) if external_user_id else None
        if user is None or not user.active:
            raise ActionRejected(f"this {via} user is not linked to an active Relay user")
        if not await user_can_respond(uow, user, team):
            raise ActionRejected(f"{user.username} has no responder rights on team {team.slug}")
        writer = Writer(ctx, uow, now)
        result, status = await _act(ctx, uow, writer, group, action, user_id=user.id, via=via)
        record = await uow.notifications.first(group_id=group.id, channel_id=channel.id)
        if record is not None:
            await uow.notifications.update(
                attrs.evolve(
                    record, callback_count=record.callback_count + 1, last_callback_at=now, updated_at=now
                )
            )
        await uow.callbacks.add(
            CallbackEvent(
                notification_id=record.id if record is not None else None,
                channel_id=channel.id,
                kind=via,
                event_type="action",
                action=action,
                message=f"{action} by {user.username}",
                payload=dict(payload or {}),
                result=result,
                created_at=now,
            )
        )
        await uow.commit()
    await ctx.dispatcher.enqueue([i.id for i in writer.intents])
    return ActionOutcome(
        group_id=group.id,
        action=action,
        result=result,
        status=status,
        user_id=user.id,
        message=_outcome_message(group.id, action, result, status),
    )


async def remember_callback(ctx: Context, channel_id: int, digest: str) -> bool:
    """Record a callback digest (e.g. a Telegram ``update_id``); False when it was seen already."""
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        seen = await uow.callback_receipts.first(channel_id=channel_id, digest=digest, expires_at__gt=now)
        if seen is not None:
            return False
        try:
            await uow.callback_receipts.add(
                CallbackReceipt(
                    channel_id=channel_id,
                    digest=digest,
                    expires_at=now + dt.timedelta(seconds=ctx.settings.callback_replay_window_seconds),
                )
            )
            await uow.commit()
        except Conflict:
            return False  # an expired receipt of the same digest, or a concurrent twin
    return True


def _claims(ctx: Context, token: str) -> ActionClaims:
    claims = verify_action(ctx.settings.secret_key, token, ctx.clock.now())
    if claims.action not in ACTIONS:
        raise InvalidActionToken("action link names an unknown action")
    return claims


async def inspect_action_link(ctx: Context, token: str) -> ActionLinkView:
    """Check a link for the confirmation page (S6.3); never acts.

    Raises:
        InvalidActionToken: 400 ``invalid_token``.
        ExpiredActionToken: 410 ``token_expired``.
        ActionTokenUsed: 409 ``token_already_used``.
        AlertNotFound: 404 ``alert_not_found``.
    """
    claims = _claims(ctx, token)
    async with ctx.uow_factory() as uow:
        if await uow.action_tokens.first(jti=claims.jti) is not None:
            raise ActionTokenUsed("this action link has already been used")
        group = await uow.alert_groups.get(claims.group_id)
        if group is None:
            raise AlertNotFound(f"alert #{claims.group_id} not found")
    return ActionLinkView(
        claims=claims, group_id=group.id, title=group.title, status=group.status, team_id=group.team_id
    )


async def use_action_link(
    ctx: Context, token: str, *, user_id: int | None, require_login: bool
) -> ActionOutcome:
    """Use a signed action link once (S6.3).

    With ``require_login`` the logged-in ``user_id`` must have responder rights on the group's
    team and the action is attributed to them. Without it the link itself authorizes; the action
    is attributed to the logged-in user when they are a responder, else to the link's recipient.

    Raises:
        InvalidActionToken, ExpiredActionToken, ActionTokenUsed, AlertNotFound: as
            :func:`inspect_action_link`.
        ActionRejected: 403 ``action_rejected`` (not logged in, or no responder rights).
    """
    claims = _claims(ctx, token)
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        if await uow.action_tokens.first(jti=claims.jti) is not None:
            raise ActionTokenUsed("this action link has already been used")
        group = await uow.alert_groups.get(claims.group_id)
        team = await uow.teams.get(group.team_id) if group is not None else None
        if group is None or team is None:
            raise AlertNotFound(f"alert #{claims.group_id} not found")
        user = await uow.users.get(user_id) if user_id is not None else None
        responder = user is not None and await user_can_respond(uow, user, team)
        if require_login and not responder:
            raise ActionRejected(
                "log in first"
                if user is None
                else f"{user.username} has no responder rights on team {team.slug}"
            )
        actor = user_id if responder else claims.user_id
        try:
            await uow.action_tokens.add(
                ActionToken(
                    jti=claims.jti,
                    group_id=claims.group_id,
                    action=claims.action,
                    channel_id=claims.channel_id,
                    recipient_user_id=claims.user_id,
                    expires_at=claims.expires_at,
                    used_at=now,
                )
            )
        except Conflict as exc:
            raise ActionTokenUsed("this action link has already been used") from exc
        writer = Writer(ctx, uow, now)
        result, status = await _act(ctx, uow, writer, group, claims.action, user_id=actor, via="link")
        try:
            await uow.commit()
        except Conflict as exc:  # the twin request committed its row first
            raise ActionTokenUsed("this action link has already been used") from exc
    await ctx.dispatcher.enqueue([i.id for i in writer.intents])
    return ActionOutcome(
        group_id=group.id,
        action=claims.action,
        result=result,
        status=status,
        user_id=actor,
        message=_outcome_message(group.id, claims.action, result, status),
    )


async def apply_chat_action(
    ctx: Context,
    *,
    via: str,
    channel_id: int,
    group_id: int,
    action: str,
    external_user_id: str | None,
    verify: VerifyChannel | None = None,
    payload: Mapping[str, Any] | None = None,
) -> ActionOutcome:
    """Apply a chat button click (see :func:`_apply_chat_action`), counted in
    ``relay_callbacks_received_total{kind=<chat type>}`` (S9.9)."""
    try:
        outcome = await _apply_chat_action(
            ctx,
            via=via,
            channel_id=channel_id,
            group_id=group_id,
            action=action,
            external_user_id=external_user_id,
            verify=verify,
            payload=payload,
        )
    except Exception as exc:
        ctx.metrics.callback(kind=via, result=error_result(exc))
        raise
    ctx.metrics.callback(kind=via, result="accepted")
    return outcome
