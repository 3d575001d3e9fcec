"""Test doubles for Relay and for plugin authors (SPEC S7.12).

- :class:`FakeClock`: time that moves only when a test says so.
- :class:`RecordingChannel`: a channel type ``recording`` that keeps every delivery in memory
  and fails on request.
- :class:`FakeVoiceProvider` / :class:`FakeSmsProvider`: providers named ``fake`` that record
  what they were asked to send and parse a plain callback shape.

Nothing here touches the network or the wall clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.sms import (
    BaseSmsProvider,
    SmsCallbackEvent,
    SmsProviderCapabilities,
    SmsSendRequest,
    SmsSendResult,
)
from relay_core.voice import (
    CALL_STATUS_QUEUED,
    VOICE_CALLBACK_DTMF,
    VOICE_CALLBACK_STATUS,
    BaseVoiceProvider,
    PermanentProviderError,
    TransientProviderError,
    VoiceCallCallbackEvent,
    VoiceCallRequest,
    VoiceCallResult,
    VoiceProviderCapabilities,
)

__all__ = [
    "FAIL_ERROR",
    "FAIL_PERMANENT",
    "FAIL_RETRYABLE",
    "FAKE_SIGNATURE_HEADER",
    "FakeClock",
    "FakeSmsProvider",
    "FakeVoiceProvider",
    "RecordedDelivery",
    "RecordingChannel",
    "RecordingConfig",
    "fake_signature",
]

FAIL_RETRYABLE: Final = "retryable"
FAIL_PERMANENT: Final = "permanent"
FAIL_ERROR: Final = "error"
"""An unclassified exception, which the dispatcher treats as retryable (S6.13)."""
_FAILURES: Final = (FAIL_RETRYABLE, FAIL_PERMANENT, FAIL_ERROR)

FAKE_SIGNATURE_HEADER: Final = "X-Fake-Signature"


# --- time ---------------------------------------------------------------------------------


class FakeClock:
    """A :class:`~relay_core.ports.clock.Clock` that stands still until moved.

    Args:
        start: The first value of :meth:`now`; must be timezone-aware (kept in UTC).
    """

    def __init__(self, start: dt.datetime) -> None:
        self._now = _as_utc(start)

    def now(self) -> dt.datetime:
        """Return the current fake time."""
        return self._now

    def advance(self, seconds: float | dt.timedelta = 0.0) -> dt.datetime:
        """Move forward by ``seconds`` (a number or a timedelta) and return the new time."""
        delta = seconds if isinstance(seconds, dt.timedelta) else dt.timedelta(seconds=seconds)
        if delta < dt.timedelta(0):
            raise ValueError("FakeClock.advance() cannot move backwards; use set()")
        self._now += delta
        return self._now

    def set(self, when: dt.datetime) -> None:
        """Jump to ``when`` (forwards or backwards)."""
        self._now = _as_utc(when)

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"


def _as_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("FakeClock needs a timezone-aware datetime")
    return value.astimezone(dt.UTC)


# --- channels -----------------------------------------------------------------------------


def _failure_kind(
    _instance: object, attribute: attrs.Attribute[Any], value: str | None
) -> None:  # attrs validator signature
    if value is not None and value not in _FAILURES:
        raise ValueError(f"{attribute.name} must be one of {', '.join(_FAILURES)}, not {value!r}")


@attrs.frozen(kw_only=True)
class RecordingConfig:
    """Configuration of a ``recording`` channel."""

    fail_with: str | None = attrs.field(default=None, validator=_failure_kind)
    """``retryable``, ``permanent`` or ``error`` to make every delivery fail that way."""
    retry_after: float | None = None
    """``retry_after`` of the :class:`RetryableDeliveryError` raised for ``fail_with = "retryable"``."""


@attrs.frozen(kw_only=True)
class RecordedDelivery:
    """One call to :meth:`RecordingChannel.send` or :meth:`RecordingChannel.update`."""

    operation: str
    """``send`` or ``update``."""
    message: OutboundMessage
    previous: DeliveryResult | None = None
    result: DeliveryResult | None = None
    """``None`` when the attempt failed."""
    error: str | None = None


class RecordingChannel:
    """A channel type named ``recording`` that delivers into memory.

    Successful deliveries are appended to :attr:`sent`; every attempt, failed or not, to
    :attr:`attempts`. Failures come from the channel config (``fail_with``), from the
    :attr:`fail_with` attribute, or one at a time from :meth:`fail_next`.
    """

    name: ClassVar[str] = "recording"
    label: ClassVar[str] = "Recording (tests)"
    Config: ClassVar[type[Any]] = RecordingConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=True, supports_actions=True, person_addressed=False
    )

    def __init__(self) -> None:
        self.sent: list[RecordedDelivery] = []
        self.attempts: list[RecordedDelivery] = []
        self.fail_with: str | None = None
        self._fail_queue: list[str] = []

    def fail_next(self, kind: str = FAIL_RETRYABLE, times: int = 1) -> None:
        """Make the next ``times`` deliveries fail with ``kind``, then succeed again."""
        _failure_kind(None, attrs.fields(RecordingConfig).fail_with, kind)
        self._fail_queue.extend([kind] * times)

    @property
    def messages(self) -> list[OutboundMessage]:
        """The messages of the successful deliveries, oldest first."""
        return [record.message for record in self.sent]

    @property
    def event_types(self) -> list[str]:
        """The event types of the successful deliveries, oldest first."""
        return [record.message.event_type for record in self.sent]

    def clear(self) -> None:
        """Forget every recorded delivery and pending failure."""
        self.sent.clear()
        self.attempts.clear()
        self._fail_queue.clear()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Record a first delivery."""
        return self._deliver("send", message, None)

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """Record an edit of ``previous``; the external message id is kept."""
        return self._deliver("update", message, previous)

    def _deliver(
        self, operation: str, message: OutboundMessage, previous: DeliveryResult | None
    ) -> DeliveryResult:
        config = _recording_config(message.channel.config)
        failure = self._fail_queue.pop(0) if self._fail_queue else (self.fail_with or config.fail_with)
        if failure is not None:
            error = f"recording channel {message.channel.id} configured to fail ({failure})"
            self.attempts.append(
                RecordedDelivery(operation=operation, message=message, previous=previous, error=error)
            )
            if failure == FAIL_RETRYABLE:
                raise RetryableDeliveryError(error, retry_after=config.retry_after)
            if failure == FAIL_PERMANENT:
                raise PermanentDeliveryError(error)
            raise RuntimeError(error)
        if previous is not None and previous.external_message_id:
            external_id = previous.external_message_id
        else:
            external_id = f"recording-{len(self.sent) + 1}"
        result = DeliveryResult(
            provider=self.name,
            external_message_id=external_id,
            external_channel_id=str(message.channel.id),
            provider_status="updated" if operation == "update" else "sent",
            provider_payload={"event_type": message.event_type, "text": message.text},
        )
        record = RecordedDelivery(operation=operation, message=message, previous=previous, result=result)
        self.attempts.append(record)
        self.sent.append(record)
        return result


