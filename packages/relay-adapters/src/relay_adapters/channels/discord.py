"""The ``discord`` channel: webhook messages with a coloured embed (SPEC S6.7).

``POST <webhook_url>?wait=true`` returns the message, whose ``id`` is the group's anchor; status
changes edit it with ``PATCH <webhook_url>/messages/<id>``. Updates, reminders and escalations
are posted as new messages (webhooks cannot reply) and refresh the anchor. Discord has no
callbacks for webhook messages, so the embed description carries the signed Acknowledge/Resolve
links (S6.3). Mentions are disabled (``allowed_mentions``); 429 honours ``retry_after``.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs
import httpx

from relay_adapters.channels._common import (
    EDIT_EVENTS,
    REPLY_EVENTS,
    ChannelEnvironment,
    CommonConfig,
    field_values,
    http_url,
    outbound_client,
    plain_text,
    prefixed_title,
    status_of,
    structure_config,
    truncate,
)
from relay_adapters.channels._http import (
    MAX_RETRY_AFTER_SECONDS,
    classify_response,
    send_request,
)
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

__all__ = ["DiscordChannel", "DiscordConfig", "build_payload", "embed_color"]

logger = logging.getLogger("relay.channels.discord")

COLOR_CRITICAL: Final = 0x992D22
COLOR_RESOLVED: Final = 0x2ECC71
COLOR_ACKNOWLEDGED: Final = 0xF0AD4E
COLOR_OTHER: Final = 0x95A5A6
_CONTENT_LIMIT: Final = 2000
_TITLE_LIMIT: Final = 256
_DESCRIPTION_LIMIT: Final = 4096
_FIELD_LIMIT: Final = 25
_FIELD_VALUE_LIMIT: Final = 1024


@attrs.frozen(kw_only=True)
class DiscordConfig(CommonConfig):
    """Configuration of a ``discord`` channel."""

    webhook_url: str = attrs.field(validator=http_url, metadata={"secret": True})
    """``https://discord.com/api/webhooks/<id>/<token>`` (a ``thread_id`` query is kept)."""


def embed_color(message: OutboundMessage) -> int:
    """Resolved green, acknowledged amber, critical/high dark red, anything else grey."""
    status = status_of(message)
    if status == "resolved":
        return COLOR_RESOLVED
    if status == "acknowledged":
        return COLOR_ACKNOWLEDGED
    severity = message.group.severity.lower() if message.group is not None else ""
    return COLOR_CRITICAL if severity in ("critical", "high") else COLOR_OTHER


