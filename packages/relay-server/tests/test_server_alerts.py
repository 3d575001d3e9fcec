"""Alert group API: list, detail, timeline, explain, acknowledge and resolve (SPEC S9.6, S9.7)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import attrs
from litestar.testing import AsyncTestClient

from .conftest import World

AM = json.loads((Path(__file__).parent / "fixtures" / "alertmanager_v4.json").read_text())


async def fire(
    world: World, client: AsyncTestClient[Any], fingerprint: str = "disk-full-host1-var", **labels: str
) -> dict[str, Any]:
    body = copy.deepcopy(AM)
    body["alerts"][0]["fingerprint"] = fingerprint
    body["alerts"][0]["labels"].update(labels)
    response = await client.post(
        "/api/integrations/alertmanager", json=body, headers=world.bearer("route_alertmanager")
    )
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()[0]
    return item


async def test_list_alerts_shows_visible_groups(world: World, client: AsyncTestClient[Any]) -> None:
    """GET /api/alerts answers items, pagination, summary and sort for a team viewer."""
    item = await fire(world, client)
    response = await client.get("/api/alerts", headers=world.auth("viewer"))
    assert response.status_code == 200
    body = response.json()
    assert [g["id"] for g in body["items"]] == [item["group_id"]]
    group = body["items"][0]
    assert group["team_slug"] == "infra"
    assert group["assignee"]["username"] in ("manager", "responder")
    assert group["permissions"] == {"can_read": True, "can_write": False, "can_respond": False}
    assert group["alert_count"] == 1
    assert group["escalation_mode"] == "rotation"
    assert "alerts" not in group
    assert body["pagination"] == {"page": 1, "page_size": 25, "total": 1, "pages": 1}
    assert body["summary"]["firing"] == 1


async def test_list_alerts_hides_other_groups(world: World, client: AsyncTestClient[Any]) -> None:
    """A user outside the team's group sees no alerts of it."""
    await fire(world, client)
    response = await client.get("/api/alerts", headers=world.auth("outsider"))
    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_list_alerts_filters_and_pages(world: World, client: AsyncTestClient[Any]) -> None:
    """Status and severity filters and page_size narrow the list; summary counts all statuses."""
    first = await fire(world, client, "a")
    await fire(world, client, "b", severity="warning")
    await client.post(f"/api/alerts/{first['group_id']}/ack", headers=world.auth("responder"))
    acked = await client.get("/api/alerts?status=acknowledged", headers=world.auth("viewer"))
    assert [g["id"] for g in acked.json()["items"]] == [first["group_id"]]
    assert acked.json()["summary"] == {"firing": 1, "acknowledged": 1, "resolved": 0, "silenced": 0}
    warning = await client.get("/api/alerts?severity=warning", headers=world.auth("viewer"))
    assert len(warning.json()["items"]) == 1
    paged = await client.get("/api/alerts?page_size=1&page=2", headers=world.auth("viewer"))
    assert paged.json()["pagination"] == {"page": 2, "page_size": 1, "total": 2, "pages": 2}
    assert len(paged.json()["items"]) == 1


async def test_list_alerts_validation(world: World, client: AsyncTestClient[Any]) -> None:
    """Unknown status values and out-of-range page sizes are 400 validation_error."""
    bad_status = await client.get("/api/alerts?status=exploded", headers=world.auth("viewer"))
    assert bad_status.status_code == 400
    assert bad_status.json()["error"] == "validation_error"
    bad_size = await client.get("/api/alerts?page_size=1000", headers=world.auth("viewer"))
    assert bad_size.status_code == 400


async def test_alerts_require_authentication(client: AsyncTestClient[Any]) -> None:
    """GET /api/alerts without credentials is 401."""
    assert (await client.get("/api/alerts")).status_code == 401


