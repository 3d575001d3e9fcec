"""The web UI served by relay-server at ``/`` (SPEC S11).

Server-rendered Jinja2 pages (:mod:`.pages`) that read through the JSON API, plus one vendored
script and one stylesheet under ``/ui/static`` (nothing from a CDN). Pages are not part of the
OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router


def ui_handlers() -> list[Any]:
    """Route handlers (pages and static assets) of the web UI."""
    from relay_server.ui.pages import PAGES, STATIC, STATIC_PATH

    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC],
        name="ui-static",
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=300),
    )
    return [*PAGES, static]
