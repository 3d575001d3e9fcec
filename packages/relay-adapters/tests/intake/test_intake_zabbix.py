"""Zabbix webhook media type intake source and the shipped media type (SPEC S2.8)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from relay_adapters.intake import ZabbixSource
from relay_adapters.intake.zabbix import null_macros
from relay_core.domain.errors import IntakeValidationError
from relay_core.domain.intake import generated_dedup_key
from relay_core.domain.model import NormalizedAlert
from relay_core.testing.contracts import IntakeSample, IntakeSourceContract

REPO_ROOT = Path(__file__).resolve().parents[4]


def load_yaml(relative: str) -> Any:
    yaml = pytest.importorskip("yaml")  # PyYAML comes with the server stack, not with relay-adapters
    return yaml.safe_load((REPO_ROOT / relative).read_text())


# What the shipped media type posts for a problem: Zabbix leaves macros it cannot expand as-is.
PROBLEM: dict[str, Any] = {
    "event_id": "10452",
    "recovery_id": "{EVENT.RECOVERY.ID}",
    "event_value": "1",
    "update_status": "0",
    "update_action": "{EVENT.UPDATE.ACTION}",
    "ack_status": "No",
    "severity": "4",
    "severity_name": "High",
    "event_source": "0",
    "status": "PROBLEM",
    "title": "High CPU utilization (over 90% for 5m)",
    "message": "Problem started at 07:00:00 on 2026.06.01\nHost: web-1\nSeverity: High",
    "tags": '[{"tag":"class","value":"os"},{"tag":"component","value":"cpu"},'
    '{"tag":"scope","value":"performance"},{"tag":"scope","value":"capacity"}]',
    "host": "web-1",
    "trigger_id": "23871",
    "opdata": "Current utilization: 97.2 %",
    "zabbix_url": "https://zabbix.example.com/",
}


def parse(body: Any) -> NormalizedAlert:
    (alert,) = ZabbixSource().parse(json.dumps(body).encode(), {}, {})
    assert isinstance(alert, NormalizedAlert)
    return alert


def test_problem_maps_every_field() -> None:
    """A problem notification maps to the exact S2.8 fields."""
    alert = parse(PROBLEM)
    assert alert.source == "zabbix"
    assert alert.dedup_key == alert.external_id == "10452"
    assert alert.status == "firing"
    assert alert.update_only is False
    assert alert.title == "High CPU utilization (over 90% for 5m)"
    assert alert.message == PROBLEM["message"]
    assert (alert.severity, alert.original_severity) == ("critical", "4")
    assert alert.team_slug is None
    assert dict(alert.labels) == {
        "class": "os",
        "component": "cpu",
        "scope": "performance,capacity",
        "host": "web-1",
        "event_source": "0",
        "ack_status": "No",
        "zabbix_severity": "4",
        "event_link": "https://zabbix.example.com/tr_events.php?triggerid=23871&eventid=10452",
    }
    assert alert.payload == PROBLEM


def test_recovery_keeps_the_problem_identity() -> None:
    """A recovery carries the original problem id, so it resolves the same alert."""
    recovery = {**PROBLEM, "recovery_id": "10460", "event_value": "0", "status": "RESOLVED"}
    alert = parse(recovery)
    assert alert.status == "resolved"
    assert alert.dedup_key == parse(PROBLEM).dedup_key


def test_update_is_update_only() -> None:
    """An update notification (update_status 1) may only update an existing alert."""
    update = {**PROBLEM, "update_status": "1", "update_action": "acknowledged", "ack_status": "Yes"}
    alert = parse(update)
    assert alert.update_only is True
    assert alert.status == "firing"
    assert alert.labels["ack_status"] == "Yes"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "PROBLEM", "event_value": "0"}, "firing"),
        ({"status": "ok"}, "resolved"),
        ({"event_status": "RESOLVED"}, "resolved"),
        ({"status": "{EVENT.STATUS}", "event_value": "0"}, "resolved"),
        ({"event_value": "1"}, "firing"),
        ({"status": "weird"}, "firing"),
        ({}, "firing"),
    ],
)
def test_status_mapping(fields: dict[str, str], expected: str) -> None:
    """status/event_status decide first, then event_value, else firing."""
    assert parse({"event_id": "1", **fields}).status == expected


@pytest.mark.parametrize(
    ("value", "severity"),
    [
        ("Disaster", "critical"),
        ("High", "critical"),
        ("Average", "warning"),
        ("Warning", "warning"),
        ("Information", "info"),
        ("Not classified", "info"),
        ("5", "critical"),
        ("4", "critical"),
        ("3", "warning"),
        ("2", "warning"),
        ("1", "info"),
        ("0", "info"),
    ],
)
def test_severity_table(value: str, severity: str) -> None:
    """Zabbix names and numeric severities use Zabbix's own table, the original kept as zabbix_severity."""
    alert = parse({"event_id": "1", "severity": value})
    assert (alert.severity, alert.original_severity) == (severity, value)
    assert alert.labels["zabbix_severity"] == value
    assert "severity_original" not in alert.labels


