"""Interactive acknowledge/resolve: chat callbacks and signed action links (SPEC S6.3-S6.6, S5.6).

The channels are the real built-in senders, configured to talk to a recording local HTTP server
that plays Mattermost, Slack, Telegram and a Teams workflow; the outbound client allow-lists
127.0.0.1 only. Every refused callback is checked to change nothing: group status, timeline and
outbox stay as they were.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from relay_adapters.channels import make_channels
from relay_adapters.settings import (
    ActionLinksSettings,
    MainSettings,
    RelaySettings,
    SecuritySettings,
    ServerSettings,
)
from relay_core.domain.model import Channel
from relay_core.testing.pytest_plugin import LocalHttpServer

from .conftest import World, build_world

AM = json.loads((Path(__file__).parent / "fixtures" / "alertmanager_v4.json").read_text())
BASE = "https://relay.test"
MM_SECRET = "mm-callback-secret"
SLACK_SIGNING = "slack-signing-secret"
TG_TOKEN = "123456:test-bot-token"
TG_SECRET = "tg-webhook-secret"
CHANNEL_KEY = "channel-env-secret-key"


@attrs.define
class Chat:
    """The world plus the chat channels and the fake chat services."""

    world: World
    server: LocalHttpServer
    ids: dict[str, int]


def _settings(*, require_login: bool = True) -> RelaySettings:
    return RelaySettings(
        main=MainSettings(secret_key=CHANNEL_KEY),
        server=ServerSettings(public_base_url=BASE),
        security=SecuritySettings(outbound_private_network_allowlist=("127.0.0.1/32",)),
        action_links=ActionLinksSettings(require_login=require_login),
    )


def _fake_services(server: LocalHttpServer) -> None:
    server.respond(201, {"id": "post1", "channel_id": "town"}, path="/api/v4/posts", method="POST")
    server.respond(200, {"id": "post1", "channel_id": "town"}, path="/api/v4/posts/post1", method="PUT")
    server.respond(200, {"ok": True, "channel": "C123", "ts": "1700.01"}, path="/slack/chat.postMessage")
    server.respond(200, {"ok": True, "channel": "C123", "ts": "1700.01"}, path="/slack/chat.update")
    message = {"message_id": 77, "chat": {"id": -100}}
    server.respond(200, {"ok": True, "result": message}, path=f"/bot{TG_TOKEN}/sendMessage")
    server.respond(200, {"ok": True, "result": message}, path=f"/bot{TG_TOKEN}/editMessageText")
    server.respond(200, {"ok": True, "result": True}, path=f"/bot{TG_TOKEN}/answerCallbackQuery")
    server.respond(202, "", path="/teams")


async def _chat_world(server: LocalHttpServer, *, require_login: bool = True) -> Chat:
    settings = _settings(require_login=require_login)
    world = await build_world(settings=settings)
    # The shells build these through relay_adapters.compose; the world of conftest uses the
    # registry's bare classes, so give it the configured built-ins. Their environment's outbound
    # options allow-list 127.0.0.1; with no shared client (the test client runs the app in its
    # own event loop) each call builds one from them.
    for sender in make_channels(settings):
        world.relay.ctx.senders[sender.name] = sender
    _fake_services(server)
    ids: dict[str, int] = {}
    async with world.relay.uow_factory() as uow:
        ops, infra = world.ids["group"], world.ids["team"]

        async def add(name: str, channel_type: str, config: dict[str, Any], **extra: Any) -> int:
            values: dict[str, Any] = {"group_id": ops, "team_id": infra, **extra}
            channel = await uow.channels.add(
                Channel(name=name, channel_type=channel_type, config=config, **values)
            )
            return channel.id

        mm_config = {
            "mode": "bot_api",
            "api_url": server.url,
            "bot_token": "mm-bot-token",
            "channel_id": "town",
            "callback_secret": MM_SECRET,
        }
        ids["mm"] = await add("mm", "mattermost", mm_config)
        ids["mm_disabled"] = await add("mm-off", "mattermost", mm_config, enabled=False)
        ids["mm_billing"] = await add(
            "mm-billing",
            "mattermost",
            mm_config,
            group_id=world.ids["other_group"],
            team_id=world.ids["other_team"],
        )
        ids["slack"] = await add(
            "slack",
            "slack",
            {
                "mode": "bot_api",
                "bot_token": "xoxb-test",
                "channel_id": "C123",
                "signing_secret": SLACK_SIGNING,
                "api_url": f"{server.url}/slack",
            },
        )
        ids["tg"] = await add(
            "tg",
            "telegram",
            {"bot_token": TG_TOKEN, "chat_id": "-100", "webhook_secret": TG_SECRET, "api_base": server.url},
        )
        ids["teams"] = await add("teams", "teams", {"webhook_url": f"{server.url}/teams"})
        route = await uow.routes.get(world.ids["route_alertmanager"])
        assert route is not None
        await uow.routes.update(
            attrs.evolve(route, channel_ids=(ids["mm"], ids["slack"], ids["tg"], ids["teams"]))
        )
        for name, chat_ids in {
            "responder": {
                "mattermost_user_id": "mm-resp",
                "slack_user_id": "U-RESP",
                "telegram_user_id": "501",
            },
            "viewer": {"mattermost_user_id": "mm-view", "slack_user_id": "U-VIEW", "telegram_user_id": "502"},
            "outsider": {"mattermost_user_id": "mm-out", "slack_user_id": "U-OUT", "telegram_user_id": "503"},
        }.items():
            user = await uow.users.get(world.ids[name])
            assert user is not None
            await uow.users.update(attrs.evolve(user, **chat_ids))
        await uow.commit()
    return Chat(world=world, server=server, ids=ids)


@pytest.fixture
def server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as local:
        yield local


@pytest.fixture
async def chat(server: LocalHttpServer) -> Chat:
    return await _chat_world(server)


@pytest.fixture
async def client(chat: Chat) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=chat.world.app) as test_client:
        yield test_client


async def _fire(chat: Chat, client: AsyncTestClient[Any]) -> int:
    """An alert through the Alertmanager route, delivered to every chat channel; the group id."""
    body = copy.deepcopy(AM)
    response = await client.post(
        "/api/integrations/alertmanager", json=body, headers=chat.world.bearer("route_alertmanager")
    )
    assert response.status_code == 200, response.text
    group_id: int = response.json()[0]["group_id"]
    await chat.world.relay.run_until_idle()
    return group_id


def _requests(chat: Chat, method: str, path: str) -> list[Any]:
    return [r for r in chat.server.requests if r.method == method and r.path == path]


async def _snapshot(chat: Chat, group_id: int) -> tuple[str, int, int, int]:
    """What a refused callback must not change: status, events, intents, used action links."""
    group = await chat.world.get("alert_groups", group_id)
    return (
        group.status,
        await chat.world.count("events", group_id=group_id),
        await chat.world.count("intents", group_id=group_id),
        await chat.world.count("action_tokens"),
    )


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert set(body) >= {"error", "message", "details"}


# --- mattermost ------------------------------------------------------------------------------


def _mm_context(chat: Chat, action: str = "acknowledge") -> dict[str, Any]:
    """The signed context of a button in the post Relay created."""
    post = _requests(chat, "POST", "/api/v4/posts")[0].json()
    buttons = post["props"]["attachments"][0]["actions"]
    button = next(b for b in buttons if b["integration"]["context"]["action"] == action)
    assert button["integration"]["url"] == f"{BASE}/api/integrations/mattermost/actions"
    context: dict[str, Any] = button["integration"]["context"]
    return context


def _mm_sign(action: str, alert_id: int, channel_id: int, secret: str = MM_SECRET) -> str:
    message = f"ir:mm:{action}:{alert_id}:{channel_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


async def test_mattermost_button_acknowledges_and_edits_the_post(
    chat: Chat, client: AsyncTestClient[Any]
) -> None:
    """A signed click by a linked responder acknowledges as them; the post is then edited via the outbox."""
    group_id = await _fire(chat, client)
    context = _mm_context(chat)
    assert context == {
        "alert_id": group_id,
        "channel_id": chat.ids["mm"],
        "action": "acknowledge",
        "signature": _mm_sign("acknowledge", group_id, chat.ids["mm"]),
    }
    response = await client.post(
        "/api/integrations/mattermost/actions",
        json={"user_id": "mm-resp", "post_id": "post1", "context": context},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ephemeral_text": f"Alert #{group_id} acknowledged",
        "skip_slack_parsing": True,
    }
    group = await chat.world.get("alert_groups", group_id)
    assert group.status == "acknowledged"
    assert group.acknowledged_by == chat.world.ids["responder"]
    events = await chat.world.find("events", group_id=group_id, event_type="acknowledged")
    assert [e.data["via"] for e in events] == ["mattermost"]
    assert events[0].user_id == chat.world.ids["responder"]

    await chat.world.relay.run_until_idle()
    edits = _requests(chat, "PUT", "/api/v4/posts/post1")
    assert len(edits) == 1
    assert edits[0].header("authorization") == "Bearer mm-bot-token"
    edit = edits[0].json()
    assert {k: edit[k] for k in ("id", "channel_id", "message")} == {
        "id": "post1",
        "channel_id": "town",
        "message": "",
    }
    attachment = edit["props"]["attachments"][0]
    assert attachment["title"] == "ACKNOWLEDGED: Disk is full"
    assert attachment["color"] == "#f0ad4e"
    assert attachment["text"].startswith("The alert was acknowledged by responder.")
    status = next(f for f in attachment["fields"] if f["title"] == "Status")
    assert status == {"short": True, "title": "Status", "value": "acknowledged"}
    # Acknowledge is gone; Resolve stays, signed for this alert and channel.
    assert [(b["id"], b["name"]) for b in attachment["actions"]] == [(f"resolve{group_id}", "Resolve")]
    assert attachment["actions"][0]["integration"]["context"]["signature"] == _mm_sign(
        "resolve", group_id, chat.ids["mm"]
    )
    # The edit did not create a second post.
    assert len(_requests(chat, "POST", "/api/v4/posts")) == 1


async def test_mattermost_resolve_removes_all_buttons(chat: Chat, client: AsyncTestClient[Any]) -> None:
    """Resolve from a button: the edited post is green and has no buttons left."""
    group_id = await _fire(chat, client)
    response = await client.post(
        "/api/integrations/mattermost/actions",
        json={"user_id": "mm-resp", "context": _mm_context(chat, "resolve")},
    )
    assert response.json()["ephemeral_text"] == f"Alert #{group_id} resolved"
    await chat.world.relay.run_until_idle()
    attachment = _requests(chat, "PUT", "/api/v4/posts/post1")[-1].json()["props"]["attachments"][0]
    assert attachment["title"] == "RESOLVED: Disk is full"
    assert attachment["color"] == "#2e7d32"
    assert "actions" not in attachment
    group = await chat.world.get("alert_groups", group_id)
    assert (group.status, group.resolved_by) == ("resolved", chat.world.ids["responder"])


async def test_mattermost_second_click_is_answered_and_ignored(
    chat: Chat, client: AsyncTestClient[Any]
) -> None:
    """Acknowledging an acknowledged alert again answers so and writes nothing new to the timeline."""
    group_id = await _fire(chat, client)
    body = {"user_id": "mm-resp", "context": _mm_context(chat)}
    first = await client.post("/api/integrations/mattermost/actions", json=body)
    assert first.status_code == 200
    before = await _snapshot(chat, group_id)
    again = await client.post("/api/integrations/mattermost/actions", json={**body, "user_id": "mm-out"})
    _error(again, 403, "action_rejected")  # an outsider stays refused even when nothing would change
    second = await client.post("/api/integrations/mattermost/actions", json=body)
    assert second.status_code == 200
    assert second.json() == {
        "ephemeral_text": f"Alert #{group_id} is already acknowledged",
        "skip_slack_parsing": True,
    }
    assert await _snapshot(chat, group_id) == before
    callbacks = await chat.world.find("callbacks", channel_id=chat.ids["mm"])
    assert [(c.kind, c.action, c.result) for c in callbacks] == [
        ("mattermost", "acknowledge", "applied"),
        ("mattermost", "acknowledge", "ignored"),
    ]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("bad_signature", 403, "invalid_signature"),
        ("unknown_user", 403, "action_rejected"),
        ("no_user", 403, "action_rejected"),
        ("viewer", 403, "action_rejected"),
        ("outsider", 403, "action_rejected"),
        ("disabled_channel", 403, "action_rejected"),
        ("other_team_channel", 403, "action_rejected"),
        ("unknown_alert", 404, "alert_not_found"),
        ("malformed", 400, "invalid_payload"),
        ("not_json", 400, "invalid_payload"),
    ],
)
async def test_mattermost_refusals_change_nothing(
    chat: Chat, client: AsyncTestClient[Any], case: str, status: int, code: str
) -> None:
    """Each refused click gets its documented error and leaves group, timeline and outbox alone."""
    group_id = await _fire(chat, client)
    context = _mm_context(chat)
    body: Any = {"user_id": "mm-resp", "context": context}
    if case == "bad_signature":
        body["context"] = {**context, "signature": "0" * 64}
    elif case == "unknown_user":
        body["user_id"] = "mm-nobody"
    elif case == "no_user":
        del body["user_id"]
    elif case == "viewer":
        body["user_id"] = "mm-view"
    elif case == "outsider":
        body["user_id"] = "mm-out"
    elif case in ("disabled_channel", "other_team_channel"):
        channel_id = chat.ids["mm_disabled" if case == "disabled_channel" else "mm_billing"]
        body["context"] = {
            **context,
            "channel_id": channel_id,
            "signature": _mm_sign("acknowledge", group_id, channel_id),
        }
    elif case == "unknown_alert":
        body["context"] = {
            **context,
            "alert_id": 99999,
            "signature": _mm_sign("acknowledge", 99999, chat.ids["mm"]),
        }
    elif case == "malformed":
        body = {"user_id": "mm-resp", "context": {"alert_id": "x"}}
    before = await _snapshot(chat, group_id)
    if case == "not_json":
        response = await client.post(
            "/api/integrations/mattermost/actions",
            content=b"{nope",
            headers={"Content-Type": "application/json"},
        )
    else:
        response = await client.post("/api/integrations/mattermost/actions", json=body)
    _error(response, status, code)
    assert await _snapshot(chat, group_id) == before
    await chat.world.relay.run_until_idle()
    assert _requests(chat, "PUT", "/api/v4/posts/post1") == []


async def test_mattermost_webhook_mode_channel_is_refused(chat: Chat, client: AsyncTestClient[Any]) -> None:
    """A correctly signed click naming a webhook-mode channel is action_rejected."""
    group_id = await _fire(chat, client)
    async with chat.world.relay.uow_factory() as uow:
        hook = await uow.channels.add(
            Channel(
                group_id=chat.world.ids["group"],
                team_id=chat.world.ids["team"],
                name="mm-hook",
                channel_type="mattermost",
                config={"webhook_url": f"{chat.server.url}/hook", "callback_secret": MM_SECRET},
            )
        )
        await uow.commit()
    before = await _snapshot(chat, group_id)
    context = {
        "alert_id": group_id,
        "channel_id": hook.id,
        "action": "acknowledge",
        "signature": _mm_sign("acknowledge", group_id, hook.id),
    }
    response = await client.post(
        "/api/integrations/mattermost/actions", json={"user_id": "mm-resp", "context": context}
    )
    _error(response, 403, "action_rejected")
    assert await _snapshot(chat, group_id) == before


# --- slack -----------------------------------------------------------------------------------


def _slack_payload(
    chat: Chat, group_id: int, *, action: str = "acknowledge", **changes: Any
) -> dict[str, Any]:
    """A block_actions payload for the button Relay posted."""
    posted = _requests(chat, "POST", "/slack/chat.postMessage")[0].json()
    actions = next(b for b in posted["attachments"][0]["blocks"] if b["type"] == "actions")["elements"]
    button = next(b for b in actions if json.loads(b["value"])["action"] == action)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U-RESP", "username": "resp"},
        "channel": {"id": "C123"},
        "container": {"type": "message", "message_ts": "1700.01"},
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [{"action_id": button["action_id"], "value": button["value"], "type": "button"}],
    }
    payload.update(changes)
    return payload


def _slack_request(
    chat: Chat, payload: dict[str, Any], *, skew: int = 0, secret: str = SLACK_SIGNING
) -> dict[str, Any]:
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(chat.world.clock.now().timestamp()) + skew)
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}",
        },
    }


async def test_slack_button_acknowledges_and_updates_the_message(
    chat: Chat, client: AsyncTestClient[Any]
) -> None:
    """A signed block action acknowledges as the linked user; chat.update then edits the message."""
    group_id = await _fire(chat, client)
    payload = _slack_payload(chat, group_id)
    assert json.loads(payload["actions"][0]["value"]) == {
        "action": "acknowledge",
        "alert_id": group_id,
        "channel_id": chat.ids["slack"],
    }
    response = await client.post("/api/integrations/slack/actions", **_slack_request(chat, payload))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "result": "applied",
        "alert_id": group_id,
        "message": f"Alert #{group_id} acknowledged",
    }
    group = await chat.world.get("alert_groups", group_id)
    assert (group.status, group.acknowledged_by) == ("acknowledged", chat.world.ids["responder"])
    await chat.world.relay.run_until_idle()
    updates = _requests(chat, "POST", "/slack/chat.update")
    assert len(updates) == 1
    update = updates[0].json()
    assert updates[0].header("authorization") == "Bearer xoxb-test"
    assert (update["channel"], update["ts"]) == ("C123", "1700.01")
    assert update["attachments"][0]["color"] == "#f0ad4e"
    fields = update["attachments"][0]["blocks"][0]["fields"]
    assert {"type": "mrkdwn", "text": "*Status:*\nacknowledged"} in fields
    actions = next(b for b in update["attachments"][0]["blocks"] if b["type"] == "actions")["elements"]
    assert [a["action_id"] for a in actions] == ["relay_resolve"]
    assert len(_requests(chat, "POST", "/slack/chat.postMessage")) == 1


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("bad_signature", 401, "invalid_signature"),
        ("stale", 401, "stale_request"),
        ("future", 401, "stale_request"),
        ("unknown_user", 403, "action_rejected"),
        ("viewer", 403, "action_rejected"),
        ("wrong_conversation", 403, "action_rejected"),
        ("unknown_alert", 404, "alert_not_found"),
        ("two_actions", 400, "invalid_action"),
        ("not_block_actions", 400, "invalid_payload"),
    ],
)
async def test_slack_refusals_change_nothing(
    chat: Chat, client: AsyncTestClient[Any], case: str, status: int, code: str
) -> None:
    """Bad signature, stale timestamp, unknown or unprivileged user, wrong room: refused, no change."""
    group_id = await _fire(chat, client)
    payload = _slack_payload(chat, group_id)
    request_args: dict[str, Any] = {}
    if case == "unknown_user":
        payload["user"] = {"id": "U-NOBODY"}
    elif case == "viewer":
        payload["user"] = {"id": "U-VIEW"}
    elif case == "wrong_conversation":
        payload["channel"] = {"id": "C999"}
    elif case == "unknown_alert":
        value = {"action": "acknowledge", "alert_id": 99999, "channel_id": chat.ids["slack"]}
        payload["actions"] = [{**payload["actions"][0], "value": json.dumps(value)}]
    elif case == "two_actions":
        payload["actions"] = payload["actions"] * 2
    elif case == "not_block_actions":
        payload["type"] = "view_submission"
    if case == "bad_signature":
        request_args = _slack_request(chat, payload, secret="wrong-secret")
    elif case == "stale":
        request_args = _slack_request(chat, payload, skew=-301)
    elif case == "future":
        request_args = _slack_request(chat, payload, skew=301)
    else:
        request_args = _slack_request(chat, payload)
    before = await _snapshot(chat, group_id)
    response = await client.post("/api/integrations/slack/actions", **request_args)
    _error(response, status, code)
    assert await _snapshot(chat, group_id) == before
    await chat.world.relay.run_until_idle()
    assert _requests(chat, "POST", "/slack/chat.update") == []


async def test_slack_signature_inside_window_is_accepted(chat: Chat, client: AsyncTestClient[Any]) -> None:
    """A timestamp 299 s old is still inside the 300 s window."""
    group_id = await _fire(chat, client)
    response = await client.post(
        "/api/integrations/slack/actions", **_slack_request(chat, _slack_payload(chat, group_id), skew=-299)
    )
    assert response.status_code == 200, response.text


# --- telegram --------------------------------------------------------------------------------


def _tg_update(
    chat: Chat, *, update_id: int = 1, from_id: int = 501, action: str = "Acknowledge"
) -> dict[str, Any]:
    sent = _requests(chat, "POST", f"/bot{TG_TOKEN}/sendMessage")[0].json()
    button = next(b for row in sent["reply_markup"]["inline_keyboard"] for b in row if b["text"] == action)
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cq-{update_id}",
            "from": {"id": from_id, "is_bot": False, "first_name": "R"},
            "message": {"message_id": 77, "chat": {"id": -100, "type": "supergroup"}},
            "data": button["callback_data"],
        },
    }


def _tg_post(chat: Chat, update: Any, secret: str = TG_SECRET) -> dict[str, Any]:
    return {
        "content": json.dumps(update).encode(),
        "headers": {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
    }


async def test_telegram_callback_acknowledges_answers_and_edits(
    chat: Chat, client: AsyncTestClient[Any]
) -> None:
    """A signed callback from a linked responder acknowledges, is answered, then editMessageText runs."""
    group_id = await _fire(chat, client)
    update = _tg_update(chat)
    data = update["callback_query"]["data"]
    signature = hmac.new(
        CHANNEL_KEY.encode(), f"ir:ack:{group_id}:{chat.ids['tg']}".encode(), hashlib.sha256
    ).hexdigest()[:12]
    assert data == f"ir:ack:{group_id}:{chat.ids['tg']}:{signature}"
    url = f"/api/integrations/telegram/webhook/{chat.ids['tg']}"
    response = await client.post(url, **_tg_post(chat, update))
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "result": "applied", "message": "Acknowledged"}
    answers = _requests(chat, "POST", f"/bot{TG_TOKEN}/answerCallbackQuery")
    assert [a.json() for a in answers] == [{"callback_query_id": "cq-1", "text": "Acknowledged"}]
    group = await chat.world.get("alert_groups", group_id)
    assert (group.status, group.acknowledged_by) == ("acknowledged", chat.world.ids["responder"])

    # Telegram retries: the same update_id is answered 200 and ignored.
    again = await client.post(url, **_tg_post(chat, update))
    assert again.json() == {"ok": True, "result": "duplicate"}
    assert len(_requests(chat, "POST", f"/bot{TG_TOKEN}/answerCallbackQuery")) == 1

    await chat.world.relay.run_until_idle()
    edits = _requests(chat, "POST", f"/bot{TG_TOKEN}/editMessageText")
    assert len(edits) == 1
    edit = edits[0].json()
    assert (edit["chat_id"], edit["message_id"], edit["parse_mode"]) == ("-100", 77, "HTML")
    assert edit["text"].startswith("<b>ACKNOWLEDGED: [CRITICAL] Disk is full</b>")
    buttons = [b["text"] for row in edit["reply_markup"]["inline_keyboard"] for b in row]
    assert "Acknowledge" not in buttons
    assert "Resolve" in buttons


@pytest.mark.parametrize(
    ("case", "answer"),
    [
        ("unknown_user", "this telegram user is not linked to an active Relay user"),
        ("viewer", "viewer has no responder rights on team infra"),
        ("tampered", "callback data signature does not match"),
        ("other_chat", "the button was pressed in another chat"),
    ],
)
async def test_telegram_refusals_are_answered_and_change_nothing(
    chat: Chat, client: AsyncTestClient[Any], case: str, answer: str
) -> None:
    """A refused callback is answered with the reason (200 for Telegram) and changes nothing."""
    group_id = await _fire(chat, client)
    update = _tg_update(chat, from_id={"unknown_user": 999, "viewer": 502}.get(case, 501))
    if case == "tampered":
        data = update["callback_query"]["data"]
        update["callback_query"]["data"] = data[:-1] + ("0" if data[-1] != "0" else "1")
    elif case == "other_chat":
        update["callback_query"]["message"]["chat"]["id"] = -200
    before = await _snapshot(chat, group_id)
    response = await client.post(
        f"/api/integrations/telegram/webhook/{chat.ids['tg']}", **_tg_post(chat, update)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "result": "rejected", "message": answer}
    assert await _snapshot(chat, group_id) == before
    answers = _requests(chat, "POST", f"/bot{TG_TOKEN}/answerCallbackQuery")
    assert [a.json()["text"] for a in answers] == [answer]


async def test_telegram_webhook_needs_the_secret_token(chat: Chat, client: AsyncTestClient[Any]) -> None:
    """A wrong or missing secret token is 401 and nothing is processed."""
    group_id = await _fire(chat, client)
    before = await _snapshot(chat, group_id)
    url = f"/api/integrations/telegram/webhook/{chat.ids['tg']}"
    wrong = await client.post(url, **_tg_post(chat, _tg_update(chat), secret="nope"))
    _error(wrong, 401, "invalid_secret_token")
    missing = await client.post(url, json=_tg_update(chat))
    _error(missing, 401, "invalid_secret_token")
    other = await client.post(
        f"/api/integrations/telegram/webhook/{chat.ids['mm']}", **_tg_post(chat, _tg_update(chat))
    )
    _error(other, 401, "invalid_secret_token")
    assert await _snapshot(chat, group_id) == before
    assert _requests(chat, "POST", f"/bot{TG_TOKEN}/answerCallbackQuery") == []


# --- signed action links ---------------------------------------------------------------------


def _links(chat: Chat) -> dict[str, str]:
    """The Acknowledge/Resolve link tokens of the Teams card Relay posted."""
    card = _requests(chat, "POST", "/teams")[0].json()["attachments"][0]["content"]
    urls = {a["title"]: a["url"] for a in card["actions"]}
    return {
        title.lower(): urls[title].removeprefix(f"{BASE}/actions/") for title in ("Acknowledge", "Resolve")
    }


async def test_link_page_never_acts_and_post_acts_once(chat: Chat, client: AsyncTestClient[Any]) -> None:
    """GET shows a confirmation form and changes nothing; POST acknowledges once; a reuse is 409."""
    group_id = await _fire(chat, client)
    token = _links(chat)["acknowledge"]
    before = await _snapshot(chat, group_id)
    page = await client.get(f"/actions/{token}", headers=chat.world.auth("responder"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'<form method="post" action="/api/actions/{token}">' in page.text
    assert f"Acknowledge alert #{group_id}?" in page.text
    assert "<script" not in page.text
    assert "http" not in page.text.split("<body>")[1]  # nothing fetched from elsewhere
    assert await _snapshot(chat, group_id) == before

    used = await client.post(f"/api/actions/{token}", headers=chat.world.auth("responder"))
    assert used.status_code == 200, used.text
    assert used.json() == {
        "result": "applied",
        "action": "acknowledge",
        "alert_id": group_id,
        "status": "acknowledged",
        "message": f"Alert #{group_id} acknowledged",
    }
    group = await chat.world.get("alert_groups", group_id)
    assert (group.status, group.acknowledged_by) == ("acknowledged", chat.world.ids["responder"])
    events = await chat.world.find("events", group_id=group_id, event_type="acknowledged")
    assert [e.data["via"] for e in events] == ["link"]
    assert await chat.world.count("action_tokens") == 1

    after = await _snapshot(chat, group_id)
    reused = await client.post(f"/api/actions/{token}", headers=chat.world.auth("manager"))
    _error(reused, 409, "token_already_used")
    assert await _snapshot(chat, group_id) == after
    page_again = await client.get(f"/actions/{token}", headers=chat.world.auth("responder"))
    assert page_again.status_code == 409


async def test_link_expired_tampered_and_unprivileged(chat: Chat, client: AsyncTestClient[Any]) -> None:
    """Tampered 400, no responder rights 403, not logged in 401, expired 410: all change nothing."""
    group_id = await _fire(chat, client)
    token = _links(chat)["resolve"]
    before = await _snapshot(chat, group_id)
    payload, _, mac = token.partition(".")
    claims = json.loads(_unb64(payload))
    forged = _b64(json.dumps({**claims, "a": "resolve", "g": group_id + 1}, separators=(",", ":")).encode())
    _error(
        await client.post(f"/api/actions/{forged}.{mac}", headers=chat.world.auth("responder")),
        400,
        "invalid_token",
    )
    flipped = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    _error(
        await client.post(f"/api/actions/{flipped}", headers=chat.world.auth("responder")),
        400,
        "invalid_token",
    )
    _error(
        await client.post(f"/api/actions/{token}", headers=chat.world.auth("viewer")), 403, "action_rejected"
    )
    _error(
        await client.post(f"/api/actions/{token}", headers=chat.world.auth("outsider")),
        403,
        "action_rejected",
    )
    _error(await client.post(f"/api/actions/{token}"), 401, "unauthorized")
    assert await _snapshot(chat, group_id) == before
    chat.world.clock.advance(dt.timedelta(seconds=86401))
    _error(
        await client.post(f"/api/actions/{token}", headers=chat.world.auth("responder")), 410, "token_expired"
    )
    expired_page = await client.get(f"/actions/{token}", headers=chat.world.auth("responder"))
    assert expired_page.status_code == 410
    assert "This link cannot be used" in expired_page.text
    assert await _snapshot(chat, group_id) == before


async def test_link_page_redirects_to_login(chat: Chat, client: AsyncTestClient[Any]) -> None:
    """Without a session the page sends the browser to /login and back (require_login)."""
    await _fire(chat, client)
    token = _links(chat)["acknowledge"]
    page = await client.get(f"/actions/{token}", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?" + urllib.parse.urlencode({"next": f"/actions/{token}"})


async def test_link_form_post_from_a_browser(chat: Chat, client: AsyncTestClient[Any]) -> None:
    """The page's form (cookie session, no CSRF header, empty body) resolves and answers HTML."""
    group_id = await _fire(chat, client)
    token = _links(chat)["resolve"]
    client.cookies.set(chat.world.settings.auth.jwt_cookie_name, chat.world.session("responder"))
    response = await client.post(
        f"/api/actions/{token}",
        headers={
            "Accept": "text/html,application/xhtml+xml",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 200, response.text
    assert f"Alert #{group_id} resolved" in response.text
    group = await chat.world.get("alert_groups", group_id)
    assert (group.status, group.resolved_by) == ("resolved", chat.world.ids["responder"])
    # Teams cannot edit: the status change is a follow-up card.
    await chat.world.relay.run_until_idle()
    cards = _requests(chat, "POST", "/teams")
    assert len(cards) == 2
    assert "RESOLVED" in json.dumps(cards[1].json())


async def test_link_without_required_login_acts_for_the_recipient(server: LocalHttpServer) -> None:
    """With require_login off the link itself authorizes; nobody logged in, the action still applies once."""
    chat = await _chat_world(server, require_login=False)
    async with AsyncTestClient(app=chat.world.app) as client:
        group_id = await _fire(chat, client)
        token = _links(chat)["acknowledge"]
        page = await client.get(f"/actions/{token}")
        assert page.status_code == 200
        first = await client.post(f"/api/actions/{token}")
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "acknowledged"
        _error(await client.post(f"/api/actions/{token}"), 409, "token_already_used")
        group = await chat.world.get("alert_groups", group_id)
        assert group.status == "acknowledged"


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
