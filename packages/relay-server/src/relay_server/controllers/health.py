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
from prometheus_client import CONTENT_TYPE_LATEST

from relay_adapters.metrics import exposition
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


#: ``app.state`` key set when the process starts draining (shutdown begun): ``/readyz`` is 503.
DRAINING_KEY: Final = "relay_draining"


@get("/readyz", operation_id="Readyz", tags=["health"])
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Readiness (S9.9): the database answers, migrations are applied, Redis (when configured)
    answers and the process is not draining; otherwise 503 ``not_ready`` with the same fields."""
    st = server_state(request)
    database, migrations = await _database_and_migrations(st.relay)
    redis = await _redis_status(st.settings.redis.url)
    draining = bool(request.app.state.get(DRAINING_KEY))
    ready = (
        database == "ok"
        and migrations is not None
        and migrations["applied"] == migrations["total"]
        and redis in ("ok", "disabled")
        and not draining
    )
    body: dict[str, Any] = {
        "status": "ready" if ready else "not_ready",
        "database": database,
        "redis": redis,
        "migrations": migrations
        if migrations is not None
        else {"applied": None, "total": _total_migrations()},
    }
    if draining:
        body["draining"] = True
    return Response(body, status_code=200 if ready else 503)


_SCRIPT: list[Any] = []


def _script() -> Any:
    """The Alembic script directory shipped in relay-adapters (parsed once per process)."""
    if not _SCRIPT:
        from alembic.script import ScriptDirectory

        from relay_adapters.storage.sqlalchemy.schema import alembic_config

        _SCRIPT.append(ScriptDirectory.from_config(alembic_config()))
    return _SCRIPT[0]


def _total_migrations() -> int | None:
    try:
        return len(list(_script().walk_revisions()))
    except Exception:
        return None


async def _database_and_migrations(relay: Any) -> tuple[str, dict[str, int] | None]:
    """``("ok"|"unavailable", {"applied": N, "total": N} | None)``, through the relay's own pool.

    In-memory storage has no migrations (``0/0``)."""
    factory = relay.uow_factory
    engine = getattr(factory, "engine", None)
    if engine is None:
        try:
            async with factory() as uow:
                await uow.groups.first()
        except Exception as exc:
            log.warning("relay.readyz.database_unavailable exception=%s", type(exc).__name__)
            return "unavailable", None
        return "ok", {"applied": 0, "total": 0}
    from alembic.runtime.migration import MigrationContext

    def heads(conn: Any) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(conn).get_current_heads())

    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(heads)
    except Exception as exc:
        log.warning("relay.readyz.database_unavailable exception=%s", type(exc).__name__)
        return "unavailable", None
    script = _script()
    revisions = [rev.revision for rev in script.walk_revisions()]
    applied: set[str] = set()
    for head in current:
        try:
            applied.update(rev.revision for rev in script.iterate_revisions(head, "base"))
        except Exception:
            log.warning("relay.readyz.unknown_revision revision=%s", head)
            return "ok", {"applied": 0, "total": len(revisions)}
    return "ok", {"applied": sum(1 for rev in revisions if rev in applied), "total": len(revisions)}


async def _redis_status(url: str) -> str:
    """``disabled`` without ``redis.url``, else ``ok`` when it answers PING within a second."""
    if not url:
        return "disabled"
    try:
        import redis.asyncio as aioredis

        client = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            await client.ping()
        finally:
            await client.aclose()
    except Exception as exc:
        log.warning("relay.readyz.redis_unavailable exception=%s", type(exc).__name__)
        return "unavailable"
    return "ok"


@get("/metrics", operation_id="Metrics", tags=["health"], media_type="text/plain")
async def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
    """Prometheus metrics (text exposition format); Bearer ``metrics.auth_token`` when configured.

    This process's registries (or, in multiprocess mode, the metric files of every Relay process)
    plus the database gauges read at scrape time (S9.9)."""
    st = server_state(request)
    if not st.settings.metrics.enabled:
        return error_response(404, "not_found", "metrics are disabled")
    token = st.settings.metrics.auth_token
    if token and not hashes_equal(bearer_token(request.headers), token):
        return error_response(401, "unauthorized", "metrics token is required")
    local: list[Any] = [st.metrics.registry]
    core_registry = getattr(st.relay.ctx.metrics, "registry", None)
    if core_registry is not None:
        local.append(core_registry)
    live: list[Any] = []
    try:
        live.append(await st.metrics.gauges_for(st.relay).collector())
    except Exception as exc:  # the database is down: the counters still answer
        log.warning("relay.metrics.database_gauges_failed exception=%s", type(exc).__name__)
    return Response(exposition(local, live), media_type=CONTENT_TYPE_LATEST)


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
