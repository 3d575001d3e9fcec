"""Shared plumbing for the controllers: the per-app state, authentication dependency, metrics,
time formatting and small query helpers."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Annotated, Any, Final, TypeVar

import attrs
import msgspec
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relay_adapters.metrics import DatabaseGauges
from relay_adapters.settings import RelaySettings
from relay_core.bootstrap import Relay
from relay_core.domain import constants as c
from relay_core.domain.model import AuditLog, Team, User
from relay_core.plugins.registry import PluginRegistry
from relay_core.ports.storage import UnitOfWork
from relay_server.auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SAFE_METHODS,
    Access,
    LoginThrottle,
    Passwords,
    Principal,
    Sessions,
    bearer_token,
    hashes_equal,
    load_access,
    missing_scope,
    no_credentials,
    required_scope,
    scope_satisfied,
    token_principal,
)
from relay_server.errors import ApiError, not_found, validation_error

T = TypeVar("T")

MAX_LIMIT: Final = 1000
#: Query parameter types of every collection endpoint (S9.1: ``limit`` ≤ 1000, ``offset``).
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, QueryParameter(ge=0)]
SECRET_PLACEHOLDER: Final = "__RELAY_SECRET__"  # noqa: S105 - the mask shown instead of a secret
LEGACY_SECRET_PLACEHOLDER: Final = "__INCIDENTRELAY_SECRET__"  # noqa: S105 - IncidentRelay's mask
SLUG_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def package_version() -> str:
    try:
        return importlib.metadata.version("relay-server")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree without metadata
        return "0.0.0"


def commit_id() -> str:
    """The source commit of this build: ``RELAY_COMMIT`` (set by the image build), else unknown."""
    return os.environ.get("RELAY_COMMIT", "").strip()[:64] or "unknown"


class Metrics:
    """The server's Prometheus metrics, on a registry owned by one app (no global state).

    ``/metrics`` adds the core's counters (``relay.ctx.metrics``, ``relay_adapters.metrics``)
    and the database gauges of :attr:`database_gauges`; in multiprocess mode the metric files of
    every process replace the registries (``relay_adapters.metrics.exposition``).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.database_gauges: DatabaseGauges | None = None
        """Created by the first scrape, bound to the relay it reads (cached a few seconds)."""
        r = self.registry
        self.alerts_received = Counter(
            "relay_alerts_received_total",
            "Intake items by source and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.intake_requests = Counter(
            "relay_intake_requests_total",
            "Intake requests by source and status code.",
            ["source", "code"],
            registry=r,
        )
        self.intake_duration = Histogram(
            "relay_intake_duration_seconds", "Intake request duration.", ["source"], registry=r
        )
        self.http_requests = Counter(
            "relay_http_requests_total", "HTTP requests.", ["method", "route", "code"], registry=r
        )
        self.http_duration = Histogram(
            "relay_http_request_duration_seconds", "HTTP request duration.", ["method", "route"], registry=r
        )
        self.acknowledgements = Counter(
            "relay_acknowledgements_total", "Acknowledgements by channel of action.", ["via"], registry=r
        )
        build = Gauge(
            "relay_build_info", "Relay build.", ["version", "commit"], multiprocess_mode="max", registry=r
        )
        build.labels(version=package_version(), commit=commit_id()).set(1)

    def gauges_for(self, relay: Relay) -> DatabaseGauges:
        """The database gauges of ``relay`` (a new cache when the relay changed)."""
        gauges = self.database_gauges
        if gauges is None or gauges.relay is not relay:
            gauges = self.database_gauges = DatabaseGauges(relay)
        return gauges


@attrs.define(kw_only=True)
class ServerState:
    """Everything the controllers share, built once by ``create_app``."""

    relay: Relay
    settings: RelaySettings
    sessions: Sessions
    throttle: LoginThrottle
    passwords: Passwords
    metrics: Metrics
    registry: PluginRegistry | None = None
    intake_inflight: int = 0

    def uow(self) -> UnitOfWork:
        return self.relay.uow_factory()

    def now(self) -> dt.datetime:
        return self.relay.clock.now()

    @property
    def public_base_url(self) -> str:
        return self.settings.server.public_base_url.rstrip("/")


STATE_KEY: Final = "relay_server"

#: Handler parameter type for the authenticated caller (``principal: Caller``).
Caller = NamedDependency[Principal]


