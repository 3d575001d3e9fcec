"""Route selection for one intake item (SPEC S3.3), with its explain-trace steps (S3.5).

The caller loads the data (the token's route, the candidate routes, teams and groups) and
:func:`select_route` decides. A routing failure is an outcome, not an exception: the decision
carries ``routing_error`` with the exact IncidentRelay-compatible text, and the trace steps.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

import attrs

from relay_core.domain.matchers import MatchContext, matches
from relay_core.domain.model import Group, NormalizedAlert, Route, Team, TraceStep

STAGE: Final = "routing"

ROUTE_FORCED_BY_TOKEN: Final = "route_forced_by_token"  # noqa: S105  # a trace code, not a secret
ROUTE_DISABLED: Final = "route_disabled"
ROUTE_SOURCE_MISMATCH: Final = "route_source_mismatch"
ROUTE_MATCHERS_NOT_MATCHED: Final = "route_matchers_not_matched"
ROUTE_MATCHED: Final = "route_matched"
ROUTE_NOT_MATCHED: Final = "route_not_matched"

ERROR_ROUTE_INACTIVE: Final = "route from intake token is disabled or inactive"
ERROR_MATCHERS_NOT_MATCHED: Final = "alert does not match route matchers"
ERROR_NO_ROUTE: Final = "no enabled route matched alert labels"


def source_mismatch_error(route_source: str, alert_source: str) -> str:
    """The routing error of a token-forced route whose source differs from the alert's."""
    return f"route source '{route_source}' does not match alert source '{alert_source}'"


def team_not_found_error(team_slug: str) -> str:
    """The routing error of a ``team_slug`` hint naming no active team."""
    return f"team '{team_slug}' was not found or is inactive"


class NoHint(enum.Enum):
    """Type of :data:`NO_HINT`."""

    NO_HINT = "no_hint"


#: ``hint_team`` default: no ``team_slug`` hint takes part in the selection.
NO_HINT: Final = NoHint.NO_HINT

TeamLookup = Callable[[int], Team | None] | Mapping[int, Team]
GroupLookup = Callable[[int], Group | None] | Mapping[int, Group]

_T = TypeVar("_T")


def _lookup(lookup: Callable[[int], _T | None] | Mapping[int, _T], key: int) -> _T | None:
    if isinstance(lookup, Mapping):
        return lookup.get(key)
    return lookup(key)


@attrs.frozen(kw_only=True)
class RouteDecision:
    """The chosen route and team, or the routing error; plus the routing trace steps."""

    route: Route | None
    team: Team | None = None
    routing_error: str | None = None
    steps: tuple[TraceStep, ...] = ()

    @property
    def ok(self) -> bool:
        return self.route is not None


def _team_active(team: Team | None) -> bool:
    return team is not None and team.active and team.deleted_at is None


def _group_active(group: Group | None) -> bool:
    return group is not None and group.active and group.deleted_at is None


def _route_enabled(route: Route) -> bool:
    return route.enabled and route.deleted_at is None


def _route_data(route: Route) -> dict[str, object]:
    return {"route_id": route.id, "route_name": route.name, "team_id": route.team_id}


