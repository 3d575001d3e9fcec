"""Alert groups: list, detail, timeline, explain traces, acknowledge and resolve (SPEC S9.6, S9.7)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from relay_core.domain import commands as cmd
from relay_core.domain import constants as c
from relay_core.domain.model import AlertGroup, Category, Channel, ExplainTrace, Notification, Team, User
from relay_core.ports.storage import UnitOfWork
from relay_server.auth import Access, require
from relay_server.controllers._support import (
    SEVERITY_RANK,
    Caller,
    caller_session,
    iso,
    mask_email,
    mask_phone,
    parse_datetime,
    user_ref,
)
from relay_server.errors import forbidden, not_found, validation_error
from relay_server.schemas import AlertActionBody

PERSON_CHANNELS = frozenset({"voice_call", "sms"})


async def visible_teams(uow: UnitOfWork, access: Access) -> dict[int, Team]:
    """Teams the user may read, by id."""
    teams = await uow.teams.find()
    return {t.id: t for t in teams if access.can_read_team(t)}


class _Lookups:
    """Caches rows referenced by serialized groups within one request."""

    def __init__(self, uow: UnitOfWork, teams: Mapping[int, Team]) -> None:
        self.uow = uow
        self.teams = dict(teams)
        self.users: dict[int, User | None] = {}
        self.categories: dict[int, Category | None] = {}
        self.channels: dict[int, Channel | None] = {}

    async def user(self, user_id: int | None) -> User | None:
        if user_id is None:
            return None
        if user_id not in self.users:
            self.users[user_id] = await self.uow.users.get(user_id)
        return self.users[user_id]

    async def category(self, category_id: int | None) -> Category | None:
        if category_id is None:
            return None
        if category_id not in self.categories:
            self.categories[category_id] = await self.uow.categories.get(category_id)
        return self.categories[category_id]

    async def channel(self, channel_id: int) -> Channel | None:
        if channel_id not in self.channels:
            self.channels[channel_id] = await self.uow.channels.get(channel_id)
        return self.channels[channel_id]

    async def team(self, team_id: int) -> Team | None:
        if team_id not in self.teams:
            team = await self.uow.teams.get(team_id)
            if team is None:
                return None
            self.teams[team_id] = team
        return self.teams[team_id]


async def serialize_group(group: AlertGroup, look: _Lookups, access: Access) -> dict[str, Any]:
    team = await look.team(group.team_id)
    category = await look.category(group.category_id)
    assignee = await look.user(group.assignee_id)
    acked = await look.user(group.acknowledged_by)
    resolved = await look.user(group.resolved_by)
    return {
        "id": group.id,
        "team_id": group.team_id,
        "team_slug": team.slug if team else None,
        "route_id": group.route_id,
        "rotation_id": group.rotation_id,
        "category": {"id": category.id, "slug": category.slug, "name": category.name} if category else None,
        "source": group.source,
        "title": group.title,
        "message": group.message,
        "severity": group.severity,
        "status": group.status,
        "silenced": group.status == c.GROUP_SILENCED,
        "test": group.test,
        "assignee": user_ref(assignee),
        "group_key": group.group_key,
        "alert_count": group.alert_count,
        "firing_count": group.firing_count,
        "resolved_count": group.resolved_count,
        "silenced_count": group.silenced_count,
        "event_link": group.event_link,
        "common_labels": dict(group.common_labels),
        "acknowledged_by": user_ref(acked, full=False),
        "acknowledged_at": iso(group.acknowledged_at),
        "resolved_by": user_ref(resolved, full=False),
        "resolved_at": iso(group.resolved_at),
        "resolved_via": group.resolved_via,
        "first_seen_at": iso(group.first_seen_at),
        "last_seen_at": iso(group.last_seen_at),
        "last_notification_at": iso(group.last_notification_at),
        "reminder_count": group.reminder_count,
        "escalation_level": group.escalation_level,
        "escalation_mode": "rotation",
        "team_escalation_enabled": team.escalation_enabled if team else None,
        "team_escalation_after_reminders": team.escalation_after_reminders if team else None,
        "next_reminder_at": iso(group.next_reminder_at),
        "next_action_at": iso(group.next_action_at),
        "permissions": {
            "can_read": True,
            "can_write": bool(team and access.can_manage(team)),
            "can_respond": bool(team and access.can_respond(team)),
        },
    }


async def _recipient(
    look: _Lookups, record: Notification, channel: Channel | None, access: Access
) -> str | None:
    user = await look.user(record.recipient_user_id)
    if user is None:
        return channel.name if channel else None
    channel_type = channel.channel_type if channel else ""
    if channel_type in PERSON_CHANNELS:
        return mask_phone(user.phone)
    if channel_type == "email":
        return mask_email(user.email)
    return user.username


def serialize_trace(trace: ExplainTrace) -> dict[str, Any]:
    return {
        "trace_id": trace.trace_id,
        "group_id": trace.group_id,
        "alert_id": trace.alert_id,
        "route_id": trace.route_id,
        "team_id": trace.team_id,
        "mode": trace.mode,
        "level": trace.level,
        "source": trace.source,
        "dedup_key": trace.dedup_key,
        "status": trace.status,
        "outcome": trace.outcome,
        "reason": trace.reason,
        "input_summary": dict(trace.input_summary),
        "steps": [
            {
                "position": s.position,
                "stage": s.stage,
                "code": s.code,
                "status": s.status,
                "title": s.title,
                "message": s.message,
                "data": dict(s.data),
            }
            for s in trace.steps
        ],
        "started_at": iso(trace.started_at),
        "finished_at": iso(trace.finished_at),
    }


async def _events(uow: UnitOfWork, look: _Lookups, group_id: int) -> list[dict[str, Any]]:
    events = await uow.events.find(group_id=group_id, order_by="id")
    return [
        {
            "id": e.id,
            "alert_id": e.alert_id,
            "event_type": e.event_type,
            "message": e.message,
            "user": user_ref(await look.user(e.user_id)),
            "data": dict(e.data),
            "created_at": iso(e.created_at),
        }
        for e in events
    ]


async def _visible_group(uow: UnitOfWork, access: Access, group_id: int) -> tuple[AlertGroup, Team]:
    group = await uow.alert_groups.get(group_id)
    team = await uow.teams.get(group.team_id) if group else None
    if group is None or team is None or not access.can_read_team(team):
        raise not_found("alert group")
    return group, team


def _split(values: Iterable[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ():
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


Sort = Literal["activity", "severity", "created"]
Order = Literal["asc", "desc"]


class AlertsController(Controller):
    path = "/api/alerts"
    tags = ("alerts",)

    @get("/", operation_id="ListAlerts")
    async def list_alerts(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        status: Annotated[list[str] | None, QueryParameter()] = None,
        team_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        group_id: Annotated[
            int | None, QueryParameter(ge=1, description="only teams of this group (the active group)")
        ] = None,
        severity: Annotated[list[str] | None, QueryParameter()] = None,
        category: Annotated[str | None, QueryParameter(max_length=64)] = None,
        source: Annotated[str | None, QueryParameter(max_length=64)] = None,
        route_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        assignee_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        search: Annotated[str | None, QueryParameter(max_length=200)] = None,
        created_from: Annotated[
            str | None, QueryParameter(name="from", max_length=64, description="first seen at or after")
        ] = None,
        created_to: Annotated[
            str | None, QueryParameter(name="to", max_length=64, description="first seen before")
        ] = None,
        include_test: Annotated[bool, QueryParameter()] = False,
        sort: Annotated[Sort, QueryParameter()] = "activity",
        order: Annotated[Order, QueryParameter()] = "desc",
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
        page_size: Annotated[int, QueryParameter(ge=1, le=200)] = 25,
        limit: Annotated[int | None, QueryParameter(ge=1, le=200)] = None,
        offset: Annotated[int | None, QueryParameter(ge=0)] = None,
    ) -> dict[str, Any]:
        """Alert groups visible to the caller, filtered, sorted and paginated, with status counts."""
        statuses = _split(status)
        bad = [s for s in statuses if s not in c.GROUP_STATUSES]
        severities = _split(severity)
        bad_sev = [s for s in severities if s not in c.SEVERITIES]
        if bad or bad_sev:
            details = [{"loc": "query.status", "message": f"unknown status {s!r}"} for s in bad]
            details += [{"loc": "query.severity", "message": f"unknown severity {s!r}"} for s in bad_sev]
            raise validation_error("invalid filter", details)
        since = parse_datetime(created_from, "query.from") if created_from else None
        until = parse_datetime(created_to, "query.to") if created_to else None
        if limit is not None:
            page_size = limit
        async with caller_session(request, principal) as (_st, uow, access):
            teams = await visible_teams(uow, access)
            team_ids = [
                t.id
                for t in teams.values()
                if (team_id is None or t.id == team_id) and (group_id is None or t.group_id == group_id)
            ]
            where: dict[str, Any] = {"team_id__in": team_ids}
            if source:
                where["source"] = source
            if route_id is not None:
                where["route_id"] = route_id
            if assignee_id is not None:
                where["assignee_id"] = assignee_id
            if not include_test:
                where["test"] = False
            if severities:
                where["severity__in"] = severities
            if category:
                cats = [cat.id for cat in await uow.categories.find(slug=category)]
                where["category_id__in"] = cats
            groups = await uow.alert_groups.find(**where) if team_ids else []
            if since is not None:
                groups = [g for g in groups if g.first_seen_at >= since]
            if until is not None:
                groups = [g for g in groups if g.first_seen_at < until]
            if search:
                needle = search.lower()
                groups = [g for g in groups if needle in g.title.lower() or needle in g.message.lower()]
            summary = {s: 0 for s in c.GROUP_STATUSES}
            for g in groups:
                if g.status in summary:
                    summary[g.status] += 1
            if statuses:
                groups = [g for g in groups if g.status in statuses]
            reverse = order == "desc"
            if sort == "severity":
                groups.sort(
                    key=lambda g: (-SEVERITY_RANK.get(g.severity, 99), g.last_seen_at, g.id), reverse=reverse
                )
            elif sort == "created":
                groups.sort(key=lambda g: (g.first_seen_at, g.id), reverse=reverse)
            else:
                groups.sort(key=lambda g: (g.last_seen_at, g.id), reverse=reverse)
            total = len(groups)
            start = offset if offset is not None else (page - 1) * page_size
            look = _Lookups(uow, teams)
            items = [await serialize_group(g, look, access) for g in groups[start : start + page_size]]
        return {
            "items": items,
            "pagination": {
                "page": page if offset is None else start // page_size + 1,
                "page_size": page_size,
                "total": total,
                "pages": math.ceil(total / page_size) if total else 0,
            },
            "summary": summary,
            "sort": {"field": sort, "order": order},
        }

    @get("/{group_id:int}", operation_id="GetAlert")
    async def get_alert(
        self, request: Request[Any, Any, Any], principal: Caller, group_id: FromPath[int]
    ) -> dict[str, Any]:
        """One alert group with its child alerts, timeline, deliveries and traces."""
        async with caller_session(request, principal) as (_st, uow, access):
            group, team = await _visible_group(uow, access, group_id)
            look = _Lookups(uow, {team.id: team})
            body = await serialize_group(group, look, access)
            children = await uow.alerts.find(group_id=group.id)
            body["alerts"] = [
                {
                    "id": a.id,
                    "dedup_key": a.dedup_key,
                    "external_id": a.external_id,
                    "title": a.title,
                    "status": a.status,
                    "severity": a.severity,
                    "original_severity": a.original_severity,
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "starts_at": iso(a.starts_at),
                    "ends_at": iso(a.ends_at),
                    "first_seen_at": iso(a.first_seen_at),
                    "last_seen_at": iso(a.last_seen_at),
                    "resolved_at": iso(a.resolved_at),
                    "payload": dict(a.payload),
                }
                for a in children
            ]
            body["events"] = await _events(uow, look, group.id)
            deliveries = []
            for record in await uow.notifications.find(group_id=group.id):
                channel = await look.channel(record.channel_id)
                deliveries.append(
                    {
                        "id": record.id,
                        "channel_id": record.channel_id,
                        "channel_type": channel.channel_type if channel else None,
                        "provider": record.provider,
                        "recipient": await _recipient(look, record, channel, access),
                        "external_message_id": record.external_message_id,
                        "provider_status": record.provider_status,
                        "last_event_type": record.last_event_type,
                        "last_error": record.last_error,
                        "callback_count": record.callback_count,
                        "created_at": iso(record.created_at),
                        "updated_at": iso(record.updated_at),
                    }
                )
            body["deliveries"] = deliveries
            traces = await uow.traces.find(group_id=group.id)
            body["traces"] = [
                {"trace_id": t.trace_id, "outcome": t.outcome, "started_at": iso(t.started_at)}
                for t in traces
            ]
        return body

    @get("/{group_id:int}/events", operation_id="ListAlertEvents")
    async def list_events(
        self, request: Request[Any, Any, Any], principal: Caller, group_id: FromPath[int]
    ) -> list[dict[str, Any]]:
        """The group's timeline, oldest first."""
        async with caller_session(request, principal) as (_st, uow, access):
            _group, team = await _visible_group(uow, access, group_id)
            return await _events(uow, _Lookups(uow, {team.id: team}), group_id)

    @get("/{group_id:int}/explain", operation_id="ExplainAlert")
    async def explain_alert(
        self, request: Request[Any, Any, Any], principal: Caller, group_id: FromPath[int]
    ) -> dict[str, Any]:
        """Every explain trace recorded for the group."""
        return await _explain_group(request, principal, group_id)

    @post("/{group_id:int}/ack", operation_id="AcknowledgeAlert", status_code=200)
    async def acknowledge(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: FromPath[int],
        data: JSONBody[AlertActionBody | None] = None,
    ) -> dict[str, Any]:
        """Acknowledge the group (team responder or manager; acting for someone else needs admin)."""
        return await _act(request, principal, group_id, data, "ack")

    @post("/{group_id:int}/resolve", operation_id="ResolveAlert", status_code=200)
    async def resolve(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: FromPath[int],
        data: JSONBody[AlertActionBody | None] = None,
    ) -> dict[str, Any]:
        """Resolve the group (team responder or manager; acting for someone else needs admin)."""
        return await _act(request, principal, group_id, data, "resolve")