def test_severity_chain_and_unknown_values() -> None:
    """event_severity follows an unexpanded severity; unknown values become warning with severity_original."""
    alert = parse({"event_id": "1", "severity": "{EVENT.NSEVERITY}", "event_severity": "Disaster"})
    assert alert.severity == "critical"
    unknown = parse({"event_id": "1", "trigger_severity": "bogus"})
    assert (unknown.severity, unknown.labels["severity_original"]) == ("warning", "bogus")
    assert parse({"event_id": "1"}).severity == "warning"


def test_unexpanded_macros_are_null() -> None:
    """Strings that are whole macro names count as missing; text that merely contains one does not."""
    assert null_macros({"a": "{EVENT.ID}", "b": ["{$ZABBIX.URL}", "x {HOST.NAME}"], "c": 1}) == {
        "a": None,
        "b": [None, "x {HOST.NAME}"],
        "c": 1,
    }
    alert = parse(
        {
            "event_id": "{EVENT.ID}",
            "trigger_id": "23871",
            "host": "web-1",
            "title": "{EVENT.NAME}",
            "trigger_name": "CPU high",
            "zabbix_url": "{$ZABBIX.URL}",
            "tags": "{EVENT.TAGSJSON}",
        }
    )
    assert alert.title == "CPU high"
    assert alert.external_id == "23871"
    assert "event_link" not in alert.labels
    assert alert.dedup_key == generated_dedup_key(
        {"source": "zabbix", "trigger_id": "23871", "host": "web-1", "title": "CPU high"}
    )


@pytest.mark.parametrize("body", [{}, {"event_id": "{EVENT.ID}", "title": "{EVENT.NAME}"}])
def test_empty_payload_is_rejected(body: dict[str, Any]) -> None:
    """An empty object, or one whose values are all unexpanded macros, is "Zabbix payload is empty"."""
    with pytest.raises(IntakeValidationError, match="Zabbix payload is empty") as info:
        parse(body)
    assert info.value.code == "validation_error"


def test_tag_forms_and_labels_object() -> None:
    """Tags as a list, as event_tag text, and a labels object all become labels (labels win)."""
    alert = parse(
        {
            "event_id": "1",
            "tags": [
                {"tag": "service", "value": "db"},
                {"tag": "team", "value": "dba"},
                {"tag": "", "value": "x"},
            ],
            "event_tag": "env: prod, service: cache, flag",
            "labels": {"service": "postgres", "oncall_team": "data"},
        }
    )
    assert alert.labels["service"] == "postgres"
    assert alert.labels["env"] == "prod"
    assert alert.labels["flag"] == ""
    assert alert.team_slug == "dba"


def test_title_message_and_link_fallbacks() -> None:
    """Title and message follow their chains, and an explicit event_url beats the built link."""
    alert = parse(
        {
            "eventid": "7",
            "triggerid": "9",
            "subject": "Subject line",
            "description": "desc",
            "event_url": "https://zabbix.example.com/custom",
            "zabbix_url": "https://zabbix.example.com",
        }
    )
    assert (alert.title, alert.message, alert.dedup_key) == ("Subject line", "desc", "7")
    assert alert.labels["event_link"] == "https://zabbix.example.com/custom"
    assert parse({"event_id": "1", "opdata": "97 %"}).message == "97 %"
    assert parse({"event_id": "1", "labels": {"alertname": "FromLabel"}}).title == "FromLabel"
    assert parse({"event_id": "1"}).title == "Zabbix alert"


def test_token_is_redacted_in_payload() -> None:
    """A token parameter posted by a customised media type never reaches the stored payload."""
    assert parse({"event_id": "1", "token": "rly_r_secret"}).payload["token"] == "<redacted>"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"event_id": "1", "labels": ["x"]}, "$.labels"),
        ({"event_id": "1", "tags": "not json"}, "$.tags"),
        ({"event_id": "1", "tags": 5}, "$.tags"),
        ({"event_id": "1", "tags": ["x"]}, "$.tags[0]"),
    ],
)
def test_malformed_labels_and_tags_are_rejected(body: dict[str, Any], loc: str) -> None:
    """Wrongly shaped labels or tags are validation errors at their location."""
    with pytest.raises(IntakeValidationError) as info:
        parse(body)
    assert [d["loc"] for d in info.value.details] == [loc]


# --- the shipped media type ---------------------------------------------------------------------


def test_shipped_media_type_lists_the_spec_parameters() -> None:
    """integrations/zabbix/relay_media_type.yaml is a webhook media type with the S2.8 parameters."""
    export = load_yaml("integrations/zabbix/relay_media_type.yaml")
    (media,) = export["zabbix_export"]["media_types"]
    assert media["type"] == "WEBHOOK"
    params = {p["name"]: p["value"] for p in media["parameters"]}
    assert params == {
        "event_id": "{EVENT.ID}",
        "recovery_id": "{EVENT.RECOVERY.ID}",
        "event_value": "{EVENT.VALUE}",
        "update_status": "{EVENT.UPDATE.STATUS}",
        "update_action": "{EVENT.UPDATE.ACTION}",
        "ack_status": "{EVENT.ACK.STATUS}",
        "severity": "{EVENT.NSEVERITY}",
        "severity_name": "{EVENT.SEVERITY}",
        "event_source": "{EVENT.SOURCE}",
        "status": "{EVENT.STATUS}",
        "title": "{EVENT.NAME}",
        "message": "{ALERT.MESSAGE}",
        "tags": "{EVENT.TAGSJSON}",
        "host": "{HOST.NAME}",
        "trigger_id": "{TRIGGER.ID}",
        "opdata": "{EVENT.OPDATA}",
        "zabbix_url": "{$ZABBIX.URL}",
        "url": params["url"],
        "token": params["token"],
    }
    assert params["url"].endswith("/api/integrations/zabbix")
    assert "Authorization: Bearer " in media["script"]
    assert "relay_url" in media["script"]
    assert media["process_tags"] == "YES"


