"""The web UI in a real headless Chromium (SPEC S11.4), against a real ``relay serve`` process.

Driven by Playwright's Python package with Debian's ``/usr/bin/chromium`` (``executable_path``; no
``playwright install``). Without Chromium or Playwright the test skips, except under
``RELAY_REQUIRE_SERVICES=1`` where it fails. Screenshots go to ``$RELAY_UI_ARTIFACTS`` (default
``test-artifacts/ui`` at the repository root, ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay_core.testing.pytest_plugin import LocalHttpServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[4]
CHROMIUM = os.environ.get("RELAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "ui-test-password-1"
STARTUP_SECONDS = 40


def _unavailable(reason: str) -> None:
    if os.environ.get("RELAY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"browser test cannot run: {reason} (RELAY_REQUIRE_SERVICES=1)")
    pytest.skip(f"browser test skipped: {reason}")


@pytest.fixture(scope="module")
def playwright_api() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def artifacts() -> Path:
    path = Path(os.environ.get("RELAY_UI_ARTIFACTS") or ROOT / "test-artifacts" / "ui")
    path.mkdir(parents=True, exist_ok=True)
    return path


class RelayProcess:
    """``relay serve`` (web, worker and scheduler in one process) on SQLite in a temp dir."""

    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update(
            RELAY_DATA_DIR=str(data_dir),
            RELAY_PUBLIC_BASE_URL=self.url,
            RELAY_SECRET_KEY="ui-browser-test-secret-key-0123456789",
            # The webhook receiver of the test listens on 127.0.0.1 (S6.2 blocks private targets).
            RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST="127.0.0.0/8",
            RELAY_AUTH__LOGIN_ACCOUNT_MAX_FAILURES="3",
            RELAY_AUTH__LOGIN_IP_MAX_FAILURES="50",
        )
        self.env = env
        self.log = data_dir.parent / "relay-serve.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "relay_server",
                "create-admin",
                "--username",
                "admin",
                "--password",
                PASSWORD,
                "--email",
                "admin@example.com",
            ],
            env=env,
            cwd=data_dir.parent,
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay_server", "serve", "--port", str(self.port)],
            env=env,
            cwd=data_dir.parent,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"relay serve did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


@pytest.fixture(scope="module")
def relay_server(tmp_path_factory: pytest.TempPathFactory, playwright_api: Any) -> Iterator[RelayProcess]:
    server = RelayProcess(tmp_path_factory.mktemp("ui") / "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        yield server


def _wait(predicate: Any, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(message)


def test_first_run_path_in_the_browser(
    playwright_api: Any, relay_server: RelayProcess, receiver: LocalHttpServer, artifacts: Path
) -> None:
    """Log in; create group, team, channel, rotation and route in the forms; copy the token; post an
    alert; see it in the list; acknowledge it; send a subscription test alert and see the per-channel
    result; add an override and see it on the calendar."""
    from playwright.sync_api import expect

    base = relay_server.url
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.clock.install()  # lets the test move the alert list's 15 s auto-refresh forward
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    def shot(name: str) -> None:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)

    try:
        # 1. log in (an unauthenticated page sends us to /login and back)
        page.goto("/teams")
        expect(page).to_have_url(f"{base}/login?next=%2Fteams")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{base}/teams")
        shot("01-logged-in")

        # 2. a group, then a team in it
        page.goto("/groups")
        page.get_by_label("Name", exact=True).fill("Operations")
        page.get_by_label("Slug").fill("ops")
        page.get_by_role("button", name="Create group").click()
        page.get_by_role("link", name="Operations").click()
        page.get_by_label("User", exact=True).select_option(label="admin (admin)")
        page.get_by_label("Role", exact=True).select_option("editor")
        page.get_by_role("button", name="Add user").click()
        expect(page.get_by_label("Group role of admin")).to_have_value("editor")
        # a second user, created in the group from its page (S11.3 steps 2-3)
        page.get_by_label("Username").fill("bob")
        page.get_by_label("Display name").fill("Bob Builder")
        page.get_by_label("Initial password (10+ characters)").fill("bob-password-123")
        page.get_by_role("button", name="Create user").click()
        expect(page.locator("table")).to_contain_text("Bob Builder")
        expect(page.get_by_label("Group role of bob")).to_have_value("viewer")
        # the administrator edits the group in place
        page.get_by_label("Description").last.fill("Everything that keeps the lights on")
        page.get_by_role("button", name="Save group").click()
        expect(page.locator("main")).to_contain_text("Everything that keeps the lights on")
        page.goto("/teams")
        page.get_by_label("Group").select_option(label="Operations")
        page.get_by_label("Name", exact=True).fill("Infrastructure")
        page.get_by_label("Slug").fill("infra")
        page.get_by_role("button", name="Create team").click()
        expect(page.get_by_role("heading", name="Infrastructure")).to_be_visible()
        # The group editor who creates a team becomes its manager (S9.3).
        expect(page.locator("table")).to_contain_text("admin")
        expect(page.get_by_label("Role of admin")).to_have_value("manager")
        # S11.3 step 5: the second user joins the team through the form
        page.get_by_label("User", exact=True).select_option(label="Bob Builder (bob)")
        page.get_by_label("Role", exact=True).select_option("responder")
        page.get_by_role("button", name="Add member").click()
        expect(page.get_by_label("Role of bob")).to_have_value("responder")
        shot("02-team")

        # 3. a webhook channel to the local receiver
        page.goto("/channels")
        page.get_by_label("Name", exact=True).fill("ops webhook")
        page.get_by_label("Type").select_option("webhook")
        page.locator("#cfg-webhook-webhook_url").fill(f"{receiver.url}/hook")
        page.get_by_role("button", name="Create channel").click()
        expect(page.locator("table")).to_contain_text("ops webhook")
        shot("03-channel")

        # 4. a rotation with the team's members
        page.goto("/rotations")
        page.get_by_label("Name", exact=True).fill("Primary")
        page.get_by_label("Add all active team members").uncheck()
        page.get_by_role("button", name="Create rotation").click()
        expect(page.get_by_role("heading", name="Primary", exact=True)).to_be_visible()
        expect(page.locator("#oncall-now")).to_contain_text("Nobody is on call")
        # S11.3 step 7: members through the form, then reordered
        page.get_by_label("Add member").select_option(label="admin (admin)")
        page.get_by_role("button", name="Add member", exact=True).click()
        expect(page.locator("ol.members li")).to_have_count(1)
        page.get_by_label("Add member").select_option(label="Bob Builder (bob)")
        page.get_by_role("button", name="Add member", exact=True).click()
        members = page.locator("ol.members li")
        expect(members).to_have_count(2)
        expect(members.first).to_contain_text("admin")
        page.get_by_role("button", name="Move bob up").click()
        expect(members.first).to_contain_text("Bob Builder")
        page.get_by_role("button", name="Move bob down").click()
        expect(members.first).to_contain_text("admin")
        expect(members.last).to_contain_text("Bob Builder")
        expect(page.locator("#oncall-now")).to_contain_text("admin")
        shot("04-rotation")

        # 4b. a silence: created, edited in place, then expired now
        page.goto("/silences")
        page.get_by_label("Name", exact=True).fill("Patch window")
        page.get_by_label("Matchers (JSON)").fill('{"alertname": "KernelPatch"}')
        page.get_by_role("button", name="Create silence").click()
        silence_row = page.locator("tr:not(.edit-row)", has_text="Patch window")
        expect(silence_row.locator(".badge")).to_have_text("active")
        page.get_by_text("Edit silence Patch window").click()
        silence_form = page.locator("form[id^=silence-form-]")
        silence_form.get_by_label("Reason").fill("kernel updates")
        silence_form.get_by_role("button", name="Save silence").click()
        expect(silence_row).to_contain_text("kernel updates")
        expect(silence_row.locator(".badge")).to_have_text("active")
        page.once("dialog", lambda dialog: dialog.accept())
        silence_row.get_by_role("button", name="Expire silence Patch window now").click()
        expect(silence_row.locator(".badge")).to_have_text("expired")
        expect(silence_row.get_by_role("button", name="Expire silence Patch window now")).to_have_count(0)

        # 5. a route: the token is shown once, with the intake URL and a curl
        page.goto("/routes")
        page.get_by_label("Name", exact=True).fill("Webhook alerts")
        page.get_by_label("Source").select_option("webhook")
        page.get_by_label("Rotation").select_option(label="Primary (Infrastructure)")
        page.get_by_label("ops webhook (webhook, Infrastructure)").check()
        page.get_by_role("button", name="Create route").click()
        panel = page.locator("#token-panel")
        expect(panel).to_be_visible()
        page.get_by_role("button", name="Copy token").click()
        expect(page.get_by_role("button", name="Copied ✓")).to_be_visible()
        token = page.evaluate("navigator.clipboard.readText()")
        assert token.startswith("rly_r_")
        assert token == page.locator("#intake-token").input_value()
        intake_url = page.locator("#intake-url").input_value()
        assert intake_url == f"{base}/api/integrations/webhook"
        assert token in page.locator("#intake-curl").input_value()
        shot("05-route-token")
        page.reload()
        assert token not in page.content(), "the intake token must be shown only once"

        # 6. post an alert with the copied token; it shows up in the list
        response = httpx.post(
            intake_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"title": "Disk <b>full</b> on db-1", "severity": "critical", "fingerprint": "disk-db-1"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        group_id = response.json()[0]["group_id"]
        page.goto("/alerts")
        row = page.locator(f"#alert-{group_id}")
        expect(row).to_contain_text("Disk <b>full</b> on db-1")
        expect(row).to_contain_text("firing")
        shot("06-alert-list")
        _wait(lambda: len(receiver.requests) > 0, 20, "the webhook channel received no notification")
        assert "Disk" in receiver.requests[0].text

        # 7. acknowledge it from the list
        row.get_by_role("button", name="Acknowledge").click()
        expect(row).to_contain_text("acknowledged")
        expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
        shot("07-acknowledged")
        # the list refreshes by itself every 15 s
        second = httpx.post(
            intake_url,
            headers={"Authorization": f"Bearer {token}"},
            json={"title": "Replication lag", "severity": "high", "fingerprint": "lag-db-2"},
            timeout=10,
        )
        assert second.status_code == 200, second.text
        new_row = page.locator(f"#alert-{second.json()[0]['group_id']}")
        expect(new_row).to_have_count(0)
        page.clock.fast_forward(16_000)
        expect(new_row).to_contain_text("Replication lag")
        expect(page.locator("#refresh-note")).to_contain_text("Updated")
        page.get_by_role("link", name="Disk <b>full</b> on db-1").click()
        expect(page.locator(".timeline")).to_contain_text("ack")
        shot("08-alert-detail")
        # resolve the second alert on its page with a note and the `r` key (S11.5)
        page.goto(f"/alerts/{second.json()[0]['group_id']}")
        page.get_by_label("Note (optional)").fill("failed over to db-3")
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("r")
        expect(page.locator(".alert-head")).to_contain_text("resolved")
        expect(page.locator(".timeline")).to_contain_text("failed over to db-3")

        # 8. a subscription of the alert's category to the webhook channel; its test shows per-channel results
        page.goto("/role-groups")
        page.get_by_label("Name", exact=True).fill("On-call staff")
        page.get_by_label("Slug").fill("oncall-staff")
        page.get_by_role("button", name="Create role group").click()
        expect(page.get_by_role("heading", name="On-call staff")).to_be_visible()
        page.goto("/subscriptions")
        page.get_by_label("Name", exact=True).fill("Infra to webhook")
        page.get_by_label("Category").select_option(label="Infrastructure")
        page.get_by_label("ops webhook (webhook)").check()
        page.get_by_role("button", name="Create subscription").click()
        sub_row = page.locator("tr:not(.edit-row)", has_text="Infra to webhook")
        expect(sub_row).to_be_visible()
        before = len(receiver.requests)
        sub_row.get_by_role("button", name="Send test alert").click()
        result = sub_row.locator(".form-status")
        expect(result).to_contain_text("ops webhook (webhook)")
        expect(result.locator(".badge")).to_have_text("sent")
        _wait(lambda: len(receiver.requests) > before, 10, "the subscription test reached no webhook")
        shot("09-subscription-test")

        # 9. an override, visible on the calendar
        page.goto("/rotations")
        page.get_by_role("link", name="Primary").click()
        page.get_by_label("Reason").fill("covering for a colleague")
        page.get_by_role("button", name="Add override").click()
        expect(page.locator("#override-form").locator("xpath=..").locator("table")).to_contain_text(
            "covering for a colleague"
        )
        expect(page.locator("#oncall-now")).to_contain_text("override")
        page.get_by_role("link", name="Calendar").first.click()
        override = page.locator("#calendar-grid .seg.override").first
        expect(override).to_contain_text("Override:")
        expect(override).to_contain_text("covering for a colleague")
        shot("10-calendar-week")
        page.get_by_role("link", name="Month").click()
        expect(page.locator("#calendar-grid .seg.override").first).to_be_visible()
        shot("11-calendar-month")

        # 10. the route's test button sends a real (test-flagged) alert through intake
        page.goto("/routes")
        page.get_by_role("link", name="Webhook alerts").click()
        expect(page.locator("#route-intake-url")).to_have_text(intake_url)
        # S11.3 step 11: how to configure the sender is on the route page
        expect(page.locator("#intake-h + dl + h3 + pre")).to_contain_text(f"curl -X POST {intake_url}")
        expect(page.locator("main")).to_contain_text("Authorization: Bearer <intake token>")
        page.get_by_role("button", name="Send test alert").click()
        test_result = page.locator("#test-alert-result")
        expect(test_result).to_contain_text("Test alert: created")
        test_link = test_result.get_by_role("link", name=re.compile(r"Open alert #\d+"))
        test_link.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Test alert from Relay")

        # 10b. edit the channel: a new name, the secret webhook URL left as the placeholder
        page.goto("/channels")
        page.get_by_text("Edit channel ops webhook").click()
        edit = page.locator("form[id^=channel-form-]")
        expect(edit.locator("input[name='config.webhook_url']")).to_have_value("__RELAY_SECRET__")
        edit.get_by_label("Name", exact=True).fill("ops webhook v2")
        edit.get_by_label("critical").check()
        edit.get_by_role("button", name="Save channel").click()
        channel_row = page.locator("tr:not(.edit-row)", has_text="ops webhook v2")
        expect(channel_row).to_be_visible()
        before = len(receiver.requests)
        channel_row.get_by_role("button", name="Test channel ops webhook v2").click()
        expect(channel_row.locator(".form-status")).to_contain_text("sent")
        _wait(lambda: len(receiver.requests) > before, 10, "the edited channel lost its webhook URL")
        assert receiver.requests[-1].path == "/hook"
        page.get_by_text("Edit channel ops webhook v2").click()
        expect(page.locator("form[id^=channel-form-]").get_by_label("critical")).to_be_checked()
        shot("10b-channel-edited")

        # 11. a personal API token is shown once
        page.goto("/profile")
        page.get_by_label("Name", exact=True).fill("ci token")
        page.get_by_label("alerts:read").check()
        page.get_by_role("button", name="Create token").click()
        api_token = page.locator("#api-token-value")
        expect(api_token).to_have_value(re.compile(r"^rly_p_"))
        raw = api_token.input_value()
        assert httpx.get(f"{base}/api/alerts", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
        page.reload()
        assert raw not in page.content()
        expect(page.locator("table")).to_contain_text("ci token")

        # 12. 360 px wide: no horizontal scrolling on the alert list
        page.set_viewport_size({"width": 360, "height": 780})
        page.goto("/alerts")
        expect(page.locator(f"#alert-{group_id}")).to_be_visible()
        shot("12-alerts-360px")
        for path in (
            "/alerts",
            f"/alerts/{group_id}",
            "/calendar?view=month",
            "/teams",
            "/rotations",
            "/routes",
            "/channels",
            "/subscriptions",
            "/silences",
            "/groups",
            "/admin/users",
            "/profile",
        ):
            page.goto(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path} is {width}px wide in a 360px window"

        # 13. the dark theme follows the system setting (S11.5)
        page.set_viewport_size({"width": 1280, "height": 900})
        background = "getComputedStyle(document.body).backgroundColor"
        page.emulate_media(color_scheme="light")
        page.goto("/alerts")
        assert page.evaluate(background) == "rgb(246, 248, 250)"
        page.emulate_media(color_scheme="dark")
        assert page.evaluate(background) == "rgb(13, 17, 23)"
        shot("14-alerts-dark")

        assert not errors, f"browser errors: {errors}"
    except BaseException:
        shot("failure")
        (artifacts / "failure.html").write_text(page.content())
        raise
    finally:
        context.close()
        browser.close()


def test_login_throttling_message(playwright_api: Any, relay_server: RelayProcess, artifacts: Path) -> None:
    """Repeated failures show the throttling message with the retry time (S11.2, S13.5)."""
    from playwright.sync_api import expect

    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    page = browser.new_page(base_url=relay_server.url)
    try:
        page.goto("/login")
        status = page.locator("#login-status")
        page.get_by_label("Username").fill("intruder")
        page.get_by_label("Password").fill("wrong-password")
        page.get_by_role("button", name="Log in").click()
        expect(status).to_contain_text("Invalid username or password")
        for _ in range(3):
            page.get_by_role("button", name="Log in").click()
            page.wait_for_timeout(150)
        expect(status).to_contain_text("Too many failed login attempts. Try again in")
        expect(page.get_by_role("button", name="Log in")).to_be_disabled()
        page.screenshot(path=str(artifacts / "13-login-throttled.png"))
    finally:
        browser.close()
