"""Generic JSON webhook intake source (SPEC S2.9): one object or an array of objects.

An item with an unknown ``status`` fails on its own (an :class:`ItemError` in its place);
the other items go on. PagerDuty Events v2 bodies are P2 and not handled here yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from relay_core.domain import constants as c
from relay_core.domain.intake import (
    ItemError,
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
)
from relay_core.domain.model import NormalizedAlert
from relay_core.domain.severity import normalize_severity, unrecognized_original

STATUSES: Final[Mapping[str, str]] = {
    **dict.fromkeys(("firing", "problem", "alerting", "trigger", "triggered"), c.ALERT_FIRING),
    **dict.fromkeys(("resolved", "ok", "recovered", "closed", "resolve"), c.ALERT_RESOLVED),
}
"""Accepted ``status`` values (case-insensitive) -> alert status."""

LINK_FIELDS: Final = ("event_link", "event_url", "alert_url", "source_url", "dashboard_url", "runbook_url")
"""Fields searched for ``event_link``: all of them at the top level first, then in labels."""


class WebhookSource:
    """``/api/integrations/webhook``."""

    name: ClassVar[str] = "webhook"
    path_aliases: ClassVar[tuple[str, ...]] = ()
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    default_group_by: ClassVar[tuple[str, ...]] = ()

    def parse(self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]) -> list[ParsedItem]:
        data = decode_json_body(body, allow_array=True)
        single = isinstance(data, dict)
        items: list[Any] = [data] if single else data
        problems = ValidationDetails()
        results: list[ParsedItem] = []
        for index, item in enumerate(items):
            loc = "$" if single else loc_index("$", index)
            if not isinstance(item, Mapping):
                problems.add(loc, "expected a mapping")
                continue
            results.append(self._item(index, loc, item, problems))
        problems.raise_if_any("webhook payload is invalid")
        return results

    def _item(self, index: int, loc: str, item: Mapping[str, Any], problems: ValidationDetails) -> ParsedItem:
        labels = flatten_labels(problems.mapping(item.get("labels"), f"{loc}.labels"))
        annotations = problems.mapping(item.get("annotations"), f"{loc}.annotations")
        starts_at = problems.timestamp(item.get("starts_at"), f"{loc}.starts_at")
        ends_at = problems.timestamp(item.get("ends_at"), f"{loc}.ends_at")
        raw_status = first_text(item.get("status"))
        status = STATUSES.get(raw_status.lower()) if raw_status else c.ALERT_FIRING
        if status is None:
            message = f"unknown status {raw_status!r}"
            return ItemError(
                index=index, message=message, details=({"loc": f"{loc}.status", "message": message},)
            )
        external_id = first_text(item.get("external_id"))
        title = first_text(item.get("title"), item.get("summary")) or "Webhook alert"
        fingerprint = first_text(item.get("fingerprint"), item.get("dedup_key"))
        if fingerprint:
            dedup_key = clamp_dedup_key(fingerprint)
        else:
            dedup_key = generated_dedup_key(
                {"source": self.name, "external_id": external_id, "title": title, "labels": labels}
            )
        severity, original = normalize_severity(item.get("severity"), default=c.SEV_INFO)
        event_link = first_text(
            *(item.get(key) for key in LINK_FIELDS), *(labels.get(key) for key in LINK_FIELDS)
        )
        derived = {"event_link": event_link, "severity_original": unrecognized_original(original)}
        return NormalizedAlert(
            source=self.name,
            dedup_key=dedup_key,
            external_id=external_id,
            status=status,
            title=title,
            message=first_text(item.get("message")) or "",
            severity=severity,
            original_severity=original,
            labels=merge_labels(labels, derived),
            annotations=dict(annotations),
            starts_at=starts_at,
            ends_at=ends_at,
            team_slug=team_hint(item, labels),
            payload=dict(item),
        )
