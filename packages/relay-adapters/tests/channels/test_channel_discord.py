"""The discord channel: webhook embeds, ``wait=true`` ids and PATCH edits (SPEC S6.7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from relay_adapters.channels import ChannelEnvironment, DiscordChannel, OutboundClient
from relay_adapters.channels._http import OutboundOptions
from relay_core.ports.channels import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.testing.contracts import ChannelContract
from relay_core.testing.pytest_plugin import LocalHttpServer

ENV = ChannelEnvironment(outbound=OutboundOptions(timeout=5.0, allowlist=("127.0.0.1/32",)))
HOOK_PATH = "/api/webhooks/1234/tok-en"
POSTED = {"id": "1111222233334444", "channel_id": "999", "type": 0, "content": "x"}


def _config(server: LocalHttpServer, query: str = "") -> dict[str, Any]:
    return {"webhook_url": f"{server.url}{HOOK_PATH}{query}"}


def _discord(server: LocalHttpServer) -> LocalHttpServer:
    server.respond(200, POSTED, path=HOOK_PATH, method="POST")
    server.respond(200, POSTED, path=f"{HOOK_PATH}/messages/1111222233334444", method="PATCH")
    return server


FIELDS = [
    {"name": "Status", "value": "firing", "inline": True},
    {"name": "Severity", "value": "critical", "inline": True},
    {"name": "Team", "value": "Operations", "inline": True},
    {"name": "Category", "value": "infrastructure", "inline": True},
    {"name": "Assignee", "value": "alice", "inline": True},
]


class TestDiscordContract(ChannelContract):
    """DiscordChannel passes ChannelContract against a local webhook endpoint."""

    channel_class = DiscordChannel
    entry_point_name = "builtin"

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """A local stand-in for execute (POST) and edit (PATCH) webhook message."""
        return _discord(local_http_server)

    def make_channel(self, receiver: Any) -> DiscordChannel:
        return DiscordChannel(env=ENV)

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return _config(receiver)

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        request = receiver.last_request
        assert (request.method, request.path, request.query) == ("POST", HOOK_PATH, {"wait": ["true"]})
        assert request.json() == {
            "content": "NOTIFICATION: [CRITICAL] Disk is full",
            "embeds": [
                {
                    "title": "Disk is full",
                    "description": (
                        "/var is 97% full\n\n"
                        "[Acknowledge](https://relay.example.test/actions/ack.token) · "
                        "[Resolve](https://relay.example.test/actions/resolve.token) · "
                        "[Source event](https://monitoring.example.test/alerts/1)"
                    ),
                    "url": "https://relay.example.test/alerts/42",
                    "color": 0x992D22,
                    "fields": FIELDS,
                    "timestamp": "2026-06-01T07:00:00+00:00",
                }
            ],
            "allowed_mentions": {"parse": []},
        }
        assert (result.external_message_id, result.external_channel_id) == ("1111222233334444", "999")

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        if kind == "retryable":
            answer = {"message": "You are being rate limited.", "retry_after": 0.25, "global": False}
            receiver.respond(429, answer, path=HOOK_PATH, method="POST")
        else:
            receiver.respond(
                404, {"message": "Unknown Webhook", "code": 10015}, path=HOOK_PATH, method="POST"
            )
        return True


async def test_acknowledged_edit_patches_the_message(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """ACK PATCHes /messages/{id} with the amber embed and only the Resolve link."""
    _discord(local_http_server)
    previous = DeliveryResult(
        provider="discord", external_message_id="1111222233334444", external_channel_id="999"
    )
    message = make_message("discord", _config(local_http_server), event_type="acknowledged", http=http)
    result = await DiscordChannel().update(message, previous)
    request = local_http_server.last_request
    assert (request.method, request.path) == ("PATCH", f"{HOOK_PATH}/messages/1111222233334444")
    embed = request.json()["embeds"][0]
    assert embed["title"] == "ACKNOWLEDGED: Disk is full"
    assert embed["color"] == 0xF0AD4E
    assert "[Acknowledge]" not in embed["description"]
    assert "[Resolve](https://relay.example.test/actions/res.tok)" in embed["description"]
    assert (result.external_message_id, result.provider_status) == ("1111222233334444", "updated")


async def test_resolved_edit_is_green(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Resolve turns the embed green."""
    _discord(local_http_server)
    previous = DeliveryResult(provider="discord", external_message_id="1111222233334444")
    message = make_message("discord", _config(local_http_server), event_type="resolved", http=http)
    await DiscordChannel().update(message, previous)
    assert local_http_server.last_request.json()["embeds"][0]["color"] == 0x2ECC71


