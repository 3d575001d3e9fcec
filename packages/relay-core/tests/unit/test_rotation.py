"""Examples for the rotation engine (SPEC S4): handoffs, DST, overrides, on-call, calendar."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

from relay_core.domain import constants as c
from relay_core.domain import rotation as r
from relay_core.domain.errors import ValidationError
from relay_core.domain.model import Rotation, RotationMember, RotationOverride

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = dt.timedelta(hours=1)
US = dt.timedelta(microseconds=1)

IVAN, SERGEY, OLGA = 7, 8, 9
CREATED = dt.datetime(2024, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def index_at(rot: Rotation, t: dt.datetime) -> int:
    slot = r.slot_at(rot, t)
    assert slot is not None
    return slot.index


def rotation(start: dt.datetime, **fields: Any) -> Rotation:
    return Rotation(id=1, team_id=1, name="infra-primary", start_at=start, **fields)


def members(*user_ids: int, inactive: tuple[int, ...] = ()) -> list[RotationMember]:
    return [
        RotationMember(id=10 + i, rotation_id=1, user_id=u, position=i, active=u not in inactive)
        for i, u in enumerate(user_ids)
    ]


def override(
    user_id: int,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    *,
    id: int = 1,
    created_at: dt.datetime = CREATED,
    reason: str = "swap",
) -> RotationOverride:
    return RotationOverride(
        id=id,
        rotation_id=1,
        user_id=user_id,
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=created_at,
        reason=reason,
    )


# --- localize (S4.4) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "date", "time", "expected"),
    [
        (BERLIN, dt.date(2024, 6, 3), dt.time(9), utc(2024, 6, 3, 7)),
        (BERLIN, dt.date(2024, 12, 2), dt.time(9), utc(2024, 12, 2, 8)),
        # Spring gap: 02:30 does not exist and becomes 03:30 CEST.
        (BERLIN, dt.date(2024, 3, 31), dt.time(2, 30), utc(2024, 3, 31, 1, 30)),
        # Autumn fold: 02:30 happens twice; the first (CEST, +02:00) wins.
        (BERLIN, dt.date(2024, 10, 27), dt.time(2, 30), utc(2024, 10, 27, 0, 30)),
        (NEW_YORK, dt.date(2024, 3, 10), dt.time(2, 30), utc(2024, 3, 10, 7, 30)),
        (NEW_YORK, dt.date(2024, 11, 3), dt.time(1, 30), utc(2024, 11, 3, 5, 30)),
        # Samoa skipped 2011-12-30 entirely: the gap is a day long.
        (ZoneInfo("Pacific/Apia"), dt.date(2011, 12, 30), dt.time(9), utc(2011, 12, 30, 19)),
    ],
)
def test_localize_follows_the_gap_and_fold_rules(
    zone: ZoneInfo, date: dt.date, time: dt.time, expected: dt.datetime
) -> None:
    """localize() maps wall-clock times to UTC, moving gap times forward and taking the first fold."""
    result = r.localize(date, time, zone)
    assert result == expected
    assert result.tzinfo is UTC


def test_localize_gap_time_reads_one_gap_later_on_the_wall_clock() -> None:
    """A Berlin spring-gap 02:30 reads 03:30 on the local clock after localization."""
    local = r.localize(dt.date(2024, 3, 31), dt.time(2, 30), BERLIN).astimezone(BERLIN)
    assert (local.hour, local.minute) == (3, 30)


def test_localize_ignores_a_fold_flag_on_the_time() -> None:
    """An ambiguous time with fold=1 still resolves to its first occurrence."""
    result = r.localize(dt.date(2024, 10, 27), dt.time(2, 30, fold=1), BERLIN)
    assert result == utc(2024, 10, 27, 0, 30)


def test_localize_rejects_an_aware_time() -> None:
    """localize() takes a naive wall-clock time and refuses one carrying a zone."""
    with pytest.raises(ValueError, match="naive"):
        r.localize(dt.date(2024, 1, 1), dt.time(9, tzinfo=UTC), BERLIN)


# --- field parsing and validation (S4.1) ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("00:00", dt.time(0)), ("09:05", dt.time(9, 5)), ("23:59", dt.time(23, 59))]
)
def test_parse_handoff_time_accepts_hh_mm(text: str, expected: dt.time) -> None:
    """Valid HH:MM strings parse into times."""
    assert r.parse_handoff_time(text) == expected


@pytest.mark.parametrize(
    "text", ["9:00", "24:00", "09:60", "0900", "09:00:00", "", " 09:00", "09:00\n", "٠٩:٠٠"]
)
def test_parse_handoff_time_rejects_other_shapes(text: str) -> None:
    """Anything but two-digit hours and minutes in range is a validation error on handoff_time."""
    with pytest.raises(ValidationError) as info:
        r.parse_handoff_time(text)
    assert info.value.details[0]["loc"] == "$.handoff_time"


@pytest.mark.parametrize(
    ("kind", "value", "unit", "expected"),
    [
        (c.ROTATION_DAILY, 5, c.UNIT_HOURS, 86400),
        (c.ROTATION_WEEKLY, 3, c.UNIT_DAYS, 604800),
        (c.ROTATION_CUSTOM, 15, c.UNIT_MINUTES, 900),
        (c.ROTATION_CUSTOM, 8, c.UNIT_HOURS, 28800),
        (c.ROTATION_CUSTOM, 3, c.UNIT_DAYS, 259200),
        (c.ROTATION_CUSTOM, 2, c.UNIT_WEEKS, 1209600),
    ],
)
def test_derived_duration_seconds(kind: str, value: int, unit: str, expected: int) -> None:
    """The nominal duration follows S4.1: daily and weekly fixed, custom value × unit."""
    assert r.derived_duration_seconds(kind, value, unit) == expected


@pytest.mark.parametrize(
    ("kind", "unit", "loc"),
    [("monthly", c.UNIT_DAYS, "$.rotation_type"), ("custom", "years", "$.interval_unit")],
)
def test_derived_duration_seconds_rejects_unknown_names(kind: str, unit: str, loc: str) -> None:
    """Unknown rotation types and units are validation errors naming the field."""
    with pytest.raises(ValidationError) as info:
        r.derived_duration_seconds(kind, 1, unit)
    assert info.value.details[0]["loc"] == loc


def test_validate_rotation_accepts_defaults_and_a_matching_duration() -> None:
    """A default rotation with a matching supplied duration passes."""
    rot = rotation(utc(2024, 1, 1), timezone="Europe/Berlin")
    r.validate_rotation(rot)
    r.validate_rotation(rot, duration_seconds=86400)
    r.validate_rotation(attrs.evolve(rot, reminder_interval_seconds=0))
    r.validate_rotation(attrs.evolve(rot, reminder_interval_seconds=60))
    r.validate_rotation(attrs.evolve(rot, reminder_interval_seconds=2_592_000))


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"timezone": "Mars/Olympus"}, "$.timezone"),
        ({"timezone": "Europe"}, "$.timezone"),
        ({"timezone": "../etc/passwd"}, "$.timezone"),
        ({"timezone": "localtime"}, "$.timezone"),
        ({"timezone": ""}, "$.timezone"),
        ({"reminder_interval_seconds": 1}, "$.reminder_interval_seconds"),
        ({"reminder_interval_seconds": 59}, "$.reminder_interval_seconds"),
        ({"reminder_interval_seconds": 2_592_001}, "$.reminder_interval_seconds"),
        ({"reminder_interval_seconds": -5}, "$.reminder_interval_seconds"),
        ({"interval_value": 0}, "$.interval_value"),
        ({"interval_value": 366}, "$.interval_value"),
        ({"rotation_type": "monthly"}, "$.rotation_type"),
        ({"interval_unit": "years"}, "$.interval_unit"),
        ({"handoff_time": "9am"}, "$.handoff_time"),
        ({"handoff_weekday": 7}, "$.handoff_weekday"),
    ],
)
def test_validate_rotation_names_the_bad_field(changes: dict[str, Any], loc: str) -> None:
    """Each broken field becomes a validation error whose details point at that field."""
    rot = attrs.evolve(rotation(utc(2024, 1, 1)), **changes)
    with pytest.raises(ValidationError) as info:
        r.validate_rotation(rot)
    assert [d["loc"] for d in info.value.details] == [loc]


def test_validate_rotation_lists_every_bad_field_at_once() -> None:
    """Several broken fields are reported together rather than one per request."""
    rot = rotation(utc(2024, 1, 1), timezone="Nowhere/Land", reminder_interval_seconds=30, interval_value=0)
    with pytest.raises(ValidationError) as info:
        r.validate_rotation(rot)
    locs = {d["loc"] for d in info.value.details}
    assert locs == {"$.timezone", "$.reminder_interval_seconds", "$.interval_value"}


@pytest.mark.parametrize(
    ("fields", "supplied"),
    [
        ({}, 3600),
        ({"rotation_type": c.ROTATION_WEEKLY}, 86400),
        ({"rotation_type": c.ROTATION_CUSTOM, "interval_value": 8, "interval_unit": c.UNIT_HOURS}, 28801),
    ],
)
def test_validate_rotation_rejects_a_duration_that_is_not_the_derived_one(
    fields: dict[str, Any], supplied: int
) -> None:
    """A supplied duration_seconds must equal the derived nominal length."""
    rot = rotation(utc(2024, 1, 1), **fields)
    with pytest.raises(ValidationError) as info:
        r.validate_rotation(rot, duration_seconds=supplied)
    assert [d["loc"] for d in info.value.details] == ["$.duration_seconds"]


# --- handoffs and slots (S4.3, S4.4) ----------------------------------------------------------


def test_daily_start_before_handoff_time_gives_a_25_hour_first_shift() -> None:
    """Daily 09:00 with start_at 08:00 runs the first shift to 09:00 the next day."""
    rot = rotation(utc(2024, 6, 3, 8))
    assert r.handoff(rot, 0) == utc(2024, 6, 3, 8)
    assert r.handoff(rot, 1) == utc(2024, 6, 4, 9)
    assert r.handoff(rot, 1) - r.handoff(rot, 0) == 25 * H
    assert r.handoff(rot, 2) - r.handoff(rot, 1) == 24 * H


def test_daily_start_at_handoff_time_gives_equal_shifts() -> None:
    """Starting exactly at the handoff time makes every daily shift 24 h long."""
    rot = rotation(utc(2024, 6, 3, 9))
    assert [r.handoff(rot, m) for m in range(3)] == [
        utc(2024, 6, 3, 9),
        utc(2024, 6, 4, 9),
        utc(2024, 6, 5, 9),
    ]


def test_daily_start_after_handoff_time_gives_a_short_first_shift() -> None:
    """Starting at 15:00 with a 09:00 handoff makes the first shift 18 h."""
    rot = rotation(utc(2024, 6, 3, 15))
    assert r.handoff(rot, 1) == utc(2024, 6, 4, 9)


def test_weekly_hands_over_on_the_next_monday_by_default() -> None:
    """A weekly rotation started on a Wednesday hands over at 09:00 on the following Mondays."""
    rot = rotation(utc(2024, 6, 5, 10), rotation_type=c.ROTATION_WEEKLY)
    assert [r.handoff(rot, m) for m in range(1, 4)] == [
        utc(2024, 6, 10, 9),
        utc(2024, 6, 17, 9),
        utc(2024, 6, 24, 9),
    ]


def test_weekly_started_on_the_handoff_monday_gives_equal_weeks() -> None:
    """Starting at Monday 09:00 makes the first week a full week, not a zero-length shift."""
    rot = rotation(utc(2024, 6, 3, 9), rotation_type=c.ROTATION_WEEKLY)
    assert r.handoff(rot, 1) == utc(2024, 6, 10, 9)


def test_weekly_uses_the_configured_weekday_and_zone() -> None:
    """handoff_weekday=4 moves the Berlin handoff to Friday 17:30 local."""
    rot = rotation(
        utc(2024, 6, 3, 12),
        rotation_type=c.ROTATION_WEEKLY,
        handoff_weekday=4,
        handoff_time="17:30",
        timezone="Europe/Berlin",
    )
    assert r.handoff(rot, 1) == utc(2024, 6, 7, 15, 30)
    assert r.handoff(rot, 2) == utc(2024, 6, 14, 15, 30)


def test_custom_weeks_default_to_the_start_weekday() -> None:
    """Custom two-week rotations hand over on d₀'s weekday, first one week after d₀, then every 14 days."""
    rot = rotation(
        utc(2024, 6, 5, 9), rotation_type=c.ROTATION_CUSTOM, interval_value=2, interval_unit=c.UNIT_WEEKS
    )
    assert [r.handoff(rot, m) for m in range(1, 4)] == [
        utc(2024, 6, 12, 9),
        utc(2024, 6, 26, 9),
        utc(2024, 7, 10, 9),
    ]


