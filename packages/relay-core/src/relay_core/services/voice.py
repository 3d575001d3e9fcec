"""The ``voice_call`` channel and voice callbacks (SPEC S6.12, S7.3–S7.6).

Providers keep IncidentRelay's synchronous class API; calls run in a worker thread
under a hard deadline so a hanging provider never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from relay_core.domain import constants as c
from relay_core.domain.dtmf import dtmf_menu, resolve_dtmf_action
from relay_core.domain.errors import Conflict, NotFound, PermissionDenied, RelayError
from relay_core.domain.model import AlertEvent, CallbackEvent, CallbackReceipt
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.ports.dispatch import VoiceProviderLoader
from relay_core.services.common import Writer
from relay_core.services.context import Context
from relay_core.voice import (
    TERMINAL_CALL_STATUSES,
    BaseVoiceProvider,
    PermanentProviderError,
    VoiceCallCallbackEvent,
    VoiceCallRequest,
    mask_phone,
)

DEFAULT_TEXT_TEMPLATE = "Relay alert {alert_id}. {title}. Severity {severity}. {message}. {dtmf_menu}"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def render_voice_text(template: str, values: Mapping[str, str]) -> str:
    """Fill placeholders (unknown ones stay literal), drop empty sentences, collapse spaces."""
    text = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    sentences = [s.strip() for s in text.split(".")]
    text = ". ".join(s for s in sentences if s)
    text = re.sub(r"\s+", " ", text).strip()
    return text + "." if text and not text.endswith((".", "!", "?")) else text


@attrs.frozen(kw_only=True)
class VoiceCallConfig:
    provider: str = ""
    provider_config: Mapping[str, Any] = attrs.field(factory=dict)
    notify_on_severities: tuple[str, ...] = ()
    test_phone: str | None = None
    phone: str | None = None
    dtmf_actions: Mapping[str, str] = attrs.field(factory=lambda: dict(c.DEFAULT_DTMF_ACTIONS))
    text_template: str = DEFAULT_TEXT_TEMPLATE
    callback_secret: str | None = None


class VoiceCallChannel:
    """Places calls through the channel's configured provider."""

    name: ClassVar[str] = "voice_call"
    label: ClassVar[str] = "Voice call"
    Config: ClassVar[type[Any]] = VoiceCallConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=False, supports_actions=True, person_addressed=True
    )

    def __init__(
        self,
        loader: VoiceProviderLoader,
        *,
        public_base_url: str,
        default_provider: str = "stub",
        default_provider_config: Mapping[str, Any] | None = None,
        call_timeout_seconds: float = 30.0,
    ) -> None:
        self._loader = loader
        self._base = public_base_url.rstrip("/")
        self._default_provider = default_provider
        self._default_config = dict(default_provider_config or {})
        self._timeout = call_timeout_seconds

    def provider_for(self, config: Mapping[str, Any]) -> BaseVoiceProvider:
        name = str(config.get("provider") or self._default_provider)
        cls = self._loader.load(name)
        provider_config = dict(config.get("provider_config") or self._default_config)
        provider: BaseVoiceProvider = cls(provider_config)
        return provider

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        cfg = message.channel.config
        provider = self.provider_for(cfg)
        try:
            type(provider).validate_config(dict(provider.config))
        except RuntimeError as exc:
            raise PermanentDeliveryError(str(exc)) from exc
        recipient = message.recipient
        phone = cfg.get("test_phone") if message.event_type == c.EV_TEST else None
        phone = phone or (recipient.phone if recipient else None) or cfg.get("phone")
        if not phone:
            raise PermanentDeliveryError("voice_call phone is missing: set phone on the assigned user")
        dtmf_actions = dict(cfg.get("dtmf_actions") or c.DEFAULT_DTMF_ACTIONS)
        group = message.group
        values = {
            "alert_id": str(group.id) if group and message.event_type != c.EV_TEST else "test",
            "event_type": message.event_type,
            "title": group.title if group else "Test notification from Relay",
            "message": group.message if group else "",
            "severity": group.severity if group else "",
            "status": group.status if group else "",
            "team": group.team_name if group else "",
            "category": (group.category or "") if group else "",
            "assignee": (group.assignee or "") if group else "",
            "source": group.source if group else "",
            "dtmf_menu": dtmf_menu(dtmf_actions),
        }
        text = render_voice_text(str(cfg.get("text_template") or DEFAULT_TEXT_TEMPLATE), values)
        secret = cfg.get("callback_secret")
        request = VoiceCallRequest(
            phone=str(phone),
            text=text,
            alert_id=group.id if group else None,
            event_type=message.event_type,
            callback_url=f"{self._base}/api/integrations/voice/callback/{message.channel.id}/{secret}"
            if secret
            else None,
            callback_secret=secret,
            severity=group.severity if group else None,
            title=group.title if group else None,
            message=group.message if group else None,
            assignee=group.assignee if group else None,
            team=group.team_name if group else None,
            action_hints=dtmf_actions,
            metadata={
                "channel_id": message.channel.id,
                "channel_name": message.channel.name,
                "channel_type": message.channel.type,
                "idempotency_key": message.idempotency_key,
            },
        )
        try:
            result = await asyncio.wait_for(asyncio.to_thread(provider.place_call, request), self._timeout)
        except TimeoutError as exc:
            raise RetryableDeliveryError(f"voice provider timed out after {self._timeout:g} s") from exc
        except PermanentProviderError as exc:
            raise PermanentDeliveryError(str(exc)) from exc
        return DeliveryResult(
            provider=f"voice_call:{provider.name}",
            external_message_id=result.call_id,
            external_channel_id=str(message.channel.id),
            provider_status=result.status,
            provider_payload={**dict(result.raw), "to": mask_phone(str(phone))},
        )

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        return previous


