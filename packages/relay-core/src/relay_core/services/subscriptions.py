"""Subscription fan-out, recipients, category changes, the standard preset and S8.8 reports.

SPEC S8.4 (delivery targets of a subscription: role-group members' and contacts' e-mail and
phone, destination channels), S8.5 (fan-out in the group change's transaction, one message per
recipient address), S8.6 (the standard preset), S8.2 (``PUT /api/alerts/{id}/category``) and
S8.8 (why did or didn't someone get it).

E-mail deliveries go through the group's subscription e-mail channel (global SMTP settings,
created on first use); SMS through the subscription's ``sms_channel_id`` or the group's
subscription SMS channel (global default provider, created on first use).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from relay_core.domain import constants as c
from relay_core.domain.categories import (
    STANDARD_PRESET,
    StandardPreset,
    subscription_decision,
)
from relay_core.domain.matchers import MatchContext
from relay_core.domain.model import (
    AlertEvent,
    AlertGroup,
    Category,
    Channel,
    NotificationIntent,
    RoleGroup,
    Subscription,
    Team,
    User,
)
from relay_core.ports.storage import UnitOfWork

__all__ = [
    "CHANNEL_TYPES",
    "SKIP_EMAIL_MISSING",
    "SKIP_NOT_GROUP_MEMBER",
    "SKIP_OPTED_OUT",
    "SKIP_PHONE_MISSING",
    "SKIP_TEST_ALERT",
    "SUBSCRIPTION_EMAIL_CHANNEL",
    "SUBSCRIPTION_SMS_CHANNEL",
    "Target",
    "apply_standard_preset",
    "change_category",
    "fan_out_subscriptions",
    "group_match_context",
    "mask_address",
    "subscription_channel",
    "subscription_report",
    "subscription_targets",
]

SUBSCRIPTION_EMAIL_CHANNEL: Final = "Subscriptions: e-mail"
SUBSCRIPTION_SMS_CHANNEL: Final = "Subscriptions: SMS"
CHANNEL_TYPES: Final = ("email", "sms")

SKIP_OPTED_OUT: Final = "opted_out"
SKIP_EMAIL_MISSING: Final = "email_missing"
SKIP_PHONE_MISSING: Final = "phone_missing"
SKIP_NOT_GROUP_MEMBER: Final = "not_group_member"
#: Route test alerts (S8.7) exercise the on-call path; stakeholders are not told about them.
SKIP_TEST_ALERT: Final = "test_alert"

KIND_CHANNEL: Final = "channel"
KIND_EMAIL: Final = "email"
KIND_SMS: Final = "sms"


def mask_address(address: str | None) -> str | None:
    """``j***@example.com`` for e-mail, ``***1234`` for phone numbers (S13.7)."""
    if not address:
        return None
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = re.sub(r"\D", "", address)
    return "***" + digits[-4:] if digits else "***"


def _phone_key(phone: str) -> str:
    return re.sub(r"[^\d+]", "", phone)


@attrs.frozen(kw_only=True)
class Target:
    """One destination of a subscription: a channel, or one recipient on e-mail/SMS.

    ``skip`` is the recipient-level reason this destination gets nothing (opted_out,
    email_missing, phone_missing, not_group_member); ``None`` means it is due a message.
    """

    kind: str
    channel: Channel | None
    recipient_user_id: int | None = None
    recipient_address: str | None = None
    recipient_name: str = ""
    skip: str | None = None

    @property
    def dedup_key(self) -> str:
        """The recipient address of S8.5's dedup (one message per address per group event)."""
        if self.kind == KIND_CHANNEL:
            return f"channel:{self.channel.id if self.channel else 0}"
        if self.kind == KIND_EMAIL:
            return f"email:{(self.recipient_address or '').strip().lower()}"
        return f"phone:{_phone_key(self.recipient_address or '')}"

    @property
    def recipient_key(self) -> str:
        """Delivery-record key; starts with ``sub`` so the on-call path leaves it alone."""
        if self.kind == KIND_CHANNEL:
            return "sub:channel"
        return f"sub:{self.dedup_key}"

    @property
    def recipient_label(self) -> str:
        """What the API shows: the channel name or the masked address (never a full phone)."""
        if self.kind == KIND_CHANNEL:
            return self.channel.name if self.channel else ""
        return mask_address(self.recipient_address) or f"{self.recipient_name} (no address)"


