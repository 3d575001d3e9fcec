"""``add_many``: the one-round-trip insert intake uses for events and traces of a request."""

from __future__ import annotations

import datetime as dt

import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.domain.errors import Conflict
from relay_core.domain.model import AlertEvent, ExplainTrace, TraceStep

NOW = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC)


def _trace(trace_id: str) -> ExplainTrace:
    return ExplainTrace(
        trace_id=trace_id,
        source="alertmanager",
        outcome="created",
        input_summary={"title": trace_id},
        steps=(TraceStep(position=0, stage="intake", code="alert_received", status="ok", title="t"),),
        started_at=NOW,
        finished_at=NOW,
    )


async def test_add_many_inserts_in_order_and_reports_unique_violations(sql_url: str) -> None:
    factory = SqlAlchemyUnitOfWorkFactory(sql_url)
    try:
        async with factory() as uow:
            await uow.events.add_many(  # type: ignore[attr-defined]
                [
                    AlertEvent(group_id=7, event_type=f"e{n}", message=f"m{n}", created_at=NOW)
                    for n in range(3)
                ]
            )
            await uow.events.add_many([AlertEvent(group_id=8, event_type="one", message="", created_at=NOW)])  # type: ignore[attr-defined]
            await uow.traces.add_many([_trace("t1"), _trace("t2")])  # type: ignore[attr-defined]
            await uow.commit()
        async with factory() as uow:
            events = await uow.events.find(order_by="id")
            assert [(e.group_id, e.event_type) for e in events] == [
                (7, "e0"),
                (7, "e1"),
                (7, "e2"),
                (8, "one"),
            ]
            assert len({e.id for e in events}) == 4
            traces = await uow.traces.find(order_by="id")
            assert [(t.trace_id, t.input_summary, [s.code for s in t.steps]) for t in traces] == [
                ("t1", {"title": "t1"}, ["alert_received"]),
                ("t2", {"title": "t2"}, ["alert_received"]),
            ]
            with pytest.raises(Conflict):
                await uow.traces.add_many([_trace("t3"), _trace("t1")])  # type: ignore[attr-defined]
            # The unit of work stays usable (PostgreSQL: the batch ran in a savepoint), and
            # nothing of the refused batch was written.
            await uow.traces.add_many([_trace("t4")])  # type: ignore[attr-defined]
            await uow.commit()
        async with factory() as uow:
            assert [t.trace_id for t in await uow.traces.find(order_by="id")] == ["t1", "t2", "t4"]
    finally:
        await factory.aclose()
