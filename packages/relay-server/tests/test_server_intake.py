"""Intake endpoints: authentication, request limits, per-item answers and storage outages (SPEC S2)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from relay_adapters.settings import RelaySettings, ServerSettings

from .conftest import World, build_world

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


AM = fixture("alertmanager_v4.json")


async def assert_nothing_stored(world: World) -> None:
    assert await world.count("alert_groups") == 0
    assert await world.count("alerts") == 0
    assert await world.count("traces") == 0


async def test_alertmanager_firing_creates_a_group(world: World, client: AsyncTestClient[Any]) -> None:
    """A valid Alertmanager v4 post answers 200 with one created item and a trace header."""
    response = await client.post(
        "/api/integrations/alertmanager", json=AM, headers=world.bearer("route_alertmanager")
    )
    assert response.status_code == 200
    (item,) = response.json()
    assert item["created"] is True
    assert item["outcome"] == "created"
    assert item["processing_status"] == "completed"
    assert item["team_slug"] == "infra"
    assert item["route_id"] == world.ids["route_alertmanager"]
    assert item["dedup_key"] == "disk-full-host1-var"
    assert item["id"] == item["group_id"]
    assert item["alert_url"] == f"https://relay.test/alerts/{item['group_id']}"
    assert response.headers["x-relay-trace-id"] == item["trace_id"]
    (group,) = await world.find("alert_groups")
    assert group.severity == "critical"
    assert group.title == "Disk is full"
    (child,) = await world.find("alerts")
    assert child.ends_at is None  # Alertmanager's 0001-01-01 endsAt means "no end"


async def test_duplicate_post_updates_the_same_group(world: World, client: AsyncTestClient[Any]) -> None:
    """Posting the same alert twice deduplicates into one group and one child."""
    headers = world.bearer("route_alertmanager")
    await client.post("/api/integrations/alertmanager", json=AM, headers=headers)
    response = await client.post("/api/integrations/alertmanager", json=AM, headers=headers)
    assert response.status_code == 200
    assert response.json()[0]["created"] is False
    assert await world.count("alert_groups") == 1
    assert await world.count("alerts") == 1


async def test_resolve_after_firing_resolves_the_group(world: World, client: AsyncTestClient[Any]) -> None:
    """A resolved Alertmanager item resolves the group it fired."""
    headers = world.bearer("route_alertmanager")
    await client.post("/api/integrations/alertmanager", json=AM, headers=headers)
    resolved = copy.deepcopy(AM)
    resolved["status"] = "resolved"
    resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-06-01T10:05:00Z"
    response = await client.post("/api/integrations/alertmanager", json=resolved, headers=headers)
    assert response.status_code == 200
    assert response.json()[0]["status"] == "resolved"
    (group,) = await world.find("alert_groups")
    assert group.status == "resolved"


async def test_orphan_resolve_is_accepted_with_202(world: World, client: AsyncTestClient[Any]) -> None:
    """A resolve for an alert Relay never saw is ignored: nothing completed, nothing failed → 202."""
    resolved = copy.deepcopy(AM)
    resolved["alerts"][0]["status"] = "resolved"
    response = await client.post(
        "/api/integrations/alertmanager", json=resolved, headers=world.bearer("route_alertmanager")
    )
    assert response.status_code == 202
    assert response.json()[0]["processing_status"] == "stopped"
    assert await world.count("alert_groups") == 0


async def test_mixed_items_answer_207(world: World, client: AsyncTestClient[Any]) -> None:
    """A webhook array with one good and one bad item answers 207 with both items in order."""
    body = [{"title": "ok", "fingerprint": "a"}, {"title": "bad", "status": "exploded"}]
    response = await client.post(
        "/api/integrations/webhook", json=body, headers=world.bearer("route_webhook")
    )
    assert response.status_code == 207
    first, second = response.json()
    assert first["processing_status"] == "completed"
    assert second["processing_status"] == "failed"
    assert second["reason"] == "unknown status 'exploded'"
    assert "x-relay-trace-id" not in response.headers


async def test_every_item_failing_answers_400(world: World, client: AsyncTestClient[Any]) -> None:
    """A webhook body whose only item fails answers 400 with the failed item."""
    response = await client.post(
        "/api/integrations/webhook",
        json={"title": "bad", "status": "nope"},
        headers=world.bearer("route_webhook"),
    )
    assert response.status_code == 400
    (item,) = response.json()
    assert item["outcome"] == "failed"
    assert await world.count("alert_groups") == 0


async def test_missing_credentials_answer_401(world: World, client: AsyncTestClient[Any]) -> None:
    """No Authorization header is 401 with the exact S2.2 body and stores nothing."""
    response = await client.post("/api/integrations/alertmanager", json=AM)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.json()["message"] == "Route intake token is required"
    await assert_nothing_stored(world)


async def test_token_in_query_string_is_ignored(world: World, client: AsyncTestClient[Any]) -> None:
    """A token passed as a query parameter does not authenticate."""
    token = world.tokens["route_alertmanager"]
    response = await client.post(f"/api/integrations/alertmanager?token={token}&api_key={token}", json=AM)
    assert response.status_code == 401
    assert response.json()["message"] == "Route intake token is required"


async def test_unknown_token_answers_401(world: World, client: AsyncTestClient[Any]) -> None:
    """An unknown bearer token is 401 'Route intake token is invalid'."""
    response = await client.post(
        "/api/integrations/alertmanager", json=AM, headers={"Authorization": "Bearer rly_r_nope"}
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Route intake token is invalid"
    await assert_nothing_stored(world)


async def test_token_of_deleted_route_is_invalid(world: World, client: AsyncTestClient[Any]) -> None:
    """Soft-deleting a route makes its intake token invalid."""
    import attrs

    async with world.relay.uow_factory() as uow:
        route = await uow.routes.get(world.ids["route_alertmanager"])
        await uow.routes.update(attrs.evolve(route, deleted_at=world.clock.now()))
        await uow.commit()
    response = await client.post(
        "/api/integrations/alertmanager", json=AM, headers=world.bearer("route_alertmanager")
    )
    assert response.status_code == 401


async def test_basic_auth_with_token_as_password(world: World, client: AsyncTestClient[Any]) -> None:
    """Basic auth carrying the route token as the password authenticates (username ignored)."""
    credential = base64.b64encode(f"alertmanager:{world.tokens['route_alertmanager']}".encode()).decode()
    response = await client.post(
        "/api/integrations/alertmanager", json=AM, headers={"Authorization": f"Basic {credential}"}
    )
    assert response.status_code == 200
    assert response.json()[0]["route_id"] == world.ids["route_alertmanager"]


async def test_api_token_without_scope_answers_403(world: World, client: AsyncTestClient[Any]) -> None:
    """A personal API token lacking alerts:write is 403 with missing_scopes."""
    response = await client.post(
        "/api/integrations/alertmanager", json=AM, headers=world.bearer("teams_read")
    )
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "permission_denied"
    assert body["message"] == "Missing API token scope"
    assert body["missing_scopes"] == ["alerts:write"]
    await assert_nothing_stored(world)


async def test_api_token_with_alerts_write_routes_by_source(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """A personal token with alerts:write is accepted and routing falls back to the source's routes."""
    response = await client.post(
        "/api/integrations/alertmanager", json=AM, headers=world.bearer("alerts_write")
    )
    assert response.status_code == 200
    assert response.json()[0]["route_id"] == world.ids["route_alertmanager"]


