"""Route selection (S3.3) and its routing trace steps (S3.5)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_core.domain.model import Group, NormalizedAlert, Route, Team
from relay_core.domain.routing import (
    NO_HINT,
    RouteDecision,
    select_route,
)

NOW = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)

GROUP = Group(id=1, slug="ops", name="Ops")
INFRA = Team(id=10, group_id=1, slug="infra", name="Infrastructure")
PAYMENTS = Team(id=20, group_id=1, slug="payments", name="Payments")
TEAMS = {INFRA.id: INFRA, PAYMENTS.id: PAYMENTS}
GROUPS = {GROUP.id: GROUP}


def alert(**overrides: Any) -> NormalizedAlert:
    values: dict[str, Any] = {
        "source": "alertmanager",
        "dedup_key": "disk-full",
        "title": "Disk is full",
        "severity": "critical",
        "labels": {"alertname": "DiskFull", "env": "prod"},
    }
    values.update(overrides)
    return NormalizedAlert(**values)


def route(id: int, *, team: Team = INFRA, **overrides: Any) -> Route:
    values: dict[str, Any] = {"id": id, "team_id": team.id, "name": f"route-{id}", "source": "alertmanager"}
    values.update(overrides)
    return Route(**values)


def select(item: NormalizedAlert, **kwargs: Any) -> RouteDecision:
    kwargs.setdefault("team_lookup", TEAMS)
    kwargs.setdefault("group_lookup", GROUPS)
    return select_route(item, **kwargs)


def codes(decision: RouteDecision) -> list[tuple[str, str]]:
    return [(s.code, s.status) for s in decision.steps]


# --- token-forced route ------------------------------------------------------------------


def test_token_route_is_used_when_active_same_source_and_matching() -> None:
    """An active token route with the alert's source and matching matchers wins."""
    forced = route(5, matchers={"env": "prod"})
    decision = select(alert(), forced_route=forced, candidates=[route(1)])
    assert decision.ok
    assert decision.route == forced
    assert decision.team == INFRA
    assert decision.routing_error is None
    assert codes(decision) == [("route_forced_by_token", "ok"), ("route_matched", "ok")]
    assert all(s.stage == "routing" for s in decision.steps)


@pytest.mark.parametrize(
    ("forced", "teams", "groups"),
    [
        (route(5, enabled=False), TEAMS, GROUPS),
        (route(5, deleted_at=NOW), TEAMS, GROUPS),
        (route(5), {INFRA.id: attrs.evolve(INFRA, active=False)}, GROUPS),
        (route(5), {INFRA.id: attrs.evolve(INFRA, deleted_at=NOW)}, GROUPS),
        (route(5), {}, GROUPS),
        (route(5), TEAMS, {GROUP.id: attrs.evolve(GROUP, active=False)}),
        (route(5), TEAMS, {}),
    ],
    ids=[
        "route-disabled",
        "route-deleted",
        "team-inactive",
        "team-deleted",
        "team-missing",
        "group-inactive",
        "group-missing",
    ],
)
def test_token_route_must_be_active_with_its_team_and_group(forced: Route, teams: Any, groups: Any) -> None:
    """A disabled route, team or group fails with the IncidentRelay text and no fallback."""
    decision = select(
        alert(), forced_route=forced, candidates=[route(1)], team_lookup=teams, group_lookup=groups
    )
    assert decision.route is None
    assert decision.routing_error == "route from intake token is disabled or inactive"
    assert codes(decision) == [("route_forced_by_token", "ok"), ("route_disabled", "failed")]
    assert decision.steps[-1].message == decision.routing_error


def test_token_route_source_must_equal_alert_source() -> None:
    """A token route of another source names both sources in the error."""
    decision = select(alert(source="zabbix"), forced_route=route(5))
    assert decision.routing_error == "route source 'alertmanager' does not match alert source 'zabbix'"
    assert codes(decision)[-1] == ("route_source_mismatch", "failed")
    assert decision.steps[-1].data == {"route_source": "alertmanager", "alert_source": "zabbix"}


def test_token_route_matchers_are_an_allow_list() -> None:
    """An alert outside the token route's matchers is refused, not sent elsewhere."""
    decision = select(alert(), forced_route=route(5, matchers={"env": "staging"}), candidates=[route(1)])
    assert decision.routing_error == "alert does not match route matchers"
    assert codes(decision)[-1] == ("route_matchers_not_matched", "failed")


def test_token_route_checks_run_in_spec_order() -> None:
    """A disabled route of another source reports the disabled state first."""
    decision = select(alert(source="zabbix"), forced_route=route(5, enabled=False, matchers={"x": "y"}))
    assert decision.routing_error == "route from intake token is disabled or inactive"


def test_team_hint_never_overrides_the_token_route() -> None:
    """A `team_slug` hint, even an unknown one, is ignored when the token names the route."""
    decision = select(alert(team_slug="nobody"), forced_route=route(5), hint_team=None)
    assert decision.route == route(5)


def test_token_route_matchers_see_team_and_route_fields() -> None:
    """Route matchers can address the route's own team and route fields."""
    forced = route(5, matchers={"fields": {"team.slug": "infra", "route.name": "route-5"}, "team_id": 10})
    assert select(alert(), forced_route=forced).ok


# --- candidates ----------------------------------------------------------------------------


