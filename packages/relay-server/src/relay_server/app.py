"""The Litestar application factory: ``create_app(relay=..., settings=...)`` (ARCHITECTURE §5).

The app holds no module-level state: everything (the :class:`~relay_core.bootstrap.Relay`,
sessions, login throttle, metrics registry) lives on ``app.state`` and is built here, so tests
build as many independent apps as they like.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Final

from litestar import Litestar, Request
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from relay_adapters.settings import RelaySettings
from relay_core.bootstrap import Relay
from relay_core.plugins import PluginRegistry, make_plugin_manager
from relay_server.auth import LoginThrottle, Passwords, Sessions, make_store
from relay_server.controllers import api_controllers
from relay_server.controllers._support import STATE_KEY, Metrics, ServerState, authenticate, package_version
from relay_server.controllers.health import health_handlers
from relay_server.controllers.intake import intake_handlers
from relay_server.errors import ApiError, exception_handlers
from relay_server.ui import ui_handlers

__all__ = ["create_app"]

_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SECURITY_HEADERS: Final = (
    ("content-security-policy", "default-src 'self'; frame-ancestors 'none'"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)


def _http_middleware(app: ASGIApp, *, metrics: Metrics, https: bool) -> ASGIApp:
    """Request id, security headers (S13.8) and HTTP metrics (S9.9) for every response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = dict(scope.get("headers") or ())
        request_id = (incoming.get(b"x-request-id") or b"").decode("latin-1")[:200] or uuid.uuid4().hex
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = MutableScopeHeaders.from_message(message)
                headers["x-request-id"] = request_id
                for name, value in _SECURITY_HEADERS:
                    if name not in headers:
                        headers[name] = value
                if https:
                    headers["strict-transport-security"] = "max-age=31536000"
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            route = str(scope.get("path_template") or "unmatched")
            method = str(scope.get("method", "GET"))
            metrics.http_requests.labels(method=method, route=route, code=str(status["code"])).inc()
            metrics.http_duration.labels(method=method, route=route).observe(time.perf_counter() - started)

    return middleware


async def _require_json_body(request: Request[Any, Any, Any]) -> None:
    """Resource endpoints take JSON bodies only (S13.3: wrong content type → 415)."""
    if request.method.upper() not in _UNSAFE:
        return
    path = request.url.path
    if not path.startswith("/api/") or path.startswith("/api/integrations/"):
        return
    length = request.headers.get("content-length")
    has_body = (
        length is not None and length.strip() not in ("", "0")
    ) or "transfer-encoding" in request.headers
    if not has_body:
        return
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")


def _operation_id(route_handler: Any, http_method: Any, path_components: list[str | Any]) -> str:
    name = str(getattr(route_handler, "handler_name", "") or "operation")
    pascal = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    methods = getattr(route_handler, "http_methods", ())
    return pascal + (str(getattr(http_method, "value", http_method)).capitalize() if len(methods) > 1 else "")


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Relay API",
        version=package_version(),
        # Litestar's schema router adds a catch-all HTML 404 under its path, so it lives out of the
        # way; ``/api/openapi.json`` is served by ``controllers.health.openapi_json``.
        path="/api/_schema",
        render_plugins=[JsonRenderPlugin(path="/openapi.json")],
        components=Components(
            security_schemes={
                "bearerAuth": SecurityScheme(
                    type="http", scheme="bearer", bearer_format="JWT or rly_p_ token"
                ),
                "cookieAuth": SecurityScheme(type="apiKey", name="relay_jwt", security_scheme_in="cookie"),
                "basicAuth": SecurityScheme(type="http", scheme="basic"),
            }
        ),
        security=[{"bearerAuth": []}, {"cookieAuth": []}],
        operation_id_creator=_operation_id,
        use_handler_docstrings=True,
        tags=[
            Tag(name=name)
            for name in (
                "intake",
                "auth",
                "profile",
                "alerts",
                "groups",
                "users",
                "teams",
                "rotations",
                "calendar",
                "routes",
                "channels",
                "silences",
                "categories",
                "health",
            )
        ],
    )


def _core_secret(relay: Relay) -> str:
    """The core's secret key unless it is the built-in development default."""
    from relay_core.services.context import CoreSettings

    key = relay.ctx.settings.secret_key
    return "" if key == CoreSettings().secret_key else key


def create_app(*, relay: Relay, settings: RelaySettings) -> Litestar:
    """Build the HTTP application around ``relay`` (SPEC S2, S9)."""
    registry = relay.registry if relay.registry is not None else PluginRegistry(make_plugin_manager())
    metrics = Metrics()
    store = make_store(settings)  # throttle counters and revoked sessions, shared by processes
    state = ServerState(
        relay=relay,
        settings=settings,
        sessions=Sessions(settings, fallback_secret=_core_secret(relay), store=store),
        throttle=LoginThrottle(settings, store),
        passwords=Passwords(),
        metrics=metrics,
        registry=registry,
    )
    https = settings.server.public_base_url.lower().startswith("https://")
    return Litestar(
        route_handlers=[
            *intake_handlers(registry, limit=settings.server.intake_max_body_bytes),
            *api_controllers(),
            *health_handlers(),
            *ui_handlers(),
        ],
        state=State({STATE_KEY: state}),
        dependencies={"principal": Provide(authenticate)},
        exception_handlers=exception_handlers(),
        openapi_config=_openapi_config(),
        middleware=[DefineMiddleware(_http_middleware, metrics=metrics, https=https)],
        before_request=_require_json_body,
        request_max_body_size=max(settings.server.max_body_bytes, 1),
        debug=False,
        on_shutdown=[store.aclose],
        # Logging is configured once per process by relay_adapters.logging.configure_logging
        # (runtime.py); Litestar must not install its own handlers on top of it.
        logging_config=None,
    )
