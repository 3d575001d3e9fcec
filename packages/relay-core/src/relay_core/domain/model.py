"""Relay's entities (SPEC S1) as immutable attrs values.

Every entity is frozen: a change is a new value made with :func:`attrs.evolve`, so
domain rules stay pure functions and storage adapters see exactly what changed.
``id`` is ``0`` until a repository assigns one. Datetimes are aware UTC.
Mappings and sequences held by entities are never mutated in place by Relay code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

from relay_core.domain import constants as c


def _utc(value: dt.datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError("datetimes in Relay's domain must be timezone-aware")


def _aware(_instance: object, attribute: attrs.Attribute[Any], value: dt.datetime | None) -> None:
    try:
        _utc(value)
    except ValueError as exc:
        raise ValueError(f"{attribute.name}: {exc}") from None


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --- access and identity (S1.2) ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class Group:
    id: int = 0
    slug: str
    name: str
    description: str = ""
    active: bool = True
    deleted_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class User:
    id: int = 0
    username: str
    display_name: str = ""
    email: str | None = None
    phone: str | None = None
    timezone: str = "UTC"
    telegram_user_id: str | None = None
    slack_user_id: str | None = None
    mattermost_user_id: str | None = None
    password_hash: str | None = None
    password_version: int = 0
    is_admin: bool = False
    active: bool = True
    active_group_id: int | None = None
    deleted_at: dt.datetime | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.username


@attrs.frozen(kw_only=True)
class GroupMembership:
    id: int = 0
    user_id: int
    group_id: int
    role: str = c.GROUP_VIEWER
    active: bool = True


@attrs.frozen(kw_only=True)
class Team:
    id: int = 0
    group_id: int
    slug: str
    name: str
    description: str = ""
    escalation_enabled: bool = True
    escalation_after_reminders: int = 2
    active: bool = True
    deleted_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class TeamMembership:
    id: int = 0
    team_id: int
    user_id: int
    role: str = c.TEAM_VIEWER
    active: bool = True


@attrs.frozen(kw_only=True)
class ApiToken:
    id: int = 0
    user_id: int
    name: str
    token_prefix: str
    token_hash: str
    scopes: tuple[str, ...] = ()
    team_id: int | None = None
    expires_at: dt.datetime | None = attrs.field(default=None, validator=_aware)
    active: bool = True
    last_used_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class AuditLog:
    id: int = 0
    action: str
    object_type: str
    object_id: int | None = None
    message: str = ""
    data: Mapping[str, Any] = attrs.field(factory=dict)
    user_id: int | None = None
    api_token_id: int | None = None
    group_id: int | None = None
    team_id: int | None = None
    created_at: dt.datetime = attrs.field(default=EPOCH, validator=_aware)


# --- scheduling (S1.3) ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Rotation:
    id: int = 0
    team_id: int
    name: str
    description: str = ""
    start_at: dt.datetime = attrs.field(validator=_aware)
    rotation_type: str = c.ROTATION_DAILY
    interval_value: int = 1
    interval_unit: str = c.UNIT_DAYS
    handoff_time: str = "09:00"
    handoff_weekday: int | None = None
    timezone: str = "UTC"
    reminder_interval_seconds: int = 300
    enabled: bool = True
    deleted_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class RotationLayer:
    id: int = 0
    rotation_id: int
    name: str = "Default layer"
    priority: int = 0
    enabled: bool = True


@attrs.frozen(kw_only=True)
class RotationMember:
    id: int = 0
    rotation_id: int
    layer_id: int = 0
    user_id: int
    position: int
    active: bool = True


@attrs.frozen(kw_only=True)
class RotationOverride:
    id: int = 0
    rotation_id: int
    user_id: int
    starts_at: dt.datetime = attrs.field(validator=_aware)
    ends_at: dt.datetime = attrs.field(validator=_aware)
    reason: str = ""
    created_by: int | None = None
    created_at: dt.datetime = attrs.field(default=EPOCH, validator=_aware)

    @ends_at.validator
    def _after_start(self, _attribute: attrs.Attribute[Any], value: dt.datetime) -> None:
        if value <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")


# --- routing and configuration (S1.4) ---------------------------------------------------


@attrs.frozen(kw_only=True)
class Route:
    id: int = 0
    team_id: int
    name: str
    source: str
    rotation_id: int | None = None
    matchers: Any = attrs.field(factory=dict)
    group_by: tuple[str, ...] = ()
    category_id: int | None = None
    group_wait_seconds: int | None = None
    group_interval_seconds: int | None = None
    intake_token_prefix: str | None = None
    intake_token_hash: str | None = None
    integration_config: Mapping[str, Any] = attrs.field(factory=dict)
    channel_ids: tuple[int, ...] = ()
    enabled: bool = True
    deleted_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class Channel:
    id: int = 0
    group_id: int
    team_id: int | None = None
    name: str
    channel_type: str
    config: Mapping[str, Any] = attrs.field(factory=dict)
    enabled: bool = True
    callback_secret: str | None = None
    deleted_at: dt.datetime | None = None

    @property
    def notify_on_severities(self) -> tuple[str, ...]:
        value = self.config.get("notify_on_severities") or ()
        return tuple(str(v).lower() for v in value)


@attrs.frozen(kw_only=True)
class Silence:
    id: int = 0
    team_id: int
    name: str
    reason: str = ""
    matchers: Any = attrs.field(factory=dict)
    starts_at: dt.datetime = attrs.field(validator=_aware)
    ends_at: dt.datetime = attrs.field(validator=_aware)
    apply_to_existing: bool = False
    reactivate_on_end: bool = True
    enabled: bool = True
    created_by: int | None = None
    reconciled_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class SilenceApplication:
    id: int = 0
    silence_id: int
    alert_id: int
    group_id: int
    previous_status: str
    active: bool = True
    applied_at: dt.datetime = attrs.field(validator=_aware)
    released_at: dt.datetime | None = None
    release_reason: str | None = None


# --- categories and subscriptions (S1.7) ------------------------------------------------


@attrs.frozen(kw_only=True)
class Category:
    id: int = 0
    group_id: int | None = None
    slug: str
    name: str
    description: str = ""
    presentation: str = c.PRESENTATION_INCIDENT
    enabled: bool = True
    position: int = 0
    deleted_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class CategoryRule:
    id: int = 0
    group_id: int
    position: int = 0
    matchers: Any = attrs.field(factory=dict)
    category_id: int
    enabled: bool = True


@attrs.frozen(kw_only=True)
class RoleGroup:
    id: int = 0
    group_id: int
    slug: str
    name: str
    description: str = ""
    enabled: bool = True
    deleted_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class RoleGroupMember:
    id: int = 0
    role_group_id: int
    user_id: int


@attrs.frozen(kw_only=True)
class RoleGroupContact:
    id: int = 0
    role_group_id: int
    name: str
    email: str | None = None
    phone: str | None = None


@attrs.frozen(kw_only=True)
class Subscription:
    id: int = 0
    group_id: int
    category_id: int
    role_group_id: int
    name: str
    channel_types: tuple[str, ...] = ()
    sms_channel_id: int | None = None
    channel_ids: tuple[int, ...] = ()
    severities: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    matchers: Any = attrs.field(factory=dict)
    events: tuple[str, ...] = (c.SUB_EVENT_CREATED, c.SUB_EVENT_RESOLVED)
    notify_after_seconds: int = 0
    requires_opt_in: bool = False
    enabled: bool = True
    last_test_at: dt.datetime | None = None
    last_test_result: Mapping[str, Any] | None = None
    deleted_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class SubscriptionPreference:
    id: int = 0
    subscription_id: int
    user_id: int
    opted_in: bool


# --- alerts (S1.5) ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NormalizedAlert:
    """One intake item after source mapping (S2.4); the rest of the pipeline sees only this."""

    source: str
    dedup_key: str
    status: str = attrs.field(default=c.ALERT_FIRING)
    external_id: str | None = None
    title: str = ""
    message: str = ""
    severity: str = c.SEV_WARNING
    original_severity: str | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, Any] = attrs.field(factory=dict)
    starts_at: dt.datetime | None = attrs.field(default=None, validator=_aware)
    ends_at: dt.datetime | None = attrs.field(default=None, validator=_aware)
    team_slug: str | None = None
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    update_only: bool = False
    """Set by sources whose item may only update an existing alert (Zabbix ``update_status=1``)."""

    @status.validator
    def _status(self, _attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in (c.ALERT_FIRING, c.ALERT_RESOLVED):
            raise ValueError(f"normalized alert status must be firing or resolved, not {value!r}")

    @property
    def event_link(self) -> str | None:
        return self.labels.get("event_link") or None


@attrs.frozen(kw_only=True)
class Alert:
    id: int = 0
    group_id: int
    team_id: int
    route_id: int
    source: str
    external_id: str | None = None
    dedup_key: str
    title: str = ""
    message: str = ""
    severity: str = c.SEV_WARNING
    original_severity: str | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, Any] = attrs.field(factory=dict)
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    status: str = c.ALERT_FIRING
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    first_seen_at: dt.datetime = attrs.field(validator=_aware)
    last_seen_at: dt.datetime = attrs.field(validator=_aware)
    resolved_at: dt.datetime | None = None
    group_open: bool = True
    """Mirror of "the group is neither resolved nor merged", kept by the engine for the dedup index."""


@attrs.frozen(kw_only=True)
class AlertGroup:
    id: int = 0
    team_id: int
    route_id: int
    rotation_id: int | None = None
    assignee_id: int | None = None
    category_id: int | None = None
    source: str
    group_key: str
    group_key_hash: str
    title: str = ""
    message: str = ""
    severity: str = c.SEV_WARNING
    status: str = c.GROUP_FIRING
    previous_status: str | None = None
    common_labels: Mapping[str, str] = attrs.field(factory=dict)
    event_link: str | None = None
    acknowledged_by: int | None = None
    acknowledged_at: dt.datetime | None = None
    resolved_by: int | None = None
    resolved_at: dt.datetime | None = None
    resolved_via: str | None = None
    first_seen_at: dt.datetime = attrs.field(validator=_aware)
    last_seen_at: dt.datetime = attrs.field(validator=_aware)
    alert_count: int = 0
    firing_count: int = 0
    resolved_count: int = 0
    silenced_count: int = 0
    notified: bool = False
    last_notification_at: dt.datetime | None = None
    reminder_count: int = 0
    escalation_level: int = 0
    next_reminder_at: dt.datetime | None = None
    next_action_at: dt.datetime | None = None
    lifecycle_version: int = 0
    update_seq: int = 0
    test: bool = False

    @property
    def is_open(self) -> bool:
        return self.status not in c.CLOSED_GROUP_STATUSES


@attrs.frozen(kw_only=True)
class AlertEvent:
    id: int = 0
    group_id: int
    alert_id: int | None = None
    event_type: str
    message: str = ""
    user_id: int | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)
    created_at: dt.datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class TraceStep:
    position: int
    stage: str
    code: str
    status: str = "ok"
    title: str = ""
    message: str = ""
    data: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ExplainTrace:
    id: int = 0
    trace_id: str
    group_id: int | None = None
    alert_id: int | None = None
    route_id: int | None = None
    team_id: int | None = None
    mode: str = c.TRACE_LIVE
    level: str = c.TRACE_FULL
    source: str
    dedup_key: str | None = None
    status: str = c.PROCESSING_COMPLETED
    outcome: str
    reason: str | None = None
    input_summary: Mapping[str, Any] = attrs.field(factory=dict)
    steps: tuple[TraceStep, ...] = ()
    started_at: dt.datetime = attrs.field(validator=_aware)
    finished_at: dt.datetime = attrs.field(validator=_aware)


# --- delivery (S1.6) --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NotificationIntent:
    id: int = 0
    idempotency_key: str
    group_id: int | None = None
    channel_id: int | None = None
    subscription_id: int | None = None
    recipient_user_id: int | None = None
    recipient_address: str | None = None
    recipient_key: str = "channel"
    event_type: str
    reason: str = ""
    priority: int = 0
    status: str = c.INTENT_PENDING
    due_at: dt.datetime = attrs.field(validator=_aware)
    expires_at: dt.datetime | None = None
    attempt_count: int = 0
    max_attempts: int = 5
    ambiguous_count: int = 0
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
    enqueued_at: dt.datetime | None = None
    depends_on_intent_id: int | None = None
    test_id: str | None = None
    last_error: str | None = None
    error_class: str | None = None
    created_at: dt.datetime = attrs.field(validator=_aware)
    finished_at: dt.datetime | None = None

    @property
    def is_page(self) -> bool:
        return self.event_type in c.PAGE_EVENTS


@attrs.frozen(kw_only=True)
class Notification:
    """Delivery record: what was delivered where, updated by later sends (message edits)."""

    id: int = 0
    group_id: int | None = None
    channel_id: int
    recipient_user_id: int | None = None
    recipient_key: str = "channel"
    provider: str = ""
    external_message_id: str | None = None
    external_channel_id: str | None = None
    provider_status: str | None = None
    provider_payload: Mapping[str, Any] = attrs.field(factory=dict)
    last_event_type: str | None = None
    last_error: str | None = None
    callback_count: int = 0
    last_callback_at: dt.datetime | None = None
    first_intent_id: int | None = None
    created_at: dt.datetime = attrs.field(validator=_aware)
    updated_at: dt.datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class DeliveryAttempt:
    id: int = 0
    intent_id: int
    attempt_no: int
    started_at: dt.datetime = attrs.field(validator=_aware)
    finished_at: dt.datetime = attrs.field(validator=_aware)
    outcome: str
    http_status: int | None = None
    error: str | None = None
    duration_ms: int = 0


@attrs.frozen(kw_only=True)
class CallbackEvent:
    id: int = 0
    notification_id: int | None = None
    channel_id: int
    kind: str
    event_type: str
    provider_status: str | None = None
    digit: str | None = None
    action: str | None = None
    message: str | None = None
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    result: str = ""
    created_at: dt.datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class SchedulerLease:
    name: str
    holder: str
    fencing_token: int
    expires_at: dt.datetime = attrs.field(validator=_aware)
    renewed_at: dt.datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class ProcessHeartbeat:
    """One running Relay process, upserted every 10 s by itself (SPEC S1.8, S5.11)."""

    id: int = 0
    process_id: str
    role: str
    host: str
    version: str
    started_at: dt.datetime = attrs.field(validator=_aware)
    seen_at: dt.datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class CallbackReceipt:
    """Digest of a callback already processed, for replay detection (SPEC S13.3)."""

    id: int = 0
    channel_id: int
    digest: str
    expires_at: dt.datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class ActionToken:
    """A single-use signed action link (SPEC S6.3)."""

    id: int = 0
    jti: str
    group_id: int
    action: str
    channel_id: int | None = None
    recipient_user_id: int | None = None
    expires_at: dt.datetime = attrs.field(validator=_aware)
    used_at: dt.datetime | None = None
