"""Building blocks shared by the use cases: events, intents, group refresh, views."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from relay_core.domain import constants as c
from relay_core.domain.model import (
    Alert,
    AlertEvent,
    AlertGroup,
    Channel,
    Notification,
    NotificationIntent,
)
from relay_core.domain.severity import most_urgent
from relay_core.ports.storage import Repository, UnitOfWork
from relay_core.services.context import Context

E = TypeVar("E")

OPEN_STATUSES = (c.GROUP_FIRING, c.GROUP_ACKNOWLEDGED, c.GROUP_SILENCED)


def event(
    group: AlertGroup,
    event_type: str,
    message: str,
    now: dt.datetime,
    *,
    alert_id: int | None = None,
    user_id: int | None = None,
    data: Mapping[str, Any] | None = None,
) -> AlertEvent:
    return AlertEvent(
        group_id=group.id,
        alert_id=alert_id,
        event_type=event_type,
        message=message,
        user_id=user_id,
        data=dict(data or {}),
        created_at=now,
    )


def refresh_group(group: AlertGroup, children: Sequence[Alert]) -> AlertGroup:
    """Counters, severity and first-child title of ``group`` from its children."""
    firing = [a for a in children if a.status == c.ALERT_FIRING]
    silenced = [a for a in children if a.status == c.ALERT_SILENCED]
    resolved = [a for a in children if a.status == c.ALERT_RESOLVED]
    open_children = firing + silenced
    severity = most_urgent(a.severity for a in open_children) or group.severity
    first = min(children, key=lambda a: a.id) if children else None
    return attrs.evolve(
        group,
        alert_count=len(children),
        firing_count=len(firing),
        silenced_count=len(silenced),
        resolved_count=len(resolved),
        severity=severity,
        title=first.title if first else group.title,
        message=first.message if first else group.message,
    )


def recipient_key(user_id: int | None) -> str:
    return f"user:{user_id}" if user_id is not None else "channel"


def idempotency_key(group_id: int, channel_id: int, rkey: str, event_type: str, seq: str | int) -> str:
    return f"{group_id}:{channel_id}:{rkey}:{event_type}:{seq}"


PRIORITY_BY_EVENT = {
    c.EV_NOTIFICATION: c.PRIORITY_FIRST_PAGE,
    c.EV_ESCALATION: c.PRIORITY_ESCALATION,
    c.EV_REMINDER: c.PRIORITY_REMINDER,
    c.EV_UPDATE: c.PRIORITY_UPDATE,
    c.EV_ACKNOWLEDGED: c.PRIORITY_UPDATE,
    c.EV_RESOLVED: c.PRIORITY_UPDATE,
    c.EV_TEST: c.PRIORITY_FIRST_PAGE,
}


class Writer:
    """Collects what one command writes, so the shell can enqueue intents after commit."""

    def __init__(
        self, ctx: Context, uow: UnitOfWork, now: dt.datetime, *, batch_inserts: bool = False
    ) -> None:
        """``batch_inserts``: rows given to :meth:`insert_later` (timeline events, traces) are
        held and written by :meth:`flush`, one multi-row insert per table; the caller must
        ``flush`` before commit. Only for commands that never read those rows back."""
        self.ctx = ctx
        self.uow = uow
        self.now = now
        self.intents: list[NotificationIntent] = []
        self._channels: dict[int, Channel | None] = {}
        self._batched: list[tuple[Repository[Any], list[Any]]] | None = [] if batch_inserts else None

    async def insert_later(self, repo: Repository[E], entity: E) -> None:
        """Insert ``entity`` into ``repo`` now, or at :meth:`flush` when batching."""
        if self._batched is None:
            await repo.add(entity)
            return
        for held, entities in self._batched:
            if held is repo:
                entities.append(entity)
                return
        self._batched.append((repo, [entity]))

    async def flush(self) -> None:
        """Write the rows held by :meth:`insert_later`, in order, one round trip per table."""
        if not self._batched:
            return
        batched, self._batched = self._batched, []
        for repo, entities in batched:
            bulk = getattr(repo, "add_many", None)  # optional adapter capability
            if bulk is not None:
                await bulk(entities)
            else:
                for entity in entities:
                    await repo.add(entity)

    async def add_event(self, ev: AlertEvent) -> None:
        await self.insert_later(self.uow.events, ev)

    async def channel(self, channel_id: int) -> Channel | None:
        if channel_id not in self._channels:
            self._channels[channel_id] = await self.uow.channels.get(channel_id)
        return self._channels[channel_id]

    def person_addressed(self, channel: Channel) -> bool:
        sender = self.ctx.senders.get(channel.channel_type)
        if sender is None:
            return channel.channel_type in ("voice_call", "sms")
        return bool(sender.capabilities.person_addressed)

    def max_attempts(self, channel: Channel) -> int:
        if channel.channel_type in ("voice_call", "sms"):
            return self.ctx.settings.voice_max_attempts
        return self.ctx.settings.max_attempts

    async def add_intent(self, intent: NotificationIntent) -> NotificationIntent | None:
        stored = await self.uow.intents.add_unique(intent)
        if stored is not None:
            self.intents.append(stored)
        return stored

    async def page(
        self,
        group: AlertGroup,
        channel_ids: Iterable[int],
        event_type: str,
        seq: str | int,
        *,
        due_at: dt.datetime,
        reason: str = "",
        recipient_user_id: int | None = None,
    ) -> list[str]:
        """Write page intents (notification, reminder, escalation) for a group's route channels.

        Returns the names of channels that got an intent; skips are timeline events.
        """
        scheduled: list[str] = []
        for channel_id in channel_ids:
            channel = await self.channel(channel_id)
            if channel is None:
                continue
            skip = None
            if not channel.enabled:
                skip = "channel_disabled"
            elif channel.notify_on_severities and group.severity not in channel.notify_on_severities:
                skip = "severity_filtered"
            person = self.person_addressed(channel)
            user_id = (
                (recipient_user_id if recipient_user_id is not None else group.assignee_id)
                if person
                else None
            )
            if skip is None and person and user_id is None:
                skip = "no_assignee"
            if skip is not None:
                message = f"{event_type} skipped on {channel.name}: {skip}"
                if skip == "severity_filtered":
                    allowed = ", ".join(channel.notify_on_severities)
                    message = (
                        f"{event_type} skipped on {channel.name}: severity {group.severity} "
                        f"not in notify_on_severities [{allowed}]"
                    )
                await self.add_event(
                    event(
                        group,
                        f"{event_type}_skipped",
                        message,
                        self.now,
                        data={"channel_id": channel.id, "reason": skip},
                    )
                )
                continue
            rkey = recipient_key(user_id)
            await self.add_intent(
                NotificationIntent(
                    idempotency_key=idempotency_key(group.id, channel.id, rkey, event_type, seq),
                    group_id=group.id,
                    channel_id=channel.id,
                    recipient_user_id=user_id,
                    recipient_key=rkey,
                    event_type=event_type,
                    reason=reason,
                    priority=PRIORITY_BY_EVENT.get(event_type, c.PRIORITY_UPDATE),
                    due_at=due_at,
                    expires_at=due_at + dt.timedelta(seconds=self.ctx.settings.max_age_seconds),
                    max_attempts=self.max_attempts(channel),
                    created_at=self.now,
                )
            )
            scheduled.append(channel.name)
        return scheduled

    async def status_updates(self, group: AlertGroup, event_type: str) -> int:
        """``acknowledged``/``resolved`` intents for every earlier delivery of the group (S5.6)."""
        count = 0
        records: list[Notification] = await self.uow.notifications.find(group_id=group.id)
        for record in records:
            if record.recipient_key.startswith("sub"):
                continue  # subscribers hear about status changes through their own subscription events
            channel = await self.channel(record.channel_id)
            if channel is None:
                continue
            if not channel.enabled:
                continue
            if channel.channel_type == "voice_call":
                continue  # nothing to edit on a phone call
            send_updates = channel.config.get("send_status_updates")
            if send_updates is None:
                send_updates = channel.channel_type != "sms"
            sender = self.ctx.senders.get(channel.channel_type)
            editable = bool(sender and sender.capabilities.supports_update)
            if not editable and not send_updates:
                continue
            rkey = record.recipient_key
            stored = await self.add_intent(
                NotificationIntent(
                    idempotency_key=idempotency_key(
                        group.id, channel.id, rkey, event_type, group.lifecycle_version
                    ),
                    group_id=group.id,
                    channel_id=channel.id,
                    recipient_user_id=record.recipient_user_id,
                    recipient_key=rkey,
                    event_type=event_type,
                    priority=c.PRIORITY_UPDATE,
                    due_at=self.now,
                    expires_at=self.now + dt.timedelta(seconds=self.ctx.settings.max_age_seconds),
                    max_attempts=self.max_attempts(channel),
                    depends_on_intent_id=record.first_intent_id,
                    created_at=self.now,
                )
            )
            count += stored is not None
        return count

    async def cancel_pages(self, group: AlertGroup, reason: str) -> int:
        """Cancel pending page intents of a group (ACK, resolve, silence)."""
        pending = await self.uow.intents.find(
            group_id=group.id, status=c.INTENT_PENDING, event_type__in=tuple(c.PAGE_EVENTS)
        )
        for intent in pending:
            await self.uow.intents.update_where(
                intent.id,
                {"status": c.INTENT_PENDING},
                {"status": c.INTENT_CANCELLED, "last_error": reason, "finished_at": self.now},
            )
        return len(pending)

    async def update_intents(self, group: AlertGroup, route_group_interval: int | None) -> AlertGroup:
        """One pending ``update`` per delivered channel of a notified group (S5.3)."""
        if not group.notified or group.status != c.GROUP_FIRING:
            return group
        records = [
            r
            for r in await self.uow.notifications.find(group_id=group.id)
            if not r.recipient_key.startswith("sub")
        ]
        if not records:
            return group
        interval = route_group_interval or self.ctx.settings.group_interval_seconds
        last = group.last_notification_at or self.now
        due = max(self.now, last + dt.timedelta(seconds=interval))
        group = attrs.evolve(group, update_seq=group.update_seq + 1)
        for record in records:
            pending = await self.uow.intents.first(
                group_id=group.id,
                channel_id=record.channel_id,
                recipient_key=record.recipient_key,
                event_type=c.EV_UPDATE,
                status=c.INTENT_PENDING,
            )
            if pending is not None:
                continue
            channel = await self.channel(record.channel_id)
            if channel is None or not channel.enabled or channel.channel_type == "voice_call":
                continue
            await self.add_intent(
                NotificationIntent(
                    idempotency_key=idempotency_key(
                        group.id, channel.id, record.recipient_key, c.EV_UPDATE, group.update_seq
                    ),
                    group_id=group.id,
                    channel_id=channel.id,
                    recipient_user_id=record.recipient_user_id,
                    recipient_key=record.recipient_key,
                    event_type=c.EV_UPDATE,
                    priority=c.PRIORITY_UPDATE,
                    due_at=due,
                    expires_at=due + dt.timedelta(seconds=self.ctx.settings.max_age_seconds),
                    max_attempts=self.max_attempts(channel),
                    created_at=self.now,
                )
            )
        return group


async def fan_out(writer: Writer, group: AlertGroup, sub_event: str) -> list[tuple[int, str | None]]:
    """Subscription intents for a group event, besides the on-call path (SPEC S8.5).

    Returns ``(subscription_id, skip_reason)`` per subscription of the group's category; see
    :func:`relay_core.services.subscriptions.fan_out_subscriptions`.
    """
    from relay_core.services.subscriptions import fan_out_subscriptions

    return await fan_out_subscriptions(writer, group, sub_event)
