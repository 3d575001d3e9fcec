"""SPEC S5.10 "result not recordable": the database fails after the provider accepted a send.

The worker retries the result write for up to the intent's lease; within it nothing is lost or
sent twice. Beyond it the error propagates (bounded), and the expired lease makes the send
ambiguous: one re-send with the same idempotency key.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain import constants as c
from relay_core.domain.errors import StorageUnavailable
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.ports.channels import DeliveryResult, OutboundMessage
from relay_core.services import delivery
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock, RecordingChannel

from .worker_support import START, post_alert, seed_world


class FlakyStorage:
    """The in-memory storage, whose next ``fail_next`` transactions cannot even start."""

    def __init__(self) -> None:
        self.inner = InMemoryUnitOfWorkFactory()
        self.fail_next = 0
        self.failures = 0

    def __call__(self) -> Any:
        if self.fail_next:
            self.fail_next -= 1
            self.failures += 1
            raise StorageUnavailable()
        return self.inner()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class DatabaseFailsAfterSend(RecordingChannel):
    """Accepts the message, then the database goes away for ``outage`` transactions."""

    def __init__(self, storage: FlakyStorage, outage: int) -> None:
        super().__init__()
        self.storage = storage
        self.outage = outage

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        result = await super().send(message)
        self.storage.fail_next, self.outage = self.outage, 0  # only after the first send
        return result


async def world(
    outage: int, lease_seconds: int
) -> tuple[Relay, FlakyStorage, DatabaseFailsAfterSend, FakeClock]:
    storage = FlakyStorage()
    channel = DatabaseFailsAfterSend(storage, outage)
    clock = FakeClock(START)
    relay = bootstrap(
        uow_factory=storage,  # type: ignore[arg-type]
        clock=clock,
        settings=CoreSettings(group_wait_seconds=0, lease_seconds=lease_seconds),
        channels=[channel],
    )
    ids = await seed_world(storage)  # type: ignore[arg-type]
    await post_alert(relay, ids["route"])
    return relay, storage, channel, clock


async def only_intent(relay: Relay) -> Any:
    async with relay.uow_factory() as uow:
        [intent] = await uow.intents.find()
    return intent


async def test_worker_result_write_is_retried_while_the_database_is_briefly_down() -> None:
    relay, storage, channel, _ = await world(outage=2, lease_seconds=60)

    assert await relay.deliver_due(limit=1) == 1

    assert storage.failures == 2  # two result writes failed, the third one went through
    intent = await only_intent(relay)
    assert (intent.status, intent.attempt_count, intent.ambiguous_count) == (c.INTENT_SENT, 1, 0)
    assert channel.event_types == ["notification"]  # sent once, recorded once


async def test_worker_result_write_gives_up_at_lease_expiry_then_one_ambiguous_resend() -> None:
    relay, storage, channel, clock = await world(outage=10_000, lease_seconds=1)

    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        await relay.deliver_due(limit=1)
    assert time.monotonic() - started < 2.0  # bounded by the 1 s lease
    assert storage.failures >= 2
    storage.fail_next = 0  # the database is back

    intent = await only_intent(relay)
    assert intent.status == c.INTENT_SENDING  # outcome unknown
    clock.advance(dt.timedelta(seconds=2))
    assert await delivery.reclaim_expired(relay.ctx, now=clock.now()) == 1
    assert await relay.deliver_due(limit=1) == 1
    intent = await only_intent(relay)
    assert (intent.status, intent.ambiguous_count) == (c.INTENT_SENT, 1)
    keys = [m.idempotency_key for m in channel.messages]
    assert keys == [intent.idempotency_key, intent.idempotency_key]
