"""Delivery of outbox intents (SPEC S5.8–S5.10): claim, re-check, send, record."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from typing import Any

import attrs

from relay_core.domain import constants as c
from relay_core.domain.actions import ActionClaims, sign_action
from relay_core.domain.categories import message_prefix
from relay_core.domain.errors import StorageUnavailable
from relay_core.domain.model import (
    AlertEvent,
    AlertGroup,
    Channel,
    DeliveryAttempt,
    Notification,
    NotificationIntent,
)
from relay_core.ports.channels import (
    ActionLinks,
    ChannelRef,
    DeliveryResult,
    GroupView,
    OutboundMessage,
    PermanentDeliveryError,
    Recipient,
    RetryableDeliveryError,
    render_plain_text,
)
from relay_core.ports.storage import UnitOfWork
from relay_core.services.context import Context

TEST_TITLE = "Test notification from Relay"
#: Events that reuse the group's earlier message on editable channels (S6.1, S5.6): status
#: changes edit it; updates, reminders and escalations reply to it and refresh it.
_ANCHORED_EVENTS = c.STATUS_EVENTS | {c.EV_UPDATE, c.EV_REMINDER, c.EV_ESCALATION}


def backoff_seconds(ctx: Context, intent: NotificationIntent, retry_after: float | None) -> float:
    """Exponential backoff with ±20 % jitter, deterministic per intent and attempt."""
    if retry_after is not None:
        return float(min(max(retry_after, 0.0), 3600.0))
    base = ctx.settings.backoff_base_seconds * 2 ** max(intent.attempt_count - 1, 0)
    delay = min(base, ctx.settings.backoff_max_seconds)
    jitter = random.Random(f"{intent.id}:{intent.attempt_count}").uniform(-0.2, 0.2)
    return float(delay * (1 + jitter))


async def reclaim_expired(ctx: Context, *, now: dt.datetime | None = None) -> int:
    """Return intents whose lease expired mid-send to ``pending`` (at most N ambiguous re-sends)."""
    now = now or ctx.clock.now()
    reclaimed = 0
    async with ctx.uow_factory() as uow:
        stale = await uow.intents.find(status=c.INTENT_SENDING, lease_until__lt=now, limit=500)
        for intent in stale:
            expect = {"status": c.INTENT_SENDING, "lease_until": intent.lease_until}
            if intent.ambiguous_count >= ctx.settings.max_ambiguous_resends:
                changes: dict[str, Any] = {
                    "status": c.INTENT_FAILED,
                    "error_class": c.ERR_AMBIGUOUS,
                    "last_error": "send outcome unknown after worker crash",
                    "finished_at": now,
                }
            else:
                changes = {
                    "status": c.INTENT_PENDING,
                    "ambiguous_count": intent.ambiguous_count + 1,
                    "error_class": c.ERR_AMBIGUOUS,
                    "lease_owner": None,
                    "lease_until": None,
                    "due_at": now,
                }
            if await uow.intents.update_where(intent.id, expect, changes) is not None:
                reclaimed += 1
        await uow.commit()
    return reclaimed


async def deliver_due(ctx: Context, *, ids: list[int] | None = None, limit: int = 50) -> int:
    """Claim due intents and deliver each; returns how many were claimed."""
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        claimed = await uow.intents.claim(
            owner=ctx.worker_id,
            now=now,
            lease_until=now + dt.timedelta(seconds=ctx.settings.lease_seconds),
            limit=limit,
            ids=ids,
        )
        await uow.commit()
    for intent in claimed:
        await deliver_claimed(ctx, intent)
    return len(claimed)


@attrs.frozen
class _Prepared:
    intent: NotificationIntent
    channel: Channel
    group: AlertGroup | None
    message: OutboundMessage
    previous: Notification | None


async def deliver_claimed(ctx: Context, intent: NotificationIntent) -> str:
    """Deliver one claimed intent; returns its final or retry status."""
    prepared_or_status = await _prepare(ctx, intent)
    if isinstance(prepared_or_status, str):
        return prepared_or_status
    prepared = prepared_or_status
    sender = ctx.senders[prepared.channel.channel_type]
    started = ctx.clock.now()
    result: DeliveryResult | None = None
    error: Exception | None = None
    try:
        previous = prepared.previous
        if (
            previous is not None
            and intent.event_type in _ANCHORED_EVENTS
            and sender.capabilities.supports_update
            and previous.external_message_id
        ):
            result = await sender.update(prepared.message, _as_result(previous))
        else:
            result = await sender.send(prepared.message)
    except Exception as exc:
        error = exc
    return await _record_retrying(ctx, prepared, started, result, error)


#: First and longest wait between attempts to record a send's outcome (seconds).
_RECORD_RETRY_FIRST, _RECORD_RETRY_MAX = 0.25, 5.0


async def _record_retrying(
    ctx: Context,
    prepared: _Prepared,
    started: dt.datetime,
    result: DeliveryResult | None,
    error: Exception | None,
) -> str:
    """:func:`_record`, retried while the database is unavailable, for at most the intent's
    remaining lease (S5.10 "result not recordable"); then ``StorageUnavailable`` propagates and
    the lease expiry makes it an ambiguous send."""
    try:
        return await _record(ctx, prepared, started, result, error)
    except StorageUnavailable:
        lease_until = prepared.intent.lease_until
        if lease_until is None:
            raise
        budget = (lease_until - ctx.clock.now()).total_seconds()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    wait = _RECORD_RETRY_FIRST
    while True:
        if loop.time() + wait >= deadline:
            raise StorageUnavailable()
        await asyncio.sleep(wait)
        wait = min(wait * 2, _RECORD_RETRY_MAX)
        try:
            return await _record(ctx, prepared, started, result, error)
        except StorageUnavailable:
            continue


def _as_result(record: Notification) -> DeliveryResult:
    return DeliveryResult(
        provider=record.provider,
        external_message_id=record.external_message_id,
        external_channel_id=record.external_channel_id,
        provider_status=record.provider_status,
        provider_payload=record.provider_payload,
    )


async def _finish(
    uow: UnitOfWork,
    intent: NotificationIntent,
    status: str,
    reason: str,
    now: dt.datetime,
    *,
    event_type: str,
) -> None:
    await uow.intents.update_where(
        intent.id,
        {"status": c.INTENT_SENDING, "lease_owner": intent.lease_owner},
        {"status": status, "last_error": reason, "finished_at": now, "lease_until": None},
    )
    if intent.group_id is not None:
        await uow.events.add(
            AlertEvent(
                group_id=intent.group_id,
                event_type=f"{intent.event_type}_{event_type}",
                message=f"{intent.event_type} {event_type}: {reason}",
                data={"channel_id": intent.channel_id, "intent_id": intent.id, "reason": reason},
                created_at=now,
            )
        )


async def group_view(ctx: Context, uow: UnitOfWork, group: AlertGroup) -> GroupView:
    team = await uow.teams.get(group.team_id)
    category = await uow.categories.get(group.category_id) if group.category_id else None
    names: dict[int, str] = {}
    for uid in {group.assignee_id, group.acknowledged_by, group.resolved_by} - {None}:
        assert uid is not None
        user = await uow.users.get(uid)
        if user is not None:
            names[uid] = user.username
    return GroupView(
        id=group.id,
        title=group.title,
        message=group.message,
        severity=group.severity,
        status=group.status,
        team_slug=team.slug if team else "",
        team_name=team.name if team else "",
        category=category.slug if category else None,
        assignee=names.get(group.assignee_id) if group.assignee_id else None,
        labels=dict(group.common_labels),
        event_link=group.event_link,
        alert_url=f"{ctx.settings.public_base_url.rstrip('/')}/alerts/{group.id}",
        alert_count=group.alert_count,
        firing_count=group.firing_count,
        acknowledged_by=names.get(group.acknowledged_by) if group.acknowledged_by else None,
        resolved_by=names.get(group.resolved_by) if group.resolved_by else None,
        source=group.source,
    )


def action_links(ctx: Context, group: AlertGroup, channel: Channel, user_id: int | None) -> ActionLinks:
    if group.status == c.GROUP_RESOLVED:
        return ActionLinks()
    expires = ctx.clock.now() + dt.timedelta(seconds=ctx.settings.action_link_ttl_seconds)
    base = ctx.settings.public_base_url.rstrip("/")

    def link(action: str) -> str:
        claims = ActionClaims(
            jti=uuid.uuid4().hex,
            group_id=group.id,
            action=action,
            channel_id=channel.id,
            user_id=user_id,
            expires_at=expires,
        )
        return f"{base}/actions/{sign_action(ctx.settings.secret_key, claims)}"

    ack = link(c.ACTION_ACKNOWLEDGE) if group.status != c.GROUP_ACKNOWLEDGED else None
    return ActionLinks(acknowledge=ack, resolve=link(c.ACTION_RESOLVE))


def channel_ref(channel: Channel) -> ChannelRef:
    config = dict(channel.config)
    if channel.callback_secret:
        config.setdefault("callback_secret", channel.callback_secret)
    return ChannelRef(id=channel.id, name=channel.name, type=channel.channel_type, config=config)


async def _prepare(ctx: Context, intent: NotificationIntent) -> _Prepared | str:
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        channel = await uow.channels.get(intent.channel_id) if intent.channel_id else None
        group = await uow.alert_groups.get(intent.group_id) if intent.group_id else None
        skip: tuple[str, str] | None = None
        if intent.expires_at is not None and now > intent.expires_at:
            skip = (c.INTENT_FAILED, "expired")
        elif channel is None or not channel.enabled:
            skip = (c.INTENT_SKIPPED, "channel_disabled")
        elif channel.channel_type not in ctx.senders:
            skip = (c.INTENT_FAILED, f"unknown channel type {channel.channel_type!r}")
        elif intent.event_type in c.PAGE_EVENTS and (group is None or group.status != c.GROUP_FIRING):
            skip = (c.INTENT_CANCELLED, "alert_not_firing")
        elif (
            intent.event_type in c.PAGE_EVENTS
            and group is not None
            and channel.notify_on_severities
            and group.severity not in channel.notify_on_severities
        ):
            skip = (c.INTENT_SKIPPED, "severity_filtered")
        if skip is None and intent.depends_on_intent_id is not None:
            parent = await uow.intents.get(intent.depends_on_intent_id)
            if parent is not None and parent.status in (c.INTENT_PENDING, c.INTENT_SENDING):
                # An edit never precedes its message: try again shortly.
                await uow.intents.update_where(
                    intent.id,
                    {"status": c.INTENT_SENDING},
                    {
                        "status": c.INTENT_PENDING,
                        "due_at": now + dt.timedelta(seconds=1),
                        "attempt_count": intent.attempt_count - 1,
                        "lease_until": None,
                    },
                )
                await uow.commit()
                return c.INTENT_PENDING
        if skip is not None:
            status, reason = skip
            word = {c.INTENT_SKIPPED: "skipped", c.INTENT_CANCELLED: "cancelled"}.get(status, "failed")
            await _finish(uow, intent, status, reason, now, event_type=word)
            await uow.commit()
            ctx.metrics.notification(
                channel_type=channel.channel_type if channel is not None else "unknown",
                event_type=intent.event_type,
                outcome=word,
            )
            return status
        assert channel is not None
        recipient = None
        if intent.recipient_user_id is not None:
            user = await uow.users.get(intent.recipient_user_id)
            if user is not None:
                recipient = Recipient(
                    user_id=user.id,
                    username=user.username,
                    display_name=user.label,
                    email=user.email,
                    phone=user.phone,
                )
        elif intent.recipient_address:
            # A subscription contact without an account (S8.4): the address is all we know.
            address = intent.recipient_address
            recipient = Recipient(
                email=address if "@" in address else None,
                phone=None if "@" in address else address,
            )
        previous = await uow.notifications.first(
            group_id=intent.group_id, channel_id=channel.id, recipient_key=intent.recipient_key
        )
        view = await group_view(ctx, uow, group) if group is not None else None
        text = ""
        if view is not None:
            title = TEST_TITLE if intent.event_type == c.EV_TEST else None
            text = render_plain_text(intent.event_type, view, title=title)
            if intent.subscription_id is not None and group is not None and group.category_id:
                category = await uow.categories.get(group.category_id)
                if category is not None:
                    text = f"{message_prefix(category)} {text}"  # S8.5 first line
        links = (
            action_links(ctx, group, channel, intent.recipient_user_id)
            if group is not None
            else ActionLinks()
        )
        message = OutboundMessage(
            event_type=intent.event_type,
            intent_id=intent.id,
            idempotency_key=intent.idempotency_key,
            channel=channel_ref(channel),
            group=view,
            recipient=recipient,
            text=text,
            action_links=links,
            http=ctx.http,
            clock=ctx.clock,
        )
    return _Prepared(intent=intent, channel=channel, group=group, message=message, previous=previous)


async def _record(
    ctx: Context,
    prepared: _Prepared,
    started: dt.datetime,
    result: DeliveryResult | None,
    error: Exception | None,
) -> str:
    intent = prepared.intent
    now = ctx.clock.now()
    duration = int((now - started).total_seconds() * 1000)
    async with ctx.uow_factory() as uow:
        expect = {
            "status": c.INTENT_SENDING,
            "lease_owner": intent.lease_owner,
            "attempt_count": intent.attempt_count,
        }
        if result is not None and result.skipped:
            status = c.INTENT_SKIPPED
            changes: dict[str, Any] = {
                "status": status,
                "last_error": result.skip_reason,
                "finished_at": now,
                "lease_until": None,
            }
            outcome, err = "sent", result.skip_reason
        elif result is not None:
            status = c.INTENT_SENT
            changes = {"status": status, "finished_at": now, "lease_until": None, "last_error": None}
            outcome, err = "sent", None
        else:
            assert error is not None
            permanent = isinstance(error, PermanentDeliveryError)
            retry_after = error.retry_after if isinstance(error, RetryableDeliveryError) else None
            err = _describe(error)
            last = intent.attempt_count >= intent.max_attempts
            if permanent or last:
                status = c.INTENT_FAILED
                changes = {
                    "status": status,
                    "finished_at": now,
                    "lease_until": None,
                    "last_error": err,
                    "error_class": c.ERR_PERMANENT if permanent else c.ERR_RETRYABLE,
                }
            else:
                status = c.INTENT_PENDING
                due = now + dt.timedelta(seconds=backoff_seconds(ctx, intent, retry_after))
                changes = {
                    "status": status,
                    "due_at": due,
                    "lease_until": None,
                    "lease_owner": None,
                    "last_error": err,
                    "error_class": c.ERR_RETRYABLE,
                }
            outcome = "permanent_error" if permanent else "retryable_error"
        updated = await uow.intents.update_where(intent.id, expect, changes)
        if updated is None:
            return "lost_lease"  # another worker reclaimed it; its result wins
        await uow.attempts.add(
            DeliveryAttempt(
                intent_id=intent.id,
                attempt_no=intent.attempt_count,
                started_at=started,
                finished_at=now,
                outcome=outcome,
                error=err,
                duration_ms=duration,
            )
        )
        first_page = False
        if result is not None and intent.group_id is not None and not result.skipped:
            first_page = await _store_notification(uow, intent, prepared, result, now)
        if intent.group_id is not None:
            kind = {c.INTENT_SENT: "sent", c.INTENT_SKIPPED: "skipped", c.INTENT_FAILED: "failed"}.get(status)
            if kind is not None or status == c.INTENT_PENDING:
                label = kind or "failed"
                message = f"{intent.event_type} {label} via {prepared.channel.name}"
                if err:
                    message += f": {err}"
                if status == c.INTENT_PENDING:
                    message += " (will retry)"
                await uow.events.add(
                    AlertEvent(
                        group_id=intent.group_id,
                        event_type=f"{intent.event_type}_{label}",
                        message=message,
                        data={
                            "channel_id": prepared.channel.id,
                            "intent_id": intent.id,
                            "attempt": intent.attempt_count,
                            "error": err,
                            "external_message_id": result.external_message_id if result else None,
                        },
                        created_at=now,
                    )
                )
        await uow.commit()
    _observe(ctx, prepared, status, now, first_page=first_page)
    return status


#: Intent status after a send -> ``relay_notifications_total`` outcome (S9.9).
_OUTCOMES = {
    c.INTENT_SENT: "sent",
    c.INTENT_SKIPPED: "skipped",
    c.INTENT_FAILED: "failed",
    c.INTENT_PENDING: "retried",
}


def _observe(ctx: Context, prepared: _Prepared, status: str, now: dt.datetime, *, first_page: bool) -> None:
    """Report one recorded send to the instrumentation port (after commit)."""
    intent, channel_type = prepared.intent, prepared.channel.channel_type
    outcome = _OUTCOMES.get(status)
    if outcome is None:
        return
    ctx.metrics.notification(channel_type=channel_type, event_type=intent.event_type, outcome=outcome)
    if status == c.INTENT_SENT:
        ctx.metrics.delivery_latency(
            channel_type=channel_type, seconds=max((now - intent.due_at).total_seconds(), 0.0)
        )
        if first_page and prepared.group is not None:
            ctx.metrics.time_to_first_notification(
                max((now - prepared.group.first_seen_at).total_seconds(), 0.0)
            )


async def _store_notification(
    uow: UnitOfWork, intent: NotificationIntent, prepared: _Prepared, result: DeliveryResult, now: dt.datetime
) -> bool:
    """Store or refresh the provider message; True when this was the group's first page."""
    assert intent.group_id is not None
    record = prepared.previous
    if record is None:
        await uow.notifications.add(
            Notification(
                group_id=intent.group_id,
                channel_id=prepared.channel.id,
                recipient_user_id=intent.recipient_user_id,
                recipient_key=intent.recipient_key,
                provider=result.provider,
                external_message_id=result.external_message_id,
                external_channel_id=result.external_channel_id,
                provider_status=result.provider_status,
                provider_payload=dict(result.provider_payload),
                last_event_type=intent.event_type,
                first_intent_id=intent.id,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        await uow.notifications.update(
            attrs.evolve(
                record,
                provider=result.provider or record.provider,
                external_message_id=result.external_message_id or record.external_message_id,
                external_channel_id=result.external_channel_id or record.external_channel_id,
                provider_status=result.provider_status or record.provider_status,
                provider_payload=dict(result.provider_payload) or record.provider_payload,
                last_event_type=intent.event_type,
                updated_at=now,
            )
        )
    if intent.event_type in c.PAGE_EVENTS and prepared.group is not None:
        group = await uow.alert_groups.get(intent.group_id)
        if group is not None:
            changes = {"notified": True, "last_notification_at": now}
            # Guarded on `notified`, so only one delivery counts as the first notification.
            if await uow.alert_groups.update_where(group.id, {"notified": False}, changes) is not None:
                return True
            await uow.alert_groups.update_where(group.id, {}, changes)
    return False


def _describe(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    if not isinstance(error, (RetryableDeliveryError, PermanentDeliveryError)):
        message = f"{type(error).__name__}: {message}"
    return str(message)[:1000]
