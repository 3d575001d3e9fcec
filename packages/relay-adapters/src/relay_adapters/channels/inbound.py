"""Interactive chat callbacks: Mattermost buttons, Slack block actions, Telegram callback queries.

The provider-specific half of SPEC S6.4-S6.6. Each handler reads the request the way its chat
service sends it, checks it with the channel's own secret (looked up from the channel the
callback names) and hands the click to :func:`relay_core.services.interactive.apply_chat_action`,
which maps the chat user to a Relay user, checks responder rights and acts in one transaction.
The HTTP controllers (``relay_server.controllers.interactive``) only move bytes in and out.

Verification failures raise :class:`~relay_adapters.channels._common.InboundCallbackError`;
the core raises ``action_rejected`` / ``alert_not_found`` as ``RelayError``. Nothing is changed
when either is raised.

Telegram long polling (``telegram.mode = "polling"``) runs :class:`TelegramPolling`, which
feeds every bot's updates through the same :func:`handle_telegram_update` as the webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import httpx

from relay_adapters.channels._common import ChannelEnvironment, InboundCallbackError, structure_config
from relay_adapters.channels.mattermost import (
    MattermostConfig,
    mattermost_callback_secret,
    read_mattermost_action,
    verify_mattermost_action,
)
from relay_adapters.channels.slack import SlackConfig, parse_slack_action, verify_slack_signature
from relay_adapters.channels.telegram import (
    CALLBACK_CODES,
    TelegramConfig,
    TelegramPoller,
    answer_callback_query,
    parse_callback_data,
    telegram_signing_key,
    verify_webhook_secret,
)
from relay_core.bootstrap import Relay
from relay_core.domain.errors import RelayError
from relay_core.domain.model import Channel
from relay_core.ports.channels import DeliveryError
from relay_core.services.delivery import channel_ref
from relay_core.services.interactive import ActionOutcome, apply_chat_action, remember_callback

__all__ = [
    "TelegramPolling",
    "handle_mattermost_action",
    "handle_slack_interaction",
    "handle_telegram_update",
    "handle_telegram_webhook",
]

logger = logging.getLogger("relay.channels.inbound")

_TELEGRAM_ANSWERS: Final = {"acknowledge": "Acknowledged", "resolve": "Resolved"}


def _env(relay: Relay, channel_type: str) -> ChannelEnvironment:
    """The environment the sender signed with, so checks use exactly the same keys."""
    env = getattr(relay.ctx.senders.get(channel_type), "env", None)
    if isinstance(env, ChannelEnvironment):
        return env
    return ChannelEnvironment(public_base_url=relay.ctx.settings.public_base_url)


def _config(channel: Channel | None, channel_type: str) -> dict[str, Any]:
    """The channel's config as senders see it (``callback_secret`` included); ``{}`` for others."""
    if channel is None or channel.channel_type != channel_type:
        return {}
    return dict(channel_ref(channel).config)


def _valid_id(value: int) -> bool:
    """A storage id (positive, fits a signed 64-bit column)."""
    return 0 < value < 2**63


def _rejected(message: str) -> InboundCallbackError:
    return InboundCallbackError("action_rejected", message, status=403)


# --- mattermost (S6.4) --------------------------------------------------------------------------


async def handle_mattermost_action(relay: Relay, body: bytes) -> ActionOutcome:
    """``POST /api/integrations/mattermost/actions``; the reply's ``ephemeral_text`` is ``message``.

    Raises:
        InboundCallbackError: 400 ``invalid_payload``, 403 ``invalid_signature``, 403
            ``action_rejected`` (not a bot-mode channel).
        RelayError: 403 ``action_rejected`` (channel, team, user, rights), 404 ``alert_not_found``.
    """
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise InboundCallbackError("invalid_payload", "request body is not JSON", status=400) from exc
    click = read_mattermost_action(parsed)
    env = _env(relay, "mattermost")

    def verify(channel: Channel | None) -> None:
        config = _config(channel, "mattermost")
        verify_mattermost_action(parsed, [mattermost_callback_secret(config, env)])
        if config:
            try:
                mode = structure_config(MattermostConfig, config, "mattermost").effective_mode
            except DeliveryError:
                mode = "invalid"
            if mode != "bot_api":
                raise _rejected("the Mattermost channel is not in bot_api mode")

    return await apply_chat_action(
        relay.ctx,
        via="mattermost",
        channel_id=click.channel_id,
        group_id=click.alert_id,
        action=click.action,
        external_user_id=click.user_id,
        verify=verify,
        payload={"user_id": click.user_id, "post_id": click.post_id, "action": click.action},
    )


# --- slack (S6.5) -------------------------------------------------------------------------------


