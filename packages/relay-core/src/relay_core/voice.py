"""The voice provider API, kept name-for-name compatible with IncidentRelay (SPEC S7.1).

A provider is a class named ``Provider`` subclassing :class:`BaseVoiceProvider`, either in a
module file dropped into ``voice.providers_dir`` or contributed by a plugin through
``relay_register_voice_providers()``. An unchanged IncidentRelay module imports these names from
``app.notifiers.voice.base``; the loader points that alias at this module.

Methods are synchronous: Relay runs them in a worker thread under a hard deadline. Providers
raise on provider errors (never fake success) and set a timeout on every HTTP request; ``http``
offers the outbound client of S6.2 (sync flavour) for that, or ``None`` outside Relay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final

__all__ = [
    "CALL_STATUSES",
    "CALL_STATUS_ANSWERED",
    "CALL_STATUS_BUSY",
    "CALL_STATUS_CANCELLED",
    "CALL_STATUS_COMPLETED",
    "CALL_STATUS_FAILED",
    "CALL_STATUS_LOGGED",
    "CALL_STATUS_NO_ANSWER",
    "CALL_STATUS_QUEUED",
    "CALL_STATUS_RINGING",
    "CALL_STATUS_UNKNOWN",
    "TERMINAL_CALL_STATUSES",
    "VOICE_ACTIONS",
    "VOICE_ACTION_ACKNOWLEDGE",
    "VOICE_ACTION_RESOLVE",
    "VOICE_CALLBACK_DTMF",
    "VOICE_CALLBACK_ERROR",
    "VOICE_CALLBACK_STATUS",
    "VOICE_CALLBACK_TYPES",
    "BaseVoiceProvider",
    "PermanentProviderError",
    "TransientProviderError",
    "VoiceCallCallbackEvent",
    "VoiceCallRequest",
    "VoiceCallResult",
    "VoiceProviderCapabilities",
    "mask_phone",
    "require_config",
]

VOICE_ACTION_ACKNOWLEDGE: Final = "acknowledge"
VOICE_ACTION_RESOLVE: Final = "resolve"
VOICE_ACTIONS: Final = frozenset({VOICE_ACTION_ACKNOWLEDGE, VOICE_ACTION_RESOLVE})

VOICE_CALLBACK_STATUS: Final = "status"
VOICE_CALLBACK_DTMF: Final = "dtmf"
VOICE_CALLBACK_ERROR: Final = "error"
VOICE_CALLBACK_TYPES: Final = frozenset({VOICE_CALLBACK_STATUS, VOICE_CALLBACK_DTMF, VOICE_CALLBACK_ERROR})

CALL_STATUS_QUEUED: Final = "queued"
CALL_STATUS_RINGING: Final = "ringing"
CALL_STATUS_ANSWERED: Final = "answered"
CALL_STATUS_COMPLETED: Final = "completed"
CALL_STATUS_FAILED: Final = "failed"
CALL_STATUS_BUSY: Final = "busy"
CALL_STATUS_NO_ANSWER: Final = "no_answer"
CALL_STATUS_CANCELLED: Final = "cancelled"
CALL_STATUS_UNKNOWN: Final = "unknown"
CALL_STATUS_LOGGED: Final = "logged"
"""Returned by the ``stub`` provider, which only logs the call."""

CALL_STATUSES: Final = frozenset(
    {
        CALL_STATUS_QUEUED,
        CALL_STATUS_RINGING,
        CALL_STATUS_ANSWERED,
        CALL_STATUS_COMPLETED,
        CALL_STATUS_FAILED,
        CALL_STATUS_BUSY,
        CALL_STATUS_NO_ANSWER,
        CALL_STATUS_CANCELLED,
        CALL_STATUS_UNKNOWN,
        CALL_STATUS_LOGGED,
    }
)
TERMINAL_CALL_STATUSES: Final = frozenset(
    {
        CALL_STATUS_COMPLETED,
        CALL_STATUS_FAILED,
        CALL_STATUS_BUSY,
        CALL_STATUS_NO_ANSWER,
        CALL_STATUS_CANCELLED,
    }
)


class TransientProviderError(RuntimeError):
    """The provider may succeed on a later attempt (timeout, rate limit, 5xx)."""


class PermanentProviderError(RuntimeError):
    """Retrying cannot help (rejected credentials, invalid number, bad configuration)."""


@dataclass(frozen=True)
class VoiceProviderCapabilities:
    """Feature flags a provider declares."""

    tts: bool = False
    status_callback: bool = False
    dtmf_callback: bool = False
    status_polling: bool = False


@dataclass(frozen=True)
class VoiceCallRequest:
    """One call to place."""

    phone: str
    text: str
    alert_id: int | None
    event_type: str
    callback_url: str | None = None
    callback_secret: str | None = None
    severity: str | None = None
    title: str | None = None
    message: str | None = None
    assignee: str | None = None
    team: str | None = None
    action_hints: dict[str, str] = field(default_factory=dict)
    """Keypad digits to actions, e.g. ``{"1": "acknowledge", "2": "resolve"}``."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """``channel_id``, ``channel_name``, ``channel_type``, ``idempotency_key``."""


@dataclass(frozen=True)
class VoiceCallResult:
    """What the provider answered to ``place_call`` or ``get_call_status``."""

    call_id: str | None = None
    status: str = CALL_STATUS_QUEUED
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VoiceCallCallbackEvent:
    """One normalized event of a provider callback."""

    call_id: str
    event_type: str
    """``status``, ``dtmf`` or ``error``."""
    status: str | None = None
    digit: str | None = None
    action: str | None = None
    alert_id: int | None = None
    message: str | None = None
    occurred_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class BaseVoiceProvider:
    """Base class of every voice provider; subclasses are named ``Provider``."""

    name: ClassVar[str] = "base"
    capabilities: ClassVar[VoiceProviderCapabilities] = VoiceProviderCapabilities()
    http: Any = None
    """The S6.2 outbound client (sync flavour), set by Relay's loader; ``None`` when unset."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = config or {}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Check provider-specific settings; raise ``RuntimeError`` naming what is missing."""

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        """Place a call; raise on any provider error."""
        raise NotImplementedError

    def parse_callback(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        query_args: Mapping[str, Any] | None = None,
    ) -> list[VoiceCallCallbackEvent]:
        """Turn a provider callback into events; raise on a bad signature; ``[]`` when none apply."""
        return []

    def get_call_status(self, call_id: str) -> VoiceCallResult:
        """Poll the provider for a call's status (providers declaring ``status_polling``)."""
        raise NotImplementedError


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return not value
    return False


def require_config(name: str, config: Mapping[str, Any] | None, keys: Iterable[str]) -> None:
    """Raise ``RuntimeError("<name> config requires: a, b")`` listing the missing or empty ``keys``.

    Args:
        name: The provider name that starts the message.
        config: The provider configuration (``None`` counts as empty).
        keys: Required keys, in the order the message should list them.
    """
    values: Mapping[str, Any] = config or {}
    missing = [key for key in keys if _is_missing(values.get(key))]
    if missing:
        raise RuntimeError(f"{name} config requires: {', '.join(missing)}")


def mask_phone(phone: str | None) -> str:
    """Mask a phone number for logs: ``"+15551234567"`` becomes ``"***4567"``.

    Only the last four digits are kept; a value with four digits or fewer becomes ``"***"``.
    """
    digits = "".join(ch for ch in str(phone or "") if ch.isdigit())
    if len(digits) <= 4:
        return "***"
    return f"***{digits[-4:]}"
