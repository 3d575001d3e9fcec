"""Rotations, members, overrides, on-call and the calendar (SPEC S4.1-S4.7)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any

import attrs
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from relay_core.domain.errors import ValidationError
from relay_core.domain.model import Rotation, RotationLayer, RotationMember, RotationOverride, Team, User
from relay_core.domain.rotation import (
    calendar_segments,
    derived_duration_seconds,
    load_timezone,
    oncall_at,
    validate_rotation,
)
from relay_core.ports.storage import UnitOfWork
from relay_server.auth import Access, load_access, require
from relay_server.controllers._support import (
    Caller,
    Limit,
    Offset,
    audit,
    caller_session,
    changes,
    check_description,
    check_name,
    deleted,
    iso,
    page,
    parse_datetime,
    server_state,
    soft_delete,
    user_ref,
)
from relay_server.controllers.teams import managed_team, readable_team, visible_teams
from relay_server.errors import ApiError, not_found, validation_error
from relay_server.schemas import (
    EnabledBody,
    OverrideCreate,
    RotationCreate,
    RotationMemberCreate,
    RotationMemberUpdate,
    RotationUpdate,
)

DateParam = Annotated[str | None, QueryParameter(max_length=64)]


def serialize_rotation(rotation: Rotation, team: Team, access: Access) -> dict[str, Any]:
    try:
        duration: int | None = derived_duration_seconds(
            rotation.rotation_type, rotation.interval_value, rotation.interval_unit
        )
    except ValidationError:
        duration = None
    return {
        "id": rotation.id,
        "team_id": rotation.team_id,
        "name": rotation.name,
        "description": rotation.description,
        "start_at": iso(rotation.start_at),
        "rotation_type": rotation.rotation_type,
        "interval_value": rotation.interval_value,
        "interval_unit": rotation.interval_unit,
        "handoff_time": rotation.handoff_time,
        "handoff_weekday": rotation.handoff_weekday,
        "timezone": rotation.timezone,
        "duration_seconds": duration,
        "reminder_interval_seconds": rotation.reminder_interval_seconds,
        "enabled": rotation.enabled,
        "permissions": {
            "can_read": True,
            "can_write": access.can_manage(team),
            "can_respond": access.can_respond(team),
        },
    }


def serialize_member(
    member: RotationMember, user: User | None, permissions: Mapping[str, bool]
) -> dict[str, Any]:
    return {
        "id": member.id,
        "rotation_id": member.rotation_id,
        "layer_id": member.layer_id,
        "user_id": member.user_id,
        "username": user.username if user else None,
        "display_name": (user.display_name or user.username) if user else None,
        "position": member.position,
        "active": member.active,
        "permissions": dict(permissions),
    }


def serialize_override(
    o: RotationOverride, user: User | None, now: dt.datetime, permissions: Mapping[str, bool]
) -> dict[str, Any]:
    return {
        "id": o.id,
        "rotation_id": o.rotation_id,
        "user_id": o.user_id,
        "username": user.username if user else None,
        "starts_at": iso(o.starts_at),
        "ends_at": iso(o.ends_at),
        "reason": o.reason,
        "created_by": o.created_by,
        "created_at": iso(o.created_at),
        "expired": o.ends_at <= now,
        "permissions": dict(permissions),
    }


async def _rotation(
    uow: UnitOfWork, access: Access, rotation_id: int, *, manage: bool = False
) -> tuple[Rotation, Team]:
    rotation = await uow.rotations.get(rotation_id)
    team = await uow.teams.get(rotation.team_id) if rotation else None
    if rotation is None or team is None or not access.can_read_team(team):
        raise not_found("rotation")
    if manage:
        require(access.can_manage(team), "Manager rights on the team are required")
    return rotation, team


async def _default_layer(uow: UnitOfWork, rotation: Rotation) -> RotationLayer:
    layer = await uow.rotation_layers.first(rotation_id=rotation.id)
    if layer is None:
        layer = await uow.rotation_layers.add(RotationLayer(rotation_id=rotation.id))
    return layer


async def _renumber(uow: UnitOfWork, rotation_id: int, ordered: list[RotationMember]) -> list[RotationMember]:
    """Write dense positions 0..n-1 in the given order (positions are unique per layer)."""
    # Two passes keep any transient unique (layer, position) index happy.
    offset = 100_000
    for i, member in enumerate(ordered):
        if member.position != i:
            await uow.rotation_members.update(attrs.evolve(member, position=offset + i))
    out = []
    for i, member in enumerate(ordered):
        out.append(
            await uow.rotation_members.update(attrs.evolve(member, position=i))
            if member.position != i
            else member
        )
    return out


async def _active_team_member(uow: UnitOfWork, team: Team, user_id: int) -> User:
    user = await uow.users.get(user_id)
    membership = await uow.team_memberships.first(team_id=team.id, user_id=user_id, active=True)
    if user is None or not user.active or membership is None:
        raise validation_error(
            "user must be an active member of the team",
            [{"loc": "$.user_id", "message": "not an active member of the rotation's team"}],
        )
    return user


def _validated(rotation: Rotation, duration: int | None) -> Rotation:
    validate_rotation(rotation, duration_seconds=duration)
    return rotation


class RotationsController(Controller):
    path = "/api/rotations"
    tags = ("rotations",)

    @get("/", operation_id="ListRotations")
    async def list_rotations(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        team_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Rotations of the teams the caller can read."""
        async with caller_session(request, principal) as (_st, uow, access):
            teams = {t.id: t for t in await visible_teams(uow, access) if team_id is None or t.id == team_id}
            rotations = [r for r in await uow.rotations.find() if r.team_id in teams]
        return [serialize_rotation(r, teams[r.team_id], access) for r in page(rotations, limit, offset)]

    @post("/", operation_id="CreateRotation", status_code=201)
    async def create_rotation(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[RotationCreate]
    ) -> dict[str, Any]:
        """Create a rotation (team manager); naive start_at is in the rotation's time zone."""
        name = check_name(data.name)
        tz = load_timezone(data.timezone)
        start_at = parse_datetime(data.start_at, "$.start_at", tz=tz)
        rotation = _validated(
            Rotation(
                team_id=data.team_id,
                name=name,
                description=data.description,
                start_at=start_at,
                rotation_type=data.rotation_type,
                interval_value=data.interval_value,
                interval_unit=data.interval_unit,
                handoff_time=data.handoff_time,
                handoff_weekday=0
                if data.rotation_type == "weekly" and data.handoff_weekday is None
                else data.handoff_weekday,
                timezone=data.timezone,
                reminder_interval_seconds=data.reminder_interval_seconds,
                enabled=data.enabled,
            ),
            data.duration_seconds,
        )
        async with caller_session(request, principal) as (st, uow, access):
            team = await managed_team(uow, access, data.team_id)
            if await uow.rotations.first(team_id=team.id, name=name):
                raise ApiError(409, "conflict", "a rotation with this name already exists in the team")
            rotation = await uow.rotations.add(rotation)
            layer = await _default_layer(uow, rotation)
            if data.add_team_members:
                memberships = await uow.team_memberships.find(team_id=team.id, active=True)
                for position, tm in enumerate(memberships):
                    await uow.rotation_members.add(
                        RotationMember(
                            rotation_id=rotation.id, layer_id=layer.id, user_id=tm.user_id, position=position
                        )
                    )
            await audit(uow, st, principal, "rotation.create", "rotation", rotation.id, team=team)
            await uow.commit()
        return serialize_rotation(rotation, team, access)

    @get("/{rotation_id:int}", operation_id="GetRotation")
    async def get_rotation(
        self, request: Request[Any, Any, Any], principal: Caller, rotation_id: FromPath[int]
    ) -> dict[str, Any]:
        """One rotation."""
        async with caller_session(request, principal) as (_st, uow, access):
            rotation, team = await _rotation(uow, access, rotation_id)
        return serialize_rotation(rotation, team, access)

    @put("/{rotation_id:int}", operation_id="UpdateRotation")
    async def update_rotation(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rotation_id: FromPath[int],
        data: JSONBody[RotationUpdate],
    ) -> dict[str, Any]:
        """Update a rotation (team manager); omitted fields keep their values."""
        values = changes(data)
        duration = values.pop("duration_seconds", None)
        async with caller_session(request, principal) as (st, uow, access):
            rotation, team = await _rotation(uow, access, rotation_id, manage=True)
            if "name" in values:
                values["name"] = check_name(values["name"])
                other = await uow.rotations.first(team_id=team.id, name=values["name"])
                if other is not None and other.id != rotation.id:
                    raise ApiError(409, "conflict", "a rotation with this name already exists in the team")
            if "description" in values:
                check_description(values["description"])
            tz = load_timezone(values.get("timezone", rotation.timezone))
            if "start_at" in values:
                values["start_at"] = parse_datetime(values["start_at"], "$.start_at", tz=tz)
            rotation = _validated(attrs.evolve(rotation, **values), duration)
            rotation = await uow.rotations.update(rotation)
            await audit(
                uow,
                st,
                principal,
                "rotation.update",
                "rotation",
                rotation.id,
                team=team,
                data={"fields": sorted(values)},
            )
            await uow.commit()
        return serialize_rotation(rotation, team, access)

    @put("/{rotation_id:int}/enabled", operation_id="SetRotationEnabled")
    async def set_enabled(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rotation_id: FromPath[int],
        data: JSONBody[EnabledBody],
    ) -> dict[str, Any]:
        """Enable or disable a rotation."""
        async with caller_session(request, principal) as (st, uow, access):
            rotation, team = await _rotation(uow, access, rotation_id, manage=True)
            rotation = await uow.rotations.update(attrs.evolve(rotation, enabled=data.enabled))
            await audit(
                uow,
                st,
                principal,
                "rotation.enable" if data.enabled else "rotation.disable",
                "rotation",
                rotation.id,
                team=team,
            )
            await uow.commit()
        return serialize_rotation(rotation, team, access)

    @delete("/{rotation_id:int}", operation_id="DeleteRotation", status_code=200)
    async def delete_rotation(
        self, request: Request[Any, Any, Any], principal: Caller, rotation_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a rotation; routes using it lose their rotation."""
        async with caller_session(request, principal) as (st, uow, access):
            rotation, team = await _rotation(uow, access, rotation_id, manage=True)
            for member in await uow.rotation_members.find(rotation_id=rotation.id):
                await uow.rotation_members.update(attrs.evolve(member, active=False))
            for override in await uow.overrides.find(rotation_id=rotation.id):
                await uow.overrides.delete(override.id)
            for route in await uow.routes.find(rotation_id=rotation.id):
                await uow.routes.update(attrs.evolve(route, rotation_id=None))
            return await soft_delete(
                uow,
                st,
                principal,
                uow.rotations,
                rotation,
                "rotation",
                group_id=team.group_id,
                team_id=team.id,
            )

    @get("/{rotation_id:int}/members", operation_id="ListRotationMembers")
    async def list_members(
        self, request: Request[Any, Any, Any], principal: Caller, rotation_id: FromPath[int]
    ) -> list[dict[str, Any]]:
        """Members in position order."""
        async with caller_session(request, principal) as (_st, uow, access):
            rotation, team = await _rotation(uow, access, rotation_id)
            members = await uow.rotation_members.find(rotation_id=rotation.id, order_by="position")
            perms = access.team_permissions(team)
            return [serialize_member(m, await uow.users.get(m.user_id), perms) for m in members]

    @post("/{rotation_id:int}/members", operation_id="AddRotationMember", status_code=201)
    async def add_member(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rotation_id: FromPath[int],
        data: JSONBody[RotationMemberCreate],
    ) -> dict[str, Any]:
        """Add an active team member at ``position`` (appended when omitted)."""
        async with caller_session(request, principal) as (st, uow, access):
            rotation, team = await _rotation(uow, access, rotation_id, manage=True)
            user = await _active_team_member(uow, team, data.user_id)
            members = await uow.rotation_members.find(rotation_id=rotation.id, order_by="position")
            if any(m.user_id == user.id for m in members):
                raise ApiError(409, "conflict", "user is already a member of the rotation")
            layer = await _default_layer(uow, rotation)
            position = len(members) if data.position is None else min(data.position, len(members))
            member = await uow.rotation_members.add(
                RotationMember(
                    rotation_id=rotation.id,
                    layer_id=layer.id,
                    user_id=user.id,
                    position=100_000 + len(members),
                )
            )
            ordered = [*members]
            ordered.insert(position, member)
            ordered = await _renumber(uow, rotation.id, ordered)
            member = next(m for m in ordered if m.id == member.id)
            await audit(uow, st, principal, "rotation_member.create", "rotation_member", member.id, team=team)
            await uow.commit()
        return serialize_member(member, user, access.team_permissions(team))

    @get("/{rotation_id:int}/eligible-users", operation_id="ListRotationEligibleUsers")
    async def eligible_users(
        self, request: Request[Any, Any, Any], principal: Caller, rotation_id: FromPath[int]
    ) -> list[dict[str, Any]]:
        """Active team members who are not yet members of the rotation."""
        async with caller_session(request, principal) as (_st, uow, access):
            rotation, team = await _rotation(uow, access, rotation_id)
            taken = {m.user_id for m in await uow.rotation_members.find(rotation_id=rotation.id)}
            out: list[dict[str, Any]] = []
            for tm in await uow.team_memberships.find(team_id=team.id, active=True):
                user = await uow.users.get(tm.user_id)
                ref = user_ref(user) if user is not None and user.active and user.id not in taken else None
                if ref is not None:
                    out.append(ref)
            return out

    @get("/{rotation_id:int}/oncall", operation_id="GetRotationOncall")
    async def oncall(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rotation_id: FromPath[int],
        at: DateParam = None,
    ) -> dict[str, Any]:
        """Who is on call at ``at`` (default now) and why."""
        st = server_state(request)
        when = parse_datetime(at, "query.at") if at else st.now()
        async with st.uow() as uow:
            access = await load_access(uow, principal.user)
            rotation, _team = await _rotation(uow, access, rotation_id)
            members = await uow.rotation_members.find(rotation_id=rotation.id)
            overrides = await uow.overrides.find(rotation_id=rotation.id)
            result = oncall_at(rotation, members, overrides, when)
            user = await uow.users.get(result.user_id) if result else None
            layer = await uow.rotation_layers.first(rotation_id=rotation.id)
        return {
            "rotation_id": rotation.id,
            "at": iso(when),
            "user": user_ref(user),
            "source": result.source if result else None,
            "override_id": result.override_id if result else None,
            "layer_id": layer.id if result and result.source == "layer" and layer else None,
            "slot_start": iso(result.slot_start) if result else None,
            "slot_end": iso(result.slot_end) if result else None,
            "next_handoff_at": iso(result.next_handoff_at) if result else None,
        }

    @get("/{rotation_id:int}/overrides", operation_id="ListRotationOverrides")
    async def list_overrides(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rotation_id: FromPath[int],
        include_expired: Annotated[bool, QueryParameter()] = False,
    ) -> list[dict[str, Any]]:
        """Overrides of a rotation; expired ones only with include_expired."""
        st = server_state(request)
        now = st.now()
        async with st.uow() as uow:
            access = await load_access(uow, principal.user)
            rotation, team = await _rotation(uow, access, rotation_id)
            rows = await uow.overrides.find(rotation_id=rotation.id, order_by="starts_at")
            perms = access.team_permissions(team)
            return [
                serialize_override(o, await uow.users.get(o.user_id), now, perms)
                for o in rows
                if include_expired or o.ends_at > now
            ]

    @post("/{rotation_id:int}/overrides", operation_id="CreateRotationOverride", status_code=201)
    async def create_override(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rotation_id: FromPath[int],
        data: JSONBody[OverrideCreate],
    ) -> dict[str, Any]:
        """Put a team member on call for a time range (naive times in the rotation's zone)."""
        async with caller_session(request, principal) as (st, uow, access):
            rotation, team = await _rotation(uow, access, rotation_id, manage=True)
            tz = load_timezone(rotation.timezone)
            starts = parse_datetime(data.starts_at, "$.starts_at", tz=tz)
            ends = parse_datetime(data.ends_at, "$.ends_at", tz=tz)
            if ends <= starts:
                raise validation_error(
                    "ends_at must be after starts_at",
                    [{"loc": "$.ends_at", "message": "must be after starts_at"}],
                )
            user = await _active_team_member(uow, team, data.user_id)
            override = await uow.overrides.add(
                RotationOverride(
                    rotation_id=rotation.id,
                    user_id=user.id,
                    starts_at=starts,
                    ends_at=ends,
                    reason=data.reason,
                    created_by=principal.user_id,
                    created_at=st.now(),
                )
            )
            await audit(
                uow, st, principal, "rotation_override.create", "rotation_override", override.id, team=team
            )
            await uow.commit()
        return serialize_override(override, user, st.now(), access.team_permissions(team))


class RotationItemsController(Controller):
    path = "/api/rotations"
    tags = ("rotations",)

    @put("/members/{member_id:int}", operation_id="UpdateRotationMember")
    async def update_member(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        member_id: FromPath[int],
        data: JSONBody[RotationMemberUpdate],
    ) -> dict[str, Any]:
        """Move a member or change its active flag."""
        async with caller_session(request, principal) as (st, uow, access):
            member = await uow.rotation_members.get(member_id)
            if member is None:
                raise not_found("rotation member")
            rotation, team = await _rotation(uow, access, member.rotation_id, manage=True)
            members = await uow.rotation_members.find(rotation_id=rotation.id, order_by="position")
            current = next(m for m in members if m.id == member_id)
            values = changes(data)
            if "active" in values:
                current = await uow.rotation_members.update(attrs.evolve(current, active=values["active"]))
                members = [current if m.id == current.id else m for m in members]
            if "position" in values:
                ordered = [m for m in members if m.id != current.id]
                ordered.insert(min(values["position"], len(ordered)), current)
                ordered = await _renumber(uow, rotation.id, ordered)
                current = next(m for m in ordered if m.id == current.id)
            await audit(
                uow,
                st,
                principal,
                "rotation_member.update",
                "rotation_member",
                member_id,
                team=team,
                data=values,
            )
            await uow.commit()
            user = await uow.users.get(current.user_id)
            return serialize_member(current, user, access.team_permissions(team))

    @delete("/members/{member_id:int}", operation_id="DeleteRotationMember", status_code=200)
    async def delete_member(
        self, request: Request[Any, Any, Any], principal: Caller, member_id: FromPath[int]
    ) -> dict[str, Any]:
        """Remove a member; positions are renumbered."""
        async with caller_session(request, principal) as (st, uow, access):
            member = await uow.rotation_members.get(member_id)
            if member is None:
                raise not_found("rotation member")
            rotation, team = await _rotation(uow, access, member.rotation_id, manage=True)
            await uow.rotation_members.delete(member_id)
            rest = await uow.rotation_members.find(rotation_id=rotation.id, order_by="position")
            await _renumber(uow, rotation.id, rest)
            await audit(uow, st, principal, "rotation_member.delete", "rotation_member", member_id, team=team)
            await uow.commit()
        return deleted(member_id)

    @delete("/overrides/{override_id:int}", operation_id="DeleteRotationOverride", status_code=200)
    async def delete_override(
        self, request: Request[Any, Any, Any], principal: Caller, override_id: FromPath[int]
    ) -> dict[str, Any]:
        """Delete an override."""
        async with caller_session(request, principal) as (st, uow, access):
            override = await uow.overrides.get(override_id)
            if override is None:
                raise not_found("rotation override")
            _rotation_row, team = await _rotation(uow, access, override.rotation_id, manage=True)
            await uow.overrides.delete(override_id)
            await audit(
                uow, st, principal, "rotation_override.delete", "rotation_override", override_id, team=team
            )
            await uow.commit()
        return deleted(override_id)


class CalendarController(Controller):
    path = "/api/calendar"
    tags = ("calendar",)

    @get("/", operation_id="GetCalendar")
    async def calendar(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        team_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        rotation_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        start: DateParam = None,
        end: DateParam = None,
    ) -> list[dict[str, Any]]:
        """On-call segments of every enabled rotation in scope, sorted by start (S4.7)."""
        if team_id is None and rotation_id is None:
            raise validation_error(
                "team_id or rotation_id is required",
                [{"loc": "query.team_id", "message": "team_id or rotation_id is required"}],
            )
        async with caller_session(request, principal) as (st, uow, access):
            if rotation_id is not None:
                rotation, team = await _rotation(uow, access, rotation_id)
                if team_id is not None and rotation.team_id != team_id:
                    return []
                scope = [(rotation, team)]
            else:
                assert team_id is not None
                team = await readable_team(uow, access, team_id)
                scope = [(r, team) for r in await uow.rotations.find(team_id=team.id)]
            events: list[dict[str, Any]] = []
            for rotation, team in scope:
                if not rotation.enabled:
                    continue
                tz = load_timezone(rotation.timezone)
                if start:
                    lo = parse_datetime(start, "query.start", tz=tz)
                else:
                    today = st.now().astimezone(tz).date()
                    lo = dt.datetime.combine(today, dt.time(), tzinfo=tz).astimezone(dt.UTC)
                hi = parse_datetime(end, "query.end", tz=tz) if end else lo + dt.timedelta(days=30)
                layer = await uow.rotation_layers.first(rotation_id=rotation.id)
                members = await uow.rotation_members.find(rotation_id=rotation.id)
                overrides = await uow.overrides.find(rotation_id=rotation.id)
                segments = calendar_segments(
                    rotation, members, overrides, lo, hi, layer_id=layer.id if layer else None
                )
                for seg in segments:
                    user = await uow.users.get(seg.user_id)
                    events.append(
                        {
                            "rotation_id": rotation.id,
                            "rotation_name": rotation.name,
                            "team_id": team.id,
                            "team_slug": team.slug,
                            "team_name": team.name,
                            "layer_id": seg.layer_id if seg.type == "layer" else None,
                            "layer_name": layer.name if layer and seg.type == "layer" else None,
                            "layer_priority": layer.priority if layer and seg.type == "layer" else None,
                            "timezone": rotation.timezone,
                            "user_id": seg.user_id,
                            "username": user.username if user else None,
                            "display_name": (user.display_name or user.username) if user else None,
                            "type": seg.type,
                            "override_id": seg.override_id,
                            "reason": seg.reason,
                            "start": iso(seg.start),
                            "end": iso(seg.end),
                        }
                    )
        events.sort(key=lambda e: (e["start"], e["rotation_id"]))
        return events
