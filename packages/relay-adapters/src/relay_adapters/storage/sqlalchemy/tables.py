"""SQLAlchemy Core tables for every entity of the storage port (SPEC S1).

One table per entry of :data:`relay_core.ports.storage.ENTITIES`, named after the repository
(``alert_groups``, ``intents`` ...). Columns are derived from the entity's attrs fields, so a
new field on an entity only needs a migration, not code here:

=====================================  ===============================================
field type                             column
=====================================  ===============================================
``id``                                 integer primary key (autoincrement)
``int`` named ``*_id`` / ``*_by``      ``BIGINT`` (``INTEGER`` on SQLite)
``int`` / ``str`` / ``bool``           ``INTEGER`` / ``TEXT`` / ``BOOLEAN``
aware ``datetime``                     ``TIMESTAMP WITH TIME ZONE``; UTC text on SQLite
``Mapping`` / ``Any``                  ``JSON`` (``JSONB`` on PostgreSQL)
``tuple[X, ...]``                      JSON list, read back as a tuple
``tuple[<attrs class>, ...]``          JSON list of objects, structured back
=====================================  ===============================================

``X | None`` makes the column nullable. Every table also has ``created_at`` and
``updated_at`` (kept by the repositories when the entity does not carry them itself).
``scheduler_leases`` backs the lease repository (SPEC S1.8, S5.11).

The migrations under ``migrations/versions`` are written from this metadata; the test suite
checks that a migrated database and this module agree.
"""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Final

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

from relay_core.ports.storage import ENTITIES, UNIQUE_KEYS

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "ID_TYPE",
    "LEASES_TABLE",
    "NAMING_CONVENTION",
    "EntityColumns",
    "JSONAttrsTuple",
    "JSONTuple",
    "JSONValue",
    "UTCDateTime",
    "entity_columns",
    "json_dumps",
    "metadata",
]

#: Names of constraints and indexes, so migrations can refer to them on both engines (SPEC S10.5).
NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Integer keys: 64-bit on PostgreSQL; SQLite needs exactly ``INTEGER PRIMARY KEY`` for rowids.
ID_TYPE: Final = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Bookkeeping columns present on every table.
BOOKKEEPING_COLUMNS: Final = ("created_at", "updated_at")

LEASES_TABLE: Final = "scheduler_leases"


def json_dumps(value: Any) -> str:
    """Compact JSON with unicode kept as is; any ``Mapping`` is written as an object."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- column types -----------------------------------------------------------------------


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every engine.

    PostgreSQL stores ``timestamptz``. SQLite has no datetime type: values are converted to
    UTC and stored as fixed-width text (``YYYY-MM-DD HH:MM:SS.ffffff``), which sorts and
    compares like the instants it holds.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetimes cannot be stored: Relay stores aware UTC datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class JSONValue(sa.TypeDecorator[Any]):
    """A JSON document: ``JSONB`` on PostgreSQL, ``JSON`` (text) elsewhere; ``None`` is SQL NULL."""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))


class JSONTuple(JSONValue):
    """A ``tuple[X, ...]`` field: stored as a JSON list, read back as a tuple."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else list(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else tuple(value)


class JSONAttrsTuple(JSONValue):
    """A ``tuple[<attrs class>, ...]`` field (e.g. ``ExplainTrace.steps``): a JSON list of objects."""

    cache_ok = True

    def __init__(self, item_type: type[Any]) -> None:
        super().__init__()
        self.item_type = item_type
        self._names = tuple(a.name for a in attrs.fields(item_type))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return [{name: getattr(item, name) for name in self._names} for item in value]

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return tuple(self.item_type(**item) for item in value)


# --- entity fields -> columns -----------------------------------------------------------


@attrs.frozen
class EntityColumns:
    """How one entity maps onto its table."""

    table: str
    entity: type[Any]
    fields: tuple[str, ...]
    """Entity field names, in declaration order (``id`` first)."""
    bookkeeping: tuple[str, ...]
    """Bookkeeping columns the repository fills itself (those the entity does not carry)."""
    soft_delete: bool


def _column_type(name: str, hint: Any) -> tuple[sa.types.TypeEngine[Any], bool]:
    """The column type for a field annotation, and whether the column is nullable."""
    nullable = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"{name}: unions other than `X | None` have no column type")
        hint = args[0]
    if hint is Any:
        return JSONValue(), True
    origin = typing.get_origin(hint) or hint
    if origin is bool:
        return sa.Boolean(), nullable
    if origin is int:
        # References to other rows: `team_id`, and the user ids `created_by`, `resolved_by` ...
        return (ID_TYPE if name.endswith(("_id", "_by")) else sa.Integer()), nullable
    if origin is str:
        return sa.Text(), nullable
    if origin is dt.datetime:
        return UTCDateTime(), nullable
    if origin is tuple:
        item = typing.get_args(hint)[0] if typing.get_args(hint) else Any
        if isinstance(item, type) and attrs.has(item):
            return JSONAttrsTuple(item), nullable
        return JSONTuple(), nullable
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return JSONValue(), nullable
    raise TypeError(f"{name}: no column type for {hint!r}")


