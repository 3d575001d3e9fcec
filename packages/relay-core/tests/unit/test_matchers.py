"""The S3.4 matcher language: value forms, reserved keys, derived labels, validation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from relay_core.domain.errors import ValidationError
from relay_core.domain.matchers import MatchContext, matches, normalize_matchers
from relay_core.domain.model import Category, NormalizedAlert, Route, Team

# --- strategies --------------------------------------------------------------------------

TEXTS = st.sampled_from(["x", "y", "xy", "", "1", "true"])
SCALARS = st.one_of(TEXTS, st.integers(0, 2), st.booleans())
PATTERNS = st.sampled_from(["x", "^x$", "y$", ".", "^$", "1", "X"])
LABEL_NAMES = st.sampled_from(["a", "b", "severity", "team_id"])


def _op_forms() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        PATTERNS.map(lambda p: {"op": "regex", "value": p}),
        st.tuples(st.sampled_from(["contains", "not_contains"]), TEXTS).map(
            lambda t: {"op": t[0], "value": t[1]}
        ),
        st.tuples(
            st.sampled_from(["equals", "eq", "not_equals", "ne", "neq", "EQ"]),
            st.one_of(SCALARS, st.lists(SCALARS, max_size=3)),
        ).map(lambda t: {"op": t[0], "value": t[1]}),
    )


BASE_FORMS = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    PATTERNS.map(lambda p: {"regex": p}),
    TEXTS.map(lambda v: {"contains": v}),
    st.booleans().map(lambda b: {"exists": b}),
    _op_forms(),
)
FORMS = st.recursive(BASE_FORMS, lambda inner: inner.map(lambda f: {"not": f}), max_leaves=3)

CONTEXTS = st.builds(
    MatchContext,
    labels=st.dictionaries(LABEL_NAMES, TEXTS, max_size=4),
    severity=st.sampled_from(["critical", "warning", "info"]),
    status=st.sampled_from(["firing", "resolved"]),
    source=st.sampled_from(["alertmanager", "zabbix"]),
    title=TEXTS,
    team_id=st.one_of(st.none(), st.integers(1, 2)),
    route_id=st.one_of(st.none(), st.integers(1, 2)),
    category=st.one_of(st.none(), st.sampled_from(["billing", "infrastructure"])),
)


def ctx(**labels: str) -> MatchContext:
    return MatchContext(labels=labels, severity="warning", source="alertmanager", title="Disk is full")


# --- properties --------------------------------------------------------------------------


@given(CONTEXTS)
def test_empty_matcher_matches_everything(context: MatchContext) -> None:
    """`{}`, `None` and `[]` match every context."""
    assert matches({}, context)
    assert matches(None, context)
    assert matches([], context)


@given(FORMS, LABEL_NAMES, CONTEXTS)
def test_not_negates_any_value_form(form: Any, name: str, context: MatchContext) -> None:
    """Wrapping a value form in `not` inverts its result, absent labels included."""
    assert matches({name: {"not": form}}, context) is not matches({name: form}, context)


@given(FORMS, LABEL_NAMES, CONTEXTS)
def test_flat_key_labels_key_and_fields_path_agree(form: Any, name: str, context: MatchContext) -> None:
    """A flat key, `labels.<name>` and `fields["labels.<name>"]` are the same label matcher."""
    flat = matches({name: form}, context)
    assert matches({"labels": {name: form}}, context) is flat
    assert matches({"fields": {f"labels.{name}": form}}, context) is flat


@given(FORMS, FORMS, CONTEXTS)
def test_conditions_are_anded(first: Any, second: Any, context: MatchContext) -> None:
    """A matcher with two conditions matches exactly when each alone matches."""
    both = matches({"a": first, "b": second}, context)
    assert both is (matches({"a": first}, context) and matches({"b": second}, context))


@given(FORMS, CONTEXTS)
def test_normalizing_is_idempotent_and_keeps_meaning(form: Any, context: MatchContext) -> None:
    """Normalizing a valid matcher twice changes nothing and never changes what it matches."""
    spec = {"a": form, "title": form}
    once = normalize_matchers(spec)
    assert normalize_matchers(once) == once
    assert matches(once, context) is matches(spec, context)


AM_ITEMS = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "severity", "source", "title"]),
        "value": st.one_of(TEXTS, PATTERNS),
        "is_regex": st.booleans(),
        "is_equal": st.booleans(),
    }
)


def alertmanager_reference(items: list[dict[str, Any]], context: MatchContext) -> bool:
    """An independent reading of S3.4's list form: every item is a (negatable) label matcher."""
    for item in items:
        value = context.effective_labels.get(item["name"])
        if item["is_regex"]:
            ok = value is not None and re.search(item["value"], value) is not None
        else:
            ok = value == item["value"]
        if ok is not item["is_equal"]:
            return False
    return True


