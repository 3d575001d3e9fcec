"""Test messages: send event ``test`` to a set of destinations and collect outcomes (S6.1, S8.7).

A test run writes one outbox intent per destination, tagged with a ``test_id`` and without an
alert group, sends each through the registered channel sender at once (no retries: a test
reports the first outcome), and records the outcome on the intent (status, error) and, for
successful sends, a delivery record holding the provider's message id. Destinations that
cannot receive anything (a recipient without the address) are recorded as ``skipped`` with
the reason and never sent. :func:`read_test_run` reads a run back (``GET
/api/notifications/tests/{test_id}``); sends still running when the caller stopped waiting
show ``pending`` until they finish.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Final

import attrs

from relay_core.domain import constants as c
from relay_core.domain.model import Channel, DeliveryAttempt, Notification, NotificationIntent
from relay_core.ports.channels import (
    ChannelRef,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    Recipient,
    RetryableDeliveryError,
)
from relay_core.services.context import Context
from relay_core.services.subscriptions import mask_address

__all__ = ["TEST_LEASE_OWNER", "TestResult", "TestRun", "TestTarget", "read_test_run", "send_test"]

TEST_LEASE_OWNER: Final = "test-send"
_STATUS: Final = {
    c.INTENT_PENDING: "pending",
    c.INTENT_SENDING: "pending",
    c.INTENT_SENT: "sent",
    c.INTENT_FAILED: "failed",
    c.INTENT_SKIPPED: "skipped",
    c.INTENT_CANCELLED: "skipped",
}
#: Keeps background sends referenced until they finish (the caller may stop waiting earlier).
_RUNNING: set[asyncio.Task[None]] = set()


@attrs.frozen(kw_only=True)
class TestTarget:
    """One destination of a test: a channel, optionally a person on it."""

    __test__ = False  # not a pytest class

    channel: Channel
    recipient: Recipient | None = None
    recipient_address: str | None = None
    """The address the test goes to (e-mail or phone), for person-addressed deliveries."""
    skip_reason: str | None = None
    subscription_id: int | None = None


@attrs.frozen(kw_only=True)
class TestResult:
    """The outcome of one destination (S6.1 ``results[]``)."""

    __test__ = False

    channel_id: int | None
    channel_name: str | None
    channel_type: str | None
    recipient: str | None
    status: str
    error: str | None = None
    external_message_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "channel_name": self.channel_name,
            "channel_type": self.channel_type,
            "recipient": self.recipient,
            "status": self.status,
            "error": self.error,
            "external_message_id": self.external_message_id,
        }


@attrs.frozen(kw_only=True)
class TestRun:
    __test__ = False

    test_id: str
    results: tuple[TestResult, ...]

    @property
    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in self.results:
            out[result.status] = out.get(result.status, 0) + 1
        return out


def _channel_ref(channel: Channel) -> ChannelRef:
    config = dict(channel.config)
    if channel.callback_secret:
        config.setdefault("callback_secret", channel.callback_secret)
    return ChannelRef(id=channel.id, name=channel.name, type=channel.channel_type, config=config)


def _label(channel: Channel | None, address: str | None, username: str | None) -> str | None:
    """The masked address, else the addressed user's name, else the channel's name."""
    if address:
        return mask_address(address)
    if username:
        return username
    return channel.name if channel is not None else None


async def send_test(
    ctx: Context,
    targets: Sequence[TestTarget],
    *,
    text: str,
    wait_seconds: float = 15.0,
    test_id: str | None = None,
) -> TestRun:
    """Send ``text`` as event ``test`` to every target; wait up to ``wait_seconds`` for outcomes."""
    test_id = test_id or uuid.uuid4().hex
    now = ctx.clock.now()
    lease_until = now + dt.timedelta(seconds=max(wait_seconds, 0) + ctx.settings.lease_seconds)
    to_send: list[tuple[NotificationIntent, TestTarget]] = []
    async with ctx.uow_factory() as uow:
        for index, target in enumerate(targets):
            channel = target.channel
            skip = target.skip_reason
            if skip is None and not channel.enabled:
                skip = "channel_disabled"
            if skip is None and channel.channel_type not in ctx.senders:
                skip = f"unknown channel type {channel.channel_type!r}"
            intent = await uow.intents.add(
                NotificationIntent(
                    idempotency_key=f"test:{test_id}:{index}",
                    channel_id=channel.id,
                    subscription_id=target.subscription_id,
                    recipient_user_id=target.recipient.user_id if target.recipient else None,
                    recipient_address=target.recipient_address,
                    recipient_key=f"test:{index}",
                    event_type=c.EV_TEST,
                    reason="test",
                    priority=c.PRIORITY_FIRST_PAGE,
                    status=c.INTENT_SKIPPED if skip is not None else c.INTENT_SENDING,
                    due_at=now,
                    expires_at=now + dt.timedelta(seconds=ctx.settings.max_age_seconds),
                    attempt_count=0 if skip is not None else 1,
                    max_attempts=1,
                    lease_owner=None if skip is not None else TEST_LEASE_OWNER,
                    lease_until=None if skip is not None else lease_until,
                    test_id=test_id,
                    last_error=skip,
                    created_at=now,
                    finished_at=now if skip is not None else None,
                )
            )
            if skip is None:
                to_send.append((intent, target))
        await uow.commit()
    tasks = []
    for intent, target in to_send:
        task = asyncio.ensure_future(_send_one(ctx, intent, target, text))
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)
        tasks.append(task)
    if tasks:
        await asyncio.wait(tasks, timeout=max(wait_seconds, 0.0))
    return TestRun(test_id=test_id, results=tuple(await read_test_run(ctx, test_id)))


async def _send_one(ctx: Context, intent: NotificationIntent, target: TestTarget, text: str) -> None:
    sender = ctx.senders[target.channel.channel_type]
    message = OutboundMessage(
        event_type=c.EV_TEST,
        intent_id=intent.id,
        idempotency_key=intent.idempotency_key,
        channel=_channel_ref(target.channel),
        group=None,
        recipient=target.recipient,
        text=text,
        http=ctx.http,
        clock=ctx.clock,
    )
    started = ctx.clock.now()
    result: DeliveryResult | None = None
    error: str | None = None
    outcome = "sent"
    try:
        result = await sender.send(message)
    except (PermanentDeliveryError, RetryableDeliveryError) as exc:
        error = exc.message
        outcome = "permanent_error" if isinstance(exc, PermanentDeliveryError) else "retryable_error"
    except Exception as exc:  # any other exception is a failure of this test send
        error = f"{type(exc).__name__}: {exc}"[:1000]
        outcome = "retryable_error"
    finished = ctx.clock.now()
    if result is not None and result.skipped:
        status, error = c.INTENT_SKIPPED, result.skip_reason
    elif result is not None:
        status = c.INTENT_SENT
    else:
        status = c.INTENT_FAILED
    async with ctx.uow_factory() as uow:
        await uow.intents.update_where(
            intent.id,
            {"status": c.INTENT_SENDING},
            {"status": status, "last_error": error, "finished_at": finished, "lease_until": None},
        )
        await uow.attempts.add(
            DeliveryAttempt(
                intent_id=intent.id,
                attempt_no=1,
                started_at=started,
                finished_at=finished,
                outcome=outcome,
                error=error,
                duration_ms=int((finished - started).total_seconds() * 1000),
            )
        )
        if result is not None and not result.skipped:
            await uow.notifications.add(
                Notification(
                    group_id=None,
                    channel_id=target.channel.id,
                    recipient_user_id=intent.recipient_user_id,
                    recipient_key=f"test:{intent.test_id}:{intent.id}",
                    provider=result.provider,
                    external_message_id=result.external_message_id,
                    external_channel_id=result.external_channel_id,
                    provider_status=result.provider_status,
                    provider_payload=dict(result.provider_payload),
                    last_event_type=c.EV_TEST,
                    first_intent_id=intent.id,
                    created_at=finished,
                    updated_at=finished,
                )
            )
        await uow.commit()


async def read_test_run(ctx: Context, test_id: str) -> list[TestResult]:
    """The per-destination outcomes of test run ``test_id`` (empty when unknown)."""
    async with ctx.uow_factory() as uow:
        intents = await uow.intents.find(test_id=test_id, order_by="id")
        out: list[TestResult] = []
        channels: dict[int, Channel | None] = {}
        for intent in intents:
            channel: Channel | None = None
            if intent.channel_id is not None:
                if intent.channel_id not in channels:
                    channels[intent.channel_id] = await uow.channels.get(intent.channel_id)
                channel = channels[intent.channel_id]
            record = None
            if intent.status == c.INTENT_SENT and intent.channel_id is not None:
                record = await uow.notifications.first(
                    channel_id=intent.channel_id, recipient_key=f"test:{test_id}:{intent.id}"
                )
            status = _STATUS.get(intent.status, intent.status)
            user = await uow.users.get(intent.recipient_user_id) if intent.recipient_user_id else None
            out.append(
                TestResult(
                    channel_id=intent.channel_id,
                    channel_name=channel.name if channel else None,
                    channel_type=channel.channel_type if channel else None,
                    recipient=_label(channel, intent.recipient_address, user.username if user else None),
                    status=status,
                    error=intent.last_error if status != "sent" else None,
                    external_message_id=record.external_message_id if record else None,
                )
            )
    return out
