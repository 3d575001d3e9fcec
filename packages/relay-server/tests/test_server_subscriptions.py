"""Category rules, role groups, subscriptions, opt-in, decisions and test sends (SPEC S8, S6.1, S9.6).

Every endpoint: success, missing auth (401), RBAC denial (403, or 404 outside every visible group)
and validation failure (400 with field details).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.testing import AsyncTestClient

from .conftest import World

Client = AsyncTestClient[Any]


async def _category_id(client: Client, world: World, slug: str) -> int:
    rows = (await client.get("/api/categories", headers=world.auth("viewer"))).json()
    return int(next(c["id"] for c in rows if c["slug"] == slug))


async def _role_group(client: Client, world: World, slug: str = "org-admins", **extra: Any) -> dict[str, Any]:
    body = {"group_id": world.ids["group"], "slug": slug, "name": slug.replace("-", " ").title(), **extra}
    response = await client.post("/api/role-groups", json=body, headers=world.auth("editor"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _subscription(client: Client, world: World, rg_id: int, **extra: Any) -> dict[str, Any]:
    body = {"role_group_id": rg_id, "name": "Org admins infra", "category": "infrastructure", **extra}
    response = await client.post("/api/subscriptions", json=body, headers=world.auth("editor"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _webhook_alert(client: Client, world: World, **item: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/integrations/webhook", json=item, headers=world.bearer("route_webhook")
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()[0]
    return result


# --- category rules ------------------------------------------------------------------------------


async def test_category_rules_crud(world: World, client: Client) -> None:
    """An editor creates, lists, updates and deletes rules; matchers come back normalized."""
    billing = await _category_id(client, world, "billing")
    created = await client.post(
        "/api/category-rules",
        json={"group_id": world.ids["group"], "category_id": billing, "matchers": {"team": "payments"}},
        headers=world.auth("editor"),
    )
    assert created.status_code == 201
    rule = created.json()
    assert (rule["category"], rule["matchers"], rule["position"], rule["enabled"]) == (
        "billing",
        {"team": "payments"},
        0,
        True,
    )
    assert rule["permissions"]["can_write"] is True
    listed = (await client.get("/api/category-rules", headers=world.auth("viewer"))).json()
    assert [r["id"] for r in listed] == [rule["id"]]
    assert listed[0]["permissions"]["can_write"] is False
    assert (await client.get("/api/category-rules", headers=world.auth("outsider"))).json() == []
    updated = await client.put(
        f"/api/category-rules/{rule['id']}",
        json={"position": 5, "enabled": False},
        headers=world.auth("editor"),
    )
    assert (updated.json()["position"], updated.json()["enabled"]) == (5, False)
    removed = await client.delete(f"/api/category-rules/{rule['id']}", headers=world.auth("editor"))
    assert removed.json() == {"deleted": True, "id": rule["id"]}
    assert await world.count("category_rules") == 0


async def test_category_rules_auth_rbac_validation(world: World, client: Client) -> None:
    """401 without credentials; 403 for a viewer; 404 for another group's outsider; 400 details."""
    billing = await _category_id(client, world, "billing")
    body = {"group_id": world.ids["group"], "category_id": billing, "matchers": {"a": "b"}}
    assert (await client.get("/api/category-rules")).status_code == 401
    assert (await client.post("/api/category-rules", json=body)).status_code == 401
    denied = await client.post("/api/category-rules", json=body, headers=world.auth("viewer"))
    assert denied.status_code == 403
    assert denied.json()["error"] == "permission_denied"
    assert (
        await client.post("/api/category-rules", json=body, headers=world.auth("outsider"))
    ).status_code == 404
    bad = await client.post(
        "/api/category-rules", json={**body, "matchers": {"x": {"regex": "("}}}, headers=world.auth("editor")
    )
    assert bad.status_code == 400
    assert bad.json()["details"][0]["loc"].startswith("$.matchers")
    unknown = await client.post(
        "/api/category-rules", json={**body, "colour": "red"}, headers=world.auth("editor")
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "validation_error"
    other = await client.post(
        "/api/categories",
        json={"group_id": world.ids["other_group"], "slug": "theirs", "name": "Theirs"},
        headers=world.auth("outsider"),
    )
    wrong = await client.post(
        "/api/category-rules", json={**body, "category_id": other.json()["id"]}, headers=world.auth("editor")
    )
    assert wrong.status_code == 400
    assert wrong.json()["details"] == [
        {"loc": "$.category_id", "message": "category must be built-in or belong to the rule's group"}
    ]
    rule = (await client.post("/api/category-rules", json=body, headers=world.auth("editor"))).json()
    assert (await client.put(f"/api/category-rules/{rule['id']}", json={"position": 1})).status_code == 401
    assert (
        await client.put(
            f"/api/category-rules/{rule['id']}", json={"position": 1}, headers=world.auth("viewer")
        )
    ).status_code == 403
    assert (
        await client.put(
            f"/api/category-rules/{rule['id']}", json={"position": -1}, headers=world.auth("editor")
        )
    ).status_code == 400
    assert (await client.delete(f"/api/category-rules/{rule['id']}")).status_code == 401
    assert (
        await client.delete(f"/api/category-rules/{rule['id']}", headers=world.auth("viewer"))
    ).status_code == 403
    assert await world.count("category_rules") == 1


async def test_category_assignment_order(world: World, client: Client) -> None:
    """S8.2: the category label beats a rule, a rule beats the route default, else infrastructure."""
    billing = await _category_id(client, world, "billing")
    configurable = await _category_id(client, world, "configurable")
    editor = world.auth("editor")
    plain = await _webhook_alert(client, world, title="plain", fingerprint="p")
    assert plain["category"] == "infrastructure"
    route = await client.put(
        f"/api/routes/{world.ids['route_webhook']}",
        json={"category_id": configurable},
        headers=world.auth("manager"),
    )
    assert route.status_code == 200
    assert (await _webhook_alert(client, world, title="routed", fingerprint="r"))[
        "category"
    ] == "configurable"
    await client.post(
        "/api/category-rules",
        json={"group_id": world.ids["group"], "category_id": billing, "matchers": {"kind": "payment"}},
        headers=editor,
    )
    ruled = await _webhook_alert(client, world, title="ruled", fingerprint="u", labels={"kind": "payment"})
    assert ruled["category"] == "billing"
    labelled = await _webhook_alert(
        client,
        world,
        title="labelled",
        fingerprint="l",
        labels={"kind": "payment", "category": "configurable"},
    )
    assert labelled["category"] == "configurable"
    detail = (await client.get(f"/api/alerts/{ruled['group_id']}", headers=world.auth("viewer"))).json()
    assert detail["category"]["slug"] == "billing"
    filtered = (await client.get("/api/alerts?category=billing", headers=world.auth("viewer"))).json()
    assert [item["id"] for item in filtered["items"]] == [ruled["group_id"]]


# --- role groups ---------------------------------------------------------------------------------


async def test_role_groups_members_contacts(world: World, client: Client) -> None:
    """Role groups with members (group users only) and contacts (email and/or phone, masked)."""
    rg = await _role_group(client, world, description="Everyone who runs the org")
    assert (rg["slug"], rg["member_count"], rg["contact_count"]) == ("org-admins", 0, 0)
    editor = world.auth("editor")
    member = await client.post(
        f"/api/role-groups/{rg['id']}/members", json={"user_id": world.ids["manager"]}, headers=editor
    )
    assert member.status_code == 201
    assert member.json()["username"] == "manager"
    twice = await client.post(
        f"/api/role-groups/{rg['id']}/members", json={"user_id": world.ids["manager"]}, headers=editor
    )
    assert twice.status_code == 409
    stranger = await client.post(
        f"/api/role-groups/{rg['id']}/members", json={"user_id": world.ids["outsider"]}, headers=editor
    )
    assert stranger.status_code == 400
    assert stranger.json()["details"][0]["loc"] == "$.user_id"
    contact = await client.post(
        f"/api/role-groups/{rg['id']}/contacts",
        json={"name": "CFO", "email": "cfo@example.net", "phone": "+15557654321"},
        headers=editor,
    )
    assert contact.status_code == 201
    assert contact.json()["phone"] == "***4321"
    assert contact.json()["email"] == "cfo@example.net"  # the editor who entered it
    seen = (await client.get(f"/api/role-groups/{rg['id']}/contacts", headers=world.auth("viewer"))).json()
    assert [(x["email"], x["phone"]) for x in seen] == [("c***@example.net", "***4321")]
    empty = await client.post(
        f"/api/role-groups/{rg['id']}/contacts", json={"name": "Nobody"}, headers=editor
    )
    assert empty.status_code == 400
    bad_phone = await client.post(
        f"/api/role-groups/{rg['id']}/contacts", json={"name": "X", "phone": "12"}, headers=editor
    )
    assert bad_phone.status_code == 400
    contact_id = contact.json()["id"]
    changed = await client.put(
        f"/api/role-groups/contacts/{contact_id}", json={"email": None}, headers=editor
    )
    assert changed.json()["has_email"] is False
    cleared = await client.put(
        f"/api/role-groups/contacts/{contact_id}", json={"phone": None}, headers=editor
    )
    assert cleared.status_code == 400  # would leave neither email nor phone
    fetched = (await client.get(f"/api/role-groups/{rg['id']}", headers=world.auth("viewer"))).json()
    assert (fetched["member_count"], fetched["contact_count"]) == (1, 1)
    assert fetched["permissions"]["can_write"] is False
    assert [
        m["user_id"]
        for m in (await client.get(f"/api/role-groups/{rg['id']}/members", headers=editor)).json()
    ] == [world.ids["manager"]]
    assert len((await client.get(f"/api/role-groups/{rg['id']}/contacts", headers=editor)).json()) == 1
    renamed = await client.put(f"/api/role-groups/{rg['id']}", json={"name": "Org Admins"}, headers=editor)
    assert renamed.json()["name"] == "Org Admins"
    removed = await client.delete(f"/api/role-groups/members/{member.json()['id']}", headers=editor)
    assert removed.json() == {"deleted": True, "id": member.json()["id"]}
    assert (await client.delete(f"/api/role-groups/contacts/{contact_id}", headers=editor)).status_code == 200
    assert (await client.delete(f"/api/role-groups/{rg['id']}", headers=editor)).json()["deleted"] is True
    assert (await client.get(f"/api/role-groups/{rg['id']}", headers=editor)).status_code == 404


async def test_role_groups_auth_rbac_validation(world: World, client: Client) -> None:
    """401, 403 (viewer), 404 (outsider), 409 duplicate slug, 409 delete while used, 400 bad slug."""
    body = {"group_id": world.ids["group"], "slug": "tech", "name": "Tech"}
    assert (await client.post("/api/role-groups", json=body)).status_code == 401
    assert (await client.get("/api/role-groups")).status_code == 401
    assert (await client.post("/api/role-groups", json=body, headers=world.auth("viewer"))).status_code == 403
    assert (
        await client.post("/api/role-groups", json=body, headers=world.auth("outsider"))
    ).status_code == 404
    bad = await client.post(
        "/api/role-groups", json={**body, "slug": "Not A Slug"}, headers=world.auth("editor")
    )
    assert bad.status_code == 400
    assert bad.json()["details"][0]["loc"] == "$.slug"
    rg = await _role_group(client, world, "tech")
    assert (await client.post("/api/role-groups", json=body, headers=world.auth("editor"))).status_code == 409
    assert (
        await client.get(f"/api/role-groups/{rg['id']}", headers=world.auth("outsider"))
    ).status_code == 404
    assert (await client.get("/api/role-groups", headers=world.auth("outsider"))).json() == []
    assert (
        await client.put(f"/api/role-groups/{rg['id']}", json={"name": "Tech"}, headers=world.auth("viewer"))
    ).status_code == 403
    assert (
        await client.post(f"/api/role-groups/{rg['id']}/members", json={"user_id": world.ids["viewer"]})
    ).status_code == 401
    assert (
        await client.post(
            f"/api/role-groups/{rg['id']}/members",
            json={"user_id": world.ids["viewer"]},
            headers=world.auth("viewer"),
        )
    ).status_code == 403
    assert (
        await client.post(
            f"/api/role-groups/{rg['id']}/contacts",
            json={"name": "Alice", "email": "a@b.c"},
            headers=world.auth("viewer"),
        )
    ).status_code == 403
    await _subscription(client, world, rg["id"])
    used = await client.delete(f"/api/role-groups/{rg['id']}", headers=world.auth("editor"))
    assert used.status_code == 409
    assert await world.count("role_groups") == 1


# --- subscriptions -------------------------------------------------------------------------------


async def test_subscriptions_crud_and_filters(world: World, client: Client) -> None:
    """Create with a category slug, filter by category and role group, partial update, delete."""
    rg = await _role_group(client, world)
    sub = await _subscription(
        client,
        world,
        rg["id"],
        channel_types=["email"],
        channel_ids=[world.ids["channel"]],
        severities=["critical", "critical"],
    )
    assert (sub["category"], sub["channel_types"], sub["events"], sub["severities"]) == (
        "infrastructure",
        ["email"],
        ["created", "resolved"],
        ["critical"],
    )
    assert sub["role_group"]["slug"] == "org-admins"
    assert sub["group_id"] == world.ids["group"]
    viewer = world.auth("viewer")
    assert [
        s["id"]
        for s in (await client.get("/api/subscriptions?category=infrastructure", headers=viewer)).json()
    ] == [sub["id"]]
    assert (await client.get("/api/subscriptions?category=billing", headers=viewer)).json() == []
    assert len((await client.get(f"/api/subscriptions?role_group_id={rg['id']}", headers=viewer)).json()) == 1
    assert (await client.get("/api/subscriptions", headers=world.auth("outsider"))).json() == []
    updated = await client.put(
        f"/api/subscriptions/{sub['id']}",
        json={"category": "billing", "events": ["created"], "regions": ["eu"]},
        headers=world.auth("editor"),
    )
    assert updated.status_code == 200
    assert (updated.json()["category"], updated.json()["events"], updated.json()["regions"]) == (
        "billing",
        ["created"],
        ["eu"],
    )
    assert updated.json()["channel_types"] == ["email"]  # partial: untouched
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=viewer)).json()[
        "category"
    ] == "billing"
    gone = await client.delete(f"/api/subscriptions/{sub['id']}", headers=world.auth("editor"))
    assert gone.json() == {"deleted": True, "id": sub["id"]}
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=viewer)).status_code == 404


