"""The example_ntfy channel: the contract suite plus the exact ntfy request."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import pytest

from relay_channel_example import NtfyChannel
from relay_core.ports.channels import (
    ActionLinks,
    ChannelRef,
    DeliveryResult,
    GroupView,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
    render_plain_text,
)
from relay_core.testing.contracts import ChannelContract
from relay_core.testing.fakes import FakeClock
from relay_core.testing.pytest_plugin import LocalHttpServer

NTFY_ANSWER = {"id": "hwQ2YpKdmg", "time": 1780297200, "event": "message", "topic": "relay-ops"}


class TestNtfyChannelContract(ChannelContract):
    """NtfyChannel passes ChannelContract against a local ntfy stand-in."""

    channel_class = NtfyChannel
    entry_point_name = "example_ntfy"

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """A local server answering like ntfy's publish endpoint."""
        local_http_server.respond(200, NTFY_ANSWER)
        return local_http_server

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return {"server_url": receiver.url, "topic": "relay-ops", "token": "tk_abc123"}

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        request = receiver.last_request
        assert (request.method, request.path) == ("POST", "/relay-ops")
        assert request.text == message.text
        assert request.header("Title") == "NOTIFICATION: [CRITICAL] Disk is full"
        assert request.header("Priority") == "5"
        assert request.header("Tags") == "critical,notification"
        assert request.header("Click") == "https://relay.example.test/alerts/42"
        assert request.header("Actions") == (
            "view, Acknowledge, https://relay.example.test/actions/ack.token, clear=true; "
            "view, Resolve, https://relay.example.test/actions/resolve.token, clear=true"
        )
        assert request.header("Authorization") == "Bearer tk_abc123"
        assert result == DeliveryResult(
            provider="example_ntfy",
            external_message_id="hwQ2YpKdmg",
            external_channel_id="relay-ops",
            provider_status="sent",
            provider_payload=NTFY_ANSWER,
        )

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.respond(503 if kind == "retryable" else 403, {"code": 40301, "error": "forbidden"})
        return True


def _group(**changes: Any) -> GroupView:
    values: dict[str, Any] = {
        "id": 7,
        "title": "Disk is full",
        "severity": "critical",
        "status": "firing",
        "team_name": "Operations",
        "alert_url": "https://relay.example.test/alerts/7",
    }
    values.update(changes)
    return GroupView(**values)


def _message(
    server_url: str,
    *,
    group: GroupView | None = None,
    links: ActionLinks | None = None,
    http: Any = None,
    **config: Any,
) -> OutboundMessage:
    group = group or _group()
    return OutboundMessage(
        event_type="notification",
        intent_id=1,
        idempotency_key="k1",
        channel=ChannelRef(
            id=1,
            name="push",
            type="example_ntfy",
            config={"server_url": server_url, "topic": "ops", **config},
        ),
        group=group,
        text=render_plain_text("notification", group),
        action_links=links or ActionLinks(),
        http=http,
        clock=FakeClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC)),
    )


def _send(message: OutboundMessage) -> DeliveryResult:
    return asyncio.run(NtfyChannel().send(message))


@pytest.mark.parametrize(
    ("severity", "priority"),
    [
        ("critical", "5"),
        ("high", "4"),
        ("medium", "3"),
        ("warning", "3"),
        ("low", "2"),
        ("info", "1"),
        ("odd", "3"),
    ],
)
def test_priority_follows_severity(local_http_server: LocalHttpServer, severity: str, priority: str) -> None:
    """Priority is 5/4/3/3/2/1 by severity and ntfy's default 3 otherwise."""
    _send(_message(local_http_server.url, group=_group(severity=severity)))
    assert local_http_server.last_request.header("Priority") == priority


def test_no_token_no_authorization_and_no_links_no_actions(local_http_server: LocalHttpServer) -> None:
    """Without a token or action links neither Authorization nor Actions is sent."""
    _send(_message(local_http_server.url, group=_group(alert_url=None)))
    request = local_http_server.last_request
    assert request.header("Authorization") is None
    assert request.header("Actions") is None
    assert request.header("Click") is None