def _entity_columns(table: str, entity: type[Any]) -> tuple[EntityColumns, list[sa.Column[Any]]]:
    hints = typing.get_type_hints(entity)
    names: list[str] = []
    columns: list[sa.Column[Any]] = []
    for field in attrs.fields(entity):
        names.append(field.name)
        if field.name == "id":
            columns.append(sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True))
            continue
        type_, nullable = _column_type(field.name, hints[field.name])
        columns.append(sa.Column(field.name, type_, nullable=nullable))
    bookkeeping = tuple(c for c in BOOKKEEPING_COLUMNS if c not in names)
    for name in bookkeeping:
        columns.append(sa.Column(name, UTCDateTime(), nullable=False, server_default=sa.func.now()))
    spec = EntityColumns(
        table=table,
        entity=entity,
        fields=tuple(names),
        bookkeeping=bookkeeping,
        soft_delete="deleted_at" in names,
    )
    return spec, columns


metadata: Final = sa.MetaData(naming_convention=NAMING_CONVENTION)

_SPECS: dict[str, EntityColumns] = {}
for _table_name, _entity in ENTITIES.items():
    _spec, _columns = _entity_columns(_table_name, _entity)
    _SPECS[_table_name] = _spec
    sa.Table(
        _table_name,
        metadata,
        *_columns,
        *(sa.UniqueConstraint(*key) for key in UNIQUE_KEYS.get(_table_name, ())),
        # Never reuse the id of a deleted row, like the in-memory adapter.
        sqlite_autoincrement=True,
    )

sa.Table(
    LEASES_TABLE,
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("holder", sa.Text(), nullable=False),
    sa.Column("fencing_token", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("renewed_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
)


def entity_columns(table: str) -> EntityColumns:
    """The field/column mapping of one repository's table."""
    return _SPECS[table]


# --- indexes ----------------------------------------------------------------------------


def _t(name: str) -> sa.Table:
    return metadata.tables[name]


def _index(name: str, table: str, *columns: str, unique: bool = False, where: Any = None) -> None:
    t = _t(table)
    kwargs: dict[str, Any] = {}
    if where is not None:
        predicate = where(t)
        kwargs = {"postgresql_where": predicate, "sqlite_where": predicate}
    sa.Index(name, *(t.c[c] for c in columns), unique=unique, **kwargs)


_CLOSED_GROUP_STATUSES: Final = ("resolved", "merged")

# SPEC S1.9 (1): one open group per (team, group_key_hash); concurrent intakes converge on it.
_index(
    "uq_alert_groups_open_group_key",
    "alert_groups",
    "team_id",
    "group_key_hash",
    unique=True,
    where=lambda t: t.c.status.not_in(_CLOSED_GROUP_STATUSES),
)
# Open-group lookups with bound parameters, and the reopen lookup of resolved groups.
_index("ix_alert_groups_team_id_group_key_hash", "alert_groups", "team_id", "group_key_hash")
# The scheduler's due query (SPEC S5.11): a range scan over groups that have a timer at all.
_index(
    "ix_alert_groups_next_action_at",
    "alert_groups",
    "next_action_at",
    "id",
    where=lambda t: t.c.next_action_at.is_not(None),
)
_index("ix_alert_groups_team_id_status", "alert_groups", "team_id", "status")

# SPEC S1.9 (2) and the dedup lookup (S2.12). The predicate is the literal ``= true`` that the
# repositories render for boolean filters, so both planners can match the partial index.
_index(
    "uq_alerts_open_dedup_key",
    "alerts",
    "team_id",
    "source",
    "dedup_key",
    unique=True,
    where=lambda t: t.c.group_open == sa.true(),
)
# Resolved children inside the dedup window (S2.12) are looked up by the same identity.
_index("ix_alerts_team_id_source_dedup_key", "alerts", "team_id", "source", "dedup_key")
_index("ix_alerts_group_id", "alerts", "group_id")

# The outbox (SPEC S5.8): claim order is (priority, due_at, id) among pending intents.
_index("ix_intents_claim", "intents", "status", "priority", "due_at", "id")
_index("ix_intents_lease_until", "intents", "lease_until", where=lambda t: t.c.status == "sending")
_index("ix_intents_group_id", "intents", "group_id")

_index("ix_overrides_rotation_id_starts_at", "overrides", "rotation_id", "starts_at")
_index("uq_routes_intake_token_hash", "routes", "intake_token_hash", unique=True)
_index("ix_routes_team_id", "routes", "team_id")
_index("ix_channels_group_id", "channels", "group_id")
_index("ix_silences_team_id", "silences", "team_id")
_index("ix_silence_applications_alert_id", "silence_applications", "alert_id")
_index("ix_silence_applications_silence_id", "silence_applications", "silence_id")
_index("ix_rotation_layers_rotation_id", "rotation_layers", "rotation_id")
_index("ix_rotation_members_rotation_id", "rotation_members", "rotation_id")
_index("ix_group_memberships_group_id", "group_memberships", "group_id")
_index("ix_team_memberships_user_id", "team_memberships", "user_id")
_index("ix_role_group_members_role_group_id", "role_group_members", "role_group_id")
_index("ix_subscriptions_group_id", "subscriptions", "group_id")
_index("ix_subscription_preferences_subscription_id", "subscription_preferences", "subscription_id")
_index("ix_events_group_id", "events", "group_id", "id")
_index("ix_traces_group_id", "traces", "group_id")
_index("ix_traces_started_at", "traces", "started_at")
_index("ix_audit_created_at", "audit", "created_at")
_index("ix_attempts_intent_id", "attempts", "intent_id")
_index("ix_callbacks_notification_id", "callbacks", "notification_id")
_index("ix_callback_receipts_expires_at", "callback_receipts", "expires_at")
_index("ix_action_tokens_expires_at", "action_tokens", "expires_at")
# Stale-heartbeat cleanup and the readiness/process listing (SPEC S1.8).
_index("ix_process_heartbeats_seen_at", "process_heartbeats", "seen_at")
