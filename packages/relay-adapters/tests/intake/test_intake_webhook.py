"""Generic JSON webhook intake source (SPEC S2.9)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from relay_adapters.intake import BUILTIN_SOURCES, WebhookSource
from relay_core.domain.errors import IntakeValidationError
from relay_core.domain.intake import InvalidJson, ItemError, apply_field_limits, generated_dedup_key
from relay_core.domain.model import NormalizedAlert
from relay_core.ports.intake import IntakeSource
from relay_core.testing.contracts import IntakeSample, IntakeSourceContract

UTC = dt.UTC

SPEC_EXAMPLE: dict[str, Any] = {
    "status": "firing",
    "external_id": "db-1",
    "fingerprint": "db-1-replication",
    "title": "Replication lag",
    "message": "lag 120s",
    "severity": "high",
    "team": "infra",
    "event_link": "https://grafana.example/d/x",
    "labels": {"region": "eu-west"},
    "details": {"lag_seconds": 120, "replica": "db-2"},
}


def parse(body: Any) -> list[NormalizedAlert | ItemError]:
    return WebhookSource().parse(json.dumps(body).encode(), {}, {})


def only_alert(body: Any) -> NormalizedAlert:
    (alert,) = parse(body)
    assert isinstance(alert, NormalizedAlert)
    return alert


def test_builtin_sources_are_intake_sources() -> None:
    """Every built-in source satisfies the port and has a distinct name."""
    assert [source.name for source in BUILTIN_SOURCES] == ["alertmanager", "grafana", "zabbix", "webhook"]
    for source in BUILTIN_SOURCES:
        assert isinstance(source(), IntakeSource)
    assert WebhookSource.default_group_by == ()


def test_single_object_maps_every_field() -> None:
    """The S2.9 example maps to the exact normalized alert, details kept in the payload."""
    alert = only_alert(SPEC_EXAMPLE)
    assert alert.source == "webhook"
    assert alert.status == "firing"
    assert alert.external_id == "db-1"
    assert alert.dedup_key == "db-1-replication"
    assert alert.title == "Replication lag"
    assert alert.message == "lag 120s"
    assert (alert.severity, alert.original_severity) == ("high", "high")
    assert alert.team_slug == "infra"
    assert dict(alert.labels) == {"event_link": "https://grafana.example/d/x", "region": "eu-west"}
    assert alert.payload == SPEC_EXAMPLE
    assert alert.payload["details"] == {"lag_seconds": 120, "replica": "db-2"}


def test_array_keeps_input_order() -> None:
    """An array yields one result per item, in order."""
    items = parse([{"title": "a"}, {"title": "b", "status": "resolved"}])
    assert [(i.title, i.status) for i in items if isinstance(i, NormalizedAlert)] == [
        ("a", "firing"),
        ("b", "resolved"),
    ]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("firing", "firing"),
        ("PROBLEM", "firing"),
        ("alerting", "firing"),
        ("trigger", "firing"),
        ("triggered", "firing"),
        ("resolved", "resolved"),
        ("OK", "resolved"),
        ("recovered", "resolved"),
        ("closed", "resolved"),
        ("resolve", "resolved"),
        (None, "firing"),
    ],
)
def test_status_aliases(status: str | None, expected: str) -> None:
    """Every S2.9 status alias maps case-insensitively; a missing status is firing."""
    assert only_alert({"status": status}).status == expected


def test_unknown_status_fails_only_that_item() -> None:
    """An unknown status becomes an ItemError in place while the other items still map."""
    first, second, third = parse([{"title": "ok"}, {"status": "exploded"}, {"title": "also ok"}])
    assert isinstance(first, NormalizedAlert)
    assert isinstance(third, NormalizedAlert)
    assert second == ItemError(
        index=1,
        message="unknown status 'exploded'",
        details=({"loc": "$[1].status", "message": "unknown status 'exploded'"},),
    )
    assert second.code == "validation_error"


def test_unknown_status_in_single_object() -> None:
    """A single object with an unknown status is one ItemError at index 0 located at $.status."""
    (error,) = parse({"status": "x"})
    assert isinstance(error, ItemError)
    assert (error.index, error.message, error.details[0]["loc"]) == (0, "unknown status 'x'", "$.status")


def test_defaults_and_aliases() -> None:
    """Defaults are "Webhook alert" and info; summary and dedup_key alias title and fingerprint."""
    bare = only_alert({})
    assert (bare.title, bare.message, bare.severity, bare.original_severity) == (
        "Webhook alert",
        "",
        "info",
        None,
    )
    aliased = only_alert({"summary": "From summary", "dedup_key": "k-1"})
    assert (aliased.title, aliased.dedup_key) == ("From summary", "k-1")


def test_generated_dedup_key_is_stable() -> None:
    """Without a fingerprint the key hashes (source, external_id, title, labels) whatever the key order."""
    item = {"external_id": "e1", "title": "T", "labels": {"b": "2", "a": 1}}
    reordered = {"labels": {"a": 1, "b": "2"}, "title": "T", "external_id": "e1", "message": "other"}
    expected = generated_dedup_key(
        {"source": "webhook", "external_id": "e1", "title": "T", "labels": {"a": "1", "b": "2"}}
    )
    assert only_alert(item).dedup_key == only_alert(reordered).dedup_key == expected


def test_event_link_top_level_then_labels() -> None:
    """event_link comes from the top-level link fields first, then from labels."""
    assert (
        only_alert({"runbook_url": "https://r", "labels": {"event_url": "https://l"}}).event_link
        == "https://r"
    )
    assert only_alert({"labels": {"dashboard_url": "https://d"}}).event_link == "https://d"


def test_team_hint_from_labels() -> None:
    """Without a top-level team, labels.team and then labels.oncall_team give the hint."""
    assert only_alert({"labels": {"oncall_team": "ops"}}).team_slug == "ops"


def test_nested_labels_are_flattened_and_unknown_severity_kept() -> None:
    """Nested label values become JSON text and an unknown severity is kept as severity_original."""
    alert = only_alert({"severity": "sev1", "labels": {"k8s": {"pod": "api-1", "ns": "prod"}, "n": 2}})
    assert alert.labels["k8s"] == '{"ns":"prod","pod":"api-1"}'
    assert alert.labels["n"] == "2"
    assert (alert.severity, alert.labels["severity_original"]) == ("warning", "sev1")


def test_timestamps_and_annotations() -> None:
    """Optional starts_at/ends_at parse as RFC 3339 and annotations pass through."""
    alert = only_alert({"starts_at": "2026-06-01T07:00:00+03:00", "annotations": {"note": "x"}})
    assert alert.starts_at == dt.datetime(2026, 6, 1, 4, tzinfo=UTC)
    assert alert.annotations == {"note": "x"}


def test_field_limits_apply_to_webhook_alerts() -> None:
    """Oversized titles, labels and payloads are truncated by the shared limits, never rejected."""
    item = {
        "title": "t" * 400,
        "labels": {f"l{i}": "v" for i in range(150)},
        "details": {"blob": "x" * 70_000},
    }
    limited, labels_truncated = apply_field_limits(only_alert(item))
    assert labels_truncated is True
    assert len(limited.title) == 255
    assert len(limited.labels) == 100
    assert limited.payload == {"_truncated": True}


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ([{"title": "ok"}, "text"], [{"loc": "$[1]", "message": "expected a mapping"}]),
        ({"labels": "x"}, [{"loc": "$.labels", "message": "expected a mapping"}]),
        ([{}, {"labels": [1]}], [{"loc": "$[1].labels", "message": "expected a mapping"}]),
        ({"starts_at": "soon"}, [{"loc": "$.starts_at", "message": "invalid RFC 3339 timestamp 'soon'"}]),
    ],
)
def test_shape_errors_fail_the_whole_body(body: Any, details: list[dict[str, str]]) -> None:
    """Wrong shapes are a 400 validation error for the whole request, with locations."""
    with pytest.raises(IntakeValidationError) as info:
        parse(body)
    assert info.value.details == details


def test_body_level_limits() -> None:
    """Invalid JSON, scalar bodies and more than 1000 items are rejected before any mapping."""
    with pytest.raises(InvalidJson):
        WebhookSource().parse(b"{", {}, {})
    with pytest.raises(IntakeValidationError):
        WebhookSource().parse(b"42", {}, {})
    with pytest.raises(IntakeValidationError, match="too many items"):
        parse([{}] * 1001)
    assert parse([]) == []


class TestWebhookSourceContract(IntakeSourceContract):
    """WebhookSource passes the public intake source conformance kit."""

    source_class = WebhookSource
    entry_point_name = "builtin"

    def valid_samples(self) -> list[IntakeSample]:
        return [
            IntakeSample(
                body=json.dumps(SPEC_EXAMPLE).encode(),
                expected=[{"dedup_key": "db-1-replication", "severity": "high", "team_slug": "infra"}],
            ),
            IntakeSample(
                body=json.dumps([{"title": "a"}, {"title": "b"}]).encode(),
                expected=[{"title": "a"}, {"title": "b"}],
            ),
        ]

    def invalid_samples(self) -> list[IntakeSample]:
        return [*super().invalid_samples(), IntakeSample(body=b'{"labels": "x"}')]
