"""Anchored messages and Telegram long polling, through the core with the real channel senders.

SPEC S6.1: reminders and escalations of editable chat channels reply to the group's first
message and refresh it; S5.6: ACK edits it. S6.6: polling mode feeds ``getUpdates`` callback
queries through the same processing as the webhook. Every request goes to a recording local
HTTP server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from relay_adapters.channels import OutboundClient, SlackChannel, TelegramChannel
from relay_adapters.channels.inbound import TelegramPolling, handle_telegram_update
from relay_adapters.channels.telegram import TelegramConfig, TelegramPoller, set_webhook
from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain.model import (
    Channel,
    Group,
    GroupMembership,
    NormalizedAlert,
    Rotation,
    RotationMember,
    Route,
    Team,
    TeamMembership,
    User,
)
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.ports.channels import PermanentDeliveryError
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock
from relay_core.testing.pytest_plugin import LocalHttpServer

from .conftest import BASE_URL, TEST_ENV

START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
TOKEN = "4242:poll-token"


@attrs.define
class Setup:
    relay: Relay
    clock: FakeClock
    ids: dict[str, int]


async def _setup(http: OutboundClient, channel_type: str, config: Mapping[str, Any]) -> Setup:
    clock = FakeClock(START)
    relay = bootstrap(
        uow_factory=InMemoryUnitOfWorkFactory(),
        clock=clock,
        settings=CoreSettings(public_base_url=BASE_URL),
        channels=[SlackChannel(env=TEST_ENV), TelegramChannel(env=TEST_ENV)],
        http=http,
    )
    async with relay.uow_factory() as uow:
        grp = await uow.groups.add(Group(slug="ops", name="Operations"))
        team = await uow.teams.add(Team(group_id=grp.id, slug="infra", name="Infrastructure"))
        user = await uow.users.add(User(username="ivan", telegram_user_id="700"))
        await uow.group_memberships.add(GroupMembership(user_id=user.id, group_id=grp.id))
        await uow.team_memberships.add(TeamMembership(team_id=team.id, user_id=user.id, role="responder"))
        rotation = await uow.rotations.add(
            Rotation(team_id=team.id, name="primary", start_at=START - dt.timedelta(days=30))
        )
        await uow.rotation_members.add(RotationMember(rotation_id=rotation.id, user_id=user.id, position=0))
        channel = await uow.channels.add(
            Channel(group_id=grp.id, team_id=team.id, name="chat", channel_type=channel_type, config=config)
        )
        route = await uow.routes.add(
            Route(
                team_id=team.id,
                name="all",
                source="webhook",
                rotation_id=rotation.id,
                channel_ids=(channel.id,),
            )
        )
        await uow.commit()
    return Setup(relay=relay, clock=clock, ids={"channel": channel.id, "route": route.id, "user": user.id})


async def _fire(setup: Setup) -> int:
    alert = NormalizedAlert(source="webhook", dedup_key="disk", title="Disk is full", severity="critical")
    results = await setup.relay.ingest("webhook", [alert], route_id=setup.ids["route"])
    group_id = results[0].group_id
    assert group_id is not None
    await setup.relay.run_until_idle()
    return group_id


async def test_slack_reminder_replies_in_the_thread_and_keeps_the_anchor(
    http: OutboundClient, local_http_server: LocalHttpServer
) -> None:
    """A reminder is a threaded, broadcast reply to the first message, which is refreshed; ACK edits it."""
    server = local_http_server
    server.respond(200, {"ok": True, "channel": "C1", "ts": "100.1"}, path="/chat.postMessage")
    server.respond(200, {"ok": True, "channel": "C1", "ts": "100.1"}, path="/chat.update")
    config = {"bot_token": "xoxb-1", "channel_id": "C1", "signing_secret": "s", "api_url": server.url}
    setup = await _setup(http, "slack", config)
    group_id = await _fire(setup)
    assert [r.path for r in server.requests] == ["/chat.postMessage"]
    assert "thread_ts" not in server.requests[0].json()

    setup.clock.advance(dt.timedelta(seconds=300))
    assert await setup.relay.tick() == 1
    await setup.relay.run_until_idle()
    reply, refresh = server.requests[1:]
    assert (reply.path, refresh.path) == ("/chat.postMessage", "/chat.update")
    assert (reply.json()["thread_ts"], reply.json()["reply_broadcast"]) == ("100.1", True)
    assert reply.json()["text"].startswith("REMINDER: [CRITICAL] Disk is full")
    assert (refresh.json()["channel"], refresh.json()["ts"]) == ("C1", "100.1")

    async with setup.relay.uow_factory() as uow:
        record = await uow.notifications.first(group_id=group_id)
    assert record is not None
    assert record.external_message_id == "100.1"  # still the anchor, not the reply

    await setup.relay.acknowledge(group_id, user_id=setup.ids["user"], via="slack")
    await setup.relay.run_until_idle()
    edit = server.last_request
    assert (edit.path, edit.json()["ts"]) == ("/chat.update", "100.1")
    assert edit.json()["text"].startswith("ACKNOWLEDGED: [CRITICAL] Disk is full")
    assert len([r for r in server.requests if r.path == "/chat.postMessage"]) == 2


async def test_telegram_poller_hands_over_updates_and_moves_the_offset(
    http: OutboundClient, local_http_server: LocalHttpServer
) -> None:
    """getUpdates asks for callback queries only; each update reaches the handler, then the offset moves."""
    server = local_http_server
    server.enqueue(200, {"ok": True, "result": [{"update_id": 10}, {"update_id": 11, "callback_query": {}}]})
    server.enqueue(200, {"ok": True, "result": []})
    seen: list[int] = []

    async def handle(update: Mapping[str, Any]) -> None:
        seen.append(int(update["update_id"]))

    config = TelegramConfig(bot_token=TOKEN, chat_id="-1", api_base=server.url)
    poller = TelegramPoller(config=config, http=http, handle=handle, wait_seconds=0)
    assert await poller.poll_once() == 2
    assert await poller.poll_once() == 0
    first, second = server.requests
    assert first.path == f"/bot{TOKEN}/getUpdates"
    assert first.json() == {"timeout": 0, "allowed_updates": ["callback_query"]}
    assert second.json() == {"timeout": 0, "allowed_updates": ["callback_query"], "offset": 12}
    assert seen == [10, 11]


async def test_telegram_polling_acknowledges_and_answers(
    http: OutboundClient, local_http_server: LocalHttpServer
) -> None:
    """A callback query fetched by long polling acknowledges as the linked user and is answered."""
    server = local_http_server
    sent = {"ok": True, "result": {"message_id": 5, "chat": {"id": -1}}}
    server.respond(200, sent, path=f"/bot{TOKEN}/sendMessage")
    server.respond(200, sent, path=f"/bot{TOKEN}/editMessageText")
    server.respond(200, {"ok": True, "result": True}, path=f"/bot{TOKEN}/answerCallbackQuery")
    config = {"bot_token": TOKEN, "chat_id": "-1", "api_base": server.url}
    setup = await _setup(http, "telegram", config)
    group_id = await _fire(setup)
    keyboard = server.requests[0].json()["reply_markup"]["inline_keyboard"]
    data = keyboard[0][0]["callback_data"]
    update = {
        "update_id": 1,
        "callback_query": {
            "id": "q1",
            "from": {"id": 700},
            "message": {"message_id": 5, "chat": {"id": -1}},
            "data": data,
        },
    }
    server.respond(200, {"ok": True, "result": [update]}, path=f"/bot{TOKEN}/getUpdates")

    polling = TelegramPolling(setup.relay, http, holder="test")
    bots = await polling.bots()
    assert list(bots) == [TOKEN]

    async def handle(item: Mapping[str, Any]) -> Any:
        return await handle_telegram_update(setup.relay, item, http=http, bot=bots[TOKEN])

    poller = TelegramPoller(config=bots[TOKEN], http=http, handle=handle, wait_seconds=0)
    assert await poller.poll_once() == 1
    answer = [r for r in server.requests if r.path.endswith("/answerCallbackQuery")]
    assert [a.json() for a in answer] == [{"callback_query_id": "q1", "text": "Acknowledged"}]
    async with setup.relay.uow_factory() as uow:
        group = await uow.alert_groups.get(group_id)
    assert group is not None
    assert (group.status, group.acknowledged_by) == ("acknowledged", setup.ids["user"])
    await setup.relay.run_until_idle()
    assert server.last_request.path == f"/bot{TOKEN}/editMessageText"


async def test_telegram_polling_refuses_another_bots_button(
    http: OutboundClient, local_http_server: LocalHttpServer
) -> None:
    """A button of a channel with another bot token, arriving at this bot, is refused and answered."""
    server = local_http_server
    sent = {"ok": True, "result": {"message_id": 5, "chat": {"id": -1}}}
    server.respond(200, sent, path=f"/bot{TOKEN}/sendMessage")
    server.respond(200, {"ok": True, "result": True})
    setup = await _setup(http, "telegram", {"bot_token": TOKEN, "chat_id": "-1", "api_base": server.url})
    group_id = await _fire(setup)
    data = server.requests[0].json()["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    other_bot = TelegramConfig(bot_token="9999:other", chat_id="-1", api_base=server.url)
    update = {"update_id": 3, "callback_query": {"id": "q3", "from": {"id": 700}, "data": data}}
    answer = await handle_telegram_update(setup.relay, update, http=http, bot=other_bot)
    assert answer == {"ok": True, "result": "rejected", "message": "the button belongs to another bot"}
    assert server.last_request.path == "/bot9999:other/answerCallbackQuery"
    async with setup.relay.uow_factory() as uow:
        group = await uow.alert_groups.get(group_id)
    assert group is not None
    assert group.status == "firing"


async def test_telegram_polling_runs_until_stopped(
    http: OutboundClient, local_http_server: LocalHttpServer
) -> None:
    """TelegramPolling finds the bot of the enabled channel, polls it under a lease and stops on request."""
    server = local_http_server
    sent = {"ok": True, "result": {"message_id": 5, "chat": {"id": -1}}}
    server.respond(200, sent, path=f"/bot{TOKEN}/sendMessage")
    server.respond(200, {"ok": True, "result": True}, path=f"/bot{TOKEN}/answerCallbackQuery")
    server.respond(200, {"ok": True, "result": []}, path=f"/bot{TOKEN}/getUpdates")
    setup = await _setup(http, "telegram", {"bot_token": TOKEN, "chat_id": "-1", "api_base": server.url})
    group_id = await _fire(setup)
    data = server.requests[0].json()["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
    assert data.startswith(f"ir:resolve:{group_id}:")
    update = {"update_id": 8, "callback_query": {"id": "q8", "from": {"id": 700}, "data": data}}
    server.enqueue(200, {"ok": True, "result": [update]})

    polling = TelegramPolling(setup.relay, http, holder="runner", refresh_seconds=60)
    task = asyncio.create_task(polling.run())
    try:
        for _ in range(100):
            if any(r.path.endswith("/answerCallbackQuery") for r in server.requests):
                break
            await asyncio.sleep(0.05)
    finally:
        polling.stop()
        await asyncio.wait_for(task, timeout=5)
    async with setup.relay.uow_factory() as uow:
        group = await uow.alert_groups.get(group_id)
        name = "telegram_poll:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:16]
        taken_by_other = await uow.leases.acquire(name, "other", setup.clock.now(), 30)
    assert group is not None
    assert group.status == "resolved"
    assert taken_by_other is None  # the runner holds the bot's lease: no second poller
    answers = [r.json() for r in server.requests if r.path.endswith("/answerCallbackQuery")]
    assert answers == [{"callback_query_id": "q8", "text": "Resolved"}]


async def test_telegram_set_webhook_registers_url_secret_and_updates(
    http: OutboundClient, local_http_server: LocalHttpServer
) -> None:
    """setWebhook names the callback URL, the channel's secret token and callback queries only."""
    server = local_http_server
    server.respond(200, {"ok": True, "result": True})
    config = TelegramConfig(bot_token=TOKEN, chat_id="-1", webhook_secret="s3cret", api_base=server.url)
    await set_webhook(http, config, f"{BASE_URL}/api/integrations/telegram/webhook/7")
    request = server.last_request
    assert request.path == f"/bot{TOKEN}/setWebhook"
    assert request.json() == {
        "url": f"{BASE_URL}/api/integrations/telegram/webhook/7",
        "secret_token": "s3cret",
        "allowed_updates": ["callback_query"],
    }
    server.respond(400, {"ok": False, "description": "Bad Request: bad webhook"})
    with pytest.raises(PermanentDeliveryError, match="bad webhook"):
        await set_webhook(http, config, f"{BASE_URL}/api/integrations/telegram/webhook/7")
