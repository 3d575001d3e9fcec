"""The intake use case (SPEC S2.11): one transaction for a whole request, one trace per item."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from relay_core.domain import constants as c
from relay_core.domain import escalation, rotation
from relay_core.domain.categories import BUILTIN_CATEGORY_DEFINITIONS, assign_category
from relay_core.domain.grouping import build_group_key
from relay_core.domain.intake import ItemError, apply_field_limits, clamp_dedup_key
from relay_core.domain.matchers import MatchContext
from relay_core.domain.model import (
    Alert,
    AlertGroup,
    Category,
    ExplainTrace,
    Group,
    NormalizedAlert,
    Route,
    Silence,
    SilenceApplication,
    Team,
    TraceStep,
    User,
)
from relay_core.domain.routing import NO_HINT, NoHint, RouteDecision, select_route
from relay_core.domain.silences import matching_silences
from relay_core.ports.storage import UnitOfWork
from relay_core.services.common import OPEN_STATUSES, Writer, event, fan_out, refresh_group
from relay_core.services.context import Context
from relay_core.services.results import IntakeAuth, ItemResult


class _Trace:
    def __init__(self, level: str) -> None:
        self.level = level
        self.steps: list[TraceStep] = []

    def add(
        self,
        stage: str,
        code: str,
        title: str = "",
        *,
        status: str = "ok",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.steps.append(
            TraceStep(
                position=len(self.steps),
                stage=stage,
                code=code,
                status=status,
                title=title,
                data=(data or {}) if self.level == c.TRACE_FULL else {},
            )
        )

    def extend(self, steps: Sequence[TraceStep]) -> None:
        for step in steps:
            self.steps.append(
                attrs.evolve(
                    step,
                    position=len(self.steps),
                    data=step.data if self.level == c.TRACE_FULL else {},
                )
            )


class _RequestCache:
    """Reads shared by the items of one request."""

    def __init__(self, uow: UnitOfWork, items: Sequence[NormalizedAlert | ItemError] = ()) -> None:
        self.uow = uow
        self.teams: dict[int, Team | None] = {}
        self.groups: dict[int, Group | None] = {}
        self.routes: dict[str, list[Route]] = {}
        self.categories: list[Category] | None = None
        self.silences: dict[int, list[Silence]] = {}
        self.users: dict[int, User | None] = {}
        # Dedup lookups of a multi-alert request are fetched for all its dedup keys at once.
        alerts = [i for i in items if isinstance(i, NormalizedAlert)]
        self._dedup_keys = (
            {(a.source, clamp_dedup_key(a.dedup_key)) for a in alerts} if len(alerts) > 1 else set()
        )
        self._dedup: dict[tuple[int, str], tuple[dict[str, Alert], dict[str, Alert]]] = {}
        self._seen: set[tuple[int, str, str]] = set()
        self.dedup_snapshot_valid = True
        """False once an item changed children other than its own (resolve or reopen of a group):
        the snapshot may be stale for other keys, so later items query one by one."""

    async def team(self, team_id: int) -> Team | None:
        if team_id not in self.teams:
            self.teams[team_id] = await self.uow.teams.get(team_id)
        return self.teams[team_id]

    async def group(self, group_id: int) -> Group | None:
        if group_id not in self.groups:
            self.groups[group_id] = await self.uow.groups.get(group_id)
        return self.groups[group_id]

    async def user(self, user_id: int | None) -> User | None:
        if user_id is None:
            return None
        if user_id not in self.users:
            self.users[user_id] = await self.uow.users.get(user_id)
        return self.users[user_id]

    async def routes_for(self, source: str) -> list[Route]:
        if source not in self.routes:
            self.routes[source] = await self.uow.routes.find(source=source, enabled=True)
        return self.routes[source]

    async def all_categories(self) -> list[Category]:
        if self.categories is None:
            self.categories = await ensure_builtin_categories(self.uow)
        return self.categories

    async def team_silences(self, team_id: int) -> list[Silence]:
        if team_id not in self.silences:
            self.silences[team_id] = await self.uow.silences.find(team_id=team_id, enabled=True)
        return self.silences[team_id]

    async def dedup(
        self, team_id: int, source: str, dedup_key: str, firing: bool, since: dt.datetime
    ) -> tuple[Alert | None, Alert | None]:
        """The open child with this identity, else (for a firing signal) the child resolved since
        ``since`` that a firing signal reopens (S2.12).

        Answered from one snapshot of every dedup key of the request while that is exact: the
        identity was not handled earlier in this request (its rows may have changed since), and
        no earlier item resolved or reopened a group (which changes its siblings' rows).
        """
        ident = (team_id, source, dedup_key)
        usable = (
            self.dedup_snapshot_valid and (source, dedup_key) in self._dedup_keys and ident not in self._seen
        )
        self._seen.add(ident)
        if usable:
            snapshot = self._dedup.get((team_id, source))
            if snapshot is None:
                snapshot = self._dedup[(team_id, source)] = await self._snapshot(team_id, source, since)
            open_child = snapshot[0].get(dedup_key)
            return open_child, (snapshot[1].get(dedup_key) if open_child is None and firing else None)
        child = await self.uow.alerts.first(
            team_id=team_id, source=source, dedup_key=dedup_key, group_open=True
        )
        if child is not None or not firing:
            return child, None
        reopen = await self.uow.alerts.first(
            team_id=team_id,
            source=source,
            dedup_key=dedup_key,
            group_open=False,
            resolved_at__gte=since,
            order_by="-resolved_at",
        )
        return None, reopen

    async def _snapshot(
        self, team_id: int, source: str, since: dt.datetime
    ) -> tuple[dict[str, Alert], dict[str, Alert]]:
        keys = sorted(k for s, k in self._dedup_keys if s == source)
        open_children: dict[str, Alert] = {}
        for row in await self.uow.alerts.find(
            team_id=team_id, source=source, dedup_key__in=keys, group_open=True, order_by="id"
        ):
            open_children.setdefault(row.dedup_key, row)  # first by id, as ``first`` would
        resolved: dict[str, Alert] = {}
        for row in await self.uow.alerts.find(
            team_id=team_id,
            source=source,
            dedup_key__in=keys,
            group_open=False,
            resolved_at__gte=since,
            order_by="-resolved_at",
        ):
            resolved.setdefault(row.dedup_key, row)
        return open_children, resolved


async def ensure_builtin_categories(uow: UnitOfWork) -> list[Category]:
    """Every category, creating the three built-ins on first use (SPEC S8.1)."""
    existing = await uow.categories.find(order_by="position")
    have = {cat.slug for cat in existing if cat.group_id is None}
    for definition in BUILTIN_CATEGORY_DEFINITIONS:
        if definition.slug not in have:
            existing.append(await uow.categories.add(definition.to_category()))
    return existing


async def ingest(
    ctx: Context,
    source: str,
    items: Sequence[NormalizedAlert | ItemError],
    auth: IntakeAuth,
) -> list[ItemResult]:
    """Process every item of one intake request in one transaction; intents enqueued after commit."""
    now = ctx.clock.now()
    results: list[ItemResult] = []
    async with ctx.uow_factory() as uow:
        # Events and traces are never read back within the request: one insert per table.
        writer = Writer(ctx, uow, now, batch_inserts=True)
        cache = _RequestCache(uow, items)
        forced: Route | None = None
        if auth.route_id is not None:
            forced = await uow.routes.get(auth.route_id)
        for item in items:
            if isinstance(item, ItemError):
                results.append(await _failed_item(ctx, writer, source, item, now))
                continue
            results.append(await _ingest_one(ctx, uow, writer, cache, item, auth, forced, now))
        await writer.flush()
        await uow.commit()
    due_now = [i.id for i in writer.intents if i.due_at <= now]
    if due_now:
        await ctx.dispatcher.enqueue(due_now)
    return results


async def _failed_item(
    ctx: Context, writer: Writer, source: str, item: ItemError, now: dt.datetime
) -> ItemResult:
    trace = _Trace(ctx.settings.explain_trace_level)
    trace.add("intake", "alert_received", "Alert received")
    trace.add("intake", "payload_normalized", item.message, status="failed")
    trace_id = await _store_trace(
        ctx,
        writer,
        trace,
        source=source,
        dedup_key=None,
        outcome=c.OUTCOME_FAILED,
        status=c.PROCESSING_FAILED,
        reason=item.message,
        now=now,
    )
    return ItemResult(
        outcome=c.OUTCOME_FAILED,
        processing_status=c.PROCESSING_FAILED,
        reason=item.message,
        error=item.code,
        trace_id=trace_id,
    )


async def _store_trace(
    ctx: Context,
    writer: Writer,
    trace: _Trace,
    *,
    source: str,
    dedup_key: str | None,
    outcome: str,
    status: str,
    now: dt.datetime,
    reason: str | None = None,
    group_id: int | None = None,
    alert_id: int | None = None,
    route_id: int | None = None,
    team_id: int | None = None,
    summary: dict[str, Any] | None = None,
) -> str | None:
    if ctx.settings.explain_trace_level == c.TRACE_DISABLED:
        return None
    trace_id = str(uuid.uuid4())
    await writer.insert_later(
        writer.uow.traces,
        ExplainTrace(
            trace_id=trace_id,
            group_id=group_id,
            alert_id=alert_id,
            route_id=route_id,
            team_id=team_id,
            level=ctx.settings.explain_trace_level,
            source=source,
            dedup_key=dedup_key,
            status=status,
            outcome=outcome,
            reason=reason,
            input_summary=summary or {},
            steps=tuple(trace.steps),
            started_at=now,
            finished_at=now,
        ),
    )
    return trace_id


async def _ingest_one(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    cache: _RequestCache,
    alert: NormalizedAlert,
    auth: IntakeAuth,
    forced: Route | None,
    now: dt.datetime,
) -> ItemResult:
    trace = _Trace(ctx.settings.explain_trace_level)
    trace.add(
        "intake", "alert_received", "Alert received", data={"source": alert.source, "status": alert.status}
    )
    alert, labels_truncated = apply_field_limits(alert)
    trace.add(
        "intake",
        "payload_normalized",
        "Payload normalized",
        data={"dedup_key": alert.dedup_key, "severity": alert.severity},
    )
    if labels_truncated:
        trace.add("intake", "labels_truncated", "Labels beyond the limits were dropped or shortened")
    summary = {"title": alert.title, "status": alert.status, "severity": alert.severity}

    # 2. Route selection (S3.3).
    decision = await _route(ctx, uow, cache, alert, auth, forced, len(trace.steps))
    trace.extend(decision.steps)
    route = decision.route
    if route is None:
        trace_id = await _store_trace(
            ctx,
            writer,
            trace,
            source=alert.source,
            dedup_key=alert.dedup_key,
            outcome=c.OUTCOME_ROUTING_FAILED,
            status=c.PROCESSING_FAILED,
            reason=decision.routing_error,
            now=now,
            summary=summary,
            team_id=forced.team_id if forced else None,
            route_id=forced.id if forced else None,
        )
        return ItemResult(
            outcome=c.OUTCOME_ROUTING_FAILED,
            processing_status=c.PROCESSING_FAILED,
            reason=decision.routing_error,
            routing_error=decision.routing_error,
            trace_id=trace_id,
            dedup_key=alert.dedup_key,
        )
    team = decision.team or await cache.team(route.team_id)
    assert team is not None  # select_route only returns routes of active teams

    # 3. Category (S8.2).
    categories = await cache.all_categories()
    visible = [cat for cat in categories if cat.group_id in (None, team.group_id)]
    rules = await uow.category_rules.find(group_id=team.group_id, enabled=True, order_by="position")
    ctx_match = MatchContext.for_alert(alert, team=team, route=route)
    category, step = assign_category(
        alert.labels,
        visible_categories=visible,
        rules=rules,
        route_category_id=route.category_id,
        ctx=ctx_match,
    )
    trace.extend((step,))
    ctx_match = MatchContext.for_alert(alert, team=team, route=route, category=category)

    # 4. Dedup (S2.12).
    since = now - dt.timedelta(seconds=ctx.settings.dedup_window_seconds)
    child, reopen_child = await cache.dedup(
        team.id, alert.source, alert.dedup_key, alert.status == c.ALERT_FIRING, since
    )

    base: dict[str, Any] = {
        "team_id": team.id,
        "team_slug": team.slug,
        "route_id": route.id,
        "rotation_id": route.rotation_id,
        "category": category.slug,
        "dedup_key": alert.dedup_key,
    }

    if child is None and reopen_child is None and (alert.status == c.ALERT_RESOLVED or alert.update_only):
        code = (
            "orphan_resolve_ignored" if alert.status == c.ALERT_RESOLVED else "update_without_alert_ignored"
        )
        reason = (
            "no open alert matches this resolve"
            if alert.status == c.ALERT_RESOLVED
            else ("update for an alert that does not exist")
        )
        trace.add("dedup", code, reason)
        trace_id = await _store_trace(
            ctx,
            writer,
            trace,
            source=alert.source,
            dedup_key=alert.dedup_key,
            outcome=c.OUTCOME_IGNORED,
            status=c.PROCESSING_STOPPED,
            reason=reason,
            now=now,
            route_id=route.id,
            team_id=team.id,
            summary=summary,
        )
        return ItemResult(
            outcome=c.OUTCOME_IGNORED,
            processing_status=c.PROCESSING_STOPPED,
            reason=reason,
            trace_id=trace_id,
            **base,
        )

    if child is not None or reopen_child is not None:
        existing = child or reopen_child
        assert existing is not None
        trace.add(
            "dedup",
            "dedup_existing_alert" if child is not None else "dedup_reopened_alert",
            "Matched an existing alert",
            data={"alert_id": existing.id},
        )
        group, new_child, outcome = await _apply_to_existing(
            ctx, uow, writer, cache, trace, alert, existing, route, team, ctx_match, now
        )
    else:
        trace.add("dedup", "dedup_new_alert", "New alert")
        group, new_child, outcome = await _new_child(
            ctx, uow, writer, cache, trace, alert, route, team, category, ctx_match, now
        )

    assignee = await cache.user(group.assignee_id)
    trace_id = await _store_trace(
        ctx,
        writer,
        trace,
        source=alert.source,
        dedup_key=alert.dedup_key,
        outcome=outcome,
        status=c.PROCESSING_COMPLETED,
        now=now,
        group_id=group.id,
        alert_id=new_child.id,
        route_id=route.id,
        team_id=team.id,
        summary=summary,
    )
    return ItemResult(
        outcome=outcome,
        processing_status=c.PROCESSING_COMPLETED,
        status=group.status,
        group_id=group.id,
        alert_id=new_child.id,
        trace_id=trace_id,
        assignee=assignee.username if assignee else None,
        alert_url=f"{ctx.settings.public_base_url.rstrip('/')}/alerts/{group.id}",
        **{**base, "rotation_id": group.rotation_id},
    )


async def _route(
    ctx: Context,
    uow: UnitOfWork,
    cache: _RequestCache,
    alert: NormalizedAlert,
    auth: IntakeAuth,
    forced: Route | None,
    position: int,
) -> RouteDecision:
    teams: dict[int, Team] = {}
    groups: dict[int, Group] = {}

    async def load_team(team_id: int) -> None:
        team = await cache.team(team_id)
        if team is not None:
            teams[team.id] = team
            if team.group_id not in groups:
                grp = await cache.group(team.group_id)
                if grp is not None:
                    groups[grp.id] = grp

    hint: Team | NoHint | None = NO_HINT
    candidates: list[Route] = []
    if forced is not None:
        await load_team(forced.team_id)
    else:
        candidates = list(await cache.routes_for(alert.source))
        for route in candidates:
            await load_team(route.team_id)
        if alert.team_slug and auth.team_id is None:
            found = await uow.teams.first(slug=alert.team_slug)
            hint = found
            if found is not None:
                await load_team(found.id)
    return select_route(
        alert,
        forced_route=forced,
        candidates=candidates,
        team_lookup=teams,
        group_lookup=groups,
        scope_team_id=auth.team_id,
        hint_team=hint,
        first_position=position,
    )


async def _silence_child(
    uow: UnitOfWork,
    cache: _RequestCache,
    trace: _Trace,
    child: Alert,
    team: Team,
    ctx_match: MatchContext,
    now: dt.datetime,
) -> Alert:
    """Mute a firing child that matches an active silence of its team (S3.6)."""
    silences = await _active_silences(cache, trace, team, ctx_match, now)
    if not silences:
        return child
    muted = await uow.alerts.update(attrs.evolve(child, status=c.ALERT_SILENCED))
    for silence in silences:
        await uow.silence_applications.add(
            SilenceApplication(
                silence_id=silence.id,
                alert_id=child.id,
                group_id=child.group_id,
                previous_status=c.ALERT_FIRING,
                applied_at=now,
            )
        )
    return muted


async def _active_silences(
    cache: _RequestCache, trace: _Trace, team: Team, ctx_match: MatchContext, now: dt.datetime
) -> list[Silence]:
    """The team's active silences matching the alert, with the trace step saying so (S3.6)."""
    silences = matching_silences(await cache.team_silences(team.id), ctx_match, now)
    if silences:
        trace.add("silence", "silence_matched", "Silenced", data={"silence_ids": [s.id for s in silences]})
    else:
        trace.add("silence", "silence_none", "No active silence matched")
    return list(silences)


def _child_from(
    alert: NormalizedAlert, *, group_id: int, team_id: int, route_id: int, now: dt.datetime
) -> Alert:
    return Alert(
        group_id=group_id,
        team_id=team_id,
        route_id=route_id,
        source=alert.source,
        external_id=alert.external_id,
        dedup_key=alert.dedup_key,
        title=alert.title,
        message=alert.message,
        severity=alert.severity,
        original_severity=alert.original_severity,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        payload=dict(alert.payload),
        status=c.ALERT_FIRING,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        first_seen_at=now,
        last_seen_at=now,
        group_open=True,
    )


async def _assignee(uow: UnitOfWork, trace: _Trace, rotation_id: int | None, at: dt.datetime) -> int | None:
    if rotation_id is None:
        trace.add("assignment", "assignee_none", "Route has no rotation", data={"reason": "no_rotation"})
        return None
    rot = await uow.rotations.get(rotation_id)
    if rot is None:
        trace.add("assignment", "assignee_none", "Rotation not found", data={"reason": "rotation_missing"})
        return None
    members = await uow.rotation_members.find(rotation_id=rot.id, active=True, order_by="position")
    # Overrides overlapping the minute around ``at`` (a query that stays the same for a minute, so
    # storage adapters can cache it across requests), narrowed to those covering ``at`` itself.
    minute = at.replace(second=0, microsecond=0)
    window = await uow.overrides.find(
        rotation_id=rot.id, starts_at__lte=minute + dt.timedelta(minutes=1), ends_at__gt=minute
    )
    overrides = [o for o in window if o.starts_at <= at < o.ends_at]
    oncall = rotation.oncall_at(rot, members, overrides, at)
    if oncall is None:
        trace.add("assignment", "assignee_none", "Nobody is on call", data={"reason": "nobody_on_call"})
        return None
    trace.add(
        "assignment",
        "assignee_resolved",
        f"On call: user {oncall.user_id} ({oncall.source})",
        data={
            "rotation_id": rot.id,
            "user_id": oncall.user_id,
            "source": oncall.source,
            "override_id": oncall.override_id,
        },
    )
    return oncall.user_id


async def _rotation_interval(uow: UnitOfWork, rotation_id: int | None) -> int:
    if rotation_id is None:
        return 0
    rot = await uow.rotations.get(rotation_id)
    return escalation.reminder_interval(rot.reminder_interval_seconds if rot and rot.enabled else 0)


async def start_paging(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    group: AlertGroup,
    route: Route,
    *,
    seq: str | int,
    reason: str,
    trace: _Trace | None = None,
    delay: bool = True,
) -> AlertGroup:
    """A group (re)starts firing: first-page intents and armed reminder timers (S5.3, S5.4)."""
    due = _first_page_due(ctx, writer, route, delay=delay)
    await _page(writer, group, route, seq=seq, reason=reason, due=due, trace=trace)
    interval = await _rotation_interval(uow, group.rotation_id)
    return escalation.arm_timers(group, first_page_due=due, interval=interval)


def _first_page_due(ctx: Context, writer: Writer, route: Route, *, delay: bool) -> dt.datetime:
    wait = (
        escalation.first_notification_wait(
            group_wait_seconds=route.group_wait_seconds,
            group_by=tuple(route.group_by),
            default_group_wait=ctx.settings.group_wait_seconds,
        )
        if delay
        else 0
    )
    return writer.now + dt.timedelta(seconds=wait)


async def _page(
    writer: Writer,
    group: AlertGroup,
    route: Route,
    *,
    seq: str | int,
    reason: str,
    due: dt.datetime,
    trace: _Trace | None,
) -> None:
    scheduled = await writer.page(group, route.channel_ids, c.EV_NOTIFICATION, seq, due_at=due, reason=reason)
    if trace is not None:
        if scheduled:
            trace.add(
                "notification",
                "notification_scheduled",
                "Notification scheduled",
                data={"channels": scheduled, "due_at": due.isoformat()},
            )
        else:
            trace.add(
                "notification",
                "notification_not_needed",
                "No channel accepted the notification",
                data={"route_channels": list(route.channel_ids)},
            )


async def _new_child(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    cache: _RequestCache,
    trace: _Trace,
    alert: NormalizedAlert,
    route: Route,
    team: Team,
    category: Category,
    ctx_match: MatchContext,
    now: dt.datetime,
) -> tuple[AlertGroup, Alert, str]:
    key, key_hash = build_group_key(
        alert,
        team_id=team.id,
        team_slug=team.slug,
        route_id=route.id,
        group_by=tuple(route.group_by),
        category=category.slug,
    )
    trace.add("grouping", "group_key_built", "Group key built", data={"group_key": key})
    group = await uow.alert_groups.first(team_id=team.id, group_key_hash=key_hash, status__in=OPEN_STATUSES)
    if group is None:
        return await _new_group(
            ctx, uow, writer, cache, trace, alert, route, team, category, ctx_match, key, key_hash, now
        )
    trace.add("grouping", "group_existing", "Joined an open group", data={"group_id": group.id})
    child = await uow.alerts.add(
        _child_from(alert, group_id=group.id, team_id=team.id, route_id=route.id, now=now)
    )
    child = await _silence_child(uow, cache, trace, child, team, ctx_match, now)
    children = await uow.alerts.find(group_id=group.id)
    previous = group.status
    group = refresh_group(attrs.evolve(group, last_seen_at=now), children)
    common = {k: v for k, v in group.common_labels.items() if child.labels.get(k) == v}
    group = attrs.evolve(group, common_labels=common)
    await writer.add_event(event(group, "alert_added", f"Alert added: {child.title}", now, alert_id=child.id))
    if child.status == c.ALERT_FIRING:
        group = await _on_new_firing(ctx, uow, writer, trace, group, previous, route, now)
    group = await uow.alert_groups.update(group)
    return group, child, c.OUTCOME_ADDED


async def _new_group(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    cache: _RequestCache,
    trace: _Trace,
    alert: NormalizedAlert,
    route: Route,
    team: Team,
    category: Category,
    ctx_match: MatchContext,
    key: str,
    key_hash: str,
    now: dt.datetime,
) -> tuple[AlertGroup, Alert, str]:
    """A new group with its first child (S2.13, S2.14).

    The group's final state (counters, severity, status, armed timers) is known before
    anything is written, so the group costs one INSERT and no UPDATE; the child, silence
    applications, events and intents follow once its id is known.
    """
    trace.add("grouping", "group_created", "New alert group")
    assignee_id = await _assignee(uow, trace, route.rotation_id, now)
    silences = await _active_silences(cache, trace, team, ctx_match, now)
    child = _child_from(alert, group_id=0, team_id=team.id, route_id=route.id, now=now)
    if silences:
        child = attrs.evolve(child, status=c.ALERT_SILENCED)
    group = AlertGroup(
        team_id=team.id,
        route_id=route.id,
        rotation_id=route.rotation_id,
        assignee_id=assignee_id,
        category_id=category.id,
        source=alert.source,
        group_key=key,
        group_key_hash=key_hash,
        title=alert.title,
        message=alert.message,
        severity=alert.severity,
        status=c.GROUP_FIRING,
        common_labels=dict(alert.labels),
        event_link=alert.event_link,
        first_seen_at=now,
        last_seen_at=now,
        test=alert.labels.get("relay_test") == "true",
    )
    group = refresh_group(group, [child])
    common = {k: v for k, v in group.common_labels.items() if child.labels.get(k) == v}
    group = attrs.evolve(group, common_labels=common)
    due: dt.datetime | None = None
    if silences:
        group = attrs.evolve(group, status=c.GROUP_SILENCED, previous_status=c.GROUP_FIRING)
    else:
        due = _first_page_due(ctx, writer, route, delay=True)
        interval = await _rotation_interval(uow, group.rotation_id)
        group = escalation.arm_timers(group, first_page_due=due, interval=interval)
    group = await uow.alert_groups.add(group)
    child = await uow.alerts.add(attrs.evolve(child, group_id=group.id))
    for silence in silences:
        await uow.silence_applications.add(
            SilenceApplication(
                silence_id=silence.id,
                alert_id=child.id,
                group_id=group.id,
                previous_status=c.ALERT_FIRING,
                applied_at=now,
            )
        )
    await writer.add_event(
        event(group, "created", f"Alert group created: {group.title}", now, alert_id=child.id)
    )
    if due is None:
        await writer.add_event(event(group, "silenced", "All alerts are silenced", now, alert_id=child.id))
        trace.add("notification", "notification_not_needed", "Group is silenced", data={"reason": "silenced"})
        await fan_out(writer, group, c.SUB_EVENT_CREATED)  # records each subscription as silenced (S8.8)
        return group, child, c.OUTCOME_CREATED
    await _page(writer, group, route, seq=0, reason="new_group", due=due, trace=trace)
    for sub_id, reason in await fan_out(writer, group, c.SUB_EVENT_CREATED):
        if reason is None:
            trace.add(
                "subscription",
                "subscription_matched",
                f"Subscription {sub_id}",
                data={"subscription_id": sub_id},
            )
        else:
            trace.add(
                "subscription",
                "subscription_skipped",
                f"Subscription {sub_id}: {reason}",
                data={"subscription_id": sub_id, "reason": reason},
            )
    return group, child, c.OUTCOME_CREATED


async def _on_new_firing(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    trace: _Trace,
    group: AlertGroup,
    previous: str,
    route: Route,
    now: dt.datetime,
) -> AlertGroup:
    """A firing, unsilenced child arrived in an existing open group (S2.14)."""
    if previous == c.GROUP_ACKNOWLEDGED:
        trace.add("grouping", "group_reopened", "Acknowledged group reopened by a new firing alert")
        group = attrs.evolve(
            group,
            status=c.GROUP_FIRING,
            previous_status=previous,
            acknowledged_by=None,
            acknowledged_at=None,
            lifecycle_version=group.lifecycle_version + 1,
        )
        await writer.add_event(event(group, "reopened", "Reopened by a new firing alert", now))
        await fan_out(writer, group, c.SUB_EVENT_REOPENED)
        return await start_paging(
            ctx,
            uow,
            writer,
            group,
            route,
            seq=f"v{group.lifecycle_version}",
            reason="reopened",
            trace=trace,
            delay=False,
        )
    if previous == c.GROUP_SILENCED:
        group = attrs.evolve(
            group,
            status=c.GROUP_FIRING,
            previous_status=previous,
            lifecycle_version=group.lifecycle_version + 1,
        )
        await writer.add_event(event(group, "unsilenced", "An unsilenced firing alert arrived", now))
        if not group.notified:
            return await start_paging(
                ctx,
                uow,
                writer,
                group,
                route,
                seq=f"v{group.lifecycle_version}",
                reason="unsilenced",
                trace=trace,
                delay=False,
            )
        interval = await _rotation_interval(uow, group.rotation_id)
        group = escalation.arm_timers(group, first_page_due=now, interval=interval)
        return await writer.update_intents(group, route.group_interval_seconds)
    trace.add("notification", "notification_not_needed", "Group already paging; update scheduled if notified")
    return await writer.update_intents(group, route.group_interval_seconds)


async def _apply_to_existing(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    cache: _RequestCache,
    trace: _Trace,
    alert: NormalizedAlert,
    child: Alert,
    route: Route,
    team: Team,
    ctx_match: MatchContext,
    now: dt.datetime,
) -> tuple[AlertGroup, Alert, str]:
    group = await uow.alert_groups.get(child.group_id)
    assert group is not None
    previous = group.status
    refreshed = attrs.evolve(
        child,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        payload=dict(alert.payload),
        last_seen_at=now,
        ends_at=alert.ends_at,
    )
    content_changed = (alert.title, alert.message, alert.severity) != (
        child.title,
        child.message,
        child.severity,
    )
    if alert.status == c.ALERT_FIRING:
        refreshed = attrs.evolve(refreshed, title=alert.title, message=alert.message, severity=alert.severity)
    if alert.status == c.ALERT_RESOLVED:
        if child.status == c.ALERT_RESOLVED:
            trace.add("dedup", "repeat_no_change", "Alert already resolved")
            await uow.alerts.update(refreshed)
            return group, refreshed, c.OUTCOME_UPDATED
        cache.dedup_snapshot_valid = False  # resolving the last child resolves its siblings too
        refreshed = attrs.evolve(refreshed, status=c.ALERT_RESOLVED, resolved_at=now)
        refreshed = await uow.alerts.update(refreshed)
        await _release_applications(uow, refreshed, now, "alert_resolved")
        await writer.add_event(
            event(group, "updated", f"Alert resolved by source: {child.title}", now, alert_id=child.id)
        )
        children = await uow.alerts.find(group_id=group.id)
        group = refresh_group(attrs.evolve(group, last_seen_at=now), children)
        if all(a.status == c.ALERT_RESOLVED for a in children):
            group = await resolve_group(ctx, uow, writer, group, via=c.VIA_SOURCE, user_id=None, now=now)
            trace.add("grouping", "group_resolved", "Every alert of the group is resolved")
        else:
            group = await writer.update_intents(group, route.group_interval_seconds)
            group = await uow.alert_groups.update(group)
        return group, refreshed, c.OUTCOME_UPDATED

    # Firing signal.
    if child.status in (c.ALERT_FIRING, c.ALERT_SILENCED) and group.status in OPEN_STATUSES:
        trace.add("dedup", "repeat_no_change", "Repeated firing signal")
        if child.status == c.ALERT_FIRING and previous == c.GROUP_ACKNOWLEDGED:
            trace.add("grouping", "acknowledgement_preserved", "Group stays acknowledged")
        refreshed = await uow.alerts.update(refreshed)
        children = await uow.alerts.find(group_id=group.id)
        group = refresh_group(attrs.evolve(group, last_seen_at=now), children)
        if content_changed and group.status == c.GROUP_FIRING:
            group = await writer.update_intents(group, route.group_interval_seconds)
        group = await uow.alert_groups.update(group)
        return group, refreshed, c.OUTCOME_UPDATED

    # A resolved child fires again: in its open group, or reopening its resolved group (S2.12).
    cache.dedup_snapshot_valid = False  # reopening a group reopens its siblings too
    refreshed = attrs.evolve(refreshed, status=c.ALERT_FIRING, resolved_at=None, group_open=True)
    refreshed = await uow.alerts.update(refreshed)
    refreshed = await _silence_child(uow, cache, trace, refreshed, team, ctx_match, now)
    if group.status == c.GROUP_RESOLVED:
        # Reopening must not collide with another open group of the same key.
        clash = await uow.alert_groups.first(
            team_id=group.team_id, group_key_hash=group.group_key_hash, status__in=OPEN_STATUSES
        )
        if clash is not None:
            refreshed = await uow.alerts.update(attrs.evolve(refreshed, group_id=clash.id))
            group = clash
            previous = clash.status
        else:
            for sibling in await uow.alerts.find(group_id=group.id):
                if sibling.id != refreshed.id:
                    await uow.alerts.update(attrs.evolve(sibling, group_open=True))
    children = await uow.alerts.find(group_id=group.id)
    group = refresh_group(attrs.evolve(group, last_seen_at=now), children)
    if previous == c.GROUP_RESOLVED:
        trace.add("grouping", "group_reopened", "Resolved group reopened")
        silenced = refreshed.status == c.ALERT_SILENCED
        group = attrs.evolve(
            group,
            status=c.GROUP_SILENCED if silenced else c.GROUP_FIRING,
            previous_status=previous,
            acknowledged_by=None,
            acknowledged_at=None,
            resolved_by=None,
            resolved_at=None,
            resolved_via=None,
            lifecycle_version=group.lifecycle_version + 1,
        )
        await writer.add_event(
            event(group, "reopened", "Reopened: the alert fired again", now, alert_id=refreshed.id)
        )
        if not silenced:
            group = await start_paging(
                ctx,
                uow,
                writer,
                group,
                route,
                seq=f"v{group.lifecycle_version}",
                reason="reopened",
                trace=trace,
                delay=False,
            )
    elif refreshed.status == c.ALERT_FIRING:
        group = await _on_new_firing(ctx, uow, writer, trace, group, previous, route, now)
    group = await uow.alert_groups.update(group)
    return group, refreshed, c.OUTCOME_UPDATED


async def _release_applications(uow: UnitOfWork, child: Alert, now: dt.datetime, reason: str) -> None:
    for app in await uow.silence_applications.find(alert_id=child.id, active=True):
        await uow.silence_applications.update(
            attrs.evolve(app, active=False, released_at=now, release_reason=reason)
        )


async def resolve_group(
    ctx: Context,
    uow: UnitOfWork,
    writer: Writer,
    group: AlertGroup,
    *,
    via: str,
    user_id: int | None,
    now: dt.datetime,
    event_message: str | None = None,
) -> AlertGroup:
    """Resolve a group and every child; cancel pages; status messages if it was notified (S5.3, S5.6)."""
    for child in await uow.alerts.find(group_id=group.id):
        changes: dict[str, Any] = {"group_open": False}
        if child.status != c.ALERT_RESOLVED:
            changes.update(status=c.ALERT_RESOLVED, resolved_at=now)
            await _release_applications(uow, child, now, "group_resolved")
        await uow.alerts.update(attrs.evolve(child, **changes))
    children = await uow.alerts.find(group_id=group.id)
    group = refresh_group(group, children)
    group = attrs.evolve(
        group,
        status=c.GROUP_RESOLVED,
        previous_status=group.status,
        resolved_at=now,
        resolved_by=user_id,
        resolved_via=via,
        lifecycle_version=group.lifecycle_version + 1,
    )
    group = escalation.clear_timers(group)
    await writer.cancel_pages(group, "group_resolved")
    who = f" by user {user_id}" if user_id is not None else ""
    await writer.add_event(
        event(
            group,
            "resolved",
            event_message or f"Resolved via {via}{who}",
            now,
            user_id=user_id,
            data={"via": via},
        )
    )
    await writer.status_updates(group, c.EV_RESOLVED)
    await fan_out(writer, group, c.SUB_EVENT_RESOLVED)
    return await uow.alert_groups.update(group)
