"""``relay channel test N`` and ``relay telegram set-webhook --channel N`` against real local
HTTP servers standing in for the receivers and the Telegram Bot API (SPEC S6.1, S6.6, S10.1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relay_core.bootstrap import Relay
from relay_core.domain.model import Channel, Group, User
from relay_core.testing.pytest_plugin import LocalHttpServer

from .conftest import Cli

BOT_TOKEN = "123456:AAbbCCddEEff"
PUBLIC = "https://relay.example.com"


@pytest.fixture
def env(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("RELAY_PUBLIC_BASE_URL", PUBLIC)
    monkeypatch.setenv("RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST", "127.0.0.1")
    cli.ok("migrate")
    return cli


def _add(cli: Cli, channel_type: str, config: dict[str, Any]) -> int:
    async def work(relay: Relay) -> int:
        async with relay.uow_factory() as uow:
            group = await uow.groups.first(slug="ops") or await uow.groups.add(Group(slug="ops", name="Ops"))
            channel = await uow.channels.add(
                Channel(
                    group_id=group.id, name=f"{channel_type} room", channel_type=channel_type, config=config
                )
            )
            if await uow.users.first(username="ann") is None:
                await uow.users.add(User(username="ann", email="ann@example.com", phone="+15550009876"))
            await uow.commit()
            return channel.id

    return cli.query(work)


def _config(cli: Cli, channel_id: int) -> dict[str, Any]:
    async def work(relay: Relay) -> dict[str, Any]:
        async with relay.uow_factory() as uow:
            channel = await uow.channels.get(channel_id)
            assert channel is not None
            return dict(channel.config)

    return cli.query(work)


def _audit_actions(cli: Cli) -> list[str]:
    async def work(relay: Relay) -> list[str]:
        async with relay.uow_factory() as uow:
            return [row.action for row in await uow.audit.find(order_by="id")]

    return cli.query(work)


def test_channel_test_sends_through_the_channel(env: Cli, local_http_server: LocalHttpServer) -> None:
    """A webhook channel receives the test message; the JSON report says ``sent``, exit 0, audited."""
    channel_id = _add(env, "webhook", {"webhook_url": f"{local_http_server.url}/hook"})
    report = env.json("channel", "test", str(channel_id), "--json")
    assert report["channel_id"] == channel_id
    assert [r["status"] for r in report["results"]] == ["sent"]
    assert report["summary"] == {"sent": 1}
    (request,) = local_http_server.requests
    assert request.path == "/hook"
    assert "Test notification from Relay" in request.text
    assert "channel.test" in _audit_actions(env)
    human = env.ok("channel", "test", str(channel_id)).stdout
    assert f"of channel {channel_id}" in human
    assert "sent: webhook webhook room" in human


def test_channel_test_failure_exits_1(env: Cli, local_http_server: LocalHttpServer) -> None:
    """A receiver answering 500 makes the result ``failed`` and the command exit 1."""
    local_http_server.respond(500, "down")
    channel_id = _add(env, "webhook", {"webhook_url": f"{local_http_server.url}/hook"})
    result = env("channel", "test", str(channel_id), "--json")
    assert result.exit_code == 1
    assert [r["status"] for r in json.loads(result.stdout)["results"]] == ["failed"]
    assert "not sent everywhere" in result.stderr


def test_channel_test_person_addressed_needs_a_user(env: Cli) -> None:
    """An e-mail channel sends to a person: without ``--user`` it is a usage error; unknown
    users and channels exit 1; nothing is sent."""
    channel_id = _add(env, "email", {})
    assert env("channel", "test", str(channel_id)).exit_code == 2
    missing_user = env("channel", "test", str(channel_id), "--user", "nobody")
    assert missing_user.exit_code == 1
    assert "user not found: nobody" in missing_user.stderr
    missing = env("channel", "test", "9999")
    assert missing.exit_code == 1
    assert "channel not found: 9999" in missing.stderr
    assert "channel.test" not in _audit_actions(env)


def test_telegram_set_webhook_registers_url_and_generated_secret(
    env: Cli, local_http_server: LocalHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``setWebhook`` gets the channel's webhook URL under ``public_base_url``, a generated
    ``webhook_secret`` (then stored on the channel and reused) and ``callback_query`` updates;
    neither the bot token nor the secret is printed."""
    monkeypatch.setenv("RELAY_TELEGRAM__MODE", "webhook")
    local_http_server.respond(body={"ok": True, "result": True, "description": "Webhook was set"})
    channel_id = _add(
        env, "telegram", {"bot_token": BOT_TOKEN, "chat_id": "-100200", "api_base": local_http_server.url}
    )
    result = env.ok("telegram", "set-webhook", "--channel", str(channel_id))
    (request,) = local_http_server.requests
    assert request.method == "POST"
    assert request.path == f"/bot{BOT_TOKEN}/setWebhook"
    body = request.json()
    secret = _config(env, channel_id)["webhook_secret"]
    assert len(secret) >= 32
    assert body == {
        "url": f"{PUBLIC}/api/integrations/telegram/webhook/{channel_id}",
        "secret_token": secret,
        "allowed_updates": ["callback_query"],
    }
    assert f"{PUBLIC}/api/integrations/telegram/webhook/{channel_id}" in result.stdout
    for text in (result.stdout, result.stderr):
        assert secret not in text
        assert BOT_TOKEN not in text
    env.ok("telegram", "set-webhook", "--channel", str(channel_id))
    assert local_http_server.requests[-1].json()["secret_token"] == secret
    assert _config(env, channel_id)["webhook_secret"] == secret


def test_telegram_set_webhook_refusals(
    env: Cli, local_http_server: LocalHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polling mode, a non-telegram channel and a Bot API error each exit 1 with the reason."""
    channel_id = _add(
        env,
        "telegram",
        {
            "bot_token": BOT_TOKEN,
            "chat_id": "-100200",
            "api_base": local_http_server.url,
            "webhook_secret": "kept-secret-value",
        },
    )
    polling = env("telegram", "set-webhook", "--channel", str(channel_id))
    assert polling.exit_code == 1
    assert "telegram.mode" in polling.stderr
    assert local_http_server.requests == []
    monkeypatch.setenv("RELAY_TELEGRAM__MODE", "webhook")
    other = _add(env, "webhook", {"webhook_url": f"{local_http_server.url}/hook"})
    wrong_type = env("telegram", "set-webhook", "--channel", str(other))
    assert wrong_type.exit_code == 1
    assert "not telegram" in wrong_type.stderr
    local_http_server.respond(
        400, {"ok": False, "description": "Bad Request: bad webhook: HTTPS url must be provided"}
    )
    refused = env("telegram", "set-webhook", "--channel", str(channel_id))
    assert refused.exit_code == 1
    assert "HTTPS url must be provided" in refused.stderr
    assert local_http_server.last_request.json()["secret_token"] == "kept-secret-value"
    assert "kept-secret-value" not in refused.stderr
