"""The telegram channel: sendMessage with a signed inline keyboard, edits, replies (SPEC S6.6)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import pytest

from relay_adapters.channels import ChannelEnvironment, InboundCallbackError, OutboundClient, TelegramChannel
from relay_adapters.channels._http import OutboundOptions
from relay_adapters.channels.telegram import (
    callback_data,
    parse_callback_data,
    telegram_signing_key,
    verify_webhook_secret,
)
from relay_core.ports.channels import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.testing.contracts import ChannelContract
from relay_core.testing.pytest_plugin import LocalHttpServer

SECRET_KEY = "main-secret-key-for-tests"
ENV = ChannelEnvironment(
    secret_key=SECRET_KEY, outbound=OutboundOptions(timeout=5.0, allowlist=("127.0.0.1/32",))
)
TOKEN = "123456:AAE-test_token"
SENT = {"ok": True, "result": {"message_id": 777, "chat": {"id": -100123, "type": "supergroup"}, "text": "x"}}
EDITED = {"ok": True, "result": {"message_id": 777, "chat": {"id": -100123}}}


def _config(server: LocalHttpServer, **extra: Any) -> dict[str, Any]:
    return {"bot_token": TOKEN, "chat_id": "-100123", "api_base": server.url, **extra}


def _bot_api(server: LocalHttpServer) -> LocalHttpServer:
    server.respond(200, SENT, path=f"/bot{TOKEN}/sendMessage")
    server.respond(200, EDITED, path=f"/bot{TOKEN}/editMessageText")
    return server


def _sig(code: str, alert_id: int = 42, channel_id: int = 5) -> str:
    message = f"ir:{code}:{alert_id}:{channel_id}".encode()
    return hmac.new(SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:12]


HTML = (
    "<b>NOTIFICATION: [CRITICAL] Disk is full</b>\n"
    "Team: Operations\n"
    "Category: infrastructure\n"
    "Status: firing\n"
    "Severity: critical\n"
    "Assignee: alice\n"
    "Source: alertmanager\n"
    "Message: /var is 97% full\n"
    "Alert URL: https://relay.example.test/alerts/42\n"
    "Source event: https://monitoring.example.test/alerts/1"
)


class TestTelegramContract(ChannelContract):
    """TelegramChannel passes ChannelContract against a local Bot API."""

    channel_class = TelegramChannel
    entry_point_name = "builtin"

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """A local stand-in for sendMessage and editMessageText."""
        return _bot_api(local_http_server)

    def make_channel(self, receiver: Any) -> TelegramChannel:
        return TelegramChannel(env=ENV)

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return _config(receiver, webhook_secret="hook-secret")

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        request = receiver.last_request
        assert (request.method, request.path) == ("POST", f"/bot{TOKEN}/sendMessage")
        assert request.json() == {
            "chat_id": "-100123",
            "text": HTML,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            "reply_markup": {
                "inline_keyboard": [
                    [
                        {"text": "Acknowledge", "callback_data": f"ir:ack:42:5:{_sig('ack')}"},
                        {"text": "Resolve", "callback_data": f"ir:resolve:42:5:{_sig('resolve')}"},
                    ],
                    [{"text": "Open", "url": "https://relay.example.test/alerts/42"}],
                ]
            },
        }
        assert (result.external_message_id, result.external_channel_id) == ("777", "-100123")

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        if kind == "retryable":
            answer = {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests",
                "parameters": {"retry_after": 3},
            }
            receiver.respond(429, answer, path=f"/bot{TOKEN}/sendMessage")
        else:
            answer = {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was kicked from the group chat",
            }
            receiver.respond(403, answer, path=f"/bot{TOKEN}/sendMessage")
        return True


async def test_acknowledged_edit_keeps_only_resolve(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """ACK edits the anchor with editMessageText and leaves only the Resolve button."""
    _bot_api(local_http_server)
    previous = DeliveryResult(provider="telegram", external_message_id="777", external_channel_id="-100123")
    message = make_message("telegram", _config(local_http_server), event_type="acknowledged", http=http)
    result = await TelegramChannel(env=ENV).update(message, previous)
    request = local_http_server.last_request
    assert request.path == f"/bot{TOKEN}/editMessageText"
    body = request.json()
    assert (body["chat_id"], body["message_id"]) == ("-100123", 777)
    assert body["text"].startswith("<b>ACKNOWLEDGED: [CRITICAL] Disk is full</b>\n")
    assert body["reply_markup"]["inline_keyboard"][0] == [
        {"text": "Resolve", "callback_data": f"ir:resolve:42:5:{_sig('resolve')}"}
    ]
    assert len(local_http_server.requests) == 1
    assert (result.external_message_id, result.provider_status) == ("777", "updated")


async def test_resolved_edit_keeps_only_the_open_link(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Resolve removes the action buttons."""
    _bot_api(local_http_server)
    previous = DeliveryResult(provider="telegram", external_message_id="777", external_channel_id="-100123")
    message = make_message("telegram", _config(local_http_server), event_type="resolved", http=http)
    await TelegramChannel(env=ENV).update(message, previous)
    keyboard = local_http_server.last_request.json()["reply_markup"]["inline_keyboard"]
    assert keyboard == [[{"text": "Open", "url": "https://relay.example.test/alerts/42"}]]


