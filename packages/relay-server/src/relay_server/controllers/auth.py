"""Sessions, the caller's profile and personal API tokens (SPEC S9.2, S9.4, S13.5)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import attrs
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import Cookie
from litestar.params import FromPath, JSONBody

from relay_core.domain.model import ApiToken, User
from relay_core.domain.rotation import load_timezone
from relay_server.auth import (
    ALL_SCOPES,
    CSRF_COOKIE,
    PERSONAL_TOKEN_PREFIX,
    bearer_token,
    check_password_rules,
    load_access,
    new_token,
    scope_satisfied,
)
from relay_server.controllers._support import (
    Caller,
    ServerState,
    audit,
    caller_session,
    changes,
    deleted,
    get_or_404,
    iso,
    server_state,
)
from relay_server.errors import ApiError, forbidden, not_found, validation_error
from relay_server.schemas import ActiveGroupBody, ChangePasswordBody, LoginBody, ProfileUpdate, TokenCreate

INVALID_CREDENTIALS = "Invalid username or password"


def serialize_self(user: User, access: Any = None) -> dict[str, Any]:
    """The calling user's own record (full contact fields: it is their own)."""
    body: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name or user.username,
        "email": user.email,
        "phone": user.phone,
        "timezone": user.timezone,
        "telegram_user_id": user.telegram_user_id,
        "slack_user_id": user.slack_user_id,
        "mattermost_user_id": user.mattermost_user_id,
        "is_admin": user.is_admin,
        "active": user.active,
        "active_group_id": user.active_group_id,
        # One's own profile: readable and writable by oneself (S9.1).
        "permissions": {"can_read": True, "can_write": True, "can_respond": False},
    }
    if access is not None:
        body["groups"] = [{"group_id": gid, "role": role} for gid, role in sorted(access.group_roles.items())]
        body["teams"] = [{"team_id": tid, "role": role} for tid, role in sorted(access.team_roles.items())]
    return body


def _session_cookies(st: ServerState, token: str, csrf: str, expires: dt.datetime) -> list[Cookie]:
    secure = st.settings.server.public_base_url.lower().startswith("https://")
    max_age = max(int((expires - st.now()).total_seconds()), 0)
    return [
        Cookie(
            key=st.settings.auth.jwt_cookie_name,
            value=token,
            httponly=True,
            samesite="lax",
            secure=secure,
            max_age=max_age,
            path="/",
        ),
        Cookie(
            key=CSRF_COOKIE,
            value=csrf,
            httponly=False,
            samesite="lax",
            secure=secure,
            max_age=max_age,
            path="/",
        ),
    ]


def _login_response(
    st: ServerState, user: User, access: Any, *, status: int = 200
) -> Response[dict[str, Any]]:
    token, expires, _jti = st.sessions.issue(user, st.now())
    csrf = secrets.token_urlsafe(24)
    body = {
        "token": token,
        "expires_at": iso(expires),
        "user": serialize_self(user, access),
        "csrf_token": csrf,
    }
    return Response(body, status_code=status, cookies=_session_cookies(st, token, csrf, expires))