async def subscription_channel(uow: UnitOfWork, group_id: int, kind: str) -> Channel:
    """The group-level e-mail or SMS channel subscription deliveries use, created on first use.

    The e-mail channel sends to the addressed person with the global SMTP settings; the SMS
    channel uses the global default provider (``sms.provider``).
    """
    name = SUBSCRIPTION_EMAIL_CHANNEL if kind == KIND_EMAIL else SUBSCRIPTION_SMS_CHANNEL
    existing = await uow.channels.first(group_id=group_id, team_id=None, channel_type=kind, name=name)
    if existing is not None:
        return existing
    config: dict[str, Any] = {"to_assignee": True} if kind == KIND_EMAIL else {}
    return await uow.channels.add(
        Channel(
            group_id=group_id,
            team_id=None,
            name=name,
            channel_type=kind,
            config=config,
            callback_secret=secrets.token_urlsafe(32) if kind == KIND_SMS else None,
        )
    )


async def _preferences(uow: UnitOfWork, sub: Subscription) -> dict[int, bool]:
    return {p.user_id: p.opted_in for p in await uow.subscription_preferences.find(subscription_id=sub.id)}


async def subscription_targets(
    uow: UnitOfWork,
    sub: Subscription,
    *,
    apply_preferences: bool = True,
    create_channels: bool = True,
) -> list[Target]:
    """Every destination of ``sub`` (S8.4), with the recipient-level skip reason if any.

    Args:
        apply_preferences: Honour opt-in/opt-out (``False`` for test alerts, S8.7).
        create_channels: Create the group's subscription e-mail/SMS channel when missing.
    """
    targets: list[Target] = []
    for channel_id in sub.channel_ids:
        channel = await uow.channels.get(channel_id)
        if channel is None or channel.group_id != sub.group_id or channel.channel_type == "voice_call":
            continue
        targets.append(Target(kind=KIND_CHANNEL, channel=channel))
    kinds = [kind for kind in CHANNEL_TYPES if kind in sub.channel_types]
    if not kinds:
        return targets
    channels: dict[str, Channel | None] = {}
    for kind in kinds:
        chosen: Channel | None = None
        if kind == KIND_SMS and sub.sms_channel_id is not None:
            chosen = await uow.channels.get(sub.sms_channel_id)
        elif create_channels:
            chosen = await subscription_channel(uow, sub.group_id, kind)
        else:
            name = SUBSCRIPTION_EMAIL_CHANNEL if kind == KIND_EMAIL else SUBSCRIPTION_SMS_CHANNEL
            chosen = await uow.channels.first(group_id=sub.group_id, channel_type=kind, name=name)
        channels[kind] = chosen
    prefs = await _preferences(uow, sub) if apply_preferences else {}
    members = await uow.role_group_members.find(role_group_id=sub.role_group_id)
    for member in members:
        user = await uow.users.get(member.user_id)
        if user is None:
            continue
        skip: str | None = None
        in_group = await uow.group_memberships.first(user_id=user.id, group_id=sub.group_id, active=True)
        if not user.active or (in_group is None and not user.is_admin):
            skip = SKIP_NOT_GROUP_MEMBER
        elif apply_preferences:
            opted = prefs.get(user.id)
            if (sub.requires_opt_in and opted is not True) or (not sub.requires_opt_in and opted is False):
                skip = SKIP_OPTED_OUT
        for kind in kinds:
            targets.append(
                _recipient_target(kind, channels[kind], user.label, _address(user, kind), skip, user)
            )
    for contact in await uow.role_group_contacts.find(role_group_id=sub.role_group_id):
        for kind in kinds:
            address = contact.email if kind == KIND_EMAIL else contact.phone
            targets.append(_recipient_target(kind, channels[kind], contact.name, address, None, None))
    return targets


def _address(user: User, kind: str) -> str | None:
    return (user.email if kind == KIND_EMAIL else user.phone) or None


def _recipient_target(
    kind: str,
    channel: Channel | None,
    name: str,
    address: str | None,
    skip: str | None,
    user: User | None,
) -> Target:
    if skip is None and not address:
        skip = SKIP_EMAIL_MISSING if kind == KIND_EMAIL else SKIP_PHONE_MISSING
    return Target(
        kind=kind,
        channel=channel,
        recipient_user_id=user.id if user is not None else None,
        recipient_address=address,
        recipient_name=name,
        skip=skip,
    )


def group_match_context(group: AlertGroup, team: Team, category: Category) -> MatchContext:
    """The match context subscription filters see for ``group``."""
    return MatchContext(
        labels=group.common_labels,
        status=group.status,
        severity=group.severity,
        source=group.source,
        title=group.title,
        message=group.message,
        category=category.slug,
        team_id=team.id,
        team_slug=team.slug,
        team_name=team.name,
        route_id=group.route_id,
    )


