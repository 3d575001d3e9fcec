"""The slack channel: incoming webhooks, Web API with Block Kit, request signatures (SPEC S6.5)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pytest

from relay_adapters.channels import ChannelEnvironment, InboundCallbackError, OutboundClient, SlackChannel
from relay_adapters.channels._http import OutboundOptions
from relay_adapters.channels.slack import parse_slack_action, slack_signature, verify_slack_signature
from relay_core.ports.channels import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.testing.contracts import ChannelContract
from relay_core.testing.pytest_plugin import LocalHttpServer

ENV = ChannelEnvironment(outbound=OutboundOptions(timeout=5.0, allowlist=("127.0.0.1/32",)))
TOKEN = "xoxb-1-test-token"
POSTED = {"ok": True, "channel": "C0123", "ts": "1780297200.000100", "message": {"text": "x"}}
UPDATED = {"ok": True, "channel": "C0123", "ts": "1780297200.000100", "text": "x"}
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def _bot_config(server: LocalHttpServer) -> dict[str, Any]:
    return {
        "mode": "bot_api",
        "bot_token": TOKEN,
        "channel_id": "C0123",
        "signing_secret": SIGNING_SECRET,
        "api_url": f"{server.url}/api",
    }


def _slack_api(server: LocalHttpServer) -> LocalHttpServer:
    server.respond(200, POSTED, path="/api/chat.postMessage")
    server.respond(200, UPDATED, path="/api/chat.update")
    return server


def _fields(status: str, severity: str = "critical") -> list[dict[str, str]]:
    return [
        {"type": "mrkdwn", "text": "*Team:*\nOperations"},
        {"type": "mrkdwn", "text": "*Category:*\ninfrastructure"},
        {"type": "mrkdwn", "text": f"*Status:*\n{status}"},
        {"type": "mrkdwn", "text": f"*Severity:*\n{severity}"},
        {"type": "mrkdwn", "text": "*Assignee:*\nalice"},
        {"type": "mrkdwn", "text": "*Source:*\nalertmanager"},
    ]


def _value(action: str) -> str:
    return json.dumps({"action": action, "alert_id": 42, "channel_id": 5}, separators=(",", ":"))


ACK_BUTTON = {
    "type": "button",
    "action_id": "relay_acknowledge",
    "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
    "style": "primary",
    "value": _value("acknowledge"),
}
RESOLVE_BUTTON = {
    "type": "button",
    "action_id": "relay_resolve",
    "text": {"type": "plain_text", "text": "Resolve", "emoji": True},
    "style": "danger",
    "value": _value("resolve"),
    "confirm": {
        "title": {"type": "plain_text", "text": "Resolve this alert?", "emoji": True},
        "text": {"type": "mrkdwn", "text": "*Disk is full* will be resolved."},
        "confirm": {"type": "plain_text", "text": "Resolve", "emoji": True},
        "deny": {"type": "plain_text", "text": "Cancel", "emoji": True},
        "style": "danger",
    },
}
CONTEXT = {
    "type": "context",
    "elements": [
        {"type": "mrkdwn", "text": "<https://relay.example.test/alerts/42|Open alert>"},
        {"type": "mrkdwn", "text": "<https://monitoring.example.test/alerts/1|Source event>"},
    ],
}


def _bot_body(status: str, color: str, buttons: list[dict[str, Any]], headline: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "fields": _fields(status)},
        {"type": "section", "text": {"type": "mrkdwn", "text": "/var is 97% full"}},
        CONTEXT,
    ]
    if buttons:
        blocks.append({"type": "actions", "block_id": "relay_actions", "elements": buttons})
    return {
        "channel": "C0123",
        "text": headline,
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Disk is full", "emoji": True}}],
        "attachments": [{"color": color, "blocks": blocks}],
    }


class TestSlackBotContract(ChannelContract):
    """SlackChannel (bot mode) passes ChannelContract against a local Web API."""

    channel_class = SlackChannel
    entry_point_name = "builtin"

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """A local stand-in for chat.postMessage and chat.update."""
        return _slack_api(local_http_server)

    def make_channel(self, receiver: Any) -> SlackChannel:
        return SlackChannel(env=ENV)

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return _bot_config(receiver)

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        request = receiver.last_request
        assert (request.method, request.path) == ("POST", "/api/chat.postMessage")
        assert request.header("Authorization") == f"Bearer {TOKEN}"
        assert request.header("Content-Type") == "application/json; charset=utf-8"
        body = request.json()
        expected = _bot_body(
            "firing", "#d9534f", [ACK_BUTTON, RESOLVE_BUTTON], "NOTIFICATION: [CRITICAL] Disk is full"
        )
        assert body == expected
        assert result.external_message_id == "1780297200.000100"
        assert result.external_channel_id == "C0123"

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        if kind == "retryable":
            receiver.respond(200, {"ok": False, "error": "ratelimited"}, path="/api/chat.postMessage")
        else:
            receiver.respond(200, {"ok": False, "error": "channel_not_found"}, path="/api/chat.postMessage")
        return True


class TestSlackWebhookContract(ChannelContract):
    """SlackChannel (webhook mode) passes ChannelContract against a local incoming webhook."""

    channel_class = SlackChannel

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """An incoming webhook answering 200 ok."""
        local_http_server.respond(200, "ok")
        return local_http_server

    def make_channel(self, receiver: Any) -> SlackChannel:
        return SlackChannel(env=ENV)

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return {"mode": "webhook", "webhook_url": f"{receiver.url}/services/T0/B0/x"}

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        body = receiver.last_request.json()
        assert body["text"] == "NOTIFICATION: [CRITICAL] Disk is full"
        assert body["blocks"][0] == {
            "type": "header",
            "text": {"type": "plain_text", "text": "Disk is full", "emoji": True},
        }
        assert body["blocks"][-1] == {
            "type": "actions",
            "block_id": "relay_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "relay_ack_link",
                    "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
                    "url": "https://relay.example.test/actions/ack.token",
                },
                {
                    "type": "button",
                    "action_id": "relay_resolve_link",
                    "text": {"type": "plain_text", "text": "Resolve", "emoji": True},
                    "url": "https://relay.example.test/actions/resolve.token",
                },
            ],
        }
        assert result.external_message_id is None

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.respond(500 if kind == "retryable" else 404, "no_service")
        return True


async def test_webhook_mode_requires_ok_body(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A 200 whose body is not ``ok`` is not a success."""
    local_http_server.respond(200, "invalid_blocks")
    config = {"mode": "webhook", "webhook_url": local_http_server.url}
    with pytest.raises(PermanentDeliveryError, match="instead of ok"):
        await SlackChannel().send(make_message("slack", config, http=http))


