"""Incident categories and subscriptions: built-ins, assignment, fan-out decisions, the standard preset.

SPEC S8.1 (built-in categories), S8.2 (category assignment), S8.4/S8.5 (which subscription
delivers for a group event) and S8.6 (the standard preset of role groups and subscriptions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from relay_core.domain import constants as c
from relay_core.domain.matchers import MatchContext, matches
from relay_core.domain.model import Category, CategoryRule, Subscription, TraceStep

STAGE: Final = "category"

CATEGORY_FROM_LABEL: Final = "category_from_label"
CATEGORY_FROM_RULE: Final = "category_from_rule"
CATEGORY_FROM_ROUTE: Final = "category_from_route"
CATEGORY_DEFAULT: Final = "category_default"

#: The alert label naming a category slug (S8.2 step 1).
CATEGORY_LABEL: Final = "category"
#: The alert label subscription ``regions`` filter on (S8.4).
REGION_LABEL: Final = "region"

# Subscription skip reasons (S3.5, S8.8), in the order :func:`subscription_decision` checks them.
SKIP_CATEGORY_DISABLED: Final = "category_disabled"
SKIP_SUBSCRIPTION_DISABLED: Final = "subscription_disabled"
SKIP_EVENT_NOT_SUBSCRIBED: Final = "event_not_subscribed"
SKIP_SEVERITY_FILTERED: Final = "severity_filtered"
SKIP_REGION_FILTERED: Final = "region_filtered"
SKIP_MATCHERS_NOT_MATCHED: Final = "matchers_not_matched"
SKIP_SILENCED: Final = "silenced"


# --- built-in categories (S8.1) ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class CategoryDefinition:
    """A built-in category as shipped: what it covers and how its messages are presented."""

    slug: str
    name: str
    description: str
    included_examples: tuple[str, ...]
    excluded_examples: tuple[str, ...]
    presentation: str
    status_page_mode: str
    position: int

    def to_category(self, *, id: int = 0, enabled: bool = True) -> Category:
        """The global (``group_id = None``) :class:`Category` row for this definition."""
        return Category(
            id=id,
            group_id=None,
            slug=self.slug,
            name=self.name,
            description=self.description,
            presentation=self.presentation,
            enabled=enabled,
            position=self.position,
        )


BUILTIN_CATEGORY_DEFINITIONS: Final = (
    CategoryDefinition(
        slug=c.CATEGORY_INFRASTRUCTURE,
        name="Infrastructure",
        description="Platform or service availability affecting many customers.",
        included_examples=(
            "API downtime",
            "database or network degradation",
            "carrier partner outage affecting many customers",
            "regional POP degradation",
            "voice routing failures affecting many tenants",
            "cloud or network outages",
        ),
        excluded_examples=("analytics backfill delays under threshold", "advisory notices"),
        presentation=c.PRESENTATION_INCIDENT,
        status_page_mode="manual",
        position=0,
    ),
    CategoryDefinition(
        slug=c.CATEGORY_BILLING,
        name="Billing",
        description="Payments, balances, invoices and plans affecting service continuity.",
        included_examples=(
            "payment gateway (card/UPI) errors",
            "auto-recharge failure",
            "low balance or wallet threshold crossed",
            "invoice generation or job errors",
            "plan or credit expiry affecting continuity",
        ),
        excluded_examples=("marketing emails", "upcoming price changes (announcements)"),
        presentation=c.PRESENTATION_INCIDENT,
        status_page_mode="manual",
        position=1,
    ),
    CategoryDefinition(
        slug=c.CATEGORY_CONFIGURABLE,
        name="Configurable",
        description="Tenant-specific configuration problems.",
        included_examples=(
            "webhook 4xx/5xx",
            "IVR misconfiguration or misrouting",
            "blocked caller-ID rules",
            "invalid regex or prefix",
            "agent group with 0 available agents",
        ),
        excluded_examples=("user-level warnings already shown in the product, unless opted in",),
        presentation=c.PRESENTATION_ADVISORY,
        status_page_mode="never",
        position=2,
    ),
)


def builtin_category(slug: str) -> CategoryDefinition:
    """The built-in definition with ``slug``.

    Raises:
        KeyError: ``slug`` is not a built-in category.
    """
    for definition in BUILTIN_CATEGORY_DEFINITIONS:
        if definition.slug == slug:
            return definition
    raise KeyError(slug)


def message_prefix(category: Category) -> str:
    """First-line prefix of subscription messages (S8.5): ``[Advisory]`` or ``[<name>]``."""
    if category.presentation == c.PRESENTATION_ADVISORY:
        return "[Advisory]"
    return f"[{category.name}]"


# --- assignment (S8.2) -------------------------------------------------------------------


def assign_category(
    alert_labels: Mapping[str, str],
    *,
    visible_categories: Sequence[Category],
    rules: Sequence[CategoryRule],
    route_category_id: int | None,
    ctx: MatchContext,
    position: int = 0,
) -> tuple[Category, TraceStep]:
    """The category of a new group, first match wins (S8.2), and its trace step.

    Args:
        alert_labels: The alert's own labels (not the derived ones); ``category`` may name a slug.
        visible_categories: Built-ins plus the route group's own categories. Disabled ones are
            still assignable (disabling only stops subscription deliveries); deleted ones are not.
        rules: The group's category rules; disabled ones and those pointing at an invisible
            category are skipped; the rest are tried by ``(position, id)``.
        route_category_id: The route's default category.
        ctx: The alert's match context for rule matchers.
        position: ``position`` of the returned trace step.

    Falls back to ``infrastructure``: the visible built-in row, or the built-in definition
    (``id = 0``) when the caller passed none.
    """
    visible = [cat for cat in visible_categories if cat.deleted_at is None]
    by_id = {cat.id: cat for cat in visible}

    def result(category: Category, code: str, title: str, **extra: Any) -> tuple[Category, TraceStep]:
        data = {"category_id": category.id, "category": category.slug, **extra}
        return category, TraceStep(position=position, stage=STAGE, code=code, title=title, data=data)

    wanted = str(alert_labels.get(CATEGORY_LABEL) or "").strip().lower()
    if wanted:
        # A group's own category beats a built-in of the same slug: it is the closer scope.
        named = sorted((cat for cat in visible if cat.slug == wanted), key=lambda cat: cat.group_id is None)
        if named:
            return result(named[0], CATEGORY_FROM_LABEL, f"Category {named[0].slug} from the category label")

    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        category = by_id.get(rule.category_id)
        if rule.enabled and category is not None and matches(rule.matchers, ctx):
            return result(
                category, CATEGORY_FROM_RULE, f"Category {category.slug} from a rule", rule_id=rule.id
            )

    if route_category_id is not None and (category := by_id.get(route_category_id)) is not None:
        return result(category, CATEGORY_FROM_ROUTE, f"Category {category.slug} from the route")

    default = (
        next(
            (cat for cat in visible if cat.slug == c.CATEGORY_INFRASTRUCTURE and cat.group_id is None),
            None,
        )
        or builtin_category(c.CATEGORY_INFRASTRUCTURE).to_category()
    )
    return result(default, CATEGORY_DEFAULT, "Default category")


# --- subscriptions (S8.4, S8.5) ----------------------------------------------------------


def subscription_decision(
    sub: Subscription,
    *,
    category: Category,
    ctx: MatchContext,
    event: str,
    group_silenced: bool,
) -> str | None:
    """``None`` when ``sub`` delivers ``event`` of the group, else the skip reason (S8.5).

    ``category`` is the group's category (the one ``sub`` is bound to). Recipient-level reasons
    (opted_out, email_missing, phone_missing) are decided later, per recipient.
    """
    if not category.enabled or category.deleted_at is not None:
        return SKIP_CATEGORY_DISABLED
    if not sub.enabled or sub.deleted_at is not None:
        return SKIP_SUBSCRIPTION_DISABLED
    if event not in sub.events:
        return SKIP_EVENT_NOT_SUBSCRIBED
    if sub.severities and ctx.severity.lower() not in {s.lower() for s in sub.severities}:
        return SKIP_SEVERITY_FILTERED
    if sub.regions:
        region = (ctx.labels.get(REGION_LABEL) or "").strip().casefold()
        if region not in {r.strip().casefold() for r in sub.regions}:
            return SKIP_REGION_FILTERED
    if not matches(sub.matchers, ctx):
        return SKIP_MATCHERS_NOT_MATCHED
    if group_silenced:
        return SKIP_SILENCED
    return None


# --- standard preset (S8.6) --------------------------------------------------------------

CHANNEL_KIND_SLACK: Final = "slack"
CHANNEL_KIND_TEAMS: Final = "teams"
CHANNEL_KIND_WEBHOOK: Final = "webhook"
_CHAT: Final = (CHANNEL_KIND_SLACK, CHANNEL_KIND_TEAMS)
_CHAT_AND_WEBHOOK: Final = (CHANNEL_KIND_SLACK, CHANNEL_KIND_TEAMS, CHANNEL_KIND_WEBHOOK)


@attrs.frozen(kw_only=True)
class PresetRoleGroup:
    """A role group the preset creates (matched by slug when re-applied)."""

    slug: str
    name: str
    description: str = ""


@attrs.frozen(kw_only=True)
class PresetSubscription:
    """One subscription of the preset.

    ``channel_kinds`` name the request's channels to attach (``slack`` → ``slack_channel_id``,
    ``teams`` → ``teams_channel_id``, ``webhook`` → ``webhook_channel_id``); a kind the request
    does not name is left out. Re-applying matches an existing subscription by :attr:`key`.
    """

    role_group_slug: str
    category_slug: str
    name: str
    channel_types: tuple[str, ...]
    channel_kinds: tuple[str, ...]
    requires_opt_in: bool = False
    matchers: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity for idempotent re-application: role group, category and name.

        The name is part of it because Billing Admins hold two billing subscriptions.
        """
        return (self.role_group_slug, self.category_slug, self.name)

    def channel_ids(
        self,
        *,
        slack_channel_id: int | None = None,
        teams_channel_id: int | None = None,
        webhook_channel_id: int | None = None,
    ) -> tuple[int, ...]:
        """The destination channel ids to attach, given the channels the request named."""
        named = {
            CHANNEL_KIND_SLACK: slack_channel_id,
            CHANNEL_KIND_TEAMS: teams_channel_id,
            CHANNEL_KIND_WEBHOOK: webhook_channel_id,
        }
        return tuple(cid for kind in self.channel_kinds if (cid := named[kind]) is not None)


