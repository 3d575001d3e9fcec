"""Groups and group memberships (SPEC S1.2, S9.3, S9.6): groups are the access boundary."""

from __future__ import annotations

from typing import Any

import attrs
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody

from relay_core.domain.model import Group, GroupMembership, User
from relay_core.ports.storage import UnitOfWork
from relay_server.auth import Access, require
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
from relay_server.errors import ApiError, not_found
from relay_server.schemas import GroupCreate, GroupMembershipCreate, GroupMembershipUpdate, GroupUpdate


def serialize_group(group: Group, access: Access) -> dict[str, Any]:
    return {
        "id": group.id,
        "slug": group.slug,
        "name": group.name,
        "description": group.description,
        "active": group.active,
        "role": "admin"
        if access.is_admin and group.id not in access.group_roles
        else access.group_roles.get(group.id),
        "permissions": {
            "can_read": access.can_read_group(group.id),
            "can_write": access.is_admin,
            "can_respond": False,
        },
    }


def serialize_membership(m: GroupMembership, user: User | None, access: Access) -> dict[str, Any]:
    return {
        "id": m.id,
        "group_id": m.group_id,
        "user_id": m.user_id,
        "username": user.username if user else None,
        "display_name": (user.display_name or user.username) if user else None,
        "role": m.role,
        "active": m.active,
        "permissions": {
            "can_read": True,
            "can_write": access.is_admin,
            "can_respond": False,
        },
    }


async def readable_group(uow: UnitOfWork, access: Access, group_id: int) -> Group:
    group = await uow.groups.get(group_id)
    if group is None or not access.can_read_group(group.id):
        raise not_found("group")
    return group


async def _membership(uow: UnitOfWork, access: Access, membership_id: int) -> GroupMembership:
    membership = await uow.group_memberships.get(membership_id)
    if membership is None or not access.can_read_group(membership.group_id):
        raise not_found("group membership")
    return membership


async def _deactivate_team_memberships(uow: UnitOfWork, user_id: int, group_id: int) -> None:
    """Invariant S1.9 #8: team memberships need an active group membership."""
    team_ids = {t.id for t in await uow.teams.find(group_id=group_id)}
    for tm in await uow.team_memberships.find(user_id=user_id, active=True):
        if tm.team_id in team_ids:
            await uow.team_memberships.update(attrs.evolve(tm, active=False))