async def test_subscriptions_auth_rbac_validation(world: World, client: Client) -> None:
    """401, 403, 404 and field-level 400s (voice channel, unknown category, bad event, unknown field)."""
    rg = await _role_group(client, world)
    body = {"role_group_id": rg["id"], "name": "Subs", "category": "infrastructure"}
    assert (await client.post("/api/subscriptions", json=body)).status_code == 401
    assert (await client.get("/api/subscriptions")).status_code == 401
    assert (
        await client.post("/api/subscriptions", json=body, headers=world.auth("viewer"))
    ).status_code == 403
    assert (
        await client.post("/api/subscriptions", json=body, headers=world.auth("outsider"))
    ).status_code == 400
    editor = world.auth("editor")
    voice = await client.post(
        "/api/channels",
        json={"group_id": world.ids["group"], "name": "phone", "channel_type": "voice_call", "config": {}},
        headers=editor,
    )
    assert voice.status_code == 201, voice.text
    bad = await client.post(
        "/api/subscriptions",
        json={**body, "category": "nope", "channel_ids": [voice.json()["id"]]},
        headers=editor,
    )
    assert bad.status_code == 400
    assert {d["loc"] for d in bad.json()["details"]} == {"$.category", "$.channel_ids[0]"}
    event = await client.post("/api/subscriptions", json={**body, "events": ["exploded"]}, headers=editor)
    assert event.status_code == 400
    assert event.json()["details"][0]["loc"] == "$.events[0]"
    extra = await client.post("/api/subscriptions", json={**body, "surprise": 1}, headers=editor)
    assert extra.status_code == 400
    missing = await client.post(
        "/api/subscriptions", json={"role_group_id": rg["id"], "name": "x"}, headers=editor
    )
    assert missing.status_code == 400
    sms_wrong = await client.post(
        "/api/subscriptions", json={**body, "sms_channel_id": world.ids["channel"]}, headers=editor
    )
    assert sms_wrong.json()["details"] == [
        {"loc": "$.sms_channel_id", "message": "must be an sms channel of the group"}
    ]
    assert await world.count("subscriptions") == 0
    sub = await _subscription(client, world, rg["id"])
    assert (await client.put(f"/api/subscriptions/{sub['id']}", json={"enabled": False})).status_code == 401
    assert (
        await client.put(
            f"/api/subscriptions/{sub['id']}", json={"enabled": False}, headers=world.auth("viewer")
        )
    ).status_code == 403
    assert (
        await client.put(f"/api/subscriptions/{sub['id']}", json={"notify_after_seconds": -5}, headers=editor)
    ).status_code == 400
    assert (
        await client.delete(f"/api/subscriptions/{sub['id']}", headers=world.auth("viewer"))
    ).status_code == 403
    assert (
        await client.get(f"/api/subscriptions/{sub['id']}", headers=world.auth("outsider"))
    ).status_code == 404


