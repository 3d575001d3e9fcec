"""``relay simulate`` explains a demo alert without writing anything."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from relay_core.bootstrap import Relay
from relay_server.demo import demo_alertmanager_payload

from .conftest import Cli


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(demo_alertmanager_payload()))
    return path


async def _counts(relay: Relay) -> tuple[int, int, int]:
    async with relay.uow_factory() as uow:
        return await uow.alert_groups.count(), await uow.alerts.count(), await uow.traces.count()


def test_simulate_explains_a_demo_alert(cli: Cli, payload: Path) -> None:
    """Route, category, group key, assignee, channels and the paging timeline; nothing stored."""
    cli.ok("demo-data")
    # The demo rotation started a week before today; ask about tomorrow 10:00 UTC.
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    stamp = at.strftime("%Y-%m-%dT%H:%M")
    report = cli.json(
        "simulate", "--source", "alertmanager", "--payload", str(payload), "--at", f"{stamp}:00Z", "--json"
    )
    assert report["mode"] == "dry_run"
    assert report["at"] == f"{stamp}:00Z"
    [item] = report["items"]
    assert item["outcome"] == "created"
    assert item["route"]["name"] == "demo-alertmanager"
    assert item["team"]["slug"] == "infra"
    assert item["category"] == "infrastructure"
    assert "alertname=DemoDiskFull" in item["group_key"]
    assert item["existing_group_id"] is None
    assert item["silences"] == []
    # Daily Berlin 09:00 handoff, two responders: one of them is on call at any time.
    assert item["assignee"] in ("alice", "bob")
    assert {ch["type"] for ch in item["channels"]} == {"webhook", "voice_call"}
    assert any(sub["decision"] == "deliver" for sub in item["subscriptions"])
    actions = [entry["action"] for entry in item["timeline"]]
    # group_wait 30 s, reminders every 300 s, escalation after two reminders.
    assert actions[:4] == ["notification", "reminder", "reminder", "escalation"]
    assert item["timeline"][0]["at"] == f"{stamp}:30Z"
    assert item["timeline"][1]["at"] == (at + dt.timedelta(seconds=330)).strftime("%Y-%m-%dT%H:%M:%SZ")
    escalation = item["timeline"][3]
    assert escalation["user"] != item["assignee"]
    assert cli.query(_counts) == (0, 0, 0)


def test_simulate_with_token_and_human_output(cli: Cli, payload: Path) -> None:
    """``--token`` forces the token's route; the default output is a readable report."""
    created = cli.ok("demo-data").stdout
    token = re.search(r"\(alertmanager\): (rly_r_\S+)", created)
    assert token is not None
    out = cli.ok(
        "simulate", "--source", "alertmanager", "--payload", str(payload), "--token", token[1]
    ).stdout
    assert "route: demo-alertmanager" in out
    assert "outcome: created" in out
    assert "Timeline" in out
    bad = cli("simulate", "--source", "alertmanager", "--payload", str(payload), "--token", "rly_r_nope")
    assert bad.exit_code == 1
    assert "invalid" in bad.stderr


def test_simulate_reports_a_matching_silence(cli: Cli) -> None:
    """An alert matching the demo silence would be silenced: nothing on the timeline."""
    cli.ok("demo-data")
    body = demo_alertmanager_payload()
    body["alerts"][0]["labels"]["env"] = "staging"
    report = cli.json(
        "simulate", "--source", "alertmanager", "--payload", "-", "--json", input=json.dumps(body)
    )
    [item] = report["items"]
    assert [s["name"] for s in item["silences"]] == ["demo-staging-maintenance"]
    assert item["timeline"] == []


def test_simulate_without_a_route_reports_the_routing_error(cli: Cli, payload: Path) -> None:
    """With no routes the item fails routing with the standard error text."""
    cli.ok("migrate")
    report = cli.json("simulate", "--source", "alertmanager", "--payload", str(payload), "--json")
    [item] = report["items"]
    assert item["outcome"] == "routing_failed"
    assert item["routing_error"]


def test_simulate_usage_errors(cli: Cli, payload: Path) -> None:
    """Unknown sources, bad payloads, bad times and horizons are usage errors."""
    cli.ok("migrate")
    assert cli("simulate", "--source", "nope", "--payload", str(payload)).exit_code == 2
    assert cli("simulate", "--source", "alertmanager", "--payload", "-", input="{not json").exit_code == 2
    assert (
        cli("simulate", "--source", "alertmanager", "--payload", str(payload), "--at", "yesterday").exit_code
        == 2
    )
    assert (
        cli("simulate", "--source", "alertmanager", "--payload", str(payload), "--horizon", "1y").exit_code
        == 2
    )
    assert cli("simulate", "--source", "alertmanager", "--payload", "/no/such/file").exit_code == 2
