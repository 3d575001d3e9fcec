"""Category rules, role groups, subscriptions and test alerts (SPEC S8.2–S8.8, S6.1, S9.6).

Controllers:

* ``/api/category-rules`` — S8.2 rules (group editor).
* ``/api/role-groups`` — S8.3 audiences, their members (users of the group) and contacts.
* ``/api/subscriptions`` — S8.4 subscriptions, ``/{id}/test`` (S8.7) and the S8.6 preset.
* ``/api/profile/subscriptions`` — the caller's opt-in/opt-out.
* ``/api/alerts/{id}/subscriptions`` (S8.8) and ``/api/alerts/{id}/category`` (S8.2).
* ``/api/channels/{id}/test`` and ``/api/notifications/tests/{test_id}`` (S6.1).
* ``/api/routes/{id}/test-alert`` (S8.7): a real alert through intake, flagged ``test``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import attrs
import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import UNSET, Meta, Struct, UnsetType

from relay_core.domain import constants as c
from relay_core.domain.errors import ValidationError
from relay_core.domain.matchers import normalize_matchers
from relay_core.domain.model import (
    Category,
    CategoryRule,
    Channel,
    NormalizedAlert,
    RoleGroup,
    RoleGroupContact,
    RoleGroupMember,
    Subscription,
    SubscriptionPreference,
    User,
)
from relay_core.ports.channels import Recipient
from relay_core.ports.storage import UnitOfWork
from relay_core.services.context import Context
from relay_core.services.intake import ensure_builtin_categories
from relay_core.services.subscriptions import (
    apply_standard_preset,
    change_category,
    subscription_channel,
    subscription_report,
    subscription_targets,
)
from relay_core.services.testalerts import TestRun, TestTarget, read_test_run, send_test
from relay_server.auth import Access, require
from relay_server.controllers._support import (
    Caller,
    Limit,
    Offset,
    audit,
    caller_session,
    changes,
    check_name,
    deleted,
    iso,
    mask_email,
    mask_phone,
    page,
    server_state,
    soft_delete,
)
from relay_server.controllers.alerts import _Lookups, _visible_group, serialize_group
from relay_server.controllers.channels import _channel
from relay_server.errors import ApiError, not_found, validation_error

# --- request bodies ----------------------------------------------------------------------------

Id = Annotated[int, Meta(ge=1, le=2**53)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Slug = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Description = Annotated[str, Meta(max_length=2000)]
Position = Annotated[int, Meta(ge=0, le=10_000)]
Phone = Annotated[str, Meta(pattern=r"^\+\d{1,15}$")]
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Matchers = dict[str, Any] | list[dict[str, Any]]
Severity = Literal["critical", "high", "medium", "warning", "low", "info"]
SubEvent = Literal["created", "acknowledged", "resolved", "reopened", "escalated"]
ChannelKind = Literal["email", "sms"]
IdList = Annotated[list[Id], Meta(max_length=200)]
Region = Annotated[str, Meta(min_length=1, max_length=64)]


class _Body(Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CategoryRuleCreate(_Body, kw_only=True):
    group_id: Id
    category_id: Id
    matchers: Matchers = msgspec.field(default_factory=dict)
    position: Position = 0
    enabled: bool = True


class CategoryRuleUpdate(_Body, kw_only=True):
    category_id: Id | UnsetType = UNSET
    matchers: Matchers | UnsetType = UNSET
    position: Position | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class RoleGroupCreate(_Body, kw_only=True):
    group_id: Id
    slug: Slug
    name: Name
    description: Description = ""
    enabled: bool = True


class RoleGroupUpdate(_Body, kw_only=True):
    slug: Slug | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class RoleGroupMemberCreate(_Body, kw_only=True):
    user_id: Id


class RoleGroupContactCreate(_Body, kw_only=True):
    name: Name
    email: Email | None = None
    phone: Phone | None = None


class RoleGroupContactUpdate(_Body, kw_only=True):
    name: Name | UnsetType = UNSET
    email: Email | UnsetType | None = UNSET
    phone: Phone | UnsetType | None = UNSET


class SubscriptionCreate(_Body, kw_only=True):
    role_group_id: Id
    name: Name
    category_id: Id | None = None
    category: Slug | None = None
    group_id: Id | None = None
    channel_types: Annotated[list[ChannelKind], Meta(max_length=2)] = msgspec.field(default_factory=list)
    sms_channel_id: Id | None = None
    channel_ids: IdList = msgspec.field(default_factory=list)
    severities: Annotated[list[Severity], Meta(max_length=6)] = msgspec.field(default_factory=list)
    regions: Annotated[list[Region], Meta(max_length=100)] = msgspec.field(default_factory=list)
    matchers: Matchers = msgspec.field(default_factory=dict)
    events: Annotated[list[SubEvent], Meta(min_length=1, max_length=5)] = msgspec.field(
        default_factory=lambda: ["created", "resolved"]
    )
    notify_after_seconds: Annotated[int, Meta(ge=0, le=604_800)] = 0
    requires_opt_in: bool = False
    enabled: bool = True


class SubscriptionUpdate(_Body, kw_only=True):
    name: Name | UnsetType = UNSET
    category_id: Id | UnsetType = UNSET
    category: Slug | UnsetType = UNSET
    role_group_id: Id | UnsetType = UNSET
    channel_types: Annotated[list[ChannelKind], Meta(max_length=2)] | UnsetType = UNSET
    sms_channel_id: Id | UnsetType | None = UNSET
    channel_ids: IdList | UnsetType = UNSET
    severities: Annotated[list[Severity], Meta(max_length=6)] | UnsetType = UNSET
    regions: Annotated[list[Region], Meta(max_length=100)] | UnsetType = UNSET
    matchers: Matchers | UnsetType = UNSET
    events: Annotated[list[SubEvent], Meta(min_length=1, max_length=5)] | UnsetType = UNSET
    notify_after_seconds: Annotated[int, Meta(ge=0, le=604_800)] | UnsetType = UNSET
    requires_opt_in: bool | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class StandardPresetBody(_Body, kw_only=True):
    group_id: Id
    slack_channel_id: Id | None = None
    teams_channel_id: Id | None = None
    webhook_channel_id: Id | None = None


class PreferenceItem(_Body, kw_only=True):
    subscription_id: Id
    opted_in: bool


class AlertCategoryBody(_Body, kw_only=True):
    category: Slug | None = None
    category_id: Id | None = None


class RouteTestAlertBody(_Body, kw_only=True):
    severity: Severity = "critical"
    title: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    message: Description = ""


# --- shared helpers ----------------------------------------------------------------------------


def _perms(access: Access, group_id: int) -> dict[str, bool]:
    return {"can_read": True, "can_write": access.is_group_editor(group_id), "can_respond": False}


async def _editable_group(uow: UnitOfWork, access: Access, group_id: int) -> int:
    """404 unless the group is visible, 403 unless the caller edits it."""
    group = await uow.groups.get(group_id)
    if group is None or not access.can_read_group(group.id):
        raise not_found("group")
    require(access.is_group_editor(group.id), "Editor rights on the group are required")
    return group.id


def _group_scope(access: Access, group_id: int | None) -> set[int] | None:
    """Group ids the caller may list (``None`` = every group, for admins)."""
    if group_id is not None:
        return {group_id} if access.can_read_group(group_id) else set()
    return None if access.is_admin else access.readable_group_ids()


async def _visible_categories(uow: UnitOfWork, group_id: int) -> list[Category]:
    return [
        cat
        for cat in await ensure_builtin_categories(uow)
        if cat.group_id in (None, group_id) and cat.deleted_at is None
    ]


def _matchers(spec: Any) -> dict[str, Any]:
    try:
        return normalize_matchers(spec, loc="$.matchers")
    except ValidationError as exc:
        details = [
            {**d, "loc": d["loc"] if str(d["loc"]).startswith("$") else f"$.{d['loc']}"} for d in exc.details
        ]
        raise validation_error("invalid matchers", details) from None


def _bad(loc: str, message: str, summary: str | None = None) -> ApiError:
    return validation_error(summary or message, [{"loc": loc, "message": message}])


# --- category rules (S8.2) ---------------------------------------------------------------------


def serialize_rule(rule: CategoryRule, category: Category | None, access: Access) -> dict[str, Any]:
    return {
        "id": rule.id,
        "group_id": rule.group_id,
        "category_id": rule.category_id,
        "category": category.slug if category else None,
        "matchers": rule.matchers,
        "position": rule.position,
        "enabled": rule.enabled,
        "permissions": _perms(access, rule.group_id),
    }


async def _rule(uow: UnitOfWork, access: Access, rule_id: int) -> CategoryRule:
    rule = await uow.category_rules.get(rule_id)
    if rule is None or not access.can_read_group(rule.group_id):
        raise not_found("category rule")
    require(access.is_group_editor(rule.group_id), "Editor rights on the group are required")
    return rule


async def _rule_category(uow: UnitOfWork, group_id: int, category_id: int) -> Category:
    for cat in await _visible_categories(uow, group_id):
        if cat.id == category_id:
            return cat
    raise _bad("$.category_id", "category must be built-in or belong to the rule's group", "unknown category")


class CategoryRulesController(Controller):
    path = "/api/category-rules"
    tags = ("categories",)

    @get("/", operation_id="ListCategoryRules")
    async def list_rules(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Category rules of the caller's groups, in evaluation order (position, id)."""
        async with caller_session(request, principal) as (_st, uow, access):
            scope = _group_scope(access, group_id)
            rules = [r for r in await uow.category_rules.find() if scope is None or r.group_id in scope]
            rules.sort(key=lambda r: (r.group_id, r.position, r.id))
            out = [serialize_rule(r, await uow.categories.get(r.category_id), access) for r in rules]
        return page(out, limit, offset)

    @post("/", operation_id="CreateCategoryRule", status_code=201)
    async def create_rule(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[CategoryRuleCreate]
    ) -> dict[str, Any]:
        """Create a category rule (group editor)."""
        matchers = _matchers(data.matchers)
        async with caller_session(request, principal) as (st, uow, access):
            group_id = await _editable_group(uow, access, data.group_id)
            category = await _rule_category(uow, group_id, data.category_id)
            rule = await uow.category_rules.add(
                CategoryRule(
                    group_id=group_id,
                    category_id=category.id,
                    matchers=matchers,
                    position=data.position,
                    enabled=data.enabled,
                )
            )
            await audit(
                uow, st, principal, "category_rule.create", "category_rule", rule.id, group_id=group_id
            )
            await uow.commit()
        return serialize_rule(rule, category, access)

    @put("/{rule_id:int}", operation_id="UpdateCategoryRule")
    async def update_rule(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rule_id: FromPath[int],
        data: JSONBody[CategoryRuleUpdate],
    ) -> dict[str, Any]:
        """Update a category rule (partial)."""
        values = changes(data)
        if "matchers" in values:
            values["matchers"] = _matchers(values["matchers"])
        async with caller_session(request, principal) as (st, uow, access):
            rule = await _rule(uow, access, rule_id)
            category = await _rule_category(uow, rule.group_id, values.get("category_id", rule.category_id))
            rule = await uow.category_rules.update(attrs.evolve(rule, **values))
            await audit(
                uow,
                st,
                principal,
                "category_rule.update",
                "category_rule",
                rule.id,
                group_id=rule.group_id,
                data={"fields": sorted(values)},
            )
            await uow.commit()
        return serialize_rule(rule, category, access)

    @delete("/{rule_id:int}", operation_id="DeleteCategoryRule", status_code=200)
    async def delete_rule(
        self, request: Request[Any, Any, Any], principal: Caller, rule_id: FromPath[int]
    ) -> dict[str, Any]:
        """Delete a category rule."""
        async with caller_session(request, principal) as (st, uow, access):
            rule = await _rule(uow, access, rule_id)
            await uow.category_rules.delete(rule.id)
            await audit(
                uow, st, principal, "category_rule.delete", "category_rule", rule.id, group_id=rule.group_id
            )
            await uow.commit()
        return deleted(rule_id)


