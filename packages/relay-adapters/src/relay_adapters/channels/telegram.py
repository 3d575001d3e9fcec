"""The ``telegram`` channel: Bot API messages with an inline keyboard (SPEC S6.6).

``sendMessage`` posts the S6.1 plain text as escaped HTML (≤ 4096 characters) with the buttons
Acknowledge and Resolve (signed ``callback_data``, ≤ 64 bytes) and an Open link; the
``message_id`` is the group's anchor. Status changes edit it with ``editMessageText`` (Telegram's
400 "message is not modified" counts as success); updates, reminders and escalations reply to it
(``reply_parameters``) and refresh it. ``retry_after`` from a 429 is honoured.

``callback_data`` is ``ir:<code>:<alert_id>:<channel_id>:<sig>``, sig = the first 12 hex characters
of HMAC-SHA256(key, ``"ir:<code>:<alert_id>:<channel_id>"``) with the key of
:func:`telegram_signing_key` (``main.secret_key``). The update receivers (webhook endpoint,
long polling; owned by the server and the scheduler) use :func:`parse_callback_data` and
:func:`verify_webhook_secret`.

The bot token is part of every API URL, so no message, log line or error here contains a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs
import httpx

from relay_adapters.channels._common import (
    EDIT_EVENTS,
    REPLY_EVENTS,
    ChannelEnvironment,
    CommonConfig,
    InboundCallbackError,
    button_actions,
    header_value,
    hmac_hex,
    http_url,
    is_public_url,
    outbound_client,
    plain_text,
    require,
    structure_config,
)
from relay_adapters.channels._http import (
    MAX_RETRY_AFTER_SECONDS,
    parse_retry_after,
    response_snippet,
    send_request,
)
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

__all__ = [
    "CALLBACK_CODES",
    "TelegramCallback",
    "TelegramChannel",
    "TelegramConfig",
    "TelegramPoller",
    "answer_callback_query",
    "build_keyboard",
    "callback_data",
    "parse_callback_data",
    "render_html",
    "set_webhook",
    "telegram_api_call",
    "telegram_signing_key",
    "verify_webhook_secret",
]

logger = logging.getLogger("relay.channels.telegram")

TELEGRAM_API: Final = "https://api.telegram.org"
TEXT_LIMIT: Final = 4096
CALLBACK_DATA_LIMIT: Final = 64
CALLBACK_CODES: Final = {"ack": "acknowledge", "resolve": "resolve", "s1h": "silence_1h", "uns": "unsilence"}
_CODES_BY_ACTION: Final = {"acknowledge": "ack", "resolve": "resolve"}
_SIGNATURE_CHARS: Final = 12
_NOT_MODIFIED: Final = "message is not modified"


def _bot_token(_instance: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if ":" not in value or any(ch.isspace() or ch == "/" for ch in value):
        raise ValueError("bot_token must look like 123456:ABC... (it contains ':')")


@attrs.frozen(kw_only=True)
class TelegramConfig(CommonConfig):
    """Configuration of a ``telegram`` channel."""

    bot_token: str = attrs.field(validator=_bot_token, metadata={"secret": True})
    chat_id: str = attrs.field(converter=str)
    message_thread_id: int | None = None
    """Forum topic to post in."""
    webhook_secret: str | None = attrs.field(default=None, metadata={"secret": True})
    """Expected ``X-Telegram-Bot-Api-Secret-Token`` in webhook mode (generated)."""
    api_base: str = attrs.field(default=TELEGRAM_API, validator=http_url)
    """Bot API base URL (tests point it at a local server)."""
    callback_secret: str | None = attrs.field(default=None, metadata={"secret": True})
    """Signs callback data when ``main.secret_key`` is not available to the channel."""


def telegram_signing_key(config: Mapping[str, Any], env: ChannelEnvironment) -> str | None:
    """The key of callback-data signatures: ``main.secret_key``, else the channel's callback secret."""
    if env.secret_key:
        return env.secret_key
    secret = config.get("callback_secret")
    return str(secret) if secret else None


def _signature(key: str, code: str, alert_id: int | str, channel_id: int | str) -> str:
    return hmac_hex(key, f"ir:{code}:{alert_id}:{channel_id}")[:_SIGNATURE_CHARS]


def callback_data(key: str, action: str, alert_id: int, channel_id: int) -> str:
    """The signed ``callback_data`` of a button (``action``: ``acknowledge`` or ``resolve``)."""
    code = _CODES_BY_ACTION.get(action, action)
    if code not in CALLBACK_CODES:
        raise ValueError(f"no callback code for action {action!r}")
    data = f"ir:{code}:{alert_id}:{channel_id}:{_signature(key, code, alert_id, channel_id)}"
    if len(data.encode("utf-8")) > CALLBACK_DATA_LIMIT:
        raise ValueError("callback data exceeds 64 bytes")
    return data


