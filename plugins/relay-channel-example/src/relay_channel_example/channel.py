"""The ``example_ntfy`` channel: each notification is a POST to ``<server_url>/<topic>`` (SPEC S7.12).

ntfy (https://ntfy.sh) publishes the request body as the message and reads the rest from
headers: ``Title``, ``Priority`` (1-5), ``Tags``, ``Click`` (opened on tap) and ``Actions``
(buttons; here they open Relay's signed Acknowledge/Resolve links, S6.3). An access token, when
configured, goes in ``Authorization: Bearer``.

ntfy cannot edit a published message, so updates are published as new messages.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import cattrs
import httpx
from cattrs.v import format_exception

from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
    render_plain_text,
)

__all__ = ["PRIORITIES", "NtfyChannel", "NtfyConfig"]

PRIORITIES: dict[str, int] = {"critical": 5, "high": 4, "medium": 3, "warning": 3, "low": 2, "info": 1}
"""ntfy priority per Relay severity; other severities get the ntfy default, 3."""

_DEFAULT_PRIORITY = 3
_CONNECT_TIMEOUT = 5.0
_ERROR_SNIPPET = 200
_converter = cattrs.Converter()


def _topic(_instance: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or len(value) > 64 or not all(ch.isalnum() or ch in "-_" for ch in value):
        raise ValueError("topic must be 1-64 letters, digits, '-' or '_'")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive")


@attrs.frozen(kw_only=True)
class NtfyConfig:
    """Configuration of an ``example_ntfy`` channel."""

    topic: str = attrs.field(validator=_topic)
    server_url: str = "https://ntfy.sh"
    token: str | None = attrs.field(default=None, metadata={"secret": True})
    """ntfy access token (``tk_...``); sent as ``Authorization: Bearer``."""
    tags: tuple[str, ...] = ()
    """Extra ntfy tags added after the severity and the event type."""
    timeout_seconds: float = attrs.field(default=10.0, validator=_positive)
    """Total timeout when the channel uses its own HTTP client."""


class NtfyChannel:
    """Relay channel type ``example_ntfy``."""

    name: ClassVar[str] = "example_ntfy"
    label: ClassVar[str] = "ntfy (example plugin)"
    Config: ClassVar[type[Any]] = NtfyConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=False, supports_actions=True, person_addressed=False
    )

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Publish ``message`` to the configured topic."""
        config = _structure(message.channel.config)
        url = f"{config.server_url.rstrip('/')}/{config.topic}"
        headers = build_headers(message, config)
        body = _body(message).encode("utf-8")
        response = await _post(message.http, url, body, headers, config.timeout_seconds)
        return _result(response, config)

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """ntfy cannot edit messages: publish the update as a new message."""
        return await self.send(message)


def build_headers(message: OutboundMessage, config: NtfyConfig) -> dict[str, str]:
    """The ntfy headers for ``message``: Title, Priority, Tags, Click, Actions, Authorization."""
    group = message.group
    severity = group.severity.lower() if group is not None else "info"
    headline = _body(message).splitlines()[0]
    headers = {
        "Title": _header_value(headline),
        "Priority": str(PRIORITIES.get(severity, _DEFAULT_PRIORITY)),
        "Tags": _header_value(",".join((severity, message.event_type, *config.tags))),
        "Content-Type": "text/plain; charset=utf-8",
    }
    if group is not None and group.alert_url:
        headers["Click"] = group.alert_url
    actions = []
    if message.action_links.acknowledge:
        actions.append(f"view, Acknowledge, {message.action_links.acknowledge}, clear=true")
    if message.action_links.resolve:
        actions.append(f"view, Resolve, {message.action_links.resolve}, clear=true")
    if actions:
        headers["Actions"] = "; ".join(actions)
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    return headers


def _structure(config: Mapping[str, Any]) -> NtfyConfig:
    known = {field.name for field in attrs.fields(NtfyConfig)}
    try:
        return _converter.structure({k: v for k, v in config.items() if k in known}, NtfyConfig)
    except Exception as exc:
        raise PermanentDeliveryError(f"example_ntfy config is invalid: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, format_exception=_format_exception))
    return str(exc)


def _format_exception(exc: BaseException, type_: type[Any] | None) -> str:
    # Validator messages ("topic must be ...") say more than cattrs' generic "invalid value".
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def _body(message: OutboundMessage) -> str:
    if message.text:
        return message.text
    if message.group is not None:
        return render_plain_text(message.event_type, message.group)
    return message.event_type.upper() or "NOTIFICATION"


def _header_value(value: str) -> str:
    """HTTP headers are Latin-1; ntfy decodes RFC 2047 encoded words for anything else."""
    if value.isascii():
        return value
    return f"=?UTF-8?B?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


async def _post(http: Any, url: str, body: bytes, headers: dict[str, str], seconds: float) -> httpx.Response:
    try:
        if isinstance(http, httpx.AsyncClient):
            # Relay's shared client (S6.2) carries the timeouts and the outbound network policy.
            return await http.post(url, content=body, headers=headers)
        limits = httpx.Timeout(seconds, connect=min(_CONNECT_TIMEOUT, seconds))
        async with httpx.AsyncClient(timeout=limits, follow_redirects=False) as client:
            return await client.post(url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        raise RetryableDeliveryError(f"ntfy request timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise RetryableDeliveryError(f"ntfy request failed: {type(exc).__name__}: {exc}") from exc


def _result(response: httpx.Response, config: NtfyConfig) -> DeliveryResult:
    status = response.status_code
    if status == 429 or status >= 500:
        raise RetryableDeliveryError(f"ntfy answered {status}", retry_after=_retry_after(response))
    if 300 <= status < 400:
        raise PermanentDeliveryError(f"ntfy answered {status}: redirects are not followed")
    if status >= 400:
        raise PermanentDeliveryError(f"ntfy answered {status}: {response.text[:_ERROR_SNIPPET]}")
    try:
        payload = response.json() if response.content else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    message_id = payload.get("id")
    return DeliveryResult(
        provider=NtfyChannel.name,
        external_message_id=str(message_id) if message_id else None,
        external_channel_id=config.topic,
        provider_status="sent",
        provider_payload=payload,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
