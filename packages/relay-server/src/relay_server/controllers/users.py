"""Users: the directory (``GET /api/users``) and administration (``/api/admin/users``) (SPEC S1.2, S9.3)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from relay_core.domain import constants as c
from relay_core.domain.errors import RelayError
from relay_core.domain.model import GroupMembership, User
from relay_core.domain.rotation import load_timezone
from relay_core.plugins import PluginKind, PluginRegistry
from relay_core.ports.storage import UnitOfWork
from relay_server.auth import Access, require
from relay_server.controllers._support import (
    Caller,
    Limit,
    Offset,
    audit,
    caller_session,
    changes,
    get_or_404,
    iso,
    mask_phone,
    page,
    server_state,
    soft_delete,
)
from relay_server.errors import ApiError, forbidden, validation_error
from relay_server.schemas import UserCreate, UserUpdate


def serialize_user(user: User, access: Access, *, full: bool = False) -> dict[str, Any]:
    """A user as others see it; contact details in full only for admins and the user."""
    own = full or access.is_admin or access.user.id == user.id
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name or user.username,
        "email": user.email if own else None,
        "phone": user.phone if own else mask_phone(user.phone),
        "timezone": user.timezone,
        "telegram_user_id": user.telegram_user_id if own else None,
        "slack_user_id": user.slack_user_id if own else None,
        "mattermost_user_id": user.mattermost_user_id if own else None,
        "is_admin": user.is_admin,
        "active": user.active,
        "permissions": {"can_read": True, "can_write": access.is_admin, "can_respond": False},
    }


async def _shares_group(uow: UnitOfWork, access: Access, user_id: int) -> bool:
    if access.is_admin or user_id == access.user.id:
        return True
    groups = {m.group_id for m in await uow.group_memberships.find(user_id=user_id)}
    return bool(groups & access.readable_group_ids())


async def _unique(uow: UnitOfWork, *, username: str | None, email: str | None, exclude: int = 0) -> None:
    if username is not None:
        other = await uow.users.first(username=username)
        if other is not None and other.id != exclude:
            raise ApiError(409, "conflict", "username is already in use")
    if email:
        other = await uow.users.first(email=email)
        if other is not None and other.id != exclude:
            raise ApiError(409, "conflict", "email is already in use")


async def _other_active_admins(uow: UnitOfWork, user_id: int) -> int:
    return len([u for u in await uow.users.find(is_admin=True, active=True) if u.id != user_id])


class UsersController(Controller):
    path = "/api/users"
    tags = ("users",)

    @get("/", operation_id="ListUsers")
    async def list_users(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        include_inactive: Annotated[bool, QueryParameter(description="also disabled users")] = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Active users who share a group with the caller (everyone for an admin)."""
        where: dict[str, Any] = {} if include_inactive else {"active": True}
        async with caller_session(request, principal) as (_st, uow, access):
            users = [u for u in await uow.users.find(**where) if await _shares_group(uow, access, u.id)]
        return [serialize_user(u, access) for u in page(users, limit, offset)]