def select_route(
    alert: NormalizedAlert,
    *,
    forced_route: Route | None = None,
    candidates: Sequence[Route] = (),
    team_lookup: TeamLookup,
    group_lookup: GroupLookup,
    scope_team_id: int | None = None,
    hint_team: Team | NoHint | None = NO_HINT,
    first_position: int = 0,
) -> RouteDecision:
    """Choose the route of ``alert`` (S3.3).

    Args:
        alert: The normalized intake item.
        forced_route: The route owning the intake token, when the request used one (step 1);
            ``candidates`` and hints are then ignored.
        candidates: Routes to choose from otherwise: those the caller may route to (step 3, "all
            enabled routes with that source the token's user can write to"). Disabled or deleted
            routes, other sources and routes of inactive teams or groups are skipped here.
        team_lookup: Team by id (a mapping or a function); a missing team counts as inactive.
        group_lookup: Group by id, likewise.
        scope_team_id: The team an API token is bound to (step 2): only its routes qualify.
        hint_team: The team named by ``alert.team_slug`` (step 3): ``None`` when no team has that
            slug, :data:`NO_HINT` when there is no hint to honour.
        first_position: ``position`` of the first returned trace step.
    """
    steps: list[TraceStep] = []

    def step(code: str, status: str, title: str, data: Mapping[str, object], message: str = "") -> None:
        steps.append(
            TraceStep(
                position=first_position + len(steps),
                stage=STAGE,
                code=code,
                status=status,
                title=title,
                message=message,
                data=data,
            )
        )

    def fail(code: str, error: str, title: str, data: Mapping[str, object]) -> RouteDecision:
        step(code, "failed", title, data, message=error)
        return RouteDecision(route=None, routing_error=error, steps=tuple(steps))

    if forced_route is not None:
        route = forced_route
        step(ROUTE_FORCED_BY_TOKEN, "ok", "Route chosen by the intake token", _route_data(route))
        team = _lookup(team_lookup, route.team_id)
        group = _lookup(group_lookup, team.group_id) if team is not None else None
        if not (_route_enabled(route) and _team_active(team) and _group_active(group)):
            return fail(
                ROUTE_DISABLED,
                ERROR_ROUTE_INACTIVE,
                "Route, team or group is disabled",
                {
                    "route_enabled": _route_enabled(route),
                    "team_active": _team_active(team),
                    "group_active": _group_active(group),
                },
            )
        if route.source != alert.source:
            return fail(
                ROUTE_SOURCE_MISMATCH,
                source_mismatch_error(route.source, alert.source),
                "Route source differs from the alert source",
                {"route_source": route.source, "alert_source": alert.source},
            )
        if not matches(route.matchers, MatchContext.for_alert(alert, team=team, route=route)):
            return fail(
                ROUTE_MATCHERS_NOT_MATCHED,
                ERROR_MATCHERS_NOT_MATCHED,
                "Alert does not match the route matchers",
                {"route_id": route.id, "matchers": route.matchers},
            )
        step(ROUTE_MATCHED, "ok", f"Routed to {route.name}", _route_data(route))
        return RouteDecision(route=route, team=team, steps=tuple(steps))

    team_filter: int | None = scope_team_id
    if scope_team_id is None and isinstance(hint_team, Team):
        if not (_team_active(hint_team) and _group_active(_lookup(group_lookup, hint_team.group_id))):
            return fail(
                ROUTE_NOT_MATCHED,
                team_not_found_error(hint_team.slug),
                "Team hint names no active team",
                {"team_slug": hint_team.slug},
            )
        team_filter = hint_team.id
    elif scope_team_id is None and hint_team is None and alert.team_slug:
        return fail(
            ROUTE_NOT_MATCHED,
            team_not_found_error(alert.team_slug),
            "Team hint names no active team",
            {"team_slug": alert.team_slug},
        )

    evaluated: list[int] = []
    for route in sorted(candidates, key=lambda r: r.id):
        if not _route_enabled(route) or route.source != alert.source:
            continue
        if team_filter is not None and route.team_id != team_filter:
            continue
        team = _lookup(team_lookup, route.team_id)
        if team is None or not _team_active(team) or not _group_active(_lookup(group_lookup, team.group_id)):
            continue
        evaluated.append(route.id)
        if matches(route.matchers, MatchContext.for_alert(alert, team=team, route=route)):
            step(
                ROUTE_MATCHED,
                "ok",
                f"Routed to {route.name}",
                {**_route_data(route), "not_matched_route_ids": evaluated[:-1]},
            )
            return RouteDecision(route=route, team=team, steps=tuple(steps))
    return fail(ROUTE_NOT_MATCHED, ERROR_NO_ROUTE, "No route matched", {"not_matched_route_ids": evaluated})
