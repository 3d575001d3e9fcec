"""Property-based run of the whole API against its own OpenAPI document (SPEC S9.8): no 5xx.

Schemathesis' own pytest integration does not support this pytest version, so the test walks
the operations itself and drives each one's Hypothesis strategy with bounded examples.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from .conftest import build_world  # noqa: E402

MAX_EXAMPLES = 3  # bounded: the whole run stays under a minute on a loaded CI machine


def test_api_never_answers_5xx() -> None:
    """Generated requests to every operation, authenticated as an admin, never get a server error."""
    world = asyncio.run(build_world())
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", world.app)
    admin_id = world.ids["admin"]

    def headers() -> dict[str, str]:
        # Generated requests may change the admin's password (which ends older sessions): mint
        # each session from the stored row. Calls are sequential, so the store is never contended.
        admin = asyncio.run(world.get("users", admin_id))
        token, _expires, _jti = world.state.sessions.issue(admin, world.clock.now())
        return {"Authorization": f"Bearer {token}"}

    checked: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call(headers=headers())
            case.validate_response(response, checks=(not_a_server_error,))

        run()
        checked.append(operation.label)
    # Every API endpoint of the app is in the schema and was exercised.
    expected = {
        f"{method} {re.sub(r':[a-z]+}', '}', route.path)}"
        for route in world.app.routes
        for handler in getattr(route, "route_handlers", ())
        for method in getattr(handler, "http_methods", ())
        if route.path.startswith("/api/")
        and not route.path.startswith("/api/_schema")
        and route.path != "/api/openapi.json"  # the document itself is not in the document
        and method not in ("HEAD", "OPTIONS")
    }
    assert expected - set(checked) == set()
