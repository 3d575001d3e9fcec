"""The done-when matrix of the HTTP API (issue 4, SPEC S9): for every endpoint of the app,
success with the right role, 401 without credentials, 403 for a user without the role, 403 for an
API token without the scope, and a 400 validation failure — each failure in the S9.5 shape and
changing nothing.

Endpoints that authenticate by a signature, a shared secret or a signed token instead (chat and
provider callbacks, action links) are in ``SIGNED``: each refusal (missing or bad signature or
secret, stale or forged token) gets its documented 4xx in the S9.5 shape and changes nothing, and a
correctly signed request is accepted. The voice/SMS simulator API is admin-only and answers 404
while ``simulator.enabled`` is false.

The endpoint list is read from the app's routes, so a new endpoint shows up here by itself: it must
get a row in ``MATRIX`` or ``SIGNED`` (or, while its author is still building it, in ``NOT_YET``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from relay_adapters.settings import MainSettings, RelaySettings, ServerSettings, SimulatorSettings
from relay_adapters.voice.loader import make_voice_loader
from relay_adapters.voice.simulator import Provider as SimulatorVoice
from relay_adapters.voice.simulator import SmsProvider as SimulatorSms
from relay_core.domain.actions import ActionClaims, sign_action
from relay_core.domain.model import ApiToken, Channel
from relay_core.services.voice import VoiceCallChannel
from relay_core.sms import SmsSendRequest
from relay_core.voice import VoiceCallRequest
from relay_server.auth import PERSONAL_TOKEN_PREFIX, new_token
from relay_server.controllers._support import STATE_KEY, ServerState

from .conftest import PASSWORD, World, build_world

AM = json.loads((Path(__file__).parent / "fixtures" / "alertmanager_v4.json").read_text())

Ids = Mapping[str, Any]
Value = Callable[[Ids], Any] | Mapping[str, Any] | list[Any] | None

PUBLIC = "public"  # no authentication at all
INTAKE = "intake"  # authenticates with a route intake token (S2.2)


@attrs.frozen(kw_only=True)
class Case:
    """One endpoint: who succeeds, who is denied, a valid and an invalid request."""

    role: str  # fixture user that succeeds, PUBLIC or INTAKE
    denied: str | None = None  # authenticated fixture user lacking the role → 403
    body: Value = None
    params: Value = None
    # The invalid request: a body (default: the valid body plus an unknown field) or query params.
    invalid_body: Value = None
    invalid_params: Value = None
    no_input: bool = False  # nothing to validate (no body, no query parameters)
    path: Mapping[str, str] = attrs.field(factory=dict)  # path parameter → key of the ids
    status: int = 200
    resource: bool = False  # the success body is a serialized resource carrying ``permissions``
    session_only: bool = False  # refuses API tokens whatever their scopes (S9.2)
    extras: bool = False  # needs the role group, subscription, rule and test run of _prepare_extras
    simulator: bool = False  # needs a fresh simulator call and text message (_prepare_simulator)


def _v(value: Value, ids: Ids) -> Any:
    return value(ids) if callable(value) else value


# Default path parameter → id key; a case's ``path`` overrides.
PATH_IDS: Mapping[str, str] = {
    "group_id": "group",
    "team_id": "team",
    "rotation_id": "rotation",
    "route_id": "route_alertmanager",
    "channel_id": "channel",
    "user_id": "viewer",
    "silence_id": "silence",
    "category_id": "category",
    "token_id": "token_all",
    "member_id": "rotation_member",
    "override_id": "override",
    "trace_id": "trace",
    "rule_id": "rule",
    "rg_id": "role_group",
    "contact_id": "contact",
    "sub_id": "subscription",
    "test_id": "test_run",
    "call_id": "sim_call",
    "message_id": "sim_message",
    "name": "sink",
}

ALERT = {"group_id": "alert"}
LIST = {"limit": 0}
WINDOW = {"starts_at": "2026-06-01T10:00:00Z", "ends_at": "2026-06-01T12:00:00Z"}

MATRIX: dict[tuple[str, str], Case] = {
    # --- auth and profile (any authenticated user; self) -------------------------------------
    ("POST", "/api/auth/login"): Case(
        role=PUBLIC, body={"username": "viewer", "password": PASSWORD}, invalid_body={"username": "viewer"}
    ),
    ("POST", "/api/auth/logout"): Case(role=PUBLIC, no_input=True),
    ("GET", "/api/auth/me"): Case(role="viewer", no_input=True),
    ("POST", "/api/auth/change-password"): Case(
        role="viewer",
        body={"current_password": PASSWORD, "new_password": "another-long-password"},
        invalid_body={"current_password": PASSWORD, "new_password": "short"},
        session_only=True,
    ),
    ("GET", "/api/profile"): Case(role="viewer", no_input=True, resource=True),
    ("PUT", "/api/profile"): Case(
        role="viewer", body={"display_name": "Vera"}, invalid_body={"phone": "12345"}, resource=True
    ),
    ("POST", "/api/profile/change-password"): Case(
        role="viewer",
        body={"current_password": PASSWORD, "new_password": "another-long-password"},
        invalid_body={"current_password": PASSWORD},
        session_only=True,
    ),
    ("POST", "/api/profile/active-group"): Case(
        role="viewer", body=lambda i: {"group_id": i["group"]}, invalid_body={"group_id": "ops"}
    ),
    ("GET", "/api/profile/tokens"): Case(role="viewer", no_input=True),
    ("POST", "/api/profile/tokens"): Case(
        role="viewer",
        body={"name": "ci", "scopes": ["profile:read"]},
        invalid_body={"name": "ci", "scopes": []},
        status=201,
        resource=True,
    ),
    ("DELETE", "/api/profile/tokens/{token_id:int}"): Case(role="manager", no_input=True),
    # --- groups (R / A / UA) ---------------------------------------------------------------------
    ("GET", "/api/groups"): Case(role="viewer", params={}, invalid_params=LIST),
    ("POST", "/api/groups"): Case(
        role="admin",
        denied="editor",
        body={"slug": "sre", "name": "SRE"},
        invalid_body={"slug": "Not A Slug", "name": "SRE"},
        status=201,
        resource=True,
    ),
    ("GET", "/api/groups/{group_id:int}"): Case(role="viewer", no_input=True, resource=True),
    ("PUT", "/api/groups/{group_id:int}"): Case(
        role="admin", denied="editor", body={"name": "Ops"}, invalid_body={"name": ""}, resource=True
    ),
    ("DELETE", "/api/groups/{group_id:int}"): Case(role="admin", denied="editor", no_input=True),
    ("GET", "/api/groups/{group_id:int}/users"): Case(role="viewer", params={}, invalid_params=LIST),
    ("POST", "/api/groups/{group_id:int}/users"): Case(
        role="admin",
        denied="useradmin",
        body=lambda i: {"user_id": i["outsider"], "role": "viewer"},
        invalid_body=lambda i: {"user_id": i["outsider"], "role": "owner"},
        status=201,
        resource=True,
    ),
    ("PUT", "/api/groups/users/{membership_id:int}"): Case(
        role="admin",
        denied="useradmin",
        body={"role": "editor"},
        invalid_body={"role": "owner"},
        path={"membership_id": "group_membership"},
        resource=True,
    ),
    ("DELETE", "/api/groups/users/{membership_id:int}"): Case(
        role="admin", denied="useradmin", no_input=True, path={"membership_id": "group_membership"}
    ),
    ("POST", "/api/groups/users/{membership_id:int}/disable"): Case(
        role="useradmin",
        denied="editor",
        no_input=True,
        path={"membership_id": "group_membership"},
        resource=True,
    ),
    # --- users (R / A) ------------------------------------------------------------------------------
    ("GET", "/api/users"): Case(role="viewer", params={}, invalid_params=LIST),
    ("GET", "/api/admin/users"): Case(role="admin", denied="manager", params={}, invalid_params=LIST),
    ("POST", "/api/admin/users"): Case(
        role="admin",
        denied="manager",
        body={"username": "newbie", "password": "long-enough-password"},
        invalid_body={"username": "x"},
        status=201,
        resource=True,
    ),
    ("GET", "/api/admin/users/{user_id:int}"): Case(
        role="admin", denied="manager", no_input=True, resource=True
    ),
    ("PUT", "/api/admin/users/{user_id:int}"): Case(
        role="admin",
        denied="manager",
        body={"display_name": "Vera"},
        invalid_body={"email": "no-at-sign"},
        resource=True,
    ),
    ("DELETE", "/api/admin/users/{user_id:int}"): Case(role="admin", denied="manager", no_input=True),
    ("GET", "/api/admin/audit-logs"): Case(role="admin", denied="manager", params={}, invalid_params=LIST),
    ("GET", "/api/plugins"): Case(role="admin", denied="manager", no_input=True, session_only=True),
    # --- teams (R / E / M) -------------------------------------------------------------------------
    ("GET", "/api/teams"): Case(role="viewer", params={}, invalid_params=LIST),
    ("POST", "/api/teams"): Case(
        role="editor",
        denied="viewer",
        body=lambda i: {"group_id": i["group"], "slug": "dba", "name": "Databases"},
        invalid_body=lambda i: {"group_id": i["group"], "slug": "dba"},
        status=201,
        resource=True,
    ),
    ("GET", "/api/teams/{team_id:int}"): Case(role="viewer", no_input=True, resource=True),
    ("PUT", "/api/teams/{team_id:int}"): Case(
        role="manager",
        denied="responder",
        body={"description": "servers"},
        invalid_body={"escalation_after_reminders": 0},
        resource=True,
    ),
    ("DELETE", "/api/teams/{team_id:int}"): Case(role="manager", denied="responder", no_input=True),
    ("GET", "/api/teams/{team_id:int}/users"): Case(role="viewer", params={}, invalid_params=LIST),
    ("POST", "/api/teams/{team_id:int}/users"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"user_id": i["editor"], "role": "viewer"},
        invalid_body=lambda i: {"user_id": i["editor"], "role": "owner"},
        status=201,
        resource=True,
    ),
    ("PUT", "/api/teams/users/{membership_id:int}"): Case(
        role="manager",
        denied="responder",
        body={"role": "responder"},
        invalid_body={"role": "owner"},
        path={"membership_id": "team_membership"},
        resource=True,
    ),
    ("DELETE", "/api/teams/users/{membership_id:int}"): Case(
        role="manager", denied="responder", no_input=True, path={"membership_id": "team_membership"}
    ),
    # --- rotations and calendar (R / M) --------------------------------------------------------------
    ("GET", "/api/rotations"): Case(role="viewer", params={}, invalid_params=LIST),
    ("POST", "/api/rotations"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"team_id": i["team"], "name": "secondary", "start_at": "2026-06-01T09:00:00Z"},
        invalid_body=lambda i: {"team_id": i["team"], "name": "secondary", "start_at": "yesterday"},
        status=201,
        resource=True,
    ),
    ("GET", "/api/rotations/{rotation_id:int}"): Case(role="viewer", no_input=True, resource=True),
    ("PUT", "/api/rotations/{rotation_id:int}"): Case(
        role="manager",
        denied="responder",
        body={"description": "follow the sun"},
        invalid_body={"handoff_time": "25:00"},
        resource=True,
    ),
    ("DELETE", "/api/rotations/{rotation_id:int}"): Case(role="manager", denied="responder", no_input=True),
    ("PUT", "/api/rotations/{rotation_id:int}/enabled"): Case(
        role="manager", denied="responder", body={"enabled": False}, invalid_body={"enabled": "off"}
    ),
    ("GET", "/api/rotations/{rotation_id:int}/members"): Case(role="viewer", no_input=True),
    ("POST", "/api/rotations/{rotation_id:int}/members"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"user_id": i["viewer"]},
        invalid_body=lambda i: {"user_id": i["viewer"], "position": -1},
        status=201,
        resource=True,
    ),
    ("PUT", "/api/rotations/members/{member_id:int}"): Case(
        role="manager",
        denied="responder",
        body={"position": 5},
        invalid_body={"position": -1},
        resource=True,
    ),
    ("DELETE", "/api/rotations/members/{member_id:int}"): Case(
        role="manager", denied="responder", no_input=True
    ),
    ("GET", "/api/rotations/{rotation_id:int}/eligible-users"): Case(role="viewer", no_input=True),
    ("GET", "/api/rotations/{rotation_id:int}/oncall"): Case(
        role="viewer", params={"at": "2026-06-01T10:00:00Z"}, invalid_params={"at": "soon"}
    ),
    ("GET", "/api/rotations/{rotation_id:int}/overrides"): Case(
        role="viewer", params={}, invalid_params={"include_expired": "maybe"}
    ),
    ("POST", "/api/rotations/{rotation_id:int}/overrides"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"user_id": i["manager"], **WINDOW},
        invalid_body=lambda i: {"user_id": i["manager"], "starts_at": WINDOW["starts_at"]},
        status=201,
        resource=True,
    ),
    ("DELETE", "/api/rotations/overrides/{override_id:int}"): Case(
        role="manager", denied="responder", no_input=True
    ),
    ("GET", "/api/calendar"): Case(
        role="viewer",
        params=lambda i: {"team_id": i["team"], "start": "2026-06-01", "end": "2026-06-08"},
        invalid_params=lambda i: {"team_id": i["team"], "start": "2026-06-08", "end": "june"},
    ),
    # --- channels (R / M, E for group channels) ------------------------------------------------------
    ("GET", "/api/channels/types"): Case(role="viewer", no_input=True),
    ("GET", "/api/channels"): Case(role="viewer", params={}, invalid_params=LIST),
    ("POST", "/api/channels"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"team_id": i["team"], "name": "pager", "channel_type": "recording"},
        invalid_body=lambda i: {"team_id": i["team"], "channel_type": "recording"},
        status=201,
        resource=True,
    ),
    ("GET", "/api/channels/{channel_id:int}"): Case(role="viewer", no_input=True, resource=True),
    ("PUT", "/api/channels/{channel_id:int}"): Case(
        role="manager",
        denied="responder",
        body={"name": "war room"},
        invalid_body={"name": ""},
        resource=True,
    ),
    ("DELETE", "/api/channels/{channel_id:int}"): Case(role="manager", denied="responder", no_input=True),
    # --- routes (R / M) ------------------------------------------------------------------------------
    ("GET", "/api/routes"): Case(role="viewer", params={}, invalid_params=LIST),
    ("POST", "/api/routes"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"team_id": i["team"], "name": "new route", "source": "webhook"},
        invalid_body=lambda i: {
            "team_id": i["team"],
            "name": "new route",
            "source": "webhook",
            "group_wait_seconds": -1,
        },
        status=201,
        resource=True,
    ),
    ("GET", "/api/routes/{route_id:int}"): Case(role="viewer", no_input=True, resource=True),
    ("PUT", "/api/routes/{route_id:int}"): Case(
        role="manager",
        denied="responder",
        body={"name": "am route"},
        invalid_body={"group_interval_seconds": 5},
        resource=True,
    ),
    ("DELETE", "/api/routes/{route_id:int}"): Case(role="manager", denied="responder", no_input=True),
    ("POST", "/api/routes/{route_id:int}/intake-token"): Case(
        role="manager", denied="responder", no_input=True, resource=True
    ),
    ("PUT", "/api/routes/{route_id:int}/channels"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"channel_ids": [i["channel2"]]},
        invalid_body={"channel_ids": ["room"]},
        resource=True,
    ),
    ("POST", "/api/routes/{route_id:int}/channels/{channel_id:int}"): Case(
        role="manager", denied="responder", no_input=True, path={"channel_id": "channel2"}, resource=True
    ),
    ("DELETE", "/api/routes/{route_id:int}/channels/{channel_id:int}"): Case(
        role="manager", denied="responder", no_input=True, resource=True
    ),
    # --- silences (R / M) ------------------------------------------------------------------------------
    ("GET", "/api/silences"): Case(role="viewer", params={}, invalid_params={"status": "sleeping"}),
    ("POST", "/api/silences"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"team_id": i["team"], "name": "quiet", "matchers": {"alertname": "X"}, **WINDOW},
        invalid_body=lambda i: {"team_id": i["team"], "name": "quiet", "starts_at": WINDOW["starts_at"]},
        status=201,
        resource=True,
    ),
    ("GET", "/api/silences/{silence_id:int}"): Case(role="viewer", no_input=True, resource=True),
    ("PUT", "/api/silences/{silence_id:int}"): Case(
        role="manager",
        denied="responder",
        body={"reason": "deploy"},
        invalid_body={"matchers": {"alertname": {"regex": "("}}},
        resource=True,
    ),
    ("DELETE", "/api/silences/{silence_id:int}"): Case(role="manager", denied="responder", no_input=True),
    # --- categories (R / E) ----------------------------------------------------------------------------
    ("GET", "/api/categories"): Case(role="viewer", params={}, invalid_params=LIST),
    ("POST", "/api/categories"): Case(
        role="editor",
        denied="manager",
        body=lambda i: {"group_id": i["group"], "slug": "db", "name": "Databases"},
        invalid_body=lambda i: {
            "group_id": i["group"],
            "slug": "db",
            "name": "Databases",
            "presentation": "x",
        },
        status=201,
        resource=True,
    ),
    ("GET", "/api/categories/{category_id:int}"): Case(role="viewer", no_input=True, resource=True),
    ("PUT", "/api/categories/{category_id:int}"): Case(
        role="editor",
        denied="manager",
        body={"name": "Storage"},
        invalid_body={"position": -1},
        resource=True,
    ),
    ("DELETE", "/api/categories/{category_id:int}"): Case(role="editor", denied="manager", no_input=True),
    # --- alerts (R / Resp), explain, simulate (M) ------------------------------------------------------
    ("GET", "/api/alerts"): Case(
        role="viewer",
        params={"status": "firing", "sort": "severity", "order": "asc", "include_test": "true"},
        invalid_params={"sort": "random"},
    ),
    ("GET", "/api/alerts/{group_id:int}"): Case(role="viewer", no_input=True, path=ALERT, resource=True),
    ("GET", "/api/alerts/{group_id:int}/events"): Case(role="viewer", no_input=True, path=ALERT),
    ("GET", "/api/alerts/{group_id:int}/explain"): Case(role="viewer", no_input=True, path=ALERT),
    ("GET", "/api/alert-groups/{group_id:int}/explain"): Case(role="viewer", no_input=True, path=ALERT),
    ("GET", "/api/explain/{trace_id:str}"): Case(role="viewer", no_input=True),
    ("GET", "/api/alert-groups/explain/{trace_id:str}"): Case(role="viewer", no_input=True),
    ("POST", "/api/alerts/{group_id:int}/ack"): Case(
        role="responder",
        denied="viewer",
        body={"comment": "on it"},
        invalid_body={"comment": 5},
        path=ALERT,
        resource=True,
    ),
    ("POST", "/api/alerts/{group_id:int}/resolve"): Case(
        role="responder",
        denied="viewer",
        body={"comment": "fixed"},
        invalid_body={"comment": ["x"]},
        path=ALERT,
        resource=True,
    ),
    ("POST", "/api/simulate"): Case(
        role="manager",
        denied="responder",
        body=lambda i: {"source": "alertmanager", "payload": AM, "route_id": i["route_alertmanager"]},
        invalid_body={"source": "alertmanager", "payload": AM, "horizon_seconds": -1},
    ),
    # --- intake (route intake token; API token with alerts:write) -------------------------------------
    ("POST", "/api/integrations/alertmanager"): Case(
        role=INTAKE, body=AM, invalid_body={"alerts": "x"}, path={"source": "alertmanager"}
    ),
    ("POST", "/api/integrations/grafana"): Case(
        role=INTAKE,
        body=lambda i: i["grafana_payload"],
        invalid_body={"alerts": 5},
        path={"source": "grafana"},
    ),
    ("PUT", "/api/integrations/grafana"): Case(
        role=INTAKE,
        body=lambda i: i["grafana_payload"],
        invalid_body={"alerts": 5},
        path={"source": "grafana"},
    ),
    ("POST", "/api/integrations/zabbix"): Case(
        role=INTAKE,
        body=lambda i: i["zabbix_payload"],
        invalid_body=[1, 2],
        path={"source": "zabbix"},
    ),
    ("POST", "/api/integrations/webhook"): Case(
        role=INTAKE,
        body={"title": "Disk full", "severity": "critical", "dedup_key": "w-1"},
        invalid_body={"title": "x", "labels": "not-a-mapping"},
        path={"source": "webhook"},
    ),
    # --- public operational endpoints -----------------------------------------------------------------
    ("GET", "/api/version"): Case(role=PUBLIC, no_input=True),
    ("GET", "/api/openapi.json"): Case(role=PUBLIC, no_input=True),
    ("GET", "/healthz"): Case(role=PUBLIC, no_input=True),
    ("GET", "/livez"): Case(role=PUBLIC, no_input=True),
    ("GET", "/readyz"): Case(role=PUBLIC, no_input=True),
    ("GET", "/metrics"): Case(role=PUBLIC, no_input=True),
}

# Categories, role groups, subscriptions and tests (S8), built alongside by another engineer.
MATRIX.update(
    {
        ("GET", "/api/category-rules"): Case(role="viewer", params={}, invalid_params=LIST, extras=True),
        ("POST", "/api/category-rules"): Case(
            role="editor",
            denied="manager",
            body=lambda i: {"group_id": i["group"], "category_id": i["category"], "matchers": {"a": "b"}},
            invalid_body=lambda i: {"group_id": i["group"], "category_id": i["category"], "position": -1},
            status=201,
            resource=True,
            extras=True,
        ),
        ("PUT", "/api/category-rules/{rule_id:int}"): Case(
            role="editor",
            denied="manager",
            body={"enabled": False},
            invalid_body={"matchers": {"alertname": {"regex": "("}}},
            resource=True,
            extras=True,
        ),
        ("DELETE", "/api/category-rules/{rule_id:int}"): Case(
            role="editor", denied="manager", no_input=True, extras=True
        ),
        ("GET", "/api/role-groups"): Case(role="viewer", params={}, invalid_params=LIST, extras=True),
        ("POST", "/api/role-groups"): Case(
            role="editor",
            denied="manager",
            body=lambda i: {"group_id": i["group"], "slug": "oncall-leads", "name": "On-call leads"},
            invalid_body=lambda i: {"group_id": i["group"], "slug": "Bad Slug", "name": "Leads"},
            status=201,
            resource=True,
            extras=True,
        ),
        ("GET", "/api/role-groups/{rg_id:int}"): Case(
            role="viewer", no_input=True, resource=True, extras=True
        ),
        ("PUT", "/api/role-groups/{rg_id:int}"): Case(
            role="editor",
            denied="manager",
            body={"description": "database people"},
            invalid_body={"slug": "Bad Slug"},
            resource=True,
            extras=True,
        ),
        ("DELETE", "/api/role-groups/{rg_id:int}"): Case(
            role="editor", denied="manager", no_input=True, path={"rg_id": "role_group_unused"}, extras=True
        ),
        ("GET", "/api/role-groups/{rg_id:int}/members"): Case(role="viewer", no_input=True, extras=True),
        ("POST", "/api/role-groups/{rg_id:int}/members"): Case(
            role="editor",
            denied="manager",
            body=lambda i: {"user_id": i["manager"]},
            invalid_body={"user_id": "manager"},
            status=201,
            extras=True,
        ),
        ("DELETE", "/api/role-groups/members/{member_id:int}"): Case(
            role="editor", denied="manager", no_input=True, path={"member_id": "rg_member"}, extras=True
        ),
        ("GET", "/api/role-groups/{rg_id:int}/contacts"): Case(role="viewer", no_input=True, extras=True),
        ("POST", "/api/role-groups/{rg_id:int}/contacts"): Case(
            role="editor",
            denied="manager",
            body={"name": "Duty desk", "email": "desk@example.com"},
            invalid_body={"email": "desk@example.com"},
            status=201,
            extras=True,
        ),
        ("PUT", "/api/role-groups/contacts/{contact_id:int}"): Case(
            role="editor", denied="manager", body={"name": "NOC desk"}, invalid_body={"name": 5}, extras=True
        ),
        ("DELETE", "/api/role-groups/contacts/{contact_id:int}"): Case(
            role="editor", denied="manager", no_input=True, extras=True
        ),
        ("GET", "/api/subscriptions"): Case(role="viewer", params={}, invalid_params=LIST, extras=True),
        ("POST", "/api/subscriptions"): Case(
            role="editor",
            denied="manager",
            body=lambda i: {
                "role_group_id": i["role_group"],
                "name": "storage mail",
                "category": "storage",
                "group_id": i["group"],
                "channel_types": ["email"],
            },
            invalid_body=lambda i: {"role_group_id": i["role_group"], "name": "x", "events": []},
            status=201,
            resource=True,
            extras=True,
        ),
        ("GET", "/api/subscriptions/{sub_id:int}"): Case(
            role="viewer", no_input=True, resource=True, extras=True
        ),
        ("PUT", "/api/subscriptions/{sub_id:int}"): Case(
            role="editor",
            denied="manager",
            body={"name": "storage pages"},
            invalid_body={"channel_types": ["pigeon"]},
            resource=True,
            extras=True,
        ),
        ("DELETE", "/api/subscriptions/{sub_id:int}"): Case(
            role="editor", denied="manager", no_input=True, extras=True
        ),
        ("POST", "/api/subscriptions/presets/standard"): Case(
            role="editor",
            denied="manager",
            body=lambda i: {"group_id": i["group"]},
            invalid_body={"group_id": "ops"},
            extras=True,
        ),
        ("GET", "/api/profile/subscriptions"): Case(role="viewer", no_input=True, extras=True),
        ("PUT", "/api/profile/subscriptions"): Case(
            role="viewer",
            body=lambda i: [{"subscription_id": i["subscription"], "opted_in": False}],
            invalid_body=[{"subscription_id": "x", "opted_in": False}],
            extras=True,
        ),
        ("GET", "/api/alerts/{group_id:int}/subscriptions"): Case(
            role="viewer", no_input=True, path=ALERT, extras=True
        ),
        ("PUT", "/api/alerts/{group_id:int}/category"): Case(
            role="responder",
            denied="viewer",
            body={"category": "storage"},
            invalid_body={"category": "Not A Slug"},
            path=ALERT,
            resource=True,
            extras=True,
        ),
        ("POST", "/api/routes/{route_id:int}/test-alert"): Case(
            role="manager",
            denied="responder",
            body={"severity": "warning"},
            invalid_body={"severity": "apocalyptic"},
            extras=True,
        ),
        ("GET", "/api/notifications/tests/{test_id:str}"): Case(role="manager", no_input=True, extras=True),
        ("POST", "/api/channels/{channel_id:int}/test"): Case(
            role="manager", denied="responder", no_input=True
        ),
        ("POST", "/api/subscriptions/{sub_id:int}/test"): Case(
            role="editor", denied="manager", no_input=True, extras=True
        ),
        # The voice/SMS simulator (S7.10): administrators only, sessions only.
        ("GET", "/api/simulator/calls"): Case(
            role="admin", denied="manager", no_input=True, session_only=True
        ),
        ("GET", "/api/simulator/messages"): Case(
            role="admin", denied="manager", no_input=True, session_only=True
        ),
    }
)

# The simulator's per-call and per-message actions and its webhook sink (S7.10): administrators
# only, sessions only; the sink accepts deliveries without auth while the simulator is enabled.
# Calls and messages are made with callbacks off, so scripting them sends nothing over HTTP.
_SIM = {"role": "admin", "denied": "manager", "session_only": True, "simulator": True}
MATRIX.update(
    {
        ("GET", "/api/simulator/calls/{call_id:str}"): Case(**_SIM, no_input=True),
        ("POST", "/api/simulator/calls/{call_id:str}/answer"): Case(**_SIM, no_input=True),
        ("POST", "/api/simulator/calls/{call_id:str}/hangup"): Case(**_SIM, no_input=True),
        ("POST", "/api/simulator/calls/{call_id:str}/press"): Case(
            **_SIM, body={"digit": "1"}, invalid_body={}
        ),
        ("POST", "/api/simulator/calls/{call_id:str}/status"): Case(
            **_SIM, body={"status": "busy"}, invalid_body={}
        ),
        ("POST", "/api/simulator/calls/{call_id:str}/error"): Case(
            **_SIM, body={"message": "Insufficient balance"}, invalid_body={}
        ),
        ("POST", "/api/simulator/calls/{call_id:str}/callback"): Case(
            **_SIM, body={"bad_signature": True}, invalid_body={"bad_secret": "yes"}
        ),
        ("POST", "/api/simulator/messages/{message_id:str}/status"): Case(
            **_SIM, body={"status": "delivered"}, invalid_body={}
        ),
        ("GET", "/api/simulator/sink/{name:str}"): Case(**_SIM, no_input=True),
        ("POST", "/api/simulator/sink/{name:str}"): Case(role=PUBLIC, no_input=True, simulator=True),
    }
)

# Endpoints of other parts of the product that are not API endpoints of this matrix.
NOT_API: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/api/_schema"),
        ("GET", "/api/_schema/openapi.json"),
        ("GET", "/api/_schema/{path:str}"),
    }
)

# Endpoints not yet in the matrix: each entry is a known gap, to remove when its row is added.
NOT_YET: frozenset[tuple[str, str]] = frozenset()

# Token domain per first path segment, written out from SPEC S9.4 (independent of auth.py).
SCOPE_DOMAINS: Mapping[str, str] = {
    "alerts": "alerts",
    "alert-groups": "alerts",
    "explain": "alerts",
    "simulate": "alerts",
    "groups": "groups",
    "users": "users",
    "teams": "teams",
    "rotations": "rotations",
    "calendar": "calendar",
    "routes": "routes",
    "channels": "channels",
    "silences": "maintenance",
    "categories": "categories",
    "category-rules": "categories",
    "role-groups": "categories",
    "subscriptions": "categories",
    "notifications": "channels",
    "profile": "profile",
    "auth": "profile",
}


def _app_endpoints(app: Litestar) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for method in getattr(handler, "http_methods", ()):
                if method not in ("HEAD", "OPTIONS"):
                    found.add((method, route.path))
    return found


OPERATIONAL: frozenset[str] = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})


# The simulator keeps its calls under <data_dir>/simulator: a directory of this module's own.
_DATA_DIR = tempfile.TemporaryDirectory(prefix="relay-matrix-")
MATRIX_SETTINGS = RelaySettings(
    main=MainSettings(data_dir=_DATA_DIR.name),
    server=ServerSettings(public_base_url="https://relay.test"),
    simulator=SimulatorSettings(enabled=True),
)
SHARED_APP = asyncio.run(build_world(settings=MATRIX_SETTINGS)).app  # rebound to a fresh world by every case


def _endpoints() -> list[tuple[str, str]]:
    """The app's API endpoints: everything under ``/api/`` plus the operational probes (web UI
    pages are HTML, tested with the UI)."""
    return sorted(
        (method, path)
        for method, path in _app_endpoints(SHARED_APP)
        if path.startswith("/api/") or path in OPERATIONAL
    )


ENDPOINTS = _endpoints()
COVERED = [e for e in ENDPOINTS if e in MATRIX]


def test_every_endpoint_is_in_the_matrix() -> None:
    """Each route of the app is in the matrix, or listed as not an API endpoint or not yet covered."""
    known = {*MATRIX, *SIGNED, *NOT_API, *NOT_YET}
    unknown = [e for e in ENDPOINTS if e not in known]
    assert unknown == [], f"endpoints missing from test_server_matrix.MATRIX: {unknown}"
    assert not set(MATRIX) & set(SIGNED)
    stale = [e for e in (*MATRIX, *SIGNED) if e not in ENDPOINTS]
    assert stale == [], f"matrix rows for endpoints the app no longer has: {stale}"


# --- the world each case runs in -----------------------------------------------------------------


async def _prepare(world: World, client: AsyncTestClient[Litestar]) -> dict[str, Any]:
    """Add what the fixture world lacks: an alert with a trace, a silence, a category, an override,
    a second channel, and the ids of memberships and rotation members."""
    ids: dict[str, Any] = dict(world.ids)
    admin = world.auth("admin")
    intake = await client.post(
        "/api/integrations/alertmanager",
        json=AM,
        headers={"Authorization": f"Bearer {world.tokens['route_alertmanager']}"},
    )
    assert intake.status_code == 200, intake.text
    ids["alert"] = intake.json()[0]["group_id"]
    ids["trace"] = intake.json()[0]["trace_id"]
    created = {
        "silence": ("/api/silences", {"team_id": ids["team"], "name": "night", **WINDOW}),
        "category": ("/api/categories", {"group_id": ids["group"], "slug": "storage", "name": "Storage"}),
        "override": (
            f"/api/rotations/{ids['rotation']}/overrides",
            {"user_id": ids["responder"], **WINDOW},
        ),
    }
    for key, (url, body) in created.items():
        response = await client.post(url, json=body, headers=admin)
        assert response.status_code == 201, (url, response.text)
        ids[key] = response.json()["id"]
    async with world.relay.uow_factory() as uow:
        channel = await uow.channels.add(
            Channel(group_id=ids["group"], team_id=ids["team"], name="spare", channel_type="recording")
        )
        ids["channel2"] = channel.id
        group_m = await uow.group_memberships.first(user_id=ids["viewer"], group_id=ids["group"])
        team_m = await uow.team_memberships.first(user_id=ids["viewer"], team_id=ids["team"])
        member = await uow.rotation_members.first(rotation_id=ids["rotation"], user_id=ids["responder"])
        assert group_m is not None
        assert team_m is not None
        assert member is not None
        ids.update(group_membership=group_m.id, team_membership=team_m.id, rotation_member=member.id)
        await uow.commit()
    fixtures = Path(__file__).parent / "fixtures"
    ids["grafana_payload"] = json.loads((fixtures / "grafana.json").read_text())
    ids["zabbix_payload"] = json.loads((fixtures / "zabbix_problem.json").read_text())
    return ids


async def _prepare_extras(world: World, client: AsyncTestClient[Litestar], ids: dict[str, Any]) -> None:
    """A role group with a member and a contact, a subscription, a category rule and a channel test run."""
    admin = world.auth("admin")

    async def create(key: str, url: str, body: Mapping[str, Any]) -> None:
        response = await client.post(url, json=body, headers=admin)
        assert response.status_code == 201, (url, response.text)
        ids[key] = response.json()["id"]

    await create("role_group", "/api/role-groups", {"group_id": ids["group"], "slug": "dbas", "name": "DBAs"})
    await create(
        "role_group_unused", "/api/role-groups", {"group_id": ids["group"], "slug": "spare", "name": "Spare"}
    )
    await create("rg_member", f"/api/role-groups/{ids['role_group']}/members", {"user_id": ids["viewer"]})
    await create(
        "contact", f"/api/role-groups/{ids['role_group']}/contacts", {"name": "NOC", "email": "n@x.io"}
    )
    await create(
        "subscription",
        "/api/subscriptions",
        {
            "role_group_id": ids["role_group"],
            "name": "storage",
            "category": "storage",
            "group_id": ids["group"],
            "channel_types": ["email"],
        },
    )
    await create(
        "rule",
        "/api/category-rules",
        {"group_id": ids["group"], "category_id": ids["category"], "matchers": {"alertname": "DiskFull"}},
    )
    run = await client.post(f"/api/channels/{ids['channel']}/test", headers=admin)
    assert run.status_code == 200, run.text
    ids["test_run"] = run.json()["test_id"]


def _prepare_simulator(ids: dict[str, Any]) -> None:
    """A ringing simulator call and a sent simulator text message (callbacks off: no HTTP)."""
    store = str(Path(MATRIX_SETTINGS.data_dir) / "simulator")
    call = SimulatorVoice({"store_dir": store, "callbacks": False}).place_call(
        VoiceCallRequest(
            phone="+15550001234", text="Relay alert", alert_id=ids["alert"], event_type="notification"
        )
    )
    message = SimulatorSms({"store_dir": store, "callbacks": False}).send_sms(
        SmsSendRequest(
            phone="+15550001234", text="Relay alert", alert_id=ids["alert"], event_type="notification"
        )
    )
    ids.update(sim_call=call.call_id, sim_message=message.message_id, sink=f"matrix-{call.call_id}")


# --- signature-, secret- and token-authenticated endpoints -------------------------------------------

MM_SECRET = "matrix-mattermost-secret"
SLACK_SECRET = "matrix-slack-signing-secret"
TG_SECRET = "matrix-telegram-secret"
VOICE_SECRET = "matrix-voice-callback-secret"
SMS_SECRET = "matrix-sms-callback-secret"

#: One request: ``url`` plus keyword arguments of ``client.request``.
Req = dict[str, Any]
#: A refused request: what it tries, the request, the documented status and error code.
Refusal = tuple[str, Req, int, str]


@attrs.frozen(kw_only=True)
class Signed:
    """An endpoint that authenticates by a signature, a shared secret or a signed token."""

    refusals: Callable[[World, Ids], list[Refusal]]
    accepted: Callable[[World, Ids], Req]
    status: int = 200
    answer: Mapping[str, Any] = attrs.field(factory=dict)  # keys the accepted answer must carry
    acknowledges: bool = False  # the accepted request acknowledges the alert as the responder


async def _prepare_signed(world: World, ids: dict[str, Any]) -> None:
    """Chat channels in bot mode with their secrets, voice and SMS channels with callback secrets,
    the responder linked to the chat accounts, and the voice_call sender of the shells."""
    async with world.relay.uow_factory() as uow:

        async def add(key: str, channel_type: str, config: dict[str, Any], secret: str | None = None) -> None:
            channel = await uow.channels.add(
                Channel(
                    group_id=ids["group"],
                    team_id=ids["team"],
                    name=f"matrix {key}",
                    channel_type=channel_type,
                    config=config,
                    callback_secret=secret,
                )
            )
            ids[key] = channel.id

        await add(
            "mm",
            "mattermost",
            {
                "mode": "bot_api",
                "api_url": "https://mattermost.invalid",
                "bot_token": "mm-bot-token",
                "channel_id": "town",
                "callback_secret": MM_SECRET,
            },
        )
        await add(
            "slack",
            "slack",
            {
                "mode": "bot_api",
                "bot_token": "xoxb-matrix",
                "channel_id": "C123",
                "signing_secret": SLACK_SECRET,
            },
        )
        await add(
            "tg",
            "telegram",
            {"bot_token": "123456:matrix-bot", "chat_id": "-100", "webhook_secret": TG_SECRET},
        )
        await add("voice", "voice_call", {"provider": "stub"}, VOICE_SECRET)
        await add("sms", "sms", {"provider": "stub"}, SMS_SECRET)
        responder = await uow.users.get(ids["responder"])
        assert responder is not None
        await uow.users.update(attrs.evolve(responder, mattermost_user_id="mm-resp", slack_user_id="U-RESP"))
        await uow.commit()
    registry = world.relay.registry
    assert registry is not None
    loader = make_voice_loader(
        plugins=registry.voice_providers(), providers_dir=Path(MATRIX_SETTINGS.data_dir) / "voice_providers"
    )
    world.relay.ctx.voice_loader = loader
    world.relay.ctx.senders["voice_call"] = VoiceCallChannel(loader, public_base_url="https://relay.test")


def _mm(ids: Ids, *, signature: str | None = None, **body: Any) -> Req:
    signed = hmac.new(
        MM_SECRET.encode(), f"ir:mm:acknowledge:{ids['alert']}:{ids['mm']}".encode(), hashlib.sha256
    ).hexdigest()
    context = {"alert_id": ids["alert"], "channel_id": ids["mm"], "action": "acknowledge"}
    payload = {"user_id": "mm-resp", "context": {**context, "signature": signature or signed}, **body}
    return {"url": "/api/integrations/mattermost/actions", "json": payload}


def _slack(world: World, ids: Ids, *, skew: int = 0, secret: str = SLACK_SECRET, sign: bool = True) -> Req:
    value = json.dumps({"alert_id": ids["alert"], "channel_id": ids["slack"], "action": "acknowledge"})
    payload = {
        "type": "block_actions",
        "user": {"id": "U-RESP"},
        "channel": {"id": "C123"},
        "container": {"type": "message", "message_ts": "1700.01"},
        "actions": [{"action_id": "relay_acknowledge", "value": value, "type": "button"}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign:
        timestamp = str(int(world.clock.now().timestamp()) + skew)
        digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
        headers |= {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest.hexdigest()}"}
    return {"url": "/api/integrations/slack/actions", "content": body, "headers": headers}


def _tg(
    ids: Ids, secret: str | None = TG_SECRET, *, body: bytes = b'{"update_id": 7001}', channel: str = "tg"
) -> Req:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return {"url": f"/api/integrations/telegram/webhook/{ids[channel]}", "content": body, "headers": headers}


def _link(world: World, ids: Ids, *, expires_in: int = 3600) -> str:
    claims = ActionClaims(
        jti=f"matrix-{expires_in}",
        group_id=ids["alert"],
        action="acknowledge",
        channel_id=ids["channel"],
        user_id=ids["responder"],
        expires_at=world.clock.now() + dt.timedelta(seconds=expires_in),
    )
    return sign_action(world.relay.ctx.settings.secret_key, claims)


def _provider_callback(kind: str, code: str) -> dict[str, Signed]:
    """``/api/integrations/<kind>/callback/{channel_id}/{secret}`` and the header-secret form."""
    secret = VOICE_SECRET if kind == "voice" else SMS_SECRET
    other = "sms" if kind == "voice" else "voice"
    body = {"call_id": "unknown-call"} if kind == "voice" else {"message_id": "unknown-message"}
    base = f"/api/integrations/{kind}/callback"

    def path_form(_w: World, i: Ids) -> list[Refusal]:
        return [
            ("wrong secret", {"url": f"{base}/{i[kind]}/not-the-secret", "json": body}, 403, code),
            ("unknown channel", {"url": f"{base}/99999/{secret}", "json": body}, 404, "not_found"),
            (
                "channel of another type",
                {
                    "url": f"{base}/{i[other]}/{VOICE_SECRET if other == 'voice' else SMS_SECRET}",
                    "json": body,
                },
                400,
                "channel_type_mismatch",
            ),
        ]

    def header_form(_w: World, i: Ids) -> list[Refusal]:
        url = f"{base}/{i[kind]}"
        return [
            ("no secret", {"url": url, "json": body}, 403, code),
            (
                "wrong bearer secret",
                {"url": url, "json": body, "headers": {"Authorization": "Bearer nope"}},
                403,
                code,
            ),
            (
                "wrong header secret",
                {"url": url, "json": body, "headers": {"X-Relay-Callback-Secret": "nope"}},
                403,
                code,
            ),
        ]

    return {
        "path": Signed(
            refusals=path_form,
            accepted=lambda _w, i: {"url": f"{base}/{i[kind]}/{secret}", "json": body},
            answer={"status": "ignored"},  # the stub provider reports no events
        ),
        "header": Signed(
            refusals=header_form,
            accepted=lambda _w, i: {
                "url": f"{base}/{i[kind]}",
                "json": body,
                "headers": {"X-Relay-Callback-Secret": secret},
            },
            answer={"status": "ignored"},
        ),
    }


_VOICE = _provider_callback("voice", "voice_callback_rejected")
_SMS = _provider_callback("sms", "sms_callback_rejected")

SIGNED: dict[tuple[str, str], Signed] = {
    ("POST", "/api/integrations/mattermost/actions"): Signed(
        refusals=lambda _w, i: [
            ("bad signature", _mm(i, signature="0" * 64), 403, "invalid_signature"),
            (
                "no context",
                {"url": "/api/integrations/mattermost/actions", "json": {"user_id": "mm-resp"}},
                400,
                "invalid_payload",
            ),
            (
                "not JSON",
                {
                    "url": "/api/integrations/mattermost/actions",
                    "content": b"{nope",
                    "headers": {"Content-Type": "application/json"},
                },
                400,
                "invalid_payload",
            ),
        ],
        accepted=lambda _w, i: _mm(i),
        answer={"ephemeral_text": "Alert #1 acknowledged"},
        acknowledges=True,
    ),
    ("POST", "/api/integrations/slack/actions"): Signed(
        refusals=lambda w, i: [
            ("unsigned", _slack(w, i, sign=False), 401, "invalid_signature"),
            ("wrong signing secret", _slack(w, i, secret="not-the-secret"), 401, "invalid_signature"),
            ("stale timestamp", _slack(w, i, skew=-301), 401, "stale_request"),
            (
                "no payload",
                {
                    "url": "/api/integrations/slack/actions",
                    "content": b"x=1",
                    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                },
                400,
                "invalid_payload",
            ),
        ],
        accepted=_slack,
        answer={"ok": True, "result": "applied"},
        acknowledges=True,
    ),
    ("POST", "/api/integrations/telegram/webhook/{channel_id:int}"): Signed(
        refusals=lambda _w, i: [
            ("no secret token", _tg(i, None), 401, "invalid_secret_token"),
            ("wrong secret token", _tg(i, "not-the-secret"), 401, "invalid_secret_token"),
            ("another channel's secret", _tg(i, TG_SECRET, channel="mm"), 401, "invalid_secret_token"),
            ("not JSON", _tg(i, body=b"{nope"), 400, "invalid_payload"),
        ],
        accepted=lambda _w, i: _tg(i),
        answer={"ok": True, "result": "ignored"},  # an update without a callback query
    ),
    ("POST", "/api/actions/{token:str}"): Signed(
        refusals=lambda w, i: [
            ("no session", {"url": f"/api/actions/{_link(w, i)}"}, 401, "unauthorized"),
            (
                "forged signature",
                {"url": f"/api/actions/{_link(w, i).split('.')[0]}.AAAA", "headers": w.auth("responder")},
                400,
                "invalid_token",
            ),
            (
                "expired",
                {"url": f"/api/actions/{_link(w, i, expires_in=-1)}", "headers": w.auth("responder")},
                410,
                "token_expired",
            ),
            (
                "no responder rights",
                {"url": f"/api/actions/{_link(w, i)}", "headers": w.auth("viewer")},
                403,
                "action_rejected",
            ),
        ],
        accepted=lambda w, i: {"url": f"/api/actions/{_link(w, i)}", "headers": w.auth("responder")},
        answer={"result": "applied", "action": "acknowledge", "status": "acknowledged"},
        acknowledges=True,
    ),
    ("POST", "/api/integrations/voice/callback/{channel_id:int}/{secret:str}"): _VOICE["path"],
    ("POST", "/api/integrations/voice/callback/{channel_id:int}"): _VOICE["header"],
    ("POST", "/api/integrations/sms/callback/{channel_id:int}/{secret:str}"): _SMS["path"],
    ("POST", "/api/integrations/sms/callback/{channel_id:int}"): _SMS["header"],
}


async def _signed_fingerprint(world: World, group_id: int) -> tuple[Any, ...]:
    """What a refused callback or link must not change: the group, its timeline and outbox, chat
    callbacks, callback receipts and used action links."""
    group = await world.get("alert_groups", group_id)
    return (
        group.status,
        group.acknowledged_by,
        await world.count("events", group_id=group_id),
        await world.count("intents"),
        await world.count("callbacks"),
        await world.count("callback_receipts"),
        await world.count("action_tokens"),
        await world.count("audit"),
    )


SIGNED_CASES = sorted(SIGNED)


@pytest.mark.parametrize(("method", "path"), SIGNED_CASES, ids=[f"{m} {p}" for m, p in SIGNED_CASES])
async def test_signed_endpoint_matrix(method: str, path: str) -> None:
    """Each missing, wrong or stale signature/secret/token gets its documented 4xx in the S9.5
    shape and changes nothing; the correctly signed request is accepted."""
    case = SIGNED[(method, path)]
    world = await build_world(app=SHARED_APP)
    async with AsyncTestClient(app=world.app) as client:
        ids = await _prepare(world, client)
        await _prepare_signed(world, ids)
        before = await _signed_fingerprint(world, ids["alert"])
        refusals = case.refusals(world, ids)
        assert refusals
        for label, request, status, code in refusals:
            request = dict(request)
            response = await client.request(method, request.pop("url"), **request)
            assert response.status_code == status, (label, response.status_code, response.text)
            _assert_error(response, status, code)
            assert await _signed_fingerprint(world, ids["alert"]) == before, label
        request = dict(case.accepted(world, ids))
        response = await client.request(method, request.pop("url"), **request)
        assert response.status_code == case.status, response.text
        assert {k: response.json().get(k) for k in case.answer} == dict(case.answer), response.text
        group = await world.get("alert_groups", ids["alert"])
        expected = ("acknowledged", ids["responder"]) if case.acknowledges else ("firing", None)
        assert (group.status, group.acknowledged_by) == expected


SIMULATOR_PATHS = [e for e in ENDPOINTS if e[1].startswith("/api/simulator/")]


@pytest.mark.parametrize(("method", "path"), SIMULATOR_PATHS, ids=[f"{m} {p}" for m, p in SIMULATOR_PATHS])
async def test_simulator_endpoints_are_404_while_disabled(method: str, path: str) -> None:
    """With ``simulator.enabled = false`` every simulator endpoint, the open sink included, is
    404 ``not_found`` for an administrator too, and nothing is recorded."""
    world = await build_world(app=SHARED_APP)
    state: ServerState = world.app.state[STATE_KEY]
    async with AsyncTestClient(app=world.app) as client:
        ids = await _prepare(world, client)
        _prepare_simulator(ids)
        case = MATRIX[(method, path)]
        headers = {} if case.role == PUBLIC else world.auth("admin")
        state.settings = attrs.evolve(MATRIX_SETTINGS, simulator=SimulatorSettings(enabled=False))
        try:
            response = await client.request(
                method, _url(path, case, ids), headers=headers, json=_v(case.body, ids)
            )
        finally:
            state.settings = MATRIX_SETTINGS
        _assert_error(response, 404, "not_found")
        call = await client.get(f"/api/simulator/calls/{ids['sim_call']}", headers=world.auth("admin"))
        assert call.json()["status"] == "ringing"
        sink = await client.get(f"/api/simulator/sink/{ids['sink']}", headers=world.auth("admin"))
        assert sink.json() == []


async def _token(world: World, user: str, scopes: tuple[str, ...]) -> str:
    token = new_token(PERSONAL_TOKEN_PREFIX)
    async with world.relay.uow_factory() as uow:
        await uow.api_tokens.add(
            ApiToken(
                user_id=world.ids[user],
                name=f"matrix {'-'.join(scopes)}",
                token_prefix=token.prefix,
                token_hash=token.hash,
                scopes=scopes,
            )
        )
        await uow.commit()
    return token.raw


def _url(template: str, case: Case, ids: Ids) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(ids[case.path.get(name, PATH_IDS.get(name, name))])

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, template)


def _assert_error(response: Any, status: int | tuple[int, ...], code: str | None = None) -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "message", "details"}, body
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["details"], list)
    if code is not None:
        assert body["error"] == code, body
    return body


def _scope_of(method: str, path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    if parts[:1] != ["api"] or len(parts) < 2:
        return None
    domain = {"users": "users", "audit-logs": "audit"}.get(parts[2]) if parts[1] == "admin" else None
    domain = domain or SCOPE_DOMAINS.get(parts[1])
    if domain is None:
        return None
    return f"{domain}:{'read' if method == 'GET' else 'write'}"


async def _fingerprint(world: World) -> tuple[int, ...]:
    """Row counts that any accepted write changes (audit rows, alerts, traces)."""
    return (
        await world.count("audit"),
        await world.count("alert_groups"),
        await world.count("alerts"),
        await world.count("traces"),
    )


@pytest.mark.parametrize(("method", "path"), COVERED, ids=[f"{m} {p}" for m, p in COVERED])
async def test_endpoint_matrix(method: str, path: str) -> None:
    """Missing auth → 401, a user without the role → 403, a resource of another group → 404, a
    token without the scope → 403, invalid input → 400, each in the S9.5 shape and changing
    nothing; then the right role succeeds."""
    case = MATRIX[(method, path)]
    world = await build_world(app=SHARED_APP)
    async with AsyncTestClient(app=world.app) as client:
        ids = await _prepare(world, client)
        if case.extras:
            await _prepare_extras(world, client, ids)
        if case.simulator:
            _prepare_simulator(ids)
        url = _url(path, case, ids)
        body = _v(case.body, ids)
        params = _v(case.params, ids)
        before = await _fingerprint(world)

        async def call(headers: Mapping[str, str], *, json_body: Any = None, query: Any = None) -> Any:
            return await client.request(
                method,
                url,
                headers=dict(headers),
                json=json_body,
                params=query,
            )

        if case.role == INTAKE:
            good = {"Authorization": f"Bearer {world.tokens['route_' + case.path['source']]}"}
            _assert_error(await call({}, json_body=body), 401, "unauthorized")
            reader = await _token(world, "responder", ("alerts:read",))
            denied = _assert_error(
                await call({"Authorization": f"Bearer {reader}"}, json_body=body), 403, "permission_denied"
            )
            assert denied["missing_scopes"] == ["alerts:write"]
            _assert_error(await call(good, json_body=_v(case.invalid_body, ids)), 400, "validation_error")
            assert await _fingerprint(world) == before
            response = await call(good, json_body=body)
            assert response.status_code in (200, 202), response.text
            return

        if case.role != PUBLIC:
            _assert_error(await call({}, json_body=body, query=params), 401, "unauthorized")
            if case.denied is not None:
                _assert_error(
                    await call(world.auth(case.denied), json_body=body, query=params),
                    403,
                    "permission_denied",
                )
            if "{" in path and case.role != "admin":
                # A resource outside every group the caller can see does not exist for them (S9.3).
                _assert_error(
                    await call(world.auth("outsider"), json_body=body, query=params), 404, "not_found"
                )
            scope = _scope_of(method, path)
            if case.session_only or scope is None:
                anything = await _token(world, case.role, ("*",))
                _assert_error(
                    await call({"Authorization": f"Bearer {anything}"}, json_body=body, query=params),
                    403,
                    "permission_denied",
                )
            else:
                # A token of the right user whose scope is another domain's is refused…
                other = "status:read"
                wrong = await _token(world, case.role, (other,))
                refused = _assert_error(
                    await call({"Authorization": f"Bearer {wrong}"}, json_body=body, query=params),
                    403,
                    "permission_denied",
                )
                assert refused["missing_scopes"] == [scope]
        if not case.no_input:
            headers = {} if case.role == PUBLIC else world.auth(case.role)
            if case.invalid_params is not None:
                invalid = await call(headers, json_body=body, query=_v(case.invalid_params, ids))
            else:
                bad = _v(case.invalid_body, ids)
                if bad is None:
                    bad = {**(body or {}), "unexpected_field": 1}
                invalid = await call(headers, json_body=bad, query=params)
            failure = _assert_error(invalid, (400, 422))
            assert failure["error"] in ("validation_error", "invalid_json"), failure
            assert failure["details"], failure
        assert await _fingerprint(world) == before

        if case.role == PUBLIC:
            headers = {}
        elif case.session_only or _scope_of(method, path) is None:
            headers = world.auth(case.role)
        else:
            # …and one holding exactly the needed scope acts with the user's rights (S9.3 ∩ S9.4).
            token = await _token(world, case.role, (str(_scope_of(method, path)),))
            headers = {"Authorization": f"Bearer {token}"}
        response = await call(headers, json_body=body, query=params)
        assert response.status_code == case.status, (response.status_code, response.text)
        if case.resource:
            payload = response.json()
            assert set(payload["permissions"]) == {"can_read", "can_write", "can_respond"}, payload
