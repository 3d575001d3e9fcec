"""The web UI's pages over plain HTTP (SPEC S11.1, S11.2): they render, require a login, show what
the API lets the caller see, escape user content and load nothing from another origin."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ..conftest import World

XSS = '<img src=x onerror="alert(1)">'
ESCAPED = "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"


def pages(world: World) -> list[str]:
    ids = world.ids
    return [
        "/alerts",
        "/calendar",
        "/calendar?view=month",
        f"/calendar?team_id={ids['team']}",
        "/teams",
        f"/teams/{ids['team']}",
        "/rotations",
        f"/rotations/{ids['rotation']}",
        "/routes",
        f"/routes/{ids['route_webhook']}",
        "/channels",
        "/silences",
        "/categories",
        "/groups",
        f"/groups/{ids['group']}",
        "/admin/users",
        "/profile",
        "/subscriptions",
        "/role-groups",
        "/category-rules",
    ]


def login_as(client: AsyncTestClient[Litestar], world: World, name: str) -> None:
    client.cookies.set(world.settings.auth.jwt_cookie_name, world.session(name))


async def post_alert(client: AsyncTestClient[Litestar], world: World, **body: Any) -> int:
    response = await client.post(
        "/api/integrations/webhook",
        json={"fingerprint": "ui-test", "severity": "critical", **body},
        headers={"Authorization": f"Bearer {world.tokens['route_webhook']}"},
    )
    assert response.status_code == 200, response.text
    group_id: int = response.json()[0]["group_id"]
    return group_id


async def test_every_page_requires_a_login(client: AsyncTestClient[Litestar], world: World) -> None:
    for path in pages(world):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        location = response.headers["location"]
        assert location.startswith("/login?next="), (path, location)
    response = await client.get("/", follow_redirects=False)
    assert response.headers["location"] == "/login"


async def test_an_expired_or_forged_session_also_goes_to_login(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    client.cookies.set(world.settings.auth.jwt_cookie_name, "not.a.jwt")
    response = await client.get("/teams", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fteams"


async def test_every_page_renders_for_an_admin(client: AsyncTestClient[Litestar], world: World) -> None:
    await post_alert(client, world, title="Page render check")
    login_as(client, world, "admin")
    for path in pages(world):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        text = response.text
        assert '<main id="main"' in text, path
        assert "Log out" in text, path
    response = await client.get("/", follow_redirects=False)
    assert response.headers["location"] == "/alerts"


async def test_pages_and_assets_come_from_relay_only(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "admin")
    text = (await client.get("/alerts")).text
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', text)
    assert sources, "the page loads its script and stylesheet"
    assert all(s.startswith("/ui/static/") for s in sources), sources
    # CSP default-src 'self': no inline script or style.
    assert "<script>" not in text
    assert "style=" not in text
    for asset in {s.split("?")[0] for s in sources}:
        response = await client.get(asset)
        assert response.status_code == 200, asset
    js = (await client.get("/ui/static/relay.js")).text
    assert "X-CSRF-Token" in js
    assert "relay_csrf" in js
    assert "http://" not in js
    assert "https://" not in js


async def test_every_input_has_a_label(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "admin")
    for path in pages(world):
        text = (await client.get(path)).text
        labelled = set(re.findall(r'<label[^>]* for="([^"]+)"', text))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", text):
            if 'type="hidden"' in tag:
                continue
            match = re.search(r'\bid="([^"]+)"', tag)
            assert match, (path, tag)
            assert match[1] in labelled, (path, tag)


async def test_login_page_and_safe_next(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/login?next=/alerts/5")
    assert response.status_code == 200
    assert 'data-next="/alerts/5"' in response.text
    response = await client.get("/login", params={"next": "/actions/eyJqdGkiOiJ4In0.c2ln-_"})
    assert 'data-next="/actions/eyJqdGkiOiJ4In0.c2ln-_"' in response.text, "signed action links come back"
    assert 'for="login-username"' in response.text
    assert 'for="login-password"' in response.text
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "/ /x"):
        response = await client.get("/login", params={"next": evil})
        assert 'data-next="/alerts"' in response.text, evil


async def test_user_content_is_escaped(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "admin")
    headers = {"X-CSRF-Token": "t"}
    client.cookies.set("relay_csrf", "t")
    response = await client.put(f"/api/teams/{world.ids['team']}", json={"name": XSS}, headers=headers)
    assert response.status_code == 200, response.text
    response = await client.put(
        f"/api/rotations/{world.ids['rotation']}", json={"description": XSS, "name": XSS}, headers=headers
    )
    assert response.status_code == 200, response.text
    group_id = await post_alert(client, world, title=XSS, message=XSS, labels={"x": XSS})
    for path in (
        "/alerts",
        f"/alerts/{group_id}",
        "/teams",
        f"/teams/{world.ids['team']}",
        "/rotations",
        f"/rotations/{world.ids['rotation']}",
        f"/calendar?rotation_id={world.ids['rotation']}",
        "/routes",
    ):
        text = (await client.get(path)).text
        assert XSS not in text, path
        assert ESCAPED in text, path
    text = (await client.get("/alerts", params={"search": XSS})).text
    assert XSS not in text
    assert 'value="&lt;img' in text


async def test_alert_list_shows_alerts_with_actions_by_role(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    group_id = await post_alert(client, world, title="Replica lag")
    login_as(client, world, "responder")
    text = (await client.get("/alerts")).text
    row = text[text.index(f'id="alert-{group_id}"') :]
    row = row[: row.index("</tr>")]
    assert "Replica lag" in row
    assert "firing" in row
    assert "critical" in row
    assert f'data-url="/api/alerts/{group_id}/ack"' in row
    assert f'data-url="/api/alerts/{group_id}/resolve"' in row
    assert 'data-refresh="15"' in text

    login_as(client, world, "viewer")
    text = (await client.get("/alerts")).text
    assert "Replica lag" in text
    assert f"/api/alerts/{group_id}/ack" not in text, "viewers cannot acknowledge"

    login_as(client, world, "outsider")
    text = (await client.get("/alerts")).text
    assert "Replica lag" not in text, "another group's alerts are not shown"
    assert "No alerts yet" in text
    assert "All my groups" in text
    assert "routing_error" in text
    assert "intake token" in text
    response = await client.get(f"/alerts/{group_id}")
    assert response.status_code == 404


async def test_alert_filters_reach_the_api(client: AsyncTestClient[Litestar], world: World) -> None:
    await post_alert(client, world, title="Disk full", fingerprint="a")
    await post_alert(client, world, title="CPU hot", fingerprint="b", severity="warning")
    login_as(client, world, "admin")
    text = (await client.get("/alerts", params={"search": "disk"})).text
    assert "Disk full" in text
    assert "CPU hot" not in text
    text = (await client.get("/alerts", params={"severity": "warning"})).text
    assert "CPU hot" in text
    assert "Disk full" not in text
    text = (await client.get("/alerts", params={"status": "resolved"})).text
    assert "CPU hot" not in text
    assert "match these filters" in text
    text = (await client.get("/alerts", params={"team_id": world.ids["other_team"]})).text
    assert "CPU hot" not in text


async def test_alert_detail_shows_timeline_deliveries_and_trace(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    group_id = await post_alert(client, world, title="Detail check")
    login_as(client, world, "admin")
    text = (await client.get(f"/alerts/{group_id}")).text
    assert "Detail check" in text
    assert "Timeline" in text
    assert "created" in text
    assert "Deliveries" in text
    assert "Explain trace" in text
    trace = re.search(r"/alerts\?trace_id=([0-9a-f-]+)", text)
    assert trace, "the trace links to /alerts?trace_id=…"
    text = (await client.get(f"/alerts?trace_id={trace[1]}")).text
    assert f"Open alert #{group_id}" in text


async def test_calendar_marks_overrides_and_who_is_on_call(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    login_as(client, world, "admin")
    client.cookies.set("relay_csrf", "t")
    response = await client.post(
        f"/api/rotations/{world.ids['rotation']}/overrides",
        json={
            "user_id": world.ids["responder"],
            "starts_at": "2026-06-01T09:00",
            "ends_at": "2026-06-01T18:00",
        },
        headers={"X-CSRF-Token": "t"},
    )
    assert response.status_code == 201, response.text
    text = (await client.get(f"/calendar?rotation_id={world.ids['rotation']}&start=2026-06-01")).text
    assert text.count('<li class="seg override"') == 1
    assert "Override:</strong> Responder" in text
    assert '<li class="seg layer"' in text
    now = text[text.index('id="oncall-now"') :]
    assert "Responder" in now[: now.index("</ul>")]
    assert "override" in now[: now.index("</ul>")]
    month = (
        await client.get(f"/calendar?rotation_id={world.ids['rotation']}&view=month&start=2026-06-10")
    ).text
    assert month.count('<li class="seg override"') == 1
    assert month.count('class="day') >= 28


async def test_routes_page_never_shows_a_raw_token(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "manager")
    for path in ("/routes", f"/routes/{world.ids['route_webhook']}"):
        text = (await client.get(path)).text
        assert world.tokens["route_webhook"] not in text
        assert "/api/integrations/webhook" in text
    text = (await client.get(f"/routes/{world.ids['route_webhook']}")).text
    assert "curl -X POST https://relay.test/api/integrations/webhook" in text
    assert "Copy token" in text


async def test_channels_page_has_a_form_per_type(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "manager")
    text = (await client.get("/channels")).text
    assert 'data-kind="webhook"' in text
    assert 'name="config.webhook_url"' in text
    assert 'id="cfg-webhook-webhook_url" name="config.webhook_url" type="password"' in text
    assert f'data-url="/api/channels/{world.ids["channel"]}/test"' in text


@pytest.mark.parametrize("path", ["/api/openapi.json"])
async def test_pages_are_not_in_the_openapi_document(client: AsyncTestClient[Litestar], path: str) -> None:
    paths = (await client.get(path)).json()["paths"]
    assert not [
        p
        for p in paths
        if not p.startswith("/api") and p not in ("/healthz", "/livez", "/readyz", "/metrics")
    ]


async def test_pages_follow_the_api_permissions(client: AsyncTestClient[Litestar], world: World) -> None:
    """Each role gets a page or the API's own 403/404; never a server error."""
    hidden = {
        f"/calendar?team_id={world.ids['team']}",
        f"/teams/{world.ids['team']}",
        f"/rotations/{world.ids['rotation']}",
        f"/routes/{world.ids['route_webhook']}",
        f"/groups/{world.ids['group']}",
    }
    for who in ("manager", "viewer", "outsider"):
        login_as(client, world, who)
        for path in pages(world):
            response = await client.get(path, follow_redirects=False)
            if path == "/admin/users":
                expected = 403
            elif who == "outsider" and path in hidden:
                expected = 404
            else:
                expected = 200
            assert response.status_code == expected, (who, path, response.status_code)
    login_as(client, world, "viewer")
    text = (await client.get("/admin/users")).text
    assert "Not allowed" in text
    assert 'href="/admin/users"' not in text, "the Users link is for admins only"


