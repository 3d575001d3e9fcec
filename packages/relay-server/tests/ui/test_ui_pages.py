"""The web UI's pages over plain HTTP (SPEC S11.1, S11.2): they render, require a login, show what
the API lets the caller see, escape user content and load nothing from another origin."""

from __future__ import annotations

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


async def test_group_selector_narrows_the_list(client: AsyncTestClient[Litestar], world: World) -> None:
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
