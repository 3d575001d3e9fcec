"""The built-in simulator providers and their shared store (SPEC S7.10, S7.12)."""

from __future__ import annotations

import json
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from relay_adapters import plugin
from relay_adapters.voice.loader import make_sms_loader, make_voice_loader
from relay_adapters.voice.simulator import (
    Provider,
    SimulatorStore,
    SmsProvider,
    sign_body,
    simulator_providers,
)
from relay_core.sms import SmsSendRequest
from relay_core.testing.contracts import CallbackSample, SmsProviderContract, VoiceProviderContract
from relay_core.voice import VoiceCallRequest

SECRET = "s3cret"


def _request(**extra: object) -> VoiceCallRequest:
    return VoiceCallRequest(
        phone="+15550001234",
        text="Relay alert 1. Disk is full.",
        alert_id=1,
        event_type="notification",
        callback_url=f"http://relay.test/api/integrations/voice/callback/4/{SECRET}",
        callback_secret=SECRET,
        metadata={"channel_id": 4},
        **extra,  # type: ignore[arg-type]
    )


def test_place_call_stores_a_ringing_call_masked_in_a_private_file(tmp_path: Path) -> None:
    """place_call returns a call_id, status ringing; the store keeps only the masked phone, mode 0600."""
    provider = Provider({"store_dir": str(tmp_path)})
    result = provider.place_call(_request())
    assert result.status == "ringing"
    stored = json.loads((tmp_path / "simulator.json").read_text())
    call = stored["calls"][result.call_id]
    assert call["to"] == "***1234"
    assert "+15550001234" not in (tmp_path / "simulator.json").read_text()
    assert stat.S_IMODE((tmp_path / "simulator.json").stat().st_mode) == 0o600
    assert provider.get_call_status(str(result.call_id)).status == "ringing"


def test_parse_callback_verifies_the_signature(tmp_path: Path) -> None:
    """A body signed with the call's secret maps to an event; a wrong or missing signature raises."""
    provider = Provider({"store_dir": str(tmp_path)})
    call_id = str(provider.place_call(_request()).call_id)
    body = {"call_id": call_id, "event_type": "dtmf", "digit": "1"}
    raw = json.dumps(body).encode()
    (event,) = provider.parse_callback(body, {"x-simulator-signature": sign_body(SECRET, raw)}, raw, {})
    assert (event.call_id, event.event_type, event.digit) == (call_id, "dtmf", "1")
    for headers in ({"X-Simulator-Signature": sign_body("other", raw)}, {}):
        with pytest.raises(RuntimeError, match="invalid provider callback signature"):
            provider.parse_callback(body, headers, raw, {})


def test_callbacks_false_makes_a_polling_only_provider(tmp_path: Path) -> None:
    """provider_config callbacks=false declares status_polling without status_callback."""
    polling = Provider({"store_dir": str(tmp_path), "callbacks": False})
    assert polling.capabilities.status_polling
    assert not polling.capabilities.status_callback
    assert Provider({}).capabilities.status_callback
    with pytest.raises(RuntimeError, match="callbacks must be true or false"):
        Provider.validate_config({"callbacks": "yes"})


def test_reject_calls_raises_a_provider_error(tmp_path: Path) -> None:
    """reject_calls makes place_call fail with that message (provider errors surface)."""
    provider = Provider({"store_dir": str(tmp_path), "reject_calls": "Insufficient balance"})
    with pytest.raises(RuntimeError, match="Insufficient balance"):
        provider.place_call(_request())


def test_sms_simulator_records_messages(tmp_path: Path) -> None:
    """send_sms stores a sent message with the phone masked."""
    provider = SmsProvider({"store_dir": str(tmp_path)})
    result = provider.send_sms(
        SmsSendRequest(phone="+15550009876", text="hello", alert_id=2, event_type="test")
    )
    assert result.status == "sent"
    assert provider.get_message_status(str(result.message_id)).status == "sent"
    assert "***9876" in (tmp_path / "simulator.json").read_text()