async def _act(
    request: Request[Any, Any, Any], principal: Any, group_id: int, data: AlertActionBody | None, action: str
) -> dict[str, Any]:
    acting_for = data.user_id if data and data.user_id is not None else principal.user_id
    comment = data.comment if data else None
    async with caller_session(request, principal) as (st, uow, access):
        _group, team = await _visible_group(uow, access, group_id)
        require(access.can_respond(team), "Responder rights on the team are required")
        if acting_for != principal.user_id:
            if not principal.is_admin:
                raise forbidden("Only an administrator may act for another user")
            if await uow.users.get(acting_for) is None:
                raise validation_error("user not found", [{"loc": "$.user_id", "message": "unknown user"}])
    via = "api" if principal.token is not None else "web"
    if action == "ack":
        result = await st.relay.handle(
            cmd.AcknowledgeAlert(group_id=group_id, user_id=acting_for, via=via, comment=comment)
        )
        if result.changed:
            st.metrics.acknowledgements.labels(via=via).inc()
    else:
        result = await st.relay.handle(
            cmd.ResolveAlert(group_id=group_id, user_id=acting_for, via=via, comment=comment)
        )
    async with st.uow() as uow:
        group = await uow.alert_groups.get(group_id)
        assert group is not None
        body = await serialize_group(group, _Lookups(uow, {team.id: team}), access)
    body["result"] = result.result
    body["changed"] = result.changed
    return body