class CallbackRejected(RelayError):
    code = "callback_rejected"
    status = 400


@attrs.frozen(kw_only=True)
class CallbackOutcome:
    status: str
    events: list[dict[str, Any]]


async def handle_voice_callback(
    ctx: Context,
    channel_id: int,
    secret: str | None,
    *,
    payload: Any,
    headers: Mapping[str, str],
    raw_body: bytes,
    query_args: Mapping[str, Any],
) -> CallbackOutcome:
    """Process a provider callback (S7.5): checks, replay guard, events, DTMF action (S7.6)."""
    from relay_core.services.lifecycle import acknowledge_in, resolve_in

    now = ctx.clock.now()
    sender = ctx.senders.get("voice_call")
    async with ctx.uow_factory() as uow:
        channel = await uow.channels.get(channel_id)
        if channel is None:
            raise NotFound("voice channel not found")
        if channel.channel_type != "voice_call":
            raise RelayError(
                f"channel {channel_id} is not a voice_call channel", code="channel_type_mismatch"
            )
        expected = channel.callback_secret or ""
        if not secret or not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
            raise PermissionDenied("voice callback rejected", code="voice_callback_rejected")
        digest = hashlib.sha256(raw_body).hexdigest()
        seen = await uow.callback_receipts.first(channel_id=channel.id, digest=digest, expires_at__gt=now)
        if seen is not None:
            raise Conflict("callback already processed", code="duplicate_callback")
        if not isinstance(sender, VoiceCallChannel):
            raise RelayError("voice_call channel is not available", code="voice_unavailable")
        provider = sender.provider_for(channel.config)
        try:
            events: list[VoiceCallCallbackEvent] = await asyncio.to_thread(
                provider.parse_callback, payload, dict(headers), raw_body, dict(query_args)
            )
        except Exception as exc:
            raise CallbackRejected(str(exc)) from exc
        await uow.callback_receipts.add(
            CallbackReceipt(
                channel_id=channel.id,
                digest=digest,
                expires_at=now + dt.timedelta(seconds=ctx.settings.callback_replay_window_seconds),
            )
        )
        writer = Writer(ctx, uow, now)
        items: list[dict[str, Any]] = []
        dtmf_actions = dict(channel.config.get("dtmf_actions") or ctx.settings.dtmf_actions)
        for ev in events:
            items.append(
                await _apply_event(
                    ctx, uow, writer, channel.id, ev, dtmf_actions, now, acknowledge_in, resolve_in
                )
            )
        await uow.commit()
    await ctx.dispatcher.enqueue([i.id for i in writer.intents])
    return CallbackOutcome(status="processed" if events else "ignored", events=items)


async def _apply_event(
    ctx: Context,
    uow: Any,
    writer: Writer,
    channel_id: int,
    ev: VoiceCallCallbackEvent,
    dtmf_actions: Mapping[str, str],
    now: dt.datetime,
    acknowledge_in: Any,
    resolve_in: Any,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "call_id": ev.call_id,
        "event_type": ev.event_type,
        "status": ev.status,
        "digit": ev.digit,
        "action": None,
        "alert_id": None,
        "delivery_id": None,
        "result": None,
    }
    record = await uow.notifications.first(channel_id=channel_id, external_message_id=ev.call_id)
    if record is None:
        item["status"] = "notification_not_found"
        item["result"] = "notification_not_found"
        return item
    item["alert_id"] = record.group_id
    item["delivery_id"] = record.id
    status = record.provider_status
    if ev.status and not (status in TERMINAL_CALL_STATUSES and ev.status not in TERMINAL_CALL_STATUSES):
        status = ev.status
    await uow.notifications.update(
        attrs.evolve(
            record,
            provider_status=status,
            provider_payload={**dict(record.provider_payload), "last_callback": dict(ev.raw)},
            callback_count=record.callback_count + 1,
            last_callback_at=now,
            updated_at=now,
        )
    )
    action, reason = resolve_dtmf_action(
        event_type=ev.event_type, digit=ev.digit, action=ev.action, dtmf_actions=dtmf_actions
    )
    item["action"] = action
    result = "recorded"
    if ev.event_type == "error":
        result = "error_recorded"
    elif action is not None and record.group_id is not None:
        user_id = record.recipient_user_id
        try:
            if action == c.ACTION_ACKNOWLEDGE:
                outcome = await acknowledge_in(uow, writer, record.group_id, user_id=user_id, via="voice")
            else:
                outcome = await resolve_in(ctx, uow, writer, record.group_id, user_id=user_id, via="voice")
            result = "applied" if outcome.changed else "ignored"
        except Conflict:
            result = "ignored"
    elif ev.event_type == "dtmf":
        result = "ignored"
    item["result"] = result
    parts = [f"event={ev.event_type}"]
    if ev.status:
        parts.append(f"status={ev.status}")
    if ev.digit:
        parts.append(f"digit={ev.digit}")
    if action:
        parts.append(f"action={action}")
    if record.group_id is not None:
        await uow.events.add(
            AlertEvent(
                group_id=record.group_id,
                event_type=f"voice_{ev.event_type}"
                if ev.event_type in ("status", "dtmf", "error")
                else "voice_status",
                message=", ".join(parts) + (f", message={ev.message}" if ev.message else ""),
                user_id=record.recipient_user_id,
                data={"call_id": ev.call_id, "result": result, "reason": reason},
                created_at=now,
            )
        )
    await uow.callbacks.add(
        CallbackEvent(
            notification_id=record.id,
            channel_id=channel_id,
            kind="voice",
            event_type=ev.event_type,
            provider_status=ev.status,
            digit=ev.digit,
            action=action,
            message=ev.message,
            payload=dict(ev.raw),
            result=result,
            created_at=now,
        )
    )
    return item
