"""The scheduler with a fake clock: timing, leases, backoff, the outbox relay, two schedulers at once."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain import constants as c
from relay_core.domain.errors import StorageUnavailable
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.ports.storage import UnitOfWorkFactory
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock, RecordingChannel
from relay_worker.actors import OutboxPoller
from relay_worker.scheduler import DUE_ACTIONS, OUTBOX_RELAY, SILENCE_LIFECYCLE, Job, Scheduler

from .worker_support import START, USERS, post_alert, seed_world, wait_until

SETTINGS = CoreSettings(group_wait_seconds=0, requeue_after_seconds=10, lease_seconds=60)


class CollectingDispatcher:
    """A Dispatcher that remembers what it was asked to enqueue."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def enqueue(self, intent_ids: Sequence[int]) -> None:
        self.batches.append(list(intent_ids))


def make_relay(
    uow_factory: UnitOfWorkFactory, clock: FakeClock, channel: RecordingChannel, *, worker_id: str = "w"
) -> Relay:
    return bootstrap(
        uow_factory=uow_factory, clock=clock, settings=SETTINGS, channels=[channel], worker_id=worker_id
    )


async def group_of(relay: Relay, group_id: int) -> Any:
    async with relay.uow_factory() as uow:
        return await uow.alert_groups.get(group_id)


async def test_worker_scheduler_reminds_and_escalates_on_time() -> None:
    """Through the scheduler: page at t0, reminders at +300 and +600, escalation at +900, and so on."""
    clock = FakeClock(START)
    channel = RecordingChannel()
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, channel)
    ids = await seed_world(relay.uow_factory)
    scheduler = Scheduler(relay, holder="s1")
    result = await post_alert(relay, ids["route"])
    first = (await group_of(relay, result.group_id)).assignee_id

    timeline: list[tuple[int, str]] = []
    assignees: list[int] = []
    for second in range(0, 1801, 10):
        clock.set(START + dt.timedelta(seconds=second))
        await scheduler.run_once()
        before = len(channel.sent)
        await relay.run_until_idle()
        timeline.extend((second, event) for event in channel.event_types[before:])
        if channel.event_types[before:] == ["escalation"]:
            assignees.append((await group_of(relay, result.group_id)).assignee_id)

    assert timeline == [
        (0, "notification"),
        (300, "reminder"),
        (600, "reminder"),
        (900, "escalation"),
        (1200, "reminder"),
        (1500, "reminder"),
        (1800, "escalation"),
    ]
    user_ids = [ids[name] for name in USERS]
    expected_second = user_ids[(user_ids.index(first) + 1) % 3]
    expected_third = user_ids[(user_ids.index(first) + 2) % 3]
    assert assignees == [expected_second, expected_third]
    group = await group_of(relay, result.group_id)
    assert group.escalation_level == 2
    assert group.next_reminder_at == START + dt.timedelta(seconds=2100)


async def test_worker_scheduler_stops_reminding_after_ack() -> None:
    """An acknowledged group gets no more reminders from the scheduler."""
    clock = FakeClock(START)
    channel = RecordingChannel()
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, channel)
    ids = await seed_world(relay.uow_factory)
    scheduler = Scheduler(relay, holder="s1")
    result = await post_alert(relay, ids["route"])
    await relay.run_until_idle()
    clock.advance(100)
    await relay.acknowledge(result.group_id, user_id=ids["ivan"])
    for _ in range(20):
        clock.advance(100)
        outcomes = await scheduler.run_once()
        assert {o.name: o.result for o in outcomes if o.ran}[DUE_ACTIONS] == 0
        await relay.run_until_idle()
    assert channel.event_types == ["notification", "acknowledged"]


