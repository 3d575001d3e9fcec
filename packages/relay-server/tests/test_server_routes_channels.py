"""Routes with intake tokens, and channels with write-only secrets (SPEC S3.1, S3.2, S6.1)."""

from __future__ import annotations

import hashlib
from typing import Any

from litestar.testing import AsyncTestClient

from .conftest import World


def route_body(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "team_id": world.ids["team"],
        "name": "new route",
        "source": "webhook",
        "rotation_id": world.ids["rotation"],
        "channel_ids": [world.ids["channel"]],
        "matchers": [{"name": "env", "value": "prod", "is_regex": False, "is_equal": True}],
        **extra,
    }


async def test_create_route_returns_token_once(world: World, client: AsyncTestClient[Any]) -> None:
    """POST /api/routes answers the raw intake token once; it authenticates intake; reads never show it."""
    response = await client.post("/api/routes", json=route_body(world), headers=world.auth("manager"))
    assert response.status_code == 201
    body = response.json()
    token = body["intake_token"]
    assert token.startswith("rly_r_")
    assert body["intake_token_prefix"] == token[:12]
    assert body["has_intake_token"] is True
    assert body["intake_url"] == "https://relay.test/api/integrations/webhook"
    assert body["matchers"] == {"env": "prod"}
    stored = await world.get("routes", body["id"])
    assert stored.intake_token_hash == hashlib.sha256(token.encode()).hexdigest()
    fetched = (await client.get(f"/api/routes/{body['id']}", headers=world.auth("viewer"))).json()
    assert "intake_token" not in fetched
    intake = await client.post(
        "/api/integrations/webhook",
        json={"title": "t", "labels": {"env": "prod"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert intake.status_code == 200


async def test_route_validation(world: World, client: AsyncTestClient[Any]) -> None:
    """Unknown sources, foreign channels, bad regexes and unknown fields are 400 with locations."""
    headers = world.auth("manager")
    source = await client.post(
        "/api/routes", json=route_body(world, source="carrier-pigeon"), headers=headers
    )
    assert source.json()["details"][0]["loc"] == "$.source"
    regex = await client.post(
        "/api/routes", json=route_body(world, matchers={"alertname": {"regex": "("}}), headers=headers
    )
    assert regex.status_code == 400
    extra = await client.post("/api/routes", json=route_body(world, colour="red"), headers=headers)
    assert extra.status_code == 400
    duplicate = await client.post(
        "/api/routes", json=route_body(world, name="alertmanager route"), headers=headers
    )
    assert duplicate.status_code == 409


async def test_route_rbac(world: World, client: AsyncTestClient[Any]) -> None:
    """Responders cannot create routes (403); outsiders cannot see them (404)."""
    assert (
        await client.post("/api/routes", json=route_body(world), headers=world.auth("responder"))
    ).status_code == 403
    rid = world.ids["route_alertmanager"]
    assert (await client.get(f"/api/routes/{rid}", headers=world.auth("outsider"))).status_code == 404
    assert (
        await client.post(f"/api/routes/{rid}/intake-token", headers=world.auth("responder"))
    ).status_code == 403


async def test_regenerate_token_invalidates_old(world: World, client: AsyncTestClient[Any]) -> None:
    """Regenerating the intake token makes the old one invalid at once."""
    rid = world.ids["route_alertmanager"]
    old = world.tokens["route_alertmanager"]
    response = await client.post(f"/api/routes/{rid}/intake-token", headers=world.auth("manager"))
    assert response.status_code == 200
    new = response.json()["intake_token"]
    body = {"alerts": [{"labels": {"alertname": "x"}}]}
    gone = await client.post(
        "/api/integrations/alertmanager", json=body, headers={"Authorization": f"Bearer {old}"}
    )
    assert gone.status_code == 401
    works = await client.post(
        "/api/integrations/alertmanager", json=body, headers={"Authorization": f"Bearer {new}"}
    )
    assert works.status_code == 200


async def test_update_list_delete_route(world: World, client: AsyncTestClient[Any]) -> None:
    """PUT is partial, list is scoped, channel membership endpoints work, and delete answers {deleted, id}."""
    rid = world.ids["route_webhook"]
    updated = await client.put(
        f"/api/routes/{rid}", json={"group_by": ["alertname"]}, headers=world.auth("manager")
    )
    assert updated.json()["group_by"] == ["alertname"]
    assert updated.json()["source"] == "webhook"
    bad = await client.put(
        f"/api/routes/{rid}", json={"group_wait_seconds": 99999}, headers=world.auth("manager")
    )
    assert bad.status_code == 400
    removed = await client.delete(
        f"/api/routes/{rid}/channels/{world.ids['channel']}", headers=world.auth("manager")
    )
    assert removed.json()["channel_ids"] == []
    added = await client.post(
        f"/api/routes/{rid}/channels/{world.ids['channel']}", headers=world.auth("manager")
    )
    assert added.json()["channel_ids"] == [world.ids["channel"]]
    replaced = await client.put(
        f"/api/routes/{rid}/channels", json={"channel_ids": []}, headers=world.auth("manager")
    )
    assert replaced.json()["channel_ids"] == []
    assert len((await client.get("/api/routes", headers=world.auth("viewer"))).json()) == 4
    assert (await client.get("/api/routes", headers=world.auth("outsider"))).json() == []
    assert (await client.delete(f"/api/routes/{rid}", headers=world.auth("manager"))).json() == {
        "deleted": True,
        "id": rid,
    }


# --- channels -------------------------------------------------------------------------------------


async def test_channel_types(world: World, client: AsyncTestClient[Any]) -> None:
    """GET /api/channels/types lists the core senders with capabilities and config schema."""
    types = {
        t["type"]: t for t in (await client.get("/api/channels/types", headers=world.auth("viewer"))).json()
    }
    assert {"voice_call", "recording"} <= set(types)
    assert types["voice_call"]["person_addressed"] is True
    assert "callback_secret" in types["voice_call"]["secret_fields"]
    assert types["voice_call"]["config_schema"]["type"] == "object"


async def test_channel_secrets_are_write_only(world: World, client: AsyncTestClient[Any]) -> None:
    """Secret config values are masked on read and the placeholder keeps the stored value on update."""
    body = {
        "team_id": world.ids["team"],
        "name": "phone",
        "channel_type": "voice_call",
        "config": {"provider": "stub", "callback_secret": "s3cr3t-value", "test_phone": "+15550009999"},
    }
    created = await client.post("/api/channels", json=body, headers=world.auth("manager"))
    assert created.status_code == 201, created.text
    assert created.json()["config"]["callback_secret"] == "__RELAY_SECRET__"
    assert "s3cr3t-value" not in created.text
    cid = created.json()["id"]
    masked = created.json()["config"]
    updated = await client.put(
        f"/api/channels/{cid}",
        json={"config": {**masked, "provider": "simulator"}},
        headers=world.auth("manager"),
    )
    assert updated.status_code == 200
    stored = await world.get("channels", cid)
    assert stored.config["callback_secret"] == "s3cr3t-value"
    assert stored.config["provider"] == "simulator"
    assert stored.callback_secret


async def test_channel_validation_and_rbac(world: World, client: AsyncTestClient[Any]) -> None:
    """Unknown types and config keys are 400; responders get 403; group channels need a group editor."""
    headers = world.auth("manager")
    base = {"team_id": world.ids["team"], "name": "chan", "channel_type": "voice_call"}
    assert (
        await client.post("/api/channels", json={**base, "channel_type": "fax"}, headers=headers)
    ).status_code == 400
    bad_config = await client.post("/api/channels", json={**base, "config": {"nonsense": 1}}, headers=headers)
    assert bad_config.status_code == 400
    assert bad_config.json()["details"]
    assert (await client.post("/api/channels", json=base, headers=world.auth("responder"))).status_code == 403
    group_channel = {"group_id": world.ids["group"], "name": "org", "channel_type": "recording"}
    assert (
        await client.post("/api/channels", json=group_channel, headers=world.auth("manager"))
    ).status_code == 403
    assert (
        await client.post("/api/channels", json=group_channel, headers=world.auth("editor"))
    ).status_code == 201


async def test_channel_read_update_delete(world: World, client: AsyncTestClient[Any]) -> None:
    """Channels list for members, 404 for outsiders, and deletion detaches them from routes."""
    cid = world.ids["channel"]
    assert [c["id"] for c in (await client.get("/api/channels", headers=world.auth("viewer"))).json()] == [
        cid
    ]
    assert (await client.get(f"/api/channels/{cid}", headers=world.auth("outsider"))).status_code == 404
    renamed = await client.put(
        f"/api/channels/{cid}", json={"name": "war room"}, headers=world.auth("manager")
    )
    assert renamed.json()["name"] == "war room"
    assert (await client.delete(f"/api/channels/{cid}", headers=world.auth("responder"))).status_code == 403
    assert (await client.delete(f"/api/channels/{cid}", headers=world.auth("manager"))).status_code == 200
    route = await world.get("routes", world.ids["route_alertmanager"])
    assert cid not in route.channel_ids
