"""The web UI served by relay-server at ``/`` (SPEC S11)."""

from __future__ import annotations

from typing import Any


def ui_handlers() -> list[Any]:
    """Route handlers (pages and static assets) of the web UI."""
    return []
