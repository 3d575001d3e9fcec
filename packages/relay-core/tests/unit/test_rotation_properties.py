"""Property tests for the rotation engine (SPEC S4.3–S4.7)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from relay_core.domain import constants as c
from relay_core.domain import rotation as r
from relay_core.domain.model import Rotation, RotationMember, RotationOverride

UTC = dt.UTC
US = dt.timedelta(microseconds=1)
H = dt.timedelta(hours=1)
OVERRIDE_USER = 1000  # never a rotation member, so override and layer users are told apart

# Zones with ordinary DST, half-hour DST, midnight transitions, no DST, and a skipped day.
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Santiago",
    "America/Sao_Paulo",
    "Asia/Tehran",
    "America/St_Johns",
    "Africa/Casablanca",
    "Pacific/Apia",
)
MAX_INTERVAL = {c.UNIT_MINUTES: 365, c.UNIT_HOURS: 365, c.UNIT_DAYS: 30, c.UNIT_WEEKS: 8}

fast = settings(max_examples=200, deadline=None)


def instants(lo: dt.datetime, hi: dt.datetime) -> st.SearchStrategy[dt.datetime]:
    return st.datetimes(
        min_value=lo.replace(tzinfo=None), max_value=hi.replace(tzinfo=None), timezones=st.just(UTC)
    )


@st.composite
def rotations(draw: st.DrawFn, zones: tuple[str, ...] = ZONES) -> Rotation:
    kind = draw(st.sampled_from(c.ROTATION_TYPES))
    unit = draw(st.sampled_from(tuple(c.UNIT_SECONDS))) if kind == c.ROTATION_CUSTOM else c.UNIT_DAYS
    return Rotation(
        id=1,
        team_id=1,
        name="r",
        start_at=draw(instants(dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2035, 12, 31, tzinfo=UTC))),
        rotation_type=kind,
        interval_value=draw(st.integers(1, MAX_INTERVAL[unit])),
        interval_unit=unit,
        handoff_time=f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 15, 30, 45, 59])):02d}",
        handoff_weekday=draw(st.none() | st.integers(0, 6)),
        timezone=draw(st.sampled_from(zones)),
    )


def nominal(rot: Rotation) -> dt.timedelta:
    return dt.timedelta(
        seconds=r.derived_duration_seconds(rot.rotation_type, rot.interval_value, rot.interval_unit)
    )


@st.composite
def after_start(draw: st.DrawFn, rot: Rotation, max_slots: int = 30) -> dt.datetime:
    """An instant within roughly ``max_slots`` slots after start, often exactly on a handoff."""
    if draw(st.booleans()):
        return r.handoff(rot, draw(st.integers(0, max_slots)))
    span = nominal(rot) * max_slots  # a first shift is never longer than a nominal one plus a day
    return rot.start_at + draw(st.timedeltas(dt.timedelta(0), span))


@st.composite
def team(draw: st.DrawFn) -> list[RotationMember]:
    """One to six members with distinct users, shuffled positions, at least one active."""
    n = draw(st.integers(1, 6))
    positions = draw(st.permutations(range(n)))
    active = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any))
    return [
        RotationMember(id=i + 1, rotation_id=1, user_id=100 + i, position=positions[i], active=active[i])
        for i in range(n)
    ]


def brute_index(rot: Rotation, t: dt.datetime) -> int:
    """Slot index by walking the handoff sequence from start_at."""
    m = 0
    while r.handoff(rot, m + 1) <= t:
        m += 1
    return m


# --- S4.3: slots ------------------------------------------------------------------------------


@fast
@given(data=st.data(), rot=rotations())
def test_slot_at_agrees_with_iterating_handoffs(data: st.DataObject, rot: Rotation) -> None:
    """slot_at() returns the same slot as walking H₀, H₁, … from start_at."""
    t = data.draw(after_start(rot))
    m = brute_index(rot, t)
    assert r.slot_at(rot, t) == r.Slot(m, r.handoff(rot, m), r.handoff(rot, m + 1))


@fast
@given(data=st.data(), rot=rotations())
def test_handoffs_never_go_backwards(data: st.DataObject, rot: Rotation) -> None:
    """Handoff instants are non-decreasing, and strictly increasing wherever the local date exists."""
    m = data.draw(st.integers(0, 400))
    h0, h1, h2 = (r.handoff(rot, k) for k in (m, m + 1, m + 2))
    assert h0 <= h1 <= h2
    assert h0 < h2


@fast
@given(data=st.data(), rot=rotations(), members=team())
def test_exactly_one_oncall_user_at_every_instant_after_start(
    data: st.DataObject, rot: Rotation, members: list[RotationMember]
) -> None:
    """After start_at with active members exactly one slot holds t and its user is on call."""
    t = data.draw(after_start(rot))
    result = r.oncall_at(rot, members, [], t)
    assert result is not None
    active = r.ordered_active_members(members)
    holding = [k for k in range(brute_index(rot, t) + 3) if r.handoff(rot, k) <= t < r.handoff(rot, k + 1)]
    assert len(holding) == 1
    (m,) = holding
    assert result.source == "layer"
    assert result.user_id == active[m % len(active)].user_id
    assert result.slot_start == r.handoff(rot, m) <= t < r.handoff(rot, m + 1) == result.slot_end
    assert r.oncall_at(rot, members, [], rot.start_at - US) is None


# --- S4.4: DST ------------------------------------------------------------------------------


def _daily_0900(zone: str) -> Rotation:
    start = r.localize(dt.date(2000, 1, 3), dt.time(9), ZoneInfo(zone))
    return Rotation(id=1, team_id=1, name="r", start_at=start, timezone=zone)


@fast
@given(day=st.dates(dt.date(2000, 1, 4), dt.date(2037, 12, 31)))
@example(day=dt.date(2024, 3, 30))
@example(day=dt.date(2024, 3, 31))
@example(day=dt.date(2024, 10, 26))
@example(day=dt.date(2024, 10, 27))
def test_berlin_daily_0900_hands_over_at_0900_local_on_both_sides_of_dst(day: dt.date) -> None:
    """Berlin daily 09:00 hands over at 07:00Z in summer and 08:00Z in winter; slots last 23, 24 or 25 h."""
    _check_daily_0900(_daily_0900("Europe/Berlin"), day, summer_utc_hour=7, winter_utc_hour=8)


@fast
@given(day=st.dates(dt.date(2000, 1, 4), dt.date(2037, 12, 31)))
@example(day=dt.date(2024, 3, 9))
@example(day=dt.date(2024, 3, 10))
@example(day=dt.date(2024, 11, 2))
@example(day=dt.date(2024, 11, 3))
def test_new_york_daily_0900_hands_over_at_0900_local_on_both_sides_of_dst(day: dt.date) -> None:
    """New York daily 09:00 hands over at 13:00Z in summer and 14:00Z in winter; slots last 23, 24 or 25 h."""
    _check_daily_0900(_daily_0900("America/New_York"), day, summer_utc_hour=13, winter_utc_hour=14)


def _check_daily_0900(rot: Rotation, day: dt.date, *, summer_utc_hour: int, winter_utc_hour: int) -> None:
    zone = ZoneInfo(rot.timezone)
    m = (day - dt.date(2000, 1, 3)).days
    begin, end = r.handoff(rot, m), r.handoff(rot, m + 1)
    for instant, date in ((begin, day), (end, day + dt.timedelta(days=1))):
        local = instant.astimezone(zone)
        assert (local.date(), local.hour, local.minute) == (date, 9, 0)
        summer = bool(local.dst())
        assert instant.hour == (summer_utc_hour if summer else winter_utc_hour)
    # Spring change inside the slot: 23 h; autumn change: 25 h; otherwise 24 h.
    shift = begin.astimezone(zone).utcoffset() - end.astimezone(zone).utcoffset()  # type: ignore[operator]
    assert end - begin == 24 * H + shift
    assert end - begin in (23 * H, 24 * H, 25 * H)
    assert r.slot_at(rot, begin) == r.Slot(m, begin, end)
    assert r.slot_at(rot, end - US) == r.Slot(m, begin, end)


@fast
@given(
    zone=st.sampled_from([z for z in ZONES if z != "Pacific/Apia"]),
    wall=st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2037, 12, 31)),
)
@example(zone="Europe/Berlin", wall=dt.datetime(2024, 10, 27, 2, 30))  # fold
@example(zone="Europe/Berlin", wall=dt.datetime(2024, 3, 31, 2, 30))  # gap
@example(zone="Australia/Lord_Howe", wall=dt.datetime(2024, 10, 6, 2, 15))  # half-hour gap
@example(zone="America/Santiago", wall=dt.datetime(2024, 4, 6, 23, 30))  # fold just before midnight
def test_localize_keeps_existing_wall_times_and_moves_gap_times_by_the_gap(
    zone: str, wall: dt.datetime
) -> None:
    """localize() lands on the wall time's first occurrence, or one gap length later if it does not exist."""
    tz = ZoneInfo(zone)
    result = r.localize(wall.date(), wall.time(), tz)
    local = result.astimezone(tz)
    shown = local.replace(tzinfo=None, fold=0)
    if shown == wall:
        assert local.fold == 0  # the first occurrence of an ambiguous time
    else:
        gap = local.utcoffset() - (result - dt.timedelta(days=1)).astimezone(tz).utcoffset()  # type: ignore[operator]
        assert gap > dt.timedelta(0)
        assert shown - wall == gap


