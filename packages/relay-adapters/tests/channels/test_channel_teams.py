"""The teams channel: Workflows webhook with an Adaptive Card and signed links (SPEC S6.8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from relay_adapters.channels import ChannelEnvironment, OutboundClient, TeamsChannel
from relay_adapters.channels._http import OutboundOptions
from relay_core.ports.channels import DeliveryResult, OutboundMessage, PermanentDeliveryError
from relay_core.testing.contracts import ChannelContract
from relay_core.testing.pytest_plugin import LocalHttpServer

ENV = ChannelEnvironment(outbound=OutboundOptions(timeout=5.0, allowlist=("127.0.0.1/32",)))
FLOW_PATH = "/workflows/abc/triggers/manual/paths/invoke"


def _config(server: LocalHttpServer, **extra: Any) -> dict[str, Any]:
    return {"webhook_url": f"{server.url}{FLOW_PATH}?api-version=2016-06-01&sig=s3cr3t", **extra}


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "msteams": {"width": "full"},
                    "body": body,
                    "actions": actions,
                },
            }
        ],
    }


def _title(text: str, color: str) -> dict[str, Any]:
    return {
        "type": "TextBlock",
        "text": text,
        "weight": "Bolder",
        "size": "Medium",
        "color": color,
        "wrap": True,
    }


OPEN = {"type": "Action.OpenUrl", "title": "Open alert", "url": "https://relay.example.test/alerts/42"}


class TestTeamsContract(ChannelContract):
    """TeamsChannel passes ChannelContract against a local Workflows endpoint."""

    channel_class = TeamsChannel
    entry_point_name = "builtin"

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """A flow trigger answering 202 Accepted."""
        local_http_server.respond(202)
        return local_http_server

    def make_channel(self, receiver: Any) -> TeamsChannel:
        return TeamsChannel(env=ENV)

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return _config(receiver)

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        request = receiver.last_request
        assert (request.method, request.path) == ("POST", FLOW_PATH)
        assert request.query == {"api-version": ["2016-06-01"], "sig": ["s3cr3t"]}
        assert request.json() == _card(
            [
                _title("Disk is full", "Attention"),
                {
                    "type": "FactSet",
                    "facts": [
                        {"title": "Team", "value": "Operations"},
                        {"title": "Category", "value": "infrastructure"},
                        {"title": "Status", "value": "firing"},
                        {"title": "Severity", "value": "critical"},
                        {"title": "Assignee", "value": "alice"},
                        {"title": "Source", "value": "alertmanager"},
                    ],
                },
                {"type": "TextBlock", "text": "/var is 97% full", "wrap": True},
            ],
            [
                {
                    "type": "Action.OpenUrl",
                    "title": "Acknowledge",
                    "url": "https://relay.example.test/actions/ack.token",
                },
                {
                    "type": "Action.OpenUrl",
                    "title": "Resolve",
                    "url": "https://relay.example.test/actions/resolve.token",
                },
                OPEN,
            ],
        )
        assert result.provider_status == "202"

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.respond(502 if kind == "retryable" else 400, {"error": {"code": "InvalidRequestContent"}})
        return True


async def test_acknowledged_posts_a_short_follow_up_card(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Cards cannot be edited: ACK posts a short card with who acknowledged and the Resolve link."""
    local_http_server.respond(200)
    previous = DeliveryResult(provider="teams")
    message = make_message("teams", _config(local_http_server), event_type="acknowledged", http=http)
    await TeamsChannel().update(message, previous)
    assert local_http_server.last_request.json() == _card(
        [
            _title("ACKNOWLEDGED: Disk is full", "Warning"),
            {"type": "TextBlock", "text": "The alert was acknowledged by bob.", "wrap": True},
        ],
        [
            {
                "type": "Action.OpenUrl",
                "title": "Resolve",
                "url": "https://relay.example.test/actions/res.tok",
            },
            OPEN,
        ],
    )


async def test_resolved_card_is_good(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """Resolved follow-up cards are coloured Good and carry no action links."""
    local_http_server.respond(200)
    await TeamsChannel().send(
        make_message("teams", _config(local_http_server), event_type="resolved", http=http)
    )
    content = local_http_server.last_request.json()["attachments"][0]["content"]
    assert content["body"][0]["color"] == "Good"
    assert content["actions"] == [OPEN]


@pytest.mark.parametrize(
    ("severity", "color"), [("high", "Attention"), ("medium", "Warning"), ("low", "Default")]
)
async def test_title_colour_by_severity(
    local_http_server: LocalHttpServer,
    make_message: Any,
    make_group: Any,
    http: OutboundClient,
    severity: str,
    color: str,
) -> None:
    """The title colour follows the severity of a firing alert."""
    local_http_server.respond(200)
    await TeamsChannel().send(
        make_message("teams", _config(local_http_server), group=make_group(severity=severity), http=http)
    )
    assert local_http_server.last_request.json()["attachments"][0]["content"]["body"][0]["color"] == color


async def test_generic_format_sends_the_webhook_json(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """payload_format generic posts the S6.10 body for flows that parse it."""
    local_http_server.respond(200)
    config = _config(local_http_server, payload_format="generic")
    await TeamsChannel().send(make_message("teams", config, http=http))
    body = local_http_server.last_request.json()
    assert body["alert_id"] == 42
    assert body["ack_url"] == "https://relay.example.test/actions/ack.tok"
    assert body["text"].startswith("NOTIFICATION: [CRITICAL] Disk is full")


async def test_redirect_is_permanent(
    local_http_server: LocalHttpServer, make_message: Any, http: OutboundClient
) -> None:
    """A 302 from the flow URL is not followed."""
    local_http_server.respond(302, headers={"Location": "https://login.example.test/"})
    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        await TeamsChannel().send(make_message("teams", _config(local_http_server), http=http))


async def test_unknown_payload_format_is_permanent(make_message: Any) -> None:
    """An unknown payload_format fails permanently."""
    with pytest.raises(PermanentDeliveryError, match="teams config is invalid"):
        await TeamsChannel().send(
            make_message("teams", {"webhook_url": "https://x.test/", "payload_format": "xml"})
        )
