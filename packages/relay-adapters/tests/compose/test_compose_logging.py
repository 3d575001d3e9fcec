"""Structured logging: JSON lines with ts/level/logger/event, secrets and phone numbers hidden."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from relay_adapters.logging import configure_logging, get_logger, mask_email, mask_phone, redact_value
from relay_adapters.settings import load_settings


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(load_settings({}), stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_events_are_json_with_the_standard_keys(log_stream: io.StringIO) -> None:
    """A structlog event is one JSON object: ts (UTC), level, logger, dotted event, bound ids."""
    get_logger("relay.delivery").info("relay.notification.sent", intent_id=7, channel_type="webhook")
    [line] = _lines(log_stream)
    assert list(line)[:4] == ["ts", "level", "logger", "event"]
    assert line["event"] == "relay.notification.sent"
    assert line["level"] == "info"
    assert line["logger"] == "relay.delivery"
    assert line["ts"].endswith("Z")
    assert (line["intent_id"], line["channel_type"]) == (7, "webhook")


def test_secrets_phones_and_emails_never_reach_the_log(log_stream: io.StringIO) -> None:
    """Secret-looking keys are replaced, phone numbers keep 4 digits, e-mails their first letter."""
    get_logger("relay.test").warning(
        "relay.voice.call_placed",
        password="hunter2-password",
        api_token="tok-abcdef-123456",
        headers={"Authorization": "Bearer abc.def", "X-Simulator-Signature": "deadbeef", "Accept": "*/*"},
        phone="+15550001234",
        note="call +1 555 000 9876 or mail jane.doe@example.com",
        url="https://hooks.slack.com/services/T000/B000/XXXX",
        bot="https://api.telegram.org/bot123456:AAHsecret-token/sendMessage",
        query="https://x.example/cb?token=abc123&x=1",
        intent_id=3,
        token_prefix="rly_r_abcdef",
    )
    raw = log_stream.getvalue()
    for secret in (
        "hunter2-password",
        "tok-abcdef-123456",
        "abc.def",
        "deadbeef",
        "+15550001234",
        "000 9876",
        "jane.doe@",
        "T000/B000/XXXX",
        "AAHsecret-token",
        "abc123",
    ):
        assert secret not in raw
    [line] = _lines(log_stream)
    assert line["phone"] == "***1234"
    assert "***9876" in line["note"]
    assert "j***@example.com" in line["note"]
    assert line["headers"]["Accept"] == "*/*"
    assert line["intent_id"] == 3
    assert line["token_prefix"] == "rly_r_abcdef"


def test_standard_library_records_share_the_format(log_stream: io.StringIO) -> None:
    """Records from plain ``logging`` (uvicorn, plugins) are JSON too, and redacted."""
    logging.getLogger("relay.voice.loader").warning("calling %s", "+4915112345678")
    [line] = _lines(log_stream)
    assert line["logger"] == "relay.voice.loader"
    assert line["level"] == "warning"
    assert line["event"] == "calling ***5678"


def test_exceptions_are_rendered_and_redacted(log_stream: io.StringIO) -> None:
    """A traceback is logged as text with secrets inside it hidden."""
    try:
        raise RuntimeError("upstream said Bearer sk_live_123")
    except RuntimeError:
        get_logger("relay.test").exception("relay.worker.error")
    [line] = _lines(log_stream)
    assert "RuntimeError" in line["exception"]
    assert "sk_live_123" not in line["exception"]


def test_mask_helpers() -> None:
    """The masking helpers follow SPEC S13.7."""
    assert mask_phone("+1 (555) 000-1234") == "***1234"
    assert mask_email("jane@example.com") == "j***@example.com"
    assert redact_value({"smtp": {"password": "x"}, "count": 2}) == {
        "smtp": {"password": "<redacted>"},
        "count": 2,
    }