@attrs.frozen(kw_only=True)
class TelegramCallback:
    """A verified button press."""

    code: str
    action: str
    """``acknowledge``, ``resolve`` ([P2] ``silence_1h``, ``unsilence``)."""
    alert_id: int
    channel_id: int


def parse_callback_data(data: str, key: str | Sequence[str | None]) -> TelegramCallback:
    """Check and read ``callback_data``.

    Args:
        data: The ``callback_query.data`` Telegram sent.
        key: The signing key, or several candidates (``main.secret_key`` and the channel's
            callback secret, see :func:`telegram_signing_key`); any one matching is enough.

    Raises:
        InboundCallbackError: 400 ``invalid_payload`` when malformed; 403 ``invalid_signature``
            when the signature does not match (constant time).
    """
    parts = data.split(":") if isinstance(data, str) else []
    if len(parts) != 5 or parts[0] != "ir" or parts[1] not in CALLBACK_CODES:
        raise InboundCallbackError("invalid_payload", "callback data is not Relay's", status=400)
    _, code, alert_text, channel_text, signature = parts
    try:
        alert_id, channel_id = int(alert_text), int(channel_text)
    except ValueError as exc:
        raise InboundCallbackError(
            "invalid_payload", "callback data ids are not numbers", status=400
        ) from exc
    keys = [key] if isinstance(key, str) else [candidate for candidate in key if candidate]
    matches = [
        hmac.compare_digest(
            _signature(candidate, code, alert_text, channel_text).encode(), signature.encode()
        )
        for candidate in keys
        if candidate
    ]
    if not any(matches):
        raise InboundCallbackError("invalid_signature", "callback data signature does not match", status=403)
    return TelegramCallback(code=code, action=CALLBACK_CODES[code], alert_id=alert_id, channel_id=channel_id)


def verify_webhook_secret(headers: Mapping[str, str] | Any, webhook_secret: str | None) -> None:
    """Check ``X-Telegram-Bot-Api-Secret-Token`` against the channel's ``webhook_secret``.

    Raises:
        InboundCallbackError: 401 ``invalid_secret_token`` when missing or different.
    """
    sent = header_value(headers, "X-Telegram-Bot-Api-Secret-Token") or ""
    if not webhook_secret or not hmac.compare_digest(sent.encode(), webhook_secret.encode()):
        raise InboundCallbackError("invalid_secret_token", "Telegram secret token does not match")


# --- rendering ----------------------------------------------------------------------------------


def render_html(message: OutboundMessage) -> str:
    """The plain text as Telegram HTML: escaped, first line bold, ≤ 4096 visible characters."""
    text = plain_text(message)
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1] + "…"
    head, _, rest = text.partition("\n")
    rendered = f"<b>{html.escape(head, quote=False)}</b>"
    if rest:
        rendered += "\n" + html.escape(rest, quote=False)
    return rendered


def build_keyboard(message: OutboundMessage, key: str | None) -> dict[str, Any] | None:
    """``reply_markup``: ``[Acknowledge, Resolve]`` (by status) and an ``Open`` URL button."""
    rows: list[list[dict[str, str]]] = []
    group = message.group
    actions = button_actions(message)
    if actions and group is not None:
        if not key:
            raise PermanentDeliveryError("telegram buttons need main.secret_key (or a callback_secret)")
        rows.append(
            [
                {
                    "text": "Acknowledge" if action == "acknowledge" else "Resolve",
                    "callback_data": callback_data(key, action, group.id, message.channel.id),
                }
                for action in actions
            ]
        )
    if group is not None and is_public_url(group.alert_url):
        rows.append([{"text": "Open", "url": str(group.alert_url)}])
    return {"inline_keyboard": rows} if rows else None


# --- the channel --------------------------------------------------------------------------------


