"""``relay demo-data``: the demo world, created once and verified."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from relay_adapters.compose import aclose_relay, relay_from_settings
from relay_adapters.settings import load_settings
from relay_core.bootstrap import Relay
from relay_core.domain.categories import STANDARD_PRESET
from relay_core.domain.rotation import oncall_at
from relay_server.demo import ensure_demo_data

from .conftest import Cli


async def _world(relay: Relay) -> dict:
    async with relay.uow_factory() as uow:
        team = await uow.teams.first(slug="infra")
        rotation = await uow.rotations.first(team_id=team.id)
        members = await uow.rotation_members.find(rotation_id=rotation.id)
        users = {u.username: u for u in await uow.users.find()}
        return {
            "users": users,
            "rotation": rotation,
            "members": members,
            "routes": {r.source: r for r in await uow.routes.find(team_id=team.id)},
            "channels": {c.name: c for c in await uow.channels.find()},
            "role_groups": {g.slug for g in await uow.role_groups.find()},
            "subscriptions": await uow.subscriptions.count(),
            "silences": [s.name for s in await uow.silences.find(team_id=team.id)],
        }


def test_demo_data_builds_the_world_once(cli: Cli) -> None:
    """Users, rotation, channels, routes with tokens, the preset and a silence; a rerun adds nothing."""
    out = cli.ok("demo-data").stdout
    assert "Admin login:   admin / " in out
    assert out.count("rly_r_") >= 4
    assert "curl -sS -X POST http://127.0.0.1:8080/api/integrations/alertmanager" in out

    world = cli.query(_world)
    assert world["users"]["admin"].is_admin
    assert world["users"]["admin"].password_hash.startswith("$argon2id$")
    assert world["users"]["alice"].phone
    assert world["users"]["bob"].phone
    rotation = world["rotation"]
    assert (rotation.rotation_type, rotation.timezone, rotation.handoff_time) == (
        "daily",
        "Europe/Berlin",
        "09:00",
    )
    assert len(world["members"]) == 2
    assert oncall_at(rotation, world["members"], [], dt.datetime.now(dt.UTC)) is not None
    assert set(world["routes"]) == {"alertmanager", "zabbix", "webhook", "grafana"}
    assert all(r.intake_token_hash and r.intake_token_prefix for r in world["routes"].values())
    webhook = world["channels"]["demo-webhook"]
    assert webhook.channel_type == "webhook"
    assert webhook.config["webhook_url"] == "http://127.0.0.1:8080/api/simulator/sink/demo"
    assert world["channels"]["demo-phone"].config["provider"] == "stub"
    assert {g.slug for g in STANDARD_PRESET.role_groups} <= world["role_groups"]
    assert world["subscriptions"] == len(STANDARD_PRESET.subscriptions)
    assert world["silences"] == ["demo-staging-maintenance"]

    again = cli.ok("demo-data").stdout
    assert "nothing created" in again
    assert "rly_r_" not in again, "existing tokens cannot be shown again"
    assert "password unchanged" in again
    assert cli.query(_world)["subscriptions"] == len(STANDARD_PRESET.subscriptions)
    assert cli.ok("demo-data", "--check").stdout.strip() == "Demo data OK."


def test_demo_data_check_fails_on_an_empty_database(cli: Cli) -> None:
    """``--check`` exits 1 and names what is missing."""
    result = cli("demo-data", "--check")
    assert result.exit_code == 1
    assert "missing group: demo" in result.stdout


async def test_serve_demo_creates_data_only_on_an_empty_database(tmp_path: Path) -> None:
    """``serve --demo`` prints the login, token and curl once; later starts say the data exists."""
    settings = load_settings(
        {},
        overrides={
            "main": {"data_dir": str(tmp_path)},
            "database": {"url": "memory://"},
            "server": {"public_base_url": "http://relay.test:9000"},
        },
    )
    relay = relay_from_settings(settings)
    try:
        first = io.StringIO()
        info = await ensure_demo_data(relay, settings, out=first)
        assert info is not None
        assert info.admin_password is not None
        assert info.token is not None
        assert info.curl is not None
        assert info.curl.startswith("curl -sS -X POST http://relay.test:9000/api/integrations/alertmanager")
        assert info.admin_password in first.getvalue()
        assert info.token in first.getvalue()

        second = io.StringIO()
        assert await ensure_demo_data(relay, settings, out=second) is None
        assert "Demo data already exists" in second.getvalue()
        assert "relay token create --route demo-alertmanager" in second.getvalue()
    finally:
        await aclose_relay(relay)