async def test_standard_preset_is_idempotent(world: World, client: Client) -> None:
    """The S8.6 preset creates 4 role groups and 9 subscriptions once; named channels are attached."""
    editor = world.auth("editor")
    slack = await client.post(
        "/api/channels",
        json={
            "group_id": world.ids["group"],
            "name": "exec-slack",
            "channel_type": "slack",
            "config": {"webhook_url": "https://hooks.slack.com/services/T/B/X"},
        },
        headers=editor,
    )
    assert slack.status_code == 201, slack.text
    first = await client.post(
        "/api/subscriptions/presets/standard", json={"group_id": world.ids["group"]}, headers=editor
    )
    assert first.status_code == 200
    body = first.json()
    assert (body["created_role_groups"], body["created_subscriptions"]) == (4, 9)
    assert {rg["slug"] for rg in body["role_groups"]} == {
        "org-admins",
        "billing-admins",
        "tech-devops",
        "support-managers",
    }
    rows = {
        (s["role_group"]["slug"], s["category"], tuple(s["channel_types"])) for s in body["subscriptions"]
    }
    assert ("org-admins", "infrastructure", ("email", "sms")) in rows
    assert ("billing-admins", "billing", ("sms",)) in rows
    sms = next(s for s in body["subscriptions"] if s["channel_types"] == ["sms"])
    assert sms["matchers"] == {"billing_event": "low_balance"}
    opt_in = next(
        s
        for s in body["subscriptions"]
        if s["role_group"]["slug"] == "org-admins" and s["category"] == "configurable"
    )
    assert opt_in["requires_opt_in"] is True
    again = await client.post(
        "/api/subscriptions/presets/standard",
        json={"group_id": world.ids["group"], "slack_channel_id": slack.json()["id"]},
        headers=editor,
    )
    assert (again.json()["created_role_groups"], again.json()["created_subscriptions"]) == (0, 0)
    assert await world.count("subscriptions") == 9
    with_slack = [s for s in again.json()["subscriptions"] if s["channel_ids"] == [slack.json()["id"]]]
    assert len(with_slack) == 8  # every row but the Billing Admins SMS row has Slack/Teams
    assert (
        await client.post("/api/subscriptions/presets/standard", json={"group_id": world.ids["group"]})
    ).status_code == 401
    assert (
        await client.post(
            "/api/subscriptions/presets/standard",
            json={"group_id": world.ids["group"]},
            headers=world.auth("viewer"),
        )
    ).status_code == 403
    wrong = await client.post(
        "/api/subscriptions/presets/standard",
        json={"group_id": world.ids["group"], "teams_channel_id": slack.json()["id"]},
        headers=editor,
    )
    assert wrong.status_code == 400
    assert wrong.json()["details"][0]["loc"] == "$.teams_channel_id"


