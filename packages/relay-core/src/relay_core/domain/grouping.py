"""Group keys (SPEC S2.13): which child alerts share an alert group."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from relay_core.domain.model import NormalizedAlert

#: Suggested (never automatic) group_by defaults for new routes, by source.
SUGGESTED_GROUP_BY: Mapping[str, tuple[str, ...]] = {
    "alertmanager": ("alertname",),
    "grafana": ("alertname",),
    "zabbix": (),
}


def _lookup_path(data: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def group_field_value(
    field: str,
    alert: NormalizedAlert,
    *,
    team_slug: str,
    route_id: int,
    category: str | None,
) -> str | None:
    """The value of one ``group_by`` field for ``alert``, or None when it is missing."""
    builtins: dict[str, Any] = {
        "source": alert.source,
        "team": team_slug,
        "route": str(route_id),
        "category": category,
        "severity": alert.severity,
    }
    value: Any
    if field in builtins:
        value = builtins[field]
    elif field.startswith("labels."):
        value = alert.labels.get(field[len("labels.") :])
    elif field.startswith("annotations."):
        value = alert.annotations.get(field[len("annotations.") :])
    elif field.startswith("payload."):
        value = _lookup_path(alert.payload, field[len("payload.") :].split("."))
    else:
        value = alert.labels.get(field)
        if value is None:
            value = alert.annotations.get(field)
        if value is None:
            value = getattr(alert, field, None) if field in ("title", "message", "status") else None
    if value is None or value == "":
        return None
    return str(value)


def build_group_key(
    alert: NormalizedAlert,
    *,
    team_id: int,
    team_slug: str,
    route_id: int,
    group_by: Sequence[str],
    category: str | None = None,
) -> tuple[str, str]:
    """Return ``(group_key, group_key_hash)`` for ``alert`` on a route."""
    parts = [f"source={alert.source}", f"team_id={team_id}", f"route_id={route_id}"]
    if not group_by:
        parts.append(f"dedup_key={alert.dedup_key}")
    else:
        missing = False
        for field in group_by:
            value = group_field_value(field, alert, team_slug=team_slug, route_id=route_id, category=category)
            if value is None:
                missing = True
            parts.append(f"{field}={'' if value is None else value}")
        if missing:
            parts.append(f"fallback_dedup_key={alert.dedup_key}")
    key = "|".join(parts)
    return key, hashlib.sha256(key.encode("utf-8")).hexdigest()