# --- role groups (S8.3) ------------------------------------------------------------------------


def serialize_contact(contact: RoleGroupContact, access: Access, group_id: int) -> dict[str, Any]:
    """Editors of the group see the e-mail address; phone numbers are masked except for admins."""
    return {
        "id": contact.id,
        "role_group_id": contact.role_group_id,
        "name": contact.name,
        "email": contact.email if access.is_group_editor(group_id) else mask_email(contact.email),
        "phone": contact.phone if access.is_admin else mask_phone(contact.phone),
        "has_email": bool(contact.email),
        "has_phone": bool(contact.phone),
    }


async def _serialize_member(uow: UnitOfWork, member: RoleGroupMember) -> dict[str, Any]:
    user = await uow.users.get(member.user_id)
    return {
        "id": member.id,
        "role_group_id": member.role_group_id,
        "user_id": member.user_id,
        "username": user.username if user else None,
        "display_name": user.label if user else None,
        "has_email": bool(user and user.email),
        "has_phone": bool(user and user.phone),
    }


async def serialize_role_group(uow: UnitOfWork, rg: RoleGroup, access: Access) -> dict[str, Any]:
    members = await uow.role_group_members.find(role_group_id=rg.id)
    contacts = await uow.role_group_contacts.find(role_group_id=rg.id)
    return {
        "id": rg.id,
        "group_id": rg.group_id,
        "slug": rg.slug,
        "name": rg.name,
        "description": rg.description,
        "enabled": rg.enabled,
        "member_count": len(members),
        "contact_count": len(contacts),
        "members": [await _serialize_member(uow, m) for m in members],
        "contacts": [serialize_contact(x, access, rg.group_id) for x in contacts],
        "permissions": _perms(access, rg.group_id),
    }


