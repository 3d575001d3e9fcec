"""The ``mattermost`` channel: incoming webhooks, or the REST API with buttons (SPEC S6.4).

- ``webhook`` mode POSTs ``{"text", "attachments"}`` (no buttons: webhooks cannot be edited).
- ``bot_api`` mode creates a post (``POST /api/v4/posts``) whose attachment carries Acknowledge
  and Resolve buttons; the post ``id`` is the group's anchor. Status changes edit it
  (``PUT /api/v4/posts/{id}`` with the full post); updates, reminders and escalations are
  replies (``root_id``) and refresh the anchor.

Button clicks come back to ``<public_base_url>/api/integrations/mattermost/actions`` with a
context signed by :func:`sign_mattermost_context` (IncidentRelay's format, so its posts stay
actionable with the same secret); the endpoint (owned by the server) checks it with
:func:`verify_mattermost_action`. The secret is resolved by :func:`mattermost_callback_secret`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

import attrs
import httpx

from relay_adapters.channels._common import (
    EDIT_EVENTS,
    REPLY_EVENTS,
    ChannelEnvironment,
    CommonConfig,
    InboundCallbackError,
    alert_id_text,
    body_text,
    button_actions,
    field_values,
    hmac_hex,
    http_url,
    outbound_client,
    plain_text,
    prefixed_title,
    public_base_url,
    require,
    status_color,
    structure_config,
    title_of,
)
from relay_adapters.channels._http import classify_response, response_snippet, send_request
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

__all__ = [
    "ACTIONS_PATH",
    "MattermostAction",
    "MattermostChannel",
    "MattermostConfig",
    "build_attachment",
    "mattermost_callback_secret",
    "read_mattermost_action",
    "sign_mattermost_context",
    "verify_mattermost_action",
]

logger = logging.getLogger("relay.channels.mattermost")

ACTIONS_PATH: Final = "/api/integrations/mattermost/actions"
_DERIVATION_LABEL: Final = "relay:mattermost:action-secret"
_ACTIONS: Final = ("acknowledge", "resolve")


def _mode(_instance: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and value not in ("webhook", "bot_api"):
        raise ValueError("mode must be webhook or bot_api")


@attrs.frozen(kw_only=True)
class MattermostConfig(CommonConfig):
    """Configuration of a ``mattermost`` channel."""

    mode: Literal["webhook", "bot_api"] | None = attrs.field(default=None, validator=_mode)
    """``webhook`` or ``bot_api``; by default ``bot_api`` when ``api_url``, ``bot_token`` and
    ``channel_id`` are all set (as IncidentRelay decided)."""
    webhook_url: str | None = attrs.field(default=None, validator=http_url, metadata={"secret": True})
    channel: str | None = None
    """Webhook mode: overrides the webhook's channel."""
    username: str | None = None
    icon_url: str | None = None
    api_url: str | None = attrs.field(default=None, validator=http_url)
    bot_token: str | None = attrs.field(default=None, metadata={"secret": True})
    channel_id: str | None = None
    callback_secret: str | None = attrs.field(default=None, metadata={"secret": True})
    """Signs button contexts; default ``mattermost.action_secret``, else derived from secret_key."""

    @property
    def effective_mode(self) -> str:
        if self.mode:
            return self.mode
        return "bot_api" if self.api_url and self.bot_token and self.channel_id else "webhook"


def mattermost_callback_secret(config: Mapping[str, Any], env: ChannelEnvironment) -> str | None:
    """The secret that signs (and verifies) button contexts of a channel (S6.4).

    Order: the channel's ``callback_secret``, the global ``mattermost.action_secret``, then an
    HMAC of ``secret_key``. The action endpoint must call this with the same inputs.
    """
    configured = config.get("callback_secret")
    if configured:
        return str(configured)
    if env.mattermost_action_secret:
        return env.mattermost_action_secret
    if env.secret_key:
        return hmac_hex(env.secret_key, _DERIVATION_LABEL)
    return None