class AdminUsersController(Controller):
    path = "/api/admin/users"
    tags = ("users",)

    @get("/", operation_id="AdminListUsers")
    async def admin_list(
        self, request: Request[Any, Any, Any], principal: Caller, limit: Limit = 100, offset: Offset = 0
    ) -> list[dict[str, Any]]:
        """Every user (admin)."""
        async with caller_session(request, principal) as (_st, uow, access):
            require(access.is_admin, "Administrator rights are required")
            users = await uow.users.find()
        return [serialize_user(u, access, full=True) for u in page(users, limit, offset)]

    @post("/", operation_id="AdminCreateUser", status_code=201)
    async def admin_create(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[UserCreate]
    ) -> dict[str, Any]:
        """Create a user (admin; a group's user_admin inside that group, never an admin)."""
        load_timezone(data.timezone)
        async with caller_session(request, principal) as (st, uow, access):
            if not access.is_admin:
                if data.group_id is None or not access.is_user_admin(data.group_id):
                    raise forbidden("Administrator or user_admin rights on the group are required")
                if data.is_admin or data.group_role == c.GROUP_USER_ADMIN:
                    raise forbidden("user_admins cannot create administrators or grant user_admin")
            if data.group_id is not None and await uow.groups.get(data.group_id) is None:
                raise validation_error("group not found", [{"loc": "$.group_id", "message": "unknown group"}])
            await _unique(uow, username=data.username, email=data.email)
            user = await uow.users.add(
                User(
                    username=data.username,
                    display_name=data.display_name,
                    email=data.email,
                    phone=data.phone,
                    timezone=data.timezone,
                    password_hash=st.passwords.hash(data.password) if data.password else None,
                    is_admin=data.is_admin,
                    active=data.active,
                    telegram_user_id=data.telegram_user_id,
                    slack_user_id=data.slack_user_id,
                    mattermost_user_id=data.mattermost_user_id,
                )
            )
            if data.group_id is not None:
                await uow.group_memberships.add(
                    GroupMembership(user_id=user.id, group_id=data.group_id, role=data.group_role)
                )
            await audit(uow, st, principal, "user.create", "user", user.id, group_id=data.group_id)
            await uow.commit()
        return serialize_user(user, access, full=True)

    @get("/{user_id:int}", operation_id="AdminGetUser")
    async def admin_get(
        self, request: Request[Any, Any, Any], principal: Caller, user_id: FromPath[int]
    ) -> dict[str, Any]:
        """One user (admin)."""
        async with caller_session(request, principal) as (_st, uow, access):
            require(access.is_admin, "Administrator rights are required")
            user = await get_or_404(uow.users, user_id, "user")
        return serialize_user(user, access, full=True)

    @put("/{user_id:int}", operation_id="AdminUpdateUser")
    async def admin_update(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        user_id: FromPath[int],
        data: JSONBody[UserUpdate],
    ) -> dict[str, Any]:
        """Update a user (admin); an admin cannot disable or demote themself or the last admin."""
        values = changes(data)
        if "timezone" in values:
            load_timezone(values["timezone"])
        async with caller_session(request, principal) as (st, uow, access):
            require(access.is_admin, "Administrator rights are required")
            user = await get_or_404(uow.users, user_id, "user")
            losing_admin = user.is_admin and (
                values.get("active") is False or values.get("is_admin") is False
            )
            if losing_admin and user.id == principal.user_id:
                raise ApiError(409, "conflict", "administrators cannot disable or demote themselves")
            if losing_admin and not await _other_active_admins(uow, user.id):
                raise ApiError(409, "conflict", "at least one active administrator must remain")
            await _unique(uow, username=values.get("username"), email=values.get("email"), exclude=user.id)
            password = values.pop("password", None)
            if password is not None:
                values["password_hash"] = st.passwords.hash(password)
                values["password_version"] = user.password_version + 1
            user = await uow.users.update(attrs.evolve(user, **values))
            fields = sorted(k for k in values if k not in ("password_hash", "password_version"))
            await audit(uow, st, principal, "user.update", "user", user.id, data={"fields": fields})
            await uow.commit()
        return serialize_user(user, access, full=True)

    @delete("/{user_id:int}", operation_id="AdminDeleteUser", status_code=200)
    async def admin_delete(
        self, request: Request[Any, Any, Any], principal: Caller, user_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a user (admin; not oneself, not the last admin)."""
        async with caller_session(request, principal) as (st, uow, access):
            require(access.is_admin, "Administrator rights are required")
            user = await get_or_404(uow.users, user_id, "user")
            if user.id == principal.user_id:
                raise ApiError(409, "conflict", "administrators cannot delete themselves")
            if user.is_admin and not await _other_active_admins(uow, user.id):
                raise ApiError(409, "conflict", "at least one active administrator must remain")
            return await soft_delete(uow, st, principal, uow.users, user, "user", active=False)


class AuditLogsController(Controller):
    path = "/api/admin/audit-logs"
    tags = ("users",)

    @get("/", operation_id="ListAuditLogs")
    async def list_audit_logs(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        action: Annotated[str | None, QueryParameter(max_length=100)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Audit rows, newest first (admin)."""
        async with caller_session(request, principal) as (_st, uow, access):
            require(access.is_admin, "Administrator rights are required")
            where: dict[str, Any] = {"action": action} if action else {}
            rows = await uow.audit.find(order_by="-id", limit=limit, offset=offset, **where)
        return [
            {
                "id": r.id,
                "action": r.action,
                "object_type": r.object_type,
                "object_id": r.object_id,
                "message": r.message,
                "data": dict(r.data),
                "user_id": r.user_id,
                "api_token_id": r.api_token_id,
                "group_id": r.group_id,
                "team_id": r.team_id,
                "created_at": iso(r.created_at),
            }
            for r in rows
        ]


def plugin_rows(registry: PluginRegistry) -> list[dict[str, Any]]:
    """Each loaded plugin: name, distribution, version, module, status, error, hooks and the
    names it provides (``GET /api/plugins`` and ``relay plugins list``)."""
    provides: dict[str, list[str]] = {}
    kinds: tuple[PluginKind, ...] = ("channel", "voice_provider", "sms_provider", "intake_source")
    for kind in kinds:
        try:
            names = registry.classes(kind)
        except RelayError as exc:  # two classes with one name: shown, not fatal for the listing
            provides.setdefault("(registry)", []).append(str(exc))
            continue
        for cls_name in names:
            provides.setdefault(registry.provided_by(kind, cls_name), []).append(f"{kind}:{cls_name}")
    rows = []
    for info in registry.infos():
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "module": info.module,
                "status": info.status,
                "error": info.error,
                "hooks": list(info.hooks),
                "provides": provides.get(info.name, []),
            }
        )
    return rows


class PluginsController(Controller):
    path = "/api/plugins"
    tags = ("users",)

    @get("/", operation_id="ListPlugins")
    async def list_plugins(self, request: Request[Any, Any, Any], principal: Caller) -> list[dict[str, Any]]:
        """Loaded plugins with their distribution, version, status and hooks (admin)."""
        st = server_state(request)
        require(principal.is_admin, "Administrator rights are required")
        if st.registry is None:
            return []
        return plugin_rows(st.registry)
