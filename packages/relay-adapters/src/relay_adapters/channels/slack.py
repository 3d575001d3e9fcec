"""The ``slack`` channel: incoming webhooks, or the Web API with Block Kit buttons (SPEC S6.5).

- ``webhook`` mode POSTs ``{"text", "blocks"}`` to an incoming-webhook URL; success is 200 with
  the body ``ok``. Incoming webhooks cannot be edited or receive clicks, so the message carries
  the signed Acknowledge/Resolve links (S6.3) as link buttons.
- ``bot_api`` mode calls ``chat.postMessage`` with a header block and a colour-bar attachment
  holding the fields, the message, the links and the ``relay_acknowledge``/``relay_resolve``
  buttons; the message ``ts`` is the group's anchor. Status changes edit it with
  ``chat.update``; updates, reminders and escalations are threaded replies
  (``thread_ts`` + ``reply_broadcast``) and refresh the anchor too.

Web API errors arrive as HTTP 200 ``{"ok": false, "error"}``: permanent, except ``ratelimited``
and Slack's own transient errors.

The interactivity endpoint (owned by the server) verifies requests with
:func:`verify_slack_signature` and reads the click with :func:`parse_slack_action`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal

import attrs
import httpx

from relay_adapters.channels._common import (
    EDIT_EVENTS,
    REPLY_EVENTS,
    ChannelEnvironment,
    CommonConfig,
    InboundCallbackError,
    button_actions,
    field_values,
    header_value,
    http_url,
    outbound_client,
    plain_text,
    require,
    status_color,
    structure_config,
    title_of,
    truncate,
)
from relay_adapters.channels._http import classify_response, parse_retry_after, response_snippet, send_request
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

__all__ = [
    "ACTION_IDS",
    "SIGNATURE_WINDOW_SECONDS",
    "SlackAction",
    "SlackChannel",
    "SlackConfig",
    "build_blocks",
    "parse_slack_action",
    "slack_signature",
    "verify_slack_signature",
]

logger = logging.getLogger("relay.channels.slack")

SIGNATURE_WINDOW_SECONDS: Final = 300
SLACK_API_URL: Final = "https://slack.com/api"
ACTION_IDS: Final = {
    "relay_acknowledge": "acknowledge",
    "relay_resolve": "resolve",
    # Messages posted by IncidentRelay stay actionable.
    "incidentrelay_acknowledge": "acknowledge",
    "incidentrelay_resolve": "resolve",
}
_MESSAGE_LIMIT: Final = 3000
_HEADER_LIMIT: Final = 150
_TRANSIENT_ERRORS: Final = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def _mode(_instance: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and value not in ("webhook", "bot_api"):
        raise ValueError("mode must be webhook or bot_api")


def _bot_token(_instance: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.startswith("xoxb-"):
        raise ValueError("bot_token must be a bot token (xoxb-...)")


@attrs.frozen(kw_only=True)
class SlackConfig(CommonConfig):
    """Configuration of a ``slack`` channel."""

    mode: Literal["webhook", "bot_api"] | None = attrs.field(default=None, validator=_mode)
    """``webhook`` or ``bot_api``; by default ``bot_api`` when a bot token is set."""
    webhook_url: str | None = attrs.field(default=None, validator=http_url, metadata={"secret": True})
    bot_token: str | None = attrs.field(default=None, validator=_bot_token, metadata={"secret": True})
    channel_id: str | None = None
    signing_secret: str | None = attrs.field(default=None, metadata={"secret": True})
    """Verifies interactivity requests (S6.5)."""
    api_url: str = attrs.field(default=SLACK_API_URL, validator=http_url)
    """Web API base URL (tests point it at a local server)."""

    @property
    def effective_mode(self) -> str:
        return self.mode or ("bot_api" if self.bot_token else "webhook")


# --- rendering ----------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Slack mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{url.replace('|', '%7C').replace('>', '%3E')}|{_escape(label)}>"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _button_value(action: str, message: OutboundMessage) -> str:
    alert_id = message.group.id if message.group is not None else None
    return json.dumps(
        {"action": action, "alert_id": alert_id, "channel_id": message.channel.id}, separators=(",", ":")
    )


def _interactive_buttons(message: OutboundMessage) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = []
    for action in button_actions(message):
        if action == "acknowledge":
            buttons.append(
                {
                    "type": "button",
                    "action_id": "relay_acknowledge",
                    "text": _plain("Acknowledge"),
                    "style": "primary",
                    "value": _button_value(action, message),
                }
            )
        else:
            buttons.append(
                {
                    "type": "button",
                    "action_id": "relay_resolve",
                    "text": _plain("Resolve"),
                    "style": "danger",
                    "value": _button_value(action, message),
                    "confirm": {
                        "title": _plain("Resolve this alert?"),
                        "text": {
                            "type": "mrkdwn",
                            "text": f"*{_escape(title_of(message))}* will be resolved.",
                        },
                        "confirm": _plain("Resolve"),
                        "deny": _plain("Cancel"),
                        "style": "danger",
                    },
                }
            )
    return buttons


def _link_buttons(message: OutboundMessage) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = []
    links = message.action_links
    if links.acknowledge:
        buttons.append(
            {
                "type": "button",
                "action_id": "relay_ack_link",
                "text": _plain("Acknowledge"),
                "url": links.acknowledge,
            }
        )
    if links.resolve:
        buttons.append(
            {
                "type": "button",
                "action_id": "relay_resolve_link",
                "text": _plain("Resolve"),
                "url": links.resolve,
            }
        )
    return buttons


def build_blocks(
    message: OutboundMessage, *, interactive: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header block, body blocks)`` of S6.5; body = fields, message, context, actions.

    Args:
        message: What to render.
        interactive: Bot mode: buttons call the interactivity endpoint; otherwise they open the
            signed action links.
    """
    group = message.group
    header = {"type": "header", "text": _plain(truncate(title_of(message), _HEADER_LIMIT))}
    body: list[dict[str, Any]] = [
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}:*\n{_escape(value)}"}
                for label, value in field_values(message)
            ],
        }
    ]
    text = group.message.strip() if group is not None else ""
    if text:
        body.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(_escape(text), _MESSAGE_LIMIT)}}
        )
    context = []
    if group is not None and group.alert_url:
        context.append({"type": "mrkdwn", "text": _link(group.alert_url, "Open alert")})
    if group is not None and group.event_link:
        context.append({"type": "mrkdwn", "text": _link(group.event_link, "Source event")})
    if context:
        body.append({"type": "context", "elements": context})
    buttons = _interactive_buttons(message) if interactive else _link_buttons(message)
    if buttons:
        body.append({"type": "actions", "block_id": "relay_actions", "elements": buttons})
    return header, body


