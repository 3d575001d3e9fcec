"""Acknowledge and resolve (SPEC S2.14, S5.6), the scheduler tick (S5.4, S5.5, S5.11)."""

from __future__ import annotations

import datetime as dt

import attrs

from relay_core.domain import constants as c
from relay_core.domain import escalation, rotation
from relay_core.domain.errors import Conflict, NotFound
from relay_core.domain.model import AlertGroup, AuditLog
from relay_core.ports.storage import UnitOfWork
from relay_core.services.common import Writer, event, fan_out
from relay_core.services.context import Context
from relay_core.services.intake import resolve_group
from relay_core.services.results import ActionResult


async def acknowledge(
    ctx: Context,
    group_id: int,
    *,
    user_id: int | None,
    via: str = "api",
    comment: str | None = None,
) -> ActionResult:
    """Acknowledge a group; idempotent on an acknowledged group; 409 on a resolved one."""
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        writer = Writer(ctx, uow, now)
        result = await acknowledge_in(uow, writer, group_id, user_id=user_id, via=via, comment=comment)
        await uow.commit()
    await ctx.dispatcher.enqueue([i.id for i in writer.intents])
    return result


async def acknowledge_in(
    uow: UnitOfWork,
    writer: Writer,
    group_id: int,
    *,
    user_id: int | None,
    via: str,
    comment: str | None = None,
) -> ActionResult:
    now = writer.now
    group = await uow.alert_groups.get(group_id)
    if group is None:
        raise NotFound("alert group not found")
    if group.status == c.GROUP_RESOLVED:
        raise Conflict("alert group is resolved")
    if group.status == c.GROUP_ACKNOWLEDGED:
        return ActionResult(group_id=group.id, status=group.status, changed=False, result="ignored")
    group = attrs.evolve(
        group,
        status=c.GROUP_ACKNOWLEDGED,
        previous_status=group.status,
        acknowledged_by=user_id,
        acknowledged_at=now,
        lifecycle_version=group.lifecycle_version + 1,
    )
    group = escalation.clear_timers(group)
    await writer.cancel_pages(group, "group_acknowledged")
    data: dict[str, object] = {"via": via}
    if comment:
        data["comment"] = comment
    await writer.add_event(
        event(group, "acknowledged", f"Acknowledged via {via}", now, user_id=user_id, data=data)
    )
    await uow.audit.add(
        AuditLog(
            action="alert_group.ack",
            object_type="alert_group",
            object_id=group.id,
            user_id=user_id,
            team_id=group.team_id,
            message=f"acknowledged via {via}",
            data=data,
            created_at=now,
        )
    )
    await writer.status_updates(group, c.EV_ACKNOWLEDGED)
    await fan_out(writer, group, c.SUB_EVENT_ACKNOWLEDGED)
    group = await uow.alert_groups.update(group)
    return ActionResult(group_id=group.id, status=group.status, changed=True)


async def resolve(
    ctx: Context,
    group_id: int,
    *,
    user_id: int | None,
    via: str = "api",
    comment: str | None = None,
) -> ActionResult:
    """Resolve a group by a person; idempotent on a resolved group."""
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        writer = Writer(ctx, uow, now)
        result = await resolve_in(ctx, uow, writer, group_id, user_id=user_id, via=via, comment=comment)
        await uow.commit()
    await ctx.dispatcher.enqueue([i.id for i in writer.intents])
    return result


async def resolve_in(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    group_id: int,
    *,
    user_id: int | None,
    via: str,
    comment: str | None = None,
) -> ActionResult:
    group = await uow.alert_groups.get(group_id)
    if group is None:
        raise NotFound("alert group not found")
    if group.status == c.GROUP_RESOLVED:
        return ActionResult(group_id=group.id, status=group.status, changed=False, result="ignored")
    resolved_via = c.VIA_API if via == "api" else c.VIA_USER if via == "web" else c.VIA_CHANNEL
    group = await resolve_group(
        ctx,
        uow,
        writer,
        group,
        via=resolved_via,
        user_id=user_id,
        now=writer.now,
        event_message=f"Resolved via {via}" + (f": {comment}" if comment else ""),
    )
    await uow.audit.add(
        AuditLog(
            action="alert_group.resolve",
            object_type="alert_group",
            object_id=group.id,
            user_id=user_id,
            team_id=group.team_id,
            message=f"resolved via {via}",
            data={"via": via},
            created_at=writer.now,
        )
    )
    return ActionResult(group_id=group.id, status=group.status, changed=True)


