"""The rotation engine (SPEC S4): handoff instants, slots, overrides, on-call and calendar.

Everything here is a pure function of its arguments: no wall clock, no storage. Callers pass
the rotation, its members and overrides, and the instant they ask about.

* Handoff instants ``H₀ = start_at < H₁ < H₂ …`` follow S4.3. Minute and hour rotations step
  in elapsed seconds; day and week rotations step in local calendar dates and localize the
  handoff time with :func:`localize` (S4.4), so a 09:00 handoff stays at 09:00 local across
  DST and the slots around a change last 23 h or 25 h.
* :func:`slot_at` finds the slot of an instant in O(1): a date (or elapsed-time) division
  gives the slot index, then one comparison with the neighbouring handoff corrects it.
* :class:`OverrideIndex` resolves overlapping overrides ("newest created wins") once, so a
  lookup is one binary search.
* :func:`oncall_at` and :func:`calendar_segments` combine the two (S4.6, S4.7).

Datetimes accepted and returned are timezone-aware; results are always in UTC. A naive
datetime raises :class:`ValueError` (a programming error, not user input).

Days that do not exist in a zone (Pacific/Apia skipped 2011-12-30) make the slot whose
handoff falls on them empty (``Hₘ == Hₘ₊₁``): the gap rule moves the handoff onto the next
day's. No instant belongs to an empty slot, so the sequence of users simply skips one.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from relay_core.domain import constants as c
from relay_core.domain.errors import ValidationError
from relay_core.domain.model import Rotation, RotationMember, RotationOverride

__all__ = [
    "MAX_CALENDAR_RANGE",
    "SOURCE_LAYER",
    "SOURCE_OVERRIDE",
    "CalendarSegment",
    "OnCall",
    "OverrideIndex",
    "Slot",
    "calendar_segments",
    "derived_duration_seconds",
    "handoff",
    "load_timezone",
    "localize",
    "next_oncall_user",
    "oncall_at",
    "ordered_active_members",
    "parse_handoff_time",
    "slot_at",
    "validate_rotation",
]

SOURCE_OVERRIDE: Final = "override"
SOURCE_LAYER: Final = "layer"

MAX_CALENDAR_RANGE: Final = dt.timedelta(days=366)
MIN_INTERVAL_VALUE: Final = 1
MAX_INTERVAL_VALUE: Final = 365

_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# Names zoneinfo resolves from the host's files but which are not IANA zones: their
# meaning would change with the machine the server runs on.
_HOST_ZONE_NAMES: Final = frozenset({"localtime", "posixrules"})


# --- small helpers -------------------------------------------------------------------------


def _utc(value: dt.datetime, name: str = "datetime") -> dt.datetime:
    """Return ``value`` in UTC; a naive value is a caller bug."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(dt.UTC)


