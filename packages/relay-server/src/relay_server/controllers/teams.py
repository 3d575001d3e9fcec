"""Teams and team memberships (SPEC S1.2, S9.3, S9.6)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from relay_core.domain import constants as c
from relay_core.domain.model import Team, TeamMembership, User
from relay_core.ports.storage import UnitOfWork
from relay_server.auth import Access, load_access, require
from relay_server.controllers._support import (
    Caller,
    Limit,
    Offset,
    audit,
    caller_session,
    changes,
    check_name,
    checked_changes,
    deleted,
    ensure_slug_free,
    page,
    soft_delete,
)
from relay_server.errors import ApiError, not_found, validation_error
from relay_server.schemas import TeamCreate, TeamUpdate, TeamUserCreate, TeamUserUpdate


def serialize_team(team: Team, access: Access) -> dict[str, Any]:
    return {
        "id": team.id,
        "group_id": team.group_id,
        "slug": team.slug,
        "name": team.name,
        "description": team.description,
        "escalation_enabled": team.escalation_enabled,
        "escalation_after_reminders": team.escalation_after_reminders,
        "active": team.active,
        "role": access.team_roles.get(team.id),
        "permissions": {
            "can_read": access.can_read_team(team),
            "can_write": access.can_edit_team(team),
            "can_respond": access.can_respond(team),
        },
    }


def serialize_team_user(m: TeamMembership, user: User | None, team: Team, access: Access) -> dict[str, Any]:
    return {
        "id": m.id,
        "team_id": m.team_id,
        "user_id": m.user_id,
        "username": user.username if user else None,
        "display_name": (user.display_name or user.username) if user else None,
        "role": m.role,
        "active": m.active,
        "permissions": {"can_read": True, "can_write": access.can_edit_team(team), "can_respond": False},
    }


async def readable_team(uow: UnitOfWork, access: Access, team_id: int) -> Team:
    """The team if the caller may read it; 404 otherwise (existence is not leaked)."""
    team = await uow.teams.get(team_id)
    if team is None or not access.can_read_team(team):
        raise not_found("team")
    return team


async def managed_team(uow: UnitOfWork, access: Access, team_id: int) -> Team:
    """The team if the caller manages it: 404 when invisible, 403 when only readable."""
    team = await readable_team(uow, access, team_id)
    require(access.can_manage(team), "Manager rights on the team are required")
    return team


async def visible_teams(uow: UnitOfWork, access: Access) -> list[Team]:
    return [t for t in await uow.teams.find() if access.can_read_team(t)]


async def _team_membership(
    uow: UnitOfWork, access: Access, membership_id: int
) -> tuple[TeamMembership, Team]:
    membership = await uow.team_memberships.get(membership_id)
    team = await uow.teams.get(membership.team_id) if membership else None
    if membership is None or team is None or not access.can_read_team(team):
        raise not_found("team membership")
    return membership, team


class TeamsController(Controller):
    path = "/api/teams"
    tags = ("teams",)

    @get("/", operation_id="ListTeams")
    async def list_teams(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Teams the caller can read."""
        async with caller_session(request, principal) as (_st, uow, access):
            teams = [
                t for t in await visible_teams(uow, access) if group_id is None or t.group_id == group_id
            ]
        return [serialize_team(t, access) for t in page(teams, limit, offset)]

    @post("/", operation_id="CreateTeam", status_code=201)
    async def create_team(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[TeamCreate]
    ) -> dict[str, Any]:
        """Create a team in a group (group editor or admin); the creator becomes its manager."""
        name = check_name(data.name)
        async with caller_session(request, principal) as (st, uow, access):
            group = await uow.groups.get(data.group_id)
            if group is None or not access.can_read_group(group.id):
                raise not_found("group")
            require(access.is_group_editor(group.id), "Editor rights on the group are required")
            await ensure_slug_free(uow.teams, {"slug": data.slug})
            team = await uow.teams.add(
                Team(
                    group_id=group.id,
                    slug=data.slug,
                    name=name,
                    description=data.description,
                    escalation_enabled=data.escalation_enabled,
                    escalation_after_reminders=data.escalation_after_reminders,
                    active=data.active,
                )
            )
            if group.id in access.group_roles:
                await uow.team_memberships.add(
                    TeamMembership(team_id=team.id, user_id=principal.user_id, role=c.TEAM_MANAGER)
                )
            await audit(
                uow, st, principal, "team.create", "team", team.id, group_id=group.id, team_id=team.id
            )
            await uow.commit()
            access = await load_access(uow, principal.user)
        return serialize_team(team, access)

    @get("/{team_id:int}", operation_id="GetTeam")
    async def get_team(
        self, request: Request[Any, Any, Any], principal: Caller, team_id: FromPath[int]
    ) -> dict[str, Any]:
        """One team."""
        async with caller_session(request, principal) as (_st, uow, access):
            team = await readable_team(uow, access, team_id)
        return serialize_team(team, access)

    @put("/{team_id:int}", operation_id="UpdateTeam")
    async def update_team(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        team_id: FromPath[int],
        data: JSONBody[TeamUpdate],
    ) -> dict[str, Any]:
        """Update a team (team manager, group editor or admin)."""
        values = checked_changes(data)
        async with caller_session(request, principal) as (st, uow, access):
            team = await readable_team(uow, access, team_id)
            require(access.can_edit_team(team), "Manager rights on the team are required")
            await ensure_slug_free(uow.teams, values, team.slug)
            team = await uow.teams.update(attrs.evolve(team, **values))
            await audit(
                uow, st, principal, "team.update", "team", team.id, team=team, data={"fields": sorted(values)}
            )
            await uow.commit()
        return serialize_team(team, access)

    @delete("/{team_id:int}", operation_id="DeleteTeam", status_code=200)
    async def delete_team(
        self, request: Request[Any, Any, Any], principal: Caller, team_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a team (team manager, group editor or admin)."""
        async with caller_session(request, principal) as (st, uow, access):
            team = await readable_team(uow, access, team_id)
            require(access.can_edit_team(team), "Manager rights on the team are required")
            return await soft_delete(
                uow,
                st,
                principal,
                uow.teams,
                team,
                "team",
                group_id=team.group_id,
                team_id=team.id,
                active=False,
            )

    @get("/{team_id:int}/users", operation_id="ListTeamUsers")
    async def list_team_users(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        team_id: FromPath[int],
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Members of a team with their roles."""
        async with caller_session(request, principal) as (_st, uow, access):
            team = await readable_team(uow, access, team_id)
            rows = page(await uow.team_memberships.find(team_id=team.id), limit, offset)
            return [serialize_team_user(m, await uow.users.get(m.user_id), team, access) for m in rows]

    @post("/{team_id:int}/users", operation_id="AddTeamUser", status_code=201)
    async def add_team_user(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        team_id: FromPath[int],
        data: JSONBody[TeamUserCreate],
    ) -> dict[str, Any]:
        """Add a member of the team's group to the team (team manager, group editor or admin)."""
        async with caller_session(request, principal) as (st, uow, access):
            team = await readable_team(uow, access, team_id)
            require(access.can_edit_team(team), "Manager rights on the team are required")
            user = await uow.users.get(data.user_id)
            in_group = await uow.group_memberships.first(
                user_id=data.user_id, group_id=team.group_id, active=True
            )
            if user is None or in_group is None or not user.active:
                raise validation_error(
                    "user must be an active member of the team's group",
                    [{"loc": "$.user_id", "message": "not an active member of the team's group"}],
                )
            if await uow.team_memberships.first(team_id=team.id, user_id=user.id):
                raise ApiError(409, "conflict", "user is already a member of the team")
            membership = await uow.team_memberships.add(
                TeamMembership(team_id=team.id, user_id=user.id, role=data.role, active=data.active)
            )
            await audit(
                uow, st, principal, "team_membership.create", "team_membership", membership.id, team=team
            )
            await uow.commit()
        return serialize_team_user(membership, user, team, access)


class TeamMembershipsController(Controller):
    path = "/api/teams/users"
    tags = ("teams",)

    @put("/{membership_id:int}", operation_id="UpdateTeamUser")
    async def update_team_user(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        membership_id: FromPath[int],
        data: JSONBody[TeamUserUpdate],
    ) -> dict[str, Any]:
        """Change a team member's role or active flag."""
        values = changes(data)
        async with caller_session(request, principal) as (st, uow, access):
            membership, team = await _team_membership(uow, access, membership_id)
            require(access.can_edit_team(team), "Manager rights on the team are required")
            membership = await uow.team_memberships.update(attrs.evolve(membership, **values))
            await audit(
                uow,
                st,
                principal,
                "team_membership.update",
                "team_membership",
                membership.id,
                team=team,
                data=values,
            )
            await uow.commit()
            return serialize_team_user(membership, await uow.users.get(membership.user_id), team, access)

    @delete("/{membership_id:int}", operation_id="DeleteTeamUser", status_code=200)
    async def delete_team_user(
        self, request: Request[Any, Any, Any], principal: Caller, membership_id: FromPath[int]
    ) -> dict[str, Any]:
        """Remove a user from a team."""
        async with caller_session(request, principal) as (st, uow, access):
            membership, team = await _team_membership(uow, access, membership_id)
            require(access.can_edit_team(team), "Manager rights on the team are required")
            await uow.team_memberships.delete(membership.id)
            await audit(
                uow, st, principal, "team_membership.delete", "team_membership", membership.id, team=team
            )
            await uow.commit()
        return deleted(membership_id)
