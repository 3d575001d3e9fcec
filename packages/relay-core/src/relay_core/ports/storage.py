"""Storage port: a unit of work holding one repository per entity (ARCHITECTURE §3).

Every repository speaks the same small query language so that the in-memory adapter,
SQLite and PostgreSQL behave identically (``relay_core.testing.contracts.StorageContract``
checks it):

* ``find(**where)`` takes equality filters on entity fields, plus Django-style lookups
  ``field__in``, ``field__ne``, ``field__lt``, ``field__lte``, ``field__gt``, ``field__gte``,
  ``field__isnull``. ``None`` as an equality value means ``IS NULL``.
  ``order_by`` names a field, ``-field`` for descending; ties are broken by ``id``.
* Entities with a ``deleted_at`` field are soft-deleted: ``get`` and ``find`` never return
  a row whose ``deleted_at`` is set.
* ``update_where`` is the compare-and-set primitive behind every timer action and claim:
  it changes the row only if every ``expect`` value still holds, and says whether it did.

One unit of work is one transaction. Nothing is visible to other units of work before
``commit``; leaving the ``async with`` block without committing rolls back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from relay_core.domain.model import (
    ActionToken,
    Alert,
    AlertEvent,
    AlertGroup,
    ApiToken,
    AuditLog,
    CallbackEvent,
    CallbackReceipt,
    Category,
    CategoryRule,
    Channel,
    DeliveryAttempt,
    ExplainTrace,
    Group,
    GroupMembership,
    Notification,
    NotificationIntent,
    ProcessHeartbeat,
    RoleGroup,
    RoleGroupContact,
    RoleGroupMember,
    Rotation,
    RotationLayer,
    RotationMember,
    RotationOverride,
    Route,
    SchedulerLease,
    Silence,
    SilenceApplication,
    Subscription,
    SubscriptionPreference,
    Team,
    TeamMembership,
    User,
)

T = TypeVar("T")


class Repository(Protocol[T]):
    """Generic access to one entity type."""

    async def get(self, id: int) -> T | None: ...

    async def add(self, entity: T) -> T:
        """Insert; returns the entity with its new ``id``. Unique violations raise ``Conflict``."""
        ...

    async def update(self, entity: T) -> T:
        """Write every field of an existing row (matched by ``id``)."""
        ...

    async def update_where(self, id: int, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> T | None:
        """Apply ``changes`` only if the row still has the ``expect`` values; the new row, else None."""
        ...

    async def find(
        self, *, order_by: str = "id", limit: int | None = None, offset: int = 0, **where: Any
    ) -> list[T]: ...

    async def first(self, *, order_by: str = "id", **where: Any) -> T | None: ...

    async def count(self, **where: Any) -> int: ...

    async def delete(self, id: int) -> None:
        """Remove the row for good (join rows, receipts). Soft deletes go through ``update``."""
        ...


class IntentRepository(Repository[NotificationIntent], Protocol):
    """The outbox (SPEC S5.7, S5.8)."""

    async def add_unique(self, intent: NotificationIntent) -> NotificationIntent | None:
        """Insert unless the idempotency key exists; None means it was a duplicate (a no-op)."""
        ...

    async def claim(
        self,
        *,
        owner: str,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
        ids: Sequence[int] | None = None,
    ) -> list[NotificationIntent]:
        """Move due ``pending`` intents to ``sending`` under a lease, safely with many workers.

        Lower ``priority`` first, then ``due_at``. With ``ids`` only those are considered.
        An intent is handed to exactly one caller.
        """
        ...


class LeaseRepository(Protocol):
    """Named scheduler leases with fencing tokens (SPEC S5.11)."""

    async def acquire(
        self, name: str, holder: str, now: dt.datetime, ttl_seconds: int
    ) -> SchedulerLease | None:
        """Take or renew the lease; None when another holder's lease has not expired."""
        ...

    async def release(self, name: str, holder: str) -> None: ...