def sign_mattermost_context(secret: str, action: str, alert_id: int | str, channel_id: int | str) -> str:
    """Hex HMAC-SHA256(secret, ``"ir:mm:<action>:<alert_id>:<channel_id>"``)."""
    return hmac_hex(secret, f"ir:mm:{action}:{alert_id}:{channel_id}")


@attrs.frozen(kw_only=True)
class MattermostAction:
    """A verified button click."""

    action: str
    alert_id: int
    channel_id: int
    """Relay's channel id, from the signed context."""
    user_id: str | None
    """Mattermost user id (mapped to a Relay user by ``mattermost_user_id``)."""
    post_id: str | None


def read_mattermost_action(body: Any) -> MattermostAction:
    """Read a click without checking its signature (to find the channel whose secret checks it).

    Raises:
        InboundCallbackError: 400 ``invalid_payload`` for a malformed body.
    """
    _context(body)
    return _action(body)


def _context(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("context"), Mapping):
        raise InboundCallbackError("invalid_payload", "Mattermost action body has no context", status=400)
    context: Mapping[str, Any] = body["context"]
    if context.get("action") not in _ACTIONS or not isinstance(context.get("signature"), str):
        raise InboundCallbackError("invalid_payload", "Mattermost action context is incomplete", status=400)
    try:
        ids = (int(context["alert_id"]), int(context["channel_id"]))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InboundCallbackError(
            "invalid_payload", "Mattermost action context is incomplete", status=400
        ) from exc
    if not all(0 < value < 2**63 for value in ids):
        raise InboundCallbackError(
            "invalid_payload", "Mattermost action context ids are out of range", status=400
        )
    return context


def _action(body: Mapping[str, Any]) -> MattermostAction:
    context = body["context"]
    user_id = body.get("user_id")
    post_id = body.get("post_id")
    return MattermostAction(
        action=str(context["action"]),
        alert_id=int(context["alert_id"]),
        channel_id=int(context["channel_id"]),
        user_id=str(user_id) if user_id else None,
        post_id=str(post_id) if post_id else None,
    )