async def test_worker_scheduler_runs_each_job_under_its_lease() -> None:
    """Of two schedulers only the lease holder runs a job; the other one skips it."""
    clock = FakeClock(START)
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, RecordingChannel())
    a = Scheduler(relay, holder="a", lease_ttl=30)
    b = Scheduler(relay, holder="b", lease_ttl=30)

    ran_a = {o.name for o in await a.run_once() if o.ran}
    outcomes_b = await b.run_once()
    assert ran_a == {DUE_ACTIONS, OUTBOX_RELAY, SILENCE_LIFECYCLE}
    assert [o.reason for o in outcomes_b] == ["lease_held_elsewhere"] * 3
    assert set(a.held_leases) == {DUE_ACTIONS, OUTBOX_RELAY, SILENCE_LIFECYCLE}
    assert b.held_leases == {}

    # A keeps renewing while it runs; B keeps skipping.
    for _ in range(40):
        clock.advance(1)
        assert any(o.ran for o in await a.run_once())
        assert not any(o.ran for o in await b.run_once())
    assert a.held_leases[DUE_ACTIONS].fencing_token == 1


async def test_worker_scheduler_takes_over_an_expired_lease_and_fences_the_old_holder() -> None:
    """A paused holder loses its leases after the TTL; on resume it runs nothing."""
    clock = FakeClock(START)
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, RecordingChannel())
    a = Scheduler(relay, holder="a", lease_ttl=30)
    b = Scheduler(relay, holder="b", lease_ttl=30)
    await a.run_once()

    clock.advance(29)  # A is paused; its lease (renewed at START) has not expired yet
    assert not any(o.ran for o in await b.run_once())
    clock.advance(2)
    assert {o.name for o in await b.run_once() if o.ran} == {DUE_ACTIONS, OUTBOX_RELAY, SILENCE_LIFECYCLE}
    assert b.held_leases[DUE_ACTIONS].fencing_token == 2

    outcomes = await a.run_once()  # A resumes
    assert [o.reason for o in outcomes] == ["lease_held_elsewhere"] * 3
    assert a.held_leases == {}


async def test_worker_scheduler_releases_leases_on_stop() -> None:
    """A graceful stop releases the leases, so a standby takes over on its next pass."""
    clock = FakeClock(START)
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, RecordingChannel())
    passes = 0

    async def one_pass_then_stop(_seconds: float) -> None:
        nonlocal passes
        passes += 1
        a.stop()

    a = Scheduler(relay, holder="a", sleep=one_pass_then_stop)
    b = Scheduler(relay, holder="b")
    await asyncio.wait_for(a.run_forever(), 5)
    assert passes == 1
    assert a.held_leases == {}
    clock.advance(1)
    assert {o.name for o in await b.run_once() if o.ran} == {DUE_ACTIONS, OUTBOX_RELAY, SILENCE_LIFECYCLE}


async def test_worker_scheduler_silence_job_runs_every_30_seconds() -> None:
    """silence_lifecycle runs on the first pass and then every 30 s of relay time."""
    clock = FakeClock(START)
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, RecordingChannel())
    scheduler = Scheduler(relay, holder="a")
    runs = []
    for second in range(0, 91):
        clock.set(START + dt.timedelta(seconds=second))
        if any(o.ran and o.name == SILENCE_LIFECYCLE for o in await scheduler.run_once()):
            runs.append(second)
    assert runs == [0, 30, 60, 90]


async def test_worker_scheduler_runs_extra_jobs_under_their_own_lease() -> None:
    """An extra job runs at its interval under a lease named after it, and reports its last success."""
    clock = FakeClock(START)
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, RecordingChannel())
    seen: list[dt.datetime] = []

    async def poll(now: dt.datetime) -> int:
        seen.append(now)
        return 1

    job = Job(name="voice_status_poll", interval=30.0, run=poll)
    a = Scheduler(relay, holder="a", extra_jobs=[job])
    b = Scheduler(relay, holder="b", extra_jobs=[job])
    for second in range(0, 61, 5):
        clock.set(START + dt.timedelta(seconds=second))
        await a.run_once()
        await b.run_once()
    assert seen == [START, START + dt.timedelta(seconds=30), START + dt.timedelta(seconds=60)]
    assert "voice_status_poll" in a.held_leases
    assert a.last_success["voice_status_poll"] == START + dt.timedelta(seconds=60)
    with pytest.raises(ValueError, match="unique"):
        Scheduler(relay, extra_jobs=[attrs.evolve(job, name=DUE_ACTIONS)])