async def test_alerts_need_the_alerts_scope(world: World, client: AsyncTestClient[Any]) -> None:
    """An API token without alerts:read is 403 with missing_scopes."""
    response = await client.get("/api/alerts", headers=world.bearer("teams_read"))
    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["alerts:read"]


async def test_alert_detail_has_children_events_traces(world: World, client: AsyncTestClient[Any]) -> None:
    """GET /api/alerts/{id} carries child alerts, events, deliveries and traces."""
    item = await fire(world, client)
    await world.relay.run_until_idle()
    response = await client.get(f"/api/alerts/{item['group_id']}", headers=world.auth("responder"))
    assert response.status_code == 200
    body = response.json()
    assert body["alerts"][0]["dedup_key"] == "disk-full-host1-var"
    assert body["alerts"][0]["labels"]["alertname"] == "DiskFull"
    assert body["events"][0]["event_type"] == "created"
    assert body["traces"][0]["trace_id"] == item["trace_id"]
    assert body["permissions"]["can_respond"] is True
    (delivery,) = body["deliveries"]
    assert delivery["channel_id"] == world.ids["channel"]
    assert delivery["channel_type"] == "recording"
    assert delivery["provider"]


async def test_alert_detail_of_invisible_group_is_404(world: World, client: AsyncTestClient[Any]) -> None:
    """A group outside every visible group is 404, not 403."""
    item = await fire(world, client)
    response = await client.get(f"/api/alerts/{item['group_id']}", headers=world.auth("outsider"))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_events_endpoint(world: World, client: AsyncTestClient[Any]) -> None:
    """GET /api/alerts/{id}/events lists the timeline, and 404s for unknown ids."""
    item = await fire(world, client)
    response = await client.get(f"/api/alerts/{item['group_id']}/events", headers=world.auth("viewer"))
    assert response.status_code == 200
    assert response.json()[0]["event_type"] == "created"
    assert (await client.get("/api/alerts/9999/events", headers=world.auth("viewer"))).status_code == 404


