"""Shared set-up of the channel tests: messages, the test environment, outbound clients.

The outbound policy allow-lists 127.0.0.1 only (SPEC S6.2: "tests allow-list 127.0.0.1"), so the
local servers the tests start are reachable and nothing else is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import pytest

from relay_adapters.channels import ChannelEnvironment, OutboundClient
from relay_adapters.channels._http import OutboundOptions
from relay_core.ports.channels import (
    ActionLinks,
    ChannelRef,
    GroupView,
    OutboundMessage,
    Recipient,
    render_plain_text,
)
from relay_core.testing.fakes import FakeClock

NOW: Final = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)
BASE_URL: Final = "https://relay.example.test"
SECRET_KEY: Final = "test-secret-key-0123456789abcdef0123456789"
LOOPBACK_ONLY: Final = OutboundOptions(timeout=5.0, allowlist=("127.0.0.1/32",))
TEST_ENV: Final = ChannelEnvironment(public_base_url=BASE_URL, secret_key=SECRET_KEY, outbound=LOOPBACK_ONLY)


def make_group(**changes: Any) -> GroupView:
    """The sample group (id 42, critical, firing) with ``changes`` applied."""
    values: dict[str, Any] = {
        "id": 42,
        "title": "Disk is full",
        "message": "/var is 97% full",
        "severity": "critical",
        "status": "firing",
        "team_slug": "ops",
        "team_name": "Operations",
        "category": "infrastructure",
        "assignee": "alice",
        "labels": {"host": "db-1"},
        "event_link": "https://monitoring.example.test/alerts/1",
        "alert_url": f"{BASE_URL}/alerts/42",
        "alert_count": 2,
        "firing_count": 2,
        "source": "alertmanager",
    }
    values.update(changes)
    status = values["status"]
    values.setdefault("acknowledged_by", "bob" if status in ("acknowledged", "resolved") else None)
    values.setdefault("resolved_by", "bob" if status == "resolved" else None)
    return GroupView(**values)


def links_for(status: str) -> ActionLinks:
    """Signed-looking action links as the dispatcher offers them for ``status``."""
    if status == "resolved":
        return ActionLinks()
    ack = f"{BASE_URL}/actions/ack.tok" if status == "firing" else None
    return ActionLinks(acknowledge=ack, resolve=f"{BASE_URL}/actions/res.tok")


MessageFactory = Callable[..., OutboundMessage]


@pytest.fixture
def make_message() -> MessageFactory:
    """Build an OutboundMessage for a channel type and config, like the dispatcher does."""

    def build(
        channel_type: str,
        config: Mapping[str, Any],
        *,
        event_type: str = "notification",
        group: GroupView | None = None,
        recipient: Recipient | None = None,
        http: Any = None,
        links: ActionLinks | None = None,
        key: str | None = None,
        channel_id: int = 5,
    ) -> OutboundMessage:
        status = {"acknowledged": "acknowledged", "resolved": "resolved"}.get(event_type, "firing")
        group = group if group is not None else make_group(status=status)
        title = "Test notification from Relay" if event_type == "test" else None
        return OutboundMessage(
            event_type=event_type,
            intent_id=1001,
            idempotency_key=key or f"42:{channel_id}:room:{event_type}:0",
            channel=ChannelRef(id=channel_id, name="ops", type=channel_type, config=dict(config)),
            group=group,
            recipient=recipient,
            text=render_plain_text(event_type, group, title=title),
            action_links=links if links is not None else links_for(group.status),
            http=http,
            clock=FakeClock(NOW),
        )

    return build


@pytest.fixture
async def http() -> AsyncIterator[OutboundClient]:
    """The shared outbound client as the worker builds it, allow-listing 127.0.0.1 only."""
    client = LOOPBACK_ONLY.build()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def env() -> ChannelEnvironment:
    """The channel environment of the tests: public URL, secret key, loopback-only outbound options."""
    return TEST_ENV


@pytest.fixture(name="make_group")
def make_group_fixture() -> Callable[..., GroupView]:
    """The sample group builder (id 42, critical, firing); keyword arguments change fields."""
    return make_group