async def test_subscription_fan_out_opt_out_and_dedup(world: World, client: Client) -> None:
    """Subscribers get one message per channel; opted-out members are skipped and it is explained."""
    rg = await _role_group(client, world)
    editor = world.auth("editor")
    for name in ("manager", "responder"):
        await client.post(
            f"/api/role-groups/{rg['id']}/members", json={"user_id": world.ids[name]}, headers=editor
        )
    first = await _subscription(
        client, world, rg["id"], channel_ids=[world.ids["channel"]], channel_types=["sms"]
    )
    second = await _subscription(client, world, rg["id"], name="Second", channel_ids=[world.ids["channel"]])
    mine = await client.get("/api/profile/subscriptions", headers=world.auth("responder"))
    assert [(s["subscription_id"], s["opted_in"]) for s in mine.json()] == [
        (first["id"], True),
        (second["id"], True),
    ]
    out = await client.put(
        "/api/profile/subscriptions",
        json=[{"subscription_id": first["id"], "opted_in": False}],
        headers=world.auth("responder"),
    )
    assert [(s["subscription_id"], s["opted_in"]) for s in out.json()] == [
        (first["id"], False),
        (second["id"], True),
    ]
    result = await _webhook_alert(client, world, title="DB down", fingerprint="db", severity="critical")
    world.channel.clear()
    await world.relay.run_until_idle()
    subscriber_texts = [m.text for m in world.channel.messages if m.text.startswith("[Infrastructure]")]
    assert len(subscriber_texts) == 1  # two subscriptions, one room: one message
    report = (
        await client.get(f"/api/alerts/{result['group_id']}/subscriptions", headers=world.auth("viewer"))
    ).json()
    by_name = {r["subscription_name"]: r for r in report}
    decisions = by_name["Org admins infra"]["decisions"]
    assert ("skipped", "opted_out") in {(d["status"], d["reason"]) for d in decisions}
    sent_sms = [d for d in decisions if d["channel_type"] == "sms" and d["status"] == "sent"]
    assert [d["recipient"] for d in sent_sms] == ["***1111"]  # the manager's phone, masked


