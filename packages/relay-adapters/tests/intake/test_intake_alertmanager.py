"""Alertmanager webhook v4 intake source (SPEC S2.6)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from relay_adapters.intake import BUILTIN_SOURCES, AlertmanagerSource
from relay_core.domain.errors import IntakeValidationError
from relay_core.domain.intake import InvalidJson, generated_dedup_key
from relay_core.domain.model import NormalizedAlert
from relay_core.ports.intake import IntakeSource
from relay_core.testing.contracts import IntakeSample, IntakeSourceContract

UTC = dt.UTC

BODY: dict[str, Any] = {
    "receiver": "relay-infra",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "DiskFull",
                "device": "/dev/sda1",
                "instance": "host1.example.com:9100",
                "job": "node",
                "mountpoint": "/var",
                "severity": "critical",
                "team": "infra",
            },
            "annotations": {
                "summary": "Disk is full",
                "description": "/var is 95% full",
                "runbook_url": "https://wiki.example.com/runbooks/disk-full",
            },
            "startsAt": "2026-06-01T07:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=node_filesystem_avail_bytes",
            "fingerprint": "d3f1c2b0a9e8f7a6",
        },
        {
            "status": "resolved",
            "labels": {
                "alertname": "HighLoad",
                "instance": "10.0.0.7:9100",
                "job": "node",
                "severity": "warn",
            },
            "annotations": {"description": "load average above 8"},
            "startsAt": "2026-06-01T06:00:00Z",
            "endsAt": "2026-06-01T06:55:00.5+00:00",
            "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=node_load1",
            "fingerprint": "0a1b2c3d4e5f6789",
        },
    ],
    "groupLabels": {"alertname": "DiskFull"},
    "commonLabels": {"job": "node"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example.com:9093",
    "version": "4",
    "groupKey": '{}/{team="infra"}:{alertname="DiskFull"}',
    "truncatedAlerts": 0,
    "notification_reason": "new_alert",
}


def parse(body: Any) -> list[NormalizedAlert]:
    items = AlertmanagerSource().parse(json.dumps(body).encode(), {"Content-Type": "application/json"}, {})
    assert all(isinstance(item, NormalizedAlert) for item in items)
    return [item for item in items if isinstance(item, NormalizedAlert)]


def test_source_metadata_fits_the_port() -> None:
    """The class carries the port's metadata and is registered as a built-in."""
    assert isinstance(AlertmanagerSource(), IntakeSource)
    assert AlertmanagerSource.name == "alertmanager"
    assert AlertmanagerSource.default_group_by == ("alertname",)
    assert AlertmanagerSource.content_types == ("application/json",)
    assert AlertmanagerSource in BUILTIN_SOURCES


def test_firing_alert_maps_every_field() -> None:
    """The first item of a real v4 body maps to the exact normalized alert of S2.6."""
    first = parse(BODY)[0]
    assert first.source == "alertmanager"
    assert first.dedup_key == first.external_id == "d3f1c2b0a9e8f7a6"
    assert first.status == "firing"
    assert first.title == "Disk is full"
    assert first.message == "/var is 95% full"
    assert (first.severity, first.original_severity) == ("critical", "critical")
    assert first.starts_at == dt.datetime(2026, 6, 1, 7, 0, 0, 123456, tzinfo=UTC)
    assert first.ends_at is None
    assert first.team_slug == "infra"
    assert first.update_only is False
    assert first.annotations == BODY["alerts"][0]["annotations"]
    assert first.payload == BODY["alerts"][0]
    assert dict(first.labels) == {
        "alertname": "DiskFull",
        "device": "/dev/sda1",
        "instance": "host1.example.com:9100",
        "job": "node",
        "mountpoint": "/var",
        "severity": "critical",
        "team": "infra",
        "hostname": "host1.example.com",
        "generator_url": "http://prometheus.example.com:9090/graph?g0.expr=node_filesystem_avail_bytes",
        "alertmanager_url": "http://alertmanager.example.com:9093",
        "alertmanager_receiver": "relay-infra",
        "alertmanager_group_key": '{}/{team="infra"}:{alertname="DiskFull"}',
        "event_link": "https://wiki.example.com/runbooks/disk-full",
    }
    assert first.event_link == "https://wiki.example.com/runbooks/disk-full"


def test_resolved_alert_uses_fallbacks() -> None:
    """The second item falls back to alertname for its title and keeps its own resolved status."""
    second = parse(BODY)[1]
    assert second.status == "resolved"
    assert second.title == "HighLoad"
    assert second.message == "load average above 8"
    assert (second.severity, second.original_severity) == ("warning", "warn")
    assert "severity_original" not in second.labels
    assert second.labels["hostname"] == "10.0.0.7"
    assert second.labels["event_link"] == "http://prometheus.example.com:9090/graph?g0.expr=node_load1"
    assert second.ends_at == dt.datetime(2026, 6, 1, 6, 55, 0, 500000, tzinfo=UTC)
    assert second.team_slug is None


