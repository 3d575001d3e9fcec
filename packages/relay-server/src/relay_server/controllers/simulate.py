"""Dry-run simulation over HTTP (SPEC S3.9): ``POST /api/simulate``.

The report comes from :func:`relay_core.services.simulation.simulate_intake`, the same code
``relay simulate`` runs; nothing is written.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody

from relay_core.domain.model import Route
from relay_core.services.simulation import simulate_intake
from relay_server.auth import load_access, require
from relay_server.controllers._support import Caller, parse_datetime, server_state
from relay_server.controllers.routes import visible_route
from relay_server.schemas import SimulateBody


class SimulateController(Controller):
    path = "/api/simulate"
    tags = ("alerts",)

    @post("/", operation_id="SimulateAlert", status_code=200)
    async def simulate(
        self, request: Request[Any, Any, Any], principal: Caller, data: JSONBody[SimulateBody]
    ) -> dict[str, Any]:
        """Dry-run an intake payload: route, group, silences, assignee, channels and paging timeline.

        Requires manager rights on the route's team (``route_id``), or on some team; without
        ``route_id`` routing considers only routes of teams the caller manages.
        """
        st = server_state(request)
        at = parse_datetime(data.at, "$.at") if data.at is not None else st.now()
        body = json.dumps(data.payload).encode("utf-8")
        registry = st.registry or st.relay.registry
        async with st.uow() as uow:  # read only: never committed
            access = await load_access(uow, principal.user)
            forced: Route | None = None
            allowed: set[int] | None = None
            if data.route_id is not None:
                forced, _team = await visible_route(uow, access, data.route_id, manage=True)
            elif not access.is_admin:
                allowed = {t.id for t in await uow.teams.find() if access.can_manage(t)}
                require(bool(allowed), "Manager rights on a team are required")
            assert registry is not None  # create_app always sets one
            return await simulate_intake(
                uow,
                registry=registry,
                source=data.source,
                body=body,
                now=at,
                forced_route=forced,
                horizon_seconds=data.horizon_seconds,
                default_group_wait=st.settings.alerts.group_wait_seconds,
                allowed_team_ids=allowed,
            )


CONTROLLERS: list[Any] = [SimulateController]
