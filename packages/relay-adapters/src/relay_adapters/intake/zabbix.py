"""Zabbix webhook media type intake source (SPEC S2.8).

The body is the flat parameter object of ``integrations/zabbix/relay_media_type.yaml`` (one
event per request). Zabbix leaves a macro it cannot expand as its literal name, for example
``"{EVENT.RECOVERY.ID}"`` on a problem notification, so such strings count as null.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from relay_core.domain import constants as c
from relay_core.domain.errors import IntakeValidationError
from relay_core.domain.intake import (
    ParsedItem,
    ValidationDetails,
    clamp_dedup_key,
    decode_json_body,
    first_text,
    flatten_labels,
    generated_dedup_key,
    loc_index,
    merge_labels,
    team_hint,
    to_text,
)
from relay_core.domain.model import NormalizedAlert
from relay_core.domain.severity import normalize_severity, unrecognized_original

UNEXPANDED_MACRO: Final = re.compile(r"\{[A-Z0-9_.$]+\}")
"""A whole string that is a Zabbix macro name (matched with ``fullmatch``)."""

SEVERITY_TABLE: Final[Mapping[str, str]] = {
    "disaster": c.SEV_CRITICAL,
    "high": c.SEV_CRITICAL,
    "average": c.SEV_WARNING,
    "warning": c.SEV_WARNING,
    "information": c.SEV_INFO,
    "not classified": c.SEV_INFO,
    "not_classified": c.SEV_INFO,
    "5": c.SEV_CRITICAL,
    "4": c.SEV_CRITICAL,
    "3": c.SEV_WARNING,
    "2": c.SEV_WARNING,
    "1": c.SEV_INFO,
    "0": c.SEV_INFO,
}
"""Zabbix severity names and ``{EVENT.NSEVERITY}`` numbers (lower case) -> canonical severity."""

SECRET_FIELDS: Final = frozenset({"token"})
"""Parameters redacted in the stored payload, should a customised media type send them."""

_EMPTY: Final = "Zabbix payload is empty"


def null_macros(value: Any) -> Any:
    """``value`` with every string that is an unexpanded macro replaced by ``None``, recursively."""
    if isinstance(value, str):
        return None if UNEXPANDED_MACRO.fullmatch(value.strip()) else value
    if isinstance(value, Mapping):
        return {key: null_macros(item) for key, item in value.items()}
    if isinstance(value, list):
        return [null_macros(item) for item in value]
    return value


def parse_tags(value: Any, problems: ValidationDetails) -> dict[str, str]:
    """``tags`` as labels: a list of ``{tag, value}``, the JSON string of one (``{EVENT.TAGSJSON}``),
    or a plain mapping. Repeated tags join their values with ``,``."""
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except ValueError:
            problems.add("$.tags", "expected a list of {tag, value} or its JSON string")
            return {}
    if isinstance(value, Mapping):
        return flatten_labels(value)
    if not isinstance(value, list):
        problems.add("$.tags", "expected a list of {tag, value} or its JSON string")
        return {}
    collected: dict[str, list[str]] = {}
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            problems.add(loc_index("$.tags", index), "expected a mapping with tag and value")
            continue
        name = first_text(entry.get("tag"))
        if not name:
            continue
        values = collected.setdefault(name, [])
        text = to_text(entry.get("value"))
        if text not in values:
            values.append(text)
    return {name: ",".join(values) for name, values in collected.items()}


def parse_event_tag(value: Any) -> dict[str, str]:
    """``event_tag`` in ``{EVENT.TAGS}`` form, ``"k: v, k2: v2"``, as labels."""
    labels: dict[str, str] = {}
    for part in to_text(value).split(","):
        key, _, text = part.partition(":")
        if key.strip():
            labels[key.strip()] = text.strip()
    return labels


def is_zabbix_severity(value: str | None) -> bool:
    """Whether ``value`` is a name or number of the Zabbix severity table."""
    return value is not None and value.strip().lower() in SEVERITY_TABLE


def zabbix_severity(raw: str | None) -> tuple[str, str | None]:
    """``(canonical, original)`` per the Zabbix table, else S2.5; missing is ``warning``."""
    if raw is None:
        return c.SEV_WARNING, None
    mapped = SEVERITY_TABLE.get(raw.strip().lower())
    if mapped is not None:
        return mapped, raw
    return normalize_severity(raw, default=c.SEV_WARNING)


def zabbix_status(data: Mapping[str, Any]) -> str:
    """``status``/``event_status`` (PROBLEM, RESOLVED/OK), else ``event_value`` (1/0), else firing."""
    status = (first_text(data.get("status"), data.get("event_status")) or "").upper()
    if status == "PROBLEM":
        return c.ALERT_FIRING
    if status in ("RESOLVED", "OK"):
        return c.ALERT_RESOLVED
    value = first_text(data.get("event_value"))
    if value == "0":
        return c.ALERT_RESOLVED
    return c.ALERT_FIRING


class ZabbixSource:
    """``/api/integrations/zabbix``: one normalized alert per request."""

    name: ClassVar[str] = "zabbix"
    path_aliases: ClassVar[tuple[str, ...]] = ()
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    default_group_by: ClassVar[tuple[str, ...]] = ()

    def parse(self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]) -> list[ParsedItem]:
        raw = decode_json_body(body, allow_array=False)
        data = null_macros(raw)
        if all(value is None for value in data.values()):
            # Also the media type's "Test" form, whose macros are never expanded.
            raise IntakeValidationError(_EMPTY, details=[{"loc": "$", "message": _EMPTY}])
        problems = ValidationDetails()
        own_labels = flatten_labels(problems.mapping(data.get("labels"), "$.labels"))
        tags = parse_tags(data.get("tags"), problems)
        problems.raise_if_any("Zabbix payload is invalid")
        labels = {**parse_event_tag(data.get("event_tag")), **tags, **own_labels}
        return [self._alert(raw, data, labels)]

    def _alert(
        self, raw: Mapping[str, Any], data: Mapping[str, Any], labels: dict[str, str]
    ) -> NormalizedAlert:
        event_id = first_text(data.get("event_id"), data.get("eventid"))
        trigger_id = first_text(data.get("trigger_id"), data.get("triggerid"))
        host = first_text(data.get("host"))
        title = (
            first_text(
                data.get("title"),
                data.get("subject"),
                data.get("event_name"),
                data.get("problem_name"),
                data.get("trigger_name"),
                labels.get("alertname"),
            )
            or "Zabbix alert"
        )
        if event_id:
            dedup_key = clamp_dedup_key(event_id)
        else:
            dedup_key = generated_dedup_key(
                {"source": self.name, "trigger_id": trigger_id, "host": host, "title": title}
            )
        raw_severity = first_text(
            data.get("severity"),
            data.get("event_severity"),
            data.get("trigger_severity"),
            data.get("severity_name"),
            labels.get("severity"),
        )
        severity, original = zabbix_severity(raw_severity)
        derived = {
            "host": host,
            "event_name": first_text(data.get("event_name")),
            "trigger_name": first_text(data.get("trigger_name")),
            "event_source": first_text(data.get("event_source")),
            "ack_status": first_text(data.get("ack_status")),
            "zabbix_severity": raw_severity,
            "event_link": self._event_link(data, trigger_id, event_id),
            "severity_original": None if is_zabbix_severity(original) else unrecognized_original(original),
        }
        payload = {key: ("<redacted>" if key in SECRET_FIELDS else value) for key, value in raw.items()}
        return NormalizedAlert(
            source=self.name,
            dedup_key=dedup_key,
            external_id=event_id or trigger_id,
            status=zabbix_status(data),
            title=title,
            message=first_text(data.get("message"), data.get("description"), data.get("opdata")) or "",
            severity=severity,
            original_severity=original,
            labels=merge_labels(labels, derived),
            team_slug=team_hint(data, labels),
            payload=payload,
            update_only=first_text(data.get("update_status")) == "1",
        )

    @staticmethod
    def _event_link(data: Mapping[str, Any], trigger_id: str | None, event_id: str | None) -> str | None:
        link = first_text(
            data.get("event_link"), data.get("event_url"), data.get("problem_url"), data.get("trigger_url")
        )
        if link:
            return link
        zabbix_url = first_text(data.get("zabbix_url"))
        if zabbix_url and trigger_id and event_id:
            return f"{zabbix_url.rstrip('/')}/tr_events.php?triggerid={trigger_id}&eventid={event_id}"
        return None