class GroupsController(Controller):
    path = "/api/groups"
    tags = ("groups",)

    @get("/", operation_id="ListGroups")
    async def list_groups(
        self, request: Request[Any, Any, Any], principal: Caller, limit: Limit = 100, offset: Offset = 0
    ) -> list[dict[str, Any]]:
        """Groups the caller belongs to (every group for an admin)."""
        async with caller_session(request, principal) as (_st, uow, access):
            groups = [g for g in await uow.groups.find() if access.can_read_group(g.id)]
        return [serialize_group(g, access) for g in page(groups, limit, offset)]

    @post("/", operation_id="CreateGroup", status_code=201)
    async def create_group(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[GroupCreate]
    ) -> dict[str, Any]:
        """Create a group (admin)."""
        name = check_name(data.name)
        async with caller_session(request, principal) as (st, uow, access):
            require(access.is_admin, "Only administrators create groups")
            await ensure_slug_free(uow.groups, {"slug": data.slug})
            group = await uow.groups.add(
                Group(slug=data.slug, name=name, description=data.description, active=data.active)
            )
            await audit(uow, st, principal, "group.create", "group", group.id, group_id=group.id)
            await uow.commit()
        return serialize_group(group, access)

    @get("/{group_id:int}", operation_id="GetGroup")
    async def get_group(
        self, request: Request[Any, Any, Any], principal: Caller, group_id: FromPath[int]
    ) -> dict[str, Any]:
        """One group."""
        async with caller_session(request, principal) as (_st, uow, access):
            group = await readable_group(uow, access, group_id)
        return serialize_group(group, access)

    @put("/{group_id:int}", operation_id="UpdateGroup")
    async def update_group(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: FromPath[int],
        data: JSONBody[GroupUpdate],
    ) -> dict[str, Any]:
        """Update a group (admin)."""
        values = checked_changes(data)
        async with caller_session(request, principal) as (st, uow, access):
            group = await readable_group(uow, access, group_id)
            require(access.is_admin, "Only administrators change groups")
            await ensure_slug_free(uow.groups, values, group.slug)
            group = await uow.groups.update(attrs.evolve(group, **values))
            await audit(
                uow,
                st,
                principal,
                "group.update",
                "group",
                group.id,
                group_id=group.id,
                data={"fields": sorted(values)},
            )
            await uow.commit()
        return serialize_group(group, access)

    @delete("/{group_id:int}", operation_id="DeleteGroup", status_code=200)
    async def delete_group(
        self, request: Request[Any, Any, Any], principal: Caller, group_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a group (admin)."""
        async with caller_session(request, principal) as (st, uow, access):
            group = await readable_group(uow, access, group_id)
            require(access.is_admin, "Only administrators delete groups")
            return await soft_delete(
                uow, st, principal, uow.groups, group, "group", group_id=group.id, active=False
            )

    @get("/{group_id:int}/users", operation_id="ListGroupUsers")
    async def list_members(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: FromPath[int],
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Memberships of a group."""
        async with caller_session(request, principal) as (_st, uow, access):
            await readable_group(uow, access, group_id)
            rows = page(await uow.group_memberships.find(group_id=group_id), limit, offset)
            return [serialize_membership(m, await uow.users.get(m.user_id), access) for m in rows]

    @post("/{group_id:int}/users", operation_id="AddGroupUser", status_code=201)
    async def add_member(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: FromPath[int],
        data: JSONBody[GroupMembershipCreate],
    ) -> dict[str, Any]:
        """Add an existing user to a group (admin)."""
        async with caller_session(request, principal) as (st, uow, access):
            await readable_group(uow, access, group_id)
            require(access.is_admin, "Only administrators add existing users to groups")
            user = await uow.users.get(data.user_id)
            if user is None:
                raise ApiError(
                    400,
                    "validation_error",
                    "user not found",
                    details=[{"loc": "$.user_id", "message": "unknown user"}],
                )
            membership = await uow.group_memberships.add(
                GroupMembership(user_id=user.id, group_id=group_id, role=data.role, active=data.active)
            )
            await audit(
                uow,
                st,
                principal,
                "group_membership.create",
                "group_membership",
                membership.id,
                group_id=group_id,
            )
            await uow.commit()
        return serialize_membership(membership, user, access)


class GroupMembershipsController(Controller):
    path = "/api/groups/users"
    tags = ("groups",)

    @put("/{membership_id:int}", operation_id="UpdateGroupUser")
    async def update_member(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        membership_id: FromPath[int],
        data: JSONBody[GroupMembershipUpdate],
    ) -> dict[str, Any]:
        """Change a membership's role or active flag (admin)."""
        values = changes(data)
        async with caller_session(request, principal) as (st, uow, access):
            membership = await _membership(uow, access, membership_id)
            require(access.is_admin, "Only administrators change group roles")
            membership = await uow.group_memberships.update(attrs.evolve(membership, **values))
            if values.get("active") is False:
                await _deactivate_team_memberships(uow, membership.user_id, membership.group_id)
            await audit(
                uow,
                st,
                principal,
                "group_membership.update",
                "group_membership",
                membership.id,
                group_id=membership.group_id,
                data=values,
            )
            await uow.commit()
            return serialize_membership(membership, await uow.users.get(membership.user_id), access)

    @delete("/{membership_id:int}", operation_id="DeleteGroupUser", status_code=200)
    async def delete_member(
        self, request: Request[Any, Any, Any], principal: Caller, membership_id: FromPath[int]
    ) -> dict[str, Any]:
        """Remove a membership (admin); the user's team memberships in the group are deactivated."""
        async with caller_session(request, principal) as (st, uow, access):
            membership = await _membership(uow, access, membership_id)
            require(access.is_admin, "Only administrators remove group memberships")
            await _deactivate_team_memberships(uow, membership.user_id, membership.group_id)
            await uow.group_memberships.delete(membership.id)
            await audit(
                uow,
                st,
                principal,
                "group_membership.delete",
                "group_membership",
                membership.id,
                group_id=membership.group_id,
            )
            await uow.commit()
        return deleted(membership_id)

    @post("/{membership_id:int}/disable", operation_id="DisableGroupUser", status_code=200)
    async def disable_member(
        self, request: Request[Any, Any, Any], principal: Caller, membership_id: FromPath[int]
    ) -> dict[str, Any]:
        """Disable a membership (admin or the group's user_admin)."""
        async with caller_session(request, principal) as (st, uow, access):
            membership = await _membership(uow, access, membership_id)
            require(access.is_user_admin(membership.group_id), "user_admin rights on the group are required")
            target = await uow.users.get(membership.user_id)
            if target is not None and target.is_admin and not access.is_admin:
                raise ApiError(403, "permission_denied", "Only administrators disable administrators")
            membership = await uow.group_memberships.update(attrs.evolve(membership, active=False))
            await _deactivate_team_memberships(uow, membership.user_id, membership.group_id)
            await audit(
                uow,
                st,
                principal,
                "group_membership.disable",
                "group_membership",
                membership.id,
                group_id=membership.group_id,
            )
            await uow.commit()
            return serialize_membership(membership, target, access)