def test_custom_days_step_by_whole_local_days() -> None:
    """A three-day rotation in New York hands over at 08:00 local every third day, across DST."""
    rot = rotation(
        utc(2024, 3, 8, 13),
        rotation_type=c.ROTATION_CUSTOM,
        interval_value=3,
        interval_unit=c.UNIT_DAYS,
        handoff_time="08:00",
        timezone="America/New_York",
    )
    assert [r.handoff(rot, m) for m in range(1, 3)] == [utc(2024, 3, 11, 12), utc(2024, 3, 14, 12)]


def test_custom_hours_step_in_elapsed_time_across_dst() -> None:
    """An eight-hour rotation keeps 8 h of elapsed time per slot even through the Berlin spring change."""
    start = utc(2024, 3, 30, 10, 17)
    rot = rotation(
        start,
        rotation_type=c.ROTATION_CUSTOM,
        interval_value=8,
        interval_unit=c.UNIT_HOURS,
        timezone="Europe/Berlin",
        handoff_time="not a time",  # ignored for elapsed rotations
    )
    assert [r.handoff(rot, m) for m in range(5)] == [start + 8 * H * m for m in range(5)]
    slot = r.slot_at(rot, utc(2024, 3, 31, 3))
    assert slot == r.Slot(2, start + 16 * H, start + 24 * H)


