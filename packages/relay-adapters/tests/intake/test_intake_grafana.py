"""Grafana Alerting webhook intake source (SPEC S2.7)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import pytest

from relay_adapters.intake import GrafanaSource
from relay_core.domain.errors import IntakeValidationError, Unauthorized
from relay_core.domain.intake import generated_dedup_key
from relay_core.domain.model import NormalizedAlert, Route
from relay_core.ports.intake import VerifyingIntakeSource
from relay_core.testing.contracts import IntakeSample, IntakeSourceContract

UTC = dt.UTC

BODY: dict[str, Any] = {
    "receiver": "relay",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "High CPU",
                "grafana_folder": "Infra",
                "instance": "web-1:9100",
                "priority": "P1",
                "__alert_rule_uid__": "ddq2x1k9z",
            },
            "annotations": {
                "summary": "CPU above 90% on web-1",
                "description": "CPU has been above 90% for 5m",
            },
            "startsAt": "2026-06-01T07:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://grafana.example.com/alerting/grafana/ddq2x1k9z/view?orgId=1",
            "fingerprint": "3b0e1f6c2d9a4e51",
            "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DHigh+CPU",
            "dashboardURL": "https://grafana.example.com/d/node?orgId=1",
            "panelURL": "https://grafana.example.com/d/node?orgId=1&viewPanel=3",
            "values": {"A": 93.5, "C": 1},
            "valueString": "[ var='A' labels={instance=web-1:9100} value=93.5 ]",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "Disk latency", "instance": "db-1:9100"},
            "annotations": {},
            "startsAt": "2026-06-01T06:00:00Z",
            "endsAt": "2026-06-01T06:30:00Z",
            "generatorURL": "https://grafana.example.com/alerting/grafana/aa11/view?orgId=1",
            "fingerprint": "",
            "silenceURL": "",
            "dashboardURL": "",
            "panelURL": "",
            "values": None,
            "valueString": "[ var='B' labels={instance=db-1:9100} value=0.2 ]",
            "ruleUID": "aa11",
        },
    ],
    "groupLabels": {"alertname": "High CPU"},
    "commonLabels": {"team": "web", "severity": "high"},
    "commonAnnotations": {},
    "externalURL": "https://grafana.example.com/",
    "version": "1",
    "groupKey": '{}:{alertname="High CPU"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:1, RESOLVED:1] (Infra)",
    "state": "alerting",
    "message": "**Firing**\n\nValue: A=93.5",
}


def parse(body: Any) -> list[NormalizedAlert]:
    items = GrafanaSource().parse(json.dumps(body).encode(), {}, {})
    return [item for item in items if isinstance(item, NormalizedAlert)]


def route(config: dict[str, Any]) -> Route:
    return Route(id=1, team_id=1, name="grafana", source="grafana", integration_config=config)


def test_firing_item_maps_every_field() -> None:
    """A unified-alerting item maps to the exact S2.7 fields, common labels included."""
    first = parse(BODY)[0]
    assert first.source == "grafana"
    assert first.dedup_key == first.external_id == "3b0e1f6c2d9a4e51"
    assert first.status == "firing"
    assert first.title == "CPU above 90% on web-1"
    assert first.message == "CPU has been above 90% for 5m"
    assert (first.severity, first.original_severity) == ("high", "high")
    assert first.team_slug == "web"
    assert first.starts_at == dt.datetime(2026, 6, 1, 7, tzinfo=UTC)
    assert first.ends_at is None
    assert dict(first.labels) == {
        "alertname": "High CPU",
        "grafana_folder": "Infra",
        "instance": "web-1:9100",
        "priority": "P1",
        "__alert_rule_uid__": "ddq2x1k9z",
        "team": "web",
        "severity": "high",
        "dashboard_url": "https://grafana.example.com/d/node?orgId=1",
        "panel_url": "https://grafana.example.com/d/node?orgId=1&viewPanel=3",
        "generator_url": "https://grafana.example.com/alerting/grafana/ddq2x1k9z/view?orgId=1",
        "silence_url": BODY["alerts"][0]["silenceURL"],
        "grafana_url": "https://grafana.example.com/",
        "grafana_org_id": "1",
        "grafana_receiver": "relay",
        "grafana_group_key": '{}:{alertname="High CPU"}',
        "grafana_state": "alerting",
        "event_link": "https://grafana.example.com/d/node?orgId=1",
    }


def test_payload_is_envelope_with_only_that_item() -> None:
    """Each stored payload is the envelope whose alerts list holds just that item."""
    first, second = parse(BODY)
    assert first.payload["alerts"] == [BODY["alerts"][0]]
    assert second.payload["alerts"] == [BODY["alerts"][1]]
    assert first.payload["title"] == BODY["title"]
    assert first.payload["alerts"][0]["values"] == {"A": 93.5, "C": 1}


def test_item_status_wins_and_fallbacks_apply() -> None:
    """The resolved item keeps its status, falls back to alertname/top message, and links to its generator."""
    second = parse(BODY)[1]
    assert second.status == "resolved"
    assert second.title == "Disk latency"
    assert second.message == "**Firing**\n\nValue: A=93.5"
    assert second.labels["event_link"] == "https://grafana.example.com/alerting/grafana/aa11/view?orgId=1"
    assert "dashboard_url" not in second.labels
    assert second.ends_at == dt.datetime(2026, 6, 1, 6, 30, tzinfo=UTC)


def test_generated_dedup_key_uses_rule_title_labels_and_org() -> None:
    """Without a fingerprint the key hashes (source, rule uid, title, labels without __ keys, orgId)."""
    second = parse(BODY)[1]
    expected = generated_dedup_key(
        {
            "source": "grafana",
            "rule_uid": "aa11",
            "title": "Disk latency",
            "labels": {"alertname": "Disk latency", "instance": "db-1:9100"},
            "org_id": 1,
        }
    )
    assert second.dedup_key == expected
    body = copy.deepcopy(BODY)
    body["alerts"][1]["labels"]["__internal__"] = "ignored"
    assert parse(body)[1].dedup_key == expected
    body["orgId"] = 2
    assert parse(body)[1].dedup_key != expected


def test_severity_falls_back_to_priority_and_level() -> None:
    """Severity comes from severity, then priority, then level, defaulting to warning."""
    body = {"alerts": [{"labels": {"priority": "P1"}}, {"labels": {"level": "info"}}, {"labels": {}}]}
    assert [(a.severity, a.original_severity) for a in parse(body)] == [
        ("critical", "P1"),
        ("info", "info"),
        ("warning", None),
    ]


def test_title_and_message_fall_back_to_envelope_and_value_string() -> None:
    """Without annotations or alertname the top title is used, and valueString ends the message chain."""
    body = {"title": "Top title", "alerts": [{"labels": {}, "valueString": "[ A=1 ]"}]}
    (alert,) = parse(body)
    assert (alert.title, alert.message) == ("Top title", "[ A=1 ]")
    (bare,) = parse({"alerts": [{}]})
    assert (bare.title, bare.message) == ("Grafana alert", "")


def test_common_labels_must_be_a_mapping() -> None:
    """A malformed commonLabels is reported at its location."""
    with pytest.raises(IntakeValidationError) as info:
        parse({"commonLabels": "x", "alerts": []})
    assert info.value.details == [{"loc": "$.commonLabels", "message": "expected a mapping"}]


# --- HMAC -----------------------------------------------------------------------------------------


def test_source_declares_verify() -> None:
    """Grafana is a signature-verifying source."""
    assert isinstance(GrafanaSource(), VerifyingIntakeSource)


def test_verify_accepts_a_correct_signature() -> None:
    """The lower-case hex HMAC-SHA256 of the body is accepted, header name in any case."""
    body = json.dumps(BODY).encode()
    signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    headers = {"x-grafana-alerting-signature": signature}
    GrafanaSource().verify(headers, body, route({"grafana": {"hmac_secret": "s3cret"}}))


def test_verify_with_timestamp_header() -> None:
    """With timestamp_header set, the signature covers "<ts>:<body>"."""
    body = b'{"alerts": []}'
    signature = hmac.new(b"s3cret", b"1767225600:" + body, hashlib.sha256).hexdigest()
    config = {"grafana": {"hmac_secret": "s3cret", "timestamp_header": "X-Grafana-Alerting-Timestamp"}}
    headers = {"X-Grafana-Alerting-Signature": signature, "X-Grafana-Alerting-Timestamp": "1767225600"}
    GrafanaSource().verify(headers, body, route(config))
    with pytest.raises(Unauthorized) as info:
        GrafanaSource().verify({"X-Grafana-Alerting-Signature": signature}, body, route(config))
    assert info.value.code == "invalid_signature"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Grafana-Alerting-Signature": "00" * 32}, {"X-Grafana-Alerting-Signature": "é"}],
)
def test_verify_rejects_missing_or_wrong_signature(headers: dict[str, str]) -> None:
    """A missing or wrong signature is 401 invalid_signature."""
    with pytest.raises(Unauthorized) as info:
        GrafanaSource().verify(headers, b"{}", route({"grafana": {"hmac_secret": "s3cret"}}))
    assert info.value.code == "invalid_signature"
    assert info.value.status == 401


@pytest.mark.parametrize("config", [{}, {"grafana": {}}, {"grafana": {"hmac_secret": ""}}, {"grafana": "x"}])
def test_verify_is_a_no_op_without_secret(config: dict[str, Any]) -> None:
    """Routes without an HMAC secret, and requests without a forced route, are not checked."""
    GrafanaSource().verify({}, b"{}", route(config))
    GrafanaSource().verify({}, b"{}", None)


class TestGrafanaSourceContract(IntakeSourceContract):
    """GrafanaSource passes the public intake source conformance kit."""

    source_class = GrafanaSource
    entry_point_name = "builtin"

    def valid_samples(self) -> list[IntakeSample]:
        return [
            IntakeSample(
                body=json.dumps(BODY).encode(),
                expected=[
                    {"dedup_key": "3b0e1f6c2d9a4e51", "status": "firing", "severity": "high"},
                    {"title": "Disk latency", "status": "resolved"},
                ],
            )
        ]
