"""Authentication and authorization for the HTTP API (SPEC S9.2-S9.4, S13.4, S13.5).

* Passwords: argon2id (argon2-cffi defaults), rehashed on login when parameters change.
* Sessions: HS256 JWTs (claims ``sub iat exp jti pwv``) in the ``auth.jwt_cookie_name`` cookie or
  ``Authorization: Bearer``; logout revokes the ``jti``; a password change bumps ``pwv``.
* Personal API tokens ``rly_p_…`` and route intake tokens ``rly_r_…``: 256+ random bits, stored as
  SHA-256 hex plus a 12-character prefix, looked up by hash and compared in constant time.
* RBAC: :class:`Access` holds one user's group and team roles and answers the S9.3 questions;
  the effective right of an API token is the user's role intersected with the token's scopes.

Login throttle counters and revoked session ids live in a :class:`SharedStore`: Redis when
``redis.url`` is set, so every web process sees the same counters and revocations; otherwise
process memory (the embedded single-process mode).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

import argon2
import attrs
import jwt

from relay_adapters.settings import RelaySettings
from relay_core.domain import constants as c
from relay_core.domain.errors import StorageUnavailable
from relay_core.domain.model import ApiToken, Team, User
from relay_core.ports.storage import UnitOfWork
from relay_server.errors import ApiError, forbidden, unauthorized

ROUTE_TOKEN_PREFIX: Final = "rly_r_"  # noqa: S105 - a type prefix, not a secret
PERSONAL_TOKEN_PREFIX: Final = "rly_p_"  # noqa: S105 - a type prefix, not a secret
TOKEN_DISPLAY_CHARS: Final = 12
CSRF_COOKIE: Final = "relay_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
PASSWORD_MIN: Final = 10
PASSWORD_MAX: Final = 256
LAST_USED_RESOLUTION: Final = dt.timedelta(minutes=1)

# --- scopes (S9.4) ---------------------------------------------------------------------------

DOMAINS: Final = (
    "alerts",
    "teams",
    "groups",
    "users",
    "rotations",
    "calendar",
    "routes",
    "channels",
    "maintenance",
    "categories",
    "status",
    "policies",
    "heartbeats",
    "profile",
)
RESOURCE_DOMAINS: Final = frozenset(DOMAINS) - {"alerts", "profile"}
ALL_SCOPES: Final = frozenset(
    {f"{d}:{a}" for d in DOMAINS for a in ("read", "write")}
    | {"audit:read", "resources:read", "resources:write", "*"}
)

_PATH_DOMAINS: Final[Mapping[str, str]] = {
    "alerts": "alerts",
    "alert-groups": "alerts",
    "explain": "alerts",
    "simulate": "alerts",
    "teams": "teams",
    "groups": "groups",
    "users": "users",
    "rotations": "rotations",
    "calendar": "calendar",
    "routes": "routes",
    "channels": "channels",
    "notifications": "channels",
    "silences": "maintenance",
    "maintenance-windows": "maintenance",
    "categories": "categories",
    "category-rules": "categories",
    "role-groups": "categories",
    "subscriptions": "categories",
    "auth": "profile",
    "profile": "profile",
    "openapi.json": "profile",
    "integrations": "alerts",
}
_ADMIN_ONLY_PATHS: Final = frozenset({"plugins", "simulator"})
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def scope_domain(path: str) -> str | None:
    """The S9.4 token domain of an API path, ``"audit"``/``"admin"`` for those, None when unmapped."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] != "api" or len(parts) < 2:
        return None
    first = parts[1]
    if first == "admin" and len(parts) > 2:
        return {"users": "users", "audit-logs": "audit"}.get(parts[2])
    if first in _ADMIN_ONLY_PATHS:
        return "admin"
    return _PATH_DOMAINS.get(first)


def scope_satisfied(scopes: Iterable[str], needed: str) -> bool:
    """Whether ``scopes`` grant ``needed`` (``domain:read`` or ``domain:write``)."""
    have = set(scopes)
    if "*" in have or needed in have:
        return True
    domain, _, action = needed.partition(":")
    if action == "read" and f"{domain}:write" in have:
        return True
    if domain in RESOURCE_DOMAINS:
        if f"resources:{action}" in have:
            return True
        if action == "read" and "resources:write" in have:
            return True
    return False


