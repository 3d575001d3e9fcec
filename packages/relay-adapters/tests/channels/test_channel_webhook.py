"""The webhook channel: generic JSON signed with Standard Webhooks headers (SPEC S6.10)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from relay_adapters.channels import ChannelEnvironment, OutboundClient, WebhookChannel
from relay_adapters.channels._http import OutboundOptions
from relay_adapters.channels.webhook import sign, verify_signature, webhook_id
from relay_core.ports.channels import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.testing.contracts import ChannelContract
from relay_core.testing.pytest_plugin import LocalHttpServer

ENV = ChannelEnvironment(outbound=OutboundOptions(timeout=5.0, allowlist=("127.0.0.1/32",)))
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NOW_TS = "1780297200"  # 2026-06-01T07:00:00Z


def _config(server: LocalHttpServer, **extra: Any) -> dict[str, Any]:
    return {"webhook_url": f"{server.url}/hooks/relay", "secret": SECRET, **extra}


class TestWebhookContract(ChannelContract):
    """WebhookChannel passes ChannelContract against a local receiver."""

    channel_class = WebhookChannel
    entry_point_name = "builtin"

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """A receiver answering 204."""
        local_http_server.respond(204)
        return local_http_server

    def make_channel(self, receiver: Any) -> WebhookChannel:
        return WebhookChannel(env=ENV)

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return _config(receiver, headers={"X-Tenant": "ops"})

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        request = receiver.last_request
        assert (request.method, request.path) == ("POST", "/hooks/relay")
        assert request.json() == {
            "text": message.text,
            "event_type": "notification",
            "alert_id": 42,
            "group_id": 42,
            "alert_url": "https://relay.example.test/alerts/42",
            "source_event_url": "https://monitoring.example.test/alerts/1",
            "team": "Operations",
            "status": "firing",
            "source": "alertmanager",
            "title": "Disk is full",
            "message": "/var is 97% full",
            "severity": "critical",
            "category": "infrastructure",
            "assignee": "alice",
            "labels": {"host": "db-1"},
            "alert_count": 2,
            "acknowledged_by": None,
            "resolved_by": None,
            "first_seen_at": None,
            "ack_url": "https://relay.example.test/actions/ack.token",
            "resolve_url": "https://relay.example.test/actions/resolve.token",
            "test": False,
        }
        msg_id = webhook_id(message.idempotency_key)
        assert request.header("webhook-id") == msg_id
        assert request.header("webhook-timestamp") == NOW_TS
        assert request.header("webhook-signature") == sign(SECRET, msg_id, NOW_TS, request.body)
        assert request.header("Content-Type") == "application/json"
        assert request.header("X-Tenant") == "ops"
        assert result == DeliveryResult(
            provider="webhook",
            external_message_id=msg_id,
            provider_status="204",
            provider_payload={"status_code": 204, "webhook_id": msg_id},
        )

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.respond(503 if kind == "retryable" else 400, {"error": "nope"})
        return True


def test_standard_webhooks_test_vector() -> None:
    """The signature matches the Standard Webhooks test vector quoted in S6.10."""
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert (
        sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == expected
    )
    assert verify_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, expected
    )
    assert not verify_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", body, expected
    )


def test_webhook_id_is_stable_and_shaped() -> None:
    """The webhook-id depends only on the idempotency key and looks like msg_<base32>."""
    first = webhook_id("42:5:room:notification:0")
    assert first == webhook_id("42:5:room:notification:0")
    assert first != webhook_id("42:5:room:reminder:0.1")
    assert first.startswith("msg_")
    assert len(first) == 36


async def test_retries_keep_the_webhook_id_and_sign_each_attempt(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Two attempts of one intent carry the same webhook-id, each correctly signed."""
    local_http_server.enqueue(500)
    local_http_server.enqueue(200)
    message = make_message("webhook", _config(local_http_server), http=http)
    with pytest.raises(RetryableDeliveryError, match="HTTP 500"):
        await WebhookChannel().send(message)
    await WebhookChannel().send(message)
    first, second = local_http_server.requests
    assert first.header("webhook-id") == second.header("webhook-id") == webhook_id(message.idempotency_key)
    for request in (first, second):
        assert verify_signature(
            SECRET,
            request.header("webhook-id") or "",
            request.header("webhook-timestamp") or "",
            request.body,
            request.header("webhook-signature") or "",
        )


