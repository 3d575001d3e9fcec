"""The IncidentRelay-compatible voice and SMS provider API (SPEC S7.1, S7.9)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from relay_core import sms, voice


def _field_names(cls: type[Any]) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


def test_voice_dataclass_fields_match_incidentrelay() -> None:
    """The voice dataclasses have exactly IncidentRelay's fields, in its order."""
    assert _field_names(voice.VoiceProviderCapabilities) == [
        "tts",
        "status_callback",
        "dtmf_callback",
        "status_polling",
    ]
    assert _field_names(voice.VoiceCallRequest) == [
        "phone",
        "text",
        "alert_id",
        "event_type",
        "callback_url",
        "callback_secret",
        "severity",
        "title",
        "message",
        "assignee",
        "team",
        "action_hints",
        "metadata",
    ]
    assert _field_names(voice.VoiceCallResult) == ["call_id", "status", "raw"]
    assert _field_names(voice.VoiceCallCallbackEvent) == [
        "call_id",
        "event_type",
        "status",
        "digit",
        "action",
        "alert_id",
        "message",
        "occurred_at",
        "raw",
    ]


def test_voice_constants_match_incidentrelay() -> None:
    """Action and callback constants have IncidentRelay's values."""
    assert (voice.VOICE_ACTION_ACKNOWLEDGE, voice.VOICE_ACTION_RESOLVE) == ("acknowledge", "resolve")
    assert (voice.VOICE_CALLBACK_STATUS, voice.VOICE_CALLBACK_DTMF, voice.VOICE_CALLBACK_ERROR) == (
        "status",
        "dtmf",
        "error",
    )


def test_call_statuses_and_terminal_subset() -> None:
    """Call statuses are the S7.1 list plus logged, and exactly five of them are terminal."""
    assert {
        "queued",
        "ringing",
        "answered",
        "completed",
        "failed",
        "busy",
        "no_answer",
        "cancelled",
        "unknown",
        "logged",
    } == voice.CALL_STATUSES
    assert {"completed", "failed", "busy", "no_answer", "cancelled"} == voice.TERMINAL_CALL_STATUSES


def test_voice_values_have_independent_defaults() -> None:
    """Defaults are queued/empty and mutable defaults are not shared between instances."""
    first, second = voice.VoiceCallResult(), voice.VoiceCallResult()
    assert (first.call_id, first.status, first.raw) == (None, "queued", {})
    assert first.raw is not second.raw
    request = voice.VoiceCallRequest(phone="+1", text="t", alert_id=None, event_type="test")
    assert (request.action_hints, request.metadata, request.callback_url) == ({}, {}, None)