def required_scope(method: str, path: str) -> str | None:
    """The scope an API token needs for a request; None means tokens are refused (fail closed)."""
    domain = scope_domain(path)
    if domain is None or domain == "admin":
        return None
    if domain == "audit":
        return "audit:read" if method.upper() in SAFE_METHODS else None
    action = "read" if method.upper() in SAFE_METHODS else "write"
    return f"{domain}:{action}"


# --- secrets -------------------------------------------------------------------------------


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@attrs.frozen
class NewToken:
    """A freshly generated token: ``raw`` is shown once; ``hash`` and ``prefix`` are stored."""

    raw: str
    hash: str
    prefix: str


def new_token(prefix: str) -> NewToken:
    raw = prefix + secrets.token_urlsafe(48)
    return NewToken(raw=raw, hash=sha256_hex(raw), prefix=raw[:TOKEN_DISPLAY_CHARS])


def hashes_equal(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


class Passwords:
    """argon2id hashing with argon2-cffi's default parameters (S13.5)."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        self._dummy_hash: str | None = None

    @property
    def _dummy(self) -> str:
        # Verifying against a dummy hash for unknown users keeps the timing of both failures equal.
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except argon2.exceptions.InvalidHashError:
            return True


def check_password_rules(password: str, loc: str = "$.new_password") -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ApiError(
            400,
            "validation_error",
            f"password must be {PASSWORD_MIN}–{PASSWORD_MAX} characters",
            details=[{"loc": loc, "message": f"must be {PASSWORD_MIN}–{PASSWORD_MAX} characters"}],
        )


# --- JWT -------------------------------------------------------------------------------------


def jwt_secret(settings: RelaySettings) -> str:
    """``auth.jwt_secret``, else derived from ``main.secret_key``, else a per-process random key."""
    if settings.auth.jwt_secret:
        return settings.auth.jwt_secret
    if settings.main.secret_key:
        return hmac.new(settings.main.secret_key.encode(), b"relay-jwt", hashlib.sha256).hexdigest()
    return ""


class SharedStore(Protocol):
    """Short-lived shared auth state: windowed counters and expiring markers."""

    async def incr(self, key: str, window_seconds: int, now: dt.datetime) -> int:
        """Add one to the counter ``key`` (a new window starts when the last one ended)."""
        ...

    async def put(self, key: str, until: dt.datetime, now: dt.datetime) -> None:
        """Set the marker ``key`` until ``until``."""
        ...

    async def until(self, key: str, now: dt.datetime) -> dt.datetime | None:
        """When the marker ``key`` ends, or None when it is not set (or has ended)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """:class:`SharedStore` in process memory, on the caller's clock."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[int, dt.datetime]] = {}
        self._markers: dict[str, dt.datetime] = {}

    async def incr(self, key: str, window_seconds: int, now: dt.datetime) -> int:
        count, started = self._counters.get(key, (0, now))
        if (now - started).total_seconds() >= window_seconds:
            count, started = 0, now
        self._counters[key] = (count + 1, started)
        return count + 1

    async def put(self, key: str, until: dt.datetime, now: dt.datetime) -> None:
        self._markers = {k: v for k, v in self._markers.items() if v > now}
        self._markers[key] = until

    async def until(self, key: str, now: dt.datetime) -> dt.datetime | None:
        value = self._markers.get(key)
        return value if value is not None and value > now else None

    async def delete(self, key: str) -> None:
        self._counters.pop(key, None)
        self._markers.pop(key, None)

    async def aclose(self) -> None:
        return None


class RedisStore:
    """:class:`SharedStore` in Redis (keys ``<namespace>:auth:…`` with TTLs), shared by processes.

    Redis keeps its own time for expiry; an unreachable Redis is ``StorageUnavailable`` (503).
    """

    def __init__(self, url: str, namespace: str = "relay") -> None:
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = f"{namespace}:auth:"

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        import redis.exceptions

        try:
            return await getattr(self._redis, name)(*args, **kwargs)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise StorageUnavailable("session storage is temporarily unavailable") from exc

    async def incr(self, key: str, window_seconds: int, now: dt.datetime) -> int:
        full = self._prefix + key
        count = int(await self._call("incr", full))
        if count == 1:
            await self._call("expire", full, max(int(window_seconds), 1))
        return count

    async def put(self, key: str, until: dt.datetime, now: dt.datetime) -> None:
        ttl = max(math.ceil((until - now).total_seconds()), 1)
        await self._call("set", self._prefix + key, str(until.timestamp()), ex=ttl)

    async def until(self, key: str, now: dt.datetime) -> dt.datetime | None:
        raw = await self._call("get", self._prefix + key)
        if raw is None:
            return None
        value = dt.datetime.fromtimestamp(float(raw), tz=dt.UTC)
        return value if value > now else None

    async def delete(self, key: str) -> None:
        await self._call("delete", self._prefix + key)

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_store(settings: RelaySettings) -> SharedStore:
    """Redis when ``redis.url`` is set (several web processes), else process memory."""
    if settings.redis.url:
        return RedisStore(settings.redis.url, settings.redis.namespace)
    return MemoryStore()


class Sessions:
    """Issues and checks session JWTs; revoked ``jti`` values are kept until they expire."""

    def __init__(
        self, settings: RelaySettings, *, fallback_secret: str = "", store: SharedStore | None = None
    ) -> None:
        # Without a configured key, the composed core's key (compose generates and stores one)
        # keeps sessions valid across processes; failing that, a per-process random key.
        fallback = (
            hmac.new(fallback_secret.encode(), b"relay-jwt", hashlib.sha256).hexdigest()
            if fallback_secret
            else ""
        )
        self._secret = jwt_secret(settings) or fallback or secrets.token_hex(32)
        self._minutes = settings.auth.jwt_expire_minutes
        self._store: SharedStore = store if store is not None else MemoryStore()

    def issue(self, user: User, now: dt.datetime) -> tuple[str, dt.datetime, str]:
        expires = now + dt.timedelta(minutes=self._minutes)
        jti = uuid.uuid4().hex
        claims = {
            "sub": str(user.id),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": jti,
            "pwv": user.password_version,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires, jti

    def claims(self, token: str, now: dt.datetime) -> dict[str, Any] | None:
        """The claims of a well-signed, unexpired token (revocation not checked)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "require": ["sub", "exp", "jti"]},
            )
        except jwt.PyJWTError:
            return None
        if int(claims["exp"]) <= now.timestamp():
            return None
        return claims

    async def decode(self, token: str, now: dt.datetime) -> dict[str, Any] | None:
        """The claims of a valid session token: signed, unexpired and not revoked."""
        claims = self.claims(token, now)
        if claims is None or await self._store.until(_revoked_key(str(claims["jti"])), now) is not None:
            return None
        return claims

    async def revoke(self, jti: str, expires_at: dt.datetime, now: dt.datetime) -> None:
        await self._store.put(_revoked_key(jti), expires_at, now)