async def test_not_modified_counts_as_success(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Telegram's 400 "message is not modified" on an edit is a success."""
    answer = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message",
    }
    local_http_server.respond(400, answer)
    previous = DeliveryResult(provider="telegram", external_message_id="777", external_channel_id="-100123")
    message = make_message("telegram", _config(local_http_server), event_type="resolved", http=http)
    result = await TelegramChannel(env=ENV).update(message, previous)
    assert result.external_message_id == "777"


async def test_reminder_replies_to_the_anchor(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A reminder is sent with reply_parameters and the anchor is refreshed; the anchor stays the record."""
    local_http_server.respond(
        200,
        {"ok": True, "result": {"message_id": 778, "chat": {"id": -100123}}},
        path=f"/bot{TOKEN}/sendMessage",
    )
    local_http_server.respond(200, EDITED, path=f"/bot{TOKEN}/editMessageText")
    previous = DeliveryResult(provider="telegram", external_message_id="777", external_channel_id="-100123")
    message = make_message(
        "telegram", _config(local_http_server, message_thread_id=9), event_type="reminder", http=http
    )
    result = await TelegramChannel(env=ENV).update(message, previous)
    reply, edit = local_http_server.requests
    assert reply.json()["reply_parameters"] == {"message_id": 777, "allow_sending_without_reply": True}
    assert reply.json()["message_thread_id"] == 9
    assert edit.path == f"/bot{TOKEN}/editMessageText"
    assert result.external_message_id == "777"
    assert result.provider_payload == {"reply_message_id": "778", "anchor_edited": True}


async def test_rate_limit_honours_retry_after(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A 429 carries parameters.retry_after into the retryable error."""
    answer = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 35",
        "parameters": {"retry_after": 35},
    }
    local_http_server.respond(429, answer)
    with pytest.raises(RetryableDeliveryError) as raised:
        await TelegramChannel(env=ENV).send(make_message("telegram", _config(local_http_server), http=http))
    assert raised.value.retry_after == 35


