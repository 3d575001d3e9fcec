"""Built-in categories, category assignment, subscription decisions and the standard preset (S8)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_core.domain.categories import (
    BUILTIN_CATEGORY_DEFINITIONS,
    STANDARD_PRESET,
    assign_category,
    builtin_category,
    message_prefix,
    subscription_decision,
)
from relay_core.domain.matchers import MatchContext, normalize_matchers
from relay_core.domain.model import Category, CategoryRule, Subscription

NOW = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)

INFRA = builtin_category("infrastructure").to_category(id=1)
BILLING = builtin_category("billing").to_category(id=2)
CONFIGURABLE = builtin_category("configurable").to_category(id=3)
CUSTOM = Category(id=4, group_id=7, slug="voice-quality", name="Voice quality")
VISIBLE = (INFRA, BILLING, CONFIGURABLE, CUSTOM)


def ctx(**labels: str) -> MatchContext:
    return MatchContext(labels=labels, severity="critical", source="alertmanager", team_id=10, route_id=5)


def assign(labels: dict[str, str], **kwargs: Any) -> tuple[Category, str, dict[str, Any]]:
    kwargs.setdefault("visible_categories", VISIBLE)
    kwargs.setdefault("rules", ())
    kwargs.setdefault("route_category_id", None)
    category, step = assign_category(labels, ctx=ctx(**labels), **kwargs)
    assert step.stage == "category"
    return category, step.code, dict(step.data)


# --- built-ins ---------------------------------------------------------------------------


def test_builtins_are_infrastructure_billing_configurable() -> None:
    """The three built-ins ship in order, global, with configurable presented as advisory."""
    assert [d.slug for d in BUILTIN_CATEGORY_DEFINITIONS] == ["infrastructure", "billing", "configurable"]
    assert [d.presentation for d in BUILTIN_CATEGORY_DEFINITIONS] == ["incident", "incident", "advisory"]
    assert [d.status_page_mode for d in BUILTIN_CATEGORY_DEFINITIONS] == ["manual", "manual", "never"]
    assert (INFRA.group_id, INFRA.name, INFRA.enabled) == (None, "Infrastructure", True)
    assert all(
        d.description and d.included_examples and d.excluded_examples for d in BUILTIN_CATEGORY_DEFINITIONS
    )


def test_unknown_builtin_slug_raises_key_error() -> None:
    """Asking for a built-in that does not exist is a programming error."""
    with pytest.raises(KeyError):
        builtin_category("marketing")


def test_message_prefix_depends_on_presentation() -> None:
    """Advisory categories prefix `[Advisory]`, others their name in brackets."""
    assert message_prefix(CONFIGURABLE) == "[Advisory]"
    assert message_prefix(BILLING) == "[Billing]"


# --- assignment --------------------------------------------------------------------------

RULES = (
    CategoryRule(id=1, group_id=7, position=2, matchers={"team": "payments"}, category_id=BILLING.id),
    CategoryRule(
        id=2, group_id=7, position=1, matchers={"ivr": {"exists": True}}, category_id=CONFIGURABLE.id
    ),
)


def test_category_label_naming_a_visible_slug_wins() -> None:
    """The `category` label beats rules and the route default when it names a visible category."""
    category, code, data = assign(
        {"category": " Billing ", "ivr": "x"}, rules=RULES, route_category_id=CUSTOM.id
    )
    assert (category, code) == (BILLING, "category_from_label")
    assert data == {"category_id": 2, "category": "billing"}


def test_category_label_may_name_a_disabled_category() -> None:
    """Disabling a category stops its deliveries, not its assignment."""
    disabled = attrs.evolve(BILLING, enabled=False)
    category, code, _ = assign({"category": "billing"}, visible_categories=(INFRA, disabled))
    assert (category, code) == (disabled, "category_from_label")


def test_unknown_or_invisible_label_slug_falls_through() -> None:
    """A label naming no visible (or a deleted) category is ignored."""
    deleted = attrs.evolve(CUSTOM, deleted_at=NOW)
    assert assign({"category": "nope"})[1] == "category_default"
    assert assign({"category": "voice-quality"}, visible_categories=(INFRA, deleted))[1] == "category_default"


def test_group_category_beats_builtin_with_same_slug() -> None:
    """When a group's own category shares a slug with a built-in, the closer scope wins."""
    own = Category(id=9, group_id=7, slug="billing", name="Our billing")
    category, _, _ = assign({"category": "billing"}, visible_categories=(BILLING, own))
    assert category == own


