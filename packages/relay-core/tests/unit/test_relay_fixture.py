"""The public ``relay`` pytest fixture gives plugin authors a working in-process Relay."""

from __future__ import annotations

from relay_core.domain.model import Channel, Group, Route, Team


async def test_relay_fixture_delivers_to_the_recording_channel(relay, recording_channel, fake_clock) -> None:
    """A webhook alert posted to the fixture's Relay reaches the recording channel."""
    async with relay.uow_factory() as uow:
        grp = await uow.groups.add(Group(slug="g", name="Group"))
        team = await uow.teams.add(Team(group_id=grp.id, slug="t", name="Team"))
        chan = await uow.channels.add(
            Channel(group_id=grp.id, team_id=team.id, name="c", channel_type="recording")
        )
        route = await uow.routes.add(
            Route(team_id=team.id, name="r", source="webhook", channel_ids=(chan.id,))
        )
        await uow.commit()
    source = relay.registry.intake_sources()["webhook"]()
    items = source.parse(b'{"title": "Disk full", "fingerprint": "d1", "severity": "high"}', {}, {})
    [result] = await relay.ingest("webhook", items, route_id=route.id)
    assert result.outcome == "created"
    await relay.run_until_idle()
    assert recording_channel.event_types == ["notification"]
    assert recording_channel.messages[0].group.title == "Disk full"
