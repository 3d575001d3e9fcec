"""In-memory storage: the embeddable reference adapter of the storage port.

Used by tests, by library users who want Relay without a database, and as the
behaviour every SQL adapter must match (``StorageContract``). Units of work are
serialised by one lock; a rollback replays an undo journal, so a transaction costs
what it changes, not what is stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import attrs

from relay_core.domain import constants as c
from relay_core.domain.errors import Conflict
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
from relay_core.ports.storage import (
    ENTITIES,
    UNIQUE_KEYS,
    IntentRepository,
    LeaseRepository,
    Repository,
    split_lookup,
    split_order,
)

T = TypeVar("T")
_MISSING = object()


def _compare(op: str, value: Any, expected: Any) -> bool:
    if op == "eq":
        return bool(value is None) if expected is None else bool(value == expected)
    if op == "ne":
        return bool(value is not None) if expected is None else bool(value != expected)
    if op == "in":
        return value in tuple(expected)
    if op == "isnull":
        return (value is None) == bool(expected)
    if value is None:
        return False
    if op == "lt":
        return bool(value < expected)
    if op == "lte":
        return bool(value <= expected)
    if op == "gt":
        return bool(value > expected)
    if op == "gte":
        return bool(value >= expected)
    raise ValueError(f"unknown lookup {op!r}")


def row_matches(entity: Any, where: Mapping[str, Any]) -> bool:
    """True if ``entity`` satisfies every ``find`` filter (shared semantics, see the port)."""
    for key, expected in where.items():
        field, op = split_lookup(key)
        if not _compare(op, getattr(entity, field), expected):
            return False
    return True


def _sort_key(field: str) -> Callable[[Any], tuple[Any, ...]]:
    def key(entity: Any) -> tuple[Any, ...]:
        value = getattr(entity, field)
        # None sorts first ascending, like PostgreSQL's NULLS FIRST on DESC and our SQL adapter.
        return (value is not None, value if value is not None else 0, entity.id)

    return key


class InMemoryStore:
    """Holds the committed state shared by every unit of work of one Relay."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[int, Any]] = {name: {} for name in ENTITIES}
        self.sequences: dict[str, int] = dict.fromkeys(ENTITIES, 0)
        self.leases: dict[str, SchedulerLease] = {}
        self._lock: asyncio.Lock | None = None

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock


class _Journal:
    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] = []


