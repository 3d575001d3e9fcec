"""Silence status, matching at intake, validation and lifecycle reconciliation (S3.6)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_core.domain.errors import ValidationError
from relay_core.domain.matchers import MatchContext
from relay_core.domain.model import Silence, SilenceApplication
from relay_core.domain.silences import (
    SILENCE_STATUSES,
    SilenceRelease,
    is_active,
    matching_silences,
    reconcile_silences,
    silence_applies,
    silence_status,
    validate_silence,
)

T0 = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def silence(id: int = 1, **overrides: Any) -> Silence:
    values: dict[str, Any] = {
        "id": id,
        "team_id": 10,
        "name": "Maintenance",
        "matchers": {"alertname": "DiskFull"},
        "starts_at": T0,
        "ends_at": T0 + HOUR,
    }
    values.update(overrides)
    return Silence(**values)


def application(id: int, silence_id: int, alert_id: int, *, active: bool = True) -> SilenceApplication:
    return SilenceApplication(
        id=id,
        silence_id=silence_id,
        alert_id=alert_id,
        group_id=alert_id,
        previous_status="firing",
        active=active,
        applied_at=T0,
    )


def ctx(team_id: int | None = 10, **labels: str) -> MatchContext:
    return MatchContext(labels=labels or {"alertname": "DiskFull"}, team_id=team_id)


# --- status ------------------------------------------------------------------------------

OFFSETS = st.integers(min_value=-10_000, max_value=10_000).map(lambda s: dt.timedelta(seconds=s))


@given(OFFSETS, st.integers(1, 5000), st.booleans(), st.booleans())
def test_status_partitions_time(offset: dt.timedelta, length: int, enabled: bool, deleted: bool) -> None:
    """Each instant gets one status; a live silence is active exactly when `starts_at <= now < ends_at`."""
    item = silence(
        ends_at=T0 + dt.timedelta(seconds=length), enabled=enabled, deleted_at=T0 if deleted else None
    )
    now = T0 + offset
    status = silence_status(item, now)
    assert status in SILENCE_STATUSES
    live = enabled and not deleted
    expected_active = live and item.starts_at <= now < item.ends_at
    assert is_active(item, now) is expected_active
    assert (status == "active") is expected_active
    assert (status == "disabled") is (not live)
    if live:
        assert (status == "scheduled") is (now < item.starts_at)
        assert (status == "expired") is (now >= item.ends_at)


def test_window_is_start_inclusive_and_end_exclusive() -> None:
    """A silence is active at its start instant and expired at its end instant."""
    item = silence()
    assert silence_status(item, T0 - dt.timedelta(microseconds=1)) == "scheduled"
    assert silence_status(item, T0) == "active"
    assert silence_status(item, T0 + HOUR - dt.timedelta(microseconds=1)) == "active"
    assert silence_status(item, T0 + HOUR) == "expired"


def test_disabled_wins_over_time() -> None:
    """A disabled or deleted silence reports `disabled` whether it is past, current or future."""
    for now in (T0 - HOUR, T0, T0 + 2 * HOUR):
        assert silence_status(silence(enabled=False), now) == "disabled"
        assert silence_status(silence(deleted_at=T0), now) == "disabled"


# --- matching ----------------------------------------------------------------------------


def test_matching_silences_are_active_team_silences_that_match() -> None:
    """Only active silences of the alert's team whose matchers match are returned, by id."""
    silences = [
        silence(5),
        silence(2, matchers=[{"name": "alertname", "value": "Disk.*", "is_regex": True}]),
        silence(3, team_id=99),
        silence(4, matchers={"alertname": "CpuHigh"}),
        silence(6, starts_at=T0 + HOUR, ends_at=T0 + 2 * HOUR),
        silence(7, enabled=False),
        silence(8, matchers={}),
    ]
    found = matching_silences(silences, ctx(), T0 + dt.timedelta(minutes=5))
    assert [s.id for s in found] == [2, 5, 8]


def test_context_without_team_is_not_filtered_by_team() -> None:
    """A context lacking `team_id` matches silences of any team."""
    assert silence_applies(silence(team_id=99), ctx(team_id=None), T0)


def test_silence_with_malformed_stored_matchers_mutes_nothing() -> None:
    """A silence whose stored matchers are broken never silences (duplicate rather than lose)."""
    assert not silence_applies(silence(matchers={"alertname": {"regex": "("}}), ctx(), T0)


# --- validation --------------------------------------------------------------------------


def test_validate_returns_trimmed_name_and_normalized_matchers() -> None:
    """A valid silence comes back with a trimmed name and list-form matchers converted."""
    item = silence(name="  Night work  ", matchers=[{"name": "env", "value": "prod", "is_equal": False}])
    valid = validate_silence(item)
    assert valid.name == "Night work"
    assert valid.matchers == {"env": {"not": "prod"}}
    assert attrs.evolve(valid, name=item.name, matchers=item.matchers) == item


@pytest.mark.parametrize("ends_at", [T0, T0 - HOUR])
def test_validate_requires_end_after_start(ends_at: dt.datetime) -> None:
    """`ends_at` must be strictly after `starts_at`."""
    with pytest.raises(ValidationError) as info:
        validate_silence(silence(ends_at=ends_at))
    assert info.value.details == [{"loc": "ends_at", "message": "ends_at must be after starts_at"}]


