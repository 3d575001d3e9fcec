"""The SMS provider API, the voice mechanism applied to text messages (SPEC S7.9).

A provider is a class named ``Provider`` subclassing :class:`BaseSmsProvider`, in a module file
in ``sms.providers_dir`` or contributed through ``relay_register_sms_providers()``. Methods are
synchronous and run in a worker thread; providers raise on provider errors and set timeouts
on every request (``http`` offers the S6.2 client, sync flavour).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final

from relay_core.voice import PermanentProviderError, TransientProviderError, mask_phone, require_config

__all__ = [
    "SMS_CALLBACK_ERROR",
    "SMS_CALLBACK_REPLY",
    "SMS_CALLBACK_STATUS",
    "SMS_CALLBACK_TYPES",
    "SMS_STATUSES",
    "SMS_STATUS_DELIVERED",
    "SMS_STATUS_FAILED",
    "SMS_STATUS_LOGGED",
    "SMS_STATUS_QUEUED",
    "SMS_STATUS_REJECTED",
    "SMS_STATUS_SENT",
    "SMS_STATUS_UNDELIVERED",
    "SMS_STATUS_UNKNOWN",
    "TERMINAL_SMS_STATUSES",
    "BaseSmsProvider",
    "PermanentProviderError",
    "SmsCallbackEvent",
    "SmsProviderCapabilities",
    "SmsSendRequest",
    "SmsSendResult",
    "TransientProviderError",
    "mask_phone",
    "require_config",
]

SMS_CALLBACK_STATUS: Final = "status"
SMS_CALLBACK_REPLY: Final = "reply"
SMS_CALLBACK_ERROR: Final = "error"
SMS_CALLBACK_TYPES: Final = frozenset({SMS_CALLBACK_STATUS, SMS_CALLBACK_REPLY, SMS_CALLBACK_ERROR})

SMS_STATUS_QUEUED: Final = "queued"
SMS_STATUS_SENT: Final = "sent"
SMS_STATUS_DELIVERED: Final = "delivered"
SMS_STATUS_FAILED: Final = "failed"
SMS_STATUS_UNDELIVERED: Final = "undelivered"
SMS_STATUS_REJECTED: Final = "rejected"
SMS_STATUS_UNKNOWN: Final = "unknown"
SMS_STATUS_LOGGED: Final = "logged"
"""Returned by the ``stub`` provider, which only logs the message."""

SMS_STATUSES: Final = frozenset(
    {
        SMS_STATUS_QUEUED,
        SMS_STATUS_SENT,
        SMS_STATUS_DELIVERED,
        SMS_STATUS_FAILED,
        SMS_STATUS_UNDELIVERED,
        SMS_STATUS_REJECTED,
        SMS_STATUS_UNKNOWN,
        SMS_STATUS_LOGGED,
    }
)
TERMINAL_SMS_STATUSES: Final = frozenset(
    {SMS_STATUS_DELIVERED, SMS_STATUS_FAILED, SMS_STATUS_UNDELIVERED, SMS_STATUS_REJECTED}
)


@dataclass(frozen=True)
class SmsProviderCapabilities:
    """Feature flags an SMS provider declares."""

    delivery_callback: bool = False
    inbound_replies: bool = False
    status_polling: bool = False


@dataclass(frozen=True)
class SmsSendRequest:
    """One text message to send."""

    phone: str
    text: str
    alert_id: int | None
    event_type: str
    callback_url: str | None = None
    callback_secret: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SmsSendResult:
    """What the provider answered to ``send_sms`` or ``get_message_status``."""

    message_id: str | None = None
    status: str = SMS_STATUS_QUEUED
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SmsCallbackEvent:
    """One normalized event of a provider callback."""

    message_id: str
    event_type: str
    """``status``, ``reply`` or ``error``."""
    status: str | None = None
    text: str | None = None
    from_phone: str | None = None
    message: str | None = None
    occurred_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class BaseSmsProvider:
    """Base class of every SMS provider; subclasses are named ``Provider``."""

    name: ClassVar[str] = "base"
    capabilities: ClassVar[SmsProviderCapabilities] = SmsProviderCapabilities()
    http: Any = None
    """The S6.2 outbound client (sync flavour), set by Relay's loader; ``None`` when unset."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = config or {}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Check provider-specific settings; raise ``RuntimeError`` naming what is missing."""

    def send_sms(self, request: SmsSendRequest) -> SmsSendResult:
        """Send a message; raise on any provider error."""
        raise NotImplementedError

    def parse_callback(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        query_args: Mapping[str, Any] | None = None,
    ) -> list[SmsCallbackEvent]:
        """Turn a provider callback into events; raise on a bad signature; ``[]`` when none apply."""
        return []

    def get_message_status(self, message_id: str) -> SmsSendResult:
        """Poll the provider for a message's status (providers declaring ``status_polling``)."""
        raise NotImplementedError