async def test_only_web_links_become_links(client: AsyncTestClient[Litestar], world: World) -> None:
    bad = await post_alert(
        client, world, title="Bad link", fingerprint="bad", event_link="javascript:alert(1)"
    )
    good = await post_alert(
        client, world, title="Good link", fingerprint="good", event_link="https://grafana.example/d/x"
    )
    login_as(client, world, "admin")
    assert 'href="javascript:' not in (await client.get(f"/alerts/{bad}")).text
    assert 'href="https://grafana.example/d/x"' in (await client.get(f"/alerts/{good}")).text


async def test_test_alerts_only_with_the_filter(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "manager")
    client.cookies.set("relay_csrf", "t")
    response = await client.post(
        f"/api/routes/{world.ids['route_webhook']}/test-alert",
        json={"title": "Route test alert"},
        headers={"X-CSRF-Token": "t"},
    )
    assert response.status_code == 200, response.text
    assert "Route test alert" not in (await client.get("/alerts")).text
    text = (await client.get("/alerts", params={"include_test": "1"})).text
    assert "Route test alert" in text
    assert 'id="f-include-test" name="include_test" value="1" checked' in text


async def test_storage_outage_gives_an_error_page(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "admin")
    world.storage.down = True
    try:
        response = await client.get("/alerts")
    finally:
        world.storage.down = False
    assert response.status_code == 503
    assert "text/html" in response.headers["content-type"]
    assert "storage_unavailable" in response.text