def test_missing_fields_use_defaults_and_top_level_status() -> None:
    """Without annotations, alertname, severity or item status the S2.6 defaults and envelope status apply."""
    body = {"status": "resolved", "externalURL": "http://am:9093", "alerts": [{"labels": {"job": "x"}}]}
    (alert,) = parse(body)
    assert alert.status == "resolved"
    assert alert.title == "Alertmanager alert"
    assert alert.message == ""
    assert (alert.severity, alert.original_severity) == ("warning", None)
    assert alert.labels["event_link"] == "http://am:9093"
    assert alert.starts_at is None


def test_unknown_severity_is_kept_as_label() -> None:
    """An unknown severity maps to warning and its original goes to labels.severity_original."""
    body = {"alerts": [{"labels": {"alertname": "A", "severity": "sev2"}, "fingerprint": "f"}]}
    (alert,) = parse(body)
    assert (alert.severity, alert.original_severity) == ("warning", "sev2")
    assert alert.labels["severity_original"] == "sev2"


def test_generated_dedup_key_is_stable() -> None:
    """Without a fingerprint the key is generated from (source, labels), independent of label order."""
    labels = {"alertname": "DiskFull", "instance": "host1:9100"}
    (alert,) = parse({"alerts": [{"labels": labels}]})
    (reordered,) = parse({"alerts": [{"labels": dict(reversed(list(labels.items())))}]})
    assert (
        alert.dedup_key
        == reordered.dedup_key
        == generated_dedup_key({"source": "alertmanager", "labels": labels})
    )
    assert alert.external_id == alert.dedup_key


def test_long_fingerprint_is_hashed() -> None:
    """A fingerprint longer than 255 characters is replaced by its SHA-256 hex."""
    (alert,) = parse({"alerts": [{"labels": {}, "fingerprint": "f" * 300}]})
    assert len(alert.dedup_key) == 64


def test_unknown_fields_are_kept_in_payload() -> None:
    """Fields Relay does not know are ignored by the mapping and kept in the payload."""
    body = copy.deepcopy(BODY)
    body["alerts"][0]["routeLabels"] = {"team": "infra"}
    assert parse(body)[0].payload["routeLabels"] == {"team": "infra"}


def test_schema_errors_carry_locations() -> None:
    """Every shape problem is reported with its JSONPath-like location, and nothing is returned."""
    body = {
        "alerts": [
            {"labels": ["not", "a", "mapping"]},
            "oops",
            {"labels": {}, "status": "pending", "startsAt": "yesterday", "annotations": 3},
        ]
    }
    with pytest.raises(IntakeValidationError) as info:
        parse(body)
    assert info.value.code == "validation_error"
    assert info.value.details == [
        {"loc": "$.alerts[0].labels", "message": "expected a mapping"},
        {"loc": "$.alerts[1]", "message": "expected a mapping"},
        {"loc": "$.alerts[2].annotations", "message": "expected a mapping"},
        {"loc": "$.alerts[2].status", "message": "expected 'firing' or 'resolved'"},
        {"loc": "$.alerts[2].startsAt", "message": "invalid RFC 3339 timestamp 'yesterday'"},
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"status": "firing"}, {"loc": "$.alerts", "message": "field required"}),
        ({"alerts": {}}, {"loc": "$.alerts", "message": "expected a list"}),
    ],
)
def test_alerts_must_be_a_list(body: dict[str, Any], detail: dict[str, str]) -> None:
    """A body without an alerts list is a validation error at $.alerts."""
    with pytest.raises(IntakeValidationError) as info:
        parse(body)
    assert info.value.details == [detail]


def test_too_many_alerts_is_rejected() -> None:
    """More than 1000 alerts in one post is a validation error."""
    with pytest.raises(IntakeValidationError, match="too many items"):
        parse({"alerts": [{"labels": {}}] * 1001})


def test_invalid_json_and_arrays_are_rejected() -> None:
    """Broken JSON is invalid_json and a top-level array is not an Alertmanager body."""
    with pytest.raises(InvalidJson):
        AlertmanagerSource().parse(b'{"alerts": [', {}, {})
    with pytest.raises(IntakeValidationError):
        AlertmanagerSource().parse(b"[]", {}, {})


class TestAlertmanagerSourceContract(IntakeSourceContract):
    """AlertmanagerSource passes the public intake source conformance kit."""

    source_class = AlertmanagerSource
    entry_point_name = "builtin"

    def valid_samples(self) -> list[IntakeSample]:
        return [
            IntakeSample(
                body=json.dumps(BODY).encode(),
                expected=[
                    {"dedup_key": "d3f1c2b0a9e8f7a6", "status": "firing", "severity": "critical"},
                    {"dedup_key": "0a1b2c3d4e5f6789", "status": "resolved", "severity": "warning"},
                ],
            )
        ]

    def invalid_samples(self) -> list[IntakeSample]:
        return [*super().invalid_samples(), IntakeSample(body=b'{"alerts": [{"labels": []}]}')]
