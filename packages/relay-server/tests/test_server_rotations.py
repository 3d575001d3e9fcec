"""Rotations, members, overrides, on-call and calendar endpoints (SPEC S4)."""

from __future__ import annotations

import itertools
from typing import Any

from litestar.testing import AsyncTestClient

from .conftest import World

BASE = {"name": "secondary", "start_at": "2026-06-01T09:00:00", "timezone": "Europe/Berlin"}


async def create(world: World, client: AsyncTestClient[Any], **extra: Any) -> Any:
    body = {"team_id": world.ids["team"], **BASE, **extra}
    return await client.post("/api/rotations", json=body, headers=world.auth("manager"))


async def test_create_rotation_interprets_naive_start_in_zone(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """A naive start_at is in the rotation's zone; duration_seconds is derived; team members can be added."""
    response = await create(world, client, add_team_members=True)
    assert response.status_code == 201
    body = response.json()
    assert body["start_at"] == "2026-06-01T07:00:00Z"
    assert body["duration_seconds"] == 86400
    members = (await client.get(f"/api/rotations/{body['id']}/members", headers=world.auth("viewer"))).json()
    assert [m["position"] for m in members] == [0, 1, 2]


async def test_create_rotation_validation(world: World, client: AsyncTestClient[Any]) -> None:
    """Unknown zones, wrong durations and short reminder intervals are 400 naming the field."""
    zone = await create(world, client, timezone="Mars/Olympus")
    assert zone.status_code == 400
    assert zone.json()["details"][0]["loc"] == "$.timezone"
    duration = await create(world, client, duration_seconds=3600)
    assert duration.status_code == 400
    assert duration.json()["details"][0]["loc"] == "$.duration_seconds"
    reminder = await create(world, client, reminder_interval_seconds=30)
    assert reminder.status_code == 400


async def test_create_rotation_rbac(world: World, client: AsyncTestClient[Any]) -> None:
    """Responders cannot create rotations (403); outsiders do not see the team (404)."""
    body = {"team_id": world.ids["team"], **BASE}
    assert (
        await client.post("/api/rotations", json=body, headers=world.auth("responder"))
    ).status_code == 403
    assert (await client.post("/api/rotations", json=body, headers=world.auth("outsider"))).status_code == 404


async def test_list_get_update_enable_delete(world: World, client: AsyncTestClient[Any]) -> None:
    """Rotation CRUD: list, partial update, enable toggle and delete that detaches routes."""
    rid = world.ids["rotation"]
    listed = (await client.get("/api/rotations", headers=world.auth("viewer"))).json()
    assert [r["id"] for r in listed] == [rid]
    assert listed[0]["permissions"]["can_write"] is False
    updated = await client.put(
        f"/api/rotations/{rid}", json={"handoff_time": "10:00"}, headers=world.auth("manager")
    )
    assert updated.status_code == 200
    assert updated.json()["handoff_time"] == "10:00"
    assert updated.json()["name"] == "primary"
    bad = await client.put(
        f"/api/rotations/{rid}", json={"handoff_time": "25:00"}, headers=world.auth("manager")
    )
    assert bad.status_code == 400
    denied = await client.put(
        f"/api/rotations/{rid}/enabled", json={"enabled": False}, headers=world.auth("responder")
    )
    assert denied.status_code == 403
    disabled = await client.put(
        f"/api/rotations/{rid}/enabled", json={"enabled": False}, headers=world.auth("manager")
    )
    assert disabled.json()["enabled"] is False
    assert (await client.delete(f"/api/rotations/{rid}", headers=world.auth("manager"))).status_code == 200
    route = await world.get("routes", world.ids["route_alertmanager"])
    assert route.rotation_id is None


async def test_members_add_move_remove(world: World, client: AsyncTestClient[Any]) -> None:
    """Members insert at a position, move, and positions stay dense after removal."""
    rid = world.ids["rotation"]
    eligible = (
        await client.get(f"/api/rotations/{rid}/eligible-users", headers=world.auth("manager"))
    ).json()
    assert [u["username"] for u in eligible] == ["viewer"]
    added = await client.post(
        f"/api/rotations/{rid}/members",
        json={"user_id": world.ids["viewer"], "position": 0},
        headers=world.auth("manager"),
    )
    assert added.status_code == 201
    assert added.json()["position"] == 0
    order = [
        m["username"]
        for m in (await client.get(f"/api/rotations/{rid}/members", headers=world.auth("viewer"))).json()
    ]
    assert order == ["viewer", "manager", "responder"]
    moved = await client.put(
        f"/api/rotations/members/{added.json()['id']}", json={"position": 2}, headers=world.auth("manager")
    )
    assert moved.json()["position"] == 2
    removed = await client.delete(
        f"/api/rotations/members/{added.json()['id']}", headers=world.auth("manager")
    )
    assert removed.status_code == 200
    positions = [
        m["position"]
        for m in (await client.get(f"/api/rotations/{rid}/members", headers=world.auth("viewer"))).json()
    ]
    assert positions == [0, 1]


async def test_member_must_be_team_member(world: World, client: AsyncTestClient[Any]) -> None:
    """Adding a non-member is 400; a responder adding anyone is 403."""
    rid = world.ids["rotation"]
    bad = await client.post(
        f"/api/rotations/{rid}/members",
        json={"user_id": world.ids["outsider"]},
        headers=world.auth("manager"),
    )
    assert bad.status_code == 400
    denied = await client.post(
        f"/api/rotations/{rid}/members",
        json={"user_id": world.ids["viewer"]},
        headers=world.auth("responder"),
    )
    assert denied.status_code == 403


async def test_oncall_and_override(world: World, client: AsyncTestClient[Any]) -> None:
    """An override beats the rotation in /oncall; it can be listed and deleted."""
    rid = world.ids["rotation"]
    before = (await client.get(f"/api/rotations/{rid}/oncall", headers=world.auth("viewer"))).json()
    assert before["source"] == "layer"
    assert before["user"]["username"] in ("manager", "responder")
    override = await client.post(
        f"/api/rotations/{rid}/overrides",
        json={
            "user_id": world.ids["viewer"],
            "starts_at": "2026-06-01T09:00:00Z",
            "ends_at": "2026-06-01T18:00:00Z",
        },
        headers=world.auth("manager"),
    )
    assert override.status_code == 201
    assert override.json()["expired"] is False
    now = (await client.get(f"/api/rotations/{rid}/oncall", headers=world.auth("viewer"))).json()
    assert now["user"]["username"] == "viewer"
    assert now["source"] == "override"
    at = await client.get(
        f"/api/rotations/{rid}/oncall?at=2026-06-02T12:00:00Z", headers=world.auth("viewer")
    )
    assert at.json()["source"] == "layer"
    listed = (await client.get(f"/api/rotations/{rid}/overrides", headers=world.auth("viewer"))).json()
    assert [o["id"] for o in listed] == [override.json()["id"]]
    deleted = await client.delete(
        f"/api/rotations/overrides/{override.json()['id']}", headers=world.auth("manager")
    )
    assert deleted.status_code == 200


async def test_override_validation_and_rbac(world: World, client: AsyncTestClient[Any]) -> None:
    """ends_at before starts_at is 400; a viewer creating an override is 403."""
    rid = world.ids["rotation"]
    body = {
        "user_id": world.ids["viewer"],
        "starts_at": "2026-06-01T18:00:00Z",
        "ends_at": "2026-06-01T09:00:00Z",
    }
    assert (
        await client.post(f"/api/rotations/{rid}/overrides", json=body, headers=world.auth("manager"))
    ).status_code == 400
    good = {**body, "starts_at": "2026-06-01T08:00:00Z"}
    assert (
        await client.post(f"/api/rotations/{rid}/overrides", json=good, headers=world.auth("viewer"))
    ).status_code == 403


async def test_calendar_segments(world: World, client: AsyncTestClient[Any]) -> None:
    """The calendar tiles the range, and an override splits the shift it falls in."""
    rid = world.ids["rotation"]
    await client.post(
        f"/api/rotations/{rid}/overrides",
        json={
            "user_id": world.ids["viewer"],
            "starts_at": "2026-06-02T12:00:00Z",
            "ends_at": "2026-06-02T16:00:00Z",
        },
        headers=world.auth("manager"),
    )
    response = await client.get(
        f"/api/calendar?rotation_id={rid}&start=2026-06-02T09:00:00Z&end=2026-06-03T09:00:00Z",
        headers=world.auth("viewer"),
    )
    assert response.status_code == 200
    events = response.json()
    assert [e["type"] for e in events] == ["layer", "override", "layer"]
    assert events[0]["start"] == "2026-06-02T09:00:00Z"
    assert events[-1]["end"] == "2026-06-03T09:00:00Z"
    assert events[1]["username"] == "viewer"
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(events))
    by_team = await client.get(f"/api/calendar?team_id={world.ids['team']}", headers=world.auth("viewer"))
    assert by_team.status_code == 200
    assert by_team.json()


async def test_calendar_validation(world: World, client: AsyncTestClient[Any]) -> None:
    """Missing scope, end before start, ranges over 366 days and junk dates are 400, never 500."""
    headers = world.auth("viewer")
    rid = world.ids["rotation"]
    assert (await client.get("/api/calendar", headers=headers)).status_code == 400
    backwards = await client.get(
        f"/api/calendar?rotation_id={rid}&start=2026-06-02&end=2026-06-01", headers=headers
    )
    assert backwards.status_code == 400
    long = await client.get(
        f"/api/calendar?rotation_id={rid}&start=2026-01-01&end=2027-06-01", headers=headers
    )
    assert long.status_code == 400
    junk = await client.get(f"/api/calendar?rotation_id={rid}&start=yesterday", headers=headers)
    assert junk.status_code == 400
    hidden = await client.get(f"/api/calendar?rotation_id={rid}", headers=world.auth("outsider"))
    assert hidden.status_code == 404