async def handle_slack_interaction(
    relay: Relay, headers: Mapping[str, str] | Any, body: bytes
) -> ActionOutcome:
    """``POST /api/integrations/slack/actions`` (form field ``payload``).

    Raises:
        InboundCallbackError: 400 ``invalid_payload`` / ``invalid_action``; 401 ``stale_request``
            / ``invalid_signature``; 403 ``action_rejected`` (mode, Slack channel).
        RelayError: 403 ``action_rejected``, 404 ``alert_not_found``.
    """
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise InboundCallbackError("invalid_payload", "request body is not UTF-8", status=400) from exc
    payload = (form.get("payload") or [""])[0]
    if not payload:
        raise InboundCallbackError("invalid_payload", "form field payload is missing", status=400)
    click = parse_slack_action(payload)
    if not (_valid_id(click.alert_id) and _valid_id(click.channel_id)):
        raise InboundCallbackError("invalid_action", "the button value names unknown ids", status=400)
    env_now = relay.clock.now()

    def verify(channel: Channel | None) -> None:
        config = _config(channel, "slack")
        secret = str(config.get("signing_secret") or "")
        if not secret:
            # Without the channel's secret nothing can be verified; still say when it is stale.
            verify_slack_signature(headers, body, "\x00", env_now)
            raise InboundCallbackError("invalid_signature", "no Slack signing secret is configured")
        verify_slack_signature(headers, body, secret, env_now)
        try:
            slack = structure_config(SlackConfig, config, "slack")
        except DeliveryError as exc:
            raise _rejected("the Slack channel configuration is invalid") from exc
        if slack.effective_mode != "bot_api":
            raise _rejected("the Slack channel is not in bot_api mode")
        if click.slack_channel_id != slack.channel_id:
            raise _rejected("the Slack conversation is not the channel's configured channel_id")

    return await apply_chat_action(
        relay.ctx,
        via="slack",
        channel_id=click.channel_id,
        group_id=click.alert_id,
        action=click.action,
        external_user_id=click.user_id,
        verify=verify,
        payload={"user_id": click.user_id, "channel": click.slack_channel_id, "message_ts": click.message_ts},
    )


# --- telegram (S6.6) ----------------------------------------------------------------------------


async def handle_telegram_webhook(
    relay: Relay, channel_id: int, headers: Mapping[str, str] | Any, body: bytes, *, http: Any
) -> dict[str, Any]:
    """``POST /api/integrations/telegram/webhook/{channel_id}``.

    Raises:
        InboundCallbackError: 401 ``invalid_secret_token``; 400 ``invalid_payload``. Everything
            after those checks is answered 200 (Telegram retries other answers), the callback
            query with the result or the rejection reason.
    """
    channel = None
    if _valid_id(channel_id):
        async with relay.uow_factory() as uow:
            channel = await uow.channels.get(channel_id)
    config = _config(channel, "telegram")
    verify_webhook_secret(headers, str(config.get("webhook_secret") or "") or None)
    try:
        update = json.loads(body)
    except ValueError as exc:
        raise InboundCallbackError("invalid_payload", "request body is not JSON", status=400) from exc
    if not isinstance(update, Mapping) or not isinstance(update.get("update_id"), int):
        raise InboundCallbackError("invalid_payload", "not a Telegram update", status=400)
    if not await remember_callback(relay.ctx, channel_id, f"telegram:update:{update['update_id']}"):
        return {"ok": True, "result": "duplicate"}
    try:
        bot = structure_config(TelegramConfig, config, "telegram")
    except DeliveryError:
        bot = None
    return await handle_telegram_update(relay, update, http=http, bot=bot, channel_id=channel_id)


def _callback_target(data: Any) -> tuple[str, int, int] | None:
    """``(action, alert_id, channel_id)`` of callback data, unverified; None when not Relay's."""
    parts = data.split(":") if isinstance(data, str) else []
    if len(parts) != 5 or parts[0] != "ir" or parts[1] not in CALLBACK_CODES:
        return None
    try:
        target = CALLBACK_CODES[parts[1]], int(parts[2]), int(parts[3])
    except ValueError:
        return None
    return target if _valid_id(target[1]) and _valid_id(target[2]) else None