async def test_profile_subscriptions_auth_and_validation(world: World, client: Client) -> None:
    """401 without auth; 400 for a subscription the caller is not a member of; nothing stored."""
    rg = await _role_group(client, world)
    sub = await _subscription(client, world, rg["id"])
    assert (await client.get("/api/profile/subscriptions")).status_code == 401
    assert (await client.put("/api/profile/subscriptions", json=[])).status_code == 401
    foreign = await client.put(
        "/api/profile/subscriptions",
        json=[{"subscription_id": sub["id"], "opted_in": False}],
        headers=world.auth("viewer"),
    )
    assert foreign.status_code == 400
    assert foreign.json()["details"][0]["loc"] == "$[0].subscription_id"
    shape = await client.put(
        "/api/profile/subscriptions", json={"subscription_id": 1}, headers=world.auth("viewer")
    )
    assert shape.status_code == 400
    assert await world.count("subscription_preferences") == 0


async def test_subscription_test_send(world: World, client: Client) -> None:
    """POST /subscriptions/{id}/test reports each destination; a failing channel says why."""
    rg = await _role_group(client, world)
    editor = world.auth("editor")
    broken = await client.post(
        "/api/channels",
        json={
            "group_id": world.ids["group"],
            "name": "broken",
            "channel_type": "recording",
            "config": {"fail_with": "permanent"},
        },
        headers=editor,
    )
    assert broken.status_code == 201, broken.text
    sub = await _subscription(
        client, world, rg["id"], channel_ids=[world.ids["channel"], broken.json()["id"]]
    )
    response = await client.post(f"/api/subscriptions/{sub['id']}/test", headers=editor)
    assert response.status_code == 200
    body = response.json()
    assert [(r["channel_name"], r["status"]) for r in body["results"]] == [
        ("room", "sent"),
        ("broken", "failed"),
    ]
    assert body["results"][1]["error"]
    assert world.channel.messages[-1].event_type == "test"
    assert (
        "Test alert from Relay — infrastructure subscription Org admins infra"
        in world.channel.messages[-1].text
    )
    assert await world.count("alert_groups") == 0
    assert (await client.post(f"/api/subscriptions/{sub['id']}/test")).status_code == 401
    assert (
        await client.post(f"/api/subscriptions/{sub['id']}/test", headers=world.auth("viewer"))
    ).status_code == 403
    assert (
        await client.post(f"/api/subscriptions/{sub['id']}/test", headers=world.auth("outsider"))
    ).status_code == 404
    assert (await client.post("/api/subscriptions/0/test", headers=editor)).status_code in (400, 404)