def test_first_enabled_matching_rule_by_position_wins() -> None:
    """Rules are tried by position; the first enabled match assigns its category."""
    category, code, data = assign(
        {"team": "payments", "ivr": "main"}, rules=RULES, route_category_id=CUSTOM.id
    )
    assert (category, code) == (CONFIGURABLE, "category_from_rule")
    assert data["rule_id"] == 2


def test_disabled_rules_and_rules_to_invisible_categories_are_skipped() -> None:
    """A disabled rule, or one pointing at a category the group cannot see, does not assign."""
    rules = (
        attrs.evolve(RULES[1], enabled=False),
        CategoryRule(id=3, group_id=7, position=0, matchers={}, category_id=999),
        RULES[0],
    )
    category, code, _ = assign({"team": "payments", "ivr": "main"}, rules=rules)
    assert (category, code) == (BILLING, "category_from_rule")


def test_route_default_category_comes_third() -> None:
    """Without a label or a rule match, the route's category is used."""
    category, code, _ = assign({"team": "infra"}, rules=RULES, route_category_id=CUSTOM.id)
    assert (category, code) == (CUSTOM, "category_from_route")


def test_infrastructure_is_the_fallback() -> None:
    """With nothing else, the visible built-in infrastructure category is assigned."""
    category, code, _ = assign({}, route_category_id=12345)
    assert (category, code) == (INFRA, "category_default")


def test_fallback_without_visible_infrastructure_is_the_builtin_definition() -> None:
    """When the caller passed no infrastructure row, the built-in definition stands in."""
    category, code, _ = assign({}, visible_categories=(CUSTOM,))
    assert (category.slug, category.id, code) == ("infrastructure", 0, "category_default")


@given(
    st.sampled_from([None, "billing", "voice-quality", "unknown"]),
    st.booleans(),
    st.sampled_from([None, CUSTOM.id, 999]),
)
def test_assignment_follows_first_match_order(
    label: str | None, rule_hits: bool, route_cat: int | None
) -> None:
    """Label, then rule, then route, then the default: the earliest applicable source decides."""
    labels = {"category": label} if label else {}
    if rule_hits:
        labels["team"] = "payments"
    _, code, _ = assign(labels, rules=RULES[:1], route_category_id=route_cat)
    if label in ("billing", "voice-quality"):
        assert code == "category_from_label"
    elif rule_hits:
        assert code == "category_from_rule"
    elif route_cat == CUSTOM.id:
        assert code == "category_from_route"
    else:
        assert code == "category_default"


# --- subscription decisions --------------------------------------------------------------


def sub(**overrides: Any) -> Subscription:
    values: dict[str, Any] = {
        "id": 1,
        "group_id": 7,
        "category_id": BILLING.id,
        "role_group_id": 3,
        "name": "Billing admins",
        "channel_types": ("email",),
    }
    values.update(overrides)
    return Subscription(**values)


def decide(
    subscription: Subscription,
    *,
    category: Category = BILLING,
    event: str = "created",
    silenced: bool = False,
    **labels: str,
) -> str | None:
    return subscription_decision(
        subscription, category=category, ctx=ctx(**labels), event=event, group_silenced=silenced
    )


def test_unfiltered_subscription_delivers() -> None:
    """An enabled subscription without filters delivers its subscribed events."""
    assert decide(sub()) is None
    assert decide(sub(), event="resolved") is None


@pytest.mark.parametrize(
    ("subscription", "kwargs", "reason"),
    [
        (sub(), {"category": attrs.evolve(BILLING, enabled=False)}, "category_disabled"),
        (sub(), {"category": attrs.evolve(BILLING, deleted_at=NOW)}, "category_disabled"),
        (sub(enabled=False), {}, "subscription_disabled"),
        (sub(deleted_at=NOW), {}, "subscription_disabled"),
        (sub(), {"event": "acknowledged"}, "event_not_subscribed"),
        (sub(severities=("warning", "info")), {}, "severity_filtered"),
        (sub(regions=("eu-west",)), {"region": "us-east"}, "region_filtered"),
        (sub(regions=("eu-west",)), {}, "region_filtered"),
        (sub(matchers={"billing_event": "low_balance"}), {"billing_event": "refund"}, "matchers_not_matched"),
        (sub(), {"silenced": True}, "silenced"),
    ],
)
def test_skip_reasons(subscription: Subscription, kwargs: dict[str, Any], reason: str) -> None:
    """Each failed condition of S8.5 names its own skip reason."""
    assert decide(subscription, **kwargs) == reason


def test_filters_pass_when_they_match() -> None:
    """Matching severity, region (case-insensitive) and matchers let the delivery through."""
    subscription = sub(
        severities=("Critical",),
        regions=("EU-West",),
        matchers={"billing_event": "low_balance"},
        events=("created", "escalated"),
    )
    assert decide(subscription, event="escalated", region="eu-west", billing_event="low_balance") is None


