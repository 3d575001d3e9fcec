"""The example_http voice provider: the contract suite plus the exact API exchanges."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest

from relay_core.testing.contracts import CallbackSample, VoiceProviderContract
from relay_core.testing.pytest_plugin import LocalHttpServer
from relay_core.voice import PermanentProviderError, TransientProviderError, VoiceCallRequest, VoiceCallResult
from relay_voice_example import Provider
from relay_voice_example.provider import SIGNATURE_HEADER, signature

SECRET = "whsec-example"


def _signed(payload: Any, secret: str = SECRET, **expected: Any) -> CallbackSample:
    body = json.dumps(payload).encode()
    headers = {SIGNATURE_HEADER: signature(secret, body)}
    return CallbackSample(payload=payload, raw_body=body, headers=headers, expected=expected)


class TestExampleHttpProviderContract(VoiceProviderContract):
    """The example_http provider passes VoiceProviderContract against a local voice API."""

    provider_class = Provider
    required_config_keys = ("api_url", "api_token")
    entry_point_name = "example_http"

    @pytest.fixture
    def receiver(self, local_http_server: LocalHttpServer) -> LocalHttpServer:
        """A local server answering like the voice API."""
        local_http_server.respond(201, {"id": "call-1", "status": "queued"}, path="/calls", method="POST")
        return local_http_server

    def make_config(self, receiver: Any) -> dict[str, Any]:
        return {"api_url": f"{receiver.url}/", "api_token": "tok-123", "webhook_secret": SECRET}

    def check_call(self, receiver: Any, request: VoiceCallRequest, result: VoiceCallResult) -> None:
        sent = receiver.last_request
        assert (sent.method, sent.path) == ("POST", "/calls")
        assert sent.header("Authorization") == "Bearer tok-123"
        assert sent.json() == {
            "to": "+15550001234",
            "text": request.text,
            "callback_url": "https://relay.example.test/api/integrations/voice/callback/5/s3cr3t",
            "metadata": {
                "alert_id": 42,
                "event_type": "notification",
                "severity": "critical",
                "team": "ops",
                "assignee": "alice",
            },
            "dtmf": {"enabled": True, "actions": {"1": "acknowledge", "2": "resolve"}},
        }
        assert result == VoiceCallResult(
            call_id="call-1", status="queued", raw={"id": "call-1", "status": "queued"}
        )

    def timeout_config(self, receiver: Any) -> dict[str, Any] | None:
        receiver.respond(hang=True, path="/calls", method="POST")
        return {**self.make_config(receiver), "timeout": 0.2}

    def arrange_failure(self, receiver: Any) -> bool:
        receiver.respond(402, {"error": "Insufficient balance"}, path="/calls", method="POST")
        return True

    def status_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [
            _signed(
                {"call_id": "call-1", "event": "status", "status": "answered"},
                call_id="call-1",
                status="answered",
            ),
            _signed({"id": "call-1", "status": "no-answer"}, event_type="status", status="no_answer"),
        ]

    def dtmf_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        return [
            _signed({"call_id": "call-1", "event": "dtmf", "digit": 1}, digit="1", action=None),
            _signed(
                {"call_id": "call-1", "event_type": "dtmf", "digit": "2", "action": "resolve"},
                digit="2",
                action="resolve",
            ),
        ]

    def error_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        payload = {"call_id": "call-1", "event": "error", "message": "Insufficient balance"}
        return [_signed(payload, status="failed", message="Insufficient balance")]

    def bad_signature_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        payload = {"call_id": "call-1", "status": "answered"}
        tampered = _signed(payload)
        return [
            _signed(payload, secret="wrong-secret"),
            CallbackSample(payload=payload, raw_body=tampered.raw_body, headers={}),
            CallbackSample(payload=payload, raw_body=b'{"call_id": "call-2"}', headers=tampered.headers),
        ]

    def arrange_poll(self, receiver: Any, call_id: str) -> str | None:
        receiver.respond(200, {"id": call_id, "status": "completed"}, path=f"/calls/{call_id}", method="GET")
        return "completed"


def _provider(server: LocalHttpServer, **config: Any) -> Provider:
    return Provider({"api_url": server.url, "api_token": "tok-123", **config})


def _request(**changes: Any) -> VoiceCallRequest:
    values: dict[str, Any] = {"phone": "+15550001234", "text": "Alert", "alert_id": 9, "event_type": "test"}
    values.update(changes)
    return VoiceCallRequest(**values)


def test_validate_config_message_lists_only_missing_keys() -> None:
    """The message names exactly the missing keys, in IncidentRelay's format."""
    with pytest.raises(RuntimeError, match=r"^example_http config requires: api_token$"):
        Provider.validate_config({"api_url": "https://voice.example.test"})


@pytest.mark.parametrize("timeout", [0, -1, "soon"])
def test_validate_config_rejects_bad_timeouts(timeout: Any) -> None:
    """A timeout that is not a positive number is a configuration error."""
    with pytest.raises(RuntimeError, match="timeout"):
        Provider.validate_config({"api_url": "https://v", "api_token": "t", "timeout": timeout})