SUB_EVENT_TO_INTENT: Final = {
    c.SUB_EVENT_CREATED: c.EV_NOTIFICATION,
    c.SUB_EVENT_REOPENED: c.EV_NOTIFICATION,
    c.SUB_EVENT_ESCALATED: c.EV_ESCALATION,
    c.SUB_EVENT_ACKNOWLEDGED: c.EV_ACKNOWLEDGED,
    c.SUB_EVENT_RESOLVED: c.EV_RESOLVED,
}


async def fan_out_subscriptions(
    writer: Any, group: AlertGroup, sub_event: str
) -> list[tuple[int, str | None]]:
    """Subscription intents for a group event, besides the on-call path (S8.5).

    ``writer`` is the command's :class:`relay_core.services.common.Writer`. Returns
    ``(subscription_id, skip_reason)`` per subscription of the group's category; each decision
    and each recipient-level skip is a timeline event. A recipient address (or destination
    channel) reached through several subscriptions gets one message.
    """
    uow: UnitOfWork = writer.uow
    if group.category_id is None:
        return []
    team = await uow.teams.get(group.team_id)
    category = await uow.categories.get(group.category_id)
    if team is None or category is None:
        return []
    subs = await uow.subscriptions.find(group_id=team.group_id, category_id=category.id)
    if not subs:
        return []
    match_ctx = group_match_context(group, team, category)
    intent_event = SUB_EVENT_TO_INTENT[sub_event]
    decisions: list[tuple[int, str | None]] = []
    reached: set[str] = set()
    seq = f"{sub_event}.{group.lifecycle_version}"
    if sub_event == c.SUB_EVENT_ESCALATED:
        seq += f".{group.escalation_level}"
    status_event = sub_event in (c.SUB_EVENT_ACKNOWLEDGED, c.SUB_EVENT_RESOLVED)
    now: dt.datetime = writer.now
    for sub in subs:
        reason = subscription_decision(
            sub,
            category=category,
            ctx=match_ctx,
            event=sub_event,
            group_silenced=group.status == c.GROUP_SILENCED,
        )
        if reason is None and group.test:
            reason = SKIP_TEST_ALERT
        decisions.append((sub.id, reason))
        if reason is not None:
            await writer.add_event(
                _event(
                    group,
                    "subscription_skipped",
                    f"Subscription {sub.name}: {reason}",
                    now,
                    sub,
                    sub_event,
                    reason,
                )
            )
            continue
        due = now
        if sub_event == c.SUB_EVENT_CREATED and sub.notify_after_seconds:
            due = now + dt.timedelta(seconds=sub.notify_after_seconds)
        for target in await subscription_targets(uow, sub):
            channel = target.channel
            if target.skip is not None:
                await writer.add_event(
                    _event(
                        group,
                        "subscription_recipient_skipped",
                        f"Subscription {sub.name}: {target.recipient_label} {target.skip}",
                        now,
                        sub,
                        sub_event,
                        target.skip,
                        recipient=target.recipient_label,
                        channel_type=target.kind,
                    )
                )
                continue
            if channel is None or not channel.enabled or channel.group_id != team.group_id:
                continue
            if target.dedup_key in reached:
                continue
            rkey = target.recipient_key
            if status_event and not await _was_notified(uow, group.id, channel.id, rkey):
                # Stakeholders hear about the end of incidents they heard about (S8.4
                # notify_after_seconds): no "resolved" for a "created" that never went out.
                continue
            reached.add(target.dedup_key)
            await writer.add_intent(
                NotificationIntent(
                    idempotency_key=f"{group.id}:{channel.id}:{rkey}:{intent_event}:{seq}",
                    group_id=group.id,
                    channel_id=channel.id,
                    subscription_id=sub.id,
                    recipient_user_id=target.recipient_user_id,
                    recipient_address=target.recipient_address,
                    recipient_key=rkey,
                    event_type=intent_event,
                    reason=f"subscription:{sub_event}",
                    priority=c.PRIORITY_SUBSCRIPTION,
                    due_at=due,
                    expires_at=due + dt.timedelta(seconds=writer.ctx.settings.max_age_seconds),
                    max_attempts=writer.max_attempts(channel),
                    created_at=now,
                )
            )
    return decisions


async def _was_notified(uow: UnitOfWork, group_id: int, channel_id: int, rkey: str) -> bool:
    """Whether this destination got (or is getting) an earlier message of the group."""
    earlier = await uow.intents.first(
        group_id=group_id,
        channel_id=channel_id,
        recipient_key=rkey,
        status__in=(c.INTENT_SENT, c.INTENT_SENDING),
    )
    return earlier is not None