class FlakyFactory:
    """A unit-of-work factory that is 'down' for the first ``failures`` units of work."""

    def __init__(self, inner: UnitOfWorkFactory, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __call__(self) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise StorageUnavailable()
        return self.inner()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_worker_scheduler_backs_off_while_storage_is_unavailable() -> None:
    """Waits grow 1, 2, 4 … capped at 30 s while the database is down, then the tick resumes."""
    clock = FakeClock(START)
    flaky = FlakyFactory(InMemoryUnitOfWorkFactory(), failures=7)
    relay = make_relay(flaky, clock, RecordingChannel())  # type: ignore[arg-type]
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)
        if len(waits) == 9:
            scheduler.stop()

    scheduler = Scheduler(relay, holder="a", tick_seconds=1.0, max_backoff=30.0, sleep=record)
    await asyncio.wait_for(scheduler.run_forever(), 5)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 1.0, 1.0]
    assert scheduler.backoff == 0.0


async def test_worker_outbox_relay_enqueues_what_needs_a_message() -> None:
    """Never-enqueued and stale intents are enqueued; recently enqueued ones are not."""
    clock = FakeClock(START)
    channel = RecordingChannel()
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, channel)
    ids = await seed_world(relay.uow_factory)
    dispatcher = CollectingDispatcher()
    scheduler = Scheduler(relay, holder="a", dispatcher=dispatcher)
    first = await post_alert(relay, ids["route"], fingerprint="a")
    second = await post_alert(relay, ids["route"], fingerprint="b")

    async def intent_for(group_id: int) -> Any:
        async with relay.uow_factory() as uow:
            return await uow.intents.first(group_id=group_id)

    one, two = await intent_for(first.group_id), await intent_for(second.group_id)
    async with relay.uow_factory() as uow:  # "two" was enqueued a moment ago
        await uow.intents.update_where(two.id, {}, {"enqueued_at": START})
        await uow.commit()

    await scheduler.run_once()
    assert dispatcher.batches == [[one.id]]  # a plain Dispatcher does not mark, so "one" comes again

    clock.advance(11)  # "two" has not been consumed for requeue_after_seconds: maybe lost
    await scheduler.run_once()
    assert dispatcher.batches[-1] == [one.id, two.id]


async def test_worker_outbox_relay_reclaims_a_dead_workers_lease_and_re_enqueues() -> None:
    """An intent whose worker died mid-send goes back to pending and gets a new message."""
    clock = FakeClock(START)
    channel = RecordingChannel()
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, channel)
    ids = await seed_world(relay.uow_factory)
    dispatcher = CollectingDispatcher()
    scheduler = Scheduler(relay, holder="a", dispatcher=dispatcher)
    result = await post_alert(relay, ids["route"])
    async with relay.uow_factory() as uow:  # a worker claimed it, was enqueued, and died
        [claimed] = await uow.intents.claim(
            owner="dead", now=START, lease_until=START + dt.timedelta(seconds=60), limit=1
        )
        await uow.intents.update_where(claimed.id, {}, {"enqueued_at": START})
        await uow.commit()

    clock.advance(30)
    await scheduler.run_once()
    assert dispatcher.batches == []  # still leased

    clock.advance(31)
    [_, relay_outcome, _] = await scheduler.run_once()
    assert relay_outcome.result == {"reclaimed": 1, "enqueued": 1}
    assert dispatcher.batches == [[claimed.id]]
    await relay.run_until_idle()
    assert channel.event_types == ["notification"]
    async with relay.uow_factory() as uow:
        intent = await uow.intents.get(claimed.id)
    assert intent.status == c.INTENT_SENT
    assert intent.ambiguous_count == 1
    assert result.group_id == intent.group_id


