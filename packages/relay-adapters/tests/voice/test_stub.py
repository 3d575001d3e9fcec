"""The built-in stub voice and SMS providers (SPEC S7.10)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from relay_adapters.voice import stub
from relay_core.sms import SmsSendRequest
from relay_core.testing.contracts import SmsProviderContract, VoiceProviderContract
from relay_core.voice import VoiceCallRequest

PHONE = "+15550001234"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a socket fail."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the stub must not use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
def test_voice_stub_logs_the_call_and_returns_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The stub returns status logged with a generated id and logs the masked phone and the text."""
    request = VoiceCallRequest(phone=PHONE, text="Disk is full", alert_id=7, event_type="notification")
    with caplog.at_level(logging.INFO, logger="relay.voice.stub"):
        result = stub.Provider().place_call(request)
    assert result.status == "logged"
    assert result.call_id is not None
    assert result.call_id.startswith("stub-")
    assert result.raw["phone"] == "***1234"
    assert result.raw["text"] == "Disk is full"
    assert "***1234" in caplog.text
    assert "Disk is full" in caplog.text


def test_voice_stub_never_reveals_the_full_number(caplog: pytest.LogCaptureFixture) -> None:
    """Neither the log nor the result contains the full phone number."""
    request = VoiceCallRequest(phone=PHONE, text="t", alert_id=None, event_type="test")
    with caplog.at_level(logging.DEBUG):
        result = stub.Provider().place_call(request)
    assert "5550001234" not in caplog.text
    assert "5550001234" not in repr(result)


def test_voice_stub_generates_distinct_ids() -> None:
    """Each call gets its own id."""
    request = VoiceCallRequest(phone=PHONE, text="t", alert_id=None, event_type="test")
    ids = {stub.Provider().place_call(request).call_id for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.usefixtures("no_network")
def test_sms_stub_logs_the_message_and_returns_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The SMS stub returns status logged with a generated id and never the full number."""
    request = SmsSendRequest(phone=PHONE, text="Relay critical #7", alert_id=7, event_type="notification")
    with caplog.at_level(logging.INFO, logger="relay.voice.stub"):
        result = stub.SmsProvider().send_sms(request)
    assert result.status == "logged"
    assert result.message_id is not None
    assert result.message_id.startswith("stub-")
    assert result.raw["phone"] == "***1234"
    assert "***1234" in caplog.text
    assert "5550001234" not in caplog.text


def test_stubs_accept_any_config() -> None:
    """The stubs need no configuration."""
    stub.Provider.validate_config({})
    stub.SmsProvider.validate_config({})


class TestStubVoiceProviderContract(VoiceProviderContract):
    """The voice stub passes VoiceProviderContract, including loading from its own file."""

    provider_class = stub.Provider


class TestStubSmsProviderContract(SmsProviderContract):
    """The SMS stub passes SmsProviderContract (it is built in, not a drop-in file)."""

    provider_class = stub.SmsProvider
    load_from_file = False
