"""The ceiling of the bench (SPEC S12.2 T7): a bare Litestar POST handler, served like Relay.

It does the least an intake endpoint can do — read the body, decode the JSON, answer one small
JSON object per alert — with no storage, no auth and no middleware, so the ratio of Relay's
intake to it shows what Relay's own work costs on this machine under the same load.

Run: ``uvicorn bench.bare_app:app`` (the harness starts it with the same uvicorn options as Relay).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, post


@post("/api/integrations/alertmanager", status_code=200)
async def intake(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    payload = msgspec.json.decode(await request.body())
    return [{"created": True, "status": "firing"} for _ in payload.get("alerts", ())]


app = Litestar(route_handlers=[intake], openapi_config=None)