@pytest.mark.parametrize("api_group_filter", [True, False], ids=["api-group-filter", "page-narrows"])
async def test_group_selector_narrows_the_list(
    client: AsyncTestClient[Litestar], world: World, monkeypatch: pytest.MonkeyPatch, api_group_filter: bool
) -> None:
    """With the API's ``group_id`` filter, and without it (the page narrows to the group's teams)."""
    from relay_server.ui import pages as ui_pages

    if api_group_filter and not ui_pages.api_filters_by_group():
        pytest.skip("GET /api/alerts has no group_id filter")
    monkeypatch.setattr(ui_pages, "api_filters_by_group", lambda: api_group_filter)
    await post_alert(client, world, title="Infra only")
    login_as(client, world, "admin")
    client.cookies.set("relay_csrf", "t")
    response = await client.post(
        "/api/profile/active-group",
        json={"group_id": world.ids["other_group"]},
        headers={"X-CSRF-Token": "t"},
    )
    assert response.status_code == 200, response.text
    text = (await client.get("/alerts")).text
    assert "Infra only" not in text
    assert f'<option value="{world.ids["other_group"]}" selected>' in text
    response = await client.post(
        "/api/profile/active-group", json={"group_id": None}, headers={"X-CSRF-Token": "t"}
    )
    assert response.status_code == 200
    assert "Infra only" in (await client.get("/alerts")).text


