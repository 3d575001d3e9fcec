"""The mattermost channel: webhook and bot modes, attachments, signed button contexts (SPEC S6.4)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import pytest

from relay_adapters.channels import (
    ChannelEnvironment,
    InboundCallbackError,
    MattermostChannel,
    OutboundClient,
)
from relay_adapters.channels._http import OutboundOptions
from relay_adapters.channels.mattermost import (
    mattermost_callback_secret,
    sign_mattermost_context,
    verify_mattermost_action,
)
from relay_core.ports.channels import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.testing.contracts import ChannelContract
from relay_core.testing.pytest_plugin import LocalHttpServer

BASE_URL = "https://relay.example.test"
ENV = ChannelEnvironment(
    public_base_url=BASE_URL, outbound=OutboundOptions(timeout=5.0, allowlist=("127.0.0.1/32",))
)
TOKEN = "mm-bot-token-1"
SECRET = "mm-callback-secret"
POST = {"id": "p1abc", "channel_id": "ch42", "message": ""}
ACTION_URL = f"{BASE_URL}/api/integrations/mattermost/actions"


def _bot_config(server: LocalHttpServer) -> dict[str, Any]:
    return {
        "mode": "bot_api",
        "api_url": server.url,
        "bot_token": TOKEN,
        "channel_id": "ch42",
        "callback_secret": SECRET,
    }


def _mattermost_api(server: LocalHttpServer) -> LocalHttpServer:
    server.respond(201, POST, path="/api/v4/posts", method="POST")
    server.respond(200, POST, path="/api/v4/posts/p1abc", method="PUT")
    return server


def _signature(action: str) -> str:
    return hmac.new(SECRET.encode(), f"ir:mm:{action}:42:5".encode(), hashlib.sha256).hexdigest()


def _button(action: str) -> dict[str, Any]:
    ack = action == "acknowledge"
    return {
        "id": "ack42" if ack else "resolve42",
        "type": "button",
        "name": "Acknowledge" if ack else "Resolve",
        "style": "primary" if ack else "success",
        "integration": {
            "url": ACTION_URL,
            "context": {"alert_id": 42, "channel_id": 5, "action": action, "signature": _signature(action)},
        },
    }


def _fields(status: str) -> list[dict[str, Any]]:
    return [
        {"short": True, "title": "Team", "value": "Operations"},
        {"short": True, "title": "Category", "value": "infrastructure"},
        {"short": True, "title": "Status", "value": status},
        {"short": True, "title": "Severity", "value": "critical"},
        {"short": True, "title": "Assignee", "value": "alice"},
        {"short": True, "title": "Source", "value": "alertmanager"},
        {"short": True, "title": "Alert ID", "value": "42"},
        {"short": False, "title": "Open", "value": "[Open alert](https://relay.example.test/alerts/42)"},
        {
            "short": False,
            "title": "Source event",
            "value": "[Open source event](https://monitoring.example.test/alerts/1)",
        },
    ]


def _attachment(title: str, text: str, color: str, status: str, buttons: list[str]) -> dict[str, Any]:
    attachment: dict[str, Any] = {
        "fallback": "Disk is full",
        "color": color,
        "title": title,
        "title_link": "https://relay.example.test/alerts/42",
        "text": text,
        "fields": _fields(status),
    }
    if buttons:
        attachment["actions"] = [_button(action) for action in buttons]
    return attachment


class TestMattermostBotContract(ChannelContract):
    """MattermostChannel (bot mode) passes ChannelContract against a local REST API."""

    channel_class = MattermostChannel
    entry_point_name = "builtin"

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """A local stand-in for POST /api/v4/posts and PUT /api/v4/posts/{id}."""
        return _mattermost_api(local_http_server)

    def make_channel(self, receiver: Any) -> MattermostChannel:
        return MattermostChannel(env=ENV)

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return _bot_config(receiver)

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        request = receiver.last_request
        assert (request.method, request.path) == ("POST", "/api/v4/posts")
        assert request.header("Authorization") == f"Bearer {TOKEN}"
        assert request.json() == {
            "channel_id": "ch42",
            "message": "",
            "props": {
                "attachments": [
                    _attachment(
                        "Disk is full", "/var is 97% full", "#d9534f", "firing", ["acknowledge", "resolve"]
                    )
                ]
            },
        }
        assert result.external_message_id == "p1abc"
        assert result.external_channel_id == "ch42"

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.respond(
            503 if kind == "retryable" else 403,
            {"id": "api.context.permissions.app_error", "status_code": 403},
            path="/api/v4/posts",
            method="POST",
        )
        return True


class TestMattermostWebhookContract(ChannelContract):
    """MattermostChannel (webhook mode) passes ChannelContract against a local incoming webhook."""

    channel_class = MattermostChannel

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """An incoming webhook answering 200 ok."""
        local_http_server.respond(200, "ok")
        return local_http_server

    def make_channel(self, receiver: Any) -> MattermostChannel:
        return MattermostChannel(env=ENV)

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return {"webhook_url": f"{receiver.url}/hooks/abc", "channel": "alerts", "username": "relay"}

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        request = receiver.last_request
        assert (request.method, request.path) == ("POST", "/hooks/abc")
        assert request.json() == {
            "text": message.text,
            "attachments": [_attachment("Disk is full", "/var is 97% full", "#d9534f", "firing", [])],
            "channel": "alerts",
            "username": "relay",
        }

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.respond(502 if kind == "retryable" else 400, "Unable to parse incoming data")
        return True


async def test_acknowledged_edit_puts_the_full_post(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """ACK edits the anchor with PUT /api/v4/posts/{id}: amber, who acknowledged, only Resolve."""
    _mattermost_api(local_http_server)
    previous = DeliveryResult(provider="mattermost", external_message_id="p1abc", external_channel_id="ch42")
    message = make_message("mattermost", _bot_config(local_http_server), event_type="acknowledged", http=http)
    result = await MattermostChannel(env=ENV).update(message, previous)
    request = local_http_server.last_request
    assert (request.method, request.path) == ("PUT", "/api/v4/posts/p1abc")
    assert request.json() == {
        "id": "p1abc",
        "channel_id": "ch42",
        "message": "",
        "props": {
            "attachments": [
                _attachment(
                    "ACKNOWLEDGED: Disk is full",
                    "The alert was acknowledged by bob.\n\n/var is 97% full",
                    "#f0ad4e",
                    "acknowledged",
                    ["resolve"],
                )
            ]
        },
    }
    assert len(local_http_server.requests) == 1
    assert (result.external_message_id, result.provider_status) == ("p1abc", "updated")


async def test_resolved_edit_has_no_buttons(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Resolve edits the anchor green, with the resolved sentence and no buttons."""
    _mattermost_api(local_http_server)
    previous = DeliveryResult(provider="mattermost", external_message_id="p1abc", external_channel_id="ch42")
    message = make_message("mattermost", _bot_config(local_http_server), event_type="resolved", http=http)
    await MattermostChannel(env=ENV).update(message, previous)
    attachment = local_http_server.last_request.json()["props"]["attachments"][0]
    assert attachment["title"] == "RESOLVED: Disk is full"
    assert attachment["text"] == "The alert has been resolved.\n\n/var is 97% full"
    assert attachment["color"] == "#2e7d32"
    assert "actions" not in attachment


