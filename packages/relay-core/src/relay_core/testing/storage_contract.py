"""Conformance suite for storage adapters of :mod:`relay_core.ports.storage`.

Subclass :class:`StorageContract` in a test module and provide an async ``uow_factory``
fixture that yields a fresh, empty :class:`~relay_core.ports.storage.UnitOfWorkFactory`
(and closes it afterwards)::

    class TestSqliteStorage(StorageContract):
        @pytest.fixture
        async def uow_factory(self, tmp_path):
            factory = make_factory(tmp_path)
            yield factory
            await factory.aclose()

The in-memory adapter (:mod:`relay_core.memory`) is the reference: every assertion here
holds for it, and an adapter that passes behaves the same for the service layer. Samples
are built generically from the attrs fields of every entity in
:data:`~relay_core.ports.storage.ENTITIES`, so a new entity or field is covered without
touching this module. Mappings hold JSON values (tuples inside a mapping come back as
lists from JSON-backed adapters), and datetimes are aware.

This module imports pytest but no database library.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Mapping
from typing import Any, Final

import attrs
import pytest

from relay_core.domain import constants as c
from relay_core.domain.errors import Conflict
from relay_core.domain.model import (
    AlertGroup,
    Notification,
    NotificationIntent,
    Subscription,
    Team,
    TraceStep,
)
from relay_core.ports.storage import ENTITIES, UNIQUE_KEYS, UnitOfWork, UnitOfWorkFactory

__all__ = ["StorageContract", "minimal_sample", "sample"]

#: A fixed instant with microseconds, so precision loss shows.
T0: Final = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
_UNICODE: Final = "ünïcødé ✓ 漢字 🚨 «Ωμέγα» עברית 'single' \"double\" back\\slash\nline"


# --- generic samples --------------------------------------------------------------------


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), True
    return hint, False


def _steps(seed: int) -> tuple[TraceStep, ...]:
    return (
        TraceStep(position=0, stage="route", code=f"route_matched_{seed}", title=f"Route ✓ {seed}"),
        TraceStep(
            position=1,
            stage="dedup",
            code="new_alert",
            status="skipped",
            message=_UNICODE,
            data={"keys": ["a", "ü"], "n": seed, "nested": {"ok": True, "none": None, "f": 2.5}},
        ),
    )


def _value(table: str, name: str, hint: Any, default: Any, seed: int, index: int) -> Any:
    hint, _optional = _unwrap_optional(hint)
    origin = typing.get_origin(hint) or hint
    if name == "deleted_at":
        return None  # a soft-deleted sample would be invisible
    if hint is Any:  # matchers
        return {"all": [{"label": "severity", "op": "=", "value": f"critical-{seed}"}], "note": _UNICODE}
    if origin is bool:
        return (not default) if isinstance(default, bool) else bool(seed % 2)
    if origin is int:
        return seed * 100 + index
    if origin is str:
        return f"{table}.{name}.{seed} {_UNICODE}"
    if origin is dt.datetime:
        # Later fields are later instants, so `ends_at > starts_at` validators hold.
        return T0 + dt.timedelta(days=seed, seconds=index, microseconds=seed * 7)
    if origin is tuple:
        item = typing.get_args(hint)[0] if typing.get_args(hint) else str
        if item is TraceStep:
            return _steps(seed)
        if item is int:
            return (seed, seed + 1, 3)
        return (f"first-{seed}", "ü✓")
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return {
            "key": f"value-{seed}",
            "ключ": "значение ✓",
            "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}, "seed": seed},
        }
    raise TypeError(f"{table}.{name}: no sample value for {hint!r}")


def sample(table: str, seed: int = 1, **overrides: Any) -> Any:
    """An entity for repository ``table`` with every field set to a non-default value.

    Values depend on ``seed``: two samples with different seeds differ in every field (so
    they never collide on a unique key). ``deleted_at`` stays None.
    """
    cls = ENTITIES[table]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for index, field in enumerate(attrs.fields(cls)):
        if field.name == "id" or field.name in overrides:
            continue
        default = None if field.default is attrs.NOTHING else field.default
        values[field.name] = _value(table, field.name, hints[field.name], default, seed, index)
    values.update(overrides)
    return cls(**values)


def minimal_sample(table: str, seed: int = 1) -> Any:
    """An entity for ``table`` with only its required fields set; the rest keep their defaults."""
    full = sample(table, seed)
    cls = ENTITIES[table]
    required = {
        f.name: getattr(full, f.name)
        for f in attrs.fields(cls)
        if f.default is attrs.NOTHING and f.name != "id"
    }
    return cls(**required)


def _intent(key: str, **fields: Any) -> NotificationIntent:
    values: dict[str, Any] = {"event_type": c.EV_NOTIFICATION, "due_at": T0, "created_at": T0}
    values.update(fields)
    return NotificationIntent(idempotency_key=key, **values)


def _team(slug: str, **fields: Any) -> Team:
    return Team(group_id=1, slug=slug, name=slug.title(), **fields)


async def _lookup_rows(uow: UnitOfWork) -> dict[str, NotificationIntent]:
    """Four intents with a spread of NULL and non-NULL values, added in key order."""
    rows = {
        "a": _intent("a", priority=0, group_id=1),
        "b": _intent(
            "b",
            priority=1,
            group_id=2,
            lease_owner="w1",
            lease_until=T0 + dt.timedelta(hours=1),
            due_at=T0 + dt.timedelta(minutes=1),
        ),
        "c": _intent(
            "c",
            priority=2,
            group_id=None,
            lease_owner="w2",
            lease_until=T0 + dt.timedelta(hours=2),
            due_at=T0 + dt.timedelta(minutes=2),
        ),
        "d": _intent("d", priority=1, group_id=2, due_at=T0 + dt.timedelta(minutes=1)),
    }
    return {key: await uow.intents.add(intent) for key, intent in rows.items()}


_HOUR: Final = dt.timedelta(hours=1)

#: (filters, keys of the matching rows of ``_lookup_rows``).
LOOKUP_CASES: Final[list[tuple[dict[str, Any], str]]] = [
    ({}, "abcd"),
    ({"priority": 1}, "bd"),
    ({"priority__eq": 1}, "bd"),
    ({"lease_owner": "w1"}, "b"),
    ({"group_id": None}, "c"),
    ({"group_id__ne": 2}, "ac"),
    ({"lease_owner__ne": None}, "bc"),
    ({"priority__in": [0, 2]}, "ac"),
    ({"priority__in": (2, 0)}, "ac"),
    ({"group_id__in": [1, None]}, "ac"),
    ({"priority__in": []}, ""),
    ({"priority__lt": 1}, "a"),
    ({"priority__lte": 1}, "abd"),
    ({"priority__gt": 1}, "c"),
    ({"priority__gte": 1}, "bcd"),
    ({"lease_until__lt": T0 + 1.5 * _HOUR}, "b"),
    ({"lease_until__gte": T0 + _HOUR}, "bc"),
    ({"lease_until__isnull": True}, "ad"),
    ({"lease_until__isnull": False}, "bc"),
    ({"due_at__lte": T0 + dt.timedelta(minutes=1), "priority__gte": 1}, "bd"),
    ({"group_id": 2, "lease_owner": None}, "d"),
]

#: (order_by, keys of ``_lookup_rows`` in the expected order).
ORDER_CASES: Final[list[tuple[str, str]]] = [
    ("id", "abcd"),
    ("-id", "dcba"),
    ("priority", "abdc"),
    ("-priority", "cdba"),
    ("lease_until", "adbc"),
    ("-lease_until", "cbda"),
    ("group_id", "cabd"),
    ("-group_id", "dbac"),
    ("due_at", "abdc"),
    ("-due_at", "cdba"),
]


class StorageContract:
    """Behaviour every storage adapter shares with the in-memory reference adapter."""

    @pytest.fixture
    def uow_factory(self) -> UnitOfWorkFactory:
        """Subclasses override this with an async fixture yielding a fresh factory."""
        raise NotImplementedError("a StorageContract subclass must provide the `uow_factory` fixture")

    # --- round trips ----------------------------------------------------------------------

    @pytest.mark.parametrize("table", list(ENTITIES))
    async def test_round_trip_every_entity(self, uow_factory: UnitOfWorkFactory, table: str) -> None:
        """Every field of every entity survives add, commit, get, update and get again unchanged."""
        full, minimal = sample(table, 1), minimal_sample(table, 2)
        async with uow_factory() as uow:
            repo: Any = getattr(uow, table)
            added = await repo.add(full)
            added_minimal = await repo.add(minimal)
            assert added.id > 0
            assert added_minimal.id > 0
            assert added.id != added_minimal.id
            assert added == attrs.evolve(full, id=added.id)
            await uow.commit()
        changed = attrs.evolve(sample(table, 3), id=added.id)
        async with uow_factory() as uow:
            repo = getattr(uow, table)
            assert await repo.get(added.id) == attrs.evolve(full, id=added.id)
            assert await repo.get(added_minimal.id) == attrs.evolve(minimal, id=added_minimal.id)
            assert await repo.update(changed) == changed
            await uow.commit()
        async with uow_factory() as uow:
            repo = getattr(uow, table)
            assert await repo.get(added.id) == changed
            assert await repo.get(added_minimal.id) == attrs.evolve(minimal, id=added_minimal.id)

    async def test_get_unknown_id_is_none(self, uow_factory: UnitOfWorkFactory) -> None:
        """Getting an id that was never assigned returns None."""
        async with uow_factory() as uow:
            assert await uow.alert_groups.get(424242) is None

    async def test_ids_are_distinct_and_never_reused(self, uow_factory: UnitOfWorkFactory) -> None:
        """Each add gets a new id, also after the row with the highest id was deleted."""
        async with uow_factory() as uow:
            first = await uow.callback_receipts.add(sample("callback_receipts", 1))
            second = await uow.callback_receipts.add(sample("callback_receipts", 2))
            await uow.callback_receipts.delete(second.id)
            third = await uow.callback_receipts.add(sample("callback_receipts", 3))
            assert len({first.id, second.id, third.id}) == 3
            await uow.commit()

    async def test_aware_datetimes_survive_exactly(self, uow_factory: UnitOfWorkFactory) -> None:
        """Datetimes keep microseconds and their instant, whatever the offset they were given in."""
        india = dt.timezone(dt.timedelta(hours=5, minutes=30))
        values = {
            "utc": T0,
            "offset": dt.datetime(2026, 3, 1, 17, 30, 0, 999999, tzinfo=india),
            "epoch": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
            "far": dt.datetime(2999, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
        }
        async with uow_factory() as uow:
            ids = {k: (await uow.intents.add(_intent(k, due_at=v))).id for k, v in values.items()}
            await uow.commit()
        async with uow_factory() as uow:
            for key, value in values.items():
                got = await uow.intents.get(ids[key])
                assert got is not None
                assert got.due_at == value
                assert got.due_at.utcoffset() is not None
                assert got.due_at.astimezone(dt.UTC) == value.astimezone(dt.UTC)
            # Filters and order compare instants, not local wall times.
            same_instant = values["offset"].astimezone(dt.UTC)
            assert [i.idempotency_key for i in await uow.intents.find(due_at=same_instant)] == ["offset"]
            ordered = await uow.intents.find(order_by="due_at")
            assert [i.idempotency_key for i in ordered] == ["epoch", "utc", "offset", "far"]

    async def test_unicode_json_and_tuples_round_trip(self, uow_factory: UnitOfWorkFactory) -> None:
        """Unicode text, nested JSON, empty containers and None-vs-empty stay distinct and intact."""
        empty = Subscription(
            group_id=1,
            category_id=1,
            role_group_id=1,
            name=_UNICODE,
            matchers=[],
            last_test_result={},
            events=(),
        )
        unset = attrs.evolve(
            empty, name="unset", matchers={"a": {"b": [1, {"c": None}]}}, last_test_result=None
        )
        async with uow_factory() as uow:
            added = [await uow.subscriptions.add(e) for e in (empty, unset)]
            await uow.commit()
        async with uow_factory() as uow:
            for entity in added:
                got = await uow.subscriptions.get(entity.id)
                assert got == entity
            assert got is not None
            assert got.last_test_result is None
            assert got.events == ()
            assert isinstance(got.events, tuple)
            found = await uow.subscriptions.find(name=_UNICODE)
            assert [s.id for s in found] == [added[0].id]

    async def test_trace_steps_round_trip(self, uow_factory: UnitOfWorkFactory) -> None:
        """An explain trace's steps come back as a tuple of TraceStep values, in order."""
        trace = sample("traces", 5)
        async with uow_factory() as uow:
            added = await uow.traces.add(trace)
            await uow.commit()
        async with uow_factory() as uow:
            got = await uow.traces.get(added.id)
            assert got is not None
            assert isinstance(got.steps, tuple)
            assert all(isinstance(step, TraceStep) for step in got.steps)
            assert got.steps == trace.steps

    # --- queries --------------------------------------------------------------------------

    @pytest.mark.parametrize(("where", "expected"), LOOKUP_CASES, ids=[repr(w) for w, _ in LOOKUP_CASES])
    async def test_lookup(self, uow_factory: UnitOfWorkFactory, where: dict[str, Any], expected: str) -> None:
        """Each filter and lookup operator selects exactly the rows the reference adapter selects."""
        async with uow_factory() as uow:
            rows = await _lookup_rows(uow)
            by_id = {intent.id: key for key, intent in rows.items()}
            found = await uow.intents.find(**where)
            assert "".join(by_id[i.id] for i in found) == expected
            assert await uow.intents.count(**where) == len(expected)

    async def test_boolean_filters(self, uow_factory: UnitOfWorkFactory) -> None:
        """Booleans filter with equality, ne and in."""
        async with uow_factory() as uow:
            on = await uow.teams.add(_team("on"))
            off = await uow.teams.add(_team("off", active=False))
            assert [t.id for t in await uow.teams.find(active=True)] == [on.id]
            assert [t.id for t in await uow.teams.find(active=False)] == [off.id]
            assert [t.id for t in await uow.teams.find(active__ne=True)] == [off.id]
            assert [t.id for t in await uow.teams.find(active__in=[True, False])] == [on.id, off.id]

    @pytest.mark.parametrize(("order_by", "expected"), ORDER_CASES)
    async def test_order_by(self, uow_factory: UnitOfWorkFactory, order_by: str, expected: str) -> None:
        """Ascending puts None first, descending last, and ties follow id in the same direction."""
        async with uow_factory() as uow:
            rows = await _lookup_rows(uow)
            by_id = {intent.id: key for key, intent in rows.items()}
            found = await uow.intents.find(order_by=order_by)
            assert "".join(by_id[i.id] for i in found) == expected

    async def test_limit_offset_and_first(self, uow_factory: UnitOfWorkFactory) -> None:
        """Limit and offset page through the ordered result; first returns its head or None."""
        async with uow_factory() as uow:
            rows = await _lookup_rows(uow)
            by_id = {intent.id: key for key, intent in rows.items()}

            async def keys(**kwargs: Any) -> str:
                return "".join(by_id[i.id] for i in await uow.intents.find(**kwargs))

            assert await keys(limit=2) == "ab"
            assert await keys(limit=2, offset=1) == "bc"
            assert await keys(offset=2) == "cd"
            assert await keys(offset=10) == ""
            assert await keys(limit=0) == ""
            assert await keys(order_by="-priority", limit=3, offset=1) == "dba"
            assert await keys(order_by="lease_until", limit=1, lease_until__isnull=False) == "b"
            top = await uow.intents.first(order_by="-priority")
            assert top is not None
            assert top.id == rows["c"].id
            assert await uow.intents.first(priority=7) is None

    async def test_count(self, uow_factory: UnitOfWorkFactory) -> None:
        """Count counts what find would return, without limit."""
        async with uow_factory() as uow:
            assert await uow.intents.count() == 0
            await _lookup_rows(uow)
            assert await uow.intents.count() == 4
            assert await uow.intents.count(priority__gte=1, lease_owner=None) == 1

    async def test_soft_deleted_rows_are_hidden(self, uow_factory: UnitOfWorkFactory) -> None:
        """A row with deleted_at set is invisible to get, find, first, count and update_where."""
        async with uow_factory() as uow:
            gone = await uow.teams.add(_team("gone"))
            kept = await uow.teams.add(_team("kept"))
            await uow.teams.update(attrs.evolve(gone, deleted_at=T0))
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.teams.get(gone.id) is None
            assert [t.id for t in await uow.teams.find()] == [kept.id]
            assert await uow.teams.find(deleted_at__isnull=False) == []
            assert await uow.teams.first(slug="gone") is None
            assert await uow.teams.count() == 1
            assert await uow.teams.update_where(gone.id, {}, {"name": "Back"}) is None
            assert await uow.teams.get(kept.id) == kept

    async def test_delete_removes_for_good(self, uow_factory: UnitOfWorkFactory) -> None:
        """Delete removes the row; deleting a missing id is a no-op."""
        async with uow_factory() as uow:
            receipt = await uow.callback_receipts.add(sample("callback_receipts"))
            await uow.callback_receipts.delete(receipt.id)
            await uow.callback_receipts.delete(987654)
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.callback_receipts.get(receipt.id) is None
            assert await uow.callback_receipts.count() == 0

    # --- compare-and-set ------------------------------------------------------------------

    async def test_update_where_applies_when_expectations_hold(self, uow_factory: UnitOfWorkFactory) -> None:
        """update_where changes the row and returns it when every expected value still holds."""
        due = T0 + dt.timedelta(minutes=5)
        group = AlertGroup(
            team_id=1,
            route_id=1,
            source="s",
            group_key="k",
            group_key_hash="h",
            first_seen_at=T0,
            last_seen_at=T0,
            next_action_at=due,
        )
        async with uow_factory() as uow:
            added = await uow.alert_groups.add(group)
            changed = await uow.alert_groups.update_where(
                added.id,
                {"lifecycle_version": 0, "next_action_at": due},
                {"lifecycle_version": 1, "next_action_at": None, "reminder_count": 1},
            )
            expected = attrs.evolve(added, lifecycle_version=1, next_action_at=None, reminder_count=1)
            assert changed == expected
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.alert_groups.get(added.id) == expected

    async def test_update_where_refuses_when_expectations_fail(self, uow_factory: UnitOfWorkFactory) -> None:
        """update_where leaves the row untouched and returns None when any expectation fails."""
        async with uow_factory() as uow:
            rows = await _lookup_rows(uow)
            b = rows["b"]
            assert await uow.intents.update_where(b.id, {"status": c.INTENT_SENT}, {"priority": 9}) is None
            assert (
                await uow.intents.update_where(b.id, {"priority": 1, "lease_owner": "w2"}, {"priority": 9})
                is None
            )
            assert await uow.intents.update_where(b.id, {"lease_until__lt": T0}, {"priority": 9}) is None
            assert await uow.intents.update_where(424242, {}, {"priority": 9}) is None
            assert await uow.intents.get(b.id) == b
            # A lookup in the expectation that holds, and an unconditional change.
            moved = await uow.intents.update_where(b.id, {"lease_until__gte": T0}, {"priority": 9})
            assert moved == attrs.evolve(b, priority=9)
            assert await uow.intents.update_where(b.id, {}, {"priority": 8}) == attrs.evolve(b, priority=8)

    # --- unique keys ----------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("table", "fields"),
        [(table, fields) for table, keys in UNIQUE_KEYS.items() for fields in keys],
    )
    async def test_unique_key_conflict(
        self, uow_factory: UnitOfWorkFactory, table: str, fields: tuple[str, ...]
    ) -> None:
        """A duplicate unique key raises Conflict on add and update; the unit of work stays usable."""
        first = sample(table, 1)
        clash = attrs.evolve(sample(table, 2), **{f: getattr(first, f) for f in fields})
        async with uow_factory() as uow:
            repo: Any = getattr(uow, table)
            added = await repo.add(first)
            with pytest.raises(Conflict):
                await repo.add(clash)
            other = await repo.add(sample(table, 3))
            with pytest.raises(Conflict):
                await repo.update(attrs.evolve(other, **{f: getattr(first, f) for f in fields}))
            with pytest.raises(Conflict):
                await repo.update_where(other.id, {}, {f: getattr(first, f) for f in fields})
            await uow.commit()
        async with uow_factory() as uow:
            repo = getattr(uow, table)
            assert await repo.get(added.id) == added
            assert await repo.get(other.id) == other
            assert await repo.count() == 2

    async def test_null_in_a_unique_key_never_conflicts(self, uow_factory: UnitOfWorkFactory) -> None:
        """Rows whose unique key has a NULL part do not collide (SQL semantics, shared by all adapters)."""
        record = Notification(channel_id=1, recipient_key="channel", created_at=T0, updated_at=T0)
        async with uow_factory() as uow:
            await uow.notifications.add(record)
            await uow.notifications.add(record)
            assert await uow.notifications.count(group_id=None) == 2

    # --- transactions ---------------------------------------------------------------------

    async def test_commit_persists(self, uow_factory: UnitOfWorkFactory) -> None:
        """Committed writes are visible to the next unit of work."""
        async with uow_factory() as uow:
            team = await uow.teams.add(_team("persisted"))
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.teams.get(team.id) == team

    async def test_exit_without_commit_discards_every_write(self, uow_factory: UnitOfWorkFactory) -> None:
        """Leaving the block without commit undoes adds, updates, deletes, CAS, claims and leases alike."""
        async with uow_factory() as uow:
            kept = await uow.teams.add(_team("kept"))
            receipt = await uow.callback_receipts.add(sample("callback_receipts"))
            pending = await uow.intents.add(_intent("pending"))
            await uow.commit()
        async with uow_factory() as uow:
            await uow.teams.add(_team("discarded"))
            await uow.teams.update(attrs.evolve(kept, name="Renamed"))
            await uow.teams.update_where(kept.id, {}, {"description": "changed"})
            await uow.callback_receipts.delete(receipt.id)
            await uow.intents.add_unique(_intent("another"))
            assert len(await uow.intents.claim(owner="w", now=T0, lease_until=T0 + _HOUR, limit=10)) == 2
            assert await uow.leases.acquire("job", "w", T0, 30) is not None
        async with uow_factory() as uow:
            assert await uow.teams.find() == [kept]
            assert await uow.callback_receipts.get(receipt.id) == receipt
            assert await uow.intents.find() == [pending]
            assert await uow.leases.acquire("job", "other", T0, 30) is not None

    async def test_exception_rolls_back_and_propagates(self, uow_factory: UnitOfWorkFactory) -> None:
        """An exception inside the block propagates and nothing of the block is stored."""

        async def doomed() -> None:
            async with uow_factory() as uow:
                await uow.teams.add(_team("doomed"))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await doomed()
        async with uow_factory() as uow:
            assert await uow.teams.count() == 0

    async def test_writes_after_commit_are_rolled_back_on_exit(self, uow_factory: UnitOfWorkFactory) -> None:
        """A commit ends one transaction; later writes in the same block need their own commit."""
        async with uow_factory() as uow:
            first = await uow.teams.add(_team("first"))
            await uow.commit()
            await uow.teams.add(_team("second"))
        async with uow_factory() as uow:
            assert await uow.teams.find() == [first]

    async def test_explicit_rollback_then_commit(self, uow_factory: UnitOfWorkFactory) -> None:
        """rollback() discards what came before it; the unit of work can then write and commit."""
        async with uow_factory() as uow:
            await uow.teams.add(_team("undone"))
            await uow.rollback()
            assert await uow.teams.count() == 0
            kept = await uow.teams.add(_team("kept"))
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.teams.find() == [kept]

    # --- outbox -----------------------------------------------------------------------------

    async def test_add_unique_ignores_duplicates(self, uow_factory: UnitOfWorkFactory) -> None:
        """add_unique stores the first intent for a key and returns None for any later one."""
        async with uow_factory() as uow:
            first = await uow.intents.add_unique(_intent("k1", priority=0))
            assert first is not None
            assert first.id > 0
            assert await uow.intents.add_unique(_intent("k1", priority=5)) is None
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.intents.add_unique(_intent("k1", priority=6)) is None
            second = await uow.intents.add_unique(_intent("k2"))
            assert second is not None
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.intents.find() == [first, second]

    async def test_claim_hands_out_due_pending_intents_in_order(self, uow_factory: UnitOfWorkFactory) -> None:
        """Claim takes due pending intents by priority, then due time, then id, and leases them."""
        lease_until = T0 + dt.timedelta(seconds=60)
        async with uow_factory() as uow:
            added = {
                key: await uow.intents.add(intent)
                for key, intent in {
                    "p2": _intent("p2", priority=2, due_at=T0 - dt.timedelta(seconds=120)),
                    "p1_late": _intent("p1_late", priority=1, due_at=T0 - dt.timedelta(seconds=30)),
                    "p1_early": _intent(
                        "p1_early", priority=1, due_at=T0 - dt.timedelta(seconds=60), attempt_count=2
                    ),
                    "p0": _intent("p0", priority=0, due_at=T0 - dt.timedelta(seconds=10)),
                    "p1_late_tie": _intent("p1_late_tie", priority=1, due_at=T0 - dt.timedelta(seconds=30)),
                    "exactly_now": _intent("exactly_now", priority=3, due_at=T0),
                    "future": _intent("future", priority=0, due_at=T0 + dt.timedelta(microseconds=1)),
                    "sending": _intent("sending", status=c.INTENT_SENDING, due_at=T0 - _HOUR),
                    "sent": _intent("sent", status=c.INTENT_SENT, due_at=T0 - _HOUR),
                    "cancelled": _intent("cancelled", status=c.INTENT_CANCELLED, due_at=T0 - _HOUR),
                }.items()
            }
            await uow.commit()
        async with uow_factory() as uow:
            claimed = await uow.intents.claim(owner="w1", now=T0, lease_until=lease_until, limit=100)
            assert [i.idempotency_key for i in claimed] == [
                "p0",
                "p1_early",
                "p1_late",
                "p1_late_tie",
                "p2",
                "exactly_now",
            ]
            for intent in claimed:
                before = added[intent.idempotency_key]
                assert intent == attrs.evolve(
                    before,
                    status=c.INTENT_SENDING,
                    lease_owner="w1",
                    lease_until=lease_until,
                    attempt_count=before.attempt_count + 1,
                )
            assert await uow.intents.claim(owner="w2", now=T0, lease_until=lease_until, limit=100) == []
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.intents.claim(owner="w2", now=T0, lease_until=lease_until, limit=100) == []
            stored = await uow.intents.find(lease_owner="w1")
            assert sorted(i.id for i in stored) == sorted(i.id for i in claimed)
            assert await uow.intents.get(added["future"].id) == added["future"]
            assert await uow.intents.get(added["sent"].id) == added["sent"]

    async def test_claim_respects_limit_and_ids(self, uow_factory: UnitOfWorkFactory) -> None:
        """Claim hands out at most limit intents, only among the given ids when ids are passed."""
        async with uow_factory() as uow:
            intents = [await uow.intents.add(_intent(f"i{n}", priority=n)) for n in range(5)]
            future = await uow.intents.add(_intent("future", due_at=T0 + _HOUR))
            sent = await uow.intents.add(_intent("sent", status=c.INTENT_SENT))
            until = T0 + _HOUR
            assert await uow.intents.claim(owner="w", now=T0, lease_until=until, limit=0) == []
            first_two = await uow.intents.claim(owner="w", now=T0, lease_until=until, limit=2)
            assert [i.id for i in first_two] == [intents[0].id, intents[1].id]
            picked = await uow.intents.claim(
                owner="w",
                now=T0,
                lease_until=until,
                limit=10,
                ids=[intents[4].id, intents[0].id, future.id, sent.id, 999999],
            )
            assert [i.id for i in picked] == [intents[4].id]
            assert await uow.intents.claim(owner="w", now=T0, lease_until=until, limit=10, ids=[]) == []
            rest = await uow.intents.claim(owner="w", now=T0, lease_until=until, limit=10)
            assert [i.id for i in rest] == [intents[2].id, intents[3].id]

    async def test_expired_lease_is_reclaimed(self, uow_factory: UnitOfWorkFactory) -> None:
        """An intent whose lease expired while sending returns to pending and is claimed again (S5.10)."""
        lease = dt.timedelta(seconds=60)
        async with uow_factory() as uow:
            crashed = await uow.intents.add(_intent("crashed"))
            busy = await uow.intents.add(_intent("busy"))
            await uow.intents.claim(owner="dead", now=T0, lease_until=T0 + lease, limit=1, ids=[crashed.id])
            later = T0 + dt.timedelta(seconds=30)
            await uow.intents.claim(
                owner="alive", now=later, lease_until=later + lease, limit=1, ids=[busy.id]
            )
            await uow.commit()
        now = T0 + dt.timedelta(seconds=61)
        async with uow_factory() as uow:
            expired = await uow.intents.find(status=c.INTENT_SENDING, lease_until__lt=now)
            assert [i.id for i in expired] == [crashed.id]
            for intent in expired:
                back = await uow.intents.update_where(
                    intent.id,
                    {
                        "status": c.INTENT_SENDING,
                        "lease_owner": intent.lease_owner,
                        "lease_until": intent.lease_until,
                    },
                    {
                        "status": c.INTENT_PENDING,
                        "lease_owner": None,
                        "lease_until": None,
                        "ambiguous_count": intent.ambiguous_count + 1,
                    },
                )
                assert back is not None
            again = await uow.intents.claim(owner="w2", now=now, lease_until=now + lease, limit=10)
            assert [(i.id, i.attempt_count, i.ambiguous_count, i.lease_owner) for i in again] == [
                (crashed.id, 2, 1, "w2")
            ]
            await uow.commit()

    # --- scheduler leases -------------------------------------------------------------------

    async def test_lease_acquire_renew_refuse_takeover_release(self, uow_factory: UnitOfWorkFactory) -> None:
        """A lease is renewed by its holder, refused to others until expiry, then taken over (token + 1)."""
        ttl = 30
        async with uow_factory() as uow:
            taken = await uow.leases.acquire("due_actions", "a", T0, ttl)
            assert taken is not None
            assert (taken.name, taken.holder, taken.fencing_token) == ("due_actions", "a", 1)
            assert (taken.expires_at, taken.renewed_at) == (T0 + dt.timedelta(seconds=ttl), T0)
            await uow.commit()
        renew_at = T0 + dt.timedelta(seconds=10)
        async with uow_factory() as uow:
            renewed = await uow.leases.acquire("due_actions", "a", renew_at, ttl)
            assert renewed is not None
            assert (renewed.holder, renewed.fencing_token) == ("a", 1)
            assert (renewed.expires_at, renewed.renewed_at) == (
                renew_at + dt.timedelta(seconds=ttl),
                renew_at,
            )
            assert await uow.leases.acquire("due_actions", "b", renew_at, ttl) is None
            # Expiry is strict: at exactly expires_at the lease still belongs to its holder.
            assert await uow.leases.acquire("due_actions", "b", renewed.expires_at, ttl) is None
            # Another name is another lease.
            other = await uow.leases.acquire("outbox_relay", "b", renew_at, ttl)
            assert other is not None
            assert other.fencing_token == 1
            await uow.commit()
        after = renewed.expires_at + dt.timedelta(microseconds=1)
        async with uow_factory() as uow:
            took_over = await uow.leases.acquire("due_actions", "b", after, ttl)
            assert took_over is not None
            assert (took_over.holder, took_over.fencing_token) == ("b", 2)
            assert await uow.leases.acquire("due_actions", "a", after, ttl) is None
            await uow.commit()
        async with uow_factory() as uow:
            await uow.leases.release("due_actions", "a")  # not the holder: no effect
            assert await uow.leases.acquire("due_actions", "c", after, ttl) is None
            await uow.leases.release("due_actions", "b")
            released = await uow.leases.acquire("due_actions", "c", after, ttl)
            assert released is not None
            assert (released.holder, released.fencing_token) == ("c", 3)
            await uow.leases.release("never_taken", "c")
            await uow.commit()
