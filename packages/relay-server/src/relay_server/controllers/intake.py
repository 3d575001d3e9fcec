"""Alert intake endpoints ``/api/integrations/<source>`` (SPEC S2.1-S2.3, S2.15, S2.16).

One route per registered intake source (built-ins and plugins) and per path alias. A request
is checked in this order, and any rejection stores nothing: body size while reading (413),
credentials (401/403), content type (415), the source's signature check, the source's parser
(400 ``invalid_json`` / ``validation_error``); then the whole request is ingested in one
transaction and answered with the per-item array.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from typing import Any, Final

import attrs
from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from relay_core.domain.errors import IntakeValidationError, RelayError, StorageUnavailable
from relay_core.domain.intake import InvalidJson
from relay_core.plugins.registry import PluginRegistry
from relay_core.services.results import intake_status_code
from relay_server.auth import hashes_equal, scope_satisfied, sha256_hex
from relay_server.controllers._support import ServerState, server_state
from relay_server.errors import RETRY_AFTER_SECONDS, STORAGE_UNAVAILABLE_MESSAGE, error_response

TOKEN_REQUIRED: Final = "Route intake token is required"  # noqa: S105 - a message
TOKEN_INVALID: Final = "Route intake token is invalid"  # noqa: S105 - a message
INTAKE_SCOPE: Final = "alerts:write"


@attrs.frozen
class _Credentials:
    route_id: int | None = None
    user_id: int | None = None
    team_id: int | None = None


class _Rejected(Exception):
    def __init__(self, response: Response[Any], outcome: str) -> None:
        super().__init__(outcome)
        self.response = response
        self.outcome = outcome


def _presented_token(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """``(scheme, token)`` from ``Authorization``: Bearer, or Basic with the token as password."""
    value = (headers.get("authorization") or "").strip()
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if not credential:
        return None
    if scheme.lower() == "bearer":
        return "bearer", credential
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "basic", ""
        _user, sep, password = decoded.partition(":")
        return "basic", password if sep else ""
    return None


async def _authenticate(st: ServerState, headers: Mapping[str, str]) -> _Credentials:
    presented = _presented_token(headers)
    if presented is None:
        raise _Rejected(error_response(401, "unauthorized", TOKEN_REQUIRED), "unauthorized")
    scheme, token = presented
    invalid = _Rejected(error_response(401, "unauthorized", TOKEN_INVALID), "unauthorized")
    if not token:
        raise invalid
    digest = sha256_hex(token)
    now = st.now()
    async with st.uow() as uow:
        route_row = await uow.routes.first(intake_token_hash=digest)
        if route_row is not None and hashes_equal(route_row.intake_token_hash, digest):
            return _Credentials(route_id=route_row.id)
        if scheme != "bearer":
            raise invalid
        api_token = await uow.api_tokens.first(token_hash=digest)
        if (
            api_token is None
            or not api_token.active
            or not hashes_equal(api_token.token_hash, digest)
            or (api_token.expires_at is not None and api_token.expires_at <= now)
        ):
            raise invalid
        user = await uow.users.get(api_token.user_id)
        if user is None or not user.active:
            raise invalid
        if not scope_satisfied(api_token.scopes, INTAKE_SCOPE):
            raise _Rejected(
                error_response(
                    403, "permission_denied", "Missing API token scope", missing_scopes=[INTAKE_SCOPE]
                ),
                "unauthorized",
            )
        if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() >= 60:
            await uow.api_tokens.update(attrs.evolve(api_token, last_used_at=now))
            await uow.commit()
        return _Credentials(user_id=user.id, team_id=api_token.team_id)


def _media_type(headers: Mapping[str, str]) -> str:
    return (headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def _unavailable() -> Response[Any]:
    return error_response(
        503,
        "storage_unavailable",
        STORAGE_UNAVAILABLE_MESSAGE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def ingest_request(request: Request[Any, Any, Any], source_name: str, source: Any) -> Response[Any]:
    st = server_state(request)
    metrics = st.metrics
    started = time.perf_counter()
    response: Response[Any]
    if st.intake_inflight >= st.settings.server.intake_max_inflight:
        metrics.alerts_received.labels(source=source_name, outcome="unavailable").inc()
        response = _unavailable()
    else:
        st.intake_inflight += 1
        try:
            response = await _ingest(request, st, source_name, source)
        except _Rejected as rejected:
            metrics.alerts_received.labels(source=source_name, outcome=rejected.outcome).inc()
            response = rejected.response
        finally:
            st.intake_inflight -= 1
    metrics.intake_requests.labels(source=source_name, code=str(response.status_code)).inc()
    metrics.intake_duration.labels(source=source_name).observe(time.perf_counter() - started)
    return response


async def _ingest(
    request: Request[Any, Any, Any], st: ServerState, source_name: str, source: Any
) -> Response[Any]:
    limit = st.settings.server.intake_max_body_bytes
    try:
        body = await request.body()
    except RequestEntityTooLarge:
        raise _Rejected(
            error_response(413, "payload_too_large", f"request body exceeds {limit} bytes"), "invalid"
        ) from None
    if len(body) > limit:  # a handler-level limit may be missing when mounted elsewhere
        raise _Rejected(
            error_response(413, "payload_too_large", f"request body exceeds {limit} bytes"), "invalid"
        )
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        creds = await _authenticate(st, headers)
    except StorageUnavailable:
        raise _Rejected(_unavailable(), "unavailable") from None
    accepted = tuple(getattr(source, "content_types", ("application/json",)) or ("application/json",))
    media_type = _media_type(headers)
    if media_type not in accepted:
        raise _Rejected(
            error_response(
                415,
                "unsupported_media_type",
                f"Content-Type must be {' or '.join(accepted)}, not {media_type or 'missing'}",
            ),
            "invalid",
        )
    verify = getattr(source, "verify", None)
    if callable(verify):
        route_row = None
        if creds.route_id is not None:
            try:
                async with st.uow() as uow:
                    route_row = await uow.routes.get(creds.route_id)
            except StorageUnavailable:
                raise _Rejected(_unavailable(), "unavailable") from None
        try:
            verify(headers, body, route_row)
        except RelayError as exc:
            raise _Rejected(
                error_response(int(exc.status), exc.code, exc.message, exc.details), "unauthorized"
            ) from None
    try:
        items = source.parse(body, headers, dict(request.query_params))
    except InvalidJson as exc:
        raise _Rejected(error_response(400, "invalid_json", exc.message), "invalid") from None
    except IntakeValidationError as exc:
        raise _Rejected(error_response(400, exc.code, exc.message, exc.details), "invalid") from None
    try:
        results = await st.relay.ingest(
            source_name, items, route_id=creds.route_id, user_id=creds.user_id, team_id=creds.team_id
        )
    except StorageUnavailable:
        raise _Rejected(_unavailable(), "unavailable") from None
    for result in results:
        st.metrics.alerts_received.labels(source=source_name, outcome=result.outcome).inc()
    response_headers: dict[str, str] = {}
    if len(results) == 1 and results[0].trace_id:
        response_headers["X-Relay-Trace-Id"] = results[0].trace_id
    return Response(
        [r.as_dict() for r in results],
        status_code=intake_status_code(results),
        headers=response_headers,
        media_type="application/json",
    )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)


_RESPONSES: Final = {
    200: ResponseSpec(data_container=list[dict[str, Any]], description="Every item completed"),
    202: ResponseSpec(
        data_container=list[dict[str, Any]], description="Nothing failed and nothing completed"
    ),
    207: ResponseSpec(data_container=list[dict[str, Any]], description="Some items failed"),
    400: ResponseSpec(data_container=dict[str, Any], description="Invalid body, or every item failed"),
    401: ResponseSpec(data_container=dict[str, Any], description="Missing or invalid intake token"),
    403: ResponseSpec(data_container=dict[str, Any], description="API token without alerts:write"),
    413: ResponseSpec(data_container=dict[str, Any], description="Body over the size limit"),
    415: ResponseSpec(data_container=dict[str, Any], description="Content-Type is not JSON"),
    503: ResponseSpec(data_container=dict[str, Any], description="Storage unavailable; retry later"),
}


def _handler(
    source_name: str, source: Any, path: str, methods: list[HttpMethod], limit: int, alias: bool
) -> HTTPRouteHandler:
    async def handler(request: Request[Any, Any, Any]) -> Response[Any]:
        return await ingest_request(request, source_name, source)

    handler.__doc__ = (
        f"Receive alerts from {source_name} (route intake token or API token with alerts:write)."
    )
    operation = f"Ingest{_pascal(source_name)}" + (_pascal(path) + "Alias" if alias else "")

    def operation_id(_handler: Any, http_method: Any, _components: Any) -> str:
        return operation + ("" if _method(http_method) == "POST" else _method(http_method).capitalize())

    return route(
        f"/api/integrations/{path}",
        http_method=methods,
        operation_id=operation_id,
        tags=["intake"],
        request_max_body_size=limit,
        responses=_RESPONSES,
        security=[{"bearerAuth": []}, {"basicAuth": []}],
        description=f"Intake for source `{source_name}`; the body is the sender's own payload (SPEC S2).",
        name=f"intake-{path}",
    )(handler)


def intake_handlers(registry: PluginRegistry | None, *, limit: int) -> list[HTTPRouteHandler]:
    """One route handler per registered intake source path."""
    if registry is None:
        return []
    handlers: list[HTTPRouteHandler] = []
    for name, cls in registry.intake_sources().items():
        source = cls()
        methods = [HttpMethod.POST, HttpMethod.PUT] if name == "grafana" else [HttpMethod.POST]
        handlers.append(_handler(name, source, name, methods, limit, alias=False))
        for alias in getattr(cls, "path_aliases", ()) or ():
            handlers.append(_handler(name, source, alias.strip("/"), methods, limit, alias=True))
    return handlers


def _method(http_method: Any) -> str:
    return str(getattr(http_method, "value", http_method)).upper()