# --- alerts: decisions and category ----------------------------------------------------------------


async def test_alert_subscription_decisions(world: World, client: Client) -> None:
    """S8.8: every subscription of the group's category with its decision and reason."""
    rg = await _role_group(client, world)
    await _subscription(
        client, world, rg["id"], name="Criticals", channel_ids=[world.ids["channel"]], severities=["critical"]
    )
    await _subscription(
        client, world, rg["id"], name="EU only", channel_ids=[world.ids["channel"]], regions=["eu"]
    )
    await _subscription(
        client, world, rg["id"], name="Off", channel_ids=[world.ids["channel"]], enabled=False
    )
    await _subscription(
        client, world, rg["id"], name="Billing", category="billing", channel_ids=[world.ids["channel"]]
    )
    result = await _webhook_alert(
        client, world, title="Lag", fingerprint="lag", severity="warning", labels={"region": "eu"}
    )
    response = await client.get(
        f"/api/alerts/{result['group_id']}/subscriptions", headers=world.auth("viewer")
    )
    assert response.status_code == 200
    report = {r["subscription_name"]: r for r in response.json()}
    assert set(report) == {"Criticals", "EU only", "Off"}  # the billing one is another category
    assert [d["reason"] for d in report["Criticals"]["decisions"]] == ["severity_filtered"]
    assert [d["reason"] for d in report["Off"]["decisions"]] == ["subscription_disabled"]
    assert report["EU only"]["decision"] == "pending"
    await world.relay.run_until_idle()
    again = {
        r["subscription_name"]: r
        for r in (
            await client.get(f"/api/alerts/{result['group_id']}/subscriptions", headers=world.auth("viewer"))
        ).json()
    }
    assert again["EU only"]["decision"] == "sent"
    assert again["EU only"]["decisions"][0]["finished_at"] is not None
    assert (await client.get(f"/api/alerts/{result['group_id']}/subscriptions")).status_code == 401
    assert (
        await client.get(f"/api/alerts/{result['group_id']}/subscriptions", headers=world.auth("outsider"))
    ).status_code == 404