class UnitOfWork(Protocol):
    """One transaction over every repository."""

    groups: Repository[Group]
    users: Repository[User]
    group_memberships: Repository[GroupMembership]
    teams: Repository[Team]
    team_memberships: Repository[TeamMembership]
    api_tokens: Repository[ApiToken]
    audit: Repository[AuditLog]
    rotations: Repository[Rotation]
    rotation_layers: Repository[RotationLayer]
    rotation_members: Repository[RotationMember]
    overrides: Repository[RotationOverride]
    routes: Repository[Route]
    channels: Repository[Channel]
    silences: Repository[Silence]
    silence_applications: Repository[SilenceApplication]
    categories: Repository[Category]
    category_rules: Repository[CategoryRule]
    role_groups: Repository[RoleGroup]
    role_group_members: Repository[RoleGroupMember]
    role_group_contacts: Repository[RoleGroupContact]
    subscriptions: Repository[Subscription]
    subscription_preferences: Repository[SubscriptionPreference]
    alert_groups: Repository[AlertGroup]
    alerts: Repository[Alert]
    events: Repository[AlertEvent]
    traces: Repository[ExplainTrace]
    intents: IntentRepository
    notifications: Repository[Notification]
    attempts: Repository[DeliveryAttempt]
    callbacks: Repository[CallbackEvent]
    callback_receipts: Repository[CallbackReceipt]
    action_tokens: Repository[ActionToken]
    process_heartbeats: Repository[ProcessHeartbeat]
    leases: LeaseRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Makes a fresh unit of work per command; ``aclose`` releases pools."""

    def __call__(self) -> UnitOfWork: ...

    async def aclose(self) -> None: ...


#: Repository attribute name -> entity class, in dependency order (parents first).
#: Storage adapters build their tables and the contract suite its samples from this.
ENTITIES: Mapping[str, type[Any]] = {
    "groups": Group,
    "users": User,
    "group_memberships": GroupMembership,
    "teams": Team,
    "team_memberships": TeamMembership,
    "api_tokens": ApiToken,
    "audit": AuditLog,
    "rotations": Rotation,
    "rotation_layers": RotationLayer,
    "rotation_members": RotationMember,
    "overrides": RotationOverride,
    "categories": Category,
    "routes": Route,
    "channels": Channel,
    "silences": Silence,
    "category_rules": CategoryRule,
    "role_groups": RoleGroup,
    "role_group_members": RoleGroupMember,
    "role_group_contacts": RoleGroupContact,
    "subscriptions": Subscription,
    "subscription_preferences": SubscriptionPreference,
    "alert_groups": AlertGroup,
    "alerts": Alert,
    "silence_applications": SilenceApplication,
    "events": AlertEvent,
    "traces": ExplainTrace,
    "intents": NotificationIntent,
    "notifications": Notification,
    "attempts": DeliveryAttempt,
    "callbacks": CallbackEvent,
    "callback_receipts": CallbackReceipt,
    "action_tokens": ActionToken,
    "process_heartbeats": ProcessHeartbeat,
}

#: Unique keys beyond ``id`` that every adapter must enforce (a violation raises ``Conflict``).
UNIQUE_KEYS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "groups": (("slug",),),
    "users": (("username",),),
    "group_memberships": (("user_id", "group_id"),),
    "teams": (("slug",),),
    "team_memberships": (("team_id", "user_id"),),
    "api_tokens": (("token_hash",),),
    "intents": (("idempotency_key",),),
    "notifications": (("group_id", "channel_id", "recipient_key"),),
    "traces": (("trace_id",),),
    "action_tokens": (("jti",),),
    "callback_receipts": (("channel_id", "digest"),),
    "process_heartbeats": (("process_id",),),
}

#: Lookup suffixes understood by ``Repository.find`` (``field__op``).
LOOKUP_OPS: frozenset[str] = frozenset({"eq", "in", "ne", "lt", "lte", "gt", "gte", "isnull"})


def split_lookup(key: str) -> tuple[str, str]:
    """``"due_at__lte"`` -> ``("due_at", "lte")``; a plain field name is ``eq``."""
    field, sep, op = key.rpartition("__")
    if sep and op in LOOKUP_OPS:
        return field, op
    return key, "eq"


def split_order(order_by: str) -> tuple[str, bool]:
    """``"-created_at"`` -> ``("created_at", True)`` (descending)."""
    return (order_by[1:], True) if order_by.startswith("-") else (order_by, False)
