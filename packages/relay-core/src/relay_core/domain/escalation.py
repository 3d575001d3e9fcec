"""Reminders and team escalation as a pure "what is due at time t" (SPEC S5.3–S5.5).

The database holds the timers (``next_reminder_at``, ``next_action_at``); these
functions only decide. A group that is not ``firing`` never has anything due.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs

from relay_core.domain import constants as c
from relay_core.domain.model import AlertGroup


def first_notification_wait(
    *, group_wait_seconds: int | None, group_by: tuple[str, ...], default_group_wait: int
) -> int:
    """Seconds between a group's creation and its first page (S5.3)."""
    if group_wait_seconds is not None:
        return group_wait_seconds
    return 0 if not group_by else default_group_wait


def reminder_interval(rotation_interval: int | None) -> int:
    """The group's reminder interval; 0 means reminders are off."""
    if not rotation_interval or rotation_interval <= 0:
        return 0
    return rotation_interval


def next_action_at(next_reminder_at: dt.datetime | None, status: str) -> dt.datetime | None:
    """The minimum of the timers, and None unless the group is firing (invariant S1.9.4)."""
    if status != c.GROUP_FIRING:
        return None
    return next_reminder_at


def arm_timers(group: AlertGroup, *, first_page_due: dt.datetime, interval: int) -> AlertGroup:
    """Timers of a group that (re)starts firing: first reminder one interval after the page."""
    reminder = first_page_due + dt.timedelta(seconds=interval) if interval > 0 else None
    return attrs.evolve(
        group,
        reminder_count=0,
        next_reminder_at=reminder,
        next_action_at=next_action_at(reminder, group.status),
    )


def clear_timers(group: AlertGroup) -> AlertGroup:
    return attrs.evolve(group, next_reminder_at=None, next_action_at=None)


@attrs.frozen(kw_only=True)
class DueAction:
    """What the scheduler must do for one group at one tick."""

    kind: Literal["reminder", "escalation"]
    group: AlertGroup
    """The group after the action (counters and timers already advanced)."""
    target_user_id: int | None
    escalation_skipped: str | None = None


def due_action(
    group: AlertGroup,
    *,
    now: dt.datetime,
    interval: int,
    escalation_enabled: bool,
    escalation_after_reminders: int,
    next_user_id: int | None,
) -> DueAction | None:
    """Decide the reminder or escalation due for ``group`` at ``now`` (S5.4, S5.5).

    ``next_user_id`` is the rotation's next on-call user after the current assignee
    (``rotation.next_oncall_user``). Missed ticks are not replayed: the next reminder is
    one interval after ``now``.
    """
    if group.status != c.GROUP_FIRING or interval <= 0:
        return None
    if group.next_reminder_at is None or group.next_reminder_at > now:
        return None
    next_reminder = now + dt.timedelta(seconds=interval)
    wants_escalation = escalation_enabled and group.reminder_count >= escalation_after_reminders
    if wants_escalation and next_user_id is not None:
        after = attrs.evolve(
            group,
            assignee_id=next_user_id,
            escalation_level=group.escalation_level + 1,
            reminder_count=0,
            next_reminder_at=next_reminder,
            next_action_at=next_reminder,
            lifecycle_version=group.lifecycle_version + 1,
        )
        return DueAction(kind="escalation", group=after, target_user_id=next_user_id)
    after = attrs.evolve(
        group,
        reminder_count=group.reminder_count + 1,
        next_reminder_at=next_reminder,
        next_action_at=next_reminder,
        lifecycle_version=group.lifecycle_version + 1,
    )
    return DueAction(
        kind="reminder",
        group=after,
        target_user_id=group.assignee_id,
        escalation_skipped="no_next_user" if wants_escalation else None,
    )