def test_only_offered_links_become_actions(local_http_server: LocalHttpServer) -> None:
    """An acknowledged group offers only Resolve, so only that button is sent."""
    links = ActionLinks(resolve="https://relay.example.test/actions/r.sig")
    _send(_message(local_http_server.url, group=_group(status="acknowledged"), links=links))
    assert local_http_server.last_request.header("Actions") == (
        "view, Resolve, https://relay.example.test/actions/r.sig, clear=true"
    )


def test_configured_tags_follow_severity_and_event(local_http_server: LocalHttpServer) -> None:
    """Extra tags from the config come after the severity and the event type."""
    _send(_message(local_http_server.url, tags=["db", "prod"]))
    assert local_http_server.last_request.header("Tags") == "critical,notification,db,prod"


def test_non_ascii_title_is_rfc2047_encoded(local_http_server: LocalHttpServer) -> None:
    """A non-ASCII title travels as an RFC 2047 encoded word ntfy can decode."""
    _send(_message(local_http_server.url, group=_group(title="Диск заполнен")))
    title = local_http_server.last_request.header("Title") or ""
    assert title.startswith("=?UTF-8?B?")
    assert (
        base64.b64decode(title[len("=?UTF-8?B?") : -2]).decode() == "NOTIFICATION: [CRITICAL] Диск заполнен"
    )
    assert "Диск заполнен" in local_http_server.last_request.text


def test_rate_limit_is_retryable_with_retry_after(local_http_server: LocalHttpServer) -> None:
    """A 429 with Retry-After raises a retryable error carrying the delay."""
    local_http_server.respond(429, {"error": "limit"}, headers={"Retry-After": "30"})
    with pytest.raises(RetryableDeliveryError) as raised:
        _send(_message(local_http_server.url))
    assert raised.value.retry_after == 30


def test_redirect_is_permanent(local_http_server: LocalHttpServer) -> None:
    """A redirect is not followed and fails permanently."""
    local_http_server.respond(302, b"", headers={"Location": "http://example.invalid/"})
    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        _send(_message(local_http_server.url))


def test_unreachable_server_is_retryable() -> None:
    """A refused connection is a retryable failure naming the error class."""
    with LocalHttpServer() as server:
        url = server.url
    with pytest.raises(RetryableDeliveryError, match="ConnectError"):
        _send(_message(url))


def test_hanging_server_times_out_as_retryable(local_http_server: LocalHttpServer) -> None:
    """A server that never answers fails retryably after timeout_seconds."""
    local_http_server.respond(hang=True)
    with pytest.raises(RetryableDeliveryError, match="timed out"):
        _send(_message(local_http_server.url, timeout_seconds=0.2))


def test_invalid_config_is_permanent(local_http_server: LocalHttpServer) -> None:
    """A bad topic is a permanent failure naming the problem."""
    with pytest.raises(PermanentDeliveryError, match="topic"):
        _send(_message(local_http_server.url, topic="no spaces allowed"))


def test_relay_client_is_used_when_given(local_http_server: LocalHttpServer) -> None:
    """When message.http is an httpx.AsyncClient the request goes through it."""

    async def send_with_client() -> DeliveryResult:
        async with httpx.AsyncClient(headers={"X-Relay-Client": "shared"}, timeout=5) as client:
            return await NtfyChannel().send(_message(local_http_server.url, http=client))

    local_http_server.respond(200, NTFY_ANSWER)
    result = asyncio.run(send_with_client())
    assert local_http_server.last_request.header("X-Relay-Client") == "shared"
    assert result.external_message_id == "hwQ2YpKdmg"


def test_update_publishes_a_new_message(local_http_server: LocalHttpServer) -> None:
    """ntfy cannot edit, so update() publishes the new state as another message."""
    previous = DeliveryResult(provider="example_ntfy", external_message_id="old")
    message = attrs.evolve(_message(local_http_server.url), event_type="resolved")
    asyncio.run(NtfyChannel().update(message, previous))
    assert len(local_http_server.requests) == 1
    assert local_http_server.last_request.header("Tags") == "critical,resolved"