def _recording_config(config: Mapping[str, Any]) -> RecordingConfig:
    retry_after = config.get("retry_after")
    return RecordingConfig(
        fail_with=config.get("fail_with"),
        retry_after=None if retry_after is None else float(retry_after),
    )


# --- voice and SMS ------------------------------------------------------------------------


def fake_signature(secret: str, body: bytes) -> str:
    """The ``X-Fake-Signature`` value the fake providers expect: hex HMAC-SHA256 of ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check_fake_signature(
    config: Mapping[str, Any], headers: Mapping[str, str] | None, raw_body: bytes | None
) -> None:
    secret = config.get("signing_secret")
    if not secret:
        return
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    given = lowered.get(FAKE_SIGNATURE_HEADER.lower(), "")
    if not hmac.compare_digest(given, fake_signature(str(secret), raw_body or b"")):
        raise RuntimeError("invalid provider callback signature")


def _raise_configured_failure(config: Mapping[str, Any], what: str) -> None:
    failure = config.get("fail_with")
    if failure == "transient":
        raise TransientProviderError(f"fake {what} failed (transient)")
    if failure == "permanent":
        raise PermanentProviderError(f"fake {what} failed (permanent)")
    if failure == FAIL_ERROR:
        raise RuntimeError(f"fake {what} failed")


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _optional_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


class FakeVoiceProvider(BaseVoiceProvider):
    """A voice provider named ``fake`` that records calls instead of placing them.

    Each class keeps its own :attr:`calls` and :attr:`statuses`; :meth:`isolated` makes a fresh
    subclass so tests do not share records. Config keys (all optional): ``fail_with``
    (``transient``, ``permanent`` or ``error``), ``call_status`` (status of new calls,
    default ``queued``), ``signing_secret`` (callbacks must carry ``X-Fake-Signature``).
    Callbacks are objects ``{"call_id", "event_type", "status", "digit", "action",
    "message", "alert_id"}``.
    """

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[VoiceProviderCapabilities] = VoiceProviderCapabilities(
        tts=True, status_callback=True, dtmf_callback=True, status_polling=True
    )
    calls: ClassVar[list[VoiceCallRequest]] = []
    statuses: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.calls = []
        cls.statuses = {}

    @classmethod
    def isolated(cls) -> type[FakeVoiceProvider]:
        """Return a new subclass with empty records."""
        return type(cls.__name__, (cls,), {"__module__": cls.__module__})

    @classmethod
    def set_status(cls, call_id: str, status: str) -> None:
        """Set what :meth:`get_call_status` answers for ``call_id``."""
        cls.statuses[call_id] = status

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Accept any config except an unknown ``fail_with``."""
        failure = config.get("fail_with")
        if failure not in (None, "transient", "permanent", FAIL_ERROR):
            raise RuntimeError(f"fake config fail_with must be transient, permanent or error, not {failure}")

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        """Record ``request`` and return a new call id."""
        _raise_configured_failure(self.config, "call")
        type(self).calls.append(request)
        call_id = f"fake-call-{len(type(self).calls)}"
        status = str(self.config.get("call_status") or CALL_STATUS_QUEUED)
        type(self).statuses[call_id] = status
        return VoiceCallResult(call_id=call_id, status=status, raw={"call_id": call_id, "status": status})

    def parse_callback(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        query_args: Mapping[str, Any] | None = None,
    ) -> list[VoiceCallCallbackEvent]:
        """Map one callback object to one event; ``[]`` when it names no call."""
        _check_fake_signature(self.config, headers, raw_body)
        if not isinstance(payload, Mapping):
            raise RuntimeError("fake callback payload must be an object")
        call_id = _optional_str(payload.get("call_id"))
        if call_id is None:
            return []
        digit = _optional_str(payload.get("digit"))
        default_type = VOICE_CALLBACK_DTMF if digit is not None else VOICE_CALLBACK_STATUS
        return [
            VoiceCallCallbackEvent(
                call_id=call_id,
                event_type=str(payload.get("event_type") or default_type),
                status=_optional_str(payload.get("status")),
                digit=digit,
                action=_optional_str(payload.get("action")),
                alert_id=_optional_int(payload.get("alert_id")),
                message=_optional_str(payload.get("message")),
                raw=dict(payload),
            )
        ]

    def get_call_status(self, call_id: str) -> VoiceCallResult:
        """Answer the status last set for ``call_id``."""
        _raise_configured_failure(self.config, "status poll")
        try:
            status = type(self).statuses[call_id]
        except KeyError:
            raise PermanentProviderError(f"fake call not found: {call_id}") from None
        return VoiceCallResult(call_id=call_id, status=status, raw={"call_id": call_id, "status": status})