def _event(
    group: AlertGroup,
    event_type: str,
    message: str,
    now: dt.datetime,
    sub: Subscription,
    sub_event: str,
    reason: str,
    **extra: Any,
) -> AlertEvent:
    return AlertEvent(
        group_id=group.id,
        event_type=event_type,
        message=message,
        data={"subscription_id": sub.id, "reason": reason, "event": sub_event, **extra},
        created_at=now,
    )


# --- category change (S8.2) ----------------------------------------------------------------


async def change_category(
    uow: UnitOfWork, group: AlertGroup, category: Category, *, user_id: int | None, now: dt.datetime
) -> AlertGroup:
    """Give ``group`` another category, with event ``category_changed`` (no-op when unchanged).

    The caller checks that ``category`` is visible to the group's team (built-in or the team's
    group's own).
    """
    if group.category_id == category.id:
        return group
    previous = await uow.categories.get(group.category_id) if group.category_id else None
    updated = await uow.alert_groups.update_where(group.id, {}, {"category_id": category.id})
    await uow.events.add(
        AlertEvent(
            group_id=group.id,
            event_type="category_changed",
            message=f"Category changed to {category.slug}"
            + (f" (was {previous.slug})" if previous is not None else ""),
            user_id=user_id,
            data={
                "category_id": category.id,
                "category": category.slug,
                "previous_category": previous.slug if previous else None,
            },
            created_at=now,
        )
    )
    return updated or attrs.evolve(group, category_id=category.id)


# --- standard preset (S8.6) ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PresetResult:
    role_groups: tuple[RoleGroup, ...]
    subscriptions: tuple[Subscription, ...]
    created_role_groups: int
    created_subscriptions: int


async def apply_standard_preset(
    uow: UnitOfWork,
    group_id: int,
    *,
    categories: Sequence[Category],
    slack_channel_id: int | None = None,
    teams_channel_id: int | None = None,
    webhook_channel_id: int | None = None,
    preset: StandardPreset = STANDARD_PRESET,
) -> PresetResult:
    """Create the preset's role groups and subscriptions in ``group_id``; idempotent.

    Role groups are matched by slug, subscriptions by role group, category and name; a
    re-application attaches newly named channels to the existing subscriptions.
    ``categories`` must hold the built-ins (``ensure_builtin_categories``).
    """
    by_slug = {cat.slug: cat for cat in categories if cat.group_id is None and cat.deleted_at is None}
    role_groups: dict[str, RoleGroup] = {}
    created_rg = 0
    for rg_spec in preset.role_groups:
        found = await uow.role_groups.first(group_id=group_id, slug=rg_spec.slug)
        if found is None:
            found = await uow.role_groups.add(
                RoleGroup(
                    group_id=group_id, slug=rg_spec.slug, name=rg_spec.name, description=rg_spec.description
                )
            )
            created_rg += 1
        role_groups[rg_spec.slug] = found
    subs: list[Subscription] = []
    created_subs = 0
    for spec in preset.subscriptions:
        category = by_slug.get(spec.category_slug)
        if category is None:
            continue
        role_group = role_groups[spec.role_group_slug]
        channel_ids = spec.channel_ids(
            slack_channel_id=slack_channel_id,
            teams_channel_id=teams_channel_id,
            webhook_channel_id=webhook_channel_id,
        )
        existing = await uow.subscriptions.first(
            group_id=group_id, role_group_id=role_group.id, category_id=category.id, name=spec.name
        )
        if existing is None:
            sub = await uow.subscriptions.add(
                Subscription(
                    group_id=group_id,
                    category_id=category.id,
                    role_group_id=role_group.id,
                    name=spec.name,
                    channel_types=spec.channel_types,
                    channel_ids=channel_ids,
                    matchers=dict(spec.matchers),
                    requires_opt_in=spec.requires_opt_in,
                )
            )
            created_subs += 1
        else:
            merged = tuple(dict.fromkeys((*existing.channel_ids, *channel_ids)))
            sub = existing
            if merged != existing.channel_ids:
                sub = await uow.subscriptions.update(attrs.evolve(existing, channel_ids=merged))
        subs.append(sub)
    return PresetResult(
        role_groups=tuple(role_groups.values()),
        subscriptions=tuple(subs),
        created_role_groups=created_rg,
        created_subscriptions=created_subs,
    )


# --- why did (not) someone get it (S8.8) ---------------------------------------------------