async def test_body_over_limit_answers_413() -> None:
    """A body larger than server.intake_max_body_bytes is 413 with the exact message."""
    settings = RelaySettings(
        server=ServerSettings(intake_max_body_bytes=200, public_base_url="https://relay.test")
    )
    world = await build_world(settings=settings)
    async with AsyncTestClient(app=world.app) as client:
        response = await client.post(
            "/api/integrations/alertmanager", json=AM, headers=world.bearer("route_alertmanager")
        )
    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "message": "request body exceeds 200 bytes",
        "details": [],
    }
    await assert_nothing_stored(world)


async def test_wrong_content_type_answers_415(world: World, client: AsyncTestClient[Any]) -> None:
    """A non-JSON content type is 415 unsupported_media_type."""
    response = await client.post(
        "/api/integrations/alertmanager",
        content=json.dumps(AM).encode(),
        headers={**world.bearer("route_alertmanager"), "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    await assert_nothing_stored(world)


async def test_json_with_charset_is_accepted(world: World, client: AsyncTestClient[Any]) -> None:
    """application/json with a charset parameter is accepted."""
    response = await client.post(
        "/api/integrations/alertmanager",
        content=json.dumps(AM).encode(),
        headers={**world.bearer("route_alertmanager"), "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


async def test_malformed_json_answers_400_with_position(world: World, client: AsyncTestClient[Any]) -> None:
    """Malformed JSON is 400 invalid_json naming the line and column."""
    response = await client.post(
        "/api/integrations/alertmanager",
        content=b'{\n  "alerts": [,]\n}',
        headers={**world.bearer("route_alertmanager"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_json"
    assert "line 2 column" in body["message"]
    await assert_nothing_stored(world)


async def test_schema_violation_answers_400_with_details(world: World, client: AsyncTestClient[Any]) -> None:
    """A wrong shape is 400 validation_error with located details."""
    response = await client.post(
        "/api/integrations/alertmanager",
        json={"alerts": [{"labels": "not-a-mapping"}]},
        headers=world.bearer("route_alertmanager"),
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert {"loc": "$.alerts[0].labels", "message": "expected a mapping"} in body["details"]
    await assert_nothing_stored(world)


async def test_storage_unavailable_answers_503(world: World, client: AsyncTestClient[Any]) -> None:
    """When storage is down, intake answers 503 storage_unavailable with Retry-After: 5."""
    world.storage.down = True
    response = await client.post(
        "/api/integrations/alertmanager", json=AM, headers=world.bearer("route_alertmanager")
    )
    world.storage.down = False
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "error": "storage_unavailable",
        "message": "alert storage is temporarily unavailable",
        "details": [],
    }
    await assert_nothing_stored(world)


async def test_inflight_limit_answers_503() -> None:
    """Above server.intake_max_inflight, intake answers 503 rather than 429."""
    world = await build_world(settings=RelaySettings(server=ServerSettings(intake_max_inflight=0)))
    async with AsyncTestClient(app=world.app) as client:
        response = await client.post(
            "/api/integrations/alertmanager", json=AM, headers=world.bearer("route_alertmanager")
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    await assert_nothing_stored(world)


async def test_grafana_accepts_put(world: World, client: AsyncTestClient[Any]) -> None:
    """Grafana's contact point may use PUT."""
    response = await client.put(
        "/api/integrations/grafana", json=fixture("grafana.json"), headers=world.bearer("route_grafana")
    )
    assert response.status_code == 200
    assert response.json()[0]["created"] is True


async def test_put_is_not_allowed_on_alertmanager(world: World, client: AsyncTestClient[Any]) -> None:
    """Only Grafana takes PUT; elsewhere it is a JSON 405."""
    response = await client.put(
        "/api/integrations/alertmanager", json=AM, headers=world.bearer("route_alertmanager")
    )
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


async def test_zabbix_problem_with_unexpanded_macros(world: World, client: AsyncTestClient[Any]) -> None:
    """A Zabbix media-type problem whose macros were not expanded is accepted and stored."""
    response = await client.post(
        "/api/integrations/zabbix", json=fixture("zabbix_problem.json"), headers=world.bearer("route_zabbix")
    )
    assert response.status_code == 200
    (item,) = response.json()
    assert item["created"] is True
    (group,) = await world.find("alert_groups")
    assert group.source == "zabbix"
    assert group.severity == "critical"  # Zabbix High (4) maps to critical (S2.8)


async def test_route_source_mismatch_is_a_routing_failure(world: World, client: AsyncTestClient[Any]) -> None:
    """Posting to /webhook with the Alertmanager route's token fails the item with a routing error."""
    response = await client.post(
        "/api/integrations/webhook", json={"title": "x"}, headers=world.bearer("route_alertmanager")
    )
    assert response.status_code == 400
    (item,) = response.json()
    assert item["outcome"] == "routing_failed"
    assert item["routing_error"] == "route source 'alertmanager' does not match alert source 'webhook'"


async def test_intake_metrics_count_outcomes(world: World, client: AsyncTestClient[Any]) -> None:
    """relay_alerts_received_total counts created and unauthorized items by source."""
    await client.post("/api/integrations/alertmanager", json=AM, headers=world.bearer("route_alertmanager"))
    await client.post("/api/integrations/alertmanager", json=AM)
    text = (await client.get("/metrics")).text
    assert 'relay_alerts_received_total{outcome="created",source="alertmanager"} 1.0' in text
    assert 'relay_alerts_received_total{outcome="unauthorized",source="alertmanager"} 1.0' in text
    assert "relay_http_request_duration_seconds" in text
