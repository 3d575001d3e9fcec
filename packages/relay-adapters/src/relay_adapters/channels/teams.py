"""The ``teams`` channel: Power Automate Workflows webhooks with an Adaptive Card (SPEC S6.8).

The flow "When a Teams webhook request is received" posts the card to a chat or channel. Cards
cannot be edited through it and cannot call back, so Acknowledge and Resolve are the signed
links of S6.3 (``Action.OpenUrl``), and acknowledged/resolved events post a short follow-up
card. ``payload_format = "generic"`` sends the S6.10 JSON instead, for flows that parse it.
Success is 200 or 202.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Final, Literal

import attrs

from relay_adapters.channels._common import (
    EDIT_EVENTS,
    ChannelEnvironment,
    CommonConfig,
    field_values,
    http_url,
    outbound_client,
    prefixed_title,
    status_of,
    status_sentence,
    structure_config,
)
from relay_adapters.channels._http import classify_response, send_request
from relay_adapters.channels.webhook import build_payload as generic_payload
from relay_adapters.channels.webhook import webhook_id
from relay_core.ports.channels import ChannelCapabilities, DeliveryResult, OutboundMessage

__all__ = ["TeamsChannel", "TeamsConfig", "build_card", "card_color"]

CARD_SCHEMA: Final = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"


def _format(_instance: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ("adaptive_card", "generic"):
        raise ValueError("payload_format must be adaptive_card or generic")


@attrs.frozen(kw_only=True)
class TeamsConfig(CommonConfig):
    """Configuration of a ``teams`` channel."""

    webhook_url: str = attrs.field(validator=http_url, metadata={"secret": True})
    payload_format: Literal["adaptive_card", "generic"] = attrs.field(
        default="adaptive_card", validator=_format
    )


def card_color(message: OutboundMessage) -> str:
    """TextBlock colour: Good (resolved), Warning (acknowledged, medium/warning), Attention
    (critical/high), Default otherwise."""
    status = status_of(message)
    if status == "resolved":
        return "Good"
    if status == "acknowledged":
        return "Warning"
    severity = message.group.severity.lower() if message.group is not None else ""
    if severity in ("critical", "high"):
        return "Attention"
    if severity in ("medium", "warning"):
        return "Warning"
    return "Default"


def _actions(message: OutboundMessage) -> list[dict[str, Any]]:
    actions = []
    if message.action_links.acknowledge:
        actions.append(
            {"type": "Action.OpenUrl", "title": "Acknowledge", "url": message.action_links.acknowledge}
        )
    if message.action_links.resolve:
        actions.append({"type": "Action.OpenUrl", "title": "Resolve", "url": message.action_links.resolve})
    if message.group is not None and message.group.alert_url:
        actions.append({"type": "Action.OpenUrl", "title": "Open alert", "url": message.group.alert_url})
    return actions


def build_card(message: OutboundMessage) -> dict[str, Any]:
    """The Adaptive Card message of S6.8 (a short follow-up card for status events)."""
    title = {
        "type": "TextBlock",
        "text": prefixed_title(message),
        "weight": "Bolder",
        "size": "Medium",
        "color": card_color(message),
        "wrap": True,
    }
    group = message.group
    if message.event_type in EDIT_EVENTS:
        body: list[dict[str, Any]] = [
            title,
            {"type": "TextBlock", "text": status_sentence(message) or "", "wrap": True},
        ]
    else:
        body = [
            title,
            {
                "type": "FactSet",
                "facts": [{"title": label, "value": value} for label, value in field_values(message)],
            },
        ]
        if group is not None and group.message.strip():
            body.append({"type": "TextBlock", "text": group.message.strip(), "wrap": True})
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CARD_CONTENT_TYPE,
                "contentUrl": None,
                "content": {
                    "$schema": CARD_SCHEMA,
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "msteams": {"width": "full"},
                    "body": body,
                    "actions": _actions(message),
                },
            }
        ],
    }


class TeamsChannel:
    """Relay channel type ``teams`` (S6.8)."""

    name: ClassVar[str] = "teams"
    label: ClassVar[str] = "Microsoft Teams (Workflows)"
    Config: ClassVar[type[Any]] = TeamsConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=False, supports_actions=True, person_addressed=False
    )

    def __init__(self, *, env: ChannelEnvironment | None = None) -> None:
        self.env = env or ChannelEnvironment()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """POST the card (or the generic JSON) to the Workflows URL."""
        config = structure_config(TeamsConfig, message.channel.config, self.name)
        payload = (
            build_card(message) if config.payload_format == "adaptive_card" else generic_payload(message)
        )
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "webhook-id": webhook_id(message.idempotency_key)}
        async with outbound_client(message, self.env) as http:
            response = await send_request(
                http, "POST", config.webhook_url, service="teams", content=body, headers=headers
            )
        classify_response(response, service="teams", now=message.clock.now())
        return DeliveryResult(
            provider=self.name,
            provider_status=str(response.status_code),
            provider_payload={"status_code": response.status_code, "format": config.payload_format},
        )

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """Workflows cannot edit cards: post the follow-up card."""
        return await self.send(message)
