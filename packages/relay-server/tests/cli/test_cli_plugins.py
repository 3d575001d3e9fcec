"""``relay plugins list`` shows the built-in plugin and what it provides."""

from __future__ import annotations

from .conftest import Cli


def test_plugins_list_json_shows_the_builtin(cli: Cli) -> None:
    """The built-in entry point of relay-adapters is loaded and provides the intake sources."""
    rows = {row["name"]: row for row in cli.json("plugins", "list", "--json")}
    builtin = rows["builtin"]
    assert builtin["status"] == "loaded"
    assert builtin["distribution"] == "relay-adapters"
    assert builtin["version"]
    assert "relay_register_intake_sources" in builtin["hooks"]
    assert {"intake_source:alertmanager", "intake_source:zabbix"} <= set(builtin["provides"])


def test_plugins_list_table(cli: Cli) -> None:
    """The human table names each plugin and its status."""
    out = cli.ok("plugins", "list").stdout
    assert "builtin" in out
    assert "loaded" in out


def test_plugins_allow_list_skips_others(cli: Cli, monkeypatch) -> None:
    """RELAY_LOAD_PLUGINS=builtin leaves every other plugin skipped."""
    monkeypatch.setenv("RELAY_LOAD_PLUGINS", "builtin")
    rows = cli.json("plugins", "list", "--json")
    assert all(row["status"] == "skipped" for row in rows if row["name"] != "builtin")
