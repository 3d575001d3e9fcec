"""The ``sms`` channel: text messages through SMS provider plugins (SPEC S6.11, S7.9).

The provider (``provider``, default ``sms.provider``: ``stub``) is loaded by name through the SMS
:class:`~relay_adapters.voice.loader.ProviderLoader` (built-ins, ``relay_register_sms_providers``
plugins, then files in ``sms.providers_dir``), built with ``provider_config`` (``${ENV}``
references resolved) and called in a worker thread, like voice providers.

The text is ``text_template`` (default ``Relay {severity} #{alert_id}: {title}. {status}.
{alert_url}``) cut to ``max_segments`` (3) SMS segments, ending in "…" when cut. The recipient
is the addressed person's phone (``test_phone`` for tests); none is a permanent failure.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from relay_adapters.channels._common import (
    ChannelEnvironment,
    CommonConfig,
    alert_id_text,
    public_base_url,
    status_of,
    structure_config,
    team_of,
    title_of,
)
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.sms import BaseSmsProvider, SmsSendRequest, SmsSendResult
from relay_core.voice import PermanentProviderError, TransientProviderError, mask_phone

__all__ = [
    "DEFAULT_TEXT_TEMPLATE",
    "SmsChannel",
    "SmsConfig",
    "fit_segments",
    "render_text",
    "segment_count",
]

DEFAULT_TEXT_TEMPLATE: Final = "Relay {severity} #{alert_id}: {title}. {status}. {alert_url}"
MISSING_PHONE: Final = "sms phone is missing: set phone on the assigned user"
ELLIPSIS: Final = "…"
_PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# GSM 03.38 default alphabet; the extension table costs two septets per character.
_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED: Final = frozenset("^{}\\[~]|€\f")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1")


@attrs.frozen(kw_only=True)
class SmsConfig(CommonConfig):
    """Configuration of an ``sms`` channel."""

    provider: str | None = None
    """Provider name; ``sms.provider`` (``stub``) when unset."""
    provider_config: dict[str, Any] = attrs.field(factory=dict, metadata={"secret": True})
    """Provider settings (``${ENV}`` references resolved); may hold API tokens."""
    test_phone: str | None = None
    text_template: str | None = None
    max_segments: int = attrs.field(default=3, validator=_positive)
    send_status_updates: bool | None = False
    callback_secret: str | None = attrs.field(default=None, metadata={"secret": True})


def _is_gsm(text: str) -> bool:
    return all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text)


def _units(text: str) -> int:
    if _is_gsm(text):
        return sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


def segment_count(text: str) -> int:
    """SMS segments ``text`` needs (GSM-7: 160, then 153 each; UCS-2: 70, then 67 each)."""
    single, multi = (160, 153) if _is_gsm(text) else (70, 67)
    units = _units(text)
    if units <= single:
        return 1
    return -(-units // multi)


def fit_segments(text: str, max_segments: int) -> str:
    """``text`` cut to ``max_segments`` segments, ending in "…" when cut."""
    if segment_count(text) <= max_segments:
        return text
    # The ellipsis is not GSM-7, so a cut text is sent as UCS-2.
    limit = 70 if max_segments == 1 else 67 * max_segments
    room = limit - 1
    kept: list[str] = []
    used = 0
    for ch in text:
        size = len(ch.encode("utf-16-le")) // 2
        if used + size > room:
            break
        kept.append(ch)
        used += size
    return "".join(kept).rstrip() + ELLIPSIS


def render_text(template: str, values: Mapping[str, str]) -> str:
    """``{name}`` placeholders replaced; unknown ones stay literal."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class SmsChannel:
    """Relay channel type ``sms`` (S6.11)."""

    name: ClassVar[str] = "sms"
    label: ClassVar[str] = "SMS"
    Config: ClassVar[type[Any]] = SmsConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=False, supports_actions=False, person_addressed=True
    )

    def __init__(self, *, env: ChannelEnvironment | None = None) -> None:
        self.env = env or ChannelEnvironment()
        self._loader = self.env.sms_loader

    def _provider(self, message: OutboundMessage, config: SmsConfig) -> BaseSmsProvider:
        from relay_adapters.voice.loader import ProviderLoadError, make_sms_loader

        if self._loader is None:
            self._loader = make_sms_loader()
        name = config.provider or self.env.sms_provider or "stub"
        provider_config = config.provider_config or dict(self.env.sms_provider_config)
        try:
            provider: BaseSmsProvider = self._loader.create(
                name, provider_config, environ=os.environ, referenced_by=f"channel {message.channel.id}"
            )
        except ProviderLoadError as exc:
            raise PermanentDeliveryError(exc.message) from exc
        except RuntimeError as exc:  # validate_config names what is missing
            raise PermanentDeliveryError(f"sms provider {name}: {exc}") from exc
        return provider

    def _phone(self, message: OutboundMessage, config: SmsConfig) -> str:
        phone = config.test_phone if message.event_type == "test" else None
        phone = phone or (message.recipient.phone if message.recipient is not None else None)
        if not phone:
            raise PermanentDeliveryError(MISSING_PHONE)
        return str(phone)

    def _text(self, message: OutboundMessage, config: SmsConfig) -> str:
        group = message.group
        values = {
            "event_type": message.event_type,
            "severity": group.severity if group else "",
            "alert_id": alert_id_text(message),
            "title": title_of(message),
            "status": status_of(message),
            "alert_url": (group.alert_url or "") if group else "",
            "team": team_of(group),
            "assignee": (group.assignee or "") if group else "",
            "message": group.message if group else "",
            "text": message.text,
        }
        template = config.text_template or self.env.sms_text_template or DEFAULT_TEXT_TEMPLATE
        text = " ".join(render_text(template, values).split())
        return fit_segments(text, config.max_segments)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Send the text through the provider (in a worker thread)."""
        config = structure_config(SmsConfig, message.channel.config, self.name)
        phone = self._phone(message, config)
        provider = self._provider(message, config)
        base = public_base_url(message, self.env)
        secret = config.callback_secret
        request = SmsSendRequest(
            phone=phone,
            text=self._text(message, config),
            alert_id=message.group.id if message.group is not None else None,
            event_type=message.event_type,
            callback_url=f"{base}/api/integrations/sms/callback/{message.channel.id}/{secret}"
            if base and secret
            else None,
            callback_secret=secret,
            metadata={
                "channel_id": message.channel.id,
                "channel_name": message.channel.name,
                "channel_type": message.channel.type,
                "idempotency_key": message.idempotency_key,
            },
        )
        timeout = self.env.sms_timeout_seconds
        try:
            result: SmsSendResult = await asyncio.wait_for(
                asyncio.to_thread(provider.send_sms, request), timeout
            )
        except TimeoutError as exc:
            raise RetryableDeliveryError(f"sms provider timed out after {timeout:g} s") from exc
        except PermanentProviderError as exc:
            raise PermanentDeliveryError(f"sms provider {provider.name}: {exc}") from exc
        except TransientProviderError as exc:
            raise RetryableDeliveryError(f"sms provider {provider.name}: {exc}") from exc
        return DeliveryResult(
            provider=f"sms:{provider.name}",
            external_message_id=result.message_id,
            external_channel_id=str(message.channel.id),
            provider_status=result.status,
            provider_payload={**dict(result.raw), "to": mask_phone(phone)},
        )

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """Text messages cannot be edited: send the status message."""
        return await self.send(message)
