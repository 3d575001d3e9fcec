"""The worker scheduler's voice_status_poll job (SPEC S5.11, S7.7)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from relay_adapters.voice.loader import make_voice_loader
from relay_adapters.voice.simulator import Provider, SimulatorStore
from relay_core.bootstrap import bootstrap
from relay_core.domain.model import Channel, Group, Notification, Team
from relay_core.services.voice import VoiceCallChannel
from relay_core.testing.fakes import FakeClock
from relay_core.voice import VoiceCallRequest
from relay_worker.scheduler import Scheduler, voice_status_poll_job

START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


async def test_voice_status_poll_job_updates_polled_calls_under_its_lease(tmp_path: Path) -> None:
    """The job, added to a Scheduler, stores the status a polling-only provider reports."""
    clock = FakeClock(START)
    loader = make_voice_loader()
    relay = bootstrap(
        clock=clock,
        channels=[VoiceCallChannel(loader, public_base_url="http://relay.test")],
        voice_loader=loader,
    )
    config = {"store_dir": str(tmp_path), "callbacks": False}
    call_id = str(
        Provider(config)
        .place_call(
            VoiceCallRequest(phone="+15550001234", text="hi", alert_id=None, event_type="notification")
        )
        .call_id
    )
    async with relay.uow_factory() as uow:
        group = await uow.groups.add(Group(slug="ops", name="Ops"))
        team = await uow.teams.add(Team(group_id=group.id, slug="t", name="T"))
        channel = await uow.channels.add(
            Channel(
                group_id=group.id,
                team_id=team.id,
                name="phone",
                channel_type="voice_call",
                config={"provider": "simulator", "provider_config": config},
            )
        )
        record = await uow.notifications.add(
            Notification(
                channel_id=channel.id,
                provider="voice_call:simulator",
                external_message_id=call_id,
                provider_status="ringing",
                created_at=START,
                updated_at=START,
            )
        )
        await uow.commit()

    def answer(data: dict) -> None:  # type: ignore[type-arg]
        data["calls"][call_id]["status"] = "answered"

    SimulatorStore(tmp_path).transact(answer)
    scheduler = Scheduler(relay, holder="a", extra_jobs=[voice_status_poll_job(relay)])
    outcomes = {o.name: o for o in await scheduler.run_once()}
    assert outcomes["voice_status_poll"].ran
    assert outcomes["voice_status_poll"].result == 1
    assert "voice_status_poll" in scheduler.held_leases
    async with relay.uow_factory() as uow:
        stored = await uow.notifications.get(record.id)
    assert stored is not None
    assert stored.provider_status == "answered"