def load_timezone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name``; raise :class:`ValidationError` when it is unknown."""
    if isinstance(name, str) and name and name not in _HOST_ZONE_NAMES:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValidationError(
        f"unknown time zone: {name!r}",
        details=[{"loc": "$.timezone", "message": "unknown time zone (expected an IANA name)"}],
    )


def localize(date: dt.date, time: dt.time, tz: ZoneInfo) -> dt.datetime:
    """Return the UTC instant at which the wall clock in ``tz`` shows ``date`` ``time`` (S4.4 L()).

    A wall time inside a spring gap does not exist; it moves forward by the gap length
    (02:30 in a one-hour 02:00→03:00 gap becomes 03:30). An ambiguous wall time in an
    autumn fold takes its first occurrence. Both are exactly PEP 495 ``fold=0`` semantics:
    ``fold=0`` applies the offset in force *before* the transition, which for a gap time
    yields the instant one gap length later on the wall clock.
    """
    if time.tzinfo is not None:
        raise ValueError("localize() takes a naive wall-clock time")
    local = dt.datetime.combine(date, time.replace(fold=0), tzinfo=tz)
    return local.astimezone(dt.UTC)


def parse_handoff_time(s: str) -> dt.time:
    """Parse a handoff time ``"HH:MM"`` (00:00–23:59); raise :class:`ValidationError` otherwise."""
    match = _HHMM.fullmatch(s) if isinstance(s, str) else None
    if match is None:
        raise ValidationError(
            f"handoff_time must be HH:MM, got {s!r}",
            details=[{"loc": "$.handoff_time", "message": "expected HH:MM (00:00–23:59)"}],
        )
    return dt.time(int(match[1]), int(match[2]))


def derived_duration_seconds(rotation_type: str, interval_value: int, interval_unit: str) -> int:
    """Return the nominal slot length of S4.1: daily 86400, weekly 604800, custom N × unit.

    Raises:
        ValidationError: unknown type or unit.
    """
    if rotation_type == c.ROTATION_DAILY:
        return c.UNIT_SECONDS[c.UNIT_DAYS]
    if rotation_type == c.ROTATION_WEEKLY:
        return c.UNIT_SECONDS[c.UNIT_WEEKS]
    if rotation_type == c.ROTATION_CUSTOM:
        if interval_unit not in c.UNIT_SECONDS:
            raise ValidationError(
                f"unknown interval_unit {interval_unit!r}",
                details=[{"loc": "$.interval_unit", "message": _one_of(c.UNIT_SECONDS)}],
            )
        return interval_value * c.UNIT_SECONDS[interval_unit]
    raise ValidationError(
        f"unknown rotation_type {rotation_type!r}",
        details=[{"loc": "$.rotation_type", "message": _one_of(c.ROTATION_TYPES)}],
    )


def _one_of(values: Iterable[str]) -> str:
    return "must be one of " + ", ".join(values)


def validate_rotation(rotation: Rotation, *, duration_seconds: int | None = None) -> None:
    """Check the S1.3/S4.1 rules of ``rotation``; raise one :class:`ValidationError` listing each field.

    Args:
        rotation: the rotation as it would be stored.
        duration_seconds: the value a client supplied, if any; it must equal the derived one.
    """
    details: list[dict[str, Any]] = []

    def bad(field: str, message: str) -> None:
        details.append({"loc": f"$.{field}", "message": message})

    if rotation.rotation_type not in c.ROTATION_TYPES:
        bad("rotation_type", _one_of(c.ROTATION_TYPES))
    if rotation.interval_unit not in c.UNIT_SECONDS:
        bad("interval_unit", _one_of(c.UNIT_SECONDS))
    interval_ok = (
        isinstance(rotation.interval_value, int)
        and not isinstance(rotation.interval_value, bool)
        and MIN_INTERVAL_VALUE <= rotation.interval_value <= MAX_INTERVAL_VALUE
    )
    if not interval_ok:
        bad("interval_value", f"must be an integer from {MIN_INTERVAL_VALUE} to {MAX_INTERVAL_VALUE}")
    try:
        parse_handoff_time(rotation.handoff_time)
    except ValidationError as exc:
        details.extend(exc.details)
    weekday = rotation.handoff_weekday
    if weekday is not None and (isinstance(weekday, bool) or weekday not in range(7)):
        bad("handoff_weekday", "must be 0 (Monday) to 6 (Sunday) or null")
    try:
        load_timezone(rotation.timezone)
    except ValidationError as exc:
        details.extend(exc.details)
    reminder = rotation.reminder_interval_seconds
    if isinstance(reminder, bool) or not isinstance(reminder, int) or reminder < 0:
        bad("reminder_interval_seconds", "must be 0 (off) or from 60 to 2592000")
    elif reminder != 0 and not c.MIN_REMINDER_INTERVAL <= reminder <= c.MAX_REMINDER_INTERVAL:
        bad(
            "reminder_interval_seconds",
            f"must be 0 (off) or from {c.MIN_REMINDER_INTERVAL} to {c.MAX_REMINDER_INTERVAL}",
        )
    if duration_seconds is not None and not details:
        expected = derived_duration_seconds(
            rotation.rotation_type, rotation.interval_value, rotation.interval_unit
        )
        if duration_seconds != expected:
            bad("duration_seconds", f"is derived from the rotation type and interval and must be {expected}")
    if details:
        fields = ", ".join(sorted({str(d["loc"]).removeprefix("$.") for d in details}))
        raise ValidationError(f"invalid rotation: {fields}", details=details)


# --- handoff instants (S4.3) ---------------------------------------------------------------


@attrs.frozen
class Slot:
    """Slot ``index`` of a rotation: the half-open interval ``[start, end)`` = ``[Hₘ, Hₘ₊₁)``."""

    index: int
    start: dt.datetime
    end: dt.datetime


@attrs.frozen
class _Schedule:
    """A rotation reduced to what the handoff arithmetic needs.

    Elapsed schedules (custom minutes/hours): ``Hₘ = start + m × step``.
    Wall-clock schedules: ``Hₘ = L(base + m × days, time)`` for m ≥ 1, where ``base`` is
    ``d₀`` for daily/custom days and ``d₁ − step`` for weekly/custom weeks, which folds the
    two formulas of S4.3 into one.
    """

    start: dt.datetime
    tz: ZoneInfo
    elapsed: dt.timedelta | None
    days: int
    base: dt.date
    time: dt.time

    @classmethod
    def of(cls, rotation: Rotation) -> _Schedule:
        tz = load_timezone(rotation.timezone)
        start = _utc(rotation.start_at, "start_at")
        d0 = start.astimezone(tz).date()
        kind = rotation.rotation_type
        unit = rotation.interval_unit
        if kind == c.ROTATION_CUSTOM and unit in (c.UNIT_MINUTES, c.UNIT_HOURS):
            # handoff_time and handoff_weekday do not apply to elapsed steps (S4.3).
            step = derived_duration_seconds(kind, _interval(rotation), unit)
            return cls(start, tz, dt.timedelta(seconds=step), 0, d0, dt.time())
        time = parse_handoff_time(rotation.handoff_time)
        if kind == c.ROTATION_DAILY or (kind == c.ROTATION_CUSTOM and unit == c.UNIT_DAYS):
            days = 1 if kind == c.ROTATION_DAILY else _interval(rotation)
            return cls(start, tz, None, days, d0, time)
        if kind == c.ROTATION_WEEKLY or (kind == c.ROTATION_CUSTOM and unit == c.UNIT_WEEKS):
            days = 7 if kind == c.ROTATION_WEEKLY else 7 * _interval(rotation)
            weekday = rotation.handoff_weekday
            if weekday is None:
                weekday = 0 if kind == c.ROTATION_WEEKLY else d0.weekday()
            if isinstance(weekday, bool) or weekday not in range(7):
                raise ValidationError(
                    "handoff_weekday must be 0–6",
                    details=[{"loc": "$.handoff_weekday", "message": "must be 0 (Monday) to 6 (Sunday)"}],
                )
            d1 = d0 + dt.timedelta(days=(weekday - d0.weekday() - 1) % 7 + 1)
            return cls(start, tz, None, days, d1 - dt.timedelta(days=days), time)
        derived_duration_seconds(kind, _interval(rotation), unit)  # raises for the bad field
        raise AssertionError("unreachable: derived_duration_seconds accepted an unknown kind")

    def handoff(self, m: int) -> dt.datetime:
        if m < 0:
            raise ValueError(f"handoff index must be >= 0, got {m}")
        if m == 0:
            return self.start
        if self.elapsed is not None:
            return self.start + m * self.elapsed
        return localize(self.base + dt.timedelta(days=m * self.days), self.time, self.tz)

    def estimate(self, t: dt.datetime) -> int:
        """Slot index of ``t`` (≥ start) up to ±1, from one division."""
        if self.elapsed is not None:
            return (t - self.start) // self.elapsed
        local_date = t.astimezone(self.tz).date()
        return max(0, (local_date - self.base).days // self.days)

    def index_at(self, t: dt.datetime) -> int:
        """Exact slot index of ``t`` (≥ start), in O(1).

        The estimate is the last slot whose handoff date is on or before t's local date. It
        is one too high when t precedes that day's handoff time (first loop), and one too
        low when the local clock jumped back across midnight after the next handoff
        (America/St_Johns fell back from 00:01 to 23:01 until 2011; second loop). Each loop
        runs at most once for real time zone data; elapsed schedules never need either.
        """
        m = self.estimate(t)
        while m > 0 and t < self.handoff(m):
            m -= 1
        while t >= self.handoff(m + 1):
            m += 1
        return m

    def slot(self, m: int) -> Slot:
        return Slot(m, self.handoff(m), self.handoff(m + 1))


def _interval(rotation: Rotation) -> int:
    value = rotation.interval_value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INTERVAL_VALUE:
        raise ValidationError(
            "interval_value out of range",
            details=[{"loc": "$.interval_value", "message": "must be an integer from 1 to 365"}],
        )
    return value


def handoff(rotation: Rotation, m: int) -> dt.datetime:
    """Return the handoff instant ``Hₘ`` of S4.3 in UTC (``H₀`` is ``start_at``).

    Raises:
        ValueError: ``m`` is negative.
        ValidationError: the rotation's fields are invalid (time zone, type, unit, …).
    """
    return _Schedule.of(rotation).handoff(m)


def slot_at(rotation: Rotation, t: dt.datetime) -> Slot | None:
    """Return the slot containing ``t`` (O(1)), or ``None`` before ``start_at``.

    Ignores ``enabled`` and members: this is the bare schedule.
    """
    t = _utc(t, "t")
    schedule = _Schedule.of(rotation)
    if t < schedule.start:
        return None
    return schedule.slot(schedule.index_at(t))


# --- members ---------------------------------------------------------------------------------


def ordered_active_members(members: Sequence[RotationMember]) -> tuple[RotationMember, ...]:
    """Return the active members ordered by position (ties by id, for a stable order)."""
    return tuple(sorted((m for m in members if m.active), key=lambda m: (m.position, m.id)))


def next_oncall_user(members: Sequence[RotationMember], assignee_id: int | None) -> int | None:
    """Return the "next on-call user" of S4.6 for team escalation (S5.5).

    That is the user of the active member after the assignee in position order, wrapping;
    the first member's user when the assignee is not a member; ``None`` when there are fewer
    than two active members or the result would be the assignee again.
    """
    active = ordered_active_members(members)
    if len(active) < 2:
        return None
    users = [m.user_id for m in active]
    if assignee_id in users:
        result = users[(users.index(assignee_id) + 1) % len(users)]
    else:
        result = users[0]
    return None if result == assignee_id else result


# --- overrides (S4.5) ------------------------------------------------------------------------


def _newness(override: RotationOverride) -> tuple[dt.datetime, int]:
    """Sort key of "most recently created wins"; ids break ties between equal timestamps."""
    return (_utc(override.created_at, "created_at"), override.id)


@attrs.frozen
class _Piece:
    start: dt.datetime
    end: dt.datetime
    override: RotationOverride


class OverrideIndex:
    """The overrides of one rotation, resolved for fast "who overrides at t" queries.

    Construction sweeps all start/end instants once with a heap keyed by creation
    (O(n log n)) and stores the *effective* timeline: sorted, disjoint pieces, each carrying
    the override that wins there (newest ``(created_at, id)``). It has at most ``2n − 1``
    pieces, so :meth:`active_at` is a single binary search: O(log n) in the worst case, with
    no scan, however the overrides overlap.
    """

    __slots__ = ("_override_ends", "_override_starts", "_overrides", "_pieces", "_starts")

    def __init__(self, overrides: Iterable[RotationOverride]) -> None:
        self._overrides: tuple[RotationOverride, ...] = tuple(
            sorted(overrides, key=lambda o: (_utc(o.starts_at), _newness(o)))
        )
        self._pieces: tuple[_Piece, ...] = tuple(_resolve(self._overrides))
        self._starts = [p.start for p in self._pieces]
        self._override_starts = [_utc(o.starts_at) for o in self._overrides]
        self._override_ends = [_utc(o.ends_at) for o in self._overrides]

    def __len__(self) -> int:
        return len(self._overrides)

    def __repr__(self) -> str:
        return f"OverrideIndex({len(self._overrides)} overrides, {len(self._pieces)} pieces)"

    @property
    def overrides(self) -> tuple[RotationOverride, ...]:
        """All overrides, ordered by ``starts_at``."""
        return self._overrides

    def active_at(self, t: dt.datetime) -> RotationOverride | None:
        """Return the override in force at ``t`` (``starts_at ≤ t < ends_at``, newest wins)."""
        t = _utc(t, "t")
        i = bisect.bisect_right(self._starts, t) - 1
        if i >= 0 and t < self._pieces[i].end:
            return self._pieces[i].override
        return None

    def overlapping(self, start: dt.datetime, end: dt.datetime) -> tuple[RotationOverride, ...]:
        """Return every override whose interval meets ``[start, end)``, ordered by ``starts_at``.

        Includes overrides hidden by newer ones; see :meth:`effective` for the winners.
        """
        start, end = _utc(start, "start"), _utc(end, "end")
        stop = bisect.bisect_left(self._override_starts, end)
        return tuple(
            o for o, e in zip(self._overrides[:stop], self._override_ends[:stop], strict=True) if e > start
        )

    def effective(
        self, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[dt.datetime, dt.datetime, RotationOverride]]:
        """Return the winning override of each part of ``[start, end)``, clipped, sorted, disjoint."""
        start, end = _utc(start, "start"), _utc(end, "end")
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        out = []
        for piece in self._pieces[i:]:
            if piece.start >= end:
                break
            lo, hi = max(piece.start, start), min(piece.end, end)
            if lo < hi:
                out.append((lo, hi, piece.override))
        return out


def _resolve(overrides: Sequence[RotationOverride]) -> list[_Piece]:
    """Sweep the overrides (sorted by ``starts_at``) into disjoint pieces labelled with their winner."""
    newest_first = {id(o): rank for rank, o in enumerate(sorted(overrides, key=_newness, reverse=True))}
    instants = sorted({_utc(o.starts_at) for o in overrides} | {_utc(o.ends_at) for o in overrides})
    # Min-heap on rank, so the newest override is on top; j breaks ties of duplicate entries.
    heap: list[tuple[int, int, RotationOverride]] = []
    pieces: list[_Piece] = []
    j = 0
    for at, nxt in itertools.pairwise(instants):
        while j < len(overrides) and _utc(overrides[j].starts_at) <= at:
            heapq.heappush(heap, (newest_first[id(overrides[j])], j, overrides[j]))
            j += 1
        while heap and _utc(heap[0][2].ends_at) <= at:
            heapq.heappop(heap)  # expired ones are dropped lazily, when they reach the top
        if not heap:
            continue
        winner = heap[0][2]
        if pieces and pieces[-1].override == winner and pieces[-1].end == at:
            pieces[-1] = _Piece(pieces[-1].start, nxt, winner)
        else:
            pieces.append(_Piece(at, nxt, winner))
    return pieces


# --- on-call resolution (S4.6) ---------------------------------------------------------------


@attrs.frozen
class OnCall:
    """Who is on call at an instant and why.

    For ``source == "layer"``, ``slot_start``/``slot_end`` are the rotation slot and
    ``next_handoff_at`` its end. For ``source == "override"`` they are the override's own
    ``starts_at``/``ends_at`` and ``next_handoff_at`` is the rotation's next handoff after
    the instant (``start_at`` if the rotation has not started), the override notwithstanding.
    """

    user_id: int
    source: str
    override_id: int | None
    slot_start: dt.datetime | None
    slot_end: dt.datetime | None
    next_handoff_at: dt.datetime | None


def _as_index(overrides: OverrideIndex | Sequence[RotationOverride]) -> OverrideIndex:
    return overrides if isinstance(overrides, OverrideIndex) else OverrideIndex(overrides)


def _active_override(
    overrides: OverrideIndex | Sequence[RotationOverride], t: dt.datetime
) -> RotationOverride | None:
    if isinstance(overrides, OverrideIndex):
        return overrides.active_at(t)
    # One query over a plain sequence: a linear scan beats building an index.
    live = [o for o in overrides if _utc(o.starts_at) <= t < _utc(o.ends_at)]
    return max(live, key=_newness) if live else None


def _live(rotation: Rotation) -> bool:
    return rotation.enabled and rotation.deleted_at is None


def oncall_at(
    rotation: Rotation,
    members: Sequence[RotationMember],
    overrides: OverrideIndex | Sequence[RotationOverride],
    t: dt.datetime,
) -> OnCall | None:
    """Return who is on call in ``rotation`` at ``t`` (S4.6), or ``None``.

    The newest override in force wins; otherwise the user of slot m is
    ``active_members[m mod n]``. A disabled or deleted rotation has nobody on call, nor does
    one before ``start_at`` (outside overrides) or without active members.
    """
    t = _utc(t, "t")
    if not _live(rotation):
        return None
    schedule = _Schedule.of(rotation)
    override = _active_override(overrides, t)
    if override is not None:
        if t < schedule.start:
            next_handoff = schedule.start
        else:
            next_handoff = schedule.handoff(schedule.index_at(t) + 1)
        return OnCall(
            user_id=override.user_id,
            source=SOURCE_OVERRIDE,
            override_id=override.id,
            slot_start=_utc(override.starts_at),
            slot_end=_utc(override.ends_at),
            next_handoff_at=next_handoff,
        )
    active = ordered_active_members(members)
    if not active or t < schedule.start:
        return None
    slot = schedule.slot(schedule.index_at(t))
    return OnCall(
        user_id=active[slot.index % len(active)].user_id,
        source=SOURCE_LAYER,
        override_id=None,
        slot_start=slot.start,
        slot_end=slot.end,
        next_handoff_at=slot.end,
    )


# --- calendar (S4.7) -------------------------------------------------------------------------


@attrs.frozen
class CalendarSegment:
    """One calendar event: ``user_id`` is on call in ``[start, end)`` through a layer or an override."""

    rotation_id: int
    layer_id: int | None
    user_id: int
    type: str
    override_id: int | None
    reason: str | None
    start: dt.datetime
    end: dt.datetime


def _check_range(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start, end = _utc(start, "start"), _utc(end, "end")
    if end <= start:
        raise ValidationError(
            "end must be after start", details=[{"loc": "$.end", "message": "must be after start"}]
        )
    if end - start > MAX_CALENDAR_RANGE:
        raise ValidationError(
            "calendar range is longer than 366 days",
            details=[{"loc": "$.end", "message": "the range may span at most 366 days"}],
        )
    return start, end


def calendar_segments(
    rotation: Rotation,
    members: Sequence[RotationMember],
    overrides: OverrideIndex | Sequence[RotationOverride],
    start: dt.datetime,
    end: dt.datetime,
    *,
    layer_id: int | None = None,
) -> list[CalendarSegment]:
    """Return the on-call segments of ``rotation`` in ``[start, end)`` (S4.7), sorted by start.

    Overrides cut into shifts (their winners per :meth:`OverrideIndex.effective`), adjacent
    identical segments merge, everything is clipped to the range. The segments tile every
    part of the range where someone is on call, with no overlap; at each instant they agree
    with :func:`oncall_at`. ``layer_id`` labels the layer segments (the default layer at P1).

    Raises:
        ValidationError: ``end <= start`` or the range exceeds 366 days.
    """
    start, end = _check_range(start, end)
    if not _live(rotation):
        return []
    schedule = _Schedule.of(rotation)
    index = _as_index(overrides)
    covered = [
        CalendarSegment(
            rotation_id=rotation.id,
            layer_id=None,
            user_id=o.user_id,
            type=SOURCE_OVERRIDE,
            override_id=o.id,
            reason=o.reason,
            start=lo,
            end=hi,
        )
        for lo, hi, o in index.effective(start, end)
    ]
    layer = _layer_segments(rotation, schedule, ordered_active_members(members), start, end, layer_id)
    # Both inputs are already merged runs, so the union needs no further merging: a layer run
    # and an override piece never share an identity.
    return sorted([*covered, *_subtract(layer, covered)], key=lambda s: s.start)


def _layer_segments(
    rotation: Rotation,
    schedule: _Schedule,
    active: Sequence[RotationMember],
    start: dt.datetime,
    end: dt.datetime,
    layer_id: int | None,
) -> list[CalendarSegment]:
    if not active or end <= schedule.start:
        return []
    first = max(start, schedule.start)
    m = schedule.index_at(first)
    lo, hi = schedule.handoff(m), schedule.handoff(m + 1)
    out: list[CalendarSegment] = []
    while lo < end:
        a, b = max(lo, first), min(hi, end)
        if a < b:  # empty slots (a skipped local date) contribute nothing
            user = active[m % len(active)].user_id
            if out and out[-1].user_id == user and out[-1].end == a:
                out[-1] = attrs.evolve(out[-1], end=b)
            else:
                out.append(
                    CalendarSegment(
                        rotation_id=rotation.id,
                        layer_id=layer_id,
                        user_id=user,
                        type=SOURCE_LAYER,
                        override_id=None,
                        reason=None,
                        start=a,
                        end=b,
                    )
                )
        m += 1
        lo, hi = hi, schedule.handoff(m + 1)
    return out


def _subtract(segments: Sequence[CalendarSegment], holes: Sequence[CalendarSegment]) -> list[CalendarSegment]:
    """Cut ``holes`` (sorted, disjoint) out of ``segments`` (sorted, disjoint)."""
    out: list[CalendarSegment] = []
    j = 0
    for seg in segments:
        while j < len(holes) and holes[j].end <= seg.start:
            j += 1
        cursor = seg.start
        k = j
        while k < len(holes) and holes[k].start < seg.end:
            if holes[k].start > cursor:
                out.append(attrs.evolve(seg, start=cursor, end=holes[k].start))
            cursor = max(cursor, holes[k].end)
            k += 1
        if cursor < seg.end:
            out.append(attrs.evolve(seg, start=cursor))
    return out
