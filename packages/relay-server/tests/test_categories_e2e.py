"""Issue 8 end to end: categories, role groups, subscriptions and test alerts (SPEC S8).

Everything goes through the HTTP API and the real channel senders: webhook channels post to a
local HTTP receiver (SSRF allow-list 127.0.0.1) and e-mail goes to a local SMTP server
(aiosmtpd). The standard preset (S8.6) creates the role groups and subscriptions; each role
group gets its own webhook "room" so the receiver's request paths show who was reached.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope
from litestar.testing import AsyncTestClient

from relay_adapters.channels import ChannelEnvironment, EmailChannel, SmtpOptions, WebhookChannel
from relay_adapters.channels._http import OutboundOptions
from relay_core.testing.pytest_plugin import LocalHttpServer

from .conftest import World

ROOMS = {
    "org-admins": "/org",
    "billing-admins": "/billing",
    "tech-devops": "/tech",
    "support-managers": "/support",
}
MEMBERS = {
    "org-admins": ["editor"],
    "billing-admins": ["viewer"],
    "tech-devops": ["manager", "responder"],
    "support-managers": ["useradmin", "manager"],
}


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 OK"

    def recipients(self) -> set[str]:
        return {to for tos, _ in self.messages for to in tos}


class SmtpServer:
    """aiosmtpd on 127.0.0.1 (ephemeral port, no STARTTLS), served by its own thread and loop."""

    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self.port = 0

    def start(self) -> SmtpServer:
        self._thread.start()
        factory = lambda: SMTP(self.mailbox, hostname="smtp.test", loop=self._loop)  # noqa: E731
        future = asyncio.run_coroutine_threadsafe(
            self._loop.create_server(factory, "127.0.0.1", 0), self._loop
        )
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


async def _setup(
    world: World, client: AsyncTestClient[Any], http: LocalHttpServer, smtp: SmtpServer
) -> dict[str, Any]:
    """Real senders, four webhook rooms, the standard preset, members and a contact."""
    env = ChannelEnvironment(
        outbound=OutboundOptions(timeout=5.0, allowlist=("127.0.0.1/32",)),
        smtp=SmtpOptions(host="127.0.0.1", port=smtp.port, use_tls=False, from_address="relay@relay.test"),
    )
    world.relay.ctx.senders["webhook"] = WebhookChannel(env=env)
    world.relay.ctx.senders["email"] = EmailChannel(env=env)
    http.respond(204)
    http.respond(500, {"error": "boom"}, path="/broken")
    editor = world.auth("editor")
    group_id = world.ids["group"]
    rooms: dict[str, int] = {}
    for slug, path in {**ROOMS, "broken": "/broken"}.items():
        response = await client.post(
            "/api/channels",
            json={
                "group_id": group_id,
                "name": f"{slug} room",
                "channel_type": "webhook",
                "config": {"webhook_url": f"{http.url}{path}"},
            },
            headers=editor,
        )
        assert response.status_code == 201, response.text
        rooms[slug] = response.json()["id"]
    preset = await client.post(
        "/api/subscriptions/presets/standard",
        json={"group_id": group_id, "webhook_channel_id": rooms["org-admins"]},
        headers=editor,
    )
    assert preset.status_code == 200, preset.text
    body = preset.json()
    assert body["created_subscriptions"] == 9
    role_groups = {rg["slug"]: rg["id"] for rg in body["role_groups"]}
    subs: dict[tuple[str, str, str], int] = {}
    for sub in body["subscriptions"]:
        slug = sub["role_group"]["slug"]
        subs[(slug, sub["category"], sub["name"])] = sub["id"]
        if "sms" in sub["channel_types"] and not sub["channel_ids"] and slug == "billing-admins":
            continue  # the low-balance SMS row has no room
        # Each role group's Slack/Teams/webhook destinations are its own room here.
        put = await client.put(
            f"/api/subscriptions/{sub['id']}", json={"channel_ids": [rooms[slug]]}, headers=editor
        )
        assert put.status_code == 200, put.text
    for slug, names in MEMBERS.items():
        for name in names:
            added = await client.post(
                f"/api/role-groups/{role_groups[slug]}/members",
                json={"user_id": world.ids[name]},
                headers=editor,
            )
            assert added.status_code == 201, added.text
    contact = await client.post(
        f"/api/role-groups/{role_groups['billing-admins']}/contacts",
        json={"name": "Finance desk", "email": "finance@example.net"},
        headers=editor,
    )
    assert contact.status_code == 201, contact.text
    return {"rooms": rooms, "role_groups": role_groups, "subs": subs}


async def _alert(world: World, client: AsyncTestClient[Any], **item: Any) -> int:
    response = await client.post(
        "/api/integrations/webhook", json=item, headers=world.bearer("route_webhook")
    )
    assert response.status_code == 200, response.text
    (result,) = response.json()
    await world.relay.run_until_idle()
    return int(result["group_id"])


def _paths(http: LocalHttpServer) -> list[str]:
    return sorted(r.path for r in http.requests)


def _sub_id(setup: dict[str, Any], role_group: str, category: str) -> int:
    (found,) = [
        sid
        for (rg, cat, name), sid in setup["subs"].items()
        if rg == role_group and cat == category and "SMS" not in name
    ]
    return found


async def test_subscriptions_end_to_end(
    world: World, client: AsyncTestClient[Any], local_http_server: LocalHttpServer, smtp_server: SmtpServer
) -> None:
    """Billing, infrastructure and filtered alerts reach exactly the S8 audiences; test alerts report."""
    http, smtp = local_http_server, smtp_server
    setup = await _setup(world, client, http, smtp)
    viewer = world.auth("viewer")

    # 1. A billing alert reaches only the billing subscribers: Org Admins and Billing Admins.
    billing = await _alert(
        world,
        client,
        title="Card gateway errors",
        fingerprint="bill-1",
        severity="critical",
        labels={"category": "billing"},
    )
    assert _paths(http) == ["/billing", "/org"]
    texts = [r.json()["text"] for r in http.requests]
    assert all(t.startswith("[Billing] NOTIFICATION: [CRITICAL] Card gateway errors") for t in texts)
    assert {r.json()["category"] for r in http.requests} == {"billing"}
    assert smtp.mailbox.recipients() == {"editor@example.com", "viewer@example.com", "finance@example.net"}
    detail = await client.get(f"/api/alerts/{billing}", headers=viewer)
    assert detail.json()["category"]["slug"] == "billing"
    decisions = {
        d["subscription_name"]: d
        for d in (await client.get(f"/api/alerts/{billing}/subscriptions", headers=viewer)).json()
    }
    assert set(decisions) == {
        "Org Admins — Billing",
        "Billing Admins — Billing",
        "Billing Admins — Low balance SMS",
    }
    assert decisions["Billing Admins — Billing"]["decision"] == "sent"
    sms = decisions["Billing Admins — Low balance SMS"]
    assert sms["decision"] == "skipped"
    assert [d["reason"] for d in sms["decisions"]] == ["matchers_not_matched"]

    # 2. An infrastructure alert reaches Org Admins, Tech/DevOps and Support Managers, not billing.
    http.clear()
    smtp.mailbox.messages.clear()
    infra = await _alert(world, client, title="API down", fingerprint="infra-1", severity="critical")
    assert _paths(http) == ["/org", "/support", "/tech"]
    assert smtp.mailbox.recipients() == {
        "editor@example.com",
        "manager@example.com",
        "responder@example.com",
        "useradmin@example.com",
    }
    # The manager is in Tech/DevOps and Support Managers: one message per address (S8.5).
    assert [tos for tos, _ in smtp.mailbox.messages].count(["manager@example.com"]) == 1
    report = {
        d["subscription_name"]: d
        for d in (await client.get(f"/api/alerts/{infra}/subscriptions", headers=viewer)).json()
    }
    org = report["Org Admins — Infrastructure"]
    # Org Admins' SMS row: the editor has no phone, which is why no SMS went out (S8.8).
    assert {
        (d["channel_type"], d["status"], d["reason"]) for d in org["decisions"] if d["status"] == "skipped"
    } == {("sms", "skipped", "phone_missing")}
    assert {d["status"] for d in org["decisions"] if d["channel_type"] in ("webhook", "email")} == {"sent"}

    # Subscribers hear about the resolution on the channels that had the incident (events
    # created + resolved by default).
    http.clear()
    smtp.mailbox.messages.clear()
    resolved = await client.post(f"/api/alerts/{infra}/resolve", json={}, headers=world.auth("responder"))
    assert resolved.status_code == 200, resolved.text
    await world.relay.run_until_idle()
    assert _paths(http) == ["/org", "/support", "/tech"]
    assert {(r.json()["event_type"], r.json()["status"]) for r in http.requests} == {("resolved", "resolved")}
    assert "manager@example.com" in smtp.mailbox.recipients()

    # 3. A severity filter keeps a warning out of Tech/DevOps.
    tech_infra = _sub_id(setup, "tech-devops", "infrastructure")
    put = await client.put(
        f"/api/subscriptions/{tech_infra}", json={"severities": ["critical"]}, headers=world.auth("editor")
    )
    assert put.status_code == 200
    http.clear()
    smtp.mailbox.messages.clear()
    warning = await _alert(world, client, title="Disk slow", fingerprint="infra-2", severity="warning")
    assert _paths(http) == ["/org", "/support"]
    assert "responder@example.com" not in smtp.mailbox.recipients()  # Tech/DevOps only
    report = {
        d["subscription_name"]: d
        for d in (await client.get(f"/api/alerts/{warning}/subscriptions", headers=viewer)).json()
    }
    tech = report["Tech/DevOps — Infrastructure"]
    assert tech["decision"] == "skipped"
    assert [d["reason"] for d in tech["decisions"]] == ["severity_filtered"]

    # 4. A test alert arrives on every subscribed channel; the answer lists each channel's outcome.
    org_infra = _sub_id(setup, "org-admins", "infrastructure")
    await client.put(
        f"/api/subscriptions/{org_infra}",
        json={"channel_ids": [setup["rooms"]["org-admins"], setup["rooms"]["broken"]]},
        headers=world.auth("editor"),
    )
    http.clear()
    smtp.mailbox.messages.clear()
    groups_before = await world.count("alert_groups")
    response = await client.post(f"/api/subscriptions/{org_infra}/test", headers=world.auth("editor"))
    assert response.status_code == 200, response.text
    body = response.json()
    outcomes = {(r["channel_type"], r["recipient"]): (r["status"], r["error"]) for r in body["results"]}
    assert outcomes == {
        ("webhook", "org-admins room"): ("sent", None),
        ("webhook", "broken room"): ("failed", outcomes[("webhook", "broken room")][1]),
        ("email", "e***@example.com"): ("sent", None),
        ("sms", "editor"): ("skipped", "phone_missing"),
    }
    assert "500" in outcomes[("webhook", "broken room")][1]
    assert body["summary"] == {"sent": 2, "failed": 1, "skipped": 1}
    assert _paths(http) == ["/broken", "/org"]
    delivered = next(r for r in http.requests if r.path == "/org").json()
    assert delivered["test"] is True
    assert delivered["event_type"] == "test"
    expected = "Test alert from Relay — infrastructure subscription Org Admins — Infrastructure"
    assert delivered["text"] == f"[Infrastructure] TEST: {expected}"
    assert smtp.mailbox.recipients() == {"editor@example.com"}
    assert await world.count("alert_groups") == groups_before  # a test creates no alert group
    again = await client.get(f"/api/notifications/tests/{body['test_id']}", headers=world.auth("editor"))
    assert again.status_code == 200
    assert again.json()["results"] == body["results"]
    stored = (await client.get(f"/api/subscriptions/{org_infra}", headers=viewer)).json()
    assert stored["last_test_result"]["test_id"] == body["test_id"]
    assert stored["last_test_at"] is not None