_INTENT_DECISION: Final = {
    c.INTENT_PENDING: "pending",
    c.INTENT_SENDING: "pending",
    c.INTENT_SENT: "sent",
    c.INTENT_FAILED: "failed",
    c.INTENT_SKIPPED: "skipped",
    c.INTENT_CANCELLED: "skipped",
}


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


async def subscription_report(uow: UnitOfWork, group: AlertGroup) -> list[dict[str, Any]]:
    """Every subscription of the group's category with its decisions (S8.8).

    Each entry lists ``decisions``: one per delivery (channel or recipient) with ``status``
    sent/pending/failed/skipped and the error or reason, and one per recorded skip
    (subscription-level reasons and recipient-level ones such as opted_out). A subscription
    the group never reached a decision for (created later, or no event yet) gets its current
    evaluation for ``created``.
    """
    team = await uow.teams.get(group.team_id)
    category = await uow.categories.get(group.category_id) if group.category_id else None
    if team is None or category is None:
        return []
    subs = await uow.subscriptions.find(group_id=team.group_id, category_id=category.id)
    intents = await uow.intents.find(group_id=group.id, subscription_id__isnull=False, order_by="id")
    events = [
        e
        for e in await uow.events.find(group_id=group.id, order_by="id")
        if e.event_type in ("subscription_skipped", "subscription_recipient_skipped")
    ]
    channels: dict[int, Channel | None] = {}

    async def channel(channel_id: int | None) -> Channel | None:
        if channel_id is None:
            return None
        if channel_id not in channels:
            channels[channel_id] = await uow.channels.get(channel_id)
        return channels[channel_id]

    report: list[dict[str, Any]] = []
    for sub in subs:
        role_group = await uow.role_groups.get(sub.role_group_id)
        decisions: list[dict[str, Any]] = []
        for intent in (i for i in intents if i.subscription_id == sub.id):
            ch = await channel(intent.channel_id)
            status = _INTENT_DECISION.get(intent.status, intent.status)
            decisions.append(
                {
                    "event": (intent.reason or "").removeprefix("subscription:") or intent.event_type,
                    "status": status,
                    "reason": intent.last_error if status == "skipped" else None,
                    "error": intent.last_error if status == "failed" else None,
                    "channel_id": intent.channel_id,
                    "channel_name": ch.name if ch else None,
                    "channel_type": ch.channel_type if ch else None,
                    "recipient": mask_address(intent.recipient_address)
                    if intent.recipient_address
                    else (ch.name if ch else None),
                    "created_at": _iso(intent.created_at),
                    "due_at": _iso(intent.due_at),
                    "finished_at": _iso(intent.finished_at),
                }
            )
        for ev in (e for e in events if e.data.get("subscription_id") == sub.id):
            decisions.append(
                {
                    "event": ev.data.get("event"),
                    "status": "skipped",
                    "reason": ev.data.get("reason"),
                    "error": None,
                    "channel_id": None,
                    "channel_name": None,
                    "channel_type": ev.data.get("channel_type"),
                    "recipient": ev.data.get("recipient"),
                    "created_at": _iso(ev.created_at),
                    "due_at": None,
                    "finished_at": _iso(ev.created_at),
                }
            )
        evaluated = bool(decisions)
        if not evaluated:
            reason = subscription_decision(
                sub,
                category=category,
                ctx=group_match_context(group, team, category),
                event=c.SUB_EVENT_CREATED,
                group_silenced=group.status == c.GROUP_SILENCED,
            )
            decisions.append(
                {
                    "event": c.SUB_EVENT_CREATED,
                    "status": "skipped",
                    "reason": reason or "not_evaluated",
                    "error": None,
                    "channel_id": None,
                    "channel_name": None,
                    "channel_type": None,
                    "recipient": None,
                    "created_at": None,
                    "due_at": None,
                    "finished_at": None,
                }
            )
        decisions.sort(key=lambda d: d["created_at"] or "")
        report.append(
            {
                "subscription_id": sub.id,
                "subscription_name": sub.name,
                "enabled": sub.enabled,
                "category": category.slug,
                "role_group": {"id": role_group.id, "slug": role_group.slug, "name": role_group.name}
                if role_group
                else None,
                "evaluated": evaluated,
                "decision": _summary(decisions),
                "decisions": decisions,
            }
        )
    return report


def _summary(decisions: Sequence[Mapping[str, Any]]) -> str:
    statuses = {d["status"] for d in decisions}
    for status in ("failed", "pending", "sent"):
        if status in statuses:
            return status
    return "skipped"
