"""A multi-alert request ends exactly as the same alerts posted one request each (SPEC S2.11).

The intake path answers the dedup lookups of a multi-alert request from one query and writes
its events and traces in one insert per table; these tests pin that this changes nothing,
including when an earlier item of the request changes the rows a later one looks up (a group
resolved by one item whose sibling fires again in the next; the same alert twice).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_adapters.storage.sqlalchemy.schema import migrate
from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain.model import Channel, Group, Rotation, RotationMember, Route, Team, User
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock, RecordingChannel

START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


def _alert(fingerprint: str, status: str = "firing", alertname: str = "DiskFull") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": "critical", "instance": fingerprint},
        "annotations": {"summary": f"{alertname} on {fingerprint}"},
        "startsAt": "2026-06-01T09:59:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


def _body(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(
        {"version": "4", "status": "firing", "receiver": "relay", "alerts": list(alerts)}
    ).encode()


async def _relay(make_factory: Callable[[], Any]) -> tuple[Relay, Any, FakeClock, int]:
    factory = make_factory()
    clock = FakeClock(START)
    relay = bootstrap(
        uow_factory=factory,
        clock=clock,
        settings=CoreSettings(public_base_url="https://relay.test"),
        channels=[RecordingChannel()],
    )
    async with factory() as uow:
        grp = await uow.groups.add(Group(slug="ops", name="Ops"))
        team = await uow.teams.add(Team(group_id=grp.id, slug="infra", name="Infra"))
        user = await uow.users.add(User(username="ivan"))
        rot = await uow.rotations.add(
            Rotation(
                team_id=team.id,
                name="r",
                start_at=START - dt.timedelta(days=1),
                reminder_interval_seconds=300,
            )
        )
        await uow.rotation_members.add(RotationMember(rotation_id=rot.id, user_id=user.id, position=0))
        chan = await uow.channels.add(
            Channel(group_id=grp.id, team_id=team.id, name="chat", channel_type="recording")
        )
        route = await uow.routes.add(
            Route(
                team_id=team.id,
                name="am",
                source="alertmanager",
                rotation_id=rot.id,
                channel_ids=(chan.id,),
                group_by=("alertname",),
            )
        )
        await uow.commit()
    return relay, factory, clock, route.id


async def _state(relay: Relay) -> dict[str, Any]:
    async with relay.uow_factory() as uow:
        groups = await uow.alert_groups.find()
        alerts = await uow.alerts.find()
        events = await uow.events.find()
        intents = await uow.intents.find()
        traces = await uow.traces.find()
    return {
        "groups": [
            (
                g.id,
                g.status,
                g.alert_count,
                g.firing_count,
                g.resolved_count,
                g.lifecycle_version,
                g.next_reminder_at,
            )
            for g in groups
        ],
        "alerts": [(a.id, a.group_id, a.dedup_key, a.status, a.group_open, a.resolved_at) for a in alerts],
        "events": [(e.id, e.group_id, e.alert_id, e.event_type, e.message) for e in events],
        "intents": [(i.idempotency_key, i.event_type, i.due_at) for i in intents],
        "traces": sorted(
            (t.dedup_key or "", t.outcome, t.group_id or 0, t.alert_id or 0, tuple(s.code for s in t.steps))
            for t in traces
        ),
    }


# Before the request under test: a group of three (a, b, c), b resolved two hours before the
# request (beyond the dedup window), and d alone in another group.
_BEFORE = (
    _body(_alert("a"), _alert("b"), _alert("c"), _alert("d", alertname="Other")),
    _body(_alert("b", "resolved")),
)
# Items whose lookups depend on earlier items of the same request: resolving a and c resolves the
# group, so b's row leaves the open set and b (resolved too long ago to reopen) starts a new
# group; e joins it, a fires again (its resolved group's key is taken: a moves to the new group),
# e repeats, d repeats, f is an orphan resolve.
_REQUEST = _body(
    _alert("a", "resolved"),
    _alert("c", "resolved"),
    _alert("b"),
    _alert("e"),
    _alert("a"),
    _alert("e"),
    _alert("d", alertname="Other"),
    _alert("f", "resolved"),
)


@pytest.fixture(params=["memory", "sqlite"])
async def make_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    made: list[Any] = []
    count = 0

    async def prepare() -> Callable[[], Any]:
        if request.param == "memory":
            return InMemoryUnitOfWorkFactory
        urls = []
        for _ in range(2):
            nonlocal count
            count += 1
            url = f"sqlite:///{tmp_path}/relay{count}.db"
            await migrate(url)
            urls.append(url)

        def make() -> Any:
            factory = SqlAlchemyUnitOfWorkFactory(urls.pop(), read_cache_ttl=2, lazy_begin=True)
            made.append(factory)
            return factory

        return make

    yield await prepare()
    for factory in made:
        await factory.aclose()


async def test_multi_alert_request_equals_one_request_per_alert(make_factory: Callable[[], Any]) -> None:
    source = AlertmanagerSource()
    together, _, clock_a, route_a = await _relay(make_factory)
    apart, _, clock_b, route_b = await _relay(make_factory)
    for relay, clock, route in ((together, clock_a, route_a), (apart, clock_b, route_b)):
        for body in _BEFORE:
            await relay.ingest("alertmanager", source.parse(body, {}, {}), route_id=route)
            clock.advance(dt.timedelta(seconds=30))
        clock.advance(dt.timedelta(hours=2))

    batch = await together.ingest("alertmanager", source.parse(_REQUEST, {}, {}), route_id=route_a)
    single = []
    for item in source.parse(_REQUEST, {}, {}):
        single.extend(await apart.ingest("alertmanager", [item], route_id=route_b))

    def shape(results: list[Any]) -> list[tuple[Any, ...]]:
        return [(r.outcome, r.status, r.group_id, r.alert_id, r.dedup_key) for r in results]

    assert shape(batch) == shape(single)
    # The interesting paths were taken: the group resolved, b started a new one, e joined it.
    assert [r.outcome for r in batch] == [
        "updated",
        "updated",
        "created",
        "added",
        "updated",
        "updated",
        "updated",
        "ignored",
    ]
    assert batch[1].status == "resolved"
    assert batch[2].status == "firing"
    assert batch[4].group_id == batch[2].group_id != batch[0].group_id
    assert await _state(together) == await _state(apart)