async def _explain_group(request: Request[Any, Any, Any], principal: Any, group_id: int) -> dict[str, Any]:
    async with caller_session(request, principal) as (_st, uow, access):
        await _visible_group(uow, access, group_id)
        traces = await uow.traces.find(group_id=group_id)
    return {"group_id": group_id, "traces": [serialize_trace(t) for t in traces]}


async def _explain_trace(request: Request[Any, Any, Any], principal: Any, trace_id: str) -> dict[str, Any]:
    async with caller_session(request, principal) as (_st, uow, access):
        trace = await uow.traces.first(trace_id=trace_id)
        if trace is None:
            raise not_found("explain trace")
        team = await uow.teams.get(trace.team_id) if trace.team_id is not None else None
        visible = access.is_admin or (team is not None and access.can_read_team(team))
        if not visible:
            raise not_found("explain trace")
    return serialize_trace(trace)


class ExplainController(Controller):
    path = "/api"
    tags = ("alerts",)

    @get("/explain/{trace_id:str}", operation_id="GetExplainTrace")
    async def get_trace(
        self, request: Request[Any, Any, Any], principal: Caller, trace_id: FromPath[str]
    ) -> dict[str, Any]:
        """One explain trace by its id (the ``trace_id`` of an intake answer)."""
        return await _explain_trace(request, principal, trace_id)

    @get("/alert-groups/explain/{trace_id:str}", operation_id="GetExplainTraceAlias")
    async def get_trace_alias(
        self, request: Request[Any, Any, Any], principal: Caller, trace_id: FromPath[str]
    ) -> dict[str, Any]:
        """IncidentRelay alias of ``GET /api/explain/{trace_id}``."""
        return await _explain_trace(request, principal, trace_id)

    @get("/alert-groups/{group_id:int}/explain", operation_id="ExplainAlertAlias")
    async def explain_alias(
        self, request: Request[Any, Any, Any], principal: Caller, group_id: FromPath[int]
    ) -> dict[str, Any]:
        """IncidentRelay alias of ``GET /api/alerts/{id}/explain``."""
        return await _explain_group(request, principal, group_id)