def test_custom_minutes_slot_lookup() -> None:
    """A fifteen-minute rotation finds slot 4 at 61 minutes after start."""
    start = utc(2024, 1, 1)
    rot = rotation(start, rotation_type=c.ROTATION_CUSTOM, interval_value=15, interval_unit=c.UNIT_MINUTES)
    assert r.slot_at(rot, start + dt.timedelta(minutes=61)) == r.Slot(
        4, start + dt.timedelta(minutes=60), start + dt.timedelta(minutes=75)
    )


@pytest.mark.parametrize(
    ("zone", "before", "after", "slot_start", "slot_end", "hours"),
    [
        (
            "Europe/Berlin",
            utc(2024, 3, 29, 8),
            utc(2024, 4, 1, 7),
            utc(2024, 3, 30, 8),
            utc(2024, 3, 31, 7),
            23,
        ),
        (
            "Europe/Berlin",
            utc(2024, 10, 25, 7),
            utc(2024, 10, 28, 8),
            utc(2024, 10, 26, 7),
            utc(2024, 10, 27, 8),
            25,
        ),
        (
            "America/New_York",
            utc(2024, 3, 8, 14),
            utc(2024, 3, 11, 13),
            utc(2024, 3, 9, 14),
            utc(2024, 3, 10, 13),
            23,
        ),
        (
            "America/New_York",
            utc(2024, 11, 1, 13),
            utc(2024, 11, 4, 14),
            utc(2024, 11, 2, 13),
            utc(2024, 11, 3, 14),
            25,
        ),
    ],
)
def test_daily_handoff_stays_at_0900_local_across_dst(
    zone: str,
    before: dt.datetime,
    after: dt.datetime,
    slot_start: dt.datetime,
    slot_end: dt.datetime,
    hours: int,
) -> None:
    """Daily 09:00 hands over at 09:00 local on both sides of a change; the change slot is 23 h or 25 h."""
    rot = rotation(utc(2024, 1, 1, 0), timezone=zone)
    slot = r.slot_at(rot, slot_start + H)
    assert slot is not None
    assert (slot.start, slot.end) == (slot_start, slot_end)
    assert slot.end - slot.start == hours * H
    for instant in (before, slot_start, slot_end, after):
        assert r.handoff(rot, index_at(rot, instant)) == instant
        local = instant.astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (9, 0)