async def test_reminder_replies_to_the_anchor_and_refreshes_it(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A reminder is a reply (root_id) and the anchor is edited; the anchor id stays the record."""
    local_http_server.respond(201, {**POST, "id": "reply1"}, path="/api/v4/posts", method="POST")
    local_http_server.respond(200, POST, path="/api/v4/posts/p1abc", method="PUT")
    previous = DeliveryResult(provider="mattermost", external_message_id="p1abc", external_channel_id="ch42")
    message = make_message("mattermost", _bot_config(local_http_server), event_type="reminder", http=http)
    result = await MattermostChannel(env=ENV).update(message, previous)
    reply, edit = local_http_server.requests
    assert reply.json()["root_id"] == "p1abc"
    attachment = reply.json()["props"]["attachments"][0]
    assert attachment["title"] == "REMINDER: Disk is full"
    assert attachment["text"] == "This alert is still not acknowledged.\n\n/var is 97% full"
    assert (edit.method, edit.path) == ("PUT", "/api/v4/posts/p1abc")
    assert result.external_message_id == "p1abc"
    assert result.provider_payload == {"reply_id": "reply1", "anchor_edited": True}


@pytest.mark.parametrize(
    ("severity", "color"),
    [
        ("critical", "#d9534f"),
        ("high", "#d9534f"),
        ("medium", "#f0ad4e"),
        ("warning", "#f0ad4e"),
        ("low", "#4a90e2"),
        ("info", "#4a90e2"),
        ("odd", "#4a90e2"),
    ],
)
async def test_colour_follows_severity(
    local_http_server: LocalHttpServer,
    make_message: Any,
    make_group: Any,
    http: OutboundClient,
    severity: str,
    color: str,
) -> None:
    """Firing alerts are coloured by severity."""
    local_http_server.respond(200, "ok")
    config = {"webhook_url": local_http_server.url}
    await MattermostChannel().send(
        make_message("mattermost", config, group=make_group(severity=severity), http=http)
    )
    assert local_http_server.last_request.json()["attachments"][0]["color"] == color


async def test_escalation_wording(
    local_http_server: LocalHttpServer, make_message: Any, make_group: Any, http: OutboundClient
) -> None:
    """An escalation is titled ESCALATION: and says the alert was escalated; empty values show ``-``."""
    local_http_server.respond(200, "ok")
    group = make_group(assignee=None, category=None, message="")
    message = make_message(
        "mattermost", {"webhook_url": local_http_server.url}, event_type="escalation", group=group, http=http
    )
    await MattermostChannel().send(message)
    attachment = local_http_server.last_request.json()["attachments"][0]
    assert attachment["title"] == "ESCALATION: Disk is full"
    assert attachment["text"] == "The alert was escalated."
    assert {"short": True, "title": "Assignee", "value": "-"} in attachment["fields"]


async def test_buttons_need_a_secret_and_public_url(
    local_http_server: LocalHttpServer, make_message: Any, make_group: Any, http: OutboundClient
) -> None:
    """Without any callback secret the bot post fails permanently instead of sending unusable buttons."""
    _mattermost_api(local_http_server)
    config = {k: v for k, v in _bot_config(local_http_server).items() if k != "callback_secret"}
    with pytest.raises(PermanentDeliveryError, match="callback secret"):
        await MattermostChannel(env=ENV).send(make_message("mattermost", config, http=http))
    assert local_http_server.requests == []


async def test_action_url_is_derived_from_the_alert_url(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Without server.public_base_url in the environment the buttons point at the alert URL's origin."""
    _mattermost_api(local_http_server)
    await MattermostChannel().send(make_message("mattermost", _bot_config(local_http_server), http=http))
    attachment = local_http_server.last_request.json()["props"]["attachments"][0]
    assert attachment["actions"][0]["integration"]["url"] == ACTION_URL


async def test_server_error_is_retryable(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A 500 from the REST API is retryable."""
    local_http_server.respond(500, {"message": "boom"})
    with pytest.raises(RetryableDeliveryError):
        await MattermostChannel(env=ENV).send(
            make_message("mattermost", _bot_config(local_http_server), http=http)
        )


@pytest.mark.parametrize(
    "config",
    [{}, {"mode": "bot_api", "api_url": "http://x.test", "channel_id": "c"}, {"webhook_url": "not a url"}],
)
async def test_invalid_config_is_permanent(make_message: Any, config: dict[str, Any]) -> None:
    """A missing webhook URL, bot token or a malformed URL fails permanently."""
    with pytest.raises(PermanentDeliveryError, match="mattermost config is invalid"):
        await MattermostChannel().send(make_message("mattermost", config))


# --- signed contexts -----------------------------------------------------------------------------


def _click(context: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": "mmuser1", "post_id": "p1abc", "channel_id": "ch42", "context": context}


def test_signature_is_incidentrelays_format() -> None:
    """The signature is hex HMAC-SHA256 of ir:mm:<action>:<alert_id>:<channel_id>."""
    assert sign_mattermost_context(SECRET, "acknowledge", 42, 5) == _signature("acknowledge")


def test_valid_click_is_accepted() -> None:
    """A click with a correct signature yields the action, ids and Mattermost user."""
    context = {"alert_id": 42, "channel_id": 5, "action": "resolve", "signature": _signature("resolve")}
    action = verify_mattermost_action(_click(context), SECRET)
    assert (action.action, action.alert_id, action.channel_id, action.user_id) == (
        "resolve",
        42,
        5,
        "mmuser1",
    )


@pytest.mark.parametrize(
    "context",
    [
        {"alert_id": 42, "channel_id": 5, "action": "resolve", "signature": _signature("acknowledge")},
        {"alert_id": 43, "channel_id": 5, "action": "resolve", "signature": _signature("resolve")},
        {"alert_id": 42, "channel_id": 6, "action": "resolve", "signature": _signature("resolve")},
    ],
)
def test_tampered_click_is_rejected(context: dict[str, Any]) -> None:
    """Changing the action, alert or channel breaks the signature: 403 invalid_signature."""
    with pytest.raises(InboundCallbackError) as raised:
        verify_mattermost_action(_click(context), SECRET)
    assert (raised.value.code, raised.value.status) == ("invalid_signature", 403)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"context": "x"},
        _click({"alert_id": "x", "channel_id": 5, "action": "resolve", "signature": "s"}),
        _click({"alert_id": 42, "channel_id": 5, "action": "delete", "signature": "s"}),
        _click({"alert_id": 42, "channel_id": 5, "action": "resolve"}),
    ],
)
def test_malformed_click_is_invalid_payload(body: Any) -> None:
    """A body without a complete context is 400 invalid_payload."""
    with pytest.raises(InboundCallbackError) as raised:
        verify_mattermost_action(body, SECRET)
    assert (raised.value.code, raised.value.status) == ("invalid_payload", 400)


def test_callback_secret_resolution_order() -> None:
    """Channel secret, then mattermost.action_secret, then a key derived from secret_key."""
    env = ChannelEnvironment(mattermost_action_secret="global", secret_key="main-key")
    assert mattermost_callback_secret({"callback_secret": "own"}, env) == "own"
    assert mattermost_callback_secret({}, env) == "global"
    derived = mattermost_callback_secret({}, ChannelEnvironment(secret_key="main-key"))
    assert derived is not None
    assert derived not in ("main-key", "")
    assert derived == mattermost_callback_secret({}, ChannelEnvironment(secret_key="main-key"))
    assert mattermost_callback_secret({}, ChannelEnvironment()) is None