def test_validate_reports_every_problem() -> None:
    """Name, reason, time and matcher problems are reported together."""
    with pytest.raises(ValidationError) as info:
        validate_silence(silence(name=" x ", reason="r" * 2001, ends_at=T0, matchers={"a": {"regex": "("}}))
    assert [d["loc"] for d in info.value.details] == ["name", "reason", "ends_at", "matchers.a"]


# --- reconciliation ----------------------------------------------------------------------


def test_started_silences_are_active_ones_not_reconciled_since_start() -> None:
    """A silence starts once: when active and `reconciled_at` is unset or before `starts_at`."""
    now = T0 + dt.timedelta(minutes=1)
    silences = [
        silence(1, apply_to_existing=True),
        silence(2, reconciled_at=T0 - HOUR),
        silence(3, reconciled_at=T0),
        silence(4, starts_at=T0 + HOUR, ends_at=T0 + 2 * HOUR),
        silence(5, enabled=False),
    ]
    result = reconcile_silences(silences, [], now=now)
    assert [s.id for s in result.started] == [1, 2]
    assert [s.id for s in result.to_apply] == [1]
    assert result.releases == ()


def test_reconciling_after_marking_is_a_no_op() -> None:
    """Once the job stores `reconciled_at = now`, the next tick starts nothing again."""
    now = T0 + dt.timedelta(minutes=1)
    first = reconcile_silences([silence(1, apply_to_existing=True)], [], now=now)
    marked = [attrs.evolve(s, reconciled_at=now) for s in first.started]
    assert reconcile_silences(marked, [], now=now + dt.timedelta(seconds=30)).started == ()


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"ends_at": T0 + dt.timedelta(minutes=30)}, "expired"),
        ({"enabled": False}, "disabled"),
        ({"deleted_at": T0}, "deleted"),
        ({"starts_at": T0 + 2 * HOUR, "ends_at": T0 + 3 * HOUR}, "scheduled"),
    ],
)
def test_applications_of_ended_silences_are_released(changed: dict[str, Any], reason: str) -> None:
    """Expiry, disabling, deletion or rescheduling releases the silence's applications."""
    now = T0 + HOUR - dt.timedelta(minutes=1)
    result = reconcile_silences([silence(1, **changed)], [application(7, 1, 100)], now=now)
    assert result.releases == (
        SilenceRelease(application=application(7, 1, 100), reason=reason, reactivate=True),
    )
    assert result.ended_silence_ids == (1,)


def test_application_of_a_missing_silence_is_released_as_deleted() -> None:
    """An application whose silence row is gone is released with reason `deleted`."""
    result = reconcile_silences([], [application(7, 1, 100)], now=T0)
    assert [(r.reason, r.reactivate) for r in result.releases] == [("deleted", True)]


def test_reactivation_follows_reactivate_on_end() -> None:
    """`reactivate_on_end = false` releases the alert without returning it to firing."""
    ended = silence(1, reactivate_on_end=False, ends_at=T0 + dt.timedelta(minutes=1))
    result = reconcile_silences([ended], [application(7, 1, 100)], now=T0 + HOUR)
    assert [r.reactivate for r in result.releases] == [False]


def test_alert_still_held_by_another_silence_is_not_reactivated() -> None:
    """When a second active silence still mutes the alert, releasing the first does not fire it."""
    ended = silence(1, ends_at=T0 + dt.timedelta(minutes=1))
    ongoing = silence(2, ends_at=T0 + 3 * HOUR)
    apps = [application(7, 1, 100), application(8, 2, 100), application(9, 1, 200)]
    result = reconcile_silences([ended, ongoing], apps, now=T0 + HOUR)
    assert [(r.application.id, r.reactivate) for r in result.releases] == [(7, False), (9, True)]


def test_active_and_inactive_applications_are_left_alone() -> None:
    """Applications of active silences and already released applications produce no release."""
    apps = [application(7, 1, 100), application(8, 2, 200, active=False)]
    result = reconcile_silences([silence(1), silence(2, enabled=False)], apps, now=T0)
    assert result.releases == ()


@given(
    st.lists(st.tuples(st.booleans(), st.integers(-2, 2)), min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3)), max_size=8),
)
def test_release_exactly_the_applications_of_inactive_silences(
    specs: list[tuple[bool, int]], links: list[tuple[int, int]]
) -> None:
    """Each live application is released iff its silence is not active now."""
    silences = [
        silence(i, enabled=enabled, starts_at=T0 + shift * HOUR, ends_at=T0 + (shift + 1) * HOUR)
        for i, (enabled, shift) in enumerate(specs)
    ]
    apps = [application(n, sid, alert) for n, (sid, alert) in enumerate(links)]
    now = T0 + dt.timedelta(minutes=30)
    by_id = {s.id: s for s in silences}
    released = {r.application.id for r in reconcile_silences(silences, apps, now=now).releases}
    expected = {a.id for a in apps if a.silence_id not in by_id or not is_active(by_id[a.silence_id], now)}
    assert released == expected