# --- S4.5/S4.6: overrides ---------------------------------------------------------------------


@fast
@given(data=st.data(), rot=rotations(), members=team())
def test_override_covers_exactly_its_interval(
    data: st.DataObject, rot: Rotation, members: list[RotationMember]
) -> None:
    """Inside an override its user is on call; just outside it the rotation user is."""
    starts = data.draw(after_start(rot)) + dt.timedelta(seconds=1)
    ends = starts + data.draw(st.timedeltas(US, dt.timedelta(days=20)))
    ov = RotationOverride(id=9, rotation_id=1, user_id=OVERRIDE_USER, starts_at=starts, ends_at=ends)
    inside = data.draw(st.sampled_from([starts, ends - US, starts + (ends - starts) / 2]))
    got = r.oncall_at(rot, members, [ov], inside)
    assert got is not None
    assert (got.user_id, got.source, got.override_id) == (OVERRIDE_USER, "override", 9)
    for outside in (starts - US, ends):
        got = r.oncall_at(rot, members, r.OverrideIndex([ov]), outside)
        assert got == r.oncall_at(rot, members, [], outside)
        assert got is not None
        assert got.source == "layer"
        assert got.user_id != OVERRIDE_USER


BASE = dt.datetime(2024, 6, 1, tzinfo=UTC)


