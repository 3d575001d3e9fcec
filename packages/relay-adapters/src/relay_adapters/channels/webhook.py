"""The ``webhook`` channel: IncidentRelay's generic JSON, signed with Standard Webhooks (SPEC S6.10).

Every delivery is one ``POST <webhook_url>`` with the JSON body of :func:`build_payload` and the
headers ``webhook-id`` (stable across retries: derived from the outbox idempotency key, so
receivers can deduplicate, S5.10), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` +
base64 HMAC-SHA256 of ``"<id>.<timestamp>.<body>"`` keyed by the channel secret). Receivers
verify with any Standard Webhooks library, or with :func:`verify_signature`.

Success is 2xx only; 410 fails permanently with ``endpoint_gone`` so the UI can flag the channel.
There are no edits: status changes are posted as new deliveries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from relay_adapters.channels._common import (
    ChannelEnvironment,
    CommonConfig,
    http_url,
    outbound_client,
    plain_text,
    status_of,
    structure_config,
    team_of,
    title_of,
)
from relay_adapters.channels._http import classify_response, send_request
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
)

__all__ = [
    "ENDPOINT_GONE",
    "WebhookChannel",
    "WebhookConfig",
    "build_payload",
    "decode_secret",
    "sign",
    "verify_signature",
    "webhook_id",
]

ENDPOINT_GONE: Final = "endpoint_gone"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105  # the format marker, not a secret
_RESERVED_HEADERS: Final = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host"}
)


def _secret_format(_instance: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None:
        decode_secret(value)


@attrs.frozen(kw_only=True)
class WebhookConfig(CommonConfig):
    """Configuration of a ``webhook`` channel."""

    webhook_url: str = attrs.field(validator=http_url, metadata={"secret": True})
    secret: str | None = attrs.field(default=None, validator=_secret_format, metadata={"secret": True})
    """``whsec_`` + base64 of 32 random bytes (generated when the channel is created)."""
    headers: dict[str, str] = attrs.field(factory=dict, metadata={"secret": True})
    """Extra request headers (values may be secrets, e.g. an ``Authorization``)."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after ``whsec_``, else the raw UTF-8.

    Raises:
        ValueError: A ``whsec_`` secret whose rest is not base64.
    """
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("secret must be whsec_ followed by base64") from exc
    return secret.encode("utf-8")


def webhook_id(idempotency_key: str) -> str:
    """``msg_`` + base32 of the key's SHA-256 (first 20 bytes): the same for every retry."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()[:20]
    return "msg_" + base64.b32encode(digest).decode("ascii").lower()


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256("<id>.<timestamp>.<body>")>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes, header: str) -> bool:
    """Whether any ``v1`` signature in a ``webhook-signature`` header matches (constant time)."""
    expected = sign(secret, msg_id, timestamp, body).encode()
    return any(hmac.compare_digest(expected, candidate.encode()) for candidate in header.split())


def _iso_z(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("+00:00", "Z")


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    """The JSON body of S6.10 (IncidentRelay's generic webhook plus Relay's fields)."""
    group = message.group
    return {
        "text": plain_text(message),
        "event_type": message.event_type,
        "alert_id": group.id if group else None,
        "group_id": group.id if group else None,
        "alert_url": group.alert_url if group else None,
        "source_event_url": group.event_link if group else None,
        "team": team_of(group) or None,
        "status": status_of(message),
        "source": (group.source or None) if group else None,
        "title": title_of(message),
        "message": group.message if group else "",
        "severity": group.severity if group else None,
        "category": group.category if group else None,
        "assignee": group.assignee if group else None,
        "labels": dict(group.labels) if group else {},
        "alert_count": group.alert_count if group else 0,
        "acknowledged_by": group.acknowledged_by if group else None,
        "resolved_by": group.resolved_by if group else None,
        # GroupView does not carry first_seen_at yet; a dispatcher that adds it is picked up here.
        "first_seen_at": _iso_z(getattr(group, "first_seen_at", None)),
        "ack_url": message.action_links.acknowledge,
        "resolve_url": message.action_links.resolve,
        "test": message.event_type == "test",
    }


class WebhookChannel:
    """Relay channel type ``webhook`` (S6.10)."""

    name: ClassVar[str] = "webhook"
    label: ClassVar[str] = "Webhook (Standard Webhooks)"
    Config: ClassVar[type[Any]] = WebhookConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=False, supports_actions=True, person_addressed=False
    )

    def __init__(self, *, env: ChannelEnvironment | None = None) -> None:
        self.env = env or ChannelEnvironment()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """POST the signed JSON payload."""
        config = structure_config(WebhookConfig, message.channel.config, self.name)
        body = json.dumps(build_payload(message), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        msg_id = webhook_id(message.idempotency_key)
        timestamp = int(message.clock.now().timestamp())
        headers = _extra_headers(config.headers)
        headers.update(
            {
                "Content-Type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
            }
        )
        if config.secret:
            headers["webhook-signature"] = sign(config.secret, msg_id, timestamp, body)
        async with outbound_client(message, self.env) as http:
            response = await send_request(
                http, "POST", config.webhook_url, service="webhook", content=body, headers=headers
            )
        if response.status_code == 410:
            raise PermanentDeliveryError(f"webhook endpoint answered HTTP 410 Gone ({ENDPOINT_GONE})")
        classify_response(response, service="webhook", now=message.clock.now())
        return DeliveryResult(
            provider=self.name,
            external_message_id=msg_id,
            provider_status=str(response.status_code),
            provider_payload={"status_code": response.status_code, "webhook_id": msg_id},
        )

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """Webhooks cannot be edited: deliver the new state as another request."""
        return await self.send(message)


def _extra_headers(extra: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in extra.items():
        if name.strip().lower() in _RESERVED_HEADERS:
            continue  # the signature headers and the body type are Relay's
        headers[name.strip()] = str(value)
    return headers
