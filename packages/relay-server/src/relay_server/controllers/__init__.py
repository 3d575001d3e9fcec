"""HTTP controllers, one module per resource (ARCHITECTURE §2)."""

from __future__ import annotations

from typing import Any


def api_controllers() -> list[Any]:
    """The session/token-authenticated API controllers, in catalogue order (SPEC S9.6)."""
    from relay_server.controllers.auth import AuthController, ProfileController

    return [AuthController, ProfileController]