@st.composite
def override_sets(draw: st.DrawFn, base: dt.datetime = BASE, minutes: int = 600) -> list[RotationOverride]:
    """Up to eight overrides on a small minute grid, so overlaps and equal creation times are common."""
    out = []
    for i in range(draw(st.integers(0, 8))):
        a = draw(st.integers(0, minutes - 1))
        b = draw(st.integers(a + 1, minutes))
        out.append(
            RotationOverride(
                id=draw(st.integers(1, 50)) * 10 + i,  # unique, in random order of creation
                rotation_id=1,
                user_id=OVERRIDE_USER + i,
                starts_at=base + dt.timedelta(minutes=a),
                ends_at=base + dt.timedelta(minutes=b),
                created_at=base - dt.timedelta(days=draw(st.integers(0, 3))),
            )
        )
    return out


@fast
@given(overrides=override_sets(), minute=st.integers(-5, 605), second=st.sampled_from([0, 1, 59]))
def test_override_index_matches_the_definition(
    overrides: list[RotationOverride], minute: int, second: int
) -> None:
    """active_at() equals the newest (created_at, id) override with starts_at ≤ t < ends_at."""
    t = BASE + dt.timedelta(minutes=minute, seconds=second)
    live = [o for o in overrides if o.starts_at <= t < o.ends_at]
    expected = max(live, key=lambda o: (o.created_at, o.id)) if live else None
    index = r.OverrideIndex(overrides)
    assert index.active_at(t) == expected
    assert index.overlapping(t, t + dt.timedelta(minutes=30)) == tuple(
        sorted(
            (o for o in overrides if o.starts_at < t + dt.timedelta(minutes=30) and o.ends_at > t),
            key=lambda o: (o.starts_at, o.created_at, o.id),
        )
    )