def server_state(request: Request[Any, Any, Any]) -> ServerState:
    state: State = request.app.state
    value: ServerState = state[STATE_KEY]
    return value


@contextlib.asynccontextmanager
async def caller_session(
    request: Request[Any, Any, Any], principal: Principal
) -> AsyncIterator[tuple[ServerState, UnitOfWork, Access]]:
    """One handler's transaction: ``async with caller_session(request, principal) as (st, uow,
    access)`` opens a unit of work and loads the caller's roles in it (rolled back unless committed)."""
    st = server_state(request)
    async with st.uow() as uow:
        yield st, uow, await load_access(uow, principal.user)


# --- authentication dependency ---------------------------------------------------------------


async def authenticate(request: Request[Any, Any, Any]) -> Principal:
    """Resolve the caller per S9.2 (JWT cookie or Bearer, then personal API token); 401 otherwise."""
    st = server_state(request)
    now = st.now()
    cookie_name = st.settings.auth.jwt_cookie_name
    bearer = bearer_token(request.headers)
    cookie = request.cookies.get(cookie_name)
    async with st.uow() as uow:
        if bearer is not None and bearer.count(".") == 2:
            principal = await _jwt_principal(uow, st, bearer, now, via="jwt")
            if principal is None:
                raise ApiError(401, "unauthorized", "session is invalid or expired")
        elif bearer is not None:
            principal = await token_principal(uow, bearer, now)
            if principal is None:
                raise ApiError(401, "unauthorized", "API token is invalid, revoked or expired")
        elif cookie:
            principal = await _jwt_principal(uow, st, cookie, now, via="cookie")
            if principal is None:
                raise ApiError(401, "unauthorized", "session is invalid or expired")
        else:
            raise no_credentials()
    method = request.method.upper()
    if principal.via == "cookie" and method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER.lower())
        expected = request.cookies.get(CSRF_COOKIE)
        if not hashes_equal(sent, expected):
            raise ApiError(403, "csrf_failed", "CSRF token is missing or does not match")
    if principal.token is not None:
        needed = required_scope(method, request.url.path)
        if needed is None:
            raise ApiError(403, "permission_denied", "API tokens cannot be used for this endpoint")
        if not scope_satisfied(principal.token.scopes, needed):
            raise missing_scope(needed)
    return principal


async def _jwt_principal(
    uow: UnitOfWork, st: ServerState, token: str, now: dt.datetime, *, via: str
) -> Principal | None:
    claims = await st.sessions.decode(token, now)
    if claims is None:
        return None
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError):
        return None
    user = await uow.users.get(user_id)
    if user is None or not user.active:
        return None
    if int(claims.get("pwv", 0)) != user.password_version:
        return None
    return Principal(
        user=user,
        via=via,
        jti=str(claims["jti"]),
        expires_at=dt.datetime.fromtimestamp(int(claims["exp"]), tz=dt.UTC),
    )


# --- formatting --------------------------------------------------------------------------------


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with ``Z`` (S0.6)."""
    if value is None:
        return None
    value = value.astimezone(dt.UTC)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_datetime(value: Any, loc: str, *, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    """Parse an ISO 8601 date or datetime; a naive value is in ``tz`` (S0.6)."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            try:
                day = dt.date.fromisoformat(text)
            except ValueError:
                raise validation_error(
                    f"{loc.removeprefix('$.')} is not a valid date or datetime",
                    [{"loc": loc, "message": "expected an ISO 8601 date or datetime"}],
                ) from None
            parsed = dt.datetime.combine(day, dt.time())
    else:
        raise validation_error(
            f"{loc.removeprefix('$.')} is required",
            [{"loc": loc, "message": "expected an ISO 8601 datetime"}],
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=tz)
    if not (dt.datetime.min.replace(tzinfo=dt.UTC) + dt.timedelta(days=2)) < parsed.astimezone(dt.UTC):
        raise validation_error("datetime out of range", [{"loc": loc, "message": "out of range"}])
    return parsed.astimezone(dt.UTC)


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    return "***" + digits[-4:] if digits else "***"


def mask_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def user_ref(user: User | None, *, full: bool = True) -> dict[str, Any] | None:
    if user is None:
        return None
    ref: dict[str, Any] = {"id": user.id, "username": user.username}
    if full:
        ref["display_name"] = user.display_name or user.username
    return ref