def test_first_matching_candidate_by_ascending_id_wins() -> None:
    """Candidates are tried by ascending id whatever order they arrive in."""
    candidates = [
        route(9),
        route(3, matchers={"env": "staging"}),
        route(4, matchers={"alertname": "DiskFull"}),
    ]
    decision = select(alert(), candidates=candidates)
    assert decision.route == candidates[2]
    assert codes(decision) == [("route_matched", "ok")]
    assert decision.steps[0].data["not_matched_route_ids"] == [3]


@given(st.permutations(list(range(1, 7))), st.sets(st.integers(1, 6)))
def test_selection_does_not_depend_on_candidate_order(order: list[int], matching: set[int]) -> None:
    """The chosen route is the lowest-id match for every ordering of the same candidates."""
    candidates = [route(i, matchers={} if i in matching else {"env": "never"}) for i in order]
    decision = select(alert(), candidates=candidates)
    expected = min(matching) if matching else None
    assert (decision.route.id if decision.route else None) == expected


@pytest.mark.parametrize(
    "skipped",
    [
        route(1, enabled=False),
        route(1, deleted_at=NOW),
        route(1, source="zabbix"),
        route(1, team=Team(id=30, group_id=1, slug="gone", name="Gone")),
        route(1, team=PAYMENTS),
    ],
    ids=["disabled", "deleted", "other-source", "unknown-team", "inactive-team"],
)
def test_unusable_candidates_are_skipped(skipped: Route) -> None:
    """Disabled, deleted, other-source routes and routes of inactive teams never win."""
    teams = {INFRA.id: INFRA, PAYMENTS.id: attrs.evolve(PAYMENTS, active=False)}
    decision = select(alert(), candidates=[skipped, route(2)], team_lookup=teams)
    assert decision.route == route(2)


def test_no_match_is_a_routing_error() -> None:
    """When no candidate matches, the item fails with the IncidentRelay text."""
    decision = select(alert(), candidates=[route(1, matchers={"env": "dev"}), route(2, source="zabbix")])
    assert decision.route is None
    assert decision.routing_error == "no enabled route matched alert labels"
    assert codes(decision) == [("route_not_matched", "failed")]
    assert decision.steps[0].data == {"not_matched_route_ids": [1]}


def test_no_candidates_is_a_routing_error() -> None:
    """An empty candidate list fails the same way as a list without a match."""
    assert select(alert()).routing_error == "no enabled route matched alert labels"


def test_team_hint_limits_candidates_to_that_team() -> None:
    """An active hinted team's routes are the only candidates."""
    candidates = [route(1, team=INFRA), route(2, team=PAYMENTS)]
    decision = select(alert(team_slug="payments"), candidates=candidates, hint_team=PAYMENTS)
    assert decision.route == candidates[1]
    assert decision.team == PAYMENTS


def test_unknown_team_hint_is_a_routing_error() -> None:
    """A hint naming no team fails with the slug in the message."""
    decision = select(alert(team_slug="nobody"), candidates=[route(1)], hint_team=None)
    assert decision.routing_error == "team 'nobody' was not found or is inactive"
    assert codes(decision) == [("route_not_matched", "failed")]


@pytest.mark.parametrize(
    ("teams", "groups"),
    [
        ({PAYMENTS.id: attrs.evolve(PAYMENTS, active=False)}, GROUPS),
        ({PAYMENTS.id: attrs.evolve(PAYMENTS, deleted_at=NOW)}, GROUPS),
        (TEAMS, {GROUP.id: attrs.evolve(GROUP, active=False)}),
    ],
)
def test_inactive_team_hint_is_a_routing_error(teams: Any, groups: Any) -> None:
    """A hint naming an inactive team (or a team of an inactive group) fails like an unknown one."""
    hinted = teams.get(PAYMENTS.id, PAYMENTS)
    decision = select(
        alert(team_slug="payments"), candidates=[route(1)], hint_team=hinted, group_lookup=groups
    )
    assert decision.routing_error == "team 'payments' was not found or is inactive"


def test_no_hint_considers_every_candidate() -> None:
    """Without a hint every usable candidate takes part."""
    decision = select(alert(team_slug="nobody"), candidates=[route(2, team=PAYMENTS)], hint_team=NO_HINT)
    assert decision.route == route(2, team=PAYMENTS)


def test_hint_none_without_slug_is_no_hint() -> None:
    """A `None` hint for an alert without `team_slug` does not fail the item."""
    assert select(alert(), candidates=[route(1)], hint_team=None).ok


def test_api_token_team_scope_beats_the_hint() -> None:
    """An API token bound to a team limits candidates to that team and ignores the hint."""
    candidates = [route(1, team=INFRA), route(2, team=PAYMENTS)]
    decision = select(
        alert(team_slug="nobody"), candidates=candidates, scope_team_id=PAYMENTS.id, hint_team=None
    )
    assert decision.route == candidates[1]


def test_lookups_may_be_functions() -> None:
    """Team and group lookups accept callables as well as mappings."""
    decision = select(alert(), candidates=[route(1)], team_lookup=TEAMS.get, group_lookup=GROUPS.get)
    assert decision.team == INFRA


def test_step_positions_start_where_the_caller_asks() -> None:
    """Trace steps are numbered from `first_position` upwards."""
    decision = select(alert(), forced_route=route(5), first_position=3)
    assert [s.position for s in decision.steps] == [3, 4]
