"""Actors on dramatiq's StubBroker with an in-process Worker, the dispatcher and the event loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain import constants as c
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock, RecordingChannel
from relay_worker.actors import (
    ACTOR_NAMES,
    DELIVERY_QUEUE,
    SEND_ACTOR,
    Actors,
    EventLoopThread,
    RedisDispatcher,
    declare_actors,
)

from .worker_support import START, post_alert, seed_world


@attrs.define
class Setup:
    runner: EventLoopThread
    broker: StubBroker
    actors: Actors
    dispatcher: RedisDispatcher
    relay: Relay
    clock: FakeClock
    channel: RecordingChannel
    ids: dict[str, int]

    def intents(self, **where: Any) -> list[Any]:
        async def find() -> list[Any]:
            async with self.relay.uow_factory() as uow:
                return await uow.intents.find(**where)

        return self.runner.run(find())

    def drain(self) -> None:
        """Run a dramatiq worker until the delivery queue is empty."""
        worker = dramatiq.Worker(self.broker, worker_timeout=50, worker_threads=2)
        worker.start()
        try:
            self.broker.join(DELIVERY_QUEUE, timeout=10_000)
            worker.join()
        finally:
            worker.stop()


@pytest.fixture
def setup() -> Iterator[Setup]:
    runner = EventLoopThread("test-loop").start()
    broker = StubBroker()
    broker.emit_after("process_boot")
    clock = FakeClock(START)
    channel = RecordingChannel()
    relays: list[Relay] = []
    actors = declare_actors(broker, lambda: relays[0], runner=runner)
    dispatcher = RedisDispatcher(actors)
    relay = bootstrap(
        uow_factory=InMemoryUnitOfWorkFactory(),
        clock=clock,
        settings=CoreSettings(group_wait_seconds=0),
        channels=[channel],
        dispatcher=dispatcher,
        worker_id="worker-a",
    )
    dispatcher.bind(relay)
    relays.append(relay)
    ids = runner.run(seed_world(relay.uow_factory))
    yield Setup(
        runner=runner,
        broker=broker,
        actors=actors,
        dispatcher=dispatcher,
        relay=relay,
        clock=clock,
        channel=channel,
        ids=ids,
    )
    broker.close()
    runner.stop()


def test_worker_actor_names_and_options() -> None:
    """The send actor is named relay.delivery.send, declared on the given broker, without retries."""
    broker = StubBroker()
    actors = declare_actors(broker, lambda: pytest.fail("not called"))
    try:
        assert ACTOR_NAMES == ("relay.delivery.send",)
        assert actors.send.actor_name == SEND_ACTOR
        assert actors.send.broker is broker
        assert actors.send.queue_name == DELIVERY_QUEUE
        assert actors.send.options["max_retries"] == 0
        assert broker.get_actor(SEND_ACTOR) is actors.send
        assert dict(actors.by_name) == {SEND_ACTOR: actors.send}
        message = actors.send.message(7)
        assert message.args == (7,)
    finally:
        actors.close()
        broker.close()


def test_worker_committed_intent_is_delivered_by_an_in_process_worker(setup: Setup) -> None:
    """Intake commits, the dispatcher enqueues the id, and a dramatiq Worker delivers it."""
    result = setup.runner.run(post_alert(setup.relay, setup.ids["route"]))
    assert result.status == c.GROUP_FIRING
    assert setup.broker.queues[DELIVERY_QUEUE].qsize() == 1
    [pending] = setup.intents(status=c.INTENT_PENDING)
    assert pending.enqueued_at == START

    setup.drain()

    assert setup.channel.event_types == ["notification"]
    [sent] = setup.intents()
    assert sent.status == c.INTENT_SENT
    assert sent.lease_owner == "worker-a"
    assert setup.broker.dead_letters == []


def test_worker_actor_run_twice_delivers_once(setup: Setup) -> None:
    """Two messages for one intent, and a direct second call, deliver it exactly once."""
    setup.runner.run(post_alert(setup.relay, setup.ids["route"]))
    [intent] = setup.intents()
    setup.actors.send.send(intent.id)  # a duplicate message (e.g. a redelivery after Redis restart)
    assert setup.broker.queues[DELIVERY_QUEUE].qsize() == 2

    setup.drain()
    setup.actors.send(intent.id)  # and once more, synchronously

    assert setup.channel.event_types == ["notification"]
    assert len(setup.channel.attempts) == 1
    [sent] = setup.intents()
    assert sent.status == c.INTENT_SENT
    assert sent.attempt_count == 1


def test_worker_actor_for_unknown_or_finished_intent_is_a_noop(setup: Setup) -> None:
    """A message naming an id that does not exist or is not pending changes nothing."""
    setup.actors.send(424242)
    assert setup.channel.attempts == []


def test_worker_actor_swallows_storage_errors(setup: Setup) -> None:
    """A failing relay is logged, not raised: the outbox relay re-enqueues the intent later."""

    class Broken:
        def handle(self, _command: object) -> Any:
            async def fail() -> None:
                raise RuntimeError("database is down")

            return fail()

    broker = StubBroker()
    actors = declare_actors(broker, lambda: Broken(), runner=setup.runner)  # type: ignore[arg-type, return-value]
    actors.send(1)  # does not raise
    broker.close()


def test_worker_dispatcher_enqueues_only_due_intents(setup: Setup) -> None:
    """Intents not yet due get no message and no enqueued_at; they are left to outbox_relay."""

    async def slow_route() -> int:
        async with setup.relay.uow_factory() as uow:
            route = await uow.routes.get(setup.ids["route"])
            await uow.routes.update(attrs.evolve(route, group_wait_seconds=30))
            await uow.commit()
        return route.id

    route_id = setup.runner.run(slow_route())
    setup.runner.run(post_alert(setup.relay, route_id))
    [intent] = setup.intents()
    assert intent.due_at > START
    assert intent.enqueued_at is None
    assert setup.broker.queues[DELIVERY_QUEUE].qsize() == 0

    setup.clock.advance(30)
    sent = setup.runner.run(setup.dispatcher.dispatch([intent.id]))
    assert sent == [intent.id]
    [marked] = setup.intents()
    assert marked.enqueued_at == setup.clock.now()


def test_worker_dispatcher_failure_is_best_effort(setup: Setup) -> None:
    """When the broker is down the command still succeeds and the intent waits unmarked."""

    class DownActor:
        def send(self, *_args: object) -> None:
            raise ConnectionError("redis is down")

    setup.dispatcher._actor = DownActor()  # type: ignore[assignment]
    result = setup.runner.run(post_alert(setup.relay, setup.ids["route"]))
    assert result.status == c.GROUP_FIRING
    [intent] = setup.intents()
    assert intent.status == c.INTENT_PENDING
    assert intent.enqueued_at is None
    with pytest.raises(ConnectionError):
        setup.runner.run(setup.dispatcher.dispatch([intent.id]))


def test_worker_event_loop_thread_runs_coroutines_and_refuses_reentry() -> None:
    """Coroutines run on the loop thread; calling run() from that loop is refused."""
    runner = EventLoopThread("test-reentry").start()
    try:

        async def inner() -> str:
            import threading

            return threading.current_thread().name

        assert runner.run(inner()) == "test-reentry"

        async def reenter() -> None:
            runner.run(inner())

        with pytest.raises(RuntimeError, match="own loop"):
            runner.run(reenter())
    finally:
        runner.stop()
    assert not runner.running
