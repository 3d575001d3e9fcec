"""The database gauges of ``/metrics`` (SPEC S9.9) on both engines, and the same numbers from the
in-memory adapter: open groups by status and severity, pending intents by channel type, and the
age of the oldest due pending intent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from relay_adapters.metrics import DatabaseGauges, GaugeSnapshot
from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.bootstrap import bootstrap
from relay_core.domain.model import AlertGroup, Channel, NotificationIntent, Team
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.testing.fakes import FakeClock

NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


async def _seed(factory: Any) -> None:
    async with factory() as uow:
        team = await uow.teams.add(Team(group_id=1, slug="ops", name="Ops"))
        hook = await uow.channels.add(Channel(group_id=1, name="hook", channel_type="webhook"))
        mail = await uow.channels.add(Channel(group_id=1, name="mail", channel_type="email"))
        groups = []
        for n, (status, severity) in enumerate(
            [
                ("firing", "critical"),
                ("firing", "critical"),
                ("acknowledged", "warning"),
                ("resolved", "critical"),
            ]
        ):
            groups.append(
                await uow.alert_groups.add(
                    AlertGroup(
                        team_id=team.id,
                        route_id=1,
                        source="alertmanager",
                        group_key=f"k{n}",
                        group_key_hash=f"h{n}",
                        status=status,
                        severity=severity,
                        first_seen_at=NOW,
                        last_seen_at=NOW,
                    )
                )
            )
        rows = [
            (hook.id, "pending", NOW - dt.timedelta(seconds=42)),
            (hook.id, "pending", NOW + dt.timedelta(seconds=60)),  # a retry not due yet: queued, not late
            (mail.id, "pending", NOW - dt.timedelta(seconds=7)),
            (mail.id, "sent", NOW - dt.timedelta(seconds=900)),
        ]
        for n, (channel_id, status, due) in enumerate(rows):
            await uow.intents.add(
                NotificationIntent(
                    idempotency_key=f"k{n}",
                    group_id=groups[0].id,
                    channel_id=channel_id,
                    event_type="notification",
                    status=status,
                    due_at=due,
                    created_at=NOW - dt.timedelta(seconds=900),
                )
            )
        await uow.commit()


EXPECTED = GaugeSnapshot(
    groups_open={("firing", "critical"): 2, ("acknowledged", "warning"): 1},
    outbox_pending={"webhook": 2, "email": 1},
    oldest_pending_age_seconds=42.0,
)


async def test_database_gauges_on_each_engine(sql_url: str) -> None:
    factory = SqlAlchemyUnitOfWorkFactory(sql_url)
    relay = bootstrap(uow_factory=factory, clock=FakeClock(NOW))
    try:
        await _seed(factory)
        gauges = DatabaseGauges(relay, ttl=60)
        assert await gauges.snapshot() == EXPECTED
        # Cached: a new pending intent shows only once the cache expired.
        async with factory() as uow:
            await uow.intents.add(
                NotificationIntent(
                    idempotency_key="late",
                    channel_id=None,
                    event_type="notification",
                    due_at=NOW - dt.timedelta(seconds=100),
                    created_at=NOW,
                )
            )
            await uow.commit()
        assert await gauges.snapshot() == EXPECTED
        gauges.ttl = 0
        fresh = await gauges.snapshot()
        assert fresh.outbox_pending == {"webhook": 2, "email": 1, "unknown": 1}
        assert fresh.oldest_pending_age_seconds == 100.0
    finally:
        await factory.aclose()


async def test_database_gauges_from_the_memory_adapter() -> None:
    factory = InMemoryUnitOfWorkFactory()
    relay = bootstrap(uow_factory=factory, clock=FakeClock(NOW))
    await _seed(factory)
    assert await DatabaseGauges(relay).snapshot() == EXPECTED