async def handle_telegram_update(
    relay: Relay,
    update: Mapping[str, Any],
    *,
    http: Any,
    bot: TelegramConfig | None,
    channel_id: int | None = None,
) -> dict[str, Any]:
    """Process one update (webhook or long polling): act on a callback query, then answer it.

    Args:
        update: The Telegram update.
        http: The outbound client for ``answerCallbackQuery``.
        bot: Configuration of the bot that received the update (answers go through it); buttons
            of channels with another bot token are refused.
        channel_id: The channel of the webhook URL; the button must belong to it.
    """
    query = update.get("callback_query")
    if not isinstance(query, Mapping):
        return {"ok": True, "result": "ignored"}
    target = _callback_target(query.get("data"))
    sender = query.get("from")
    from_id = sender.get("id") if isinstance(sender, Mapping) else None
    message = query.get("message")
    chat = message.get("chat") if isinstance(message, Mapping) else None
    chat_id = chat.get("id") if isinstance(chat, Mapping) else None
    env = _env(relay, "telegram")
    result, text = "rejected", "This button is not valid"
    if target is not None:
        action, alert_id, button_channel = target

        def verify(channel: Channel | None) -> None:
            config = _config(channel, "telegram")
            parse_callback_data(
                str(query.get("data")), [telegram_signing_key(config, env), config.get("callback_secret")]
            )
            if channel_id is not None and button_channel != channel_id:
                raise _rejected("the button belongs to another channel")
            if not config:
                return  # the core refuses a missing channel or one of another type
            if bot is not None and str(config.get("bot_token")) != bot.bot_token:
                raise _rejected("the button belongs to another bot")
            if chat_id is not None and str(chat_id) != str(config.get("chat_id")):
                raise _rejected("the button was pressed in another chat")

        try:
            outcome = await apply_chat_action(
                relay.ctx,
                via="telegram",
                channel_id=button_channel,
                group_id=alert_id,
                action=action,
                external_user_id=str(from_id) if from_id is not None else None,
                verify=verify,
                payload={"update_id": update.get("update_id"), "from_id": from_id, "action": action},
            )
        except (InboundCallbackError, RelayError) as exc:
            logger.info("relay.telegram.callback_rejected: %s", exc.code)
            text = exc.message
        else:
            result = outcome.result
            text = _TELEGRAM_ANSWERS[action] if outcome.result == "applied" else outcome.message
    query_id = query.get("id")
    if bot is not None and query_id is not None:
        await _answer(http, env, bot, str(query_id), text)
    return {"ok": True, "result": result, "message": text}


async def _answer(http: Any, env: ChannelEnvironment, bot: TelegramConfig, query_id: str, text: str) -> None:
    """Always answer the callback query (S6.6); a failure is logged, never raised."""
    client = http if isinstance(http, httpx.AsyncClient) else env.outbound.build()
    try:
        await answer_callback_query(client, bot, query_id, text)
    except DeliveryError as exc:
        logger.warning("relay.telegram.answer_failed: %s", exc.message)
    finally:
        if client is not http:
            await client.aclose()


class TelegramPolling:
    """Long-polls ``getUpdates`` for every distinct bot of the enabled telegram channels (S6.6).

    One :class:`~relay_adapters.channels.telegram.TelegramPoller` per bot token, each under a
    scheduler lease ``telegram_poll:<token digest>`` so that only one process polls a bot. The
    channel list is re-read every ``refresh_seconds``. ``run()`` until ``stop()``.
    """

    def __init__(
        self, relay: Relay, http: httpx.AsyncClient, *, holder: str, refresh_seconds: float = 30.0
    ) -> None:
        self.relay = relay
        self.http = http
        self.holder = holder
        self.refresh_seconds = refresh_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()

    async def bots(self) -> dict[str, TelegramConfig]:
        """Bot token -> one channel configuration of that bot (enabled telegram channels)."""
        async with self.relay.uow_factory() as uow:
            channels = await uow.channels.find(channel_type="telegram", enabled=True)
        found: dict[str, TelegramConfig] = {}
        for channel in channels:
            try:
                config = structure_config(TelegramConfig, channel_ref(channel).config, "telegram")
            except DeliveryError:
                continue
            found.setdefault(config.bot_token, config)
        return found

    async def _lease(self, token: str) -> bool:
        name = "telegram_poll:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        async with self.relay.uow_factory() as uow:
            lease = await uow.leases.acquire(name, self.holder, self.relay.clock.now(), 30)
            await uow.commit()
        return lease is not None

    async def _poll_bot(self, config: TelegramConfig) -> None:
        async def handle(update: Mapping[str, Any]) -> Any:
            return await handle_telegram_update(self.relay, update, http=self.http, bot=config)

        poller = TelegramPoller(config=config, http=self.http, handle=handle)
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            pause = 5.0
            try:
                if await self._lease(config.bot_token):
                    started = loop.time()
                    handled = await poller.poll_once()
                    # Telegram holds an empty poll open; an answer that came back at once
                    # must not turn this into a busy loop.
                    pause = 0.0 if handled or loop.time() - started >= 1.0 else 1.0
            except Exception as exc:
                logger.warning("relay.telegram.poll_failed: %s", getattr(exc, "message", type(exc).__name__))
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=pause)

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    bots = await self.bots()
                except Exception as exc:
                    logger.warning("relay.telegram.channels_unavailable: %s", type(exc).__name__)
                    bots = {}
                for token, config in bots.items():
                    task = self._tasks.get(token)
                    if task is None or task.done():
                        self._tasks[token] = asyncio.create_task(self._poll_bot(config))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.refresh_seconds)
        finally:
            for task in self._tasks.values():
                task.cancel()
            for task in self._tasks.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def stop(self) -> None:
        self._stop.set()
