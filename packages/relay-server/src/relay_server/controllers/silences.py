"""Silences (SPEC S3.6) and categories (SPEC S8.1)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import attrs
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from relay_core.domain.errors import ValidationError
from relay_core.domain.model import Category, Silence, Team
from relay_core.domain.silences import SILENCE_EXPIRED, silence_status, validate_silence
from relay_core.ports.storage import UnitOfWork
from relay_core.services.intake import ensure_builtin_categories
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
    iso,
    page,
    parse_datetime,
    server_state,
    soft_delete,
)
from relay_server.controllers.teams import managed_team, visible_teams
from relay_server.errors import ApiError, not_found, validation_error
from relay_server.schemas import CategoryCreate, CategoryUpdate, SilenceCreate, SilenceUpdate

HIDE_EXPIRED_AFTER = dt.timedelta(days=30)


def serialize_silence(silence: Silence, team: Team, access: Access, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": silence.id,
        "team_id": silence.team_id,
        "name": silence.name,
        "reason": silence.reason,
        "matchers": silence.matchers,
        "starts_at": iso(silence.starts_at),
        "ends_at": iso(silence.ends_at),
        "apply_to_existing": silence.apply_to_existing,
        "reactivate_on_end": silence.reactivate_on_end,
        "enabled": silence.enabled,
        "created_by": silence.created_by,
        "status": silence_status(silence, now),
        "permissions": {
            "can_read": True,
            "can_write": access.can_manage(team),
            "can_respond": access.can_respond(team),
        },
    }


def _validated(silence: Silence) -> Silence:
    try:
        return validate_silence(silence)
    except ValidationError as exc:
        details = [
            {**d, "loc": d["loc"] if str(d["loc"]).startswith("$") else f"$.{d['loc']}"} for d in exc.details
        ]
        raise validation_error(exc.message, details) from None


async def _silence(
    uow: UnitOfWork, access: Access, silence_id: int, *, manage: bool = False
) -> tuple[Silence, Team]:
    silence = await uow.silences.get(silence_id)
    team = await uow.teams.get(silence.team_id) if silence else None
    if silence is None or team is None or not access.can_read_team(team):
        raise not_found("silence")
    if manage:
        require(access.can_manage(team), "Manager rights on the team are required")
    return silence, team


SilenceStatus = Literal["active", "scheduled", "expired", "disabled"]


class SilencesController(Controller):
    path = "/api/silences"
    tags = ("silences",)

    @get("/", operation_id="ListSilences")
    async def list_silences(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        team_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        status: Annotated[SilenceStatus | None, QueryParameter()] = None,
        include_expired: Annotated[bool, QueryParameter()] = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Silences of visible teams with their computed status."""
        st = server_state(request)
        now = st.now()
        async with st.uow() as uow:
            access = await load_access(uow, principal.user)
            teams = {t.id: t for t in await visible_teams(uow, access) if team_id is None or t.id == team_id}
            rows = [s for s in await uow.silences.find() if s.team_id in teams]
        out = []
        for silence in rows:
            computed = silence_status(silence, now)
            if status is not None and computed != status:
                continue
            old = computed == SILENCE_EXPIRED and now - silence.ends_at > HIDE_EXPIRED_AFTER
            if old and not include_expired:
                continue
            out.append(serialize_silence(silence, teams[silence.team_id], access, now))
        return page(out, limit, offset)

    @post("/", operation_id="CreateSilence", status_code=201)
    async def create_silence(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[SilenceCreate]
    ) -> dict[str, Any]:
        """Create a silence (team manager)."""
        starts = parse_datetime(data.starts_at, "$.starts_at")
        ends = parse_datetime(data.ends_at, "$.ends_at")
        silence = _validated(
            Silence(
                team_id=data.team_id,
                name=data.name,
                reason=data.reason,
                matchers=data.matchers,
                starts_at=starts,
                ends_at=ends,
                apply_to_existing=data.apply_to_existing,
                reactivate_on_end=data.reactivate_on_end,
                enabled=data.enabled,
                created_by=principal.user_id,
            )
        )
        async with caller_session(request, principal) as (st, uow, access):
            team = await managed_team(uow, access, data.team_id)
            silence = await uow.silences.add(silence)
            await audit(uow, st, principal, "silence.create", "silence", silence.id, team=team)
            await uow.commit()
        return serialize_silence(silence, team, access, st.now())

    @get("/{silence_id:int}", operation_id="GetSilence")
    async def get_silence(
        self, request: Request[Any, Any, Any], principal: Caller, silence_id: FromPath[int]
    ) -> dict[str, Any]:
        """One silence."""
        async with caller_session(request, principal) as (st, uow, access):
            silence, team = await _silence(uow, access, silence_id)
        return serialize_silence(silence, team, access, st.now())

    @put("/{silence_id:int}", operation_id="UpdateSilence")
    async def update_silence(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        silence_id: FromPath[int],
        data: JSONBody[SilenceUpdate],
    ) -> dict[str, Any]:
        """Update a silence (team manager); the lifecycle job applies and releases it."""
        values = changes(data)
        for key in ("starts_at", "ends_at"):
            if key in values:
                values[key] = parse_datetime(values[key], f"$.{key}")
        async with caller_session(request, principal) as (st, uow, access):
            silence, team = await _silence(uow, access, silence_id, manage=True)
            silence = await uow.silences.update(_validated(attrs.evolve(silence, **values)))
            await audit(
                uow,
                st,
                principal,
                "silence.update",
                "silence",
                silence.id,
                team=team,
                data={"fields": sorted(values)},
            )
            await uow.commit()
        return serialize_silence(silence, team, access, st.now())

    @delete("/{silence_id:int}", operation_id="DeleteSilence", status_code=200)
    async def delete_silence(
        self, request: Request[Any, Any, Any], principal: Caller, silence_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a silence; the lifecycle job releases what it muted."""
        async with caller_session(request, principal) as (st, uow, access):
            silence, team = await _silence(uow, access, silence_id, manage=True)
            return await soft_delete(uow, st, principal, uow.silences, silence, "silence", team=team)


# --- categories ----------------------------------------------------------------------------------


def serialize_category(category: Category, access: Access) -> dict[str, Any]:
    builtin = category.group_id is None
    return {
        "id": category.id,
        "group_id": category.group_id,
        "slug": category.slug,
        "name": category.name,
        "description": category.description,
        "presentation": category.presentation,
        "enabled": category.enabled,
        "position": category.position,
        "builtin": builtin,
        "permissions": {
            "can_read": True,
            "can_write": access.is_admin if builtin else access.is_group_editor(category.group_id),
            "can_respond": False,
        },
    }


async def _category(uow: UnitOfWork, access: Access, category_id: int, *, write: bool = False) -> Category:
    category = await uow.categories.get(category_id)
    if category is None or (category.group_id is not None and not access.can_read_group(category.group_id)):
        raise not_found("category")
    if write:
        allowed = access.is_admin if category.group_id is None else access.is_group_editor(category.group_id)
        require(allowed, "Editor rights on the group are required")
    return category


class CategoriesController(Controller):
    path = "/api/categories"
    tags = ("categories",)

    @get("/", operation_id="ListCategories")
    async def list_categories(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        group_id: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Built-in categories and those of the caller's groups."""
        async with caller_session(request, principal) as (_st, uow, access):
            rows = await ensure_builtin_categories(uow)
            await uow.commit()
        rows = [
            cat
            for cat in sorted(rows, key=lambda cat: (cat.position, cat.id))
            if (cat.group_id is None or access.can_read_group(cat.group_id))
            and (group_id is None or cat.group_id in (None, group_id))
        ]
        return [serialize_category(cat, access) for cat in page(rows, limit, offset)]

    @post("/", operation_id="CreateCategory", status_code=201)
    async def create_category(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[CategoryCreate]
    ) -> dict[str, Any]:
        """Create a category in a group (group editor)."""
        name = check_name(data.name)
        async with caller_session(request, principal) as (st, uow, access):
            group = await uow.groups.get(data.group_id)
            if group is None or not access.can_read_group(group.id):
                raise not_found("group")
            require(access.is_group_editor(group.id), "Editor rights on the group are required")
            existing = await ensure_builtin_categories(uow)
            if any(cat.slug == data.slug and cat.group_id in (None, group.id) for cat in existing):
                raise ApiError(409, "conflict", "slug is already in use")
            category = await uow.categories.add(
                Category(
                    group_id=group.id,
                    slug=data.slug,
                    name=name,
                    description=data.description,
                    presentation=data.presentation,
                    enabled=data.enabled,
                    position=data.position,
                )
            )
            await audit(uow, st, principal, "category.create", "category", category.id, group_id=group.id)
            await uow.commit()
        return serialize_category(category, access)

    @get("/{category_id:int}", operation_id="GetCategory")
    async def get_category(
        self, request: Request[Any, Any, Any], principal: Caller, category_id: FromPath[int]
    ) -> dict[str, Any]:
        """One category."""
        async with caller_session(request, principal) as (_st, uow, access):
            category = await _category(uow, access, category_id)
        return serialize_category(category, access)

    @put("/{category_id:int}", operation_id="UpdateCategory")
    async def update_category(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        category_id: FromPath[int],
        data: JSONBody[CategoryUpdate],
    ) -> dict[str, Any]:
        """Update a category (group editor; built-ins: admin, slug fixed)."""
        values = checked_changes(data)
        async with caller_session(request, principal) as (st, uow, access):
            category = await _category(uow, access, category_id, write=True)
            if category.group_id is None and "slug" in values and values["slug"] != category.slug:
                raise validation_error(
                    "built-in slugs cannot change", [{"loc": "$.slug", "message": "built-in category"}]
                )
            if "slug" in values and values["slug"] != category.slug:
                clash = await uow.categories.find(slug=values["slug"])
                if any(cat.group_id in (None, category.group_id) for cat in clash):
                    raise ApiError(409, "conflict", "slug is already in use")
            category = await uow.categories.update(attrs.evolve(category, **values))
            await audit(
                uow,
                st,
                principal,
                "category.update",
                "category",
                category.id,
                group_id=category.group_id,
                data={"fields": sorted(values)},
            )
            await uow.commit()
        return serialize_category(category, access)

    @delete("/{category_id:int}", operation_id="DeleteCategory", status_code=200)
    async def delete_category(
        self, request: Request[Any, Any, Any], principal: Caller, category_id: FromPath[int]
    ) -> dict[str, Any]:
        """Soft-delete a group category; built-ins cannot be deleted (409)."""
        async with caller_session(request, principal) as (st, uow, access):
            category = await _category(uow, access, category_id, write=True)
            if category.group_id is None:
                raise ApiError(409, "conflict", "built-in categories cannot be deleted")
            return await soft_delete(
                uow, st, principal, uow.categories, category, "category", group_id=category.group_id
            )