def csrf(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    client.cookies.set("relay_csrf", "t")
    return {"X-CSRF-Token": "t"}


def section(text: str, start: str, end: str) -> str:
    """The part of a page from ``start`` up to the next ``end``."""
    part = text[text.index(start) :]
    return part[: part.index(end)]


async def test_channel_edit_form_masks_secrets_and_keeps_them(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    """The edit form shows the API's placeholder for a secret; sending the form back unchanged
    (what relay.js does) keeps the stored secret and the settings the form has no field for."""
    login_as(client, world, "manager")
    headers = csrf(client)
    secret_url = "https://hooks.example.net/T000/very-secret-path"
    created = await client.post(
        "/api/channels",
        json={
            "team_id": world.ids["team"],
            "name": "hook",
            "channel_type": "webhook",
            "config": {"webhook_url": secret_url, "template": "custom {{ title }}"},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    text = (await client.get("/channels")).text
    assert secret_url not in text
    form = section(text, f'id="channel-form-{channel_id}"', "</form>")
    assert f'data-url="/api/channels/{channel_id}" data-method="PUT"' in form
    url_input = re.search(r'<input id="ch-\d+-cfg-webhook_url"[^>]*>', form)
    assert url_input, form
    assert 'type="password"' in url_input[0]
    placeholder = re.search(r'value="([^"]+)"', url_input[0])
    assert placeholder
    assert placeholder[1] == "__RELAY_SECRET__"
    extras = re.search(r"<input type=\"hidden\" name=\"config\" data-type=\"json\" value='([^']*)'>", form)
    assert extras, form
    assert "custom" in extras[1]
    assert "webhook_url" not in extras[1], "fields with an input are not duplicated"
    # The body relay.js builds from the unchanged form, with a new name.
    config = {**json.loads(extras[1]), "webhook_url": placeholder[1]}
    response = await client.put(
        f"/api/channels/{channel_id}", json={"name": "hook renamed", "config": config}, headers=headers
    )
    assert response.status_code == 200, response.text
    stored = await world.get("channels", channel_id)
    assert stored.name == "hook renamed"
    assert stored.config["webhook_url"] == secret_url
    assert stored.config["template"] == "custom {{ title }}"


async def test_edit_forms_are_prefilled(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "admin")
    text = (await client.get("/admin/users")).text
    form = section(text, f'id="user-form-{world.ids["responder"]}"', "</form>")
    assert f'data-url="/api/admin/users/{world.ids["responder"]}" data-method="PUT"' in form
    assert 'value="responder"' in form
    assert 'name="password" type="password"' in form
    assert "data-skip-empty=1" in form, "an empty password field keeps the password"
    assert 'name="active" type="checkbox" data-type="bool" checked' in form
    text = (await client.get(f"/rotations/{world.ids['rotation']}")).text
    assert 'id="rotation-settings-form"' in text
    assert re.search(
        r'id="edit-rot-start" name="start_at" type="datetime-local" value="\d{4}-\d\d-\d\dT\d\d:\d\d"', text
    )
    text = (await client.get(f"/routes/{world.ids['route_webhook']}")).text
    assert 'id="route-settings-form"' in text
    assert 'id="edit-route-rotation" name="rotation_id"' in text
    assert f'<option value="{world.ids["rotation"]}" selected>' in text
    assert 'id="test-alert-severity"' in text
    text = (await client.get(f"/groups/{world.ids['group']}")).text
    assert 'id="group-settings-form"' in text
    assert 'id="group-new-user-form"' in text
    assert 'class="js-put" data-url="/api/groups/users/' in text


async def test_silence_can_be_expired_and_edited(client: AsyncTestClient[Litestar], world: World) -> None:
    login_as(client, world, "manager")
    headers = csrf(client)
    response = await client.post(
        "/api/silences",
        json={
            "team_id": world.ids["team"],
            "name": "maintenance",
            "matchers": {"alertname": "DiskFull"},
            "starts_at": "2020-01-01T00:00:00Z",
            "ends_at": "2099-01-01T00:00:00Z",
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    silence_id = response.json()["id"]
    text = (await client.get("/silences")).text
    row = section(text, "maintenance", "</tr>")
    assert 'data-now="ends_at"' in row, "Expire now sends the browser's current time"
    form = section(text, f'id="silence-form-{silence_id}"', "</form>")
    assert "DiskFull" in form
    assert 'name="ends_at" type="datetime-local" value="2099-01-01T00:00"' in form


async def test_alert_list_date_range_sort_and_pages(client: AsyncTestClient[Litestar], world: World) -> None:
    await post_alert(client, world, title="Warning one", fingerprint="w1", severity="warning")
    await post_alert(client, world, title="Critical two", fingerprint="c2", severity="critical")
    login_as(client, world, "admin")
    text = (await client.get("/alerts", params={"sort": "severity"})).text
    assert text.index("Critical two") < text.index("Warning one")
    assert '<option value="severity" selected>' in text
    text = (await client.get("/alerts", params={"sort": "severity", "order": "asc"})).text
    assert text.index("Warning one") < text.index("Critical two")
    today = world.state.now().date()
    text = (await client.get("/alerts", params={"from": today.isoformat(), "to": today.isoformat()})).text
    assert "Warning one" in text
    assert f'id="f-from" name="from" type="date" value="{today.isoformat()}"' in text
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    text = (await client.get("/alerts", params={"from": tomorrow})).text
    assert "Warning one" not in text
    assert "match these filters" in text
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    text = (await client.get("/alerts", params={"to": yesterday})).text
    assert "Critical two" not in text
    text = (await client.get("/alerts", params={"from": "not-a-date"})).text
    assert "Critical two" in text, "a malformed date is ignored, not an error"
    for n in range(26):
        await post_alert(client, world, title=f"Bulk {n}", fingerprint=f"bulk-{n}", severity="info")
    text = (await client.get("/alerts", params={"severity": "info", "sort": "created"})).text
    assert "Page 1 of 2" in text
    assert "/alerts?severity=info&amp;sort=created&amp;page=2" in text
    text = (await client.get("/alerts", params={"severity": "info", "sort": "created", "page": "2"})).text
    assert "Page 2 of 2" in text
    assert text.count('data-alert-id="') == 1


async def test_alert_detail_note_and_shortcuts(client: AsyncTestClient[Litestar], world: World) -> None:
    group_id = await post_alert(client, world, title="Needs a note")
    login_as(client, world, "responder")
    text = (await client.get(f"/alerts/{group_id}")).text
    assert 'for="alert-note"' in text
    assert 'data-note="#alert-note" data-shortcut="a"' in text
    assert 'data-note="#alert-note" data-shortcut="r"' in text
    headers = csrf(client)
    response = await client.post(
        f"/api/alerts/{group_id}/ack", json={"comment": "looking <now>"}, headers=headers
    )
    assert response.status_code == 200, response.text
    text = (await client.get(f"/alerts/{group_id}")).text
    assert "looking &lt;now&gt;" in text, "the note shows in the timeline, escaped"
    assert 'data-shortcut="a"' not in text, "an acknowledged alert has no Acknowledge button"
    assert 'data-shortcut="r"' in text
    login_as(client, world, "viewer")
    text = (await client.get(f"/alerts/{group_id}")).text
    assert 'data-shortcut="r"' not in text
    assert 'id="alert-note"' not in text


async def test_contact_edit_never_sends_a_masked_phone_back(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    """Non-admins see a masked phone: their edit form leaves it empty (kept) instead."""
    login_as(client, world, "admin")
    headers = csrf(client)
    rg = await client.post(
        "/api/role-groups",
        json={"group_id": world.ids["group"], "name": "Execs", "slug": "execs"},
        headers=headers,
    )
    assert rg.status_code == 201, rg.text
    contact = await client.post(
        f"/api/role-groups/{rg.json()['id']}/contacts",
        json={"name": "CFO", "phone": "+15551234567"},
        headers=headers,
    )
    assert contact.status_code == 201, contact.text
    form = section((await client.get("/role-groups")).text, "contact-form-", "</form>")
    assert 'value="+15551234567"' in form
    login_as(client, world, "editor")  # a group editor, not an administrator
    text = (await client.get("/role-groups")).text
    assert "+15551234567" not in text
    form = section(text, "contact-form-", "</form>")
    phone = re.search(r'<input id="ct-\d+-phone"[^>]*>', form)
    assert phone, form
    assert "value=" not in phone[0]
    assert "data-skip-empty=1" in phone[0]
    # what relay.js sends for the unchanged form: no phone, so the stored number stays
    response = await client.put(
        f"/api/role-groups/contacts/{contact.json()['id']}", json={"name": "CFO (finance)"}, headers=headers
    )
    assert response.status_code == 200, response.text
    stored = await world.get("role_group_contacts", contact.json()["id"])
    assert stored.phone == "+15551234567"