def test_slot_at_boundaries() -> None:
    """Before start there is no slot; start opens slot 0; a handoff instant opens the next slot."""
    rot = rotation(utc(2024, 6, 3, 9))
    assert r.slot_at(rot, utc(2024, 6, 3, 9) - US) is None
    assert r.slot_at(rot, utc(2024, 6, 3, 9)) == r.Slot(0, utc(2024, 6, 3, 9), utc(2024, 6, 4, 9))
    assert index_at(rot, utc(2024, 6, 4, 9) - US) == 0
    assert index_at(rot, utc(2024, 6, 4, 9)) == 1


def test_slot_at_accepts_any_aware_zone_and_answers_in_utc() -> None:
    """An instant given in Berlin time resolves like its UTC equivalent, with UTC results."""
    rot = rotation(utc(2024, 6, 3, 9))
    slot = r.slot_at(rot, dt.datetime(2024, 6, 5, 12, tzinfo=BERLIN))
    assert slot == r.Slot(2, utc(2024, 6, 5, 9), utc(2024, 6, 6, 9))
    assert slot.start.tzinfo is UTC


def test_slot_at_far_in_the_future_uses_constant_handoff_computations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Looking up a slot fifty years out computes only a few handoffs, never iterating from start."""
    calls: list[int] = []
    original = r._Schedule.handoff

    def counting(self: r._Schedule, m: int) -> dt.datetime:
        calls.append(m)
        return original(self, m)

    monkeypatch.setattr(r._Schedule, "handoff", counting)
    daily = rotation(utc(2000, 1, 3, 8), timezone="Europe/Berlin")
    minutes = rotation(
        utc(2000, 1, 3, 8), rotation_type=c.ROTATION_CUSTOM, interval_value=1, interval_unit=c.UNIT_MINUTES
    )
    for rot in (daily, minutes):
        calls.clear()
        slot = r.slot_at(rot, utc(2050, 7, 1, 12, 30))
        assert slot is not None
        assert slot.start <= utc(2050, 7, 1, 12, 30) < slot.end
        assert len(calls) <= 5
    assert index_at(minutes, utc(2050, 7, 1, 12, 30)) == (
        utc(2050, 7, 1, 12, 30) - utc(2000, 1, 3, 8)
    ) // dt.timedelta(minutes=1)


def test_skipped_local_date_gives_an_empty_slot_that_no_instant_lands_in() -> None:
    """Samoa's missing 2011-12-30 collapses that day's slot; slot_at skips straight past it."""
    rot = rotation(utc(2011, 12, 25, 19), timezone="Pacific/Apia")  # 2011-12-25 09:00 local (-10:00)
    assert r.handoff(rot, 5) == r.handoff(rot, 6) == utc(2011, 12, 30, 19)
    slot = r.slot_at(rot, utc(2011, 12, 30, 19))
    assert slot == r.Slot(6, utc(2011, 12, 30, 19), utc(2011, 12, 31, 19))
    assert index_at(rot, utc(2011, 12, 30, 19) - US) == 4


def test_handoff_rejects_a_negative_index() -> None:
    """Handoff indexes start at zero."""
    with pytest.raises(ValueError, match=">= 0"):
        r.handoff(rotation(utc(2024, 1, 1)), -1)


def test_invalid_rotation_fields_raise_validation_errors_from_the_engine() -> None:
    """The engine refuses a rotation whose time zone it cannot load."""
    with pytest.raises(ValidationError):
        r.slot_at(rotation(utc(2024, 1, 1), timezone="Nowhere/Land"), utc(2024, 2, 1))


def test_naive_datetimes_are_refused() -> None:
    """Naive instants are programming errors and raise ValueError everywhere."""
    rot = rotation(utc(2024, 1, 1))
    naive = dt.datetime(2024, 2, 1)
    with pytest.raises(ValueError, match="aware"):
        r.slot_at(rot, naive)
    with pytest.raises(ValueError, match="aware"):
        r.oncall_at(rot, members(IVAN), [], naive)
    with pytest.raises(ValueError, match="aware"):
        r.calendar_segments(rot, members(IVAN), [], naive, utc(2024, 2, 2))
    with pytest.raises(ValueError, match="aware"):
        r.OverrideIndex([]).active_at(naive)


# --- members ---------------------------------------------------------------------------------


def test_ordered_active_members_filters_and_sorts_by_position() -> None:
    """Inactive members drop out and the rest come back in position order."""
    raw = [
        RotationMember(id=1, rotation_id=1, user_id=IVAN, position=2),
        RotationMember(id=2, rotation_id=1, user_id=SERGEY, position=0, active=False),
        RotationMember(id=3, rotation_id=1, user_id=OLGA, position=1),
    ]
    assert [m.user_id for m in r.ordered_active_members(raw)] == [OLGA, IVAN]


@pytest.mark.parametrize(
    ("user_ids", "inactive", "assignee", "expected"),
    [
        ((IVAN, SERGEY, OLGA), (), IVAN, SERGEY),
        ((IVAN, SERGEY, OLGA), (), OLGA, IVAN),
        ((IVAN, SERGEY, OLGA), (), 99, IVAN),
        ((IVAN, SERGEY, OLGA), (), None, IVAN),
        ((IVAN, SERGEY, OLGA), (SERGEY,), IVAN, OLGA),
        ((IVAN, SERGEY, OLGA), (SERGEY, OLGA), 99, None),
        ((IVAN,), (), IVAN, None),
        ((IVAN,), (), 99, None),
        ((), (), None, None),
    ],
)
def test_next_oncall_user(
    user_ids: tuple[int, ...], inactive: tuple[int, ...], assignee: int | None, expected: int | None
) -> None:
    """The next on-call user follows the assignee in position order, wrapping, per S4.6."""
    assert r.next_oncall_user(members(*user_ids, inactive=inactive), assignee) == expected


def test_next_oncall_user_never_returns_the_assignee() -> None:
    """When an inactive assignee's only successor is themselves, nobody is returned."""
    both = [
        RotationMember(id=1, rotation_id=1, user_id=IVAN, position=0),
        RotationMember(id=2, rotation_id=1, user_id=IVAN, position=1),
    ]
    assert r.next_oncall_user(both, IVAN) is None