async def test_worker_outbox_poller_delivers_after_wakeup() -> None:
    """Without a broker the poller is the dispatcher: a commit wakes it and it delivers."""
    clock = FakeClock(START)
    channel = RecordingChannel()
    poller = OutboxPoller(poll_interval=60.0, concurrency=3)
    relay = bootstrap(
        uow_factory=InMemoryUnitOfWorkFactory(),
        clock=clock,
        settings=SETTINGS,
        channels=[channel],
        dispatcher=poller,
    )
    poller.bind(relay)
    ids = await seed_world(relay.uow_factory)
    task = asyncio.create_task(poller.run())
    try:
        for n in range(5):
            await post_alert(relay, ids["route"], fingerprint=f"fp-{n}")

        async def all_delivered() -> bool:
            return poller.delivered == 5

        await wait_until("the poller lanes to deliver 5 intents", all_delivered, seconds=5)
    finally:
        poller.stop()
        await asyncio.wait_for(task, 5)
    assert channel.event_types == ["notification"] * 5


# --- two schedulers, 200 ticks, one shared SQLite database ----------------------------------------------


@attrs.frozen
class Tally:
    reminders: int
    escalations: int
    reminder_events: int
    escalated_events: int
    deliveries: collections.Counter[str]


async def tally(relay: Relay, channel: RecordingChannel) -> Tally:
    async with relay.uow_factory() as uow:
        reminders = await uow.intents.find(event_type=c.EV_REMINDER)
        escalations = await uow.intents.find(event_type=c.EV_ESCALATION)
        reminder_events = await uow.events.count(event_type="reminder_sent")
        escalated_events = await uow.events.count(event_type="escalated")
    keys = [i.idempotency_key for i in (*reminders, *escalations)]
    assert len(keys) == len(set(keys))
    return Tally(
        reminders=len(reminders),
        escalations=len(escalations),
        reminder_events=reminder_events,
        escalated_events=escalated_events,
        deliveries=collections.Counter(m.idempotency_key for m in channel.messages),
    )


class SplitBrainScheduler(Scheduler):
    """Believes it holds every lease: what an overlapping former leader would do."""

    async def _hold(self, names: Sequence[str], now: dt.datetime) -> set[str]:
        return set(names)

    def _valid(self, name: str, now: dt.datetime) -> bool:
        return True


async def run_ticks(
    relays: Sequence[Relay], schedulers: Sequence[Scheduler], clock: FakeClock, *, ticks: int, step: float
) -> None:
    for tick in range(ticks):
        await asyncio.gather(*(s.run_once() for s in schedulers))
        await asyncio.gather(*(r.run_until_idle() for r in relays))
        clock.advance(step if tick % 3 else step * 2.5)  # uneven steps: leases expire now and then


async def reference_tally(*, ticks: int, step: float, alerts: int) -> Tally:
    clock = FakeClock(START)
    channel = RecordingChannel()
    relay = make_relay(InMemoryUnitOfWorkFactory(), clock, channel)
    ids = await seed_world(relay.uow_factory, reminder=120)
    for n in range(alerts):
        await post_alert(relay, ids["route"], fingerprint=f"fp-{n}")
    await run_ticks([relay], [Scheduler(relay, holder="only", lease_ttl=30)], clock, ticks=ticks, step=step)
    return await tally(relay, channel)