class TelegramChannel:
    """Relay channel type ``telegram`` (S6.6)."""

    name: ClassVar[str] = "telegram"
    label: ClassVar[str] = "Telegram"
    Config: ClassVar[type[Any]] = TelegramConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=True, supports_actions=True, person_addressed=False
    )

    def __init__(self, *, env: ChannelEnvironment | None = None) -> None:
        self.env = env or ChannelEnvironment()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """``sendMessage`` with the inline keyboard."""
        config = self._config(message)
        async with outbound_client(message, self.env) as http:
            return await self._send(http, message, config)

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """Edit the anchor (status changes) or reply to it and refresh it (S6.1)."""
        config = self._config(message)
        anchor = previous.external_message_id
        if not anchor:
            return await self.send(message)
        chat_id = previous.external_channel_id or config.chat_id
        async with outbound_client(message, self.env) as http:
            if message.event_type in EDIT_EVENTS:
                return await self._edit(http, message, config, chat_id, anchor)
            if message.event_type not in REPLY_EVENTS:
                return await self._send(http, message, config)
            reply = await self._send(http, message, config, reply_to=anchor)
            edited = True
            try:
                await self._edit(http, message, config, chat_id, anchor)
            except (RetryableDeliveryError, PermanentDeliveryError) as exc:
                logger.warning("relay.channel.telegram.anchor_edit_failed: %s", exc.message)
                edited = False
        return DeliveryResult(
            provider=self.name,
            external_message_id=anchor,
            external_channel_id=chat_id,
            provider_status="sent",
            provider_payload={"reply_message_id": reply.external_message_id, "anchor_edited": edited},
        )

    # --- internals ------------------------------------------------------------------------------

    def _config(self, message: OutboundMessage) -> TelegramConfig:
        config = structure_config(TelegramConfig, message.channel.config, self.name)
        require(config.chat_id, "chat_id", self.name)
        return config

    def _body(self, message: OutboundMessage, config: TelegramConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "chat_id": config.chat_id,
            "text": render_html(message),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        keyboard = build_keyboard(message, telegram_signing_key(message.channel.config, self.env))
        if keyboard is not None:
            body["reply_markup"] = keyboard
        return body

    async def _send(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: TelegramConfig,
        *,
        reply_to: str | None = None,
    ) -> DeliveryResult:
        body = self._body(message, config)
        if config.message_thread_id is not None:
            body["message_thread_id"] = config.message_thread_id
        if reply_to is not None:
            body["reply_parameters"] = {"message_id": int(reply_to), "allow_sending_without_reply": True}
        result = await self._call(http, message, config, "sendMessage", body)
        message_id = result.get("message_id") if isinstance(result, dict) else None
        chat = result.get("chat") if isinstance(result, dict) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        return DeliveryResult(
            provider=self.name,
            external_message_id=str(message_id) if message_id is not None else None,
            external_channel_id=str(chat_id if chat_id is not None else config.chat_id),
            provider_status="sent",
            provider_payload={"message_id": message_id, "chat_id": chat_id},
        )

    async def _edit(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: TelegramConfig,
        chat_id: str,
        message_id: str,
    ) -> DeliveryResult:
        body = self._body(message, config)
        body["chat_id"] = chat_id
        body["message_id"] = int(message_id)
        if "reply_markup" not in body:
            body["reply_markup"] = {"inline_keyboard": []}  # removes the old buttons
        await self._call(http, message, config, "editMessageText", body, not_modified_ok=True)
        return DeliveryResult(
            provider=self.name,
            external_message_id=message_id,
            external_channel_id=chat_id,
            provider_status="updated",
            provider_payload={"message_id": int(message_id), "chat_id": chat_id},
        )

    async def _call(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: TelegramConfig,
        method: str,
        body: Mapping[str, Any],
        *,
        not_modified_ok: bool = False,
    ) -> Any:
        url = f"{config.api_base.rstrip('/')}/bot{config.bot_token}/{method}"
        service = f"telegram {method}"
        response = await send_request(http, "POST", url, service=service, json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            answer = {}
        if 200 <= response.status_code < 300 and answer.get("ok") is True:
            return answer.get("result")
        description = str(answer.get("description") or response_snippet(response) or "no description")
        status = response.status_code
        if not_modified_ok and status == 400 and _NOT_MODIFIED in description.lower():
            return None
        raw_parameters = answer.get("parameters")
        parameters: dict[str, Any] = raw_parameters if isinstance(raw_parameters, dict) else {}
        retry_after = parameters.get("retry_after")
        if status == 429 or retry_after is not None:
            seconds = (
                min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
                if isinstance(retry_after, int | float)
                else parse_retry_after(response.headers.get("Retry-After"), now=message.clock.now())
            )
            raise RetryableDeliveryError(f"{service} is rate limited: {description}", retry_after=seconds)
        if 300 <= status < 400:
            raise PermanentDeliveryError(f"{service} answered HTTP {status}: redirects are not followed")
        if status in (408, 425) or status >= 500:
            raise RetryableDeliveryError(f"{service} answered HTTP {status}: {description}")
        if "migrate_to_chat_id" in parameters:
            raise PermanentDeliveryError(
                f"{service} failed: the group became a supergroup; "
                f"set chat_id to {parameters['migrate_to_chat_id']}"
            )
        if 200 <= status < 300:
            raise RetryableDeliveryError(f"{service} answered without ok: {description}")
        raise PermanentDeliveryError(f"{service} failed ({status}): {description}")


# --- answering callbacks and long polling (S6.6) ------------------------------------------------


async def telegram_api_call(
    http: httpx.AsyncClient, config: TelegramConfig, method: str, body: Mapping[str, Any]
) -> Any:
    """Call a Bot API method outside a delivery; the ``result``, or raise a delivery error.

    Used for ``answerCallbackQuery`` and ``getUpdates``; messages never contain the URL (it holds
    the bot token).
    """
    url = f"{config.api_base.rstrip('/')}/bot{config.bot_token}/{method}"
    service = f"telegram {method}"
    response = await send_request(http, "POST", url, service=service, json=body)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("ok") is True and 200 <= response.status_code < 300:
        return answer.get("result")
    description = (
        str(answer.get("description") or "") if isinstance(answer, dict) else response_snippet(response)
    )
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableDeliveryError(f"{service} answered HTTP {response.status_code}: {description}")
    raise PermanentDeliveryError(f"{service} failed ({response.status_code}): {description}")


async def answer_callback_query(
    http: httpx.AsyncClient, config: TelegramConfig, callback_query_id: str, text: str
) -> None:
    """``answerCallbackQuery`` with a short text (Telegram shows it as a toast; ≤ 200 chars)."""
    await telegram_api_call(
        http, config, "answerCallbackQuery", {"callback_query_id": callback_query_id, "text": text[:200]}
    )


async def set_webhook(http: httpx.AsyncClient, config: TelegramConfig, url: str) -> None:
    """``setWebhook`` for webhook mode (``relay telegram set-webhook --channel N``, S6.6).

    ``url`` is ``<public_base_url>/api/integrations/telegram/webhook/<channel_id>``; Telegram
    then sends the channel's ``webhook_secret`` in ``X-Telegram-Bot-Api-Secret-Token``.
    """
    if not config.webhook_secret:
        raise PermanentDeliveryError("telegram webhook mode needs the channel's webhook_secret")
    body = {"url": url, "secret_token": config.webhook_secret, "allowed_updates": ["callback_query"]}
    await telegram_api_call(http, config, "setWebhook", body)


UpdateHandler = Callable[[Mapping[str, Any]], Awaitable[Any]]


class TelegramPoller:
    """Long polling of one bot's ``getUpdates`` (``telegram.mode = "polling"``, S6.6).

    Each update is handed to ``handle`` (the same processing as the webhook endpoint), then the
    offset moves past it, so Telegram drops it. Drive :meth:`poll_once` from a loop (see
    :meth:`run`); the long-poll wait is kept below the outbound client's total timeout.

    Args:
        config: The channel configuration holding the bot token (any channel of that bot).
        http: The outbound client.
        handle: ``async (update) -> Any``; its exceptions are logged and the update is skipped.
        wait_seconds: Long-poll ``timeout``; by default 2 s under the client's total timeout.
    """

    def __init__(
        self,
        *,
        config: TelegramConfig,
        http: httpx.AsyncClient,
        handle: UpdateHandler,
        wait_seconds: int | None = None,
    ) -> None:
        self.config = config
        self.http = http
        self.handle = handle
        total = float(getattr(http, "total_timeout", 10.0))
        self.wait_seconds = wait_seconds if wait_seconds is not None else max(int(total) - 2, 0)
        self.offset: int | None = None
        self._stop = asyncio.Event()

    async def poll_once(self) -> int:
        """One ``getUpdates`` call; returns how many updates were handled."""
        body: dict[str, Any] = {"timeout": self.wait_seconds, "allowed_updates": ["callback_query"]}
        if self.offset is not None:
            body["offset"] = self.offset
        updates = await telegram_api_call(self.http, self.config, "getUpdates", body)
        handled = 0
        for update in updates if isinstance(updates, list) else []:
            if not isinstance(update, Mapping) or not isinstance(update.get("update_id"), int):
                continue
            self.offset = int(update["update_id"]) + 1
            try:
                await self.handle(update)
            except Exception as exc:  # one bad update must not stop the bot's polling
                logger.warning("relay.telegram.update_failed: %s", type(exc).__name__)
            handled += 1
        return handled

    async def run(self, *, idle_seconds: float = 1.0, max_backoff_seconds: float = 30.0) -> None:
        """Poll until :meth:`stop`; failures back off (1 s doubling to 30 s)."""
        backoff = idle_seconds
        while not self._stop.is_set():
            try:
                await self.poll_once()
                backoff = idle_seconds
                delay = 0.0 if self.wait_seconds else idle_seconds
            except Exception as exc:
                logger.warning("relay.telegram.poll_failed: %s", getattr(exc, "message", type(exc).__name__))
                delay = backoff
                backoff = min(backoff * 2, max_backoff_seconds)
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)

    def stop(self) -> None:
        self._stop.set()