def verify_mattermost_action(body: Any, secret: str | Sequence[str | None]) -> MattermostAction:
    """Check the integration request Mattermost POSTs for a click.

    Args:
        body: The parsed JSON body.
        secret: The callback secret (:func:`mattermost_callback_secret`), or several candidates
            (e.g. during a secret change); any one matching is enough.

    Raises:
        InboundCallbackError: 400 ``invalid_payload`` for a malformed body; 403
            ``invalid_signature`` when the context signature does not match (constant time).
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("context"), Mapping):
        raise InboundCallbackError("invalid_payload", "Mattermost action body has no context", status=400)
    context = body["context"]
    action = context.get("action")
    signature = context.get("signature")
    try:
        alert_id = int(context["alert_id"])
        channel_id = int(context["channel_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InboundCallbackError(
            "invalid_payload", "Mattermost action context is incomplete", status=400
        ) from exc
    if action not in _ACTIONS or not isinstance(signature, str):
        raise InboundCallbackError("invalid_payload", "Mattermost action context is incomplete", status=400)
    secrets = [secret] if isinstance(secret, str) else [candidate for candidate in secret if candidate]
    matches = [
        hmac.compare_digest(
            sign_mattermost_context(candidate, str(action), alert_id, channel_id).encode(), signature.encode()
        )
        for candidate in secrets
        if candidate
    ]
    if not any(matches):
        raise InboundCallbackError(
            "invalid_signature", "Mattermost action signature does not match", status=403
        )
    user_id = body.get("user_id")
    post_id = body.get("post_id")
    return MattermostAction(
        action=str(action),
        alert_id=alert_id,
        channel_id=channel_id,
        user_id=str(user_id) if user_id else None,
        post_id=str(post_id) if post_id else None,
    )


# --- rendering ----------------------------------------------------------------------------------


def _fields(message: OutboundMessage) -> list[dict[str, Any]]:
    group = message.group
    values = dict(field_values(message))
    fields = [
        {"short": True, "title": label, "value": values[label]}
        for label in ("Team", "Category", "Status", "Severity", "Assignee", "Source")
    ]
    fields.append({"short": True, "title": "Alert ID", "value": alert_id_text(message)})
    if group is not None and group.alert_url:
        fields.append({"short": False, "title": "Open", "value": f"[Open alert]({group.alert_url})"})
    if group is not None and group.event_link:
        fields.append(
            {"short": False, "title": "Source event", "value": f"[Open source event]({group.event_link})"}
        )
    return fields


def _buttons(message: OutboundMessage, secret: str, action_url: str) -> list[dict[str, Any]]:
    group = message.group
    assert group is not None
    buttons = []
    for action in button_actions(message):
        buttons.append(
            {
                "id": f"{'ack' if action == 'acknowledge' else 'resolve'}{group.id}",
                "type": "button",
                "name": "Acknowledge" if action == "acknowledge" else "Resolve",
                "style": "primary" if action == "acknowledge" else "success",
                "integration": {
                    "url": action_url,
                    "context": {
                        "alert_id": group.id,
                        "channel_id": message.channel.id,
                        "action": action,
                        "signature": sign_mattermost_context(secret, action, group.id, message.channel.id),
                    },
                },
            }
        )
    return buttons


def build_attachment(
    message: OutboundMessage, *, secret: str | None = None, action_url: str | None = None
) -> dict[str, Any]:
    """Attachment A of S6.4; with ``secret`` and ``action_url``, the buttons too (bot mode)."""
    group = message.group
    attachment: dict[str, Any] = {
        "fallback": title_of(message),
        "color": status_color(message),
        "title": prefixed_title(message),
    }
    if group is not None and group.alert_url:
        attachment["title_link"] = group.alert_url
    attachment["text"] = body_text(message)
    attachment["fields"] = _fields(message)
    if secret and action_url and group is not None:
        buttons = _buttons(message, secret, action_url)
        if buttons:
            attachment["actions"] = buttons
    return attachment


# --- the channel --------------------------------------------------------------------------------


class MattermostChannel:
    """Relay channel type ``mattermost`` (S6.4)."""

    name: ClassVar[str] = "mattermost"
    label: ClassVar[str] = "Mattermost"
    Config: ClassVar[type[Any]] = MattermostConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=True, supports_actions=True, person_addressed=False
    )

    def __init__(self, *, env: ChannelEnvironment | None = None) -> None:
        self.env = env or ChannelEnvironment()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Post a new message (webhook or ``POST /api/v4/posts``)."""
        config = self._config(message)
        async with outbound_client(message, self.env) as http:
            if config.effective_mode == "webhook":
                return await self._send_webhook(http, message, config)
            return await self._create(http, message, config)

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """Edit the anchor post (status changes) or reply to it and refresh it (S6.1)."""
        config = self._config(message)
        anchor = previous.external_message_id
        if config.effective_mode == "webhook" or not anchor:
            return await self.send(message)
        channel_id = previous.external_channel_id or str(config.channel_id)
        async with outbound_client(message, self.env) as http:
            if message.event_type in EDIT_EVENTS:
                return await self._edit(http, message, config, anchor, channel_id)
            if message.event_type not in REPLY_EVENTS:
                return await self._create(http, message, config)
            reply = await self._create(http, message, config, root_id=anchor)
            edited = True
            try:
                await self._edit(http, message, config, anchor, channel_id)
            except (RetryableDeliveryError, PermanentDeliveryError) as exc:
                # The reply went out; failing now would post it again on retry.
                logger.warning("relay.channel.mattermost.anchor_edit_failed: %s", exc.message)
                edited = False
        return DeliveryResult(
            provider=self.name,
            external_message_id=anchor,
            external_channel_id=channel_id,
            provider_status="sent",
            provider_payload={"reply_id": reply.external_message_id, "anchor_edited": edited},
        )

    # --- internals ------------------------------------------------------------------------------

    def _config(self, message: OutboundMessage) -> MattermostConfig:
        config = structure_config(MattermostConfig, message.channel.config, self.name)
        if config.effective_mode == "webhook":
            require(config.webhook_url, "webhook_url", self.name)
        else:
            require(config.api_url, "api_url", self.name)
            require(config.bot_token, "bot_token", self.name)
            require(config.channel_id, "channel_id", self.name)
        return config

    def _post_body(
        self, message: OutboundMessage, config: MattermostConfig, channel_id: str
    ) -> dict[str, Any]:
        secret = mattermost_callback_secret(message.channel.config, self.env)
        base = public_base_url(message, self.env)
        if button_actions(message) and (not secret or not base):
            missing = "a callback secret" if not secret else "server.public_base_url"
            raise PermanentDeliveryError(f"mattermost buttons need {missing}")
        attachment = build_attachment(
            message, secret=secret, action_url=f"{base}{ACTIONS_PATH}" if base else None
        )
        return {"channel_id": channel_id, "message": "", "props": {"attachments": [attachment]}}

    async def _send_webhook(
        self, http: httpx.AsyncClient, message: OutboundMessage, config: MattermostConfig
    ) -> DeliveryResult:
        assert config.webhook_url is not None
        payload: dict[str, Any] = {"text": plain_text(message), "attachments": [build_attachment(message)]}
        for key in ("channel", "username", "icon_url"):
            value = getattr(config, key)
            if value:
                payload[key] = value
        response = await send_request(
            http, "POST", config.webhook_url, service="mattermost webhook", json=payload
        )
        classify_response(response, service="mattermost webhook", now=message.clock.now())
        return DeliveryResult(
            provider=self.name, provider_status="sent", provider_payload={"mode": "webhook"}
        )

    async def _create(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: MattermostConfig,
        *,
        root_id: str | None = None,
    ) -> DeliveryResult:
        body = self._post_body(message, config, str(config.channel_id))
        if root_id:
            body["root_id"] = root_id
        answer = await self._call(http, message, config, "POST", "/api/v4/posts", body)
        post_id = answer.get("id")
        if not post_id:
            raise PermanentDeliveryError("mattermost answered without a post id")
        return DeliveryResult(
            provider=self.name,
            external_message_id=str(post_id),
            external_channel_id=str(answer.get("channel_id") or config.channel_id),
            provider_status="sent",
            provider_payload={"id": post_id, "channel_id": answer.get("channel_id")},
        )

    async def _edit(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: MattermostConfig,
        post_id: str,
        channel_id: str,
    ) -> DeliveryResult:
        body = {"id": post_id, **self._post_body(message, config, channel_id)}
        answer = await self._call(http, message, config, "PUT", f"/api/v4/posts/{post_id}", body)
        return DeliveryResult(
            provider=self.name,
            external_message_id=str(answer.get("id") or post_id),
            external_channel_id=str(answer.get("channel_id") or channel_id),
            provider_status="updated",
            provider_payload={"id": answer.get("id") or post_id, "channel_id": answer.get("channel_id")},
        )

    async def _call(
        self,
        http: httpx.AsyncClient,
        message: OutboundMessage,
        config: MattermostConfig,
        method: str,
        path: str,
        body: Mapping[str, Any],
    ) -> dict[str, Any]:
        assert config.api_url is not None
        response = await send_request(
            http,
            method,
            f"{config.api_url.rstrip('/')}{path}",
            service="mattermost",
            json=body,
            headers={"Authorization": f"Bearer {config.bot_token}"},
        )
        classify_response(response, service="mattermost", now=message.clock.now())
        try:
            answer = response.json()
        except ValueError as exc:
            raise RetryableDeliveryError(
                f"mattermost answered with no JSON: {response_snippet(response)}"
            ) from exc
        if not isinstance(answer, dict):
            raise RetryableDeliveryError("mattermost answered with unexpected JSON")
        return answer