# --- request helpers ---------------------------------------------------------------------------


def given(value: Any) -> bool:
    """Whether a partial-update field was sent."""
    return value is not msgspec.UNSET


def changes(data: msgspec.Struct, *, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of a partial body that were sent."""
    return {
        name: getattr(data, name)
        for name in data.__struct_fields__
        if name not in skip and getattr(data, name) is not msgspec.UNSET
    }


def checked_changes(data: msgspec.Struct, *, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The sent fields of a partial update body, with ``name`` (when sent) checked and stripped."""
    values = changes(data, skip=skip)
    if "name" in values:
        values["name"] = check_name(values["name"])
    return values


def check_limit(limit: int, offset: int) -> tuple[int, int]:
    if limit < 1 or limit > MAX_LIMIT:
        raise validation_error("limit must be 1–1000", [{"loc": "query.limit", "message": "must be 1–1000"}])
    if offset < 0:
        raise validation_error("offset must be ≥ 0", [{"loc": "query.offset", "message": "must be ≥ 0"}])
    return limit, offset


def page(items: Sequence[T], limit: int, offset: int) -> list[T]:
    limit, offset = check_limit(limit, offset)
    return list(items[offset : offset + limit])


def check_name(name: str, loc: str = "$.name") -> str:
    name = name.strip()
    if not 2 <= len(name) <= 120:
        raise validation_error(
            "name must be 2–120 characters", [{"loc": loc, "message": "must be 2–120 characters"}]
        )
    return name


def check_slug(slug: str, loc: str = "$.slug") -> str:
    if not SLUG_RE.fullmatch(slug):
        raise validation_error(
            "slug is invalid", [{"loc": loc, "message": "must match ^[a-z0-9][a-z0-9-]{0,62}$"}]
        )
    return slug


def check_description(text: str, loc: str = "$.description") -> str:
    if len(text) > 2000:
        raise validation_error(
            "description is too long", [{"loc": loc, "message": "must be at most 2000 characters"}]
        )
    return text


async def ensure_slug_free(repo: Any, values: Mapping[str, Any], current: str | None = None) -> None:
    """409 ``conflict`` when ``values`` sets a slug (other than ``current``) that ``repo`` already has."""
    slug = values.get("slug")
    if slug is not None and slug != current and await repo.first(slug=slug):
        raise ApiError(409, "conflict", "slug is already in use")


def deleted(id: int) -> dict[str, Any]:
    return {"deleted": True, "id": id}


async def get_or_404(repo: Any, id: int, what: str) -> Any:
    entity = await repo.get(id)
    if entity is None:
        raise not_found(what)
    return entity


async def audit(
    uow: UnitOfWork,
    st: ServerState,
    principal: Principal,
    action: str,
    object_type: str,
    object_id: int | None,
    *,
    message: str = "",
    group_id: int | None = None,
    team_id: int | None = None,
    team: Team | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """One audit row per successful write (S1.2); ``data`` must hold no secrets.

    ``team`` sets ``group_id`` and ``team_id`` from a team-owned resource's team.
    """
    if team is not None:
        group_id, team_id = team.group_id, team.id
    await uow.audit.add(
        AuditLog(
            action=action,
            object_type=object_type,
            object_id=object_id,
            message=message,
            data=dict(data or {}),
            user_id=principal.user_id,
            api_token_id=principal.token.id if principal.token else None,
            group_id=group_id,
            team_id=team_id,
            created_at=st.now(),
        )
    )


async def soft_delete(
    uow: UnitOfWork,
    st: ServerState,
    principal: Principal,
    repo: Any,
    entity: Any,
    kind: str,
    *,
    group_id: int | None = None,
    team_id: int | None = None,
    team: Team | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Mark ``entity`` deleted (plus ``changes``), audit ``<kind>.delete`` and commit; the S9.1 answer."""
    await repo.update(attrs.evolve(entity, deleted_at=st.now(), **changes))
    await audit(
        uow, st, principal, f"{kind}.delete", kind, entity.id, group_id=group_id, team_id=team_id, team=team
    )
    await uow.commit()
    return deleted(entity.id)


SEVERITY_RANK: Final = {name: i for i, name in enumerate(c.SEVERITIES)}