class InMemoryRepository(Generic[T]):
    def __init__(self, store: InMemoryStore, name: str, journal: _Journal) -> None:
        self._store = store
        self._name = name
        self._rows = store.tables[name]
        self._journal = journal
        self._cls = ENTITIES[name]
        self._soft = any(f.name == "deleted_at" for f in attrs.fields(self._cls))
        self._unique = UNIQUE_KEYS.get(name, ())

    def _visible(self, entity: Any) -> bool:
        return not (self._soft and entity.deleted_at is not None)

    def _write(self, entity: Any) -> None:
        old = self._rows.get(entity.id, _MISSING)
        rows = self._rows
        ident = entity.id

        def undo() -> None:
            if old is _MISSING:
                rows.pop(ident, None)
            else:
                rows[ident] = old

        self._journal.undo.append(undo)
        rows[ident] = entity

    def _check_unique(self, entity: Any) -> None:
        for fields in self._unique:
            values = tuple(getattr(entity, f) for f in fields)
            if any(v is None for v in values):
                continue
            for other in self._rows.values():
                if other.id != entity.id and tuple(getattr(other, f) for f in fields) == values:
                    raise Conflict(f"{self._name}: {', '.join(fields)} already exists")

    async def get(self, id: int) -> T | None:
        entity = self._rows.get(id)
        return entity if entity is not None and self._visible(entity) else None

    async def add(self, entity: T) -> T:
        self._check_unique(entity)
        seq = self._store.sequences[self._name] + 1
        self._store.sequences[self._name] = seq
        stored: Any = attrs.evolve(entity, id=seq)  # type: ignore[misc]  # every entity has id
        self._write(stored)
        return stored  # type: ignore[no-any-return]

    async def update(self, entity: T) -> T:
        ident = entity.id  # type: ignore[attr-defined]
        if ident not in self._rows:
            raise KeyError(f"{self._name} {ident} does not exist")
        self._check_unique(entity)
        self._write(entity)
        return entity

    async def update_where(self, id: int, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> T | None:
        current = self._rows.get(id)
        if current is None or not self._visible(current) or not row_matches(current, expect):
            return None
        new = attrs.evolve(current, **changes)
        self._check_unique(new)
        self._write(new)
        return new  # type: ignore[no-any-return]

    async def find(
        self, *, order_by: str = "id", limit: int | None = None, offset: int = 0, **where: Any
    ) -> list[T]:
        field, desc = split_order(order_by)
        rows = [e for e in self._rows.values() if self._visible(e) and row_matches(e, where)]
        rows.sort(key=_sort_key(field), reverse=desc)
        rows = rows[offset:]
        return rows[:limit] if limit is not None else rows

    async def first(self, *, order_by: str = "id", **where: Any) -> T | None:
        found = await self.find(order_by=order_by, limit=1, **where)
        return found[0] if found else None

    async def count(self, **where: Any) -> int:
        return sum(1 for e in self._rows.values() if self._visible(e) and row_matches(e, where))

    async def delete(self, id: int) -> None:
        if id in self._rows:
            old = self._rows.pop(id)
            rows = self._rows
            self._journal.undo.append(lambda: rows.__setitem__(id, old))


class InMemoryIntentRepository(InMemoryRepository[NotificationIntent]):
    async def add_unique(self, intent: NotificationIntent) -> NotificationIntent | None:
        for other in self._rows.values():
            if other.idempotency_key == intent.idempotency_key:
                return None
        return await self.add(intent)

    async def claim(
        self,
        *,
        owner: str,
        now: dt.datetime,
        lease_until: dt.datetime,
        limit: int,
        ids: Sequence[int] | None = None,
    ) -> list[NotificationIntent]:
        pool = (self._rows[i] for i in ids if i in self._rows) if ids is not None else self._rows.values()
        due = sorted(
            (i for i in pool if i.status == c.INTENT_PENDING and i.due_at <= now),
            key=lambda i: (i.priority, i.due_at, i.id),
        )[:limit]
        claimed = []
        for intent in due:
            new = attrs.evolve(
                intent,
                status=c.INTENT_SENDING,
                lease_owner=owner,
                lease_until=lease_until,
                attempt_count=intent.attempt_count + 1,
            )
            self._write(new)
            claimed.append(new)
        return claimed


class InMemoryLeaseRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self._store = store
        self._journal = journal

    def _set(self, name: str, lease: SchedulerLease | None) -> None:
        leases = self._store.leases
        old = leases.get(name)

        def undo() -> None:
            if old is None:
                leases.pop(name, None)
            else:
                leases[name] = old

        self._journal.undo.append(undo)
        if lease is None:
            leases.pop(name, None)
        else:
            leases[name] = lease

    async def acquire(
        self, name: str, holder: str, now: dt.datetime, ttl_seconds: int
    ) -> SchedulerLease | None:
        current = self._store.leases.get(name)
        expires = now + dt.timedelta(seconds=ttl_seconds)
        if current is None:
            lease = SchedulerLease(
                name=name, holder=holder, fencing_token=1, expires_at=expires, renewed_at=now
            )
        elif current.holder == holder:
            lease = attrs.evolve(current, expires_at=expires, renewed_at=now)
        elif current.expires_at < now:
            lease = SchedulerLease(
                name=name,
                holder=holder,
                fencing_token=current.fencing_token + 1,
                expires_at=expires,
                renewed_at=now,
            )
        else:
            return None
        self._set(name, lease)
        return lease

    async def release(self, name: str, holder: str) -> None:
        current = self._store.leases.get(name)
        if current is not None and current.holder == holder:
            self._set(name, attrs.evolve(current, expires_at=current.renewed_at - dt.timedelta(seconds=1)))


class InMemoryUnitOfWork:
    """One serialised transaction over an :class:`InMemoryStore`."""

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

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._journal = _Journal()
        self._entered = False
        for name in ENTITIES:
            repo: Any
            if name == "intents":
                repo = InMemoryIntentRepository(store, name, self._journal)
            else:
                repo = InMemoryRepository(store, name, self._journal)
            setattr(self, name, repo)
        self.leases = InMemoryLeaseRepository(store, self._journal)

    async def __aenter__(self) -> Self:
        await self._store.lock.acquire()
        self._entered = True
        self._journal.undo.clear()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.rollback()
        finally:
            self._entered = False
            self._store.lock.release()

    async def commit(self) -> None:
        self._journal.undo.clear()

    async def rollback(self) -> None:
        for undo in reversed(self._journal.undo):
            undo()
        self._journal.undo.clear()


class InMemoryUnitOfWorkFactory:
    """Factory for :class:`InMemoryUnitOfWork` over one shared store."""

    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store or InMemoryStore()

    def __call__(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store)

    async def aclose(self) -> None:
        return None