class AuthController(Controller):
    path = "/api/auth"
    tags = ("auth",)

    @post("/login", operation_id="Login", status_code=200, security=[])
    async def login(
        self, request: Request[Any, Any, Any], data: JSONBody[LoginBody]
    ) -> Response[dict[str, Any]]:
        """Log in with a username and password; sets the session cookie and returns a JWT."""
        st = server_state(request)
        now = st.now()
        ip = request.client.host if request.client else "unknown"
        wait = await st.throttle.retry_after(ip, data.username, now)
        if wait:
            raise ApiError(
                429,
                "too_many_attempts",
                "Too many failed login attempts; try again later",
                extra={"retry_after": wait},
                headers={"Retry-After": str(wait)},
            )
        async with st.uow() as uow:
            user = await uow.users.first(username=data.username)
            ok = st.passwords.verify(user.password_hash if user else None, data.password)
            if user is None or not ok or not user.active:
                await st.throttle.failure(ip, data.username, now)
                raise ApiError(401, "invalid_credentials", INVALID_CREDENTIALS)
            if user.password_hash and st.passwords.needs_rehash(user.password_hash):
                user = await uow.users.update(
                    attrs.evolve(user, password_hash=st.passwords.hash(data.password))
                )
                await uow.commit()
            access = await load_access(uow, user)
        await st.throttle.success(data.username)
        return _login_response(st, user, access)

    @post("/logout", operation_id="Logout", status_code=200, security=[])
    async def logout(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Revoke the current session (if any) and clear the session cookies."""
        st = server_state(request)
        now = st.now()
        token = bearer_token(request.headers) or request.cookies.get(st.settings.auth.jwt_cookie_name)
        if token:
            claims = await st.sessions.decode(token, now)
            if claims is not None:
                await st.sessions.revoke(
                    str(claims["jti"]), dt.datetime.fromtimestamp(int(claims["exp"]), tz=dt.UTC), now
                )
        response = Response({"logged_out": True}, status_code=200)
        response.delete_cookie(st.settings.auth.jwt_cookie_name, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    @get("/me", operation_id="GetMe")
    async def me(self, request: Request[Any, Any, Any], principal: Caller) -> dict[str, Any]:
        """The calling user with their group and team roles."""
        async with caller_session(request, principal) as (_st, _uow, access):
            body = serialize_self(principal.user, access)
        body["auth"] = {
            "via": "api_token" if principal.token else "session",
            "scopes": list(principal.scopes or []),
        }
        return body

    @post("/change-password", operation_id="ChangePassword", status_code=200)
    async def change_password(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[ChangePasswordBody]
    ) -> Response[dict[str, Any]]:
        """Change the caller's password (session only); older sessions stop working."""
        return await _change_password(request, principal, data)


async def _change_password(
    request: Request[Any, Any, Any], principal: Caller, data: JSONBody[ChangePasswordBody]
) -> Response[dict[str, Any]]:
    st = server_state(request)
    if principal.token is not None:
        raise forbidden("Passwords can only be changed with a session, not an API token")
    check_password_rules(data.new_password)
    async with st.uow() as uow:
        user = await get_or_404(uow.users, principal.user_id, "user")
        if not st.passwords.verify(user.password_hash, data.current_password):
            raise ApiError(401, "invalid_credentials", "Current password is incorrect")
        user = await uow.users.update(
            attrs.evolve(
                user,
                password_hash=st.passwords.hash(data.new_password),
                password_version=user.password_version + 1,
            )
        )
        await audit(uow, st, principal, "user.change_password", "user", user.id, message="password changed")
        await uow.commit()
        access = await load_access(uow, user)
    if principal.jti and principal.expires_at:
        await st.sessions.revoke(principal.jti, principal.expires_at, st.now())
    return _login_response(st, user, access)


def serialize_token(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "token_prefix": token.token_prefix,
        "scopes": list(token.scopes),
        "team_id": token.team_id,
        "expires_at": iso(token.expires_at),
        "active": token.active,
        "last_used_at": iso(token.last_used_at),
        # Tokens are listed to their owner only, who may revoke them.
        "permissions": {"can_read": True, "can_write": True, "can_respond": False},
    }


class ProfileController(Controller):
    path = "/api/profile"
    tags = ("profile",)

    @get("/", operation_id="GetProfile")
    async def get_profile(self, request: Request[Any, Any, Any], principal: Caller) -> dict[str, Any]:
        """The caller's profile."""
        async with caller_session(request, principal) as (_st, _uow, access):
            return serialize_self(principal.user, access)

    @put("/", operation_id="UpdateProfile")
    async def update_profile(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[ProfileUpdate]
    ) -> dict[str, Any]:
        """Update the caller's own contact fields."""
        st = server_state(request)
        values = changes(data)
        if "timezone" in values:
            load_timezone(values["timezone"])
        async with st.uow() as uow:
            user = await get_or_404(uow.users, principal.user_id, "user")
            if values.get("email"):
                other = await uow.users.first(email=values["email"])
                if other is not None and other.id != user.id:
                    raise ApiError(409, "conflict", "email is already in use")
            user = await uow.users.update(attrs.evolve(user, **values))
            await audit(
                uow, st, principal, "user.update_profile", "user", user.id, data={"fields": sorted(values)}
            )
            await uow.commit()
            access = await load_access(uow, user)
        return serialize_self(user, access)

    @post("/change-password", operation_id="ChangeProfilePassword", status_code=200)
    async def profile_change_password(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[ChangePasswordBody]
    ) -> Response[dict[str, Any]]:
        """Alias of ``/api/auth/change-password``."""
        return await _change_password(request, principal, data)

    @post("/active-group", operation_id="SetActiveGroup", status_code=200)
    async def set_active_group(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[ActiveGroupBody]
    ) -> dict[str, Any]:
        """Choose the group the UI shows (null = all my groups)."""
        async with caller_session(request, principal) as (_st, uow, access):
            if data.group_id is not None and not access.can_read_group(data.group_id):
                raise not_found("group")
            user = await get_or_404(uow.users, principal.user_id, "user")
            user = await uow.users.update(attrs.evolve(user, active_group_id=data.group_id))
            await uow.commit()
        return serialize_self(user, access)

    @get("/tokens", operation_id="ListApiTokens")
    async def list_tokens(self, request: Request[Any, Any, Any], principal: Caller) -> list[dict[str, Any]]:
        """The caller's personal API tokens (never the raw values)."""
        st = server_state(request)
        async with st.uow() as uow:
            tokens = await uow.api_tokens.find(user_id=principal.user_id)
        return [serialize_token(t) for t in tokens]

    @post("/tokens", operation_id="CreateApiToken", status_code=201)
    async def create_token(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[TokenCreate]
    ) -> dict[str, Any]:
        """Create a personal API token; the raw ``token`` is returned only in this answer."""
        st = server_state(request)
        scopes = sorted(set(data.scopes))
        unknown = [s for s in scopes if s not in ALL_SCOPES]
        if unknown:
            raise validation_error(
                "unknown scopes", [{"loc": "$.scopes", "message": f"unknown scope {s!r}"} for s in unknown]
            )
        if principal.token is not None:
            beyond = [s for s in scopes if not _covers(principal.token.scopes, s)]
            if beyond:
                raise ApiError(
                    403, "permission_denied", "Missing API token scope", extra={"missing_scopes": beyond}
                )
        now = st.now()
        expires = now + dt.timedelta(days=data.expires_in_days) if data.expires_in_days else None
        fresh = new_token(PERSONAL_TOKEN_PREFIX)
        async with st.uow() as uow:
            if data.team_id is not None:
                access = await load_access(uow, principal.user)
                team = await uow.teams.get(data.team_id)
                if team is None or not access.can_read_team(team):
                    raise not_found("team")
            token = await uow.api_tokens.add(
                ApiToken(
                    user_id=principal.user_id,
                    name=data.name.strip(),
                    token_prefix=fresh.prefix,
                    token_hash=fresh.hash,
                    scopes=tuple(scopes),
                    team_id=data.team_id,
                    expires_at=expires,
                )
            )
            await audit(
                uow, st, principal, "api_token.create", "api_token", token.id, data={"scopes": scopes}
            )
            await uow.commit()
        return {**serialize_token(token), "token": fresh.raw}

    @delete("/tokens/{token_id:int}", operation_id="DeleteApiToken", status_code=200)
    async def delete_token(
        self, request: Request[Any, Any, Any], principal: Caller, token_id: FromPath[int]
    ) -> dict[str, Any]:
        """Revoke one of the caller's tokens."""
        st = server_state(request)
        async with st.uow() as uow:
            token = await uow.api_tokens.get(token_id)
            if token is None or token.user_id != principal.user_id:
                raise not_found("API token")
            await uow.api_tokens.delete(token_id)
            await audit(uow, st, principal, "api_token.delete", "api_token", token_id)
            await uow.commit()
        return deleted(token_id)


def _covers(have: tuple[str, ...], scope: str) -> bool:
    if scope in ("*", "resources:read", "resources:write", "audit:read"):
        return "*" in have or scope in have or (scope == "resources:read" and "resources:write" in have)
    return scope_satisfied(have, scope)