@given(
    category_on=st.booleans(),
    sub_on=st.booleans(),
    subscribed=st.booleans(),
    severity_ok=st.booleans(),
    region_ok=st.booleans(),
    matchers_ok=st.booleans(),
    silenced=st.booleans(),
)
def test_decision_is_the_first_failed_check(
    category_on: bool,
    sub_on: bool,
    subscribed: bool,
    severity_ok: bool,
    region_ok: bool,
    matchers_ok: bool,
    silenced: bool,
) -> None:
    """The reason is that of the first failing check in S8.5 order, and `None` only when all pass."""
    subscription = sub(
        enabled=sub_on,
        events=("created",) if subscribed else ("resolved",),
        severities=("critical",) if severity_ok else ("info",),
        regions=("eu",) if region_ok else ("us",),
        matchers={"tier": "gold"} if matchers_ok else {"tier": "silver"},
    )
    reason = decide(
        subscription,
        category=attrs.evolve(BILLING, enabled=category_on),
        silenced=silenced,
        region="eu",
        tier="gold",
    )
    checks = [
        (category_on, "category_disabled"),
        (sub_on, "subscription_disabled"),
        (subscribed, "event_not_subscribed"),
        (severity_ok, "severity_filtered"),
        (region_ok, "region_filtered"),
        (matchers_ok, "matchers_not_matched"),
        (not silenced, "silenced"),
    ]
    assert reason == next((name for ok, name in checks if not ok), None)


# --- standard preset ---------------------------------------------------------------------

EXPECTED_ROWS = [
    # (role group, category, channel types, channel kinds, requires_opt_in, matchers)
    ("org-admins", "infrastructure", ("email", "sms"), ("slack", "teams", "webhook"), False, {}),
    ("org-admins", "billing", ("email",), ("slack", "teams"), False, {}),
    ("org-admins", "configurable", ("email",), ("slack", "teams", "webhook"), True, {}),
    ("billing-admins", "billing", ("email",), ("slack", "teams"), False, {}),
    ("billing-admins", "billing", ("sms",), (), False, {"billing_event": "low_balance"}),
    ("tech-devops", "infrastructure", ("email",), ("slack", "teams", "webhook"), False, {}),
    ("tech-devops", "configurable", ("email",), ("slack", "teams", "webhook"), False, {}),
    ("support-managers", "infrastructure", ("email",), ("slack", "teams"), False, {}),
    ("support-managers", "configurable", ("email",), ("slack", "teams"), False, {}),
]


def test_preset_role_groups() -> None:
    """The preset creates the four S8.6 role groups."""
    assert [(g.slug, g.name) for g in STANDARD_PRESET.role_groups] == [
        ("org-admins", "Org Admins"),
        ("billing-admins", "Billing Admins"),
        ("tech-devops", "Tech/DevOps"),
        ("support-managers", "Support Managers"),
    ]


def test_preset_subscriptions_follow_the_s8_6_table() -> None:
    """Every row of the S8.6 table is one subscription, the Billing Admins SMS row separately."""
    rows = [
        (
            s.role_group_slug,
            s.category_slug,
            s.channel_types,
            s.channel_kinds,
            s.requires_opt_in,
            dict(s.matchers),
        )
        for s in STANDARD_PRESET.subscriptions
    ]
    assert sorted(rows, key=repr) == sorted(EXPECTED_ROWS, key=repr)


def test_preset_rows_are_individually_identifiable_and_valid() -> None:
    """Row keys are unique (idempotent re-application), names set, matchers valid, role groups known."""
    keys = [s.key for s in STANDARD_PRESET.subscriptions]
    assert len(set(keys)) == len(keys)
    slugs = {g.slug for g in STANDARD_PRESET.role_groups}
    for row in STANDARD_PRESET.subscriptions:
        assert row.role_group_slug in slugs
        assert row.name
        assert normalize_matchers(dict(row.matchers)) == row.matchers


def test_preset_attaches_only_the_channels_the_request_names() -> None:
    """Chat and webhook channels are attached when named; missing ones are simply left out."""
    org_infra = STANDARD_PRESET.subscriptions[0]
    assert org_infra.channel_ids(slack_channel_id=11, teams_channel_id=12, webhook_channel_id=13) == (
        11,
        12,
        13,
    )
    assert org_infra.channel_ids(teams_channel_id=12) == (12,)
    assert org_infra.channel_ids() == ()
    support_infra = next(
        s for s in STANDARD_PRESET.subscriptions if s.key[:2] == ("support-managers", "infrastructure")
    )
    assert support_infra.channel_ids(slack_channel_id=11, webhook_channel_id=13) == (11,)