# --- S4.6: next on-call user ------------------------------------------------------------------


@fast
@given(members=team(), hops=st.integers(1, 20))
def test_next_oncall_user_walks_the_active_members_and_wraps(
    members: list[RotationMember], hops: int
) -> None:
    """Following next_oncall_user from the first member visits members in position order, wrapping."""
    users = [m.user_id for m in r.ordered_active_members(members)]
    if len(users) < 2:
        assert r.next_oncall_user(members, users[0]) is None
        return
    current: int | None = users[0]
    for hop in range(1, hops + 1):
        nxt = r.next_oncall_user(members, current)
        assert nxt == users[hop % len(users)]
        assert nxt != current
        current = nxt
    assert r.next_oncall_user(members, -1) == users[0]


# --- S4.7: calendar ---------------------------------------------------------------------------


@st.composite
def calendar_case(
    draw: st.DrawFn, *, from_start: bool
) -> tuple[Rotation, list[RotationMember], list[RotationOverride], dt.datetime, dt.datetime]:
    rot = draw(rotations())
    members = draw(team())
    if from_start:
        start = draw(after_start(rot, max_slots=10))
    else:
        start = rot.start_at + draw(st.timedeltas(-nominal(rot) * 3, nominal(rot) * 3))
    span = min(nominal(rot) * draw(st.integers(1, 12)), r.MAX_CALENDAR_RANGE)
    end = start + draw(st.timedeltas(US, span))
    overrides = draw(
        override_sets(
            base=start - (end - start) / 4, minutes=max(1, (end - start) // dt.timedelta(minutes=1))
        )
    )
    return rot, members, overrides, start, end


def _check_agrees_with_oncall(
    segment: r.CalendarSegment,
    rot: Rotation,
    members: list[RotationMember],
    overrides: list[RotationOverride],
    t: dt.datetime,
) -> None:
    got = r.oncall_at(rot, members, overrides, t)
    assert got is not None
    assert (got.user_id, got.source, got.override_id) == (segment.user_id, segment.type, segment.override_id)


@fast
@given(case=calendar_case(from_start=True))
def test_calendar_segments_tile_the_range_after_start(case: Any) -> None:
    """From start_at on, segments cover [start, end) without gap or overlap and match oncall_at()."""
    rot, members, overrides, start, end = case
    segments = r.calendar_segments(rot, members, overrides, start, end)
    assert segments
    assert segments[0].start == start
    assert segments[-1].end == end
    for seg in segments:
        assert seg.start < seg.end
        _check_agrees_with_oncall(seg, rot, members, overrides, seg.start)
        _check_agrees_with_oncall(seg, rot, members, overrides, seg.end - US)
    for a, b in itertools.pairwise(segments):
        assert a.end == b.start
        assert attrs.astuple(a)[:6] != attrs.astuple(b)[:6]  # adjacent identical events were merged


@fast
@given(case=calendar_case(from_start=False), probe=st.floats(0, 1))
def test_calendar_segments_are_disjoint_and_cover_whenever_someone_is_on_call(
    case: Any, probe: float
) -> None:
    """Around start_at, segments are disjoint and cover an instant exactly when someone is on call."""
    rot, members, overrides, start, end = case
    segments = r.calendar_segments(rot, members, overrides, start, end)
    for a, b in itertools.pairwise(segments):
        assert a.start < a.end <= b.start
    points = [start, end - US, start + (end - start) * probe, rot.start_at, rot.start_at - US]
    points += [o.starts_at for o in overrides] + [o.ends_at - US for o in overrides]
    for t in points:
        if not start <= t < end:
            continue
        covering = [s for s in segments if s.start <= t < s.end]
        assert len(covering) <= 1
        got = r.oncall_at(rot, members, overrides, t)
        if got is None:
            assert covering == []
        else:
            assert len(covering) == 1
            _check_agrees_with_oncall(covering[0], rot, members, overrides, t)