@given(st.lists(AM_ITEMS, max_size=3), CONTEXTS)
def test_list_form_is_equivalent_to_its_object_form(
    items: list[dict[str, Any]], context: MatchContext
) -> None:
    """The Alertmanager list form and its converted object form match like the reference reading."""
    reserved = [i["name"] for i in items if i["name"] in ("source", "title")]
    assume(all(reserved.count(n) <= 2 for n in reserved))
    expected = alertmanager_reference(items, context)
    converted = normalize_matchers(items)
    assert isinstance(converted, dict)
    assert matches(converted, context) is expected
    assert matches(items, context) is expected


# --- value forms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "value", "expected"),
    [
        ("DiskFull", "DiskFull", True),
        ("DiskFull", "diskfull", False),
        (8080, "8080", True),
        (True, "true", True),
        (["a", "b"], "b", True),
        (["a", "b"], "c", False),
        ({"regex": "^disk"}, "disk-full", True),
        ({"regex": "full"}, "disk-full", True),
        ({"regex": "^full"}, "disk-full", False),
        ({"contains": "sk-f"}, "disk-full", True),
        ({"contains": "x"}, "disk-full", False),
        ({"not": "a"}, "b", True),
        ({"not": ["a", "b"]}, "b", False),
        ({"op": "regex", "value": "^d"}, "disk", True),
        ({"op": "equals", "value": "disk"}, "disk", True),
        ({"op": "eq", "value": "disk"}, "disk", True),
        ({"op": "not_equals", "value": "disk"}, "disk", False),
        ({"op": "ne", "value": "disk"}, "dusk", True),
        ({"op": "neq", "value": "disk"}, "dusk", True),
        ({"op": "contains", "value": "is"}, "disk", True),
        ({"op": "not_contains", "value": "is"}, "disk", False),
    ],
)
def test_value_forms(form: Any, value: str, expected: bool) -> None:
    """Each value form of S3.4 compares a present label as documented."""
    assert matches({"alertname": form}, ctx(alertname=value)) is expected


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("x", False),
        (["x"], False),
        ({"regex": ".*"}, False),
        ({"contains": ""}, False),
        ({"exists": False}, True),
        ({"exists": True}, False),
        ({"not": "x"}, True),
        ({"op": "ne", "value": "x"}, True),
        ({"op": "not_contains", "value": "x"}, True),
    ],
)
def test_absent_label(form: Any, expected: bool) -> None:
    """A missing label fails positive forms and satisfies negative ones."""
    assert matches({"missing": form}, ctx(alertname="x")) is expected


def test_exists_true_sees_present_label() -> None:
    """`{"exists": true}` matches a label that is present, even with an empty value."""
    assert matches({"alertname": {"exists": True}}, ctx(alertname=""))


def test_values_are_truncated_before_matching() -> None:
    """Only the first 4096 characters of a value take part in matching."""
    long = "a" * 4096 + "TAIL"
    context = ctx(blob=long)
    assert not matches({"blob": {"regex": "TAIL"}}, context)
    assert not matches({"blob": {"contains": "TAIL"}}, context)
    assert not matches({"blob": long}, context)
    assert matches({"blob": "a" * 4096}, context)


# --- reserved keys, fields and derived labels ---------------------------------------------


def test_reserved_keys_address_source_and_title() -> None:
    """`source`, `title` and `title_regex` look at the alert, not at labels of those names."""
    context = MatchContext(labels={"title": "label-title"}, source="zabbix", title="Disk is full")
    assert matches({"source": "zabbix", "title": "Disk is full", "title_regex": "^Disk"}, context)
    assert not matches({"title": "label-title"}, context)
    assert matches({"labels": {"title": "label-title"}}, context)
    assert not matches({"title_regex": "^full"}, context)


