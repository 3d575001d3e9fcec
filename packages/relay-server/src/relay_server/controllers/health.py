"""Operational endpoints: ``/healthz``, ``/livez``, ``/readyz``, ``/metrics``, ``/api/version`` and
the offline Swagger UI at ``/docs`` (SPEC S9.8, S9.9)."""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any, Final

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.router import Router
from litestar.static_files import create_static_files_router
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relay_server.auth import bearer_token, hashes_equal
from relay_server.controllers._support import commit_id, package_version, server_state
from relay_server.errors import error_response

log = logging.getLogger("relay.server")

DOCS_ASSETS: Final = "/docs/assets"
DOCS_CSP: Final = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)


@get("/healthz", operation_id="Healthz", tags=["health"], sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers (no dependency checks)."""
    return {"status": "ok"}


@get("/livez", operation_id="Livez", tags=["health"], sync_to_thread=False)
def livez() -> dict[str, str]:
    """Liveness alias of ``/healthz``."""
    return {"status": "ok"}


@get("/readyz", operation_id="Readyz", tags=["health"])
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Readiness: the database answers a trivial read."""
    st = server_state(request)
    body: dict[str, Any] = {"redis": "configured" if st.settings.redis.url else "disabled"}
    try:
        async with st.uow() as uow:
            await uow.groups.first()
    except Exception as exc:
        log.warning("relay.readyz.database_unavailable exception=%s", type(exc).__name__)
        return Response({"status": "not_ready", "database": "unavailable", **body}, status_code=503)
    return Response({"status": "ready", "database": "ok", **body}, status_code=200)


@get("/metrics", operation_id="Metrics", tags=["health"], media_type="text/plain")
async def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
    """Prometheus metrics (text exposition format); Bearer ``metrics.auth_token`` when configured."""
    st = server_state(request)
    if not st.settings.metrics.enabled:
        return error_response(404, "not_found", "metrics are disabled")
    token = st.settings.metrics.auth_token
    if token and not hashes_equal(bearer_token(request.headers), token):
        return error_response(401, "unauthorized", "metrics token is required")
    return Response(generate_latest(st.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@get("/api/version", operation_id="GetVersion", tags=["health"])
async def version(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Relay version, Python version and database kind."""
    st = server_state(request)
    database = "postgresql" if st.settings.is_postgres else "memory" if st.settings.is_memory else "sqlite"
    return {
        "version": package_version(),
        "commit": commit_id(),
        "python": platform.python_version(),
        "database": database,
    }


@get("/api/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """The OpenAPI 3.1 document (SPEC S9.8)."""
    return Response(request.app.openapi_schema.to_schema(), media_type="application/json")


_DOCS_HTML: Final = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Relay API</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{DOCS_ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{DOCS_ASSETS}/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

_DOCS_INIT: Final = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
});
"""


@get("/docs", include_in_schema=False, sync_to_thread=False)
def docs() -> Response[str]:
    return Response(_DOCS_HTML, media_type="text/html", headers={"Content-Security-Policy": DOCS_CSP})


@get("/docs/init.js", include_in_schema=False, sync_to_thread=False)
def docs_init() -> Response[str]:
    return Response(_DOCS_INIT, media_type="application/javascript")


def swagger_assets_dir() -> Path | None:
    """Swagger UI's files from the ``swagger-ui-bundle`` distribution, if installed."""
    try:
        import swagger_ui_bundle  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(str(swagger_ui_bundle.swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").exists() else None


def health_handlers() -> list[HTTPRouteHandler | Router]:
    handlers: list[HTTPRouteHandler | Router] = [healthz, livez, readyz, metrics, version, openapi_json]
    assets = swagger_assets_dir()
    if assets is not None:
        handlers.extend(
            [
                docs,
                docs_init,
                create_static_files_router(path=DOCS_ASSETS, directories=[assets], include_in_schema=False),
            ]
        )
    return handlers