def _revoked_key(jti: str) -> str:
    return "session-revoked:" + jti


# --- login throttling (S13.5) ------------------------------------------------------------------


class LoginThrottle:
    """Per-IP and per-account failure counters with a block once a limit is reached."""

    def __init__(self, settings: RelaySettings, store: SharedStore | None = None) -> None:
        a = settings.auth
        self._rules = {
            "ip": (a.login_ip_max_failures, a.login_ip_window_seconds),
            "account": (a.login_account_max_failures, a.login_account_window_seconds),
        }
        self._block = a.login_block_seconds
        self._store: SharedStore = store if store is not None else MemoryStore()

    @staticmethod
    def _key(kind: str, scope: str, value: str) -> str:
        return f"login-{kind}:{scope}:{sha256_hex(value.lower())}"

    async def retry_after(self, ip: str, username: str, now: dt.datetime) -> int:
        """Seconds until a blocked key unblocks; 0 when neither key is blocked."""
        wait = 0.0
        for scope, value in (("ip", ip), ("account", username)):
            until = await self._store.until(self._key("block", scope, value), now)
            if until is not None:
                wait = max(wait, (until - now).total_seconds())
        return math.ceil(wait)

    async def failure(self, ip: str, username: str, now: dt.datetime) -> None:
        for scope, value in (("ip", ip), ("account", username)):
            limit, window = self._rules[scope]
            counter = self._key("failures", scope, value)
            if await self._store.incr(counter, window, now) >= limit:
                await self._store.put(
                    self._key("block", scope, value), now + dt.timedelta(seconds=self._block), now
                )
                await self._store.delete(counter)

    async def success(self, username: str) -> None:
        await self._store.delete(self._key("failures", "account", username))