async def test_thread_id_is_kept_for_execute_and_edit(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A thread_id in the webhook URL is sent on execute and edit; wait=true only on execute."""
    _discord(local_http_server)
    config = _config(local_http_server, "?thread_id=55")
    sent = await DiscordChannel().send(make_message("discord", config, http=http))
    await DiscordChannel().update(make_message("discord", config, event_type="resolved", http=http), sent)
    execute, edit = local_http_server.requests
    assert execute.query == {"thread_id": ["55"], "wait": ["true"]}
    assert edit.query == {"thread_id": ["55"]}


async def test_reminder_posts_and_refreshes_the_anchor(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A reminder is a new message and the anchor is edited; the record keeps the anchor id."""
    _discord(local_http_server)
    previous = DeliveryResult(
        provider="discord", external_message_id="1111222233334444", external_channel_id="999"
    )
    message = make_message("discord", _config(local_http_server), event_type="reminder", http=http)
    result = await DiscordChannel().update(message, previous)
    post, patch = local_http_server.requests
    assert post.method == "POST"
    assert post.json()["embeds"][0]["title"] == "REMINDER: Disk is full"
    assert patch.method == "PATCH"
    assert result.external_message_id == "1111222233334444"


@pytest.mark.parametrize(
    ("severity", "color"),
    [("critical", 0x992D22), ("high", 0x992D22), ("warning", 0x95A5A6), ("info", 0x95A5A6)],
)
async def test_colour_by_severity(
    local_http_server: LocalHttpServer,
    make_message: Any,
    make_group: Any,
    http: OutboundClient,
    severity: str,
    color: int,
) -> None:
    """Firing embeds are dark red for critical/high and grey otherwise."""
    _discord(local_http_server)
    message = make_message(
        "discord", _config(local_http_server), group=make_group(severity=severity), http=http
    )
    await DiscordChannel().send(message)
    assert local_http_server.last_request.json()["embeds"][0]["color"] == color


async def test_limits_are_respected(
    local_http_server: LocalHttpServer, make_message: Any, make_group: Any, http: OutboundClient
) -> None:
    """Content ≤ 2000, title ≤ 256 and description ≤ 4096 characters, links kept."""
    _discord(local_http_server)
    group = make_group(title="T" * 3000, message="m" * 9000)
    await DiscordChannel().send(make_message("discord", _config(local_http_server), group=group, http=http))
    body = local_http_server.last_request.json()
    embed = body["embeds"][0]
    assert len(body["content"]) == 2000
    assert len(embed["title"]) == 256
    assert len(embed["description"]) <= 4096
    assert embed["description"].endswith("[Source event](https://monitoring.example.test/alerts/1)")


async def test_rate_limit_uses_the_float_retry_after(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A 429 body's retry_after (float seconds) becomes the retry delay."""
    local_http_server.respond(
        429, {"message": "You are being rate limited.", "retry_after": 1.5, "global": False}
    )
    with pytest.raises(RetryableDeliveryError) as raised:
        await DiscordChannel().send(make_message("discord", _config(local_http_server), http=http))
    assert raised.value.retry_after == 1.5


async def test_unknown_webhook_is_permanent(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """404 Unknown Webhook fails permanently."""
    local_http_server.respond(404, {"message": "Unknown Webhook", "code": 10015})
    with pytest.raises(PermanentDeliveryError, match="HTTP 404"):
        await DiscordChannel().send(make_message("discord", _config(local_http_server), http=http))


async def test_invalid_config_is_permanent(make_message: Any) -> None:
    """Without a webhook URL the channel fails permanently."""
    with pytest.raises(PermanentDeliveryError, match="discord config is invalid"):
        await DiscordChannel().send(make_message("discord", {}))