async def test_alert_category_change(world: World, client: Client) -> None:
    """A responder changes the category (event category_changed); viewers 403; unknown slug 400."""
    result = await _webhook_alert(client, world, title="Invoice job failed", fingerprint="inv")
    url = f"/api/alerts/{result['group_id']}/category"
    changed = await client.put(url, json={"category": "billing"}, headers=world.auth("responder"))
    assert changed.status_code == 200
    assert changed.json()["category"]["slug"] == "billing"
    events = (
        await client.get(f"/api/alerts/{result['group_id']}/events", headers=world.auth("viewer"))
    ).json()
    assert [e["data"]["previous_category"] for e in events if e["event_type"] == "category_changed"] == [
        "infrastructure"
    ]
    assert (await client.put(url, json={"category": "billing"})).status_code == 401
    assert (
        await client.put(url, json={"category": "configurable"}, headers=world.auth("viewer"))
    ).status_code == 403
    unknown = await client.put(url, json={"category": "nope"}, headers=world.auth("responder"))
    assert unknown.status_code == 400
    assert unknown.json()["details"][0]["loc"] == "$.category"
    assert (await client.put(url, json={}, headers=world.auth("responder"))).status_code == 400
    assert (
        await client.put(url, json={"category": "billing"}, headers=world.auth("outsider"))
    ).status_code == 404
    detail = (await client.get(f"/api/alerts/{result['group_id']}", headers=world.auth("viewer"))).json()
    assert detail["category"]["slug"] == "billing"


# --- channel tests and route test alerts -----------------------------------------------------------


