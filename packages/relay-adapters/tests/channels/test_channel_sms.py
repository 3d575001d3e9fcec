"""The sms channel on SMS providers: stub, loading, text, segments, failures (SPEC S6.11, S7.9)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from relay_adapters.channels import ChannelEnvironment, SmsChannel
from relay_adapters.channels.sms import fit_segments, segment_count
from relay_adapters.voice.loader import make_sms_loader
from relay_adapters.voice.stub import SmsProvider as StubSmsProvider
from relay_core.ports.channels import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    Recipient,
    RetryableDeliveryError,
)
from relay_core.sms import BaseSmsProvider, SmsSendRequest, SmsSendResult
from relay_core.testing.contracts import ChannelContract
from relay_core.voice import PermanentProviderError, TransientProviderError

PHONE = "+15550001234"
BOB = Recipient(user_id=8, username="bob", phone="+15550009876")


class RecordingSmsProvider(BaseSmsProvider):
    """Keeps every request; fails as told by config ``fail``."""

    name: ClassVar[str] = "recording"
    sent: ClassVar[list[SmsSendRequest]] = []

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if "api_key" not in config:
            raise RuntimeError("sms provider recording requires api_key")

    def send_sms(self, request: SmsSendRequest) -> SmsSendResult:
        failure = self.config.get("fail")
        if failure == "transient":
            raise TransientProviderError("carrier busy")
        if failure == "permanent":
            raise PermanentProviderError("number is not mobile")
        type(self).sent.append(request)
        return SmsSendResult(message_id=f"m{len(type(self).sent)}", status="queued", raw={"accepted": True})


@attrs.define
class ProviderState:
    """The contract's receiver: which provider behaviour the next message asks for."""

    fail: str | None = None


def _env(**changes: Any) -> ChannelEnvironment:
    loader = make_sms_loader(builtins={"stub": StubSmsProvider, "recording": RecordingSmsProvider})
    values: dict[str, Any] = {"public_base_url": "https://relay.example.test", "sms_loader": loader}
    values.update(changes)
    return ChannelEnvironment(**values)


@pytest.fixture(autouse=True)
def _fresh_recording() -> None:
    """Forget what earlier tests sent through the recording provider."""
    RecordingSmsProvider.sent = []


class TestSmsContract(ChannelContract):
    """SmsChannel passes ChannelContract with the recording provider."""

    channel_class = SmsChannel
    entry_point_name = "builtin"

    @pytest.fixture
    def receiver(self) -> ProviderState:
        """The provider's scripted behaviour."""
        return ProviderState()

    def make_channel(self, receiver: Any) -> SmsChannel:
        return SmsChannel(env=_env())

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        config: dict[str, Any] = {"api_key": "k"}
        if receiver.fail:
            config["fail"] = receiver.fail
        return {"provider": "recording", "provider_config": config, "callback_secret": "cbs"}

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        (request,) = RecordingSmsProvider.sent
        assert request.phone == PHONE
        assert (
            request.text == "Relay critical #42: Disk is full. firing. https://relay.example.test/alerts/42"
        )
        assert request.alert_id == 42
        assert request.event_type == "notification"
        assert request.callback_url == "https://relay.example.test/api/integrations/sms/callback/5/cbs"
        assert request.callback_secret == "cbs"
        assert request.metadata["channel_id"] == 5
        assert result == DeliveryResult(
            provider="sms:recording",
            external_message_id="m1",
            external_channel_id="5",
            provider_status="queued",
            provider_payload={"accepted": True, "to": "***1234"},
        )

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.fail = "transient" if kind == "retryable" else "permanent"
        return True


async def test_stub_is_the_default_provider(make_message: Any) -> None:
    """Without a provider the global default (stub) logs the message and returns status logged."""
    result = await SmsChannel().send(make_message("sms", {}, recipient=BOB))
    assert result.provider == "sms:stub"
    assert result.provider_status == "logged"
    assert result.provider_payload["to"] == "***9876"
    assert result.provider_payload["phone"] == "***9876"


async def test_missing_phone_is_permanent(make_message: Any) -> None:
    """A recipient without a phone fails permanently with the documented message."""
    with pytest.raises(PermanentDeliveryError) as raised:
        await SmsChannel(env=_env()).send(make_message("sms", {}, recipient=attrs.evolve(BOB, phone=None)))
    assert raised.value.message == "sms phone is missing: set phone on the assigned user"