# --- overrides (S4.5) ------------------------------------------------------------------------


def test_override_index_newest_created_wins_and_falls_back_when_it_ends() -> None:
    """Overlapping overrides: the newer wins inside its window, the older resumes after it."""
    old = override(SERGEY, utc(2024, 6, 3, 10), utc(2024, 6, 3, 20), id=1, created_at=utc(2024, 5, 1))
    new = override(OLGA, utc(2024, 6, 3, 12), utc(2024, 6, 3, 14), id=2, created_at=utc(2024, 5, 2))
    index = r.OverrideIndex([new, old])
    assert index.active_at(utc(2024, 6, 3, 10) - US) is None
    assert index.active_at(utc(2024, 6, 3, 11)) == old
    assert index.active_at(utc(2024, 6, 3, 12)) == new
    assert index.active_at(utc(2024, 6, 3, 14) - US) == new
    assert index.active_at(utc(2024, 6, 3, 14)) == old
    assert index.active_at(utc(2024, 6, 3, 20)) is None
    assert len(index) == 2


def test_override_index_an_older_override_never_hides_a_newer_one() -> None:
    """A wide override created later hides an older, narrower one inside it, whatever the input order."""
    wide_new = override(SERGEY, utc(2024, 6, 3, 0), utc(2024, 6, 4, 0), id=5, created_at=utc(2024, 5, 9))
    narrow_old = override(OLGA, utc(2024, 6, 3, 12), utc(2024, 6, 3, 14), id=6, created_at=utc(2024, 5, 1))
    index = r.OverrideIndex([narrow_old, wide_new])
    assert index.active_at(utc(2024, 6, 3, 13)) == wide_new