@attrs.frozen(kw_only=True)
class StandardPreset:
    """Role groups and subscriptions created by ``POST /api/subscriptions/presets/standard``."""

    role_groups: tuple[PresetRoleGroup, ...]
    subscriptions: tuple[PresetSubscription, ...]


def _sub(
    role_group: str,
    category: str,
    label: str,
    channel_types: tuple[str, ...],
    channel_kinds: tuple[str, ...],
    **extra: Any,
) -> PresetSubscription:
    return PresetSubscription(
        role_group_slug=role_group,
        category_slug=category,
        name=label,
        channel_types=channel_types,
        channel_kinds=channel_kinds,
        **extra,
    )


_INFRA, _BILLING, _CONFIG = c.CATEGORY_INFRASTRUCTURE, c.CATEGORY_BILLING, c.CATEGORY_CONFIGURABLE
_EMAIL: Final = ("email",)

STANDARD_PRESET: Final = StandardPreset(
    role_groups=(
        PresetRoleGroup(slug="org-admins", name="Org Admins"),
        PresetRoleGroup(slug="billing-admins", name="Billing Admins"),
        PresetRoleGroup(slug="tech-devops", name="Tech/DevOps"),
        PresetRoleGroup(slug="support-managers", name="Support Managers"),
    ),
    subscriptions=(
        _sub("org-admins", _INFRA, "Org Admins — Infrastructure", ("email", "sms"), _CHAT_AND_WEBHOOK),
        _sub("org-admins", _BILLING, "Org Admins — Billing", _EMAIL, _CHAT),
        _sub(
            "org-admins",
            _CONFIG,
            "Org Admins — Configurable",
            _EMAIL,
            _CHAT_AND_WEBHOOK,
            requires_opt_in=True,
        ),
        _sub("billing-admins", _BILLING, "Billing Admins — Billing", _EMAIL, _CHAT),
        _sub(
            "billing-admins",
            _BILLING,
            "Billing Admins — Low balance SMS",
            ("sms",),
            (),
            matchers={"billing_event": "low_balance"},
        ),
        _sub("tech-devops", _INFRA, "Tech/DevOps — Infrastructure", _EMAIL, _CHAT_AND_WEBHOOK),
        _sub("tech-devops", _CONFIG, "Tech/DevOps — Configurable", _EMAIL, _CHAT_AND_WEBHOOK),
        _sub("support-managers", _INFRA, "Support Managers — Infrastructure", _EMAIL, _CHAT),
        _sub("support-managers", _CONFIG, "Support Managers — Configurable", _EMAIL, _CHAT),
    ),
)