def test_timeout_defaults_to_ten_seconds() -> None:
    """Without a timeout key each request may take 10 seconds."""
    assert Provider({"api_url": "https://v", "api_token": "t"}).timeout == 10.0
    assert Provider({"api_url": "https://v", "api_token": "t", "timeout": "2.5"}).timeout == 2.5


def test_call_without_hints_disables_dtmf(local_http_server: LocalHttpServer) -> None:
    """A request without action hints asks the API for no keypad handling."""
    local_http_server.respond(200, {"call_id": "c-9"})
    result = _provider(local_http_server).place_call(_request())
    assert local_http_server.last_request.json()["dtmf"] == {"enabled": False, "actions": {}}
    assert (result.call_id, result.status) == ("c-9", "queued")


def test_answer_without_id_returns_no_call_id(local_http_server: LocalHttpServer) -> None:
    """An answer without id is returned with call_id None so Relay can warn about it."""
    local_http_server.respond(200, {"status": "queued"})
    assert _provider(local_http_server).place_call(_request()).call_id is None


@pytest.mark.parametrize(("status", "error"), [(429, TransientProviderError), (503, TransientProviderError)])
def test_overload_answers_are_transient(
    local_http_server: LocalHttpServer, status: int, error: type[Exception]
) -> None:
    """429 and 5xx answers raise TransientProviderError."""
    local_http_server.respond(status, {"error": "busy"})
    with pytest.raises(error, match=str(status)):
        _provider(local_http_server).place_call(_request())


def test_rejections_are_permanent_and_quote_the_api(local_http_server: LocalHttpServer) -> None:
    """Other error answers raise PermanentProviderError with the API's words."""
    local_http_server.respond(400, {"error": "invalid number"})
    with pytest.raises(PermanentProviderError, match="invalid number"):
        _provider(local_http_server).place_call(_request())


def test_unreachable_api_is_transient_and_names_the_error_class() -> None:
    """A refused connection raises TransientProviderError naming ConnectError."""
    with LocalHttpServer() as server:
        provider = _provider(server)
    with pytest.raises(TransientProviderError, match="ConnectError"):
        provider.place_call(_request())


def test_hanging_api_times_out(local_http_server: LocalHttpServer) -> None:
    """An API that never answers raises TransientProviderError after the configured timeout."""
    local_http_server.respond(hang=True)
    with pytest.raises(TransientProviderError, match=r"timed out after 0.2 s"):
        _provider(local_http_server, timeout=0.2).place_call(_request())


def test_relay_client_is_used_when_offered(local_http_server: LocalHttpServer) -> None:
    """When Relay sets http to an httpx.Client the request goes through it."""
    local_http_server.respond(200, {"id": "c-1"})
    provider = _provider(local_http_server)
    with httpx.Client(headers={"X-Relay-Client": "shared"}) as client:
        provider.http = client
        provider.place_call(_request())
    assert local_http_server.last_request.header("X-Relay-Client") == "shared"


def test_polling_quotes_the_call_id_and_normalizes_the_status(local_http_server: LocalHttpServer) -> None:
    """get_call_status requests /calls/<quoted id> and maps provider spellings."""
    local_http_server.respond(200, {"status": "canceled"})
    result = _provider(local_http_server).get_call_status("a/b c")
    assert local_http_server.last_request.path == "/calls/a%2Fb%20c"
    assert local_http_server.last_request.header("Authorization") == "Bearer tok-123"
    assert (result.call_id, result.status) == ("a/b c", "cancelled")


def test_callback_lists_and_unknown_statuses(local_http_server: LocalHttpServer) -> None:
    """A list payload gives one event each and unrecognized statuses become unknown."""
    provider = _provider(local_http_server)
    events = provider.parse_callback(
        [
            {
                "id": "c1",
                "status": "teleported",
                "timestamp": "2026-06-01T07:00:00Z",
                "metadata": {"alert_id": "5"},
            },
            {"call_id": "c1", "digit": "1"},
        ]
    )
    assert [(event.event_type, event.status, event.digit) for event in events] == [
        ("status", "unknown", None),
        ("dtmf", None, "1"),
    ]
    assert events[0].alert_id == 5
    assert events[0].occurred_at is not None
    assert events[0].occurred_at.isoformat() == "2026-06-01T07:00:00+00:00"


def test_callback_without_call_id_is_rejected(local_http_server: LocalHttpServer) -> None:
    """A callback naming no call raises, as IncidentRelay's example provider does."""
    with pytest.raises(RuntimeError, match="call_id is missing"):
        _provider(local_http_server).parse_callback({"status": "answered"})


def test_signature_is_optional_without_a_webhook_secret(local_http_server: LocalHttpServer) -> None:
    """Without webhook_secret callbacks are accepted unsigned."""
    events = _provider(local_http_server).parse_callback({"call_id": "c1", "status": "busy"}, {}, b"{}")
    assert events[0].status == "busy"


def test_headers_are_matched_case_insensitively(local_http_server: LocalHttpServer) -> None:
    """The signature header is found whatever its case."""
    body = b'{"call_id": "c1", "status": "ringing"}'
    headers: Mapping[str, str] = {SIGNATURE_HEADER.lower(): signature(SECRET, body)}
    provider = _provider(local_http_server, webhook_secret=SECRET)
    assert provider.parse_callback(json.loads(body), headers, body)[0].status == "ringing"