async def test_channel_test_and_results(world: World, client: Client) -> None:
    """POST /channels/{id}/test sends event test; GET /notifications/tests/{id} reads the results."""
    url = f"/api/channels/{world.ids['channel']}/test"
    response = await client.post(url, headers=world.auth("manager"))
    assert response.status_code == 200
    body = response.json()
    assert body["channel_id"] == world.ids["channel"]
    (result,) = body["results"]
    assert (result["channel_id"], result["recipient"], result["status"], result["error"]) == (
        world.ids["channel"],
        "room",
        "sent",
        None,
    )
    assert world.channel.messages[-1].event_type == "test"
    assert world.channel.messages[-1].text == "TEST: Test notification from Relay"
    read = await client.get(f"/api/notifications/tests/{body['test_id']}", headers=world.auth("viewer"))
    assert read.status_code == 200
    assert read.json()["results"] == body["results"]
    assert (await client.get(f"/api/notifications/tests/{body['test_id']}")).status_code == 401
    assert (
        await client.get(f"/api/notifications/tests/{body['test_id']}", headers=world.auth("outsider"))
    ).status_code == 404
    assert (
        await client.get("/api/notifications/tests/unknown", headers=world.auth("viewer"))
    ).status_code == 404
    assert (await client.post(url)).status_code == 401
    assert (await client.post(url, headers=world.auth("responder"))).status_code == 403
    assert (await client.post(url, headers=world.auth("outsider"))).status_code == 404
    assert (await client.post("/api/channels/abc/test", headers=world.auth("manager"))).status_code in (
        400,
        404,
    )


async def test_channel_test_failure_reason(world: World, client: Client) -> None:
    """A failing channel answers status failed with the sender's reason."""
    created = await client.post(
        "/api/channels",
        json={
            "team_id": world.ids["team"],
            "name": "flaky",
            "channel_type": "recording",
            "config": {"fail_with": "retryable"},
        },
        headers=world.auth("manager"),
    )
    body = (
        await client.post(f"/api/channels/{created.json()['id']}/test", headers=world.auth("manager"))
    ).json()
    (result,) = body["results"]
    assert result["status"] == "failed"
    assert result["error"]


async def test_route_test_alert(world: World, client: Client) -> None:
    """A route test injects a real alert flagged test: routed and paged, hidden unless include_test.

    Subscribers are not told about route tests (decision ``test_alert``).
    """
    rg = await _role_group(client, world)
    await _subscription(client, world, rg["id"], channel_ids=[world.ids["channel"]])
    url = f"/api/routes/{world.ids['route_webhook']}/test-alert"
    response = await client.post(url, json={"severity": "warning"}, headers=world.auth("manager"))
    assert response.status_code == 200
    body = response.json()
    assert (body["test"], body["outcome"], body["route_id"]) == (True, "created", world.ids["route_webhook"])
    viewer = world.auth("viewer")
    assert (await client.get("/api/alerts", headers=viewer)).json()["items"] == []
    items = (await client.get("/api/alerts?include_test=true", headers=viewer)).json()["items"]
    assert [(i["id"], i["test"], i["title"], i["severity"]) for i in items] == [
        (body["group_id"], True, "Test alert from Relay", "warning")
    ]
    report = (await client.get(f"/api/alerts/{body['group_id']}/subscriptions", headers=viewer)).json()
    assert [d["reason"] for d in report[0]["decisions"]] == ["test_alert"]
    world.clock.advance(dt.timedelta(minutes=1))
    await world.relay.run_until_idle()
    assert [m.event_type for m in world.channel.messages] == ["notification"]  # the page, nothing else
    assert not world.channel.messages[0].text.startswith("[")
    default = await client.post(url, headers=world.auth("manager"))
    assert default.status_code == 200
    detail = (await client.get(f"/api/alerts/{default.json()['group_id']}", headers=viewer)).json()
    assert (detail["severity"], detail["common_labels"]["relay_test"]) == ("critical", "true")
    assert (await client.post(url, json={})).status_code == 401
    assert (await client.post(url, json={}, headers=world.auth("responder"))).status_code == 403
    assert (await client.post(url, json={}, headers=world.auth("outsider"))).status_code == 404
    bad = await client.post(url, json={"severity": "apocalyptic"}, headers=world.auth("manager"))
    assert bad.status_code == 400
    assert bad.json()["details"][0]["loc"] == "$.severity"
    assert await world.count("alert_groups") == 2


async def test_token_scopes_for_subscription_endpoints(world: World, client: Client) -> None:
    """API tokens need the categories scope on /api/subscriptions (S9.4)."""
    denied = await client.get("/api/subscriptions", headers=world.bearer("teams_read"))
    assert denied.status_code == 403
    assert denied.json()["missing_scopes"] == ["categories:read"]
    assert (await client.get("/api/subscriptions", headers=world.bearer("all"))).status_code == 200
