"""The channel port: value classes, delivery errors, the protocol and the S6.1 plain text."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import attrs
import pytest

from relay_core.ports.channels import (
    ActionLinks,
    ChannelCapabilities,
    ChannelRef,
    ChannelSender,
    DeliveryError,
    DeliveryResult,
    GroupView,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
    render_plain_text,
)
from relay_core.testing.fakes import FakeClock, RecordingChannel


def _group(**changes: Any) -> GroupView:
    values: dict[str, Any] = {
        "id": 123,
        "title": "Disk is full",
        "message": "/var is 97% full",
        "severity": "critical",
        "status": "firing",
        "team_slug": "ops",
        "team_name": "Operations",
        "category": "infrastructure",
        "assignee": "alice",
        "event_link": "https://grafana.example.test/alerting/1",
        "alert_url": "https://relay.example.test/alerts/123",
        "source": "alertmanager",
    }
    values.update(changes)
    return GroupView(**values)


def test_plain_text_lists_every_field_in_order() -> None:
    """A fully populated group renders the S6.1 lines in their fixed order."""
    assert render_plain_text("notification", _group()) == (
        "NOTIFICATION: [CRITICAL] Disk is full\n"
        "Team: Operations\n"
        "Category: infrastructure\n"
        "Status: firing\n"
        "Severity: critical\n"
        "Assignee: alice\n"
        "Source: alertmanager\n"
        "Message: /var is 97% full\n"
        "Alert URL: https://relay.example.test/alerts/123\n"
        "Source event: https://grafana.example.test/alerting/1"
    )


def test_plain_text_omits_empty_fields() -> None:
    """Fields without a value produce no line at all."""
    group = _group(category=None, assignee=None, message="  ", event_link=None, source="", alert_url=None)
    assert render_plain_text("reminder", group) == (
        "REMINDER: [CRITICAL] Disk is full\nTeam: Operations\nStatus: firing\nSeverity: critical"
    )


def test_plain_text_builds_the_alert_url_from_the_public_base_url() -> None:
    """With public_base_url the Alert URL line is <public_base_url>/alerts/<group id>."""
    text = render_plain_text(
        "escalation", _group(alert_url=None), public_base_url="https://relay.example.org/"
    )
    assert "Alert URL: https://relay.example.org/alerts/123" in text.splitlines()


def test_plain_text_falls_back_to_the_team_slug() -> None:
    """Without a team name the Team line shows the team slug."""
    assert "Team: ops" in render_plain_text("notification", _group(team_name="")).splitlines()


def test_plain_text_title_override_for_test_events() -> None:
    """A title override replaces the group title in the first line only."""
    first = render_plain_text(
        "test", _group(severity="info"), title="Test notification from Relay"
    ).splitlines()[0]
    assert first == "TEST: [INFO] Test notification from Relay"


def test_retryable_error_carries_message_and_retry_after() -> None:
    """RetryableDeliveryError keeps its message and the optional retry delay."""
    error = RetryableDeliveryError("rate limited", retry_after=30)
    assert str(error) == "rate limited"
    assert error.message == "rate limited"
    assert error.retry_after == 30
    assert RetryableDeliveryError("later").retry_after is None


def test_delivery_errors_are_distinct_classes() -> None:
    """Permanent and retryable failures share a base but are never confused."""
    permanent = PermanentDeliveryError("bad token")
    assert isinstance(permanent, DeliveryError)
    assert not isinstance(permanent, RetryableDeliveryError)
    assert not isinstance(RetryableDeliveryError("x"), PermanentDeliveryError)


def test_outbound_message_defaults() -> None:
    """A message without group, recipient or links carries empty values and no client."""
    message = OutboundMessage(
        event_type="test",
        intent_id=1,
        idempotency_key="k",
        channel=ChannelRef(id=1, name="n", type="recording"),
        clock=FakeClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
    )
    assert message.group is None
    assert message.recipient is None
    assert message.action_links == ActionLinks()
    assert message.http is None
    assert message.channel.config == {}


def test_values_are_frozen() -> None:
    """Port values cannot be changed in place."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        _group().title = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        DeliveryResult(provider="x").skipped = True  # type: ignore[misc]


def test_delivery_result_defaults_to_not_skipped() -> None:
    """A DeliveryResult is a delivery unless marked skipped with a reason."""
    result = DeliveryResult(provider="slack")
    assert (result.skipped, result.skip_reason, result.provider_payload) == (False, None, {})


def test_capabilities_default_to_nothing() -> None:
    """Capabilities are opt-in."""
    assert ChannelCapabilities() == ChannelCapabilities(
        supports_update=False, supports_actions=False, person_addressed=False
    )


def test_protocol_accepts_a_complete_channel() -> None:
    """A class with the class attributes and both coroutines is a ChannelSender."""
    assert isinstance(RecordingChannel(), ChannelSender)


def test_protocol_rejects_a_channel_without_update() -> None:
    """A class missing update() is not a ChannelSender."""

    class SendOnly:
        name: ClassVar[str] = "send_only"
        label: ClassVar[str] = "Send only"
        Config: ClassVar[type[Any]] = object
        capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities()

        async def send(self, message: OutboundMessage) -> DeliveryResult:
            return DeliveryResult(provider=self.name)

    assert not isinstance(SendOnly(), ChannelSender)