async def test_acknowledge_by_responder(world: World, client: AsyncTestClient[Any]) -> None:
    """A responder acknowledges; the group is attributed to them."""
    item = await fire(world, client)
    response = await client.post(f"/api/alerts/{item['group_id']}/ack", headers=world.auth("responder"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "acknowledged"
    assert body["acknowledged_by"]["username"] == "responder"
    assert body["changed"] is True


async def test_acknowledge_denied_for_team_viewer(world: World, client: AsyncTestClient[Any]) -> None:
    """A team viewer cannot acknowledge (403) and the group stays firing."""
    item = await fire(world, client)
    response = await client.post(f"/api/alerts/{item['group_id']}/ack", headers=world.auth("viewer"))
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert (await world.get("alert_groups", item["group_id"])).status == "firing"


async def test_acknowledge_requires_authentication(world: World, client: AsyncTestClient[Any]) -> None:
    """POST /api/alerts/{id}/ack without credentials is 401."""
    item = await fire(world, client)
    assert (await client.post(f"/api/alerts/{item['group_id']}/ack")).status_code == 401


async def test_acknowledge_validation(world: World, client: AsyncTestClient[Any]) -> None:
    """An unknown body field is 400 validation_error."""
    item = await fire(world, client)
    response = await client.post(
        f"/api/alerts/{item['group_id']}/ack", json={"who": 1}, headers=world.auth("responder")
    )
    assert response.status_code == 400


async def test_acting_for_another_user_needs_admin(world: World, client: AsyncTestClient[Any]) -> None:
    """A responder cannot acknowledge on behalf of someone else; an admin can."""
    item = await fire(world, client)
    url = f"/api/alerts/{item['group_id']}/ack"
    denied = await client.post(url, json={"user_id": world.ids["manager"]}, headers=world.auth("responder"))
    assert denied.status_code == 403
    allowed = await client.post(url, json={"user_id": world.ids["manager"]}, headers=world.auth("admin"))
    assert allowed.status_code == 200
    assert allowed.json()["acknowledged_by"]["username"] == "manager"


async def test_resolve_then_ack_conflicts(world: World, client: AsyncTestClient[Any]) -> None:
    """Resolving works for a responder; acknowledging a resolved group is 409 conflict."""
    item = await fire(world, client)
    resolved = await client.post(f"/api/alerts/{item['group_id']}/resolve", headers=world.auth("responder"))
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_by"]["username"] == "responder"
    conflict = await client.post(f"/api/alerts/{item['group_id']}/ack", headers=world.auth("responder"))
    assert conflict.status_code == 409
    assert conflict.json() == {"error": "conflict", "message": "alert group is resolved", "details": []}


async def test_resolve_via_api_token(world: World, client: AsyncTestClient[Any]) -> None:
    """A '*' token of a team manager resolves; the group records resolved_via api."""
    item = await fire(world, client)
    response = await client.post(f"/api/alerts/{item['group_id']}/resolve", headers=world.bearer("all"))
    assert response.status_code == 200
    assert response.json()["resolved_via"] == "api"


async def test_explain_endpoints(world: World, client: AsyncTestClient[Any]) -> None:
    """Traces are readable by group and by trace id, including the IncidentRelay aliases."""
    item = await fire(world, client)
    by_group = await client.get(f"/api/alerts/{item['group_id']}/explain", headers=world.auth("viewer"))
    assert by_group.status_code == 200
    trace = by_group.json()["traces"][0]
    assert trace["trace_id"] == item["trace_id"]
    assert trace["steps"][0]["code"] == "alert_received"
    one = await client.get(f"/api/explain/{item['trace_id']}", headers=world.auth("viewer"))
    assert one.json()["outcome"] == "created"
    alias = await client.get(f"/api/alert-groups/explain/{item['trace_id']}", headers=world.auth("viewer"))
    assert alias.json() == one.json()
    alias_group = await client.get(
        f"/api/alert-groups/{item['group_id']}/explain", headers=world.auth("viewer")
    )
    assert alias_group.json() == by_group.json()


async def test_explain_hidden_from_outsiders(world: World, client: AsyncTestClient[Any]) -> None:
    """A trace of an invisible team is 404, and the endpoint needs authentication."""
    item = await fire(world, client)
    assert (
        await client.get(f"/api/explain/{item['trace_id']}", headers=world.auth("outsider"))
    ).status_code == 404
    assert (await client.get(f"/api/explain/{item['trace_id']}")).status_code == 401


async def test_list_alerts_time_window_sort_and_test_alerts(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """``from``/``to`` bound the first-seen time, ``sort``/``order`` order the items and test
    alerts appear only with ``include_test``."""
    early = await fire(world, client, "early", severity="warning")
    world.clock.advance(3600)
    late = await fire(world, client, "late", severity="critical")
    viewer = world.auth("viewer")
    window = await client.get(
        "/api/alerts", params={"from": "2026-06-01T10:30:00Z", "to": "2026-06-01T12:00:00Z"}, headers=viewer
    )
    assert window.status_code == 200, window.text
    assert [g["id"] for g in window.json()["items"]] == [late["group_id"]]
    before = await client.get("/api/alerts", params={"to": "2026-06-01T10:30:00Z"}, headers=viewer)
    assert [g["id"] for g in before.json()["items"]] == [early["group_id"]]
    oldest_first = await client.get("/api/alerts", params={"sort": "created", "order": "asc"}, headers=viewer)
    assert [g["id"] for g in oldest_first.json()["items"]] == [early["group_id"], late["group_id"]]
    by_severity = await client.get(
        "/api/alerts", params={"sort": "severity", "order": "desc"}, headers=viewer
    )
    assert [g["id"] for g in by_severity.json()["items"]] == [late["group_id"], early["group_id"]]
    bad = await client.get("/api/alerts", params={"from": "yesterday"}, headers=viewer)
    assert bad.status_code == 400
    assert bad.json()["details"][0]["loc"] == "query.from"
    async with world.relay.uow_factory() as uow:
        group = await uow.alert_groups.get(early["group_id"])
        assert group is not None
        await uow.alert_groups.update(attrs.evolve(group, test=True))
        await uow.commit()
    hidden = await client.get("/api/alerts", headers=viewer)
    assert [g["id"] for g in hidden.json()["items"]] == [late["group_id"]]
    shown = await client.get("/api/alerts", params={"include_test": "true"}, headers=viewer)
    assert {g["id"] for g in shown.json()["items"]} == {early["group_id"], late["group_id"]}


async def test_list_alerts_group_assignee_and_multi_status_filters(
    world: World, client: AsyncTestClient[Any]
) -> None:
    """``group_id`` keeps the teams of one group, ``assignee_id`` one assignee, and ``status``
    takes several values (repeated or comma-separated); a group the caller cannot see is empty."""
    from relay_core.domain.model import Route
    from relay_server.auth import ROUTE_TOKEN_PREFIX, new_token

    token = new_token(ROUTE_TOKEN_PREFIX)
    async with world.relay.uow_factory() as uow:
        await uow.routes.add(
            Route(
                team_id=world.ids["other_team"],
                name="billing am",
                source="alertmanager",
                intake_token_hash=token.hash,
                intake_token_prefix=token.prefix,
            )
        )
        await uow.commit()
    ops_firing = await fire(world, client, "ops-a")
    ops_acked = await fire(world, client, "ops-b")
    ack = await client.post(f"/api/alerts/{ops_acked['group_id']}/ack", headers=world.auth("responder"))
    assert ack.status_code == 200, ack.text
    billing = await client.post(
        "/api/integrations/alertmanager", json=AM, headers={"Authorization": f"Bearer {token.raw}"}
    )
    assert billing.status_code == 200, billing.text
    billing_id = billing.json()[0]["group_id"]
    admin = world.auth("admin")

    async def ids(**params: Any) -> set[int]:
        response = await client.get("/api/alerts", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return {g["id"] for g in response.json()["items"]}

    assert await ids() == {ops_firing["group_id"], ops_acked["group_id"], billing_id}
    assert await ids(group_id=world.ids["group"]) == {ops_firing["group_id"], ops_acked["group_id"]}
    assert await ids(group_id=world.ids["other_group"]) == {billing_id}
    assert await ids(group_id=world.ids["other_group"], team_id=world.ids["team"]) == set()
    assert await ids(status="acknowledged") == {ops_acked["group_id"]}
    assert await ids(status="acknowledged,firing", group_id=world.ids["group"]) == {
        ops_firing["group_id"],
        ops_acked["group_id"],
    }
    repeated = await client.get(
        "/api/alerts?status=acknowledged&status=resolved&group_id=" + str(world.ids["group"]), headers=admin
    )
    assert {g["id"] for g in repeated.json()["items"]} == {ops_acked["group_id"]}
    acked_detail = (await client.get(f"/api/alerts/{ops_acked['group_id']}", headers=admin)).json()
    assignee = acked_detail["assignee"]["id"]
    expected = {
        g["id"]
        for g in (await client.get("/api/alerts", headers=admin)).json()["items"]
        if g["assignee"] and g["assignee"]["id"] == assignee
    }
    assert ops_acked["group_id"] in expected
    assert await ids(assignee_id=assignee) == expected
    assert await ids(assignee_id=world.ids["outsider"]) == set()
    outsider = await client.get(
        "/api/alerts", params={"group_id": world.ids["group"]}, headers=world.auth("outsider")
    )
    assert outsider.json()["items"] == []
    bad = await client.get("/api/alerts", params={"group_id": 0}, headers=admin)
    assert bad.status_code == 400
    assert bad.json()["error"] == "validation_error"
