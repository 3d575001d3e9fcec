"""Values the use cases return to the shells."""

from __future__ import annotations

from typing import Any

import attrs

from relay_core.domain import constants as c


@attrs.frozen(kw_only=True)
class IntakeAuth:
    """Who posted an intake request (SPEC S2.2): a route token, or a personal API token."""

    route_id: int | None = None
    user_id: int | None = None
    team_id: int | None = None


@attrs.frozen(kw_only=True)
class ItemResult:
    """One element of the intake response array (SPEC S2.15)."""

    outcome: str
    processing_status: str
    status: str | None = None
    group_id: int | None = None
    alert_id: int | None = None
    reason: str | None = None
    trace_id: str | None = None
    routing_error: str | None = None
    team_id: int | None = None
    team_slug: str | None = None
    route_id: int | None = None
    rotation_id: int | None = None
    assignee: str | None = None
    category: str | None = None
    dedup_key: str | None = None
    alert_url: str | None = None
    error: str | None = None

    @property
    def created(self) -> bool:
        return self.outcome == c.OUTCOME_CREATED

    def as_dict(self) -> dict[str, Any]:
        body = {
            "created": self.created,
            "id": self.group_id,
            "group_id": self.group_id,
            "alert_id": self.alert_id,
            "status": self.status,
            "outcome": self.outcome,
            "processing_status": self.processing_status,
            "reason": self.reason,
            "trace_id": self.trace_id,
            "routing_error": self.routing_error,
            "team_id": self.team_id,
            "team_slug": self.team_slug,
            "route_id": self.route_id,
            "rotation_id": self.rotation_id,
            "assignee": self.assignee,
            "category": self.category,
            "dedup_key": self.dedup_key,
            "alert_url": self.alert_url,
        }
        if self.error is not None:
            body["error"] = self.error
        return body


def intake_status_code(results: list[ItemResult]) -> int:
    """HTTP status of an intake answer from its items (SPEC S2.15)."""
    completed = sum(r.processing_status == c.PROCESSING_COMPLETED for r in results)
    stopped = sum(r.processing_status == c.PROCESSING_STOPPED for r in results)
    failed = sum(r.processing_status == c.PROCESSING_FAILED for r in results)
    if not failed:
        return 200 if completed else 202
    if not completed and not stopped:
        return 400
    return 207


@attrs.frozen(kw_only=True)
class ActionResult:
    """Outcome of an acknowledge or resolve."""

    group_id: int
    status: str
    changed: bool
    result: str = "applied"
