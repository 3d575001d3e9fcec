"""Dry-run simulation of intake (SPEC S3.9), shared by ``POST /api/simulate`` and ``relay simulate``.

Runs the intake decisions (routing, category, grouping, dedup, silences, assignee, channels,
subscriptions) and predicts the reminder/escalation timeline assuming nobody acknowledges.
Reads storage through one unit of work and never commits: nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from relay_core.domain import constants as c
from relay_core.domain.categories import BUILTIN_CATEGORY_DEFINITIONS, assign_category, subscription_decision
from relay_core.domain.errors import IntakeValidationError, ValidationError
from relay_core.domain.escalation import arm_timers, due_action, first_notification_wait, reminder_interval
from relay_core.domain.grouping import build_group_key
from relay_core.domain.intake import ItemError
from relay_core.domain.matchers import MatchContext
from relay_core.domain.model import AlertGroup, Group, NormalizedAlert, Route, Team, User
from relay_core.domain.rotation import next_oncall_user, oncall_at
from relay_core.domain.routing import NO_HINT, NoHint, select_route
from relay_core.domain.silences import matching_silences
from relay_core.plugins.registry import PluginRegistry
from relay_core.ports.storage import UnitOfWork

__all__ = ["MAX_TIMELINE_ENTRIES", "parse_simulation_payload", "simulate_intake"]

MAX_TIMELINE_ENTRIES = 1000


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_simulation_payload(
    registry: PluginRegistry, source: str, body: bytes
) -> list[NormalizedAlert | ItemError]:
    """Normalize ``body`` with the intake source ``source``; ``ValidationError`` when either is bad."""
    sources = registry.intake_sources()
    cls = sources.get(source.lower())
    if cls is None:
        raise ValidationError(
            f"unknown intake source {source!r} (known: {', '.join(sorted(sources))})",
            details=[{"loc": "$.source", "message": "unknown intake source", "type": "invalid"}],
        )
    try:
        items: list[NormalizedAlert | ItemError] = list(
            cls().parse(body, {"content-type": "application/json"}, {})
        )
    except IntakeValidationError as exc:
        details = [{**d, "loc": "$.payload" + str(d.get("loc", "$")).removeprefix("$")} for d in exc.details]
        raise ValidationError(f"payload rejected: {exc.message}", details=details) from None
    return items


async def simulate_intake(
    uow: UnitOfWork,
    *,
    registry: PluginRegistry,
    source: str,
    body: bytes,
    now: dt.datetime,
    forced_route: Route | None = None,
    horizon_seconds: int = 3600,
    default_group_wait: int = 30,
    allowed_team_ids: Collection[int] | None = None,
) -> dict[str, Any]:
    """The S3.9 report for ``body``; ``uow`` is only read, never committed.

    Returns ``{"mode", "source", "at", "horizon_seconds", "items": [...]}`` with, per item, the
    route decision and its trace, the group key and whether an open group would be reused,
    matching silences, the category, the assignee at ``now``, the channels and subscriptions
    that would be notified, and the timeline of pages until ``horizon_seconds``.
    ``allowed_team_ids`` (when not None) limits label/team routing to those teams' routes, as
    for an intake through a personal API token (S3.3 step 3).
    """
    items = parse_simulation_payload(registry, source, body)
    report: dict[str, Any] = {
        "mode": c.TRACE_DRY_RUN,
        "source": source,
        "at": _iso(now),
        "horizon_seconds": horizon_seconds,
        "items": [],
    }
    teams = {t.id: t for t in await uow.teams.find()}
    allowed = None if allowed_team_ids is None else frozenset(allowed_team_ids)
    groups = {g.id: g for g in await uow.groups.find()}
    users = {u.id: u for u in await uow.users.find()}
    for index, item in enumerate(items):
        if isinstance(item, ItemError):
            report["items"].append({"index": index, "outcome": c.OUTCOME_FAILED, "reason": item.message})
            continue
        report["items"].append(
            await _simulate_item(
                uow,
                item,
                index,
                forced_route,
                teams,
                groups,
                users,
                now,
                horizon_seconds,
                default_group_wait,
                allowed,
            )
        )
    return report


def _user_label(users: Mapping[int, User], user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = users.get(user_id)
    return user.username if user is not None else f"user {user_id}"


async def _simulate_item(
    uow: UnitOfWork,
    alert: NormalizedAlert,
    index: int,
    forced: Route | None,
    teams: Mapping[int, Team],
    groups: Mapping[int, Group],
    users: Mapping[int, User],
    now: dt.datetime,
    horizon_seconds: int,
    default_group_wait: int,
    allowed: frozenset[int] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "index": index,
        "title": alert.title,
        "status": alert.status,
        "severity": alert.severity,
        "dedup_key": alert.dedup_key,
    }
    candidates = [] if forced is not None else await uow.routes.find(source=alert.source, enabled=True)
    if allowed is not None:
        candidates = [r for r in candidates if r.team_id in allowed]
    hint: Team | NoHint | None = NO_HINT
    if forced is None and alert.team_slug:
        hint = next((t for t in teams.values() if t.slug == alert.team_slug), None)
    decision = select_route(
        alert,
        forced_route=forced,
        candidates=candidates,
        team_lookup=teams,
        group_lookup=groups,
        hint_team=hint,
    )
    trace = [{"stage": s.stage, "code": s.code, "status": s.status, "title": s.title} for s in decision.steps]
    result["trace"] = trace
    if decision.route is None or decision.team is None:
        result.update(outcome=c.OUTCOME_ROUTING_FAILED, routing_error=decision.routing_error)
        return result
    route, team = decision.route, decision.team
    result["route"] = {"id": route.id, "name": route.name}
    result["team"] = {"id": team.id, "slug": team.slug}

    stored = await uow.categories.find(order_by="position")
    have = {cat.slug for cat in stored if cat.group_id is None}
    stored += [d.to_category() for d in BUILTIN_CATEGORY_DEFINITIONS if d.slug not in have]
    visible = [cat for cat in stored if cat.group_id in (None, team.group_id)]
    rules = await uow.category_rules.find(group_id=team.group_id, enabled=True, order_by="position")
    match_ctx = MatchContext.for_alert(alert, team=team, route=route)
    category, step = assign_category(
        alert.labels,
        visible_categories=visible,
        rules=rules,
        route_category_id=route.category_id,
        ctx=match_ctx,
    )
    trace.append({"stage": step.stage, "code": step.code, "status": step.status, "title": step.title})
    match_ctx = MatchContext.for_alert(alert, team=team, route=route, category=category)
    result["category"] = category.slug

    key, key_hash = build_group_key(
        alert,
        team_id=team.id,
        team_slug=team.slug,
        route_id=route.id,
        group_by=tuple(route.group_by),
        category=category.slug,
    )
    open_statuses = (c.GROUP_FIRING, c.GROUP_ACKNOWLEDGED, c.GROUP_SILENCED)
    existing = await uow.alert_groups.first(
        team_id=team.id, group_key_hash=key_hash, status__in=open_statuses
    )
    child = await uow.alerts.first(
        team_id=team.id, source=alert.source, dedup_key=alert.dedup_key, group_open=True
    )
    result["group_key"] = key
    result["existing_group_id"] = existing.id if existing is not None else None
    result["existing_alert_id"] = child.id if child is not None else None

    silences = matching_silences(await uow.silences.find(team_id=team.id, enabled=True), match_ctx, now)
    result["silences"] = [{"id": s.id, "name": s.name} for s in silences]

    rot = await uow.rotations.get(route.rotation_id) if route.rotation_id is not None else None
    members = (
        await uow.rotation_members.find(rotation_id=rot.id, active=True, order_by="position") if rot else []
    )
    assignee_id: int | None = None
    if rot is not None:
        overrides = await uow.overrides.find(rotation_id=rot.id, starts_at__lte=now, ends_at__gt=now)
        oncall = oncall_at(rot, members, overrides, now)
        assignee_id = oncall.user_id if oncall is not None else None
    result["assignee"] = _user_label(users, assignee_id)
    if existing is not None and existing.assignee_id is not None:
        result["assignee"] = _user_label(users, existing.assignee_id)

    channels = []
    for channel_id in route.channel_ids:
        channel = await uow.channels.get(channel_id)
        if channel is not None and channel.enabled:
            channels.append({"id": channel.id, "name": channel.name, "type": channel.channel_type})
    result["channels"] = channels

    subs = await uow.subscriptions.find(group_id=team.group_id, category_id=category.id)
    result["subscriptions"] = [
        {
            "id": sub.id,
            "name": sub.name,
            "channel_types": list(sub.channel_types),
            "decision": subscription_decision(
                sub,
                category=category,
                ctx=match_ctx,
                event=c.SUB_EVENT_CREATED,
                group_silenced=bool(silences),
            )
            or "deliver",
        }
        for sub in subs
    ]

    if alert.status == c.ALERT_RESOLVED:
        if child is None:
            result.update(outcome=c.OUTCOME_IGNORED, reason="no open alert matches this resolve", timeline=[])
        else:
            result.update(outcome=c.OUTCOME_UPDATED, reason="the open alert would be resolved", timeline=[])
        return result
    if child is not None:
        result.update(outcome=c.OUTCOME_UPDATED, reason="an open alert has this dedup key", timeline=[])
        return result
    if existing is not None:
        result.update(outcome=c.OUTCOME_ADDED, reason="the alert would join an open group", timeline=[])
        return result
    result["outcome"] = c.OUTCOME_CREATED
    if silences:
        result.update(reason="silenced: nothing would be sent", timeline=[])
        return result

    wait = first_notification_wait(
        group_wait_seconds=route.group_wait_seconds,
        group_by=tuple(route.group_by),
        default_group_wait=default_group_wait,
    )
    first_due = now + dt.timedelta(seconds=wait)
    for channel_entry in channels:
        channel_entry["due_at"] = _iso(first_due)
    names = [str(ch["name"]) for ch in channels]
    end = now + dt.timedelta(seconds=horizon_seconds)
    timeline: list[dict[str, Any]] = []
    if first_due <= end:
        timeline.append(
            {"at": _iso(first_due), "action": "notification", "user": result["assignee"], "channels": names}
        )
    interval = reminder_interval(rot.reminder_interval_seconds if rot is not None and rot.enabled else 0)
    group = arm_timers(
        AlertGroup(
            team_id=team.id,
            route_id=route.id,
            rotation_id=route.rotation_id,
            assignee_id=assignee_id,
            source=alert.source,
            group_key=key,
            group_key_hash=key_hash,
            first_seen_at=now,
            last_seen_at=now,
        ),
        first_page_due=first_due,
        interval=interval,
    )
    while (
        group.next_action_at is not None
        and group.next_action_at <= end
        and len(timeline) < MAX_TIMELINE_ENTRIES
    ):
        when = group.next_action_at
        action = due_action(
            group,
            now=when,
            interval=interval,
            escalation_enabled=team.escalation_enabled,
            escalation_after_reminders=team.escalation_after_reminders,
            next_user_id=next_oncall_user(members, group.assignee_id),
        )
        if action is None:
            break
        timeline.append(
            {
                "at": _iso(when),
                "action": action.kind,
                "user": _user_label(users, action.target_user_id),
                "channels": names,
            }
        )
        group = action.group
    result["timeline"] = timeline
    return result