def test_voice_values_are_frozen() -> None:
    """The dataclasses are immutable, as in IncidentRelay."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        voice.VoiceCallResult().status = "failed"  # type: ignore[misc]


def test_base_provider_defaults() -> None:
    """The base class names itself base, declares nothing and keeps an empty config."""
    provider = voice.BaseVoiceProvider()
    assert provider.name == "base"
    assert provider.capabilities == voice.VoiceProviderCapabilities()
    assert provider.config == {}
    assert provider.http is None
    assert provider.parse_callback({"call_id": "x"}) == []
    voice.BaseVoiceProvider.validate_config({})


def test_base_provider_requires_place_call_and_polling_implementations() -> None:
    """place_call and get_call_status raise NotImplementedError until overridden."""
    provider = voice.BaseVoiceProvider({"a": 1})
    with pytest.raises(NotImplementedError):
        provider.place_call(voice.VoiceCallRequest(phone="+1", text="t", alert_id=1, event_type="test"))
    with pytest.raises(NotImplementedError):
        provider.get_call_status("c1")


def test_incidentrelay_style_subclass_works_unchanged() -> None:
    """An untyped IncidentRelay-style Provider subclass places calls and parses callbacks."""

    class Provider(voice.BaseVoiceProvider):
        name = "mango"
        capabilities = voice.VoiceProviderCapabilities(tts=True, dtmf_callback=True)

        def place_call(self, request):  # type: ignore[no-untyped-def]
            return voice.VoiceCallResult(call_id="m-1", raw={"to": request.phone})

        def parse_callback(self, payload, headers=None, raw_body=None, query_args=None):  # type: ignore[no-untyped-def]
            return [
                voice.VoiceCallCallbackEvent(call_id=payload["id"], event_type="dtmf", digit=payload["d"])
            ]

    provider = Provider({"api_url": "https://mango.example.test"})
    result = provider.place_call(
        voice.VoiceCallRequest(phone="+1555", text="hi", alert_id=1, event_type="test")
    )
    assert (result.call_id, result.status) == ("m-1", "queued")
    assert provider.parse_callback({"id": "m-1", "d": "1"})[0].digit == "1"
    assert provider.config == {"api_url": "https://mango.example.test"}


def test_provider_errors_are_runtime_errors() -> None:
    """Transient and permanent provider errors are distinct RuntimeError subclasses."""
    assert issubclass(voice.TransientProviderError, RuntimeError)
    assert issubclass(voice.PermanentProviderError, RuntimeError)
    assert not issubclass(voice.TransientProviderError, voice.PermanentProviderError)


def test_require_config_names_missing_keys_in_order() -> None:
    """require_config lists every missing key in the order asked for."""
    with pytest.raises(RuntimeError, match=r"^mango config requires: api_url, api_token$"):
        voice.require_config("mango", {}, ["api_url", "api_token"])
    with pytest.raises(RuntimeError, match=r"^mango config requires: api_token$"):
        voice.require_config("mango", {"api_url": "https://x"}, ["api_url", "api_token"])


def test_require_config_treats_blank_values_as_missing() -> None:
    """None, empty and whitespace-only values count as missing; zero and False do not."""
    with pytest.raises(RuntimeError, match=r"requires: a, b, c$"):
        voice.require_config("p", {"a": None, "b": "", "c": "  "}, ["a", "b", "c"])
    voice.require_config("p", {"a": 0, "b": False}, ["a", "b"])
    with pytest.raises(RuntimeError, match=r"requires: a$"):
        voice.require_config("p", None, ["a"])


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+15551234567", "***4567"),
        ("+7 (700) 123-45-67", "***4567"),
        ("1234", "***"),
        ("", "***"),
        (None, "***"),
    ],
)
def test_mask_phone_keeps_only_the_last_four_digits(phone: str | None, masked: str) -> None:
    """mask_phone never reveals more than the last four digits."""
    assert voice.mask_phone(phone) == masked


def test_sms_dataclass_fields() -> None:
    """The SMS dataclasses have the S7.9 fields."""
    assert _field_names(sms.SmsProviderCapabilities) == [
        "delivery_callback",
        "inbound_replies",
        "status_polling",
    ]
    assert _field_names(sms.SmsSendRequest) == [
        "phone",
        "text",
        "alert_id",
        "event_type",
        "callback_url",
        "callback_secret",
        "metadata",
    ]
    assert _field_names(sms.SmsSendResult) == ["message_id", "status", "raw"]
    assert _field_names(sms.SmsCallbackEvent) == [
        "message_id",
        "event_type",
        "status",
        "text",
        "from_phone",
        "message",
        "occurred_at",
        "raw",
    ]
    assert sms.SmsSendResult().status == "queued"


def test_sms_statuses() -> None:
    """SMS statuses are the S7.9 list plus logged; delivered and the failures are terminal."""
    assert {
        "queued",
        "sent",
        "delivered",
        "failed",
        "undelivered",
        "rejected",
        "unknown",
        "logged",
    } == sms.SMS_STATUSES
    assert {"delivered", "failed", "undelivered", "rejected"} == sms.TERMINAL_SMS_STATUSES


def test_sms_base_provider_defaults() -> None:
    """The SMS base class mirrors the voice one."""
    provider = sms.BaseSmsProvider(None)
    assert (provider.name, provider.config, provider.http) == ("base", {}, None)
    assert provider.parse_callback({}) == []
    with pytest.raises(NotImplementedError):
        provider.send_sms(sms.SmsSendRequest(phone="+1", text="t", alert_id=None, event_type="test"))
    with pytest.raises(NotImplementedError):
        provider.get_message_status("m1")


def test_sms_shares_the_voice_helpers_and_errors() -> None:
    """relay_core.sms re-exports the same error classes and helpers as relay_core.voice."""
    assert sms.TransientProviderError is voice.TransientProviderError
    assert sms.PermanentProviderError is voice.PermanentProviderError
    assert sms.require_config is voice.require_config
    assert sms.mask_phone is voice.mask_phone