async def test_test_phone_is_used_for_tests(make_message: Any) -> None:
    """A test delivery goes to test_phone when set."""
    config = {"provider": "recording", "provider_config": {"api_key": "k"}, "test_phone": "+15550005555"}
    await SmsChannel(env=_env()).send(make_message("sms", config, event_type="test", recipient=BOB))
    (request,) = RecordingSmsProvider.sent
    assert request.phone == "+15550005555"
    assert request.text.startswith("Relay critical #test: Test notification from Relay. firing.")


async def test_custom_template_and_segment_cap(make_message: Any, make_group: Any) -> None:
    """text_template fills placeholders and max_segments cuts the text with an ellipsis."""
    config = {
        "provider": "recording",
        "provider_config": {"api_key": "k"},
        "text_template": "{severity}/{team}: {title} {unknown}",
        "max_segments": 1,
    }
    group = make_group(title="x" * 300)
    await SmsChannel(env=_env()).send(make_message("sms", config, group=group, recipient=BOB))
    (request,) = RecordingSmsProvider.sent
    assert request.text.startswith("critical/Operations: xxx")
    assert request.text.endswith("…")
    assert len(request.text) == 70


async def test_provider_config_is_validated(make_message: Any) -> None:
    """The provider's validate_config message becomes a permanent failure."""
    config = {"provider": "recording", "provider_config": {}}
    with pytest.raises(PermanentDeliveryError, match="requires api_key"):
        await SmsChannel(env=_env()).send(make_message("sms", config, recipient=BOB))


async def test_unknown_provider_is_permanent(make_message: Any) -> None:
    """An unknown provider name fails with the loader's message."""
    with pytest.raises(PermanentDeliveryError, match="sms provider not found: nope"):
        await SmsChannel(env=_env()).send(make_message("sms", {"provider": "nope"}, recipient=BOB))


async def test_environment_references_are_resolved(
    make_message: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${ENV}`` values in provider_config are substituted before the provider sees them."""
    monkeypatch.setenv("RELAY_TEST_SMS_KEY", "from-env")
    seen: list[dict[str, Any]] = []

    class Capturing(RecordingSmsProvider):
        def send_sms(self, request: SmsSendRequest) -> SmsSendResult:
            seen.append(dict(self.config))
            return super().send_sms(request)

    env = _env(sms_loader=make_sms_loader(builtins={"capturing": Capturing}))
    config = {"provider": "capturing", "provider_config": {"api_key": "${RELAY_TEST_SMS_KEY}"}}
    await SmsChannel(env=env).send(make_message("sms", config, recipient=BOB))
    assert seen == [{"api_key": "from-env"}]


async def test_file_providers_load_from_the_providers_dir(make_message: Any, tmp_path: Path) -> None:
    """A Provider class in <providers_dir>/<name>.py is used by name."""
    (tmp_path / "filesms.py").write_text(
        "from relay_core.sms import BaseSmsProvider, SmsSendResult\n"
        "class Provider(BaseSmsProvider):\n"
        "    name = 'filesms'\n"
        "    def send_sms(self, request):\n"
        "        return SmsSendResult(message_id='f1', status='sent', raw={})\n"
    )
    env = _env(sms_loader=make_sms_loader(providers_dir=tmp_path, compat_imports=False))
    result = await SmsChannel(env=env).send(make_message("sms", {"provider": "filesms"}, recipient=BOB))
    assert (result.provider, result.external_message_id, result.provider_status) == (
        "sms:filesms",
        "f1",
        "sent",
    )


async def test_transient_provider_error_is_retryable(make_message: Any) -> None:
    """TransientProviderError maps to a retryable failure."""
    config = {"provider": "recording", "provider_config": {"api_key": "k", "fail": "transient"}}
    with pytest.raises(RetryableDeliveryError, match="carrier busy"):
        await SmsChannel(env=_env()).send(make_message("sms", config, recipient=BOB))


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("é" * 160, 1),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
    ],
)
def test_segment_count(text: str, segments: int) -> None:
    """GSM-7 texts hold 160/153 characters per segment, UCS-2 texts 70/67."""
    assert segment_count(text) == segments


def test_fit_segments_cuts_with_an_ellipsis() -> None:
    """A text over the limit is cut to fit three UCS-2 segments including the ellipsis."""
    cut = fit_segments("a" * 1000, 3)
    assert cut.endswith("…")
    assert len(cut) == 201
    assert segment_count(cut) == 3
    assert fit_segments("short", 1) == "short"
