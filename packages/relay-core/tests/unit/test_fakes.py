"""The public test support: fakes, the pytest fixtures and the contract suites run against the fakes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import pytest

from relay_core.domain.errors import IntakeValidationError
from relay_core.domain.model import NormalizedAlert
from relay_core.ports.channels import (
    ChannelRef,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.sms import SmsSendRequest
from relay_core.testing.contracts import (
    CallbackSample,
    ChannelContract,
    IntakeSample,
    IntakeSourceContract,
    SmsProviderContract,
    VoiceProviderContract,
)
from relay_core.testing.fakes import (
    FAKE_SIGNATURE_HEADER,
    FakeClock,
    FakeSmsProvider,
    FakeVoiceProvider,
    RecordingChannel,
    fake_signature,
)
from relay_core.testing.pytest_plugin import DEFAULT_FAKE_NOW, LocalHttpServer
from relay_core.voice import PermanentProviderError, TransientProviderError, VoiceCallRequest

START = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)


def _message(config: Mapping[str, Any] | None = None, event_type: str = "notification") -> OutboundMessage:
    return OutboundMessage(
        event_type=event_type,
        intent_id=9,
        idempotency_key=f"k-{event_type}",
        channel=ChannelRef(id=3, name="rec", type="recording", config=config or {}),
        text="hello",
        clock=FakeClock(START),
    )


def _call(phone: str = "+15550001234") -> VoiceCallRequest:
    return VoiceCallRequest(phone=phone, text="Alert", alert_id=1, event_type="notification")


# --- FakeClock ------------------------------------------------------------------------------


def test_fake_clock_stands_still() -> None:
    """now() returns the start until the clock is moved."""
    clock = FakeClock(START)
    assert clock.now() == START
    assert clock.now() == START


def test_fake_clock_advances_by_seconds_or_timedelta() -> None:
    """advance() accepts seconds or a timedelta and returns the new time."""
    clock = FakeClock(START)
    assert clock.advance(90) == START + dt.timedelta(seconds=90)
    assert clock.advance(dt.timedelta(hours=1)) == START + dt.timedelta(seconds=3690)
    assert clock.now() == START + dt.timedelta(seconds=3690)


def test_fake_clock_refuses_to_advance_backwards() -> None:
    """A negative advance is an error; set() is the way back."""
    clock = FakeClock(START)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    clock.set(START - dt.timedelta(days=1))
    assert clock.now() == START - dt.timedelta(days=1)


def test_fake_clock_keeps_utc_and_refuses_naive_times() -> None:
    """Aware inputs are converted to UTC and naive ones are rejected."""
    plus_two = dt.timezone(dt.timedelta(hours=2))
    clock = FakeClock(dt.datetime(2026, 1, 1, 12, 0, tzinfo=plus_two))
    assert clock.now() == dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    assert clock.now().tzinfo is dt.UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(dt.datetime(2026, 1, 1))


def test_fake_clock_fixture_starts_at_the_documented_instant(fake_clock: FakeClock) -> None:
    """The fake_clock fixture starts at 2026-06-01T07:00:00Z."""
    assert fake_clock.now() == DEFAULT_FAKE_NOW == dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)


# --- RecordingChannel -----------------------------------------------------------------------


def test_recording_channel_records_sends() -> None:
    """Each send is recorded with its message and returns a numbered delivery."""
    channel = RecordingChannel()
    first = asyncio.run(channel.send(_message()))
    second = asyncio.run(channel.send(_message(event_type="reminder")))
    assert [first.external_message_id, second.external_message_id] == ["recording-1", "recording-2"]
    assert (first.provider, first.external_channel_id, first.provider_status) == ("recording", "3", "sent")
    assert channel.event_types == ["notification", "reminder"]
    assert channel.messages[0].text == "hello"


def test_recording_channel_update_keeps_the_message_id() -> None:
    """An update is recorded against the earlier delivery and keeps its external id."""
    channel = RecordingChannel()
    previous = asyncio.run(channel.send(_message()))
    updated = asyncio.run(channel.update(_message(event_type="acknowledged"), previous))
    assert updated.external_message_id == previous.external_message_id
    assert updated.provider_status == "updated"
    assert channel.sent[-1].operation == "update"
    assert channel.sent[-1].previous == previous


@pytest.mark.parametrize(
    ("kind", "error"),
    [("retryable", RetryableDeliveryError), ("permanent", PermanentDeliveryError), ("error", RuntimeError)],
)
def test_recording_channel_fails_as_configured(kind: str, error: type[Exception]) -> None:
    """fail_with in the channel config makes every delivery raise that kind of failure."""
    channel = RecordingChannel()
    with pytest.raises(error):
        asyncio.run(channel.send(_message({"fail_with": kind})))
    assert channel.sent == []
    assert channel.attempts[0].error is not None


def test_recording_channel_retryable_failure_carries_retry_after() -> None:
    """retry_after in the config is passed on with a retryable failure."""
    with pytest.raises(RetryableDeliveryError) as raised:
        asyncio.run(RecordingChannel().send(_message({"fail_with": "retryable", "retry_after": 12})))
    assert raised.value.retry_after == 12


def test_recording_channel_fail_next_fails_only_that_many_times() -> None:
    """fail_next() makes the next deliveries fail, after which sending succeeds."""
    channel = RecordingChannel()
    channel.fail_next("retryable", times=2)
    for _ in range(2):
        with pytest.raises(RetryableDeliveryError):
            asyncio.run(channel.send(_message()))
    assert asyncio.run(channel.send(_message())).external_message_id == "recording-1"
    assert len(channel.attempts) == 3
    assert len(channel.sent) == 1


def test_recording_channel_rejects_unknown_failure_kinds() -> None:
    """Only retryable, permanent and error are accepted as failure kinds."""
    with pytest.raises(ValueError, match="fail_with"):
        RecordingChannel().fail_next("sometimes")
    with pytest.raises(ValueError, match="fail_with"):
        RecordingChannel.Config(fail_with="sometimes")


def test_recording_channel_fixture_is_fresh(recording_channel: RecordingChannel) -> None:
    """The recording_channel fixture starts with nothing recorded."""
    assert recording_channel.sent == []
    assert recording_channel.attempts == []


# --- FakeVoiceProvider / FakeSmsProvider ----------------------------------------------------


def test_fake_voice_provider_records_calls_per_isolated_class() -> None:
    """Isolated subclasses keep their own records and number call ids from one."""
    first_cls, second_cls = FakeVoiceProvider.isolated(), FakeVoiceProvider.isolated()
    result = first_cls().place_call(_call())
    assert (result.call_id, result.status) == ("fake-call-1", "queued")
    assert first_cls.calls == [_call()]
    assert second_cls.calls == []
    assert first_cls.name == "fake"


def test_fake_voice_provider_polls_the_status_set_by_the_test() -> None:
    """get_call_status answers the status set for the call, and refuses unknown calls."""
    cls = FakeVoiceProvider.isolated()
    provider = cls({"call_status": "ringing"})
    call_id = provider.place_call(_call()).call_id
    assert call_id is not None
    assert provider.get_call_status(call_id).status == "ringing"
    cls.set_status(call_id, "completed")
    assert provider.get_call_status(call_id).status == "completed"
    with pytest.raises(PermanentProviderError, match="not found"):
        provider.get_call_status("nope")


def test_fake_voice_provider_parses_plain_callbacks() -> None:
    """A callback object becomes one event with digit and action passed through."""
    events = FakeVoiceProvider().parse_callback(
        {"call_id": "c1", "event_type": "dtmf", "status": "answered", "digit": 1, "action": "acknowledge"}
    )
    assert len(events) == 1
    assert (events[0].call_id, events[0].event_type, events[0].status) == ("c1", "dtmf", "answered")
    assert (events[0].digit, events[0].action) == ("1", "acknowledge")
    assert FakeVoiceProvider().parse_callback({"status": "answered"}) == []


def test_fake_voice_provider_infers_dtmf_from_a_digit() -> None:
    """Without event_type a callback with a digit is a dtmf event, else a status event."""
    provider = FakeVoiceProvider()
    assert provider.parse_callback({"call_id": "c1", "digit": "2"})[0].event_type == "dtmf"
    assert provider.parse_callback({"call_id": "c1", "status": "busy"})[0].event_type == "status"


def test_fake_voice_provider_checks_signatures_when_configured() -> None:
    """With signing_secret a callback needs a matching X-Fake-Signature."""
    provider = FakeVoiceProvider({"signing_secret": "k"})
    body = json.dumps({"call_id": "c1", "status": "answered"}).encode()
    good = {FAKE_SIGNATURE_HEADER.lower(): fake_signature("k", body)}
    assert provider.parse_callback(json.loads(body), good, body)[0].status == "answered"
    with pytest.raises(RuntimeError, match="invalid provider callback signature"):
        provider.parse_callback(json.loads(body), {FAKE_SIGNATURE_HEADER: "0" * 64}, body)
    with pytest.raises(RuntimeError, match="invalid provider callback signature"):
        provider.parse_callback(json.loads(body), None, body)


@pytest.mark.parametrize(
    ("kind", "error"),
    [("transient", TransientProviderError), ("permanent", PermanentProviderError), ("error", RuntimeError)],
)
def test_fake_voice_provider_fails_as_configured(kind: str, error: type[Exception]) -> None:
    """fail_with makes place_call raise and records nothing."""
    cls = FakeVoiceProvider.isolated()
    with pytest.raises(error):
        cls({"fail_with": kind}).place_call(_call())
    assert cls.calls == []


def test_fake_voice_provider_validates_fail_with() -> None:
    """An unknown fail_with value is a configuration error."""
    with pytest.raises(RuntimeError, match="fail_with"):
        FakeVoiceProvider.validate_config({"fail_with": "maybe"})


def test_fake_sms_provider_records_and_parses() -> None:
    """The SMS fake records messages, answers polls and parses reply callbacks."""
    cls = FakeSmsProvider.isolated()
    provider = cls()
    request = SmsSendRequest(phone="+15550001234", text="hi", alert_id=2, event_type="notification")
    result = provider.send_sms(request)
    assert (result.message_id, result.status) == ("fake-sms-1", "queued")
    assert cls.messages == [request]
    cls.set_status("fake-sms-1", "delivered")
    assert provider.get_message_status("fake-sms-1").status == "delivered"
    events = provider.parse_callback(
        {"message_id": "fake-sms-1", "event_type": "reply", "text": "1a", "from_phone": "+1"}
    )
    assert (events[0].event_type, events[0].text, events[0].from_phone) == ("reply", "1a", "+1")


# --- local_http_server ----------------------------------------------------------------------


def _request(
    url: str, *, method: str = "GET", body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def test_local_http_server_records_requests(local_http_server: LocalHttpServer) -> None:
    """Method, path, query, lower-cased headers and body of each request are recorded."""
    status, _ = _request(
        f"{local_http_server.url}/hooks/a?x=1&x=2",
        method="POST",
        body=b'{"k": 1}',
        headers={"X-Token": "t", "Content-Type": "application/json"},
    )
    assert status == 200
    recorded = local_http_server.last_request
    assert (recorded.method, recorded.path, recorded.query) == ("POST", "/hooks/a", {"x": ["1", "2"]})
    assert recorded.header("x-token") == recorded.headers["x-token"] == "t"
    assert recorded.json() == {"k": 1}
    assert recorded.target == "/hooks/a?x=1&x=2"


def test_local_http_server_answers_as_configured(local_http_server: LocalHttpServer) -> None:
    """The default answer, path routes and one-shot answers are served in that precedence."""
    local_http_server.respond(201, {"id": "abc"})
    local_http_server.respond(404, "missing", path="/gone")
    local_http_server.enqueue(503, b"busy")
    assert _request(f"{local_http_server.url}/x") == (503, b"busy")
    assert _request(f"{local_http_server.url}/x") == (201, b'{"id": "abc"}')
    assert _request(f"{local_http_server.url}/gone") == (404, b"missing")
    assert len(local_http_server.requests) == 3


def test_local_http_server_routes_by_method(local_http_server: LocalHttpServer) -> None:
    """A route with a method applies only to that method."""
    local_http_server.respond(200, {"status": "answered"}, path="/calls/1", method="GET")
    assert _request(f"{local_http_server.url}/calls/1") == (200, b'{"status": "answered"}')
    assert _request(f"{local_http_server.url}/calls/1", method="POST", body=b"")[0] == 200
    assert local_http_server.last_request.body == b""


def test_local_http_server_hang_makes_clients_time_out(local_http_server: LocalHttpServer) -> None:
    """A hanging answer never arrives, so a client with a timeout gives up."""
    local_http_server.respond(hang=True)
    request = urllib.request.Request(f"{local_http_server.url}/slow")  # noqa: S310
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(request, timeout=0.2)  # noqa: S310
    assert local_http_server.last_request.path == "/slow"


def test_local_http_server_clear_forgets_requests(local_http_server: LocalHttpServer) -> None:
    """clear() drops recorded requests and queued answers."""
    local_http_server.enqueue(500)
    _request(f"{local_http_server.url}/a")
    local_http_server.enqueue(500)
    local_http_server.clear()
    assert local_http_server.requests == []
    assert _request(f"{local_http_server.url}/b")[0] == 200


def test_local_http_server_works_as_a_context_manager() -> None:
    """Used directly, the server starts on a free local port and stops on exit."""
    with LocalHttpServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert _request(server.url)[0] == 200
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


# --- the contract suites, run against the fakes ---------------------------------------------


class TestRecordingChannelMeetsChannelContract(ChannelContract):
    """RecordingChannel passes ChannelContract."""

    channel_class = RecordingChannel

    @pytest.fixture
    def receiver(self, recording_channel: RecordingChannel) -> RecordingChannel:
        """The channel records its own deliveries, so it is its own receiver."""
        return recording_channel

    def make_channel(self, receiver: Any) -> Any:
        return receiver

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        assert receiver.sent[-1].message is message
        assert result.external_message_id == "recording-1"

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.fail_with = kind
        return True


class _VoiceApi:
    """Stands in for a carrier: holds config overrides the fake provider reads."""

    def __init__(self) -> None:
        self.overrides: dict[str, Any] = {}


def _signed(secret: str, payload: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {FAKE_SIGNATURE_HEADER: fake_signature(secret, body)}


def _sample(secret: str, payload: Mapping[str, Any], expected: Mapping[str, Any]) -> CallbackSample:
    body, headers = _signed(secret, payload)
    return CallbackSample(payload=dict(payload), raw_body=body, headers=headers, expected=expected)


class TestFakeVoiceProviderMeetsVoiceContract(VoiceProviderContract):
    """FakeVoiceProvider passes VoiceProviderContract (it is not a drop-in file provider)."""

    provider_class = FakeVoiceProvider.isolated()
    load_from_file = False

    @pytest.fixture
    def receiver(self) -> _VoiceApi:
        """A fresh stand-in carrier."""
        return _VoiceApi()

    def make_config(self, receiver: Any) -> dict[str, Any]:
        return {"signing_secret": "k", **receiver.overrides}

    def arrange_failure(self, receiver: Any) -> bool:
        receiver.overrides["fail_with"] = "transient"
        return True

    def status_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [
            _sample("k", {"call_id": "c1", "status": "answered"}, {"call_id": "c1", "status": "answered"})
        ]

    def dtmf_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [
            _sample("k", {"call_id": "c1", "digit": "1"}, {"digit": "1", "action": None}),
            _sample("k", {"call_id": "c1", "event_type": "dtmf", "action": "resolve"}, {"action": "resolve"}),
        ]

    def error_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        payload = {
            "call_id": "c1",
            "event_type": "error",
            "status": "failed",
            "message": "Insufficient balance",
        }
        return [_sample("k", payload, {"status": "failed", "message": "Insufficient balance"})]

    def bad_signature_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        good = _sample("k", {"call_id": "c1", "status": "answered"}, {})
        return [
            attrs.evolve(
                good, headers={FAKE_SIGNATURE_HEADER: fake_signature("other", good.raw_body or b"")}
            ),
            attrs.evolve(good, headers={}),
        ]

    def arrange_poll(self, receiver: Any, call_id: str) -> str | None:
        self.provider_class.set_status(call_id, "completed")  # type: ignore[attr-defined]
        return "completed"


class TestFakeSmsProviderMeetsSmsContract(SmsProviderContract):
    """FakeSmsProvider passes SmsProviderContract."""

    provider_class = FakeSmsProvider.isolated()
    load_from_file = False

    def status_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [
            CallbackSample(
                payload={"message_id": "m1", "status": "delivered"}, expected={"status": "delivered"}
            )
        ]

    def reply_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        payload = {"message_id": "m1", "event_type": "reply", "text": "1a"}
        return [CallbackSample(payload=payload, expected={"text": "1a"})]

    def arrange_poll(self, receiver: Any, message_id: str) -> str | None:
        self.provider_class.set_status(message_id, "delivered")  # type: ignore[attr-defined]
        return "delivered"


class LineSource:
    """A tiny intake source: one alert per non-empty line ``<dedup_key> <title>``."""

    name: ClassVar[str] = "lines"
    path_aliases: ClassVar[tuple[str, ...]] = ("text-lines",)
    content_types: ClassVar[tuple[str, ...]] = ("text/plain",)
    default_group_by: ClassVar[tuple[str, ...]] = ("dedup_key",)

    def parse(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> list[NormalizedAlert]:
        lines = [line.strip() for line in body.decode("utf-8", "replace").splitlines() if line.strip()]
        if not lines:
            raise IntakeValidationError("body is empty", details=[{"loc": ["body"], "message": "empty"}])
        alerts = []
        for line in lines:
            key, _, title = line.partition(" ")
            alerts.append(NormalizedAlert(source=self.name, dedup_key=key, title=title))
        return alerts


class TestLineSourceMeetsIntakeContract(IntakeSourceContract):
    """A minimal source passes IntakeSourceContract."""

    source_class = LineSource

    def valid_samples(self) -> Sequence[IntakeSample]:
        return [
            IntakeSample(
                body=b"disk-1 Disk full\ncpu-2 CPU hot\n",
                expected=[
                    {"dedup_key": "disk-1", "title": "Disk full"},
                    {"dedup_key": "cpu-2", "title": "CPU hot"},
                ],
                headers={"content-type": "text/plain"},
            )
        ]

    def invalid_samples(self) -> Sequence[IntakeSample]:
        return [IntakeSample(body=b""), IntakeSample(body=b"\n  \n")]


class _NamelessChannel(RecordingChannel):
    name: ClassVar[str] = "Bad-Name"


@attrs.frozen
class _LeakyConfig:
    api_token: str = ""


class _LeakyConfigChannel(RecordingChannel):
    Config: ClassVar[type[Any]] = _LeakyConfig


def test_channel_contract_catches_a_bad_name() -> None:
    """The naming check fails for a channel name outside ^[a-z][a-z0-9_]*$."""

    class Suite(ChannelContract):
        channel_class = _NamelessChannel

    with pytest.raises(AssertionError):
        Suite().test_name_follows_the_naming_rule()


def test_channel_contract_catches_an_unmarked_secret() -> None:
    """The secret check fails for a token field without secret metadata."""

    class Suite(ChannelContract):
        channel_class = _LeakyConfigChannel

    with pytest.raises(AssertionError, match="api_token"):
        Suite().test_secret_like_config_fields_are_marked_secret()


def test_voice_contract_catches_a_provider_that_hides_errors() -> None:
    """The provider-error check fails when place_call swallows the API error."""

    class Quiet(FakeVoiceProvider):
        def place_call(self, request: VoiceCallRequest) -> Any:
            try:
                return super().place_call(request)
            except RuntimeError:
                return FakeVoiceProvider.isolated()().place_call(request)

    class Suite(TestFakeVoiceProviderMeetsVoiceContract):
        provider_class = Quiet

    receiver = _VoiceApi()
    with pytest.raises(pytest.fail.Exception):
        Suite().test_provider_errors_raise(receiver)


def test_voice_contract_requires_samples_for_declared_capabilities() -> None:
    """A provider declaring dtmf_callback without dtmf samples fails the dtmf check."""

    class Suite(VoiceProviderContract):
        provider_class = FakeVoiceProvider.isolated()
        load_from_file = False

    with pytest.raises(pytest.fail.Exception, match="dtmf_samples"):
        Suite().test_dtmf_callbacks_map_to_events(None)


def test_voice_contract_names_missing_required_keys() -> None:
    """The validate_config check fails when the message does not name a required key."""

    class Vague(FakeVoiceProvider):
        @classmethod
        def validate_config(cls, config: dict[str, Any]) -> None:
            if not config:
                raise RuntimeError("config is incomplete")

    class Suite(VoiceProviderContract):
        provider_class = Vague
        required_config_keys = ("api_url",)

    with pytest.raises(AssertionError, match="api_url"):
        Suite().test_validate_config_rejects_empty_config_naming_the_keys()