def _headline(message: OutboundMessage) -> str:
    return plain_text(message).split("\n", 1)[0]


def webhook_payload(message: OutboundMessage) -> dict[str, Any]:
    """The incoming-webhook body ``{"text", "blocks"}``."""
    header, body = build_blocks(message, interactive=False)
    return {"text": _headline(message), "blocks": [header, *body]}


def bot_payload(message: OutboundMessage, channel: str) -> dict[str, Any]:
    """The ``chat.postMessage``/``chat.update`` body: header block plus a colour-bar attachment."""
    header, body = build_blocks(message, interactive=True)
    return {
        "channel": channel,
        "text": _headline(message),
        "blocks": [header],
        "attachments": [{"color": status_color(message), "blocks": body}],
    }


# --- the channel --------------------------------------------------------------------------------


class SlackChannel:
    """Relay channel type ``slack`` (S6.5)."""

    name: ClassVar[str] = "slack"
    label: ClassVar[str] = "Slack"
    Config: ClassVar[type[Any]] = SlackConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=True, supports_actions=True, person_addressed=False
    )

    def __init__(self, *, env: ChannelEnvironment | None = None) -> None:
        self.env = env or ChannelEnvironment()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Post a new message (webhook or ``chat.postMessage``)."""
        config = self._config(message)
        async with outbound_client(message, self.env) as http:
            if config.effective_mode == "webhook":
                return await self._send_webhook(http, message, config)
            return await self._post(http, message, config)

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """Edit the anchor (status changes) or reply in its thread and refresh it (S6.1)."""
        config = self._config(message)
        anchor = previous.external_message_id
        if config.effective_mode == "webhook" or not anchor:
            return await self.send(message)
        channel = previous.external_channel_id or str(config.channel_id)
        async with outbound_client(message, self.env) as http:
            if message.event_type in EDIT_EVENTS:
                return await self._edit(http, message, config, channel, anchor)
            if message.event_type not in REPLY_EVENTS:
                return await self._post(http, message, config)
            reply = await self._post(http, message, config, thread_ts=anchor)
            edited = True
            try:
                await self._edit(http, message, config, channel, anchor)
            except (RetryableDeliveryError, PermanentDeliveryError) as exc:
                # The reply went out; failing now would post it again on retry.
                logger.warning("relay.channel.slack.anchor_edit_failed: %s", exc.message)
                edited = False
        return DeliveryResult(
            provider=self.name,
            external_message_id=anchor,
            external_channel_id=channel,
            provider_status="sent",
            provider_payload={"reply_ts": reply.external_message_id, "anchor_edited": edited},
        )

    # --- internals ------------------------------------------------------------------------------

    def _config(self, message: OutboundMessage) -> SlackConfig:
        config = structure_config(SlackConfig, message.channel.config, self.name)
        if config.effective_mode == "webhook":
            require(config.webhook_url, "webhook_url", self.name)
        else:
            require(config.bot_token, "bot_token", self.name)
            require(config.channel_id, "channel_id", self.name)
        return config

    async def _send_webhook(
        self, http: httpx.AsyncClient, message: OutboundMessage, config: SlackConfig
    ) -> DeliveryResult:
        assert config.webhook_url is not None
        response = await send_request(
            http, "POST", config.webhook_url, service="slack webhook", json=webhook_payload(message)
        )
        classify_response(response, service="slack webhook", now=message.clock.now())
        answer = response.text.strip()
        if answer != "ok":
            raise PermanentDeliveryError(f"slack webhook answered {answer[:200]!r} instead of ok")
        return DeliveryResult(
            provider=self.name, provider_status="sent", provider_payload={"mode": "webhook"}
        )

    async def _post(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: SlackConfig,
        *,
        thread_ts: str | None = None,
    ) -> DeliveryResult:
        payload = bot_payload(message, str(config.channel_id))
        if thread_ts is not None:
            payload["thread_ts"] = thread_ts
            payload["reply_broadcast"] = True
        answer = await self._call(http, message, config, "chat.postMessage", payload)
        return DeliveryResult(
            provider=self.name,
            external_message_id=str(answer.get("ts") or "") or None,
            external_channel_id=str(answer.get("channel") or config.channel_id),
            provider_status="sent",
            provider_payload={"ok": True, "channel": answer.get("channel"), "ts": answer.get("ts")},
        )

    async def _edit(
        self, http: httpx.AsyncClient, message: OutboundMessage, config: SlackConfig, channel: str, ts: str
    ) -> DeliveryResult:
        payload = bot_payload(message, channel)
        payload["ts"] = ts
        answer = await self._call(http, message, config, "chat.update", payload)
        return DeliveryResult(
            provider=self.name,
            external_message_id=str(answer.get("ts") or ts),
            external_channel_id=str(answer.get("channel") or channel),
            provider_status="updated",
            provider_payload={"ok": True, "channel": answer.get("channel"), "ts": answer.get("ts")},
        )

    async def _call(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: SlackConfig,
        method: str,
        payload: Mapping[str, Any],
    ) -> dict[str, Any]:
        url = f"{config.api_url.rstrip('/')}/{method}"
        response = await send_request(
            http,
            "POST",
            url,
            service=f"slack {method}",
            json=payload,
            headers={
                "Authorization": f"Bearer {config.bot_token}",
                "Content-Type": "application/json; charset=utf-8",
            },
        )
        classify_response(response, service=f"slack {method}", now=message.clock.now())
        try:
            answer = response.json()
        except ValueError as exc:
            raise RetryableDeliveryError(
                f"slack {method} answered with no JSON: {response_snippet(response)}"
            ) from exc
        if not isinstance(answer, dict):
            raise RetryableDeliveryError(f"slack {method} answered with unexpected JSON")
        if answer.get("ok") is True:
            return answer
        error = str(answer.get("error") or "unknown_error")
        if error in _TRANSIENT_ERRORS:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=message.clock.now())
            raise RetryableDeliveryError(f"slack {method} failed: {error}", retry_after=retry_after)
        raise PermanentDeliveryError(f"slack {method} failed: {error}")


# --- interactivity (the endpoint lives in relay_server) -----------------------------------------


@attrs.frozen(kw_only=True)
class SlackAction:
    """One button click from Slack's interactivity payload (``type: block_actions``)."""

    action: str
    """``acknowledge`` or ``resolve``."""
    alert_id: int
    channel_id: int
    """Relay's channel id, from the button value."""
    user_id: str
    """Slack user id (mapped to a Relay user by ``slack_user_id``)."""
    slack_channel_id: str | None
    message_ts: str | None
    response_url: str | None


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """``v0=`` + hex HMAC-SHA256(signing_secret, ``"v0:<timestamp>:<body>"``)."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def verify_slack_signature(
    headers: Mapping[str, str] | Any,
    body: bytes,
    signing_secret: str,
    now: dt.datetime | float,
) -> None:
    """Check ``X-Slack-Signature`` over the raw body within the 300 s window (S6.5).

    Raises:
        InboundCallbackError: 401 ``stale_request`` when |now − timestamp| > 300 s; 401
            ``invalid_signature`` when headers are missing or the signature differs.
    """
    timestamp = header_value(headers, "X-Slack-Request-Timestamp")
    signature = header_value(headers, "X-Slack-Signature")
    if not timestamp or not signature or not signing_secret:
        raise InboundCallbackError("invalid_signature", "Slack signature headers are missing")
    try:
        sent_at = int(timestamp.strip())
    except ValueError as exc:
        raise InboundCallbackError("invalid_signature", "Slack request timestamp is not a number") from exc
    current = now.timestamp() if isinstance(now, dt.datetime) else float(now)
    if abs(current - sent_at) > SIGNATURE_WINDOW_SECONDS:
        raise InboundCallbackError("stale_request", "Slack request timestamp is outside the 300 s window")
    expected = slack_signature(signing_secret, timestamp.strip(), body)
    if not hmac.compare_digest(expected.encode("utf-8"), signature.strip().encode("utf-8")):
        raise InboundCallbackError("invalid_signature", "Slack signature does not match")


def parse_slack_action(payload: Mapping[str, Any] | str | bytes) -> SlackAction:
    """Read a ``block_actions`` payload (the ``payload`` form field, raw or parsed).

    Raises:
        InboundCallbackError: 400 ``invalid_payload`` (not JSON, wrong ``type``, missing user);
            400 ``invalid_action`` (not exactly one Relay action, or a bad button value).
    """
    data: Any = payload
    if isinstance(payload, bytes | str):
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        if text.startswith("payload="):
            text = urllib.parse.parse_qs(text).get("payload", [""])[0]
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InboundCallbackError("invalid_payload", "Slack payload is not JSON", status=400) from exc
    if not isinstance(data, Mapping) or data.get("type") != "block_actions":
        raise InboundCallbackError("invalid_payload", "Slack payload type must be block_actions", status=400)
    actions = data.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], Mapping):
        raise InboundCallbackError("invalid_action", "exactly one action is expected", status=400)
    clicked = actions[0]
    action = ACTION_IDS.get(str(clicked.get("action_id") or ""))
    if action is None:
        raise InboundCallbackError("invalid_action", "unknown action", status=400)
    try:
        value = json.loads(str(clicked.get("value") or ""))
        alert_id = int(value["alert_id"])
        channel_id = int(value["channel_id"])
        value_action = str(value.get("action") or action)
    except (ValueError, KeyError, TypeError) as exc:
        raise InboundCallbackError("invalid_action", "the button value is malformed", status=400) from exc
    if value_action != action:
        raise InboundCallbackError("invalid_action", "the button value names another action", status=400)
    user = data.get("user")
    user_id = user.get("id") if isinstance(user, Mapping) else None
    if not user_id:
        raise InboundCallbackError("invalid_payload", "Slack payload has no user", status=400)
    channel = data.get("channel")
    container = data.get("container")
    message_ts = container.get("message_ts") if isinstance(container, Mapping) else None
    return SlackAction(
        action=action,
        alert_id=alert_id,
        channel_id=channel_id,
        user_id=str(user_id),
        slack_channel_id=str(channel["id"]) if isinstance(channel, Mapping) and channel.get("id") else None,
        message_ts=str(message_ts) if message_ts else None,
        response_url=str(data["response_url"]) if data.get("response_url") else None,
    )