def test_builtins_are_registered_and_bound_to_a_store(tmp_path: Path) -> None:
    """The builtin plugin registers stub and simulator; loaders find them; binding sets the store."""
    assert [p.name for p in plugin.relay_register_voice_providers()] == ["stub", "simulator"]
    assert [p.name for p in plugin.relay_register_sms_providers()] == ["stub", "simulator"]
    assert make_voice_loader().load("simulator") is Provider
    assert make_sms_loader().load("simulator") is SmsProvider
    voice, _sms = simulator_providers(tmp_path / "sim")
    voice({}).place_call(_request())
    assert (tmp_path / "sim" / "simulator.json").exists()


class TestSimulatorContract(VoiceProviderContract):
    """The built-in simulator passes the voice provider conformance kit."""

    provider_class = Provider
    entry_point_name = "builtin"
    load_from_file = False

    @pytest.fixture
    def receiver(self, tmp_path: Path) -> Path:
        return tmp_path / "simulator"

    def make_config(self, receiver: Any) -> dict[str, Any]:
        return {"store_dir": str(receiver)}

    def _signed(self, receiver: Path, body: dict[str, Any], expected: dict[str, Any]) -> CallbackSample:
        call_id = str(self.make_provider(receiver).place_call(self.make_request(receiver)).call_id)
        body = {**body, "call_id": call_id}
        raw = json.dumps(body).encode()
        secret = str(self.make_request(receiver).callback_secret)
        headers = {"X-Simulator-Signature": sign_body(secret, raw), "X-Simulator-Call": call_id}
        return CallbackSample(
            payload=body, raw_body=raw, headers=headers, expected={**expected, "call_id": call_id}
        )

    def status_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [
            self._signed(receiver, {"event_type": "status", "status": "answered"}, {"status": "answered"})
        ]

    def dtmf_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [
            self._signed(receiver, {"event_type": "dtmf", "digit": "1"}, {"event_type": "dtmf", "digit": "1"})
        ]

    def error_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [self._signed(receiver, {"event_type": "error", "message": "boom"}, {"message": "boom"})]

    def bad_signature_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        good = self._signed(receiver, {"event_type": "dtmf", "digit": "1"}, {})
        assert good.headers is not None
        return [attrs.evolve(good, headers={**good.headers, "X-Simulator-Signature": "0" * 64})]

    def arrange_poll(self, receiver: Any, call_id: str) -> str | None:
        def answer(data: dict[str, Any]) -> None:
            data["calls"][call_id]["status"] = "answered"

        SimulatorStore(receiver).transact(answer)
        return "answered"


class TestSimulatorSmsContract(SmsProviderContract):
    """The built-in SMS simulator passes the SMS provider conformance kit."""

    provider_class = SmsProvider
    entry_point_name = "builtin"
    load_from_file = False

    @pytest.fixture
    def receiver(self, tmp_path: Path) -> Path:
        return tmp_path / "simulator"

    def make_config(self, receiver: Any) -> dict[str, Any]:
        return {"store_dir": str(receiver)}

    def _signed(self, receiver: Path, body: dict[str, Any], expected: dict[str, Any]) -> CallbackSample:
        message_id = str(self.make_provider(receiver).send_sms(self.make_request(receiver)).message_id)
        body = {**body, "message_id": message_id}
        raw = json.dumps(body).encode()
        secret = str(self.make_request(receiver).callback_secret)
        headers = {"X-Simulator-Signature": sign_body(secret, raw), "X-Simulator-Call": message_id}
        return CallbackSample(
            payload=body, raw_body=raw, headers=headers, expected={**expected, "message_id": message_id}
        )

    def status_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [
            self._signed(receiver, {"event_type": "status", "status": "delivered"}, {"status": "delivered"})
        ]

    def error_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [self._signed(receiver, {"event_type": "error", "message": "boom"}, {"message": "boom"})]

    def bad_signature_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        good = self._signed(receiver, {"event_type": "status", "status": "delivered"}, {})
        assert good.headers is not None
        return [attrs.evolve(good, headers={**good.headers, "X-Simulator-Signature": "0" * 64})]

    def arrange_poll(self, receiver: Any, message_id: str) -> str | None:
        def deliver(data: dict[str, Any]) -> None:
            data["messages"][message_id]["status"] = "delivered"

        SimulatorStore(receiver).transact(deliver)
        return "delivered"
