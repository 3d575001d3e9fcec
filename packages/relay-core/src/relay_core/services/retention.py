"""Data retention (SPEC S10.7): one cleanup pass over old, finished data.

What goes, each rule off when its number of days is 0:

* closed (resolved or merged) alert groups whose ``resolved_at`` is older than ``alert_days``,
  with everything hanging off them: alerts, events, explain traces, silence applications,
  intents and their delivery attempts, delivery records and their callback events, action
  tokens;
* standalone explain traces (not attached to a group: routing failures, rejected items, dry
  runs) that finished more than ``explain_trace_days`` ago;
* finished intents (sent, failed, skipped, cancelled) older than ``delivery_days``, with their
  attempts;
* expired callback receipts and action tokens (always).

Audit logs and open groups are never deleted. Work is done in batches of ``batch_size`` rows,
one transaction per batch, so a long pass never holds a large transaction. With
``apply=False`` nothing is written and the report counts what a pass would delete.

``relay retention run`` calls :func:`run_retention`; the scheduler's ``retention_cleanup`` job
does the same every ``retention.cleanup_interval_seconds`` under its lease::

    run_retention(relay.uow_factory, RetentionPolicy.of(settings.retention), now=now)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

import attrs

from relay_core.domain import constants as c
from relay_core.ports.storage import UnitOfWork, UnitOfWorkFactory

__all__ = ["RETENTION_KINDS", "RetentionPolicy", "RetentionReport", "run_retention"]

#: Row kinds counted by a pass, in report order (repository names of the storage port).
RETENTION_KINDS: Final = (
    "alert_groups",
    "alerts",
    "events",
    "traces",
    "silence_applications",
    "intents",
    "attempts",
    "notifications",
    "callbacks",
    "action_tokens",
    "callback_receipts",
)

_DAY: Final = dt.timedelta(days=1)


@attrs.frozen(kw_only=True)
class RetentionPolicy:
    """The ``retention`` settings section; 0 days switches a rule off."""

    alert_days: int = 0
    explain_trace_days: int = 7
    delivery_days: int = 90
    batch_size: int = 500

    @classmethod
    def of(cls, section: Any, **overrides: int | None) -> RetentionPolicy:
        """The policy of a ``retention`` settings section; ``overrides`` that are not None win."""
        values = {
            name: getattr(section, name)
            for name in ("alert_days", "explain_trace_days", "delivery_days", "batch_size")
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __attrs_post_init__(self) -> None:
        for name in ("alert_days", "explain_trace_days", "delivery_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


@attrs.define
class RetentionReport:
    """Rows deleted (or, in a dry run, that would be deleted) per kind."""

    applied: bool
    now: dt.datetime
    cutoffs: dict[str, dt.datetime | None]
    counts: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(RETENTION_KINDS, 0))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None

        return {
            "applied": self.applied,
            "now": iso(self.now),
            "cutoffs": {k: iso(v) for k, v in self.cutoffs.items()},
            "counts": dict(self.counts),
            "total": self.total,
        }


def _cutoff(now: dt.datetime, days: int) -> dt.datetime | None:
    return now - days * _DAY if days > 0 else None


async def run_retention(
    uow_factory: UnitOfWorkFactory,
    policy: RetentionPolicy,
    *,
    now: dt.datetime,
    apply: bool = True,
) -> RetentionReport:
    """Run one cleanup pass (or count it, with ``apply=False``) and report the rows per kind."""
    report = RetentionReport(
        applied=apply,
        now=now,
        cutoffs={
            "alert_groups": _cutoff(now, policy.alert_days),
            "traces": _cutoff(now, policy.explain_trace_days),
            "intents": _cutoff(now, policy.delivery_days),
            "expired": now,
        },
    )
    pass_ = _Pass(uow_factory, policy.batch_size, report)
    group_cutoff = report.cutoffs["alert_groups"]
    if group_cutoff is not None:
        await pass_.groups(group_cutoff)
    trace_cutoff = report.cutoffs["traces"]
    if trace_cutoff is not None:
        await pass_.simple("traces", group_id=None, finished_at__lt=trace_cutoff)
    intent_cutoff = report.cutoffs["intents"]
    if intent_cutoff is not None:
        await pass_.intents(intent_cutoff)
    await pass_.simple("callback_receipts", expires_at__lt=now)
    await pass_.simple("action_tokens", expires_at__lt=now)
    return report


@attrs.define
class _Pass:
    uow_factory: UnitOfWorkFactory
    batch: int
    report: RetentionReport
    seen: dict[str, set[int]] = attrs.field(factory=dict)
    """Dry run: ids already counted, so a row two rules would delete is counted once."""

    @property
    def apply(self) -> bool:
        return self.report.applied

    async def _remove(self, uow: UnitOfWork, kind: str, ids: Sequence[int]) -> list[int]:
        """Delete (or, in a dry run, count) the rows; returns the ids not handled before."""
        if self.apply:
            repo = getattr(uow, kind)
            for row_id in ids:
                await repo.delete(row_id)
            fresh = list(ids)
        else:
            seen = self.seen.setdefault(kind, set())
            fresh = [i for i in ids if i not in seen]
            seen.update(fresh)
        self.report.counts[kind] += len(fresh)
        return fresh

    async def _ids(self, uow: UnitOfWork, kind: str, offset: int, **where: Any) -> list[int]:
        repo = getattr(uow, kind)
        rows = await repo.find(order_by="id", limit=self.batch, offset=offset, **where)
        return [row.id for row in rows]

    async def _children(self, uow: UnitOfWork, kind: str, **where: Any) -> list[int]:
        """Every id of ``kind`` matching ``where`` (children of one batch), page by page."""
        found: list[int] = []
        while True:
            ids = await self._ids(uow, kind, len(found), **where)
            found += ids
            if len(ids) < self.batch:
                return found

    async def simple(self, kind: str, **where: Any) -> None:
        """Rows of ``kind`` matching ``where``, no children."""
        offset = 0
        while True:
            async with self.uow_factory() as uow:
                ids = await self._ids(uow, kind, 0 if self.apply else offset, **where)
                await self._remove(uow, kind, ids)
                await uow.commit()
            offset += len(ids)
            if len(ids) < self.batch:
                return

    async def intents(self, cutoff: dt.datetime) -> None:
        """Finished intents created before ``cutoff``, with their attempts."""
        offset = 0
        while True:
            async with self.uow_factory() as uow:
                ids = await self._ids(
                    uow,
                    "intents",
                    0 if self.apply else offset,
                    status__in=sorted(c.INTENT_FINAL),
                    created_at__lt=cutoff,
                )
                fresh = await self._remove(uow, "intents", ids)
                if fresh:
                    attempts = await self._children(uow, "attempts", intent_id__in=fresh)
                    await self._remove(uow, "attempts", attempts)
                await uow.commit()
            offset += len(ids)
            if len(ids) < self.batch:
                return

    async def groups(self, cutoff: dt.datetime) -> None:
        """Closed groups resolved before ``cutoff``, with every row that belongs to them."""
        offset = 0
        while True:
            async with self.uow_factory() as uow:
                ids = await self._ids(
                    uow,
                    "alert_groups",
                    0 if self.apply else offset,
                    status__in=sorted(c.CLOSED_GROUP_STATUSES),
                    resolved_at__lt=cutoff,
                )
                if ids:
                    await self._group_children(uow, ids)
                await self._remove(uow, "alert_groups", ids)
                await uow.commit()
            offset += len(ids)
            if len(ids) < self.batch:
                return

    async def _group_children(self, uow: UnitOfWork, group_ids: list[int]) -> None:
        for kind in ("alerts", "events", "traces", "silence_applications", "action_tokens"):
            await self._remove(uow, kind, await self._children(uow, kind, group_id__in=group_ids))
        intents = await self._children(uow, "intents", group_id__in=group_ids)
        if intents:
            await self._remove(uow, "attempts", await self._children(uow, "attempts", intent_id__in=intents))
        await self._remove(uow, "intents", intents)
        notifications = await self._children(uow, "notifications", group_id__in=group_ids)
        if notifications:
            callbacks = await self._children(uow, "callbacks", notification_id__in=notifications)
            await self._remove(uow, "callbacks", callbacks)
        await self._remove(uow, "notifications", notifications)
