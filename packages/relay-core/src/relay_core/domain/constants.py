"""Names and defaults shared by every layer (SPEC S1, S2, S5).

Plain string constants rather than enums: they travel through JSON, SQL and
plugin code unchanged, and third-party plugins compare against literals.
"""

from __future__ import annotations

from typing import Final

# --- roles (S1.2) -------------------------------------------------------------
GROUP_VIEWER: Final = "viewer"
GROUP_EDITOR: Final = "editor"
GROUP_USER_ADMIN: Final = "user_admin"
GROUP_ROLES: Final = (GROUP_VIEWER, GROUP_EDITOR, GROUP_USER_ADMIN)

TEAM_VIEWER: Final = "viewer"
TEAM_RESPONDER: Final = "responder"
TEAM_MANAGER: Final = "manager"
TEAM_ROLES: Final = (TEAM_VIEWER, TEAM_RESPONDER, TEAM_MANAGER)

# --- rotations (S1.3, S4) -----------------------------------------------------
ROTATION_DAILY: Final = "daily"
ROTATION_WEEKLY: Final = "weekly"
ROTATION_CUSTOM: Final = "custom"
ROTATION_TYPES: Final = (ROTATION_DAILY, ROTATION_WEEKLY, ROTATION_CUSTOM)

UNIT_MINUTES: Final = "minutes"
UNIT_HOURS: Final = "hours"
UNIT_DAYS: Final = "days"
UNIT_WEEKS: Final = "weeks"
UNIT_SECONDS: Final = {UNIT_MINUTES: 60, UNIT_HOURS: 3600, UNIT_DAYS: 86400, UNIT_WEEKS: 604800}

MIN_REMINDER_INTERVAL: Final = 60
MAX_REMINDER_INTERVAL: Final = 2_592_000

# --- severities (S2.5), most urgent first -------------------------------------
SEV_CRITICAL: Final = "critical"
SEV_HIGH: Final = "high"
SEV_MEDIUM: Final = "medium"
SEV_WARNING: Final = "warning"
SEV_LOW: Final = "low"
SEV_INFO: Final = "info"
SEVERITIES: Final = (SEV_CRITICAL, SEV_HIGH, SEV_MEDIUM, SEV_WARNING, SEV_LOW, SEV_INFO)

# --- alert and group statuses (S1.5, S2.14) -----------------------------------
ALERT_FIRING: Final = "firing"
ALERT_RESOLVED: Final = "resolved"
ALERT_SILENCED: Final = "silenced"

GROUP_FIRING: Final = "firing"
GROUP_ACKNOWLEDGED: Final = "acknowledged"
GROUP_RESOLVED: Final = "resolved"
GROUP_SILENCED: Final = "silenced"
GROUP_STATUSES: Final = (GROUP_FIRING, GROUP_ACKNOWLEDGED, GROUP_RESOLVED, GROUP_SILENCED)
CLOSED_GROUP_STATUSES: Final = frozenset({GROUP_RESOLVED, "merged"})

VIA_USER: Final = "user"
VIA_SOURCE: Final = "source"
VIA_API: Final = "api"
VIA_CHANNEL: Final = "channel"

# --- intake outcomes (S2.15) --------------------------------------------------
OUTCOME_CREATED: Final = "created"
OUTCOME_ADDED: Final = "added"
OUTCOME_UPDATED: Final = "updated"
OUTCOME_IGNORED: Final = "ignored"
OUTCOME_ROUTING_FAILED: Final = "routing_failed"
OUTCOME_FAILED: Final = "failed"

PROCESSING_COMPLETED: Final = "completed"
PROCESSING_STOPPED: Final = "stopped"
PROCESSING_FAILED: Final = "failed"

TRACE_LIVE: Final = "live"
TRACE_DRY_RUN: Final = "dry_run"
TRACE_FULL: Final = "full"
TRACE_COMPACT: Final = "compact"
TRACE_DISABLED: Final = "disabled"

# --- notification events and intents (S5.2, S1.6) -----------------------------
EV_NOTIFICATION: Final = "notification"
EV_UPDATE: Final = "update"
EV_REMINDER: Final = "reminder"
EV_ESCALATION: Final = "escalation"
EV_ACKNOWLEDGED: Final = "acknowledged"
EV_RESOLVED: Final = "resolved"
EV_TEST: Final = "test"
PAGE_EVENTS: Final = frozenset({EV_NOTIFICATION, EV_UPDATE, EV_REMINDER, EV_ESCALATION})
STATUS_EVENTS: Final = frozenset({EV_ACKNOWLEDGED, EV_RESOLVED})

INTENT_PENDING: Final = "pending"
INTENT_SENDING: Final = "sending"
INTENT_SENT: Final = "sent"
INTENT_FAILED: Final = "failed"
INTENT_SKIPPED: Final = "skipped"
INTENT_CANCELLED: Final = "cancelled"
INTENT_FINAL: Final = frozenset({INTENT_SENT, INTENT_FAILED, INTENT_SKIPPED, INTENT_CANCELLED})

ERR_RETRYABLE: Final = "retryable"
ERR_PERMANENT: Final = "permanent"
ERR_AMBIGUOUS: Final = "ambiguous"

# Lower first (S5.8).
PRIORITY_FIRST_PAGE: Final = 0
PRIORITY_ESCALATION: Final = 1
PRIORITY_REMINDER: Final = 2
PRIORITY_UPDATE: Final = 3
PRIORITY_SUBSCRIPTION: Final = 5
PRIORITY_DIGEST: Final = 9

# --- categories and subscriptions (S8) ----------------------------------------
CATEGORY_INFRASTRUCTURE: Final = "infrastructure"
CATEGORY_BILLING: Final = "billing"
CATEGORY_CONFIGURABLE: Final = "configurable"
BUILTIN_CATEGORIES: Final = (CATEGORY_INFRASTRUCTURE, CATEGORY_BILLING, CATEGORY_CONFIGURABLE)
PRESENTATION_INCIDENT: Final = "incident"
PRESENTATION_ADVISORY: Final = "advisory"

SUB_EVENT_CREATED: Final = "created"
SUB_EVENT_ACKNOWLEDGED: Final = "acknowledged"
SUB_EVENT_RESOLVED: Final = "resolved"
SUB_EVENT_REOPENED: Final = "reopened"
SUB_EVENT_ESCALATED: Final = "escalated"
SUB_EVENTS: Final = (
    SUB_EVENT_CREATED,
    SUB_EVENT_ACKNOWLEDGED,
    SUB_EVENT_RESOLVED,
    SUB_EVENT_REOPENED,
    SUB_EVENT_ESCALATED,
)

# --- actions (S5.6, S7.6) -----------------------------------------------------
ACTION_ACKNOWLEDGE: Final = "acknowledge"
ACTION_RESOLVE: Final = "resolve"
DEFAULT_DTMF_ACTIONS: Final = {"1": ACTION_ACKNOWLEDGE, "2": ACTION_RESOLVE}