async def test_errors_never_contain_the_bot_token(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A failure message names the method and Telegram's description, never the token-bearing URL."""
    local_http_server.respond(
        400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    )
    with pytest.raises(PermanentDeliveryError) as raised:
        await TelegramChannel(env=ENV).send(make_message("telegram", _config(local_http_server), http=http))
    assert raised.value.message == "telegram sendMessage failed (400): Bad Request: chat not found"
    assert TOKEN not in raised.value.message


async def test_text_is_escaped_and_capped(
    local_http_server: LocalHttpServer, make_message: Any, make_group: Any, http: OutboundClient
) -> None:
    """HTML special characters are escaped and the visible text stays within 4096 characters."""
    _bot_api(local_http_server)
    group = make_group(title="<script> & co", message="x" * 5000)
    await TelegramChannel(env=ENV).send(
        make_message("telegram", _config(local_http_server), group=group, http=http)
    )
    text = local_http_server.last_request.json()["text"]
    assert text.startswith("<b>NOTIFICATION: [CRITICAL] &lt;script&gt; &amp; co</b>\n")
    visible = (
        text.replace("<b>", "")
        .replace("</b>", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )
    assert len(visible) == 4096
    assert visible.endswith("…")


async def test_local_alert_urls_get_no_open_button(
    local_http_server: LocalHttpServer, make_message: Any, make_group: Any, http: OutboundClient
) -> None:
    """Telegram refuses localhost/IP URLs in buttons, so no Open button is sent for them."""
    _bot_api(local_http_server)
    group = make_group(alert_url="http://127.0.0.1:8080/alerts/42")
    await TelegramChannel(env=ENV).send(
        make_message("telegram", _config(local_http_server), group=group, http=http)
    )
    keyboard = local_http_server.last_request.json()["reply_markup"]["inline_keyboard"]
    assert all("url" not in button for row in keyboard for button in row)


async def test_buttons_need_a_signing_key(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Without secret_key or callback_secret there is no way to sign buttons: permanent."""
    _bot_api(local_http_server)
    with pytest.raises(PermanentDeliveryError, match="secret_key"):
        await TelegramChannel().send(make_message("telegram", _config(local_http_server), http=http))
    assert local_http_server.requests == []


@pytest.mark.parametrize(
    "config",
    [{"chat_id": "1"}, {"bot_token": "no-colon", "chat_id": "1"}, {"bot_token": TOKEN}],
)
async def test_invalid_config_is_permanent(make_message: Any, config: dict[str, Any]) -> None:
    """A missing or malformed bot token, or no chat, fails permanently."""
    with pytest.raises(PermanentDeliveryError, match="telegram config is invalid"):
        await TelegramChannel(env=ENV).send(make_message("telegram", config))


# --- callback data and the webhook secret --------------------------------------------------------


def test_callback_data_format_and_length() -> None:
    """callback_data is ir:<code>:<alert>:<channel>:<12 hex> and fits 64 bytes even for huge ids."""
    assert callback_data(SECRET_KEY, "acknowledge", 42, 5) == f"ir:ack:42:5:{_sig('ack')}"
    largest = callback_data(SECRET_KEY, "resolve", 9_223_372_036_854_775_807, 2_147_483_647)
    assert len(largest.encode()) <= 64


def test_parse_callback_data_round_trip() -> None:
    """Signed data parses back into the action and ids."""
    parsed = parse_callback_data(callback_data(SECRET_KEY, "resolve", 42, 5), SECRET_KEY)
    assert (parsed.code, parsed.action, parsed.alert_id, parsed.channel_id) == ("resolve", "resolve", 42, 5)


@pytest.mark.parametrize(
    "data",
    [
        f"ir:ack:43:5:{_sig('ack')}",
        f"ir:resolve:42:5:{_sig('ack')}",
        f"ir:ack:42:5:{_sig('ack')[:-1]}0",
    ],
)
def test_tampered_callback_data_is_rejected(data: str) -> None:
    """Any change to code, ids or signature fails with 403 invalid_signature."""
    with pytest.raises(InboundCallbackError) as raised:
        parse_callback_data(data, SECRET_KEY)
    assert (raised.value.code, raised.value.status) == ("invalid_signature", 403)


@pytest.mark.parametrize("data", ["", "hello", "ir:ack:x:5:abc", "ir:delete:42:5:abc", "xx:ack:42:5:abc"])
def test_foreign_callback_data_is_invalid_payload(data: str) -> None:
    """Data that is not Relay's is 400 invalid_payload."""
    with pytest.raises(InboundCallbackError) as raised:
        parse_callback_data(data, SECRET_KEY)
    assert raised.value.code == "invalid_payload"


def test_webhook_secret_token() -> None:
    """The X-Telegram-Bot-Api-Secret-Token header must equal the channel's webhook_secret."""
    verify_webhook_secret({"x-telegram-bot-api-secret-token": "hook-secret"}, "hook-secret")
    for headers, secret in (
        ({}, "hook-secret"),
        ({"X-Telegram-Bot-Api-Secret-Token": "nope"}, "hook-secret"),
        ({}, None),
    ):
        with pytest.raises(InboundCallbackError) as raised:
            verify_webhook_secret(headers, secret)
        assert raised.value.status == 401


def test_any_candidate_key_verifies() -> None:
    """The receiver may offer secret_key and the callback secret; a match with either is accepted."""
    data = callback_data("channel-callback-secret", "acknowledge", 42, 5)
    assert parse_callback_data(data, [SECRET_KEY, None, "channel-callback-secret"]).action == "acknowledge"
    with pytest.raises(InboundCallbackError):
        parse_callback_data(data, [SECRET_KEY, None])


def test_signing_key_prefers_the_main_secret_key() -> None:
    """secret_key signs; the channel's callback secret is the fallback."""
    assert telegram_signing_key({"callback_secret": "cb"}, ENV) == SECRET_KEY
    assert telegram_signing_key({"callback_secret": "cb"}, ChannelEnvironment()) == "cb"
    assert telegram_signing_key({}, ChannelEnvironment()) is None
