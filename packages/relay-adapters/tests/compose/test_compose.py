"""The shared composition root: settings in, a working Relay out, on memory and on SQLite."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from relay_adapters.compose import (
    SECRET_KEY_FILE,
    aclose_relay,
    core_settings,
    ensure_secret_key,
    relay_from_settings,
)
from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_adapters.settings import RelaySettings, load_settings
from relay_core.bootstrap import Relay
from relay_core.domain import constants as c
from relay_core.domain.model import Channel, Group, Rotation, RotationMember, Route, Team, User
from relay_core.testing.fakes import FakeClock, RecordingChannel

NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


def _settings(tmp_path: Path, url: str, **sections: dict) -> RelaySettings:
    return load_settings(
        {},
        overrides={"main": {"data_dir": str(tmp_path / "data")}, "database": {"url": url}, **sections},
    )


def _am_body() -> bytes:
    return json.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "relay",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "DiskFull", "severity": "critical"},
                    "annotations": {"summary": "Disk is full"},
                    "startsAt": "2026-06-01T09:59:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": "fp-1",
                }
            ],
        }
    ).encode()


async def _seed(relay: Relay) -> int:
    async with relay.uow_factory() as uow:
        grp = await uow.groups.add(Group(slug="ops", name="Ops"))
        team = await uow.teams.add(Team(group_id=grp.id, slug="infra", name="Infra"))
        user = await uow.users.add(User(username="ivan", phone="+15550001111"))
        rot = await uow.rotations.add(
            Rotation(team_id=team.id, name="primary", start_at=NOW - dt.timedelta(days=1))
        )
        await uow.rotation_members.add(RotationMember(rotation_id=rot.id, user_id=user.id, position=0))
        chat = await uow.channels.add(
            Channel(group_id=grp.id, team_id=team.id, name="chat", channel_type="recording")
        )
        route = await uow.routes.add(
            Route(
                team_id=team.id,
                name="prom",
                source="alertmanager",
                rotation_id=rot.id,
                channel_ids=(chat.id,),
                group_wait_seconds=0,
            )
        )
        await uow.commit()
    return route.id


async def _ingest_and_deliver(settings: RelaySettings) -> tuple[list, RecordingChannel]:
    recording = RecordingChannel()
    relay = relay_from_settings(settings, clock=FakeClock(NOW), channels=[recording])
    try:
        route_id = await _seed(relay)
        items = AlertmanagerSource().parse(_am_body(), {}, {})
        results = await relay.ingest("alertmanager", items, route_id=route_id)
        await relay.run_until_idle()
    finally:
        await aclose_relay(relay)
    return results, recording


async def test_memory_relay_ingests_and_delivers(tmp_path: Path) -> None:
    """memory:// storage takes an alert from intake to a delivered first page."""
    results, recording = await _ingest_and_deliver(_settings(tmp_path, "memory://"))
    assert [r.outcome for r in results] == [c.OUTCOME_CREATED]
    assert results[0].assignee == "ivan"
    assert recording.event_types == ["notification"]
    assert not (tmp_path / "data").exists(), "memory storage must not write to the data dir"


async def test_sqlite_relay_ingests_and_delivers(tmp_path: Path) -> None:
    """A migrated SQLite file takes an alert from intake to a delivered first page."""
    from relay_adapters.storage.sqlalchemy.schema import migrate

    url = f"sqlite:///{tmp_path / 'data' / 'relay.db'}"
    await migrate(url)
    results, recording = await _ingest_and_deliver(_settings(tmp_path, url))
    assert [r.outcome for r in results] == [c.OUTCOME_CREATED]
    assert recording.event_types == ["notification"]


async def test_relay_carries_the_builtin_plugins_and_a_voice_sender(tmp_path: Path) -> None:
    """The composed relay has the registry's intake sources and a voice_call sender over the loader."""
    relay = relay_from_settings(_settings(tmp_path, "memory://"))
    try:
        assert relay.registry is not None
        assert {"alertmanager", "zabbix", "webhook", "grafana"} <= set(relay.registry.intake_sources())
        assert "voice_call" in relay.ctx.senders
        assert relay.ctx.voice_loader is not None
        assert relay.ctx.voice_loader.load("stub").name == "stub"
    finally:
        await aclose_relay(relay)


def test_secret_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    """An empty secret key is generated into <data_dir>/secret_key (0600) and reused afterwards."""
    settings = _settings(tmp_path, "")
    first = ensure_secret_key(settings)
    path = tmp_path / "data" / SECRET_KEY_FILE
    assert len(first.main.secret_key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret_key(settings).main.secret_key == first.main.secret_key


def test_explicit_secret_key_is_kept_and_nothing_written(tmp_path: Path) -> None:
    """A configured secret key wins; no key file appears."""
    settings = _settings(tmp_path, "", main={"data_dir": str(tmp_path / "data"), "secret_key": "k" * 40})
    assert ensure_secret_key(settings).main.secret_key == "k" * 40
    assert not (tmp_path / "data" / SECRET_KEY_FILE).exists()


def test_memory_storage_gets_an_ephemeral_key(tmp_path: Path) -> None:
    """memory:// keeps the generated key in the process only."""
    settings = ensure_secret_key(_settings(tmp_path, "memory://"))
    assert settings.main.secret_key
    assert not (tmp_path / "data").exists()


def test_core_settings_follow_relay_settings(tmp_path: Path) -> None:
    """Every core setting is read from its RelaySettings key."""
    settings = _settings(
        tmp_path,
        "memory://",
        main={"data_dir": str(tmp_path), "secret_key": "s" * 40},
        server={"public_base_url": "https://relay.example"},
        alerts={"group_wait_seconds": 7, "dedup_window_seconds": 60, "explain_trace_level": "compact"},
        delivery={"max_attempts": 9, "lease_seconds": 11, "max_age_seconds": 99},
        scheduler={"batch_size": 12},
        callbacks={"replay_window_seconds": 13},
        action_links={"ttl_seconds": 14},
        voice={"provider": "mango", "dtmf_actions": {"5": "resolve"}},
        voice_provider={"api_url": "https://voice.example"},
    )
    core = core_settings(settings)
    assert core.public_base_url == "https://relay.example"
    assert core.secret_key == "s" * 40
    assert (core.group_wait_seconds, core.dedup_window_seconds, core.explain_trace_level) == (
        7,
        60,
        "compact",
    )
    assert (core.max_attempts, core.lease_seconds, core.max_age_seconds) == (9, 11, 99)
    assert core.scheduler_batch_size == 12
    assert core.callback_replay_window_seconds == 13
    assert core.action_link_ttl_seconds == 14
    assert core.default_voice_provider == "mango"
    assert dict(core.dtmf_actions) == {"5": "resolve"}
    assert dict(core.voice_provider_config) == {"api_url": "https://voice.example"}


@pytest.mark.parametrize("allow", [(), ("builtin",)])
def test_registry_honours_the_plugin_allow_list(tmp_path: Path, allow: tuple[str, ...]) -> None:
    """plugins.load limits which entry points load; the built-in plugin always loads."""
    from relay_adapters.compose import make_registry

    settings = _settings(tmp_path, "memory://", plugins={"load": list(allow)})
    names = {info.name: info.status for info in make_registry(settings).infos()}
    assert names["builtin"] == "loaded"
    if allow:
        assert all(status == "skipped" for name, status in names.items() if name != "builtin")