def test_override_index_breaks_creation_ties_by_id() -> None:
    """Two overrides created at the same instant resolve to the higher id."""
    a = override(SERGEY, utc(2024, 6, 3, 10), utc(2024, 6, 3, 20), id=3)
    b = override(OLGA, utc(2024, 6, 3, 10), utc(2024, 6, 3, 20), id=4)
    assert r.OverrideIndex([b, a]).active_at(utc(2024, 6, 3, 15)) == b


def test_override_index_overlapping_and_effective() -> None:
    """overlapping() lists every override meeting the range; effective() only the clipped winners."""
    old = override(SERGEY, utc(2024, 6, 3, 10), utc(2024, 6, 3, 20), id=1, created_at=utc(2024, 5, 1))
    new = override(OLGA, utc(2024, 6, 3, 12), utc(2024, 6, 3, 14), id=2, created_at=utc(2024, 5, 2))
    later = override(IVAN, utc(2024, 6, 5), utc(2024, 6, 6), id=3)
    index = r.OverrideIndex([later, new, old])
    assert index.overlapping(utc(2024, 6, 3, 13), utc(2024, 6, 3, 15)) == (old, new)
    assert index.overlapping(utc(2024, 6, 3, 20), utc(2024, 6, 5)) == ()
    assert index.effective(utc(2024, 6, 3, 11), utc(2024, 6, 3, 13)) == [
        (utc(2024, 6, 3, 11), utc(2024, 6, 3, 12), old),
        (utc(2024, 6, 3, 12), utc(2024, 6, 3, 13), new),
    ]


# --- on-call (S4.6) --------------------------------------------------------------------------


def test_oncall_at_layer_user_and_slot_fields() -> None:
    """Without overrides the slot user is active_members[m mod n] with the slot bounds."""
    rot = rotation(utc(2024, 6, 3, 9))
    team = members(IVAN, SERGEY, OLGA)
    result = r.oncall_at(rot, team, [], utc(2024, 6, 6, 10))
    assert result == r.OnCall(
        user_id=IVAN,
        source="layer",
        override_id=None,
        slot_start=utc(2024, 6, 6, 9),
        slot_end=utc(2024, 6, 7, 9),
        next_handoff_at=utc(2024, 6, 7, 9),
    )
    second_day = r.oncall_at(rot, team, [], utc(2024, 6, 4, 9))
    assert second_day is not None
    assert second_day.user_id == SERGEY


