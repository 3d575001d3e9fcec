"""The embedded runtime of ``relay serve``: in-process worker, scheduler loop, lifespan wiring."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import httpx
import pytest

from relay_adapters.compose import aclose_relay, relay_from_settings
from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_adapters.settings import RelaySettings, load_settings
from relay_core.bootstrap import Relay
from relay_core.domain.model import Channel, Group, Rotation, RotationMember, Route, Team, User
from relay_core.testing.fakes import FakeClock, RecordingChannel
from relay_server.app import create_app
from relay_server.demo import demo_alertmanager_payload
from relay_server.runtime import (
    DUE_ACTIONS_LEASE,
    EmbeddedWorker,
    InProcessDispatcher,
    SchedulerLoop,
    attach_background,
)

START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


class SignallingChannel(RecordingChannel):
    """A recording channel that also sets an event on every delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered = asyncio.Event()

    async def send(self, message):  # type: ignore[no-untyped-def]
        result = await super().send(message)
        self.delivered.set()
        return result


@attrs.define
class Embedded:
    relay: Relay
    settings: RelaySettings
    clock: FakeClock
    dispatcher: InProcessDispatcher
    channel: SignallingChannel
    route_id: int


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Embedded]:
    settings = load_settings(
        {}, overrides={"main": {"data_dir": str(tmp_path)}, "database": {"url": "memory://"}}
    )
    clock = FakeClock(START)
    dispatcher = InProcessDispatcher()
    channel = SignallingChannel()
    relay = relay_from_settings(settings, clock=clock, dispatcher=dispatcher, channels=[channel])
    async with relay.uow_factory() as uow:
        grp = await uow.groups.add(Group(slug="ops", name="Ops"))
        team = await uow.teams.add(Team(group_id=grp.id, slug="infra", name="Infra"))
        users = [await uow.users.add(User(username=n)) for n in ("ivan", "anna")]
        rot = await uow.rotations.add(
            Rotation(team_id=team.id, name="primary", start_at=START - dt.timedelta(days=1))
        )
        for position, user in enumerate(users):
            await uow.rotation_members.add(
                RotationMember(rotation_id=rot.id, user_id=user.id, position=position)
            )
        chat = await uow.channels.add(
            Channel(group_id=grp.id, team_id=team.id, name="chat", channel_type="recording")
        )
        route = await uow.routes.add(
            Route(
                team_id=team.id,
                name="prom",
                source="alertmanager",
                rotation_id=rot.id,
                channel_ids=(chat.id,),
                group_wait_seconds=0,
            )
        )
        await uow.commit()
    try:
        yield Embedded(relay, settings, clock, dispatcher, channel, route.id)
    finally:
        await aclose_relay(relay)


async def _ingest(world: Embedded) -> None:
    items = AlertmanagerSource().parse(json.dumps(demo_alertmanager_payload()).encode(), {}, {})
    await world.relay.ingest("alertmanager", items, route_id=world.route_id)


async def test_dispatcher_wakes_a_waiter() -> None:
    """enqueue() of committed ids wakes the worker; an empty list does not."""
    dispatcher = InProcessDispatcher()
    await dispatcher.enqueue([])
    assert not await dispatcher.wait(0)
    await dispatcher.enqueue([1, 2])
    assert await dispatcher.wait(0)
    assert dispatcher.enqueued == 2


async def test_worker_run_once_delivers_due_intents(embedded: Embedded) -> None:
    """One worker pass delivers the first page of a new group."""
    worker = EmbeddedWorker(embedded.relay, dispatcher=embedded.dispatcher)
    await _ingest(embedded)
    assert await worker.run_once() == 1
    assert embedded.channel.event_types == ["notification"]
    assert await worker.run_once() == 0


async def test_background_worker_is_woken_by_intake(embedded: Embedded) -> None:
    """A running worker delivers right after intake commits, without waiting for a poll."""
    worker = EmbeddedWorker(embedded.relay, dispatcher=embedded.dispatcher, poll_interval=3600)
    worker.start()
    try:
        await _ingest(embedded)
        async with asyncio.timeout(5):
            await embedded.channel.delivered.wait()
    finally:
        await worker.stop()
    assert not worker.running
    assert embedded.channel.event_types == ["notification"]


async def test_scheduler_runs_reminders_under_the_lease(embedded: Embedded) -> None:
    """Only the lease holder ticks; a reminder is due one interval after the page."""
    first = SchedulerLoop(embedded.relay, holder="a", lease_ttl_seconds=30)
    second = SchedulerLoop(embedded.relay, holder="b", lease_ttl_seconds=30)
    await _ingest(embedded)
    await embedded.relay.run_until_idle()
    assert await first.run_once() == 0
    assert await second.run_once() is None
    embedded.clock.advance(300)
    assert await first.run_once() == 1
    await embedded.relay.run_until_idle()
    assert embedded.channel.event_types == ["notification", "reminder"]


async def test_an_expired_lease_is_taken_over(embedded: Embedded) -> None:
    """When the holder stops renewing, another scheduler takes the lease after the TTL."""
    first = SchedulerLoop(embedded.relay, holder="a", lease_ttl_seconds=30)
    second = SchedulerLoop(embedded.relay, holder="b", lease_ttl_seconds=30)
    assert await first.acquire_lease()
    embedded.clock.advance(31)
    assert await second.acquire_lease()
    assert not await first.acquire_lease()


async def test_stopping_a_scheduler_releases_its_lease(embedded: Embedded) -> None:
    """A stopped scheduler releases the lease so another one takes over at once."""
    first = SchedulerLoop(embedded.relay, holder="a", tick_seconds=3600)
    assert await first.run_once() == 0
    first.start()
    await first.stop()
    assert not first.has_lease
    async with embedded.relay.uow_factory() as uow:
        lease = await uow.leases.acquire(DUE_ACTIONS_LEASE, "b", embedded.clock.now(), 30)
    assert lease is not None
    assert lease.holder == "b"


async def test_app_lifespan_starts_and_stops_the_loops(embedded: Embedded) -> None:
    """Background loops attached to the app run while the app runs, and alerts get delivered."""
    worker = EmbeddedWorker(embedded.relay, dispatcher=embedded.dispatcher, poll_interval=3600)
    scheduler = SchedulerLoop(embedded.relay, tick_seconds=3600)
    closed: list[bool] = []

    async def on_shutdown() -> None:
        closed.append(True)

    app = attach_background(
        create_app(relay=embedded.relay, settings=embedded.settings),
        [worker, scheduler],
        on_shutdown=[on_shutdown],
    )
    # The app's own lifespan in this event loop, as uvicorn runs it (the test client would use a thread).
    async with app.lifespan():
        assert worker.running
        assert scheduler.running
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as client:
            assert (await client.get("/healthz")).status_code == 200
        await _ingest(embedded)
        async with asyncio.timeout(5):
            await embedded.channel.delivered.wait()
    assert not worker.running
    assert not scheduler.running
    assert closed == [True]