async def due_actions(ctx: Context, *, now: dt.datetime | None = None) -> int:
    """One ``due_actions`` pass: reminders and team escalations of groups whose timer passed.

    Reads only due groups (index on ``next_action_at``). Every change is a conditional
    update on ``lifecycle_version`` and ``next_action_at``, and intents have unique keys,
    so two schedulers running this at once never double anything. Returns actions taken.
    """
    now = now or ctx.clock.now()
    taken = 0
    intents = []
    async with ctx.uow_factory() as uow:
        due = await uow.alert_groups.find(
            next_action_at__lte=now, order_by="next_action_at", limit=ctx.settings.scheduler_batch_size
        )
        await uow.commit()
    for group in due:
        async with ctx.uow_factory() as uow:
            writer = Writer(ctx, uow, now)
            kind = await _act(ctx, uow, writer, group, now)
            if kind is not None:
                await uow.commit()
                taken += 1
                intents.extend(writer.intents)
                if kind == "reminder":
                    ctx.metrics.reminder()
                elif kind == "escalation":
                    ctx.metrics.escalation(mode="team")
    if intents:
        await ctx.dispatcher.enqueue([i.id for i in intents])
    return taken


async def _act(
    ctx: Context, uow: UnitOfWork, writer: Writer, group: AlertGroup, now: dt.datetime
) -> str | None:
    """Take one due action; its kind (``reminder``, ``escalation``, ``cleared``) or None when
    another scheduler acted first."""
    team = await uow.teams.get(group.team_id)
    route = await uow.routes.get(group.route_id)
    rot = await uow.rotations.get(group.rotation_id) if group.rotation_id is not None else None
    interval = escalation.reminder_interval(rot.reminder_interval_seconds if rot and rot.enabled else 0)
    next_user = None
    if rot is not None:
        members = await uow.rotation_members.find(rotation_id=rot.id, active=True, order_by="position")
        next_user = rotation.next_oncall_user(members, group.assignee_id)
    action = escalation.due_action(
        group,
        now=now,
        interval=interval,
        escalation_enabled=bool(team and team.escalation_enabled),
        escalation_after_reminders=team.escalation_after_reminders if team else 2,
        next_user_id=next_user,
    )
    expect = {"lifecycle_version": group.lifecycle_version, "next_action_at": group.next_action_at}
    if action is None:
        # Nothing to do (e.g. reminders turned off): clear the stale timer, guarded.
        changes = {
            "next_reminder_at": None,
            "next_action_at": None,
            "lifecycle_version": group.lifecycle_version + 1,
        }
        cleared = await uow.alert_groups.update_where(group.id, expect, changes)
        return "cleared" if cleared is not None else None
    after = action.group
    changes = {
        f.name: getattr(after, f.name)
        for f in attrs.fields(AlertGroup)
        if getattr(after, f.name) != getattr(group, f.name)
    }
    if await uow.alert_groups.update_where(group.id, expect, changes) is None:
        return None  # another scheduler acted first
    channel_ids = route.channel_ids if route else ()
    if action.kind == "escalation":
        user = await uow.users.get(after.assignee_id) if after.assignee_id else None
        name = user.username if user else str(after.assignee_id)
        await writer.add_event(
            event(
                after,
                "escalated",
                f"Escalated to {name}",
                now,
                data={"escalation_level": after.escalation_level, "user_id": after.assignee_id},
            )
        )
        await writer.add_event(
            event(
                after,
                "assignee_changed",
                f"Assignee changed to {name}",
                now,
                data={"from": group.assignee_id, "to": after.assignee_id},
            )
        )
        await writer.page(
            after, channel_ids, c.EV_ESCALATION, after.escalation_level, due_at=now, reason="escalation"
        )
        await fan_out(writer, after, c.SUB_EVENT_ESCALATED)  # subscribers of `escalated` (S8.4)
    else:
        data: dict[str, object] = {"reminder_count": after.reminder_count}
        if action.escalation_skipped:
            data["escalation_skipped"] = action.escalation_skipped
        await writer.add_event(
            event(after, "reminder_sent", f"Reminder count: {after.reminder_count}", now, data=data)
        )
        await writer.page(
            after,
            channel_ids,
            c.EV_REMINDER,
            f"{after.escalation_level}.{after.reminder_count}",
            due_at=now,
            reason="reminder",
        )
    return action.kind