def test_oncall_at_override_fields() -> None:
    """An override in force wins and reports its own window and the rotation's next handoff."""
    rot = rotation(utc(2024, 6, 3, 9))
    ov = override(SERGEY, utc(2024, 6, 3, 12), utc(2024, 6, 3, 16), id=42)
    for given in ([ov], r.OverrideIndex([ov])):
        assert r.oncall_at(rot, members(IVAN), given, utc(2024, 6, 3, 13)) == r.OnCall(
            user_id=SERGEY,
            source="override",
            override_id=42,
            slot_start=utc(2024, 6, 3, 12),
            slot_end=utc(2024, 6, 3, 16),
            next_handoff_at=utc(2024, 6, 4, 9),
        )


def test_oncall_at_override_before_start_and_without_members() -> None:
    """Overrides apply even before start_at and with no active members; the layer does not."""
    rot = rotation(utc(2024, 6, 3, 9))
    ov = override(SERGEY, utc(2024, 6, 1), utc(2024, 6, 2))
    result = r.oncall_at(rot, [], [ov], utc(2024, 6, 1, 5))
    assert result is not None
    assert (result.user_id, result.next_handoff_at) == (SERGEY, utc(2024, 6, 3, 9))
    assert r.oncall_at(rot, members(IVAN), [], utc(2024, 6, 3, 9) - US) is None
    assert r.oncall_at(rot, members(IVAN, inactive=(IVAN,)), [], utc(2024, 6, 4)) is None


def test_oncall_at_disabled_or_deleted_rotation_is_nobody() -> None:
    """A disabled or soft-deleted rotation has nobody on call, overrides included."""
    ov = override(SERGEY, utc(2024, 6, 3), utc(2024, 6, 5))
    for rot in (
        rotation(utc(2024, 6, 1), enabled=False),
        rotation(utc(2024, 6, 1), deleted_at=utc(2024, 6, 2)),
    ):
        assert r.oncall_at(rot, members(IVAN), [ov], utc(2024, 6, 4)) is None


# --- calendar (S4.7) -------------------------------------------------------------------------


def test_calendar_override_splits_a_shift_like_the_spec_example() -> None:
    """09:00–12:00 Ivan, 12:00–16:00 Sergey (override), 16:00–18:00 Ivan."""
    rot = rotation(utc(2026, 6, 1, 9))
    ov = override(SERGEY, utc(2026, 6, 1, 12), utc(2026, 6, 1, 16), id=5, reason="dentist")
    segments = r.calendar_segments(
        rot, members(IVAN), [ov], utc(2026, 6, 1, 9), utc(2026, 6, 1, 18), layer_id=3
    )
    assert [(s.user_id, s.type, s.override_id, s.layer_id, s.reason, s.start, s.end) for s in segments] == [
        (IVAN, "layer", None, 3, None, utc(2026, 6, 1, 9), utc(2026, 6, 1, 12)),
        (SERGEY, "override", 5, None, "dentist", utc(2026, 6, 1, 12), utc(2026, 6, 1, 16)),
        (IVAN, "layer", None, 3, None, utc(2026, 6, 1, 16), utc(2026, 6, 1, 18)),
    ]
    assert all(s.rotation_id == 1 for s in segments)


def test_calendar_daily_shifts_in_berlin() -> None:
    """Three daily Berlin shifts in June start at 07:00Z and are clipped to the range."""
    rot = rotation(utc(2026, 6, 1, 7), timezone="Europe/Berlin")
    segments = r.calendar_segments(rot, members(IVAN, SERGEY), [], utc(2026, 6, 1), utc(2026, 6, 3, 12))
    assert [(s.user_id, s.start, s.end) for s in segments] == [
        (IVAN, utc(2026, 6, 1, 7), utc(2026, 6, 2, 7)),
        (SERGEY, utc(2026, 6, 2, 7), utc(2026, 6, 3, 7)),
        (IVAN, utc(2026, 6, 3, 7), utc(2026, 6, 3, 12)),
    ]