def test_derived_labels_fill_in_only_when_absent() -> None:
    """Severity, status, source, category, team and route ids act as labels unless the alert has them."""
    context = MatchContext(
        labels={"status": "from-label"},
        severity="critical",
        status="firing",
        source="grafana",
        category="billing",
        team_id=7,
        route_id=9,
    )
    assert matches(
        {"severity": "critical", "source": "grafana", "category": "billing", "team_id": 7, "route_id": "9"},
        context,
    )
    assert matches({"status": "from-label"}, context)
    assert not matches({"status": "firing"}, context)
    assert matches({"fields": {"status": "firing"}}, context)


def test_for_alert_builds_the_context_from_alert_team_route_and_category() -> None:
    """`MatchContext.for_alert` exposes the alert with its team, route and category slug."""
    alert = NormalizedAlert(
        source="alertmanager",
        dedup_key="k",
        title="Disk is full",
        message="/var is 95% full",
        severity="critical",
        labels={"alertname": "DiskFull"},
        annotations={"runbook": "https://runbooks/disk"},
        payload={"fingerprint": "abc", "nested": {"items": [{"id": 4}]}},
    )
    team = Team(id=3, group_id=1, slug="infra", name="Infrastructure")
    route = Route(id=11, team_id=3, name="prod", source="alertmanager")
    category = Category(id=2, slug="billing", name="Billing")
    context = MatchContext.for_alert(alert, team=team, route=route, category=category)
    spec = {
        "fields": {
            "team.slug": "infra",
            "team.id": 3,
            "team.name": "Infrastructure",
            "route.id": 11,
            "route.name": "prod",
            "route.source": "alertmanager",
            "category": "billing",
            "message": {"contains": "95%"},
            "annotations.runbook": {"regex": "^https://"},
            "payload.fingerprint": "abc",
            "payload.nested.items.0.id": 4,
            "payload.nested.missing": {"exists": False},
            "labels.alertname": "DiskFull",
        }
    }
    assert matches(spec, context)
    assert MatchContext.for_alert(alert, route=route).team_id == 3


def test_payload_objects_compare_as_canonical_json() -> None:
    """A payload object addressed by `fields` is compared as compact, key-sorted JSON."""
    context = MatchContext(payload={"obj": {"b": 1, "a": True}})
    assert matches({"fields": {"payload.obj": '{"a":true,"b":1}'}}, context)


def test_malformed_stored_matcher_matches_nothing() -> None:
    """A matcher that breaks the language (stored before validation) never matches."""
    context = ctx(alertname="x")
    assert not matches({"alertname": {"bogus": 1}}, context)
    assert not matches({"alertname": {"not": {"bogus": 1}}}, context)
    assert not matches({"alertname": {"regex": "("}}, context)
    assert not matches({"fields": {"nowhere": "x"}}, context)
    assert not matches({"labels": "alertname"}, context)
    assert not matches([{"name": "alertname"}], context)


# --- normalization and validation --------------------------------------------------------


