"""Routes and their intake tokens (SPEC S3.1, S3.2, S9.6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import attrs
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from relay_core.domain.errors import ValidationError
from relay_core.domain.matchers import normalize_matchers
from relay_core.domain.model import Route, Team
from relay_core.ports.storage import UnitOfWork
from relay_server.auth import ROUTE_TOKEN_PREFIX, Access, new_token, require
from relay_server.controllers._support import (
    Caller,
    Limit,
    Offset,
    ServerState,
    audit,
    caller_session,
    changes,
    check_name,
    page,
    soft_delete,
)
from relay_server.controllers.channels import mask_secrets
from relay_server.controllers.teams import managed_team, visible_teams
from relay_server.errors import ApiError, not_found, validation_error
from relay_server.schemas import RouteChannelsBody, RouteCreate, RouteUpdate


def serialize_route(st: ServerState, route: Route, team: Team, access: Access) -> dict[str, Any]:
    return {
        "id": route.id,
        "team_id": route.team_id,
        "name": route.name,
        "source": route.source,
        "rotation_id": route.rotation_id,
        "channel_ids": list(route.channel_ids),
        "matchers": route.matchers,
        "group_by": list(route.group_by),
        "category_id": route.category_id,
        "group_wait_seconds": route.group_wait_seconds,
        "group_interval_seconds": route.group_interval_seconds,
        "integration_config": mask_secrets(route.integration_config),
        "enabled": route.enabled,
        "notification_channel_mode": "route_only",
        "intake_token_prefix": route.intake_token_prefix,
        "has_intake_token": bool(route.intake_token_hash),
        "intake_url": f"{st.public_base_url}/api/integrations/{route.source}",
        "permissions": {
            "can_read": True,
            "can_write": access.can_manage(team),
            "can_respond": access.can_respond(team),
        },
    }


async def visible_route(
    uow: UnitOfWork, access: Access, route_id: int, *, manage: bool = False
) -> tuple[Route, Team]:
    route = await uow.routes.get(route_id)
    team = await uow.teams.get(route.team_id) if route else None
    if route is None or team is None or not access.can_read_team(team):
        raise not_found("route")
    if manage:
        require(access.can_manage(team), "Manager rights on the team are required")
    return route, team


async def _check_references(
    st: ServerState,
    uow: UnitOfWork,
    team: Team,
    *,
    source: str,
    rotation_id: int | None,
    channel_ids: Sequence[int],
    category_id: int | None,
) -> None:
    details: list[dict[str, str]] = []
    registry = st.registry
    if registry is not None and source not in registry.intake_sources():
        details.append({"loc": "$.source", "message": f"unknown intake source {source!r}"})
    if rotation_id is not None:
        rotation = await uow.rotations.get(rotation_id)
        if rotation is None or rotation.team_id != team.id:
            details.append({"loc": "$.rotation_id", "message": "rotation must belong to the route's team"})
    for index, channel_id in enumerate(channel_ids):
        channel = await uow.channels.get(channel_id)
        ok = channel is not None and (
            channel.team_id == team.id or (channel.team_id is None and channel.group_id == team.group_id)
        )
        if not ok:
            details.append(
                {
                    "loc": f"$.channel_ids[{index}]",
                    "message": "channel must belong to the route's team or be a group-level channel of its group",  # noqa: E501
                }
            )
    if category_id is not None:
        category = await uow.categories.get(category_id)
        if category is None or category.group_id not in (None, team.group_id):
            details.append({"loc": "$.category_id", "message": "unknown category"})
    if len(set(channel_ids)) != len(channel_ids):
        details.append({"loc": "$.channel_ids", "message": "channel ids must be unique"})
    if details:
        raise validation_error("invalid route", details)


def _matchers(spec: Any) -> dict[str, Any]:
    try:
        return normalize_matchers(spec, loc="$.matchers")
    except ValidationError as exc:
        raise validation_error("invalid matchers", exc.details) from None


async def _unique_name(uow: UnitOfWork, team_id: int, name: str, exclude: int = 0) -> None:
    other = await uow.routes.first(team_id=team_id, name=name)
    if other is not None and other.id != exclude:
        raise ApiError(409, "conflict", "a route with this name already exists in the team")


class RoutesController(Controller):
    path = "/api/routes"
    tags = ("routes",)

    @get("/", operation_id="ListRoutes")
    async def list_routes(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        team_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Routes of the teams the caller can read."""
        async with caller_session(request, principal) as (st, uow, access):
            teams = {t.id: t for t in await visible_teams(uow, access) if team_id is None or t.id == team_id}
            routes = [r for r in await uow.routes.find() if r.team_id in teams]
        return [serialize_route(st, r, teams[r.team_id], access) for r in page(routes, limit, offset)]

    @post("/", operation_id="CreateRoute", status_code=201)
    async def create_route(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[RouteCreate]
    ) -> dict[str, Any]:
        """Create a route (team manager); its raw ``intake_token`` is returned only here."""
        name = check_name(data.name)
        matchers = _matchers(data.matchers)
        token = new_token(ROUTE_TOKEN_PREFIX)
        async with caller_session(request, principal) as (st, uow, access):
            team = await managed_team(uow, access, data.team_id)
            await _check_references(
                st,
                uow,
                team,
                source=data.source,
                rotation_id=data.rotation_id,
                channel_ids=data.channel_ids,
                category_id=data.category_id,
            )
            await _unique_name(uow, team.id, name)
            route = await uow.routes.add(
                Route(
                    team_id=team.id,
                    name=name,
                    source=data.source,
                    rotation_id=data.rotation_id,
                    matchers=matchers,
                    group_by=tuple(data.group_by),
                    category_id=data.category_id,
                    group_wait_seconds=data.group_wait_seconds,
                    group_interval_seconds=data.group_interval_seconds,
                    intake_token_prefix=token.prefix,
                    intake_token_hash=token.hash,
                    integration_config=dict(data.integration_config),
                    channel_ids=tuple(data.channel_ids),
                    enabled=data.enabled,
                )
            )
            await audit(uow, st, principal, "route.create", "route", route.id, team=team)
            await uow.commit()
        return {**serialize_route(st, route, team, access), "intake_token": token.raw}

    @get("/{route_id:int}", operation_id="GetRoute")
    async def get_route(
        self, request: Request[Any, Any, Any], principal: Caller, route_id: FromPath[int]
    ) -> dict[str, Any]:
        """One route (never its token)."""
        async with caller_session(request, principal) as (st, uow, access):
            route, team = await visible_route(uow, access, route_id)
        return serialize_route(st, route, team, access)

    @put("/{route_id:int}", operation_id="UpdateRoute")
    async def update_route(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        route_id: FromPath[int],
        data: JSONBody[RouteUpdate],
    ) -> dict[str, Any]:
        """Update a route (team manager); omitted fields keep their values."""
        values = changes(data, skip=("notification_channel_mode",))
        if "name" in values:
            values["name"] = check_name(values["name"])
        if "matchers" in values:
            values["matchers"] = _matchers(values["matchers"])
        for key in ("group_by", "channel_ids"):
            if key in values:
                values[key] = tuple(values[key])
        async with caller_session(request, principal) as (st, uow, access):
            route, team = await visible_route(uow, access, route_id, manage=True)
            if "team_id" in values and values["team_id"] != team.id:
                team = await managed_team(uow, access, values["team_id"])
            updated = attrs.evolve(route, **values)
            await _check_references(
                st,
                uow,
                team,
                source=updated.source,
                rotation_id=updated.rotation_id,
                channel_ids=updated.channel_ids,
                category_id=updated.category_id,
            )
            await _unique_name(uow, team.id, updated.name, exclude=route.id)
            route = await uow.routes.update(updated)
            await audit(
                uow,
                st,
                principal,
                "route.update",
                "route",
                route.id,
                team=team,
                data={"fields": sorted(values)},
            )
            await uow.commit()
        return serialize_route(st, route, team, access)

    @delete("/{route_id:int}", operation_id="DeleteRoute", status_code=200)
    async def delete_route(
        self, request: Request[Any, Any, Any], principal: Caller, route_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a route; its intake token stops working."""
        async with caller_session(request, principal) as (st, uow, access):
            route, team = await visible_route(uow, access, route_id, manage=True)
            return await soft_delete(uow, st, principal, uow.routes, route, "route", team=team)

    @post("/{route_id:int}/intake-token", operation_id="RegenerateRouteIntakeToken", status_code=200)
    async def regenerate_token(
        self, request: Request[Any, Any, Any], principal: Caller, route_id: FromPath[int]
    ) -> dict[str, Any]:
        """Issue a new intake token; the old one stops working in the same transaction."""
        token = new_token(ROUTE_TOKEN_PREFIX)
        async with caller_session(request, principal) as (st, uow, access):
            route, team = await visible_route(uow, access, route_id, manage=True)
            route = await uow.routes.update(
                attrs.evolve(route, intake_token_hash=token.hash, intake_token_prefix=token.prefix)
            )
            await audit(uow, st, principal, "route.intake_token", "route", route.id, team=team)
            await uow.commit()
        return {**serialize_route(st, route, team, access), "intake_token": token.raw}

    @put("/{route_id:int}/channels", operation_id="SetRouteChannels")
    async def set_channels(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        route_id: FromPath[int],
        data: JSONBody[RouteChannelsBody],
    ) -> dict[str, Any]:
        """Replace the route's channels."""
        return await _update_channels(request, principal, route_id, lambda _old: list(data.channel_ids))

    @post("/{route_id:int}/channels/{channel_id:int}", operation_id="AddRouteChannel", status_code=200)
    async def add_channel(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        route_id: FromPath[int],
        channel_id: FromPath[int],
    ) -> dict[str, Any]:
        """Attach one channel to the route."""
        return await _update_channels(
            request, principal, route_id, lambda old: old if channel_id in old else [*old, channel_id]
        )

    @delete("/{route_id:int}/channels/{channel_id:int}", operation_id="RemoveRouteChannel", status_code=200)
    async def remove_channel(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        route_id: FromPath[int],
        channel_id: FromPath[int],
    ) -> dict[str, Any]:
        """Detach one channel from the route."""
        return await _update_channels(
            request, principal, route_id, lambda old: [c for c in old if c != channel_id]
        )


async def _update_channels(
    request: Request[Any, Any, Any], principal: Any, route_id: int, change: Any
) -> dict[str, Any]:
    async with caller_session(request, principal) as (st, uow, access):
        route, team = await visible_route(uow, access, route_id, manage=True)
        channel_ids = list(change(list(route.channel_ids)))
        await _check_references(
            st,
            uow,
            team,
            source=route.source,
            rotation_id=route.rotation_id,
            channel_ids=channel_ids,
            category_id=route.category_id,
        )
        route = await uow.routes.update(attrs.evolve(route, channel_ids=tuple(channel_ids)))
        await audit(
            uow,
            st,
            principal,
            "route.channels",
            "route",
            route.id,
            team=team,
            data={"channel_ids": channel_ids},
        )
        await uow.commit()
    return serialize_route(st, route, team, access)