def test_calendar_merges_consecutive_shifts_of_the_same_user() -> None:
    """A one-member rotation shows one continuous segment, not one per day."""
    rot = rotation(utc(2026, 6, 1, 9))
    segments = r.calendar_segments(rot, members(IVAN), [], utc(2026, 6, 1), utc(2026, 6, 11))
    assert [(s.user_id, s.start, s.end) for s in segments] == [(IVAN, utc(2026, 6, 1, 9), utc(2026, 6, 11))]


def test_calendar_does_not_merge_an_override_into_the_same_users_shift() -> None:
    """An override for the user already on call stays a separate override segment."""
    rot = rotation(utc(2026, 6, 1, 9))
    ov = override(IVAN, utc(2026, 6, 1, 12), utc(2026, 6, 1, 16))
    segments = r.calendar_segments(rot, members(IVAN), [ov], utc(2026, 6, 1, 9), utc(2026, 6, 1, 18))
    assert [s.type for s in segments] == ["layer", "override", "layer"]


def test_calendar_nested_overrides_show_the_newest() -> None:
    """A newer override inside an older one splits the older one in two."""
    rot = rotation(utc(2026, 6, 1, 9))
    old = override(SERGEY, utc(2026, 6, 1, 10), utc(2026, 6, 1, 20), id=1, created_at=utc(2026, 5, 1))
    new = override(OLGA, utc(2026, 6, 1, 12), utc(2026, 6, 1, 14), id=2, created_at=utc(2026, 5, 2))
    segments = r.calendar_segments(rot, members(IVAN), [old, new], utc(2026, 6, 1, 9), utc(2026, 6, 1, 21))
    assert [(s.user_id, s.override_id, s.start.hour, s.end.hour) for s in segments] == [
        (IVAN, None, 9, 10),
        (SERGEY, 1, 10, 12),
        (OLGA, 2, 12, 14),
        (SERGEY, 1, 14, 20),
        (IVAN, None, 20, 21),
    ]


def test_calendar_shows_nothing_before_start_except_overrides() -> None:
    """Before start_at only overrides appear; the layer begins at start_at."""
    rot = rotation(utc(2026, 6, 3, 9))
    ov = override(SERGEY, utc(2026, 6, 1, 10), utc(2026, 6, 1, 12))
    segments = r.calendar_segments(rot, members(IVAN), [ov], utc(2026, 6, 1), utc(2026, 6, 4))
    assert [(s.user_id, s.start, s.end) for s in segments] == [
        (SERGEY, utc(2026, 6, 1, 10), utc(2026, 6, 1, 12)),
        (IVAN, utc(2026, 6, 3, 9), utc(2026, 6, 4)),
    ]


def test_calendar_of_a_disabled_rotation_is_empty() -> None:
    """Disabled rotations contribute no events."""
    rot = rotation(utc(2026, 6, 1, 9), enabled=False)
    assert r.calendar_segments(rot, members(IVAN), [], utc(2026, 6, 1), utc(2026, 6, 2)) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (utc(2026, 6, 2), utc(2026, 6, 2)),
        (utc(2026, 6, 2), utc(2026, 6, 1)),
        (utc(2026, 1, 1), utc(2027, 1, 2) + US),
    ],
)
def test_calendar_rejects_bad_ranges(start: dt.datetime, end: dt.datetime) -> None:
    """An empty, reversed or longer-than-366-days range is a validation error."""
    with pytest.raises(ValidationError) as info:
        r.calendar_segments(rotation(utc(2026, 1, 1)), members(IVAN), [], start, end)
    assert info.value.details[0]["loc"] == "$.end"


def test_calendar_accepts_exactly_366_days() -> None:
    """A range of exactly 366 days is allowed."""
    segments = r.calendar_segments(
        rotation(utc(2026, 1, 1, 9)), members(IVAN), [], utc(2026, 1, 1), utc(2027, 1, 2)
    )
    assert segments[-1].end == utc(2027, 1, 2)


def test_slot_at_handles_a_clock_that_jumps_back_across_midnight() -> None:
    """Newfoundland fell back from 00:01 to 23:01 the day before; the 00:00 handoff slot holds that 23:30."""
    rot = rotation(utc(2009, 10, 25, 3, 30), timezone="America/St_Johns", handoff_time="00:00")
    after_fallback = utc(2009, 11, 1, 3)  # 2009-10-31 23:30 NST, local date before the handoff's
    assert r.handoff(rot, 7) == utc(2009, 11, 1, 2, 30)  # 2009-11-01 00:00 NDT
    assert r.slot_at(rot, after_fallback) == r.Slot(7, utc(2009, 11, 1, 2, 30), utc(2009, 11, 2, 3, 30))