def test_shipped_media_type_unexpanded_test_body_is_rejected_as_empty() -> None:
    """Posting the media type's raw parameter values (Zabbix "Test" without values) reads as empty."""
    export = load_yaml("integrations/zabbix/relay_media_type.yaml")
    params = {p["name"]: p["value"] for p in export["zabbix_export"]["media_types"][0]["parameters"]}
    body = {k: v for k, v in params.items() if k not in ("url", "token")}
    with pytest.raises(IntakeValidationError, match="empty"):
        parse(body)


# Runs the media type script under Node with stand-ins for Zabbix's HttpRequest and Zabbix.log.
NODE_HARNESS = """
const cases = JSON.parse(process.argv[1]);
const script = cases.script;
const out = cases.runs.map(function (run) {
  const sent = {};
  function HttpRequest() { this.headers = []; }
  HttpRequest.prototype.addHeader = function (h) { this.headers.push(h); };
  HttpRequest.prototype.setProxy = function (p) { sent.proxy = p; };
  HttpRequest.prototype.post = function (url, body) {
    sent.url = url; sent.body = JSON.parse(body); sent.headers = this.headers; return run.response;
  };
  HttpRequest.prototype.getStatus = function () { return run.status; };
  const fn = new Function('value', 'HttpRequest', 'Zabbix', script);
  try { sent.result = fn(JSON.stringify(run.params), HttpRequest, {log: function () {}}); }
  catch (e) { sent.error = String(e); }
  return sent;
});
process.stdout.write(JSON.stringify(out));
"""


def test_shipped_media_type_script_posts_json_with_bearer_token() -> None:
    """The script posts the parameters but url/token with Bearer auth, fails on non-2xx, returns relay_url."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    media = load_yaml("integrations/zabbix/relay_media_type.yaml")["zabbix_export"]["media_types"][0]
    params = {
        "event_id": "42",
        "title": "Disk full",
        "url": "https://relay.example.com/api/integrations/zabbix",
    }
    params["token"] = "rly_r_abc"
    runs = [
        {
            "params": params,
            "status": 200,
            "response": '[{"alert_url": "https://relay.example.com/alerts/7"}]',
        },
        {"params": params, "status": 202, "response": "[]"},
        {"params": params, "status": 503, "response": '{"error": "storage_unavailable"}'},
        {"params": {**params, "token": media["parameters"][-1]["value"]}, "status": 200, "response": ""},
    ]
    completed = subprocess.run(
        [node, "-e", NODE_HARNESS, json.dumps({"script": media["script"], "runs": runs})],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    created, empty, failed, unset = json.loads(completed.stdout)
    assert created["url"] == "https://relay.example.com/api/integrations/zabbix"
    assert created["body"] == {"event_id": "42", "title": "Disk full"}
    assert "Authorization: Bearer rly_r_abc" in created["headers"]
    assert "Content-Type: application/json" in created["headers"]
    assert json.loads(created["result"]) == {"tags": {"relay_url": "https://relay.example.com/alerts/7"}}
    assert empty["result"] == "OK"
    assert "HTTP 503" in failed["error"]
    assert "token" in unset["error"]
    assert "url" not in unset


def test_shipped_alertmanager_receiver() -> None:
    """integrations/alertmanager/alertmanager.yml posts resolved alerts with Bearer credentials."""
    config = load_yaml("integrations/alertmanager/alertmanager.yml")
    (receiver,) = config["receivers"]
    (webhook,) = receiver["webhook_configs"]
    assert config["route"]["receiver"] == receiver["name"]
    assert webhook["send_resolved"] is True
    assert webhook["url"].endswith("/api/integrations/alertmanager")
    assert webhook["http_config"]["authorization"]["credentials"].startswith("rly_r_")


class TestZabbixSourceContract(IntakeSourceContract):
    """ZabbixSource passes the public intake source conformance kit."""

    source_class = ZabbixSource
    entry_point_name = "builtin"

    def valid_samples(self) -> list[IntakeSample]:
        return [
            IntakeSample(
                body=json.dumps(PROBLEM).encode(),
                expected=[
                    {"dedup_key": "10452", "status": "firing", "severity": "critical", "update_only": False}
                ],
            )
        ]

    def invalid_samples(self) -> list[IntakeSample]:
        return [*super().invalid_samples(), IntakeSample(body=b"{}")]
