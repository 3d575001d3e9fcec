"""``POST /api/simulate`` (SPEC S3.9): a dry run of intake over HTTP that writes nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from .conftest import START, World

AM = json.loads((Path(__file__).parent / "fixtures" / "alertmanager_v4.json").read_text())


async def _stored(world: World) -> tuple[int, int, int]:
    return (
        await world.count("alert_groups"),
        await world.count("alerts"),
        await world.count("traces"),
    )


async def test_simulate_reports_route_assignee_and_timeline(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """A manager's dry run names the route, team, category, assignee and the paging timeline."""
    body = {
        "source": "alertmanager",
        "payload": AM,
        "route_id": world.ids["route_alertmanager"],
        "horizon_seconds": 3600,
    }
    response = await client.post("/api/simulate", json=body, headers=world.auth("manager"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["mode"] == "dry_run"
    assert report["at"] == "2026-06-01T10:00:00Z"
    [item] = report["items"]
    assert item["outcome"] == "created"
    assert item["route"] == {"id": world.ids["route_alertmanager"], "name": "alertmanager route"}
    assert item["team"]["slug"] == "infra"
    assert item["assignee"] in ("manager", "responder")
    assert [ch["name"] for ch in item["channels"]] == ["room"]
    assert item["existing_group_id"] is None
    timeline = item["timeline"]
    assert timeline[0]["action"] == "notification"
    assert timeline[0]["at"] == item["channels"][0]["due_at"]
    first = dt.datetime.fromisoformat(timeline[0]["at"].replace("Z", "+00:00"))
    assert START <= first <= START + dt.timedelta(seconds=300)
    assert {e["action"] for e in timeline[1:]} <= {"reminder", "escalation"}
    assert len(timeline) > 1
    assert all(
        START <= dt.datetime.fromisoformat(e["at"].replace("Z", "+00:00")) <= START + dt.timedelta(hours=1)
        for e in timeline
    )
    assert await _stored(world) == (0, 0, 0)


async def test_simulate_respects_at_and_horizon(world: World, client: AsyncTestClient[Any]) -> None:
    """``at`` moves the clock of the dry run; a zero horizon keeps only the immediate page."""
    body = {"source": "alertmanager", "payload": AM, "at": "2026-06-03T12:00:00Z", "horizon_seconds": 0}
    response = await client.post("/api/simulate", json=body, headers=world.auth("manager"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["at"] == "2026-06-03T12:00:00Z"
    assert report["items"][0]["route"]["id"] == world.ids["route_alertmanager"]
    assert [(e["at"], e["action"]) for e in report["items"][0]["timeline"]] == [
        ("2026-06-03T12:00:00Z", "notification")
    ]


async def test_simulate_requires_manager_rights(world: World, client: AsyncTestClient[Any]) -> None:
    """A responder may not simulate on the team's route; an outsider does not see it at all."""
    body = {"source": "alertmanager", "payload": AM, "route_id": world.ids["route_alertmanager"]}
    denied = await client.post("/api/simulate", json=body, headers=world.auth("responder"))
    assert denied.status_code == 403
    assert denied.json()["error"] == "permission_denied"
    hidden = await client.post("/api/simulate", json=body, headers=world.auth("outsider"))
    assert hidden.status_code == 404


async def test_simulate_without_route_only_uses_managed_teams(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """Without ``route_id`` an outsider's dry run never routes into a team they do not manage."""
    body = {"source": "alertmanager", "payload": AM}
    response = await client.post("/api/simulate", json=body, headers=world.auth("outsider"))
    assert response.status_code == 200, response.text
    item = response.json()["items"][0]
    assert item["outcome"] == "routing_failed"
    assert "route" not in item


async def test_simulate_rejects_unknown_source_and_bad_payload(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """An unknown source or a payload the source rejects is a 400 naming the field."""
    unknown = await client.post(
        "/api/simulate", json={"source": "nope", "payload": AM}, headers=world.auth("manager")
    )
    assert unknown.status_code == 400
    assert unknown.json()["details"][0]["loc"] == "$.source"
    bad = await client.post(
        "/api/simulate",
        json={"source": "alertmanager", "payload": {"alerts": "x"}},
        headers=world.auth("manager"),
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "validation_error"
    assert all(d["loc"].startswith("$.payload") for d in bad.json()["details"])
