"""Reminder and escalation timing as a pure function of the group and the time (SPEC S5.4, S5.5)."""

from __future__ import annotations

import datetime as dt

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_core.domain import constants as c
from relay_core.domain.escalation import arm_timers, due_action, first_notification_wait, next_action_at
from relay_core.domain.model import AlertGroup

T0 = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)


def _group(**changes: object) -> AlertGroup:
    base = AlertGroup(
        id=1,
        team_id=1,
        route_id=1,
        rotation_id=1,
        assignee_id=10,
        source="alertmanager",
        group_key="k",
        group_key_hash="h",
        first_seen_at=T0,
        last_seen_at=T0,
    )
    return attrs.evolve(base, **changes)


def _simulate(
    *, interval: int, after: int, members: list[int], ticks: int, step: int
) -> list[tuple[int, str, int]]:
    """Drive due_action with a tick every ``step`` seconds; returns (offset, kind, target)."""
    group = arm_timers(_group(assignee_id=members[0]), first_page_due=T0, interval=interval)
    actions = []
    for n in range(1, ticks + 1):
        now = T0 + dt.timedelta(seconds=n * step)
        current = group.assignee_id
        nxt = members[(members.index(current) + 1) % len(members)] if len(members) > 1 else None
        action = due_action(
            group,
            now=now,
            interval=interval,
            escalation_enabled=True,
            escalation_after_reminders=after,
            next_user_id=nxt,
        )
        if action is not None:
            actions.append((n * step, action.kind, action.target_user_id or 0))
            group = action.group
    return actions


def test_spec_example_timeline_with_defaults() -> None:
    """Interval 300 and N = 2 give reminder, reminder, escalate to B, reminder, reminder, escalate to C."""
    actions = _simulate(interval=300, after=2, members=[1, 2, 3], ticks=6, step=300)
    assert actions == [
        (300, "reminder", 1),
        (600, "reminder", 1),
        (900, "escalation", 2),
        (1200, "reminder", 2),
        (1500, "reminder", 2),
        (1800, "escalation", 3),
    ]


def test_single_member_rotation_keeps_reminding_and_records_skip() -> None:
    """With nobody to escalate to, a due escalation becomes a reminder marked escalation_skipped."""
    group = arm_timers(_group(reminder_count=2), first_page_due=T0, interval=300)
    group = attrs.evolve(group, reminder_count=2)
    action = due_action(
        group,
        now=T0 + dt.timedelta(seconds=300),
        interval=300,
        escalation_enabled=True,
        escalation_after_reminders=2,
        next_user_id=None,
    )
    assert action is not None
    assert action.kind == "reminder"
    assert action.escalation_skipped == "no_next_user"
    assert action.group.reminder_count == 3


def test_missed_ticks_are_not_replayed() -> None:
    """A tick long after the due time sends one reminder and schedules the next from now."""
    group = arm_timers(_group(), first_page_due=T0, interval=60)
    late = T0 + dt.timedelta(hours=5)
    action = due_action(
        group,
        now=late,
        interval=60,
        escalation_enabled=False,
        escalation_after_reminders=2,
        next_user_id=None,
    )
    assert action is not None
    assert action.group.reminder_count == 1
    assert action.group.next_reminder_at == late + dt.timedelta(seconds=60)


def test_group_wait_rules() -> None:
    """Route wait wins; empty group_by pages at once; otherwise the global wait applies."""
    assert first_notification_wait(group_wait_seconds=10, group_by=("a",), default_group_wait=30) == 10
    assert first_notification_wait(group_wait_seconds=None, group_by=(), default_group_wait=30) == 0
    assert first_notification_wait(group_wait_seconds=None, group_by=("a",), default_group_wait=30) == 30


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([c.GROUP_ACKNOWLEDGED, c.GROUP_RESOLVED, c.GROUP_SILENCED]),
    interval=st.integers(min_value=0, max_value=10_000),
    reminders=st.integers(min_value=0, max_value=10),
    after=st.integers(min_value=1, max_value=5),
    offset=st.integers(min_value=-10_000, max_value=10**7),
    next_user=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
)
def test_nothing_is_ever_due_for_closed_or_quiet_groups(
    status: str, interval: int, reminders: int, after: int, offset: int, next_user: int | None
) -> None:
    """No reminder or escalation is ever due for an acknowledged, resolved or silenced group."""
    group = _group(status=status, reminder_count=reminders, next_reminder_at=T0, next_action_at=T0)
    now = T0 + dt.timedelta(seconds=offset)
    assert (
        due_action(
            group,
            now=now,
            interval=interval,
            escalation_enabled=True,
            escalation_after_reminders=after,
            next_user_id=next_user,
        )
        is None
    )
    assert next_action_at(T0, status) is None


@settings(max_examples=200, deadline=None)
@given(
    interval=st.integers(min_value=60, max_value=3600),
    after=st.integers(min_value=1, max_value=4),
    members=st.integers(min_value=1, max_value=4),
    step=st.integers(min_value=1, max_value=900),
)
def test_escalation_follows_every_n_reminders(interval: int, after: int, members: int, step: int) -> None:
    """Between escalations there are exactly N reminders, and reminders are never closer than the interval."""
    users = list(range(1, members + 1))
    actions = _simulate(interval=interval, after=after, members=users, ticks=60, step=step)
    run = 0
    last_time = None
    for when, kind, _target in actions:
        if last_time is not None:
            assert when - last_time >= interval
        last_time = when
        if kind == "escalation":
            assert run == after
            assert members > 1
            run = 0
        else:
            run += 1
    if members == 1:
        assert all(kind == "reminder" for _, kind, _ in actions)
