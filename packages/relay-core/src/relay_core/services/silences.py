"""The ``silence_lifecycle`` job (SPEC S3.6): start scheduled silences, release ended ones."""

from __future__ import annotations

import datetime as dt

import attrs

from relay_core.domain import constants as c
from relay_core.domain import escalation
from relay_core.domain.matchers import MatchContext
from relay_core.domain.model import Alert, AlertGroup, SilenceApplication
from relay_core.domain.silences import reconcile_silences, silence_applies
from relay_core.ports.storage import UnitOfWork
from relay_core.services.common import OPEN_STATUSES, Writer, event, refresh_group
from relay_core.services.context import Context


def _context(child: Alert) -> MatchContext:
    return MatchContext(
        labels=child.labels,
        annotations=child.annotations,
        payload=child.payload,
        status=c.ALERT_FIRING,
        severity=child.severity,
        source=child.source,
        title=child.title,
        message=child.message,
        team_id=child.team_id,
        route_id=child.route_id,
    )


async def silence_lifecycle(ctx: Context, *, now: dt.datetime | None = None) -> tuple[int, int]:
    """One pass; returns (alerts silenced, alerts released)."""
    now = now or ctx.clock.now()
    async with ctx.uow_factory() as uow:
        writer = Writer(ctx, uow, now)
        applications = await uow.silence_applications.find(active=True)
        candidates = {
            s.id: s for s in await uow.silences.find(ends_at__gt=now, starts_at__lte=now, enabled=True)
        }
        for app in applications:
            if app.silence_id not in candidates:
                # Include ended, disabled and deleted silences that still hold alerts (get hides deleted).
                silence = await uow.silences.get(app.silence_id)
                if silence is not None:
                    candidates[silence.id] = silence
        plan = reconcile_silences(list(candidates.values()), applications, now=now)
        touched: dict[int, AlertGroup] = {}
        silenced = released = 0
        for silence in plan.started:
            await uow.silences.update(attrs.evolve(silence, reconciled_at=now))
            if not silence.apply_to_existing:
                continue
            for child in await uow.alerts.find(
                team_id=silence.team_id, status=c.ALERT_FIRING, group_open=True
            ):
                if silence_applies(silence, _context(child), now):
                    await uow.alerts.update(attrs.evolve(child, status=c.ALERT_SILENCED))
                    await uow.silence_applications.add(
                        SilenceApplication(
                            silence_id=silence.id,
                            alert_id=child.id,
                            group_id=child.group_id,
                            previous_status=c.ALERT_FIRING,
                            applied_at=now,
                        )
                    )
                    silenced += 1
                    touched.setdefault(child.group_id, await _group(uow, child.group_id))
        for release in plan.releases:
            app = release.application
            await uow.silence_applications.update(
                attrs.evolve(app, active=False, released_at=now, release_reason=release.reason)
            )
            muted = await uow.alerts.get(app.alert_id)
            if muted is not None and release.reactivate and muted.status == c.ALERT_SILENCED:
                await uow.alerts.update(attrs.evolve(muted, status=c.ALERT_FIRING))
                released += 1
                touched.setdefault(muted.group_id, await _group(uow, muted.group_id))
        for group in touched.values():
            await _settle(ctx, uow, writer, group, now)
        await uow.commit()
    if writer.intents:
        await ctx.dispatcher.enqueue([i.id for i in writer.intents if i.due_at <= now])
    return silenced, released


async def _group(uow: UnitOfWork, group_id: int) -> AlertGroup:
    group = await uow.alert_groups.get(group_id)
    assert group is not None
    return group


async def _settle(ctx: Context, uow: UnitOfWork, writer: Writer, group: AlertGroup, now: dt.datetime) -> None:
    """Recompute a group after silences changed its children (S2.14 silenced <-> firing)."""
    from relay_core.services.intake import start_paging

    if group.status not in OPEN_STATUSES:
        return
    children = await uow.alerts.find(group_id=group.id)
    before = group.status
    group = refresh_group(group, children)
    if before == c.GROUP_FIRING and group.firing_count == 0 and group.silenced_count > 0:
        group = escalation.clear_timers(
            attrs.evolve(
                group,
                status=c.GROUP_SILENCED,
                previous_status=before,
                lifecycle_version=group.lifecycle_version + 1,
            )
        )
        await writer.cancel_pages(group, "group_silenced")
        await writer.add_event(event(group, "silenced", "All alerts are silenced", now))
    elif before == c.GROUP_SILENCED and group.firing_count > 0:
        group = attrs.evolve(
            group,
            status=c.GROUP_FIRING,
            previous_status=before,
            lifecycle_version=group.lifecycle_version + 1,
        )
        await writer.add_event(event(group, "unsilenced", "Silence ended", now))
        route = await uow.routes.get(group.route_id)
        if route is not None:
            if not group.notified:
                group = await start_paging(
                    ctx,
                    uow,
                    writer,
                    group,
                    route,
                    seq=f"v{group.lifecycle_version}",
                    reason="unsilenced",
                    delay=False,
                )
            else:
                rot = await uow.rotations.get(group.rotation_id) if group.rotation_id else None
                interval = escalation.reminder_interval(rot.reminder_interval_seconds if rot else 0)
                group = escalation.arm_timers(group, first_page_due=now, interval=interval)
                group = await writer.update_intents(group, route.group_interval_seconds)
    await uow.alert_groups.update(group)