async def test_acknowledged_update_edits_the_anchor_with_chat_update(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """ACK calls chat.update on the anchor ts: amber, only Resolve left."""
    _slack_api(local_http_server)
    previous = DeliveryResult(
        provider="slack", external_message_id="1780297200.000100", external_channel_id="C0123"
    )
    message = make_message("slack", _bot_config(local_http_server), event_type="acknowledged", http=http)
    result = await SlackChannel().update(message, previous)
    request = local_http_server.last_request
    assert request.path == "/api/chat.update"
    body = request.json()
    expected = _bot_body("acknowledged", "#f0ad4e", [RESOLVE_BUTTON], "ACKNOWLEDGED: [CRITICAL] Disk is full")
    assert body == {**expected, "ts": "1780297200.000100"}
    assert len(local_http_server.requests) == 1
    assert result.external_message_id == "1780297200.000100"
    assert result.provider_status == "updated"


async def test_resolved_update_removes_the_buttons_and_turns_green(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Resolve edits the anchor without an actions block and with the green bar."""
    _slack_api(local_http_server)
    previous = DeliveryResult(
        provider="slack", external_message_id="1780297200.000100", external_channel_id="C0123"
    )
    message = make_message("slack", _bot_config(local_http_server), event_type="resolved", http=http)
    await SlackChannel().update(message, previous)
    body = local_http_server.last_request.json()
    assert body["attachments"][0]["color"] == "#2e7d32"
    assert all(block["type"] != "actions" for block in body["attachments"][0]["blocks"])


async def test_reminder_is_a_broadcast_thread_reply_and_refreshes_the_anchor(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A reminder is a broadcast thread reply, then the anchor is edited; the anchor stays the record."""
    _slack_api(local_http_server)
    local_http_server.respond(200, {**POSTED, "ts": "1780297500.000200"}, path="/api/chat.postMessage")
    previous = DeliveryResult(
        provider="slack", external_message_id="1780297200.000100", external_channel_id="C0123"
    )
    message = make_message("slack", _bot_config(local_http_server), event_type="reminder", http=http)
    result = await SlackChannel().update(message, previous)
    reply, edit = local_http_server.requests
    assert reply.path == "/api/chat.postMessage"
    assert reply.json()["thread_ts"] == "1780297200.000100"
    assert reply.json()["reply_broadcast"] is True
    assert edit.path == "/api/chat.update"
    assert edit.json()["ts"] == "1780297200.000100"
    assert result.external_message_id == "1780297200.000100"
    assert result.provider_payload == {"reply_ts": "1780297500.000200", "anchor_edited": True}


async def test_failed_anchor_refresh_does_not_fail_the_reply(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """When the reply went out but the anchor edit fails, the delivery still succeeds (no duplicate reply)."""
    local_http_server.respond(200, POSTED, path="/api/chat.postMessage")
    local_http_server.respond(200, {"ok": False, "error": "message_not_found"}, path="/api/chat.update")
    previous = DeliveryResult(
        provider="slack", external_message_id="1780297200.000100", external_channel_id="C0123"
    )
    message = make_message("slack", _bot_config(local_http_server), event_type="escalation", http=http)
    result = await SlackChannel().update(message, previous)
    assert result.provider_payload["anchor_edited"] is False


async def test_http_429_honours_retry_after(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """An HTTP 429 from the Web API is retryable after Retry-After seconds."""
    local_http_server.respond(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "17"})
    with pytest.raises(RetryableDeliveryError) as raised:
        await SlackChannel().send(make_message("slack", _bot_config(local_http_server), http=http))
    assert raised.value.retry_after == 17


async def test_api_error_is_permanent_and_named(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """ok: false with an error other than rate limiting is permanent and names the error."""
    local_http_server.respond(200, {"ok": False, "error": "not_in_channel"})
    with pytest.raises(PermanentDeliveryError, match="not_in_channel"):
        await SlackChannel().send(make_message("slack", _bot_config(local_http_server), http=http))


async def test_message_text_is_escaped_and_limited(
    local_http_server: LocalHttpServer, make_message: Any, make_group: Any, http: OutboundClient
) -> None:
    """Slack control characters are escaped and the message section stays within 3000 characters."""
    _slack_api(local_http_server)
    group = make_group(title="<!channel> & friends", message="a < b & c > d " + "x" * 4000)
    await SlackChannel().send(make_message("slack", _bot_config(local_http_server), group=group, http=http))
    body = local_http_server.last_request.json()
    assert body["blocks"][0]["text"]["text"] == "<!channel> & friends"  # plain_text is not parsed
    section = body["attachments"][0]["blocks"][1]["text"]["text"]
    assert section.startswith("a &lt; b &amp; c &gt; d ")
    assert len(section) == 3000
    assert section.endswith("…")


@pytest.mark.parametrize(
    "config",
    [
        {"mode": "bot_api", "channel_id": "C1"},
        {"mode": "bot_api", "bot_token": "xoxp-user-token", "channel_id": "C1"},
        {"mode": "webhook"},
        {"mode": "socket"},
    ],
)
async def test_invalid_config_is_permanent(make_message: Any, config: dict[str, Any]) -> None:
    """Missing or malformed bot token, channel or webhook URL fails permanently."""
    with pytest.raises(PermanentDeliveryError, match="slack config is invalid"):
        await SlackChannel().send(make_message("slack", config))


# --- request signatures and actions ----------------------------------------------------------------

NOW = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"


def _signed_headers(timestamp: int, body: bytes = BODY, secret: str = SIGNING_SECRET) -> dict[str, str]:
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": slack_signature(secret, str(timestamp), body),
    }


def test_slack_signature_matches_slacks_documented_example() -> None:
    """The v0 signature reproduces the example of Slack's request-verification guide."""
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert (
        slack_signature(SIGNING_SECRET, "1531420618", body)
        == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_valid_signature_within_the_window_passes() -> None:
    """A correct signature 299 s old is accepted."""
    timestamp = int(NOW.timestamp()) - 299
    verify_slack_signature(_signed_headers(timestamp), BODY, SIGNING_SECRET, NOW)


def test_stale_request_is_rejected() -> None:
    """A correct signature 301 s old is rejected as stale_request."""
    timestamp = int(NOW.timestamp()) - 301
    with pytest.raises(InboundCallbackError) as raised:
        verify_slack_signature(_signed_headers(timestamp), BODY, SIGNING_SECRET, NOW)
    assert (raised.value.code, raised.value.status) == ("stale_request", 401)


def test_future_timestamps_are_stale_too() -> None:
    """The window is symmetric: 301 s in the future is stale."""
    timestamp = int(NOW.timestamp()) + 301
    with pytest.raises(InboundCallbackError, match="300 s"):
        verify_slack_signature(_signed_headers(timestamp), BODY, SIGNING_SECRET, NOW.timestamp())


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": str(int(NOW.timestamp())), "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": str(int(NOW.timestamp()))},
        {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=abc"},
        _signed_headers(int(NOW.timestamp()), secret="another-secret"),
    ],
)
def test_bad_signatures_are_rejected(headers: dict[str, str]) -> None:
    """A wrong, missing or unreadable signature is invalid_signature."""
    with pytest.raises(InboundCallbackError) as raised:
        verify_slack_signature(headers, BODY, SIGNING_SECRET, NOW)
    assert raised.value.code == "invalid_signature"


def test_tampered_body_is_rejected() -> None:
    """The signature covers the raw body."""
    headers = _signed_headers(int(NOW.timestamp()))
    with pytest.raises(InboundCallbackError, match="does not match"):
        verify_slack_signature(headers, BODY + b"x", SIGNING_SECRET, NOW)


def _payload(*actions: dict[str, Any], kind: str = "block_actions") -> dict[str, Any]:
    return {
        "type": kind,
        "user": {"id": "U123", "username": "alice"},
        "channel": {"id": "C0123"},
        "container": {"message_ts": "1780297200.000100"},
        "response_url": "https://hooks.slack.com/actions/T/1/x",
        "actions": list(actions),
    }


def test_parse_action_reads_the_button() -> None:
    """A Relay button click yields the action, ids and Slack user."""
    action = parse_slack_action(_payload({"action_id": "relay_acknowledge", "value": _value("acknowledge")}))
    assert (action.action, action.alert_id, action.channel_id, action.user_id) == (
        "acknowledge",
        42,
        5,
        "U123",
    )
    assert action.slack_channel_id == "C0123"
    assert action.message_ts == "1780297200.000100"


def test_parse_action_accepts_the_form_field_and_incidentrelay_ids() -> None:
    """The raw ``payload=`` form body and IncidentRelay's action ids are understood."""
    import urllib.parse

    raw = "payload=" + urllib.parse.quote(
        json.dumps(_payload({"action_id": "incidentrelay_resolve", "value": _value("resolve")}))
    )
    assert parse_slack_action(raw).action == "resolve"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (_payload(kind="view_submission"), "invalid_payload"),
        (_payload(), "invalid_action"),
        (
            _payload(
                {"action_id": "relay_acknowledge", "value": _value("acknowledge")},
                {"action_id": "relay_resolve", "value": _value("resolve")},
            ),
            "invalid_action",
        ),
        (_payload({"action_id": "other_app", "value": "{}"}), "invalid_action"),
        (_payload({"action_id": "relay_resolve", "value": _value("acknowledge")}), "invalid_action"),
        (_payload({"action_id": "relay_resolve", "value": "not json"}), "invalid_action"),
        ("not json", "invalid_payload"),
    ],
)
def test_parse_action_rejects_malformed_clicks(payload: Any, code: str) -> None:
    """Wrong type, not exactly one action, unknown ids or bad values are rejected with 400."""
    with pytest.raises(InboundCallbackError) as raised:
        parse_slack_action(payload)
    assert (raised.value.code, raised.value.status) == (code, 400)