def details(spec: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        normalize_matchers(spec)
    assert info.value.code == "validation_error"
    return info.value.details


def test_none_and_empty_list_normalize_to_empty_object() -> None:
    """Missing matchers and an empty list form both mean `{}`."""
    assert normalize_matchers(None) == {}
    assert normalize_matchers([]) == {}
    assert normalize_matchers({}) == {}


def test_list_form_converts_to_object_form() -> None:
    """List items become flat keys, regexes and negations; reserved names go under `labels`."""
    spec = [
        {"name": "alertname", "value": "DiskFull", "is_regex": False, "is_equal": True},
        {"name": "instance", "value": "^db", "is_regex": True, "is_equal": False},
        {"name": "source", "value": "edge"},
        {"name": "job", "value": "node", "isRegex": False, "isEqual": False},
    ]
    assert normalize_matchers(spec) == {
        "alertname": "DiskFull",
        "instance": {"not": {"regex": "^db"}},
        "labels": {"source": "edge"},
        "job": {"not": "node"},
    }


def test_list_form_keeps_repeated_label_conditions() -> None:
    """Up to three conditions on one label survive conversion and are all ANDed."""
    spec = [
        {"name": "host", "value": "^db", "is_regex": True},
        {"name": "host", "value": "test", "is_regex": True, "is_equal": False},
        {"name": "host", "value": "db-9", "is_equal": False},
    ]
    converted = normalize_matchers(spec)
    assert matches(converted, ctx(host="db-1"))
    assert not matches(converted, ctx(host="db-test"))
    assert not matches(converted, ctx(host="db-9"))
    assert details([*spec, {"name": "host", "value": "x"}]) == [
        {"loc": "matchers.3", "message": "too many matchers for label 'host'"}
    ]


def test_operator_names_are_lower_cased() -> None:
    """`op` is accepted in any case and saved in lower case."""
    assert normalize_matchers({"a": {"op": "EQ", "value": "x"}}) == {"a": {"op": "eq", "value": "x"}}


@pytest.mark.parametrize(
    ("spec", "loc", "message"),
    [
        ("alertname=x", "matchers", "matchers must be an object"),
        ({"a": {"bogus": 1}}, "matchers.a", "unknown operator 'bogus'"),
        ({"a": {"op": "like", "value": "x"}}, "matchers.a", "unknown operator 'like'"),
        ({"a": {"op": "eq"}}, "matchers.a", "needs a value"),
        ({"a": {"op": "eq", "value": "x", "flags": "i"}}, "matchers.a", "unexpected keys"),
        ({"a": {"regex": "x", "not": "y"}}, "matchers.a", "exactly one"),
        ({"a": {}}, "matchers.a", "exactly one"),
        ({"a": {"regex": "("}}, "matchers.a", "invalid regex"),
        ({"a": {"regex": "x" * 513}}, "matchers.a", "at most 512 characters"),
        ({"a": {"op": "regex", "value": "["}}, "matchers.a", "invalid regex"),
        ({"title_regex": "(?P<"}, "matchers.title_regex", "invalid regex"),
        ({"a": {"exists": "yes"}}, "matchers.a", "true or false"),
        ({"a": {"contains": ["x"]}}, "matchers.a", "contains expects a string"),
        ({"a": None}, "matchers.a", "null is not a matcher value"),
        ({"a": [{"x": 1}]}, "matchers.a", "list items"),
        ({"a": {"not": {"regex": "("}}}, "matchers.a", "invalid regex"),
        ({"labels": ["a"]}, "matchers.labels", "labels must be an object"),
        ({"labels": {"a": {"bad": 1}}}, "matchers.labels.a", "unknown operator"),
        ({"fields": {"team.colour": "x"}}, "matchers.fields.team.colour", "unknown field path"),
        ({"fields": {"payload..x": "x"}}, "matchers.fields.payload..x", "unknown field path"),
        ({"fields": {"labels": "x"}}, "matchers.fields.labels", "unknown field path"),
        ({"": "x"}, "matchers.", "non-empty"),
        ([{"name": "", "value": "x"}], "matchers.0", "name must be"),
        ([{"name": "a", "value": "x", "is_regex": "yes"}], "matchers.0", "booleans"),
        ([{"name": "a", "value": "x", "regex": True}], "matchers.0", "unexpected keys"),
        (["a=x"], "matchers.0", "expected an object"),
        ([{"name": "a", "value": "(", "is_regex": True}], "matchers.0.value", "invalid regex"),
    ],
)
def test_invalid_matchers_are_rejected_with_their_location(spec: Any, loc: str, message: str) -> None:
    """Bad shapes, operators, regexes and field paths are 400s naming the offending key."""
    found = details(spec)
    assert any(d["loc"] == loc and message in d["message"] for d in found), found


def test_every_problem_is_reported_at_once() -> None:
    """Validation collects one detail per bad condition rather than stopping at the first."""
    found = details({"a": {"regex": "("}, "b": {"nope": 1}, "c": "ok"})
    assert [d["loc"] for d in found] == ["matchers.a", "matchers.b"]


def test_regex_of_exactly_512_characters_is_accepted() -> None:
    """The 512-character regex limit is inclusive."""
    assert normalize_matchers({"a": {"regex": "x" * 512}}) == {"a": {"regex": "x" * 512}}


def test_custom_location_prefix() -> None:
    """Callers validating matchers under another field name get locations under that name."""
    with pytest.raises(ValidationError) as info:
        normalize_matchers({"a": {"bad": 1}}, loc="scope.matchers")
    assert info.value.details[0]["loc"] == "scope.matchers.a"


def test_normalized_result_is_a_fresh_plain_structure() -> None:
    """Normalizing copies the input into plain dicts and lists that callers may store as JSON."""
    source: Mapping[str, Any] = {"a": ("x", "y"), "labels": {"b": {"not": "z"}}}
    out = normalize_matchers(source)
    assert out == {"a": ["x", "y"], "labels": {"b": {"not": "z"}}}
    assert out["labels"] is not source["labels"]
