"""Wire classes for API request bodies (SPEC S9.1), separate from the domain classes.

Bodies are strict: unknown fields are a 400 ``validation_error`` naming them
(``forbid_unknown_fields``). Update bodies are partial: a field left out is ``UNSET`` and keeps
its stored value. Cross-field rules (time zones, matchers, rotations) are checked by the
controllers with the core's validators.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = ["UNSET", "UnsetType"]

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Slug = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Description = Annotated[str, Meta(max_length=2000)]
Id = Annotated[int, Meta(ge=1, le=2**53)]
Username = Annotated[str, Meta(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Password = Annotated[str, Meta(min_length=1, max_length=256)]
NewPassword = Annotated[str, Meta(min_length=10, max_length=256)]
Phone = Annotated[str, Meta(pattern=r"^\+\d{1,15}$")]
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Timezone = Annotated[str, Meta(min_length=1, max_length=64)]
DateTimeText = Annotated[str, Meta(min_length=1, max_length=64, description="ISO 8601 date or datetime")]
ContactId = Annotated[str, Meta(max_length=128)]
GroupRole = Literal["viewer", "editor", "user_admin"]
TeamRole = Literal["viewer", "responder", "manager"]
Matchers = dict[str, Any] | list[dict[str, Any]]


class _Body(Struct, forbid_unknown_fields=True, kw_only=True):
    pass


# --- auth and profile ------------------------------------------------------------------------


class LoginBody(_Body, kw_only=True):
    username: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Password


class ChangePasswordBody(_Body, kw_only=True):
    current_password: Password
    new_password: NewPassword


class TokenCreate(_Body, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=120)]
    scopes: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(min_length=1, max_length=64)]
    expires_in_days: Annotated[int, Meta(ge=0, le=3650)] = 0
    team_id: Id | None = None


class ProfileUpdate(_Body, kw_only=True):
    display_name: Annotated[str, Meta(max_length=120)] | UnsetType = UNSET
    email: Email | UnsetType | None = UNSET
    phone: Phone | UnsetType | None = UNSET
    timezone: Timezone | UnsetType = UNSET
    telegram_user_id: ContactId | UnsetType | None = UNSET
    slack_user_id: ContactId | UnsetType | None = UNSET
    mattermost_user_id: ContactId | UnsetType | None = UNSET


class ActiveGroupBody(_Body, kw_only=True):
    group_id: Id | None


# --- alerts -----------------------------------------------------------------------------------


class AlertActionBody(_Body, kw_only=True):
    user_id: Id | None = None
    comment: Annotated[str, Meta(max_length=2000)] | None = None


# --- groups and users -----------------------------------------------------------------------------


class GroupCreate(_Body, kw_only=True):
    slug: Slug
    name: Name
    description: Description = ""
    active: bool = True


class GroupUpdate(_Body, kw_only=True):
    slug: Slug | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class GroupMembershipCreate(_Body, kw_only=True):
    user_id: Id
    role: GroupRole = "viewer"
    active: bool = True


class GroupMembershipUpdate(_Body, kw_only=True):
    role: GroupRole | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class UserCreate(_Body, kw_only=True):
    username: Username
    display_name: Annotated[str, Meta(max_length=120)] = ""
    email: Email | None = None
    phone: Phone | None = None
    timezone: Timezone = "UTC"
    password: NewPassword | None = None
    is_admin: bool = False
    active: bool = True
    telegram_user_id: ContactId | None = None
    slack_user_id: ContactId | None = None
    mattermost_user_id: ContactId | None = None
    group_id: Id | None = None
    group_role: GroupRole = "viewer"


class UserUpdate(_Body, kw_only=True):
    username: Username | UnsetType = UNSET
    display_name: Annotated[str, Meta(max_length=120)] | UnsetType = UNSET
    email: Email | UnsetType | None = UNSET
    phone: Phone | UnsetType | None = UNSET
    timezone: Timezone | UnsetType = UNSET
    password: NewPassword | UnsetType = UNSET
    is_admin: bool | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    telegram_user_id: ContactId | UnsetType | None = UNSET
    slack_user_id: ContactId | UnsetType | None = UNSET
    mattermost_user_id: ContactId | UnsetType | None = UNSET


# --- teams --------------------------------------------------------------------------------------


class TeamCreate(_Body, kw_only=True):
    group_id: Id
    slug: Slug
    name: Name
    description: Description = ""
    escalation_enabled: bool = True
    escalation_after_reminders: Annotated[int, Meta(ge=1, le=100)] = 2
    active: bool = True


class TeamUpdate(_Body, kw_only=True):
    slug: Slug | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    escalation_enabled: bool | UnsetType = UNSET
    escalation_after_reminders: Annotated[int, Meta(ge=1, le=100)] | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class TeamUserCreate(_Body, kw_only=True):
    user_id: Id
    role: TeamRole = "viewer"
    active: bool = True


class TeamUserUpdate(_Body, kw_only=True):
    role: TeamRole | UnsetType = UNSET
    active: bool | UnsetType = UNSET


# --- rotations -------------------------------------------------------------------------------------

RotationType = Literal["daily", "weekly", "custom"]
IntervalUnit = Literal["minutes", "hours", "days", "weeks"]
HandoffTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Weekday = Annotated[int, Meta(ge=0, le=6)]
IntervalValue = Annotated[int, Meta(ge=1, le=365)]
ReminderSeconds = Annotated[int, Meta(ge=0, le=2_592_000)]


class RotationCreate(_Body, kw_only=True):
    team_id: Id
    name: Name
    description: Description = ""
    start_at: DateTimeText
    rotation_type: RotationType = "daily"
    interval_value: IntervalValue = 1
    interval_unit: IntervalUnit = "days"
    handoff_time: HandoffTime = "09:00"
    handoff_weekday: Weekday | None = None
    timezone: Timezone = "UTC"
    reminder_interval_seconds: ReminderSeconds = 300
    enabled: bool = True
    duration_seconds: Annotated[int, Meta(ge=1)] | None = None
    add_team_members: bool = False


class RotationUpdate(_Body, kw_only=True):
    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    start_at: DateTimeText | UnsetType = UNSET
    rotation_type: RotationType | UnsetType = UNSET
    interval_value: IntervalValue | UnsetType = UNSET
    interval_unit: IntervalUnit | UnsetType = UNSET
    handoff_time: HandoffTime | UnsetType = UNSET
    handoff_weekday: Weekday | UnsetType | None = UNSET
    timezone: Timezone | UnsetType = UNSET
    reminder_interval_seconds: ReminderSeconds | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    duration_seconds: Annotated[int, Meta(ge=1)] | UnsetType | None = UNSET


class EnabledBody(_Body, kw_only=True):
    enabled: bool


class RotationMemberCreate(_Body, kw_only=True):
    user_id: Id
    position: Annotated[int, Meta(ge=0, le=10_000)] | None = None


class RotationMemberUpdate(_Body, kw_only=True):
    position: Annotated[int, Meta(ge=0, le=10_000)] | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class OverrideCreate(_Body, kw_only=True):
    user_id: Id
    starts_at: DateTimeText
    ends_at: DateTimeText
    reason: Description = ""


# --- routes and channels ---------------------------------------------------------------------------

IdList = Annotated[list[Id], Meta(max_length=200)]
GroupBy = Annotated[list[Annotated[str, Meta(min_length=1, max_length=128)]], Meta(max_length=50)]


class RouteCreate(_Body, kw_only=True):
    team_id: Id
    name: Name
    source: Annotated[str, Meta(min_length=1, max_length=64)]
    rotation_id: Id | None = None
    channel_ids: IdList = msgspec.field(default_factory=list)
    matchers: Matchers = msgspec.field(default_factory=dict)
    group_by: GroupBy = msgspec.field(default_factory=list)
    category_id: Id | None = None
    group_wait_seconds: Annotated[int, Meta(ge=0, le=3600)] | None = None
    group_interval_seconds: Annotated[int, Meta(ge=60, le=86400)] | None = None
    integration_config: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled: bool = True
    notification_channel_mode: Literal["route_only"] = "route_only"


class RouteUpdate(_Body, kw_only=True):
    team_id: Id | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    source: Annotated[str, Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    rotation_id: Id | UnsetType | None = UNSET
    channel_ids: IdList | UnsetType = UNSET
    matchers: Matchers | UnsetType = UNSET
    group_by: GroupBy | UnsetType = UNSET
    category_id: Id | UnsetType | None = UNSET
    group_wait_seconds: Annotated[int, Meta(ge=0, le=3600)] | UnsetType | None = UNSET
    group_interval_seconds: Annotated[int, Meta(ge=60, le=86400)] | UnsetType | None = UNSET
    integration_config: dict[str, Any] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    notification_channel_mode: Literal["route_only"] | UnsetType = UNSET


class RouteChannelsBody(_Body, kw_only=True):
    channel_ids: IdList


class ChannelCreate(_Body, kw_only=True):
    team_id: Id | None = None
    group_id: Id | None = None
    name: Name
    channel_type: Annotated[str, Meta(min_length=1, max_length=64)]
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled: bool = True


class ChannelUpdate(_Body, kw_only=True):
    name: Name | UnsetType = UNSET
    config: dict[str, Any] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


# --- silences and categories -----------------------------------------------------------------------


class SilenceCreate(_Body, kw_only=True):
    team_id: Id
    name: Name
    reason: Description = ""
    matchers: Matchers = msgspec.field(default_factory=dict)
    starts_at: DateTimeText
    ends_at: DateTimeText
    apply_to_existing: bool = False
    reactivate_on_end: bool = True
    enabled: bool = True


class SilenceUpdate(_Body, kw_only=True):
    name: Name | UnsetType = UNSET
    reason: Description | UnsetType = UNSET
    matchers: Matchers | UnsetType = UNSET
    starts_at: DateTimeText | UnsetType = UNSET
    ends_at: DateTimeText | UnsetType = UNSET
    apply_to_existing: bool | UnsetType = UNSET
    reactivate_on_end: bool | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class CategoryCreate(_Body, kw_only=True):
    group_id: Id
    slug: Slug
    name: Name
    description: Description = ""
    presentation: Literal["incident", "advisory"] = "incident"
    enabled: bool = True
    position: Annotated[int, Meta(ge=0, le=10_000)] = 0


class CategoryUpdate(_Body, kw_only=True):
    slug: Slug | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    presentation: Literal["incident", "advisory"] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    position: Annotated[int, Meta(ge=0, le=10_000)] | UnsetType = UNSET


# --- simulation (S3.9) -----------------------------------------------------------------------


class SimulateBody(_Body, kw_only=True):
    source: Annotated[str, Meta(min_length=1, max_length=64)]
    payload: dict[str, Any] | list[Any]
    route_id: Id | None = None
    at: DateTimeText | None = None
    horizon_seconds: Annotated[int, Meta(ge=0, le=7 * 86400)] = 3600
