"""Issue 8 with real processes: ``relay serve`` on SQLite, webhook rooms and a local SMTP server.

A group, its users, a team and a webhook route are created through the HTTP API as a global admin
(made with ``relay create-admin``); the standard preset (S8.6) creates the role groups and
subscriptions, each role group gets its own webhook room (a path on one local receiver), and the
in-process worker delivers. Checked: a billing alert reaches only the billing subscribers; an
infrastructure alert reaches Org Admins, Tech/DevOps and Support Managers; a severity filter keeps
a warning out; a subscription test arrives on every channel and the answer lists each outcome.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope

from relay_core.testing.pytest_plugin import LocalHttpServer

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 60
PASSWORD = "e2e-admin-password-1"
RELAY = [sys.executable, "-m", "relay_server"]
ROOMS = {
    "org-admins": "/org",
    "billing-admins": "/billing",
    "tech-devops": "/tech",
    "support-managers": "/support",
}
PEOPLE = {"olga": "org-admins", "bill": "billing-admins", "dev": "tech-devops", "sue": "support-managers"}


class Mailbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.subjects: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.recipients.extend(envelope.rcpt_tos)
        self.subjects.append(str(message["Subject"]))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """aiosmtpd on 127.0.0.1 without STARTTLS, on its own thread and loop."""
    mailbox = Mailbox()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    factory = lambda: SMTP(mailbox, hostname="smtp.test", loop=loop)  # noqa: E731
    server = asyncio.run_coroutine_threadsafe(loop.create_server(factory, "127.0.0.1", 0), loop).result(10)
    try:
        yield mailbox, server.sockets[0].getsockname()[1]
    finally:

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def relay(tmp_path: Path, smtp: tuple[Mailbox, int]) -> Iterator[httpx.Client]:
    """A ``relay serve`` process on SQLite with a global admin; yields a logged-in client."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        {
            "RELAY_DATA_DIR": str(tmp_path / "data"),
            "RELAY_SERVER__PORT": str(port),
            "RELAY_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST": "127.0.0.1/32",
            "RELAY_SMTP__HOST": "127.0.0.1",
            "RELAY_SMTP__PORT": str(smtp[1]),
            "RELAY_SMTP__USE_TLS": "false",
            "RELAY_SMTP__FROM_ADDRESS": "relay@relay.test",
            "RELAY_DELIVERY__TEST_WAIT_SECONDS": "10",
        }
    )
    (tmp_path / "data").mkdir()
    for args in (
        ["migrate"],
        ["create-admin", "--username", "root", "--password", PASSWORD, "--email", "root@example.com"],
    ):
        done = subprocess.run(
            [*RELAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([*RELAY, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "relay serve did not become healthy"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.post("/api/auth/login", json={"username": "root", "password": PASSWORD})
            assert login.status_code == 200, login.text
            client.headers["Authorization"] = f"Bearer {login.json()['token']}"
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _wait_for(check: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "deliveries did not arrive in time"
        time.sleep(0.1)
    time.sleep(0.5)  # let stragglers (which must not exist) arrive before the exact comparison


def test_categories_and_subscriptions_whole_stack(
    relay: httpx.Client, local_http_server: LocalHttpServer, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, _port = smtp
    http = local_http_server
    http.respond(204)
    http.respond(500, {"error": "boom"}, path="/broken")
    group = _ok(relay.post("/api/groups", json={"slug": "acme", "name": "Acme"}), 201)
    users = {}
    for name in PEOPLE:
        body = {
            "username": name,
            "email": f"{name}@example.com",
            "group_id": group["id"],
            "group_role": "viewer",
        }
        users[name] = _ok(relay.post("/api/admin/users", json=body), 201)["id"]
    team = _ok(relay.post("/api/teams", json={"group_id": group["id"], "slug": "ops", "name": "Ops"}), 201)
    route = _ok(
        relay.post("/api/routes", json={"team_id": team["id"], "name": "hooks", "source": "webhook"}), 201
    )
    intake = {"Authorization": f"Bearer {route['intake_token']}"}
    rooms = {}
    for slug, path in {**ROOMS, "broken": "/broken"}.items():
        body = {
            "group_id": group["id"],
            "name": f"{slug} room",
            "channel_type": "webhook",
            "config": {"webhook_url": f"{http.url}{path}"},
        }
        rooms[slug] = _ok(relay.post("/api/channels", json=body), 201)["id"]
    preset = _ok(relay.post("/api/subscriptions/presets/standard", json={"group_id": group["id"]}))
    assert preset["created_subscriptions"] == 9
    role_groups = {rg["slug"]: rg["id"] for rg in preset["role_groups"]}
    subs = {}
    for sub in preset["subscriptions"]:
        slug = sub["role_group"]["slug"]
        subs[(slug, sub["category"], sub["channel_types"] == ["sms"])] = sub["id"]
        if sub["channel_types"] != ["sms"]:
            _ok(relay.put(f"/api/subscriptions/{sub['id']}", json={"channel_ids": [rooms[slug]]}))
    for name, slug in PEOPLE.items():
        _ok(relay.post(f"/api/role-groups/{role_groups[slug]}/members", json={"user_id": users[name]}), 201)

    def post_alert(**item: Any) -> int:
        [result] = _ok(relay.post("/api/integrations/webhook", json=item, headers=intake))
        return int(result["group_id"])

    def paths() -> list[str]:
        return sorted(r.path for r in http.requests)

    # A billing alert: Org Admins and Billing Admins only (rooms and e-mail).
    post_alert(
        title="Card gateway errors", fingerprint="b1", severity="critical", labels={"category": "billing"}
    )
    _wait_for(lambda: len(http.requests) >= 2 and len(mailbox.recipients) >= 2)
    assert paths() == ["/billing", "/org"]
    assert sorted(mailbox.recipients) == ["bill@example.com", "olga@example.com"]
    assert all(r.json()["text"].startswith("[Billing] NOTIFICATION") for r in http.requests)

    # An infrastructure alert: Org Admins, Tech/DevOps and Support Managers.
    http.clear()
    mailbox.recipients.clear()
    post_alert(title="API down", fingerprint="i1", severity="critical")
    _wait_for(lambda: len(http.requests) >= 3 and len(mailbox.recipients) >= 3)
    assert paths() == ["/org", "/support", "/tech"]
    assert sorted(mailbox.recipients) == ["dev@example.com", "olga@example.com", "sue@example.com"]

    # A severity filter keeps a warning out of Tech/DevOps.
    _ok(
        relay.put(
            f"/api/subscriptions/{subs[('tech-devops', 'infrastructure', False)]}",
            json={"severities": ["critical"]},
        )
    )
    http.clear()
    mailbox.recipients.clear()
    warning = post_alert(title="Disk slow", fingerprint="i2", severity="warning")
    _wait_for(lambda: len(http.requests) >= 2 and len(mailbox.recipients) >= 2)
    assert paths() == ["/org", "/support"]
    assert "dev@example.com" not in mailbox.recipients
    report = {r["subscription_name"]: r for r in _ok(relay.get(f"/api/alerts/{warning}/subscriptions"))}
    assert [d["reason"] for d in report["Tech/DevOps — Infrastructure"]["decisions"]] == ["severity_filtered"]

    # A subscription test reaches every channel and reports each outcome.
    org_infra = subs[("org-admins", "infrastructure", False)]
    _ok(
        relay.put(
            f"/api/subscriptions/{org_infra}", json={"channel_ids": [rooms["org-admins"], rooms["broken"]]}
        )
    )
    http.clear()
    mailbox.recipients.clear()
    result = _ok(relay.post(f"/api/subscriptions/{org_infra}/test"))
    outcomes = {(r["channel_type"], r["recipient"]): (r["status"], r["error"]) for r in result["results"]}
    assert outcomes[("webhook", "org-admins room")] == ("sent", None)
    assert outcomes[("email", "o***@example.com")] == ("sent", None)
    assert outcomes[("sms", "olga")] == ("skipped", "phone_missing")
    status, error = outcomes[("webhook", "broken room")]
    assert status == "failed"
    assert "500" in error
    assert len(outcomes) == 4
    assert paths() == ["/broken", "/org"]
    assert next(r for r in http.requests if r.path == "/org").json()["test"] is True
    assert mailbox.recipients == ["olga@example.com"]