# --- principal and RBAC (S9.3) -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Principal:
    """Who is calling: a user through a session JWT or a personal API token."""

    user: User
    via: str  # "jwt" | "cookie" | "api_token"
    token: ApiToken | None = None
    jti: str | None = None
    expires_at: dt.datetime | None = None

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin

    @property
    def scopes(self) -> tuple[str, ...] | None:
        return self.token.scopes if self.token is not None else None


@attrs.frozen(kw_only=True)
class Access:
    """One user's roles: global admin, group roles and team roles (active memberships only)."""

    user: User
    group_roles: Mapping[int, str]
    team_roles: Mapping[int, str]

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin

    # groups
    def can_read_group(self, group_id: int | None) -> bool:
        return self.is_admin or (group_id is not None and group_id in self.group_roles)

    def is_group_editor(self, group_id: int | None) -> bool:
        return self.is_admin or (group_id is not None and self.group_roles.get(group_id) == c.GROUP_EDITOR)

    def is_user_admin(self, group_id: int | None) -> bool:
        return self.is_admin or (
            group_id is not None and self.group_roles.get(group_id) == c.GROUP_USER_ADMIN
        )

    # teams
    def can_read_team(self, team: Team) -> bool:
        return self.is_admin or team.group_id in self.group_roles or team.id in self.team_roles

    def can_respond(self, team: Team) -> bool:
        return self.is_admin or self.team_roles.get(team.id) in (c.TEAM_RESPONDER, c.TEAM_MANAGER)

    def can_manage(self, team: Team) -> bool:
        return self.is_admin or self.team_roles.get(team.id) == c.TEAM_MANAGER

    def can_edit_team(self, team: Team) -> bool:
        """Team settings and team users: team managers, the group's editors, admins."""
        return self.can_manage(team) or self.is_group_editor(team.group_id)

    def permissions(self, *, read: bool, write: bool, respond: bool = False) -> dict[str, bool]:
        return {"can_read": read, "can_write": write, "can_respond": respond}

    def team_permissions(self, team: Team) -> dict[str, bool]:
        return self.permissions(
            read=self.can_read_team(team), write=self.can_manage(team), respond=self.can_respond(team)
        )

    def readable_group_ids(self) -> set[int]:
        return set(self.group_roles)


async def load_access(uow: UnitOfWork, user: User) -> Access:
    group_roles: dict[int, str] = {}
    for membership in await uow.group_memberships.find(user_id=user.id, active=True):
        group = await uow.groups.get(membership.group_id)
        if group is not None and group.active:
            group_roles[membership.group_id] = membership.role
    team_roles: dict[int, str] = {}
    for tm in await uow.team_memberships.find(user_id=user.id, active=True):
        team = await uow.teams.get(tm.team_id)
        if team is not None and team.active and team.group_id in group_roles:
            team_roles[tm.team_id] = tm.role
    return Access(user=user, group_roles=group_roles, team_roles=team_roles)


def require(condition: bool, message: str = "You do not have permission to perform this action") -> None:
    if not condition:
        raise forbidden(message)


def missing_scope(scope: str) -> ApiError:
    return ApiError(403, "permission_denied", "Missing API token scope", extra={"missing_scopes": [scope]})


async def token_principal(uow: UnitOfWork, raw: str, now: dt.datetime) -> Principal | None:
    """The user of a personal API token, or None when the token is unknown, inactive or expired."""
    digest = sha256_hex(raw)
    token = await uow.api_tokens.first(token_hash=digest)
    if token is None or not token.active or not hashes_equal(token.token_hash, digest):
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    user = await uow.users.get(token.user_id)
    if user is None or not user.active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        await uow.api_tokens.update(attrs.evolve(token, last_used_at=now))
        await uow.commit()
    return Principal(user=user, via="api_token", token=token)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, credential = value.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    return None


def no_credentials() -> ApiError:
    return unauthorized("Authentication is required")