class FakeSmsProvider(BaseSmsProvider):
    """An SMS provider named ``fake`` that records messages instead of sending them.

    Mirrors :class:`FakeVoiceProvider`: per-class :attr:`messages` and :attr:`statuses`,
    :meth:`isolated`, config ``fail_with``/``message_status``/``signing_secret``. Callbacks are
    objects ``{"message_id", "event_type", "status", "text", "from_phone", "message"}``.
    """

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[SmsProviderCapabilities] = SmsProviderCapabilities(
        delivery_callback=True, inbound_replies=True, status_polling=True
    )
    messages: ClassVar[list[SmsSendRequest]] = []
    statuses: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.messages = []
        cls.statuses = {}

    @classmethod
    def isolated(cls) -> type[FakeSmsProvider]:
        """Return a new subclass with empty records."""
        return type(cls.__name__, (cls,), {"__module__": cls.__module__})

    @classmethod
    def set_status(cls, message_id: str, status: str) -> None:
        """Set what :meth:`get_message_status` answers for ``message_id``."""
        cls.statuses[message_id] = status

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Accept any config except an unknown ``fail_with``."""
        failure = config.get("fail_with")
        if failure not in (None, "transient", "permanent", FAIL_ERROR):
            raise RuntimeError(f"fake config fail_with must be transient, permanent or error, not {failure}")

    def send_sms(self, request: SmsSendRequest) -> SmsSendResult:
        """Record ``request`` and return a new message id."""
        _raise_configured_failure(self.config, "message")
        type(self).messages.append(request)
        message_id = f"fake-sms-{len(type(self).messages)}"
        status = str(self.config.get("message_status") or "queued")
        type(self).statuses[message_id] = status
        return SmsSendResult(
            message_id=message_id, status=status, raw={"message_id": message_id, "status": status}
        )

    def parse_callback(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        query_args: Mapping[str, Any] | None = None,
    ) -> list[SmsCallbackEvent]:
        """Map one callback object to one event; ``[]`` when it names no message."""
        _check_fake_signature(self.config, headers, raw_body)
        if not isinstance(payload, Mapping):
            raise RuntimeError("fake callback payload must be an object")
        message_id = _optional_str(payload.get("message_id"))
        if message_id is None:
            return []
        return [
            SmsCallbackEvent(
                message_id=message_id,
                event_type=str(payload.get("event_type") or "status"),
                status=_optional_str(payload.get("status")),
                text=_optional_str(payload.get("text")),
                from_phone=_optional_str(payload.get("from_phone")),
                message=_optional_str(payload.get("message")),
                raw=dict(payload),
            )
        ]

    def get_message_status(self, message_id: str) -> SmsSendResult:
        """Answer the status last set for ``message_id``."""
        _raise_configured_failure(self.config, "status poll")
        try:
            status = type(self).statuses[message_id]
        except KeyError:
            raise PermanentProviderError(f"fake message not found: {message_id}") from None
        return SmsSendResult(
            message_id=message_id, status=status, raw={"message_id": message_id, "status": status}
        )