async def test_resolved_event_payload(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A resolved event reports the status, who resolved and no action links."""
    message = make_message("webhook", _config(local_http_server), event_type="resolved", http=http)
    await WebhookChannel().send(message)
    body = local_http_server.last_request.json()
    assert body["event_type"] == "resolved"
    assert body["status"] == "resolved"
    assert body["resolved_by"] == "bob"
    assert body["ack_url"] is None
    assert body["resolve_url"] is None
    assert body["text"].startswith("RESOLVED: [CRITICAL] Disk is full")


async def test_test_event_is_flagged(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A test delivery sets test: true and the test title."""
    await WebhookChannel().send(
        make_message("webhook", _config(local_http_server), event_type="test", http=http)
    )
    body = local_http_server.last_request.json()
    assert body["test"] is True
    assert body["title"] == "Test notification from Relay"


async def test_gone_endpoint_is_permanent(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """410 fails permanently with endpoint_gone."""
    local_http_server.respond(410)
    with pytest.raises(PermanentDeliveryError, match="endpoint_gone"):
        await WebhookChannel().send(make_message("webhook", _config(local_http_server), http=http))


async def test_redirect_is_permanent(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A 3xx answer is a failure: only 2xx counts as delivered."""
    local_http_server.respond(302, headers={"Location": "https://elsewhere.example.test/"})
    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        await WebhookChannel().send(make_message("webhook", _config(local_http_server), http=http))
    assert len(local_http_server.requests) == 1


async def test_extra_headers_cannot_replace_the_signature(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Configured headers are sent, but webhook-* and Content-Type stay Relay's."""
    config = _config(
        local_http_server,
        headers={
            "Authorization": "Bearer abc",
            "webhook-signature": "v1,forged",
            "Content-Type": "text/plain",
        },
    )
    await WebhookChannel().send(make_message("webhook", config, http=http))
    request = local_http_server.last_request
    assert request.header("Authorization") == "Bearer abc"
    assert request.header("webhook-signature") != "v1,forged"
    assert request.header("Content-Type") == "application/json"


async def test_unsigned_without_a_secret(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Without a secret the body is sent with id and timestamp but no signature."""
    await WebhookChannel().send(make_message("webhook", {"webhook_url": local_http_server.url}, http=http))
    request = local_http_server.last_request
    assert request.header("webhook-id")
    assert request.header("webhook-signature") is None


@pytest.mark.parametrize(
    "config",
    [{}, {"webhook_url": "ftp://example.test/x"}, {"webhook_url": "https://x.test/", "secret": "whsec_%%%"}],
)
async def test_invalid_config_is_permanent(make_message: Any, config: dict[str, Any]) -> None:
    """A missing URL, a non-http URL or a malformed whsec_ secret fails permanently."""
    with pytest.raises(PermanentDeliveryError, match="webhook config is invalid"):
        await WebhookChannel().send(make_message("webhook", config))


async def test_update_posts_a_new_request(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Webhooks cannot be edited: update() sends the acknowledged state as a new request."""
    message = make_message("webhook", _config(local_http_server), event_type="acknowledged", http=http)
    previous = DeliveryResult(provider="webhook", external_message_id="msg_old")
    result = await WebhookChannel().update(message, previous)
    assert json.loads(local_http_server.last_request.body)["acknowledged_by"] == "bob"
    assert result.external_message_id == webhook_id(message.idempotency_key)


async def test_channel_without_shared_client_uses_its_own(
    local_http_server: LocalHttpServer, make_message: Any
) -> None:
    """With message.http unset the channel builds a client with the environment's policy."""
    message = make_message("webhook", _config(local_http_server))
    await WebhookChannel(env=ENV).send(message)
    assert local_http_server.last_request.path == "/hooks/relay"
    with pytest.raises(PermanentDeliveryError, match="not allowed by the outbound network policy"):
        await WebhookChannel().send(attrs.evolve(message, http=None))
