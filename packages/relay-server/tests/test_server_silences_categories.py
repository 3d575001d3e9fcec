"""Silences with computed status (SPEC S3.6) and categories (SPEC S8.1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.testing import AsyncTestClient

from .conftest import World


def silence_body(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "team_id": world.ids["team"],
        "name": "maintenance",
        "matchers": [{"name": "alertname", "value": "DiskFull", "is_regex": False, "is_equal": True}],
        "starts_at": "2026-06-01T09:00:00Z",
        "ends_at": "2026-06-01T12:00:00Z",
        **extra,
    }


async def test_create_silence_with_status(world: World, client: AsyncTestClient[Any]) -> None:
    """A manager creates a silence; status is computed from the clock; matchers are normalized."""
    response = await client.post("/api/silences", json=silence_body(world), headers=world.auth("manager"))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "active"
    assert body["matchers"] == {"alertname": "DiskFull"}
    world.clock.advance(dt.timedelta(hours=3))
    again = await client.get(f"/api/silences/{body['id']}", headers=world.auth("viewer"))
    assert again.json()["status"] == "expired"


async def test_silence_mutes_intake(world: World, client: AsyncTestClient[Any]) -> None:
    """An active silence makes a matching alert's group silenced."""
    await client.post("/api/silences", json=silence_body(world), headers=world.auth("manager"))
    body = {"alerts": [{"labels": {"alertname": "DiskFull"}, "fingerprint": "x"}]}
    response = await client.post(
        "/api/integrations/alertmanager", json=body, headers=world.bearer("route_alertmanager")
    )
    assert response.json()[0]["status"] == "silenced"


async def test_silence_validation_and_rbac(world: World, client: AsyncTestClient[Any]) -> None:
    """ends_at before starts_at and bad regexes are 400; responders get 403; outsiders 404."""
    headers = world.auth("manager")
    backwards = await client.post(
        "/api/silences", json=silence_body(world, ends_at="2026-06-01T08:00:00Z"), headers=headers
    )
    assert backwards.status_code == 400
    assert backwards.json()["details"][0]["loc"] == "$.ends_at"
    regex = await client.post(
        "/api/silences", json=silence_body(world, matchers={"x": {"regex": "("}}), headers=headers
    )
    assert regex.status_code == 400
    assert (
        await client.post("/api/silences", json=silence_body(world), headers=world.auth("responder"))
    ).status_code == 403
    assert (
        await client.post("/api/silences", json=silence_body(world), headers=world.auth("outsider"))
    ).status_code == 404


async def test_silence_filters_update_delete(world: World, client: AsyncTestClient[Any]) -> None:
    """Status filters narrow the list; PUT is partial; DELETE answers {deleted, id}."""
    created = (
        await client.post("/api/silences", json=silence_body(world), headers=world.auth("manager"))
    ).json()
    sid = created["id"]
    assert [
        s["id"]
        for s in (await client.get("/api/silences?status=active", headers=world.auth("viewer"))).json()
    ] == [sid]
    assert (await client.get("/api/silences?status=scheduled", headers=world.auth("viewer"))).json() == []
    assert (await client.get("/api/silences?status=bogus", headers=world.auth("viewer"))).status_code == 400
    disabled = await client.put(
        f"/api/silences/{sid}", json={"enabled": False}, headers=world.auth("manager")
    )
    assert disabled.json()["status"] == "disabled"
    assert disabled.json()["name"] == "maintenance"
    assert (
        await client.put(f"/api/silences/{sid}", json={"enabled": True}, headers=world.auth("viewer"))
    ).status_code == 403
    assert (await client.delete(f"/api/silences/{sid}", headers=world.auth("manager"))).json() == {
        "deleted": True,
        "id": sid,
    }
    assert (await client.get(f"/api/silences/{sid}", headers=world.auth("manager"))).status_code == 404


async def test_categories_builtin_and_group(world: World, client: AsyncTestClient[Any]) -> None:
    """Built-ins are listed; a group editor adds a category; viewers get 403; built-ins cannot be deleted."""
    listed = (await client.get("/api/categories", headers=world.auth("viewer"))).json()
    assert [c["slug"] for c in listed if c["builtin"]] == ["infrastructure", "billing", "configurable"]
    body = {"group_id": world.ids["group"], "slug": "security", "name": "Security"}
    assert (await client.post("/api/categories", json=body, headers=world.auth("viewer"))).status_code == 403
    assert (
        await client.post("/api/categories", json={**body, "slug": "Bad!"}, headers=world.auth("editor"))
    ).status_code == 400
    created = await client.post("/api/categories", json=body, headers=world.auth("editor"))
    assert created.status_code == 201
    assert created.json()["permissions"]["can_write"] is True
    assert (
        await client.post("/api/categories", json={**body, "slug": "billing"}, headers=world.auth("editor"))
    ).status_code == 409
    cid = created.json()["id"]
    renamed = await client.put(f"/api/categories/{cid}", json={"name": "Sec"}, headers=world.auth("editor"))
    assert renamed.json()["name"] == "Sec"
    assert (await client.get(f"/api/categories/{cid}", headers=world.auth("outsider"))).status_code == 404
    builtin = next(c for c in listed if c["slug"] == "billing")
    assert (
        await client.delete(f"/api/categories/{builtin['id']}", headers=world.auth("admin"))
    ).status_code == 409
    assert (await client.delete(f"/api/categories/{cid}", headers=world.auth("editor"))).status_code == 200