@pytest.mark.parametrize(
    ("database_url", "scheduler_class"),
    [
        pytest.param("sqlite", Scheduler, id="sqlite-leases"),
        pytest.param("sqlite", SplitBrainScheduler, id="sqlite-split-brain"),
        pytest.param("postgres", SplitBrainScheduler, id="postgres-split-brain", marks=pytest.mark.services),
    ],
    indirect=["database_url"],
)
async def test_worker_two_schedulers_200_ticks_never_double_anything(
    database_url: str, scheduler_class: type[Scheduler]
) -> None:
    """Two schedulers sharing one database for 200 ticks do what one does, each reminder once."""
    url = database_url
    ticks, step, alerts = 200, 20.0, 3
    clock = FakeClock(START)
    channel = RecordingChannel()
    factories = [SqlAlchemyUnitOfWorkFactory(url), SqlAlchemyUnitOfWorkFactory(url)]
    relays = [make_relay(f, clock, channel, worker_id=f"w{n}") for n, f in enumerate(factories)]
    try:
        ids = await seed_world(relays[0].uow_factory, reminder=120)
        for n in range(alerts):
            await post_alert(relays[n % 2], ids["route"], fingerprint=f"fp-{n}")
        schedulers = [scheduler_class(r, holder=f"s{n}", lease_ttl=30) for n, r in enumerate(relays)]
        await run_ticks(relays, schedulers, clock, ticks=ticks, step=step)
        got = await tally(relays[0], channel)
    finally:
        for f in factories:
            await f.aclose()

    expected = await reference_tally(ticks=ticks, step=step, alerts=alerts)
    assert got.reminders > 50
    assert got.escalations > 10
    assert (got.reminders, got.escalations) == (expected.reminders, expected.escalations)
    assert got.escalated_events == got.escalations
    assert (got.reminder_events, got.escalated_events) == (
        expected.reminder_events,
        expected.escalated_events,
    )
    duplicates = {key: n for key, n in got.deliveries.items() if n > 1}
    assert duplicates == {}
    assert sum(got.deliveries.values()) == sum(expected.deliveries.values())


async def test_worker_scheduler_deletes_expired_receipts_and_action_tokens_hourly(sqlite_url: str) -> None:
    """``callback_receipt_cleanup`` and ``action_token_cleanup`` (SPEC S5.11): expired rows go, in
    batches, once an hour; rows still valid stay."""
    from relay_core.domain.model import ActionToken, CallbackReceipt
    from relay_worker.scheduler import EXPIRED_ROW_JOBS, expired_rows_job

    clock = FakeClock(START)
    store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    relay = make_relay(store, clock, RecordingChannel())
    try:
        ids = await seed_world(store)
        result = await post_alert(relay, ids["route"])
        hour = dt.timedelta(hours=1)
        async with store() as uow:
            for n in range(5):  # expired a minute ago, and 2 still valid
                expires = START - dt.timedelta(minutes=1) if n < 3 else START + hour
                await uow.callback_receipts.add(
                    CallbackReceipt(channel_id=ids["chat"], digest=f"d{n}", expires_at=expires)
                )
                await uow.action_tokens.add(
                    ActionToken(jti=f"j{n}", group_id=result.group_id, action="ack", expires_at=expires)
                )
            await uow.commit()
        jobs = [expired_rows_job(relay, name, batch_size=2) for name in EXPIRED_ROW_JOBS]
        scheduler = Scheduler(relay, holder="s1", extra_jobs=jobs)

        outcomes = {o.name: o for o in await scheduler.run_once()}
        assert outcomes["callback_receipt_cleanup"].result == 3  # two batches: 2 + 1
        assert outcomes["action_token_cleanup"].result == 3
        async with store() as uow:
            assert {r.digest for r in await uow.callback_receipts.find()} == {"d3", "d4"}
            assert {t.jti for t in await uow.action_tokens.find()} == {"j3", "j4"}

        clock.advance(hour / 2)
        outcomes = {o.name: o for o in await scheduler.run_once()}
        assert outcomes["action_token_cleanup"].reason == "not_due"
        clock.advance(hour)  # now both remaining rows have expired too
        outcomes = {o.name: o for o in await scheduler.run_once()}
        assert (outcomes["callback_receipt_cleanup"].result, outcomes["action_token_cleanup"].result) == (
            2,
            2,
        )
    finally:
        await store.aclose()