async def _role_group(uow: UnitOfWork, access: Access, rg_id: int, *, write: bool = False) -> RoleGroup:
    rg = await uow.role_groups.get(rg_id)
    if rg is None or not access.can_read_group(rg.group_id):
        raise not_found("role group")
    if write:
        require(access.is_group_editor(rg.group_id), "Editor rights on the group are required")
    return rg


async def _unique_role_group_slug(uow: UnitOfWork, group_id: int, slug: str, exclude: int = 0) -> None:
    other = await uow.role_groups.first(group_id=group_id, slug=slug)
    if other is not None and other.id != exclude:
        raise ApiError(409, "conflict", "a role group with this slug already exists in the group")


class RoleGroupsController(Controller):
    path = "/api/role-groups"
    tags = ("role-groups",)

    @get("/", operation_id="ListRoleGroups")
    async def list_role_groups(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Role groups of the caller's groups."""
        async with caller_session(request, principal) as (_st, uow, access):
            scope = _group_scope(access, group_id)
            rows = [rg for rg in await uow.role_groups.find() if scope is None or rg.group_id in scope]
            out = [await serialize_role_group(uow, rg, access) for rg in page(rows, limit, offset)]
        return out

    @post("/", operation_id="CreateRoleGroup", status_code=201)
    async def create_role_group(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[RoleGroupCreate]
    ) -> dict[str, Any]:
        """Create a role group (group editor)."""
        name = check_name(data.name)
        async with caller_session(request, principal) as (st, uow, access):
            group_id = await _editable_group(uow, access, data.group_id)
            await _unique_role_group_slug(uow, group_id, data.slug)
            rg = await uow.role_groups.add(
                RoleGroup(
                    group_id=group_id,
                    slug=data.slug,
                    name=name,
                    description=data.description,
                    enabled=data.enabled,
                )
            )
            await audit(uow, st, principal, "role_group.create", "role_group", rg.id, group_id=group_id)
            await uow.commit()
            return await serialize_role_group(uow, rg, access)

    @get("/{rg_id:int}", operation_id="GetRoleGroup")
    async def get_role_group(
        self, request: Request[Any, Any, Any], principal: Caller, rg_id: FromPath[int]
    ) -> dict[str, Any]:
        """One role group with members and contacts."""
        async with caller_session(request, principal) as (_st, uow, access):
            rg = await _role_group(uow, access, rg_id)
            return await serialize_role_group(uow, rg, access)

    @put("/{rg_id:int}", operation_id="UpdateRoleGroup")
    async def update_role_group(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rg_id: FromPath[int],
        data: JSONBody[RoleGroupUpdate],
    ) -> dict[str, Any]:
        """Update a role group (partial)."""
        values = changes(data)
        if "name" in values:
            values["name"] = check_name(values["name"])
        async with caller_session(request, principal) as (st, uow, access):
            rg = await _role_group(uow, access, rg_id, write=True)
            if "slug" in values:
                await _unique_role_group_slug(uow, rg.group_id, values["slug"], exclude=rg.id)
            rg = await uow.role_groups.update(attrs.evolve(rg, **values))
            await audit(
                uow,
                st,
                principal,
                "role_group.update",
                "role_group",
                rg.id,
                group_id=rg.group_id,
                data={"fields": sorted(values)},
            )
            await uow.commit()
            return await serialize_role_group(uow, rg, access)

    @delete("/{rg_id:int}", operation_id="DeleteRoleGroup", status_code=200)
    async def delete_role_group(
        self, request: Request[Any, Any, Any], principal: Caller, rg_id: FromPath[int]
    ) -> dict[str, Any]:
        """Delete a role group; 409 while subscriptions use it."""
        async with caller_session(request, principal) as (st, uow, access):
            rg = await _role_group(uow, access, rg_id, write=True)
            used = await uow.subscriptions.find(role_group_id=rg.id)
            if used:
                raise ApiError(
                    409,
                    "conflict",
                    "the role group is used by subscriptions; delete them first",
                    details=[{"loc": "$.id", "message": f"subscription {s.id}"} for s in used],
                )
            return await soft_delete(
                uow, st, principal, uow.role_groups, rg, "role_group", group_id=rg.group_id
            )

    @get("/{rg_id:int}/members", operation_id="ListRoleGroupMembers")
    async def list_members(
        self, request: Request[Any, Any, Any], principal: Caller, rg_id: FromPath[int]
    ) -> list[dict[str, Any]]:
        """Members (users) of a role group."""
        async with caller_session(request, principal) as (_st, uow, access):
            rg = await _role_group(uow, access, rg_id)
            return [
                await _serialize_member(uow, m)
                for m in await uow.role_group_members.find(role_group_id=rg.id)
            ]

    @post("/{rg_id:int}/members", operation_id="AddRoleGroupMember", status_code=201)
    async def add_member(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rg_id: FromPath[int],
        data: JSONBody[RoleGroupMemberCreate],
    ) -> dict[str, Any]:
        """Add a user (an active member of the group) to a role group."""
        async with caller_session(request, principal) as (st, uow, access):
            rg = await _role_group(uow, access, rg_id, write=True)
            user = await uow.users.get(data.user_id)
            membership = await uow.group_memberships.first(
                user_id=data.user_id, group_id=rg.group_id, active=True
            )
            if user is None or not user.active or membership is None:
                raise _bad("$.user_id", "user must be an active member of the group", "invalid member")
            if await uow.role_group_members.first(role_group_id=rg.id, user_id=user.id) is not None:
                raise ApiError(409, "conflict", "the user is already a member of the role group")
            member = await uow.role_group_members.add(RoleGroupMember(role_group_id=rg.id, user_id=user.id))
            await audit(
                uow,
                st,
                principal,
                "role_group.member_add",
                "role_group",
                rg.id,
                group_id=rg.group_id,
                data={"user_id": user.id},
            )
            await uow.commit()
            return await _serialize_member(uow, member)

    @delete("/members/{member_id:int}", operation_id="RemoveRoleGroupMember", status_code=200)
    async def remove_member(
        self, request: Request[Any, Any, Any], principal: Caller, member_id: FromPath[int]
    ) -> dict[str, Any]:
        """Remove a member from a role group."""
        async with caller_session(request, principal) as (st, uow, access):
            member = await uow.role_group_members.get(member_id)
            if member is None:
                raise not_found("role group member")
            rg = await _role_group(uow, access, member.role_group_id, write=True)
            await uow.role_group_members.delete(member.id)
            await audit(
                uow,
                st,
                principal,
                "role_group.member_remove",
                "role_group",
                rg.id,
                group_id=rg.group_id,
                data={"user_id": member.user_id},
            )
            await uow.commit()
        return deleted(member_id)

    @get("/{rg_id:int}/contacts", operation_id="ListRoleGroupContacts")
    async def list_contacts(
        self, request: Request[Any, Any, Any], principal: Caller, rg_id: FromPath[int]
    ) -> list[dict[str, Any]]:
        """External contacts of a role group (phone masked for non-admins)."""
        async with caller_session(request, principal) as (_st, uow, access):
            rg = await _role_group(uow, access, rg_id)
            rows = await uow.role_group_contacts.find(role_group_id=rg.id)
        return [serialize_contact(x, access, rg.group_id) for x in rows]

    @post("/{rg_id:int}/contacts", operation_id="AddRoleGroupContact", status_code=201)
    async def add_contact(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        rg_id: FromPath[int],
        data: JSONBody[RoleGroupContactCreate],
    ) -> dict[str, Any]:
        """Add an external contact (name and at least one of email/phone)."""
        name = check_name(data.name)
        if not data.email and not data.phone:
            raise _bad("$.email", "a contact needs an email or a phone", "email or phone is required")
        async with caller_session(request, principal) as (st, uow, access):
            rg = await _role_group(uow, access, rg_id, write=True)
            contact = await uow.role_group_contacts.add(
                RoleGroupContact(role_group_id=rg.id, name=name, email=data.email, phone=data.phone)
            )
            await audit(
                uow, st, principal, "role_group.contact_add", "role_group", rg.id, group_id=rg.group_id
            )
            await uow.commit()
        return serialize_contact(contact, access, rg.group_id)

    @put("/contacts/{contact_id:int}", operation_id="UpdateRoleGroupContact")
    async def update_contact(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        contact_id: FromPath[int],
        data: JSONBody[RoleGroupContactUpdate],
    ) -> dict[str, Any]:
        """Update a contact (partial)."""
        values = changes(data)
        if "name" in values:
            values["name"] = check_name(values["name"])
        async with caller_session(request, principal) as (st, uow, access):
            contact = await uow.role_group_contacts.get(contact_id)
            if contact is None:
                raise not_found("contact")
            rg = await _role_group(uow, access, contact.role_group_id, write=True)
            contact = attrs.evolve(contact, **values)
            if not contact.email and not contact.phone:
                raise _bad("$.email", "a contact needs an email or a phone", "email or phone is required")
            contact = await uow.role_group_contacts.update(contact)
            await audit(
                uow, st, principal, "role_group.contact_update", "role_group", rg.id, group_id=rg.group_id
            )
            await uow.commit()
        return serialize_contact(contact, access, rg.group_id)

    @delete("/contacts/{contact_id:int}", operation_id="DeleteRoleGroupContact", status_code=200)
    async def delete_contact(
        self, request: Request[Any, Any, Any], principal: Caller, contact_id: FromPath[int]
    ) -> dict[str, Any]:
        """Delete a contact."""
        async with caller_session(request, principal) as (st, uow, access):
            contact = await uow.role_group_contacts.get(contact_id)
            if contact is None:
                raise not_found("contact")
            rg = await _role_group(uow, access, contact.role_group_id, write=True)
            await uow.role_group_contacts.delete(contact.id)
            await audit(
                uow, st, principal, "role_group.contact_delete", "role_group", rg.id, group_id=rg.group_id
            )
            await uow.commit()
        return deleted(contact_id)


# --- subscriptions (S8.4, S8.6, S8.7) ----------------------------------------------------------


async def serialize_subscription(uow: UnitOfWork, sub: Subscription, access: Access) -> dict[str, Any]:
    category = await uow.categories.get(sub.category_id)
    rg = await uow.role_groups.get(sub.role_group_id)
    return {
        "id": sub.id,
        "group_id": sub.group_id,
        "name": sub.name,
        "category_id": sub.category_id,
        "category": category.slug if category else None,
        "role_group_id": sub.role_group_id,
        "role_group": {"id": rg.id, "slug": rg.slug, "name": rg.name} if rg else None,
        "channel_types": list(sub.channel_types),
        "sms_channel_id": sub.sms_channel_id,
        "channel_ids": list(sub.channel_ids),
        "severities": list(sub.severities),
        "regions": list(sub.regions),
        "matchers": sub.matchers,
        "events": list(sub.events),
        "notify_after_seconds": sub.notify_after_seconds,
        "requires_opt_in": sub.requires_opt_in,
        "enabled": sub.enabled,
        "last_test_at": iso(sub.last_test_at),
        "last_test_result": dict(sub.last_test_result) if sub.last_test_result is not None else None,
        "permissions": _perms(access, sub.group_id),
    }


async def _subscription(uow: UnitOfWork, access: Access, sub_id: int, *, write: bool = False) -> Subscription:
    sub = await uow.subscriptions.get(sub_id)
    if sub is None or not access.can_read_group(sub.group_id):
        raise not_found("subscription")
    if write:
        require(access.is_group_editor(sub.group_id), "Editor rights on the group are required")
    return sub


async def _validated_subscription(
    uow: UnitOfWork, sub: Subscription, category_slug: str | None
) -> Subscription:
    """Cross-field checks of S1.7/S8.4; 400 naming every problem."""
    details: list[dict[str, str]] = []
    categories = await _visible_categories(uow, sub.group_id)
    if category_slug is not None:
        found = next(
            (cat for cat in categories if cat.slug == category_slug and cat.group_id == sub.group_id), None
        )
        found = found or next((cat for cat in categories if cat.slug == category_slug), None)
        if found is None:
            details.append({"loc": "$.category", "message": f"unknown category {category_slug!r}"})
        else:
            sub = attrs.evolve(sub, category_id=found.id)
    elif sub.category_id == 0:
        details.append({"loc": "$.category_id", "message": "category_id or category is required"})
    elif not any(cat.id == sub.category_id for cat in categories):
        details.append(
            {"loc": "$.category_id", "message": "category must be built-in or belong to the group"}
        )
    rg = await uow.role_groups.get(sub.role_group_id)
    if rg is None or rg.group_id != sub.group_id:
        details.append(
            {"loc": "$.role_group_id", "message": "role group must belong to the subscription's group"}
        )
    for index, channel_id in enumerate(sub.channel_ids):
        channel = await uow.channels.get(channel_id)
        if channel is None or channel.group_id != sub.group_id:
            details.append({"loc": f"$.channel_ids[{index}]", "message": "channel must belong to the group"})
        elif channel.channel_type in ("voice_call", "email", "sms"):
            details.append(
                {
                    "loc": f"$.channel_ids[{index}]",
                    "message": f"{channel.channel_type} is not a destination channel type; use channel_types",
                }
            )
    if len(set(sub.channel_ids)) != len(sub.channel_ids):
        details.append({"loc": "$.channel_ids", "message": "channel ids must be unique"})
    if sub.sms_channel_id is not None:
        sms = await uow.channels.get(sub.sms_channel_id)
        if sms is None or sms.group_id != sub.group_id or sms.channel_type != "sms":
            details.append({"loc": "$.sms_channel_id", "message": "must be an sms channel of the group"})
    if details:
        raise validation_error("invalid subscription", details)
    return attrs.evolve(
        sub,
        channel_types=tuple(dict.fromkeys(sub.channel_types)),
        severities=tuple(dict.fromkeys(s.lower() for s in sub.severities)),
        events=tuple(dict.fromkeys(sub.events)),
        regions=tuple(dict.fromkeys(sub.regions)),
    )


async def _ensure_delivery_channels(uow: UnitOfWork, sub: Subscription) -> None:
    """Create the group's subscription e-mail/SMS channels now rather than during intake."""
    for kind in sub.channel_types:
        if kind == "sms" and sub.sms_channel_id is not None:
            continue
        await subscription_channel(uow, sub.group_id, kind)


def _test_text(category: Category | None, sub: Subscription) -> str:
    slug = category.slug if category else "unknown"
    prefix = (
        "[Advisory]"
        if category is not None and category.presentation == c.PRESENTATION_ADVISORY
        else (f"[{category.name}]" if category else "")
    )
    return f"{prefix} TEST: Test alert from Relay — {slug} subscription {sub.name}".strip()


def _test_response(run: TestRun, **extra: Any) -> dict[str, Any]:
    return {
        "test_id": run.test_id,
        **extra,
        "summary": run.summary,
        "results": [r.as_dict() for r in run.results],
    }


async def _check_preset_channel(uow: UnitOfWork, group_id: int, channel_id: int | None, kind: str) -> None:
    if channel_id is None:
        return
    channel = await uow.channels.get(channel_id)
    if channel is None or channel.group_id != group_id or channel.channel_type != kind:
        raise _bad(f"$.{kind}_channel_id", f"must be a {kind} channel of the group", "invalid preset channel")


class SubscriptionsController(Controller):
    path = "/api/subscriptions"
    tags = ("subscriptions",)

    @get("/", operation_id="ListSubscriptions")
    async def list_subscriptions(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        category: Annotated[str | None, QueryParameter(max_length=64)] = None,
        role_group_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Subscriptions of the caller's groups; filters ``category`` (slug or id), ``role_group_id``."""
        async with caller_session(request, principal) as (_st, uow, access):
            scope = _group_scope(access, group_id)
            rows = [s for s in await uow.subscriptions.find() if scope is None or s.group_id in scope]
            if role_group_id is not None:
                rows = [s for s in rows if s.role_group_id == role_group_id]
            if category is not None:
                if category.isdigit():
                    rows = [s for s in rows if s.category_id == int(category)]
                else:
                    ids = {cat.id for cat in await uow.categories.find(slug=category)}
                    rows = [s for s in rows if s.category_id in ids]
            return [await serialize_subscription(uow, s, access) for s in page(rows, limit, offset)]

    @post("/", operation_id="CreateSubscription", status_code=201)
    async def create_subscription(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[SubscriptionCreate]
    ) -> dict[str, Any]:
        """Create a subscription (group editor); the group is the role group's."""
        name = check_name(data.name)
        if data.category_id is None and data.category is None:
            raise _bad("$.category_id", "category_id or category is required")
        matchers = _matchers(data.matchers)
        async with caller_session(request, principal) as (st, uow, access):
            rg = await uow.role_groups.get(data.role_group_id)
            if rg is None or not access.can_read_group(rg.group_id):
                raise _bad("$.role_group_id", "unknown role group")
            if data.group_id is not None and data.group_id != rg.group_id:
                raise _bad("$.group_id", "must be the role group's group")
            group_id = await _editable_group(uow, access, rg.group_id)
            sub = await _validated_subscription(
                uow,
                Subscription(
                    group_id=group_id,
                    category_id=data.category_id or 0,
                    role_group_id=rg.id,
                    name=name,
                    channel_types=tuple(data.channel_types),
                    sms_channel_id=data.sms_channel_id,
                    channel_ids=tuple(data.channel_ids),
                    severities=tuple(data.severities),
                    regions=tuple(data.regions),
                    matchers=matchers,
                    events=tuple(data.events),
                    notify_after_seconds=data.notify_after_seconds,
                    requires_opt_in=data.requires_opt_in,
                    enabled=data.enabled,
                ),
                data.category if data.category_id is None else None,
            )
            sub = await uow.subscriptions.add(sub)
            await _ensure_delivery_channels(uow, sub)
            await audit(uow, st, principal, "subscription.create", "subscription", sub.id, group_id=group_id)
            await uow.commit()
            return await serialize_subscription(uow, sub, access)

    @post("/presets/standard", operation_id="ApplyStandardSubscriptionPreset", status_code=200)
    async def apply_preset(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[StandardPresetBody]
    ) -> dict[str, Any]:
        """Create the S8.6 role groups and subscriptions in a group (idempotent; group editor)."""
        async with caller_session(request, principal) as (st, uow, access):
            group_id = await _editable_group(uow, access, data.group_id)
            await _check_preset_channel(uow, group_id, data.slack_channel_id, "slack")
            await _check_preset_channel(uow, group_id, data.teams_channel_id, "teams")
            await _check_preset_channel(uow, group_id, data.webhook_channel_id, "webhook")
            result = await apply_standard_preset(
                uow,
                group_id,
                categories=await ensure_builtin_categories(uow),
                slack_channel_id=data.slack_channel_id,
                teams_channel_id=data.teams_channel_id,
                webhook_channel_id=data.webhook_channel_id,
            )
            for sub in result.subscriptions:
                await _ensure_delivery_channels(uow, sub)
            await audit(
                uow,
                st,
                principal,
                "subscription.preset_standard",
                "group",
                group_id,
                group_id=group_id,
                data={
                    "created_role_groups": result.created_role_groups,
                    "created_subscriptions": result.created_subscriptions,
                },
            )
            await uow.commit()
            return {
                "group_id": group_id,
                "created_role_groups": result.created_role_groups,
                "created_subscriptions": result.created_subscriptions,
                "role_groups": [await serialize_role_group(uow, rg, access) for rg in result.role_groups],
                "subscriptions": [await serialize_subscription(uow, s, access) for s in result.subscriptions],
            }

    @get("/{sub_id:int}", operation_id="GetSubscription")
    async def get_subscription(
        self, request: Request[Any, Any, Any], principal: Caller, sub_id: FromPath[int]
    ) -> dict[str, Any]:
        """One subscription."""
        async with caller_session(request, principal) as (_st, uow, access):
            sub = await _subscription(uow, access, sub_id)
            return await serialize_subscription(uow, sub, access)

    @put("/{sub_id:int}", operation_id="UpdateSubscription")
    async def update_subscription(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        sub_id: FromPath[int],
        data: JSONBody[SubscriptionUpdate],
    ) -> dict[str, Any]:
        """Update a subscription (partial)."""
        values = changes(data)
        slug = values.pop("category", None)
        if "name" in values:
            values["name"] = check_name(values["name"])
        if "matchers" in values:
            values["matchers"] = _matchers(values["matchers"])
        for key in ("channel_types", "channel_ids", "severities", "regions", "events"):
            if key in values:
                values[key] = tuple(values[key])
        async with caller_session(request, principal) as (st, uow, access):
            sub = await _subscription(uow, access, sub_id, write=True)
            sub = await _validated_subscription(uow, attrs.evolve(sub, **values), slug)
            sub = await uow.subscriptions.update(sub)
            await _ensure_delivery_channels(uow, sub)
            await audit(
                uow,
                st,
                principal,
                "subscription.update",
                "subscription",
                sub.id,
                group_id=sub.group_id,
                data={"fields": sorted([*values, *(["category"] if slug else [])])},
            )
            await uow.commit()
            return await serialize_subscription(uow, sub, access)

    @delete("/{sub_id:int}", operation_id="DeleteSubscription", status_code=200)
    async def delete_subscription(
        self, request: Request[Any, Any, Any], principal: Caller, sub_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a subscription."""
        async with caller_session(request, principal) as (st, uow, access):
            sub = await _subscription(uow, access, sub_id, write=True)
            return await soft_delete(
                uow, st, principal, uow.subscriptions, sub, "subscription", group_id=sub.group_id
            )

    @post("/{sub_id:int}/test", operation_id="TestSubscription", status_code=200)
    async def test_subscription(
        self, request: Request[Any, Any, Any], principal: Caller, sub_id: FromPath[int]
    ) -> dict[str, Any]:
        """Send event ``test`` to every destination of the subscription (S8.7); outcome per destination.

        Bypasses severity and opt-in filters, not missing addresses; creates no alert group.
        """
        async with caller_session(request, principal) as (st, uow, access):
            sub = await _subscription(uow, access, sub_id, write=True)
            category = await uow.categories.get(sub.category_id)
            targets = await subscription_targets(uow, sub, apply_preferences=False)
            await uow.commit()  # the group's subscription e-mail/SMS channels, created on first use
        tests: list[TestTarget] = []
        seen: set[str] = set()
        for target in targets:
            if target.channel is None:
                continue
            if target.skip is None:
                if target.dedup_key in seen:
                    continue  # one message per address, as for real deliveries (S8.5)
                seen.add(target.dedup_key)
            recipient = None
            if target.kind != "channel":
                recipient = Recipient(
                    user_id=target.recipient_user_id,
                    display_name=target.recipient_name,
                    email=target.recipient_address if target.kind == "email" else None,
                    phone=target.recipient_address if target.kind == "sms" else None,
                )
            tests.append(
                TestTarget(
                    channel=target.channel,
                    recipient=recipient,
                    recipient_address=target.recipient_address,
                    skip_reason=target.skip,
                    subscription_id=sub.id,
                )
            )
        run = await send_test(
            st.relay.ctx,
            tests,
            text=_test_text(category, sub),
            wait_seconds=st.settings.delivery.test_wait_seconds,
        )
        now = st.now()
        async with st.uow() as uow:
            current = await uow.subscriptions.get(sub.id)
            if current is not None:
                await uow.subscriptions.update(
                    attrs.evolve(
                        current,
                        last_test_at=now,
                        last_test_result={"test_id": run.test_id, "at": iso(now), "summary": run.summary},
                    )
                )
            await audit(
                uow, st, principal, "subscription.test", "subscription", sub.id, group_id=sub.group_id
            )
            await uow.commit()
        return _test_response(run, subscription_id=sub.id)


# --- profile opt-in/out (S8.4) -----------------------------------------------------------------


async def _my_subscriptions(uow: UnitOfWork, user_id: int) -> list[tuple[Subscription, bool]]:
    role_group_ids = {m.role_group_id for m in await uow.role_group_members.find(user_id=user_id)}
    prefs = {p.subscription_id: p.opted_in for p in await uow.subscription_preferences.find(user_id=user_id)}
    out = []
    for sub in await uow.subscriptions.find():
        if sub.role_group_id in role_group_ids and await uow.role_groups.get(sub.role_group_id) is not None:
            opted = prefs.get(sub.id)
            out.append((sub, opted if opted is not None else not sub.requires_opt_in))
    return out


async def _serialize_mine(uow: UnitOfWork, user_id: int) -> list[dict[str, Any]]:
    out = []
    for sub, opted_in in await _my_subscriptions(uow, user_id):
        category = await uow.categories.get(sub.category_id)
        rg = await uow.role_groups.get(sub.role_group_id)
        out.append(
            {
                "subscription_id": sub.id,
                "name": sub.name,
                "group_id": sub.group_id,
                "category": category.slug if category else None,
                "role_group": {"id": rg.id, "slug": rg.slug, "name": rg.name} if rg else None,
                "channel_types": list(sub.channel_types),
                "requires_opt_in": sub.requires_opt_in,
                "enabled": sub.enabled,
                "opted_in": opted_in,
            }
        )
    return out


class ProfileSubscriptionsController(Controller):
    path = "/api/profile/subscriptions"
    tags = ("profile",)

    @get("/", operation_id="ListMySubscriptions")
    async def list_mine(self, request: Request[Any, Any, Any], principal: Caller) -> list[dict[str, Any]]:
        """Subscriptions reaching the caller through a role group, with the effective opt-in."""
        st = server_state(request)
        async with st.uow() as uow:
            return await _serialize_mine(uow, principal.user_id)

    @put("/", operation_id="UpdateMySubscriptions")
    async def update_mine(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        data: JSONBody[Annotated[list[PreferenceItem], Meta(max_length=500)]],
    ) -> list[dict[str, Any]]:
        """Set opt-in/opt-out per subscription: ``[{subscription_id, opted_in}]``."""
        st = server_state(request)
        async with st.uow() as uow:
            mine = {sub.id for sub, _ in await _my_subscriptions(uow, principal.user_id)}
            details = [
                {"loc": f"$[{i}].subscription_id", "message": "not a subscription of one of your role groups"}
                for i, item in enumerate(data)
                if item.subscription_id not in mine
            ]
            if details:
                raise validation_error("unknown subscription", details)
            for item in data:
                pref = await uow.subscription_preferences.first(
                    subscription_id=item.subscription_id, user_id=principal.user_id
                )
                if pref is None:
                    await uow.subscription_preferences.add(
                        SubscriptionPreference(
                            subscription_id=item.subscription_id,
                            user_id=principal.user_id,
                            opted_in=item.opted_in,
                        )
                    )
                elif pref.opted_in != item.opted_in:
                    await uow.subscription_preferences.update(attrs.evolve(pref, opted_in=item.opted_in))
            await audit(
                uow,
                st,
                principal,
                "profile.subscriptions",
                "user",
                principal.user_id,
                data={"subscriptions": {str(i.subscription_id): i.opted_in for i in data}},
            )
            await uow.commit()
            return await _serialize_mine(uow, principal.user_id)


# --- alerts: decisions and category (S8.8, S8.2) -----------------------------------------------


class AlertSubscriptionsController(Controller):
    path = "/api/alerts/{group_id:int}"
    tags = ("alerts",)

    @get("/subscriptions", operation_id="ListAlertSubscriptionDecisions")
    async def decisions(
        self, request: Request[Any, Any, Any], principal: Caller, group_id: FromPath[int]
    ) -> list[dict[str, Any]]:
        """Every subscription of the group's category with its decisions per recipient/channel (S8.8)."""
        async with caller_session(request, principal) as (_st, uow, access):
            group, _team = await _visible_group(uow, access, group_id)
            return await subscription_report(uow, group)

    @put("/category", operation_id="SetAlertCategory")
    async def set_category(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: FromPath[int],
        data: JSONBody[AlertCategoryBody],
    ) -> dict[str, Any]:
        """Change the group's category (responder); event ``category_changed``."""
        if data.category is None and data.category_id is None:
            raise _bad("$.category", "category is required")
        async with caller_session(request, principal) as (st, uow, access):
            group, team = await _visible_group(uow, access, group_id)
            require(access.can_respond(team), "Responder rights on the team are required")
            visible = await _visible_categories(uow, team.group_id)
            if data.category is not None:
                found = [cat for cat in visible if cat.slug == data.category]
                found.sort(key=lambda cat: cat.group_id is None)  # the group's own beats a built-in
                loc = "$.category"
            else:
                found = [cat for cat in visible if cat.id == data.category_id]
                loc = "$.category_id"
            if not found:
                raise _bad(loc, "unknown category for the alert's group", "unknown category")
            group = await change_category(uow, group, found[0], user_id=principal.user_id, now=st.now())
            await audit(
                uow,
                st,
                principal,
                "alert.category",
                "alert_group",
                group.id,
                group_id=team.group_id,
                team_id=team.id,
                data={"category": found[0].slug},
            )
            await uow.commit()
            return await serialize_group(group, _Lookups(uow, {team.id: team}), access)


# --- channel tests (S6.1) ----------------------------------------------------------------------


def channel_test_target(ctx: Context, channel: Channel, user: User | None) -> TestTarget:
    """The destination of a channel test (S6.1): the channel, or for a person-addressed type the
    user's contact (voice/SMS: the channel's ``test_phone`` first)."""
    sender = ctx.senders.get(channel.channel_type)
    if sender is None:
        person = channel.channel_type in ("voice_call", "sms", "email")
    else:
        person = bool(sender.capabilities.person_addressed)
    if not person:
        return TestTarget(channel=channel)
    if channel.channel_type in ("sms", "voice_call"):
        address = channel.config.get("test_phone") or (user.phone if user else None)
    else:
        address = user.email if user else None
    recipient = (
        Recipient(
            user_id=user.id,
            username=user.username,
            display_name=user.label,
            email=user.email,
            phone=user.phone,
        )
        if user is not None
        else Recipient(phone=str(address) if address and channel.channel_type != "email" else None)
    )
    return TestTarget(
        channel=channel, recipient=recipient, recipient_address=str(address) if address else None
    )


class ChannelTestsController(Controller):
    path = "/api"
    tags = ("channels",)

    @post("/channels/{channel_id:int}/test", operation_id="TestChannel", status_code=200)
    async def test_channel(
        self, request: Request[Any, Any, Any], principal: Caller, channel_id: FromPath[int]
    ) -> dict[str, Any]:
        """Send event ``test`` through the channel; person-addressed types go to the caller."""
        async with caller_session(request, principal) as (st, uow, access):
            channel, _team = await _channel(uow, access, channel_id, write=True)
        target = channel_test_target(st.relay.ctx, channel, principal.user)
        run = await send_test(
            st.relay.ctx,
            [target],
            text="TEST: Test notification from Relay",
            wait_seconds=st.settings.delivery.test_wait_seconds,
        )
        async with st.uow() as uow:
            await audit(
                uow,
                st,
                principal,
                "channel.test",
                "channel",
                channel.id,
                group_id=channel.group_id,
                team_id=channel.team_id,
                data={"test_id": run.test_id},
            )
            await uow.commit()
        return _test_response(run, channel_id=channel.id)

    @get("/notifications/tests/{test_id:str}", operation_id="GetNotificationTest")
    async def get_test(
        self, request: Request[Any, Any, Any], principal: Caller, test_id: FromPath[str]
    ) -> dict[str, Any]:
        """Results of an earlier channel or subscription test (pending ones may have finished)."""
        if len(test_id) > 64:
            raise not_found("test")
        results = await read_test_run(server_state(request).relay.ctx, test_id)
        async with caller_session(request, principal) as (_st, uow, access):
            readable = False
            for channel_id in {r.channel_id for r in results if r.channel_id is not None}:
                try:
                    await _channel(uow, access, channel_id)
                except ApiError:  # deleted, or outside the caller's groups
                    continue
                readable = True
        if not results or not readable:
            raise not_found("test")
        run = TestRun(test_id=test_id, results=tuple(results))
        return _test_response(run)


# --- route test alert (S8.7) -------------------------------------------------------------------


class RouteTestAlertController(Controller):
    path = "/api/routes/{route_id:int}"
    tags = ("routes",)

    @post("/test-alert", operation_id="SendRouteTestAlert", status_code=200)
    async def test_alert(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        route_id: FromPath[int],
        data: JSONBody[RouteTestAlertBody | None] = None,
    ) -> dict[str, Any]:
        """Inject a real alert (``labels.relay_test = "true"``, group ``test: true``) through intake.

        Routing, paging, reminders and ACK work as for any alert; the alert list hides it unless
        ``include_test``.
        """
        body = data or RouteTestAlertBody()
        async with caller_session(request, principal) as (st, uow, access):
            route = await uow.routes.get(route_id)
            team = await uow.teams.get(route.team_id) if route else None
            if route is None or team is None or not access.can_read_team(team):
                raise not_found("route")
            require(access.can_manage(team), "Manager rights on the team are required")
        alert = NormalizedAlert(
            source=route.source,
            dedup_key=f"relay-test-{uuid.uuid4().hex}",
            title=body.title or "Test alert from Relay",
            message=body.message
            or f"Test alert sent by {principal.user.username} through route {route.name}",
            severity=body.severity,
            original_severity=body.severity,
            labels={"alertname": "RelayTestAlert", "relay_test": "true"},
            starts_at=st.now(),
        )
        results = await st.relay.ingest(route.source, [alert], route_id=route.id)
        item = results[0]
        return {**item.as_dict(), "test": True}


CONTROLLERS: list[Any] = [
    CategoryRulesController,
    RoleGroupsController,
    SubscriptionsController,
    ProfileSubscriptionsController,
    AlertSubscriptionsController,
    ChannelTestsController,
    RouteTestAlertController,
]