def _description(message: OutboundMessage) -> str:
    group = message.group
    parts = []
    if group is not None and group.message.strip():
        parts.append(group.message.strip())
    links = []
    if message.action_links.acknowledge:
        links.append(f"[Acknowledge]({message.action_links.acknowledge})")
    if message.action_links.resolve:
        links.append(f"[Resolve]({message.action_links.resolve})")
    if group is not None and group.event_link:
        links.append(f"[Source event]({group.event_link})")
    tail = " · ".join(links)
    body = "\n\n".join(parts)
    room = _DESCRIPTION_LIMIT - (len(tail) + 2 if tail else 0)
    body = truncate(body, max(room, 0))
    return "\n\n".join(part for part in (body, tail) if part)


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    """The execute/edit body of S6.7."""
    group = message.group
    values = dict(field_values(message))
    embed: dict[str, Any] = {
        "title": truncate(prefixed_title(message), _TITLE_LIMIT),
        "description": _description(message),
    }
    if group is not None and group.alert_url:
        embed["url"] = group.alert_url
    embed["color"] = embed_color(message)
    embed["fields"] = [
        {"name": label, "value": truncate(values[label], _FIELD_VALUE_LIMIT), "inline": True}
        for label in ("Status", "Severity", "Team", "Category", "Assignee")
    ][:_FIELD_LIMIT]
    embed["timestamp"] = message.clock.now().isoformat()
    return {
        "content": truncate(plain_text(message).split("\n", 1)[0], _CONTENT_LIMIT),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [
        (k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k not in params
    ]
    query.extend(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _message_url(webhook_url: str, message_id: str) -> str:
    parts = urllib.parse.urlsplit(webhook_url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    path = f"{parts.path.rstrip('/')}/messages/{urllib.parse.quote(message_id, safe='')}"
    return urllib.parse.urlunsplit(parts._replace(path=path, query=urllib.parse.urlencode(query)))


class DiscordChannel:
    """Relay channel type ``discord`` (S6.7)."""

    name: ClassVar[str] = "discord"
    label: ClassVar[str] = "Discord"
    Config: ClassVar[type[Any]] = DiscordConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=True, supports_actions=True, person_addressed=False
    )

    def __init__(self, *, env: ChannelEnvironment | None = None) -> None:
        self.env = env or ChannelEnvironment()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Execute the webhook with ``wait=true`` and keep the message id."""
        config = structure_config(DiscordConfig, message.channel.config, self.name)
        async with outbound_client(message, self.env) as http:
            return await self._execute(http, message, config)

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """Edit the anchor (status changes), or post the event and refresh the anchor."""
        config = structure_config(DiscordConfig, message.channel.config, self.name)
        anchor = previous.external_message_id
        if not anchor:
            return await self.send(message)
        async with outbound_client(message, self.env) as http:
            if message.event_type in EDIT_EVENTS:
                return await self._edit(http, message, config, anchor, previous.external_channel_id)
            if message.event_type not in REPLY_EVENTS:
                return await self._execute(http, message, config)
            posted = await self._execute(http, message, config)
            edited = True
            try:
                await self._edit(http, message, config, anchor, previous.external_channel_id)
            except (RetryableDeliveryError, PermanentDeliveryError) as exc:
                logger.warning("relay.channel.discord.anchor_edit_failed: %s", exc.message)
                edited = False
        return DeliveryResult(
            provider=self.name,
            external_message_id=anchor,
            external_channel_id=previous.external_channel_id or posted.external_channel_id,
            provider_status="sent",
            provider_payload={"posted_id": posted.external_message_id, "anchor_edited": edited},
        )

    async def _execute(
        self, http: httpx.AsyncClient, message: OutboundMessage, config: DiscordConfig
    ) -> DeliveryResult:
        url = _with_query(config.webhook_url, wait="true")
        response = await send_request(http, "POST", url, service="discord", json=build_payload(message))
        answer = self._check(response, message)
        message_id = answer.get("id")
        return DeliveryResult(
            provider=self.name,
            external_message_id=str(message_id) if message_id else None,
            external_channel_id=str(answer["channel_id"]) if answer.get("channel_id") else None,
            provider_status="sent",
            provider_payload={"id": message_id, "channel_id": answer.get("channel_id")},
        )

    async def _edit(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: DiscordConfig,
        message_id: str,
        channel_id: str | None,
    ) -> DeliveryResult:
        url = _message_url(config.webhook_url, message_id)
        response = await send_request(http, "PATCH", url, service="discord", json=build_payload(message))
        answer = self._check(response, message)
        return DeliveryResult(
            provider=self.name,
            external_message_id=message_id,
            external_channel_id=str(answer.get("channel_id") or channel_id or "") or None,
            provider_status="updated",
            provider_payload={"id": message_id, "channel_id": answer.get("channel_id") or channel_id},
        )

    def _check(self, response: httpx.Response, message: OutboundMessage) -> Mapping[str, Any]:
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if response.status_code == 429:
            retry_after = answer.get("retry_after")
            if isinstance(retry_after, int | float):
                seconds = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_SECONDS)
                raise RetryableDeliveryError("discord is rate limited", retry_after=seconds)
        classify_response(response, service="discord", now=message.clock.now())
        return answer
