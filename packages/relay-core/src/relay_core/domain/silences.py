"""Silences: status, matching at intake, validation and the lifecycle reconciliation (SPEC S3.6).

A silence is active when it is enabled, not deleted and ``starts_at <= now < ends_at``. Intake
asks :func:`matching_silences`; the 30-second lifecycle job asks :func:`reconcile_silences`
what to apply and what to release. Both are level-triggered: they compare stored state with
``now``, so a missed or repeated tick neither loses nor doubles work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

import attrs

from relay_core.domain.errors import ValidationError
from relay_core.domain.matchers import MatchContext, matches, normalize_matchers
from relay_core.domain.model import Silence, SilenceApplication

SILENCE_ACTIVE: Final = "active"
SILENCE_SCHEDULED: Final = "scheduled"
SILENCE_EXPIRED: Final = "expired"
SILENCE_DISABLED: Final = "disabled"
SILENCE_STATUSES: Final = (SILENCE_ACTIVE, SILENCE_SCHEDULED, SILENCE_EXPIRED, SILENCE_DISABLED)

#: ``release_reason`` of an application whose silence row is gone or soft-deleted.
RELEASE_DELETED: Final = "deleted"

NAME_MIN: Final = 2
NAME_MAX: Final = 120
REASON_MAX: Final = 2000


def silence_status(silence: Silence, now: dt.datetime) -> str:
    """``disabled`` (disabled or deleted), else ``scheduled``, ``active`` or ``expired`` by time."""
    if not silence.enabled or silence.deleted_at is not None:
        return SILENCE_DISABLED
    if now < silence.starts_at:
        return SILENCE_SCHEDULED
    if now >= silence.ends_at:
        return SILENCE_EXPIRED
    return SILENCE_ACTIVE


def is_active(silence: Silence, now: dt.datetime) -> bool:
    """Whether ``silence`` mutes matching alerts at ``now``."""
    return silence_status(silence, now) == SILENCE_ACTIVE


def silence_applies(silence: Silence, ctx: MatchContext, now: dt.datetime) -> bool:
    """Whether ``silence`` is active and mutes the alert described by ``ctx``.

    A silence mutes only its own team's alerts; a context without ``team_id`` is not filtered
    by team.
    """
    if ctx.team_id is not None and silence.team_id != ctx.team_id:
        return False
    return is_active(silence, now) and matches(silence.matchers, ctx)


def matching_silences(
    silences: Sequence[Silence], ctx: MatchContext, now: dt.datetime
) -> tuple[Silence, ...]:
    """The active silences of the alert's team that match it, by ascending id (trace order)."""
    return tuple(s for s in sorted(silences, key=lambda s: s.id) if silence_applies(s, ctx, now))


def validate_silence(silence: Silence) -> Silence:
    """Check a silence about to be saved and return it with a trimmed name and normalized matchers.

    Raises:
        ValidationError: listing every problem (``name``, ``reason``, ``ends_at``, ``matchers.<key>``).
    """
    details: list[dict[str, Any]] = []
    name = silence.name.strip()
    if not NAME_MIN <= len(name) <= NAME_MAX:
        details.append({"loc": "name", "message": f"name must be {NAME_MIN}–{NAME_MAX} characters"})
    if len(silence.reason) > REASON_MAX:
        details.append({"loc": "reason", "message": f"reason must be at most {REASON_MAX} characters"})
    if silence.ends_at <= silence.starts_at:
        details.append({"loc": "ends_at", "message": "ends_at must be after starts_at"})
    matchers: dict[str, Any] = {}
    try:
        matchers = normalize_matchers(silence.matchers)
    except ValidationError as exc:
        details.extend(exc.details)
    if details:
        raise ValidationError("invalid silence", details=details)
    return attrs.evolve(silence, name=name, matchers=matchers)


@attrs.frozen(kw_only=True)
class SilenceRelease:
    """An active application to end, and whether its alert goes back to ``firing``."""

    application: SilenceApplication
    reason: str
    """The silence's status (``expired``, ``disabled``, ``scheduled``) or ``deleted``."""
    reactivate: bool
    """``reactivate_on_end`` of the silence, and no other active silence still holds the alert."""


@attrs.frozen(kw_only=True)
class SilenceReconciliation:
    """What one lifecycle tick must do."""

    started: tuple[Silence, ...] = ()
    """Active silences not reconciled since they started: set their ``reconciled_at`` to now."""
    releases: tuple[SilenceRelease, ...] = ()
    """Active applications whose silence is no longer active."""

    @property
    def to_apply(self) -> tuple[Silence, ...]:
        """Started silences with ``apply_to_existing``: silence their team's matching open alerts."""
        return tuple(s for s in self.started if s.apply_to_existing)

    @property
    def ended_silence_ids(self) -> tuple[int, ...]:
        """Ids of the silences whose applications are released, ascending."""
        return tuple(sorted({r.application.silence_id for r in self.releases}))


def reconcile_silences(
    silences: Sequence[Silence],
    applications: Sequence[SilenceApplication],
    *,
    now: dt.datetime,
) -> SilenceReconciliation:
    """Decide which silences started and which applications to release at ``now``.

    Args:
        silences: Silences to consider: at least the active ones and those referenced by
            ``applications`` (a referenced silence missing here counts as deleted).
        applications: The active silence applications (inactive ones are ignored).
        now: The tick's time.

    A silence has *started* when it is active and its ``reconciled_at`` is unset or earlier than
    its ``starts_at``; the caller stores ``reconciled_at = now`` for each (and clears
    ``reconciled_at`` when a user edits the silence's times, so a re-opened window applies
    again). Ends are read from the applications rather than from a time window, so expiry,
    disabling and deletion are all caught, however late the tick runs.
    """
    by_id = {s.id: s for s in silences}
    started = tuple(
        s
        for s in sorted(silences, key=lambda s: s.id)
        if is_active(s, now) and (s.reconciled_at is None or s.reconciled_at < s.starts_at)
    )
    live = [a for a in applications if a.active]

    def still_holds(application: SilenceApplication) -> bool:
        silence = by_id.get(application.silence_id)
        return silence is not None and is_active(silence, now)

    held = {a.alert_id for a in live if still_holds(a)}
    releases: list[SilenceRelease] = []
    for application in sorted(live, key=lambda a: a.id):
        if still_holds(application):
            continue
        silence = by_id.get(application.silence_id)
        if silence is None or silence.deleted_at is not None:
            reason = RELEASE_DELETED
        else:
            reason = silence_status(silence, now)
        reactivate_on_end = silence.reactivate_on_end if silence is not None else True
        releases.append(
            SilenceRelease(
                application=application,
                reason=reason,
                reactivate=reactivate_on_end and application.alert_id not in held,
            )
        )
    return SilenceReconciliation(started=started, releases=tuple(releases))
