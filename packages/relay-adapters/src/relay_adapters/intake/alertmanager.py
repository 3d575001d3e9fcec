"""Prometheus Alertmanager webhook (version 4) intake source (SPEC S2.6).

Grafana's contact point posts the same envelope, so :func:`read_envelope` is shared with
:mod:`relay_adapters.intake.grafana`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from relay_core.domain import constants as c
from relay_core.domain.intake import (
    ParsedItem,
    ValidationDetails,
    check_item_count,
    clamp_dedup_key,
    decode_json_body,
    extract_hostname,
    first_text,
    flatten_labels,
    generated_dedup_key,
    loc_index,
    merge_labels,
    team_hint,
)
from relay_core.domain.model import NormalizedAlert
from relay_core.domain.severity import normalize_severity, unrecognized_original

LINK_ANNOTATIONS = (
    "event_link",
    "event_url",
    "alert_url",
    "source_url",
    "dashboard_url",
    "panel_url",
    "runbook_url",
)
"""Annotations searched for ``event_link``, in order, before ``generatorURL`` and ``externalURL``."""

_STATUSES = (c.ALERT_FIRING, c.ALERT_RESOLVED)


@attrs.frozen(kw_only=True)
class EnvelopeItem:
    """One ``alerts[]`` item of an Alertmanager-style envelope after shape checks."""

    index: int
    loc: str
    item: Mapping[str, Any]
    labels: dict[str, str]
    """The item's own labels, flattened."""
    annotations: Mapping[str, Any]
    status: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None


def read_envelope(envelope: Mapping[str, Any], problems: ValidationDetails) -> list[EnvelopeItem]:
    """Check ``alerts[]`` and the shape of each item, recording problems with their ``loc``.

    The status of an item is its own ``status``, else the envelope's, else ``firing``.
    """
    alerts = envelope.get("alerts")
    if not isinstance(alerts, list):
        problems.add("$.alerts", "field required" if alerts is None else "expected a list")
        return []
    check_item_count(len(alerts), "$.alerts")
    top_status = envelope.get("status")
    items: list[EnvelopeItem] = []
    for index, item in enumerate(alerts):
        loc = loc_index("$.alerts", index)
        if not isinstance(item, Mapping):
            problems.add(loc, "expected a mapping")
            continue
        labels = problems.mapping(item.get("labels"), f"{loc}.labels")
        annotations = problems.mapping(item.get("annotations"), f"{loc}.annotations")
        if item.get("status") is not None:
            status_value, status_loc = item.get("status"), f"{loc}.status"
        else:
            status_value, status_loc = top_status, "$.status"
        status = first_text(status_value)
        status = status.lower() if status else c.ALERT_FIRING
        if status not in _STATUSES:
            problems.add(status_loc, "expected 'firing' or 'resolved'")
            status = c.ALERT_FIRING
        items.append(
            EnvelopeItem(
                index=index,
                loc=loc,
                item=item,
                labels=flatten_labels(labels),
                annotations=dict(annotations),
                status=status,
                starts_at=problems.timestamp(item.get("startsAt"), f"{loc}.startsAt"),
                ends_at=problems.timestamp(item.get("endsAt"), f"{loc}.endsAt"),
            )
        )
    return items


class AlertmanagerSource:
    """``/api/integrations/alertmanager``: one normalized alert per ``alerts[]`` item."""

    name: ClassVar[str] = "alertmanager"
    path_aliases: ClassVar[tuple[str, ...]] = ()
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    default_group_by: ClassVar[tuple[str, ...]] = ("alertname",)

    def parse(self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]) -> list[ParsedItem]:
        envelope = decode_json_body(body, allow_array=False)
        problems = ValidationDetails()
        items = read_envelope(envelope, problems)
        problems.raise_if_any("Alertmanager payload is invalid")
        external_url = first_text(envelope.get("externalURL"))
        receiver = first_text(envelope.get("receiver"))
        group_key = first_text(envelope.get("groupKey"))
        return [self._alert(entry, external_url, receiver, group_key) for entry in items]

    def _alert(
        self, entry: EnvelopeItem, external_url: str | None, receiver: str | None, group_key: str | None
    ) -> NormalizedAlert:
        item, labels, annotations = entry.item, entry.labels, entry.annotations
        generator_url = first_text(item.get("generatorURL"))
        severity, original = normalize_severity(labels.get("severity"), default=c.SEV_WARNING)
        fingerprint = first_text(item.get("fingerprint"))
        if fingerprint:
            dedup_key = clamp_dedup_key(fingerprint)
        else:
            dedup_key = generated_dedup_key({"source": self.name, "labels": labels})
        event_link = first_text(
            *(annotations.get(key) for key in LINK_ANNOTATIONS), generator_url, external_url
        )
        derived = {
            "hostname": extract_hostname(labels),
            "generator_url": generator_url,
            "alertmanager_url": external_url,
            "alertmanager_receiver": receiver,
            "alertmanager_group_key": group_key,
            "event_link": event_link,
            "severity_original": unrecognized_original(original),
        }
        return NormalizedAlert(
            source=self.name,
            dedup_key=dedup_key,
            external_id=dedup_key,
            status=entry.status,
            title=first_text(annotations.get("summary"), labels.get("alertname")) or "Alertmanager alert",
            message=first_text(annotations.get("description"), annotations.get("message")) or "",
            severity=severity,
            original_severity=original,
            labels=merge_labels(labels, derived),
            annotations=annotations,
            starts_at=entry.starts_at,
            ends_at=entry.ends_at,
            team_slug=team_hint(item, labels),
            payload=dict(item),
        )
