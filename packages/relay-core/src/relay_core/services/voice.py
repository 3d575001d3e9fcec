"""The ``voice_call`` channel and voice callbacks (SPEC S6.12, S7.3–S7.6).

Providers keep IncidentRelay's synchronous class API; calls run in a worker thread
under a hard deadline so a hanging provider never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import re
import uuid
from collections.abc import Callable, Mapping
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
from relay_core.ports.metrics import error_result
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
#: Event types a voice channel calls for (S6.12); others are skipped ``unsupported_event``.
CALLED_EVENTS = frozenset({c.EV_NOTIFICATION, c.EV_REMINDER, c.EV_ESCALATION, c.EV_TEST})
#: Polling window and batch of ``voice_status_poll`` (S7.7).
POLL_MAX_AGE = dt.timedelta(hours=1)
POLL_BATCH_PER_PROVIDER = 20

log = logging.getLogger("relay.voice")


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
        text_template: str = "",
    ) -> None:
        self._loader = loader
        self._text_template = text_template or DEFAULT_TEXT_TEMPLATE
        self._base = public_base_url.rstrip("/")
        self._default_provider = default_provider
        self._default_config = dict(default_provider_config or {})
        self._timeout = call_timeout_seconds

    def provider_name(self, config: Mapping[str, Any]) -> str:
        return str(config.get("provider") or self._default_provider).strip().lower()

    def provider_for(self, config: Mapping[str, Any], *, channel_id: int | None = None) -> BaseVoiceProvider:
        """Build the channel's provider: ``${ENV}`` resolved and the config validated when the
        loader can (``relay_adapters``' loader ``create``), else constructed as configured.

        Raises:
            RuntimeError: the loader's or the provider's ``validate_config`` message.
        """
        name = self.provider_name(config)
        provider_config = dict(config.get("provider_config") or self._default_config)
        create = getattr(self._loader, "create", None)
        if callable(create):
            referenced_by = f"channel {channel_id}" if channel_id is not None else None
            built: BaseVoiceProvider = create(name, provider_config, referenced_by=referenced_by)
            return built
        cls = self._loader.load(name)
        cls.validate_config(provider_config)
        provider: BaseVoiceProvider = cls(provider_config)
        return provider

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        cfg = message.channel.config
        if message.event_type not in CALLED_EVENTS:
            return DeliveryResult(provider="voice_call", skipped=True, skip_reason="unsupported_event")
        try:
            provider = self.provider_for(cfg, channel_id=message.channel.id)
        except RuntimeError as exc:  # not found, bad name, or the provider's config message
            raise PermanentDeliveryError(str(exc)) from exc
        recipient = message.recipient
        if message.event_type == c.EV_TEST:
            phone = cfg.get("test_phone") or (recipient.phone if recipient else None) or cfg.get("phone")
        else:
            if recipient is None:
                return DeliveryResult(
                    provider=f"voice_call:{provider.name}", skipped=True, skip_reason="no_assignee"
                )
            phone = recipient.phone or cfg.get("phone")
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
        text = render_voice_text(str(cfg.get("text_template") or self._text_template), values)
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
            log.warning("voice provider timed out after %g s (channel %s)", self._timeout, message.channel.id)
            raise RetryableDeliveryError(f"voice provider timed out after {self._timeout:g} s") from exc
        except PermanentProviderError as exc:
            log.warning("voice provider error: %s (channel %s)", exc, message.channel.id)
            raise PermanentDeliveryError(str(exc)) from exc
        except Exception as exc:
            log.warning(
                "voice provider error: %s: %s (channel %s)", type(exc).__name__, exc, message.channel.id
            )
            raise
        if not result.call_id:
            log.warning(
                "voice provider returned no call_id; callbacks cannot be matched (channel %s)",
                message.channel.id,
            )
        log.info(
            "voice call placed: provider=%s call_id=%s to=%s status=%s",
            provider.name,
            result.call_id,
            mask_phone(str(phone)),
            result.status,
        )
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


class ProviderUnavailable(RelayError):
    """The channel's provider cannot be loaded while processing a callback (S7.5 step 5)."""

    code = "internal_error"
    status = 500


async def _handle_voice_callback(
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
        if channel is None or channel.deleted_at is not None:
            raise NotFound("voice channel not found")
        if channel.channel_type != "voice_call":
            raise RelayError(
                f"channel {channel_id} is not a voice_call channel", code="channel_type_mismatch"
            )
        expected = channel.callback_secret or ""
        if not secret or not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
            log.warning("voice callback rejected: wrong secret (channel %s)", channel_id)
            raise PermissionDenied("voice callback rejected", code="voice_callback_rejected")
        digest = hashlib.sha256(raw_body).hexdigest()
        seen = await uow.callback_receipts.first(channel_id=channel.id, digest=digest, expires_at__gt=now)
        if seen is not None:
            raise Conflict("callback already processed", code="duplicate_callback")
        if not isinstance(sender, VoiceCallChannel):
            raise RelayError("voice_call channel is not available", code="voice_unavailable")
        try:
            provider = sender.provider_for(channel.config, channel_id=channel.id)
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "voice callback: cannot load provider for channel %s: %s (error_id %s)",
                channel_id,
                exc,
                error_id,
            )
            raise ProviderUnavailable(
                "voice provider could not be loaded", extra={"error_id": error_id}
            ) from exc
        try:
            events: list[VoiceCallCallbackEvent] = await asyncio.to_thread(
                provider.parse_callback, payload, dict(headers), raw_body, dict(query_args)
            )
        except Exception as exc:
            log.warning(
                "voice callback rejected by provider %s: %s (channel %s)", provider.name, exc, channel_id
            )
            raise CallbackRejected(str(exc)) from exc
        await uow.callback_receipts.add(
            CallbackReceipt(
                channel_id=channel.id,
                digest=digest,
                expires_at=now + dt.timedelta(seconds=ctx.settings.callback_replay_window_seconds),
            )
        )
        if not events:
            log.info("voice callback ignored: provider returned no events (channel %s)", channel_id)
        writer = Writer(ctx, uow, now)
        items: list[dict[str, Any]] = []
        dtmf_actions = dict(channel.config.get("dtmf_actions") or ctx.settings.dtmf_actions)
        for ev in events:
            items.append(
                await _apply_event(
                    ctx,
                    uow,
                    writer,
                    channel.id,
                    ev,
                    dtmf_actions,
                    now,
                    acknowledge_in,
                    resolve_in,
                    provider_name=provider.name,
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
    *,
    provider_name: str | None = None,
    source: str = "callback",
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
        log.warning("voice callback for unknown call_id %s (channel %s)", ev.call_id, channel_id)
        item["status"] = "notification_not_found"
        item["result"] = "notification_not_found"
        return item
    if provider_name and record.provider and record.provider != f"voice_call:{provider_name}":
        log.warning(
            "voice callback provider mismatch: call %s was placed by %s, channel %s now uses %s",
            ev.call_id,
            record.provider,
            channel_id,
            provider_name,
        )
    item["alert_id"] = record.group_id
    item["delivery_id"] = record.id
    status = record.provider_status
    if ev.status and not (status in TERMINAL_CALL_STATUSES and ev.status not in TERMINAL_CALL_STATUSES):
        status = ev.status
    item["status"] = status
    await uow.notifications.update(
        attrs.evolve(
            record,
            provider_status=status,
            provider_payload={**dict(record.provider_payload), f"last_{source}": dict(ev.raw)},
            last_error=ev.message if ev.event_type == "error" else record.last_error,
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
        log.warning("voice provider error: %s (call %s, channel %s)", ev.message, ev.call_id, channel_id)
    elif (
        action is not None
        and record.group_id is not None
        and not await _may_respond(uow, record.group_id, record.recipient_user_id)
    ):
        result = "permission_denied"
        log.warning(
            "voice dtmf action %s refused: the called user has no responder rights on alert %s",
            action,
            record.group_id,
        )
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
        log.info(
            "voice dtmf action %s on alert %s: %s (call %s)", action, record.group_id, result, ev.call_id
        )
    elif ev.event_type == "dtmf":
        result = "ignored"
        if reason == "digit_not_mapped":
            log.warning("voice dtmf digit not mapped: digit=%s channel=%s", ev.digit, channel_id)
        elif reason == "unknown_action":
            log.warning("voice dtmf action not recognised: action=%s channel=%s", ev.action, channel_id)
        else:
            log.warning(
                "voice dtmf event without digit or action (call %s, channel %s)", ev.call_id, channel_id
            )
    item["result"] = result
    parts = [f"event={ev.event_type}"]
    if status:
        parts.append(f"status={status}")
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
                data={"call_id": ev.call_id, "result": result, "reason": reason, "source": source},
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


async def _may_respond(uow: Any, group_id: int, user_id: int | None) -> bool:
    """The called user may acknowledge/resolve: active, and admin or responder/manager of the team.

    A call to the channel's fallback ``phone`` has no user: the channel owner chose that number.
    """
    if user_id is None:
        return True
    user = await uow.users.get(user_id)
    if user is None or not user.active:
        return False
    if user.is_admin:
        return True
    group = await uow.alert_groups.get(group_id)
    if group is None:
        return False
    membership = await uow.team_memberships.first(team_id=group.team_id, user_id=user_id)
    return membership is not None and membership.role in (c.TEAM_RESPONDER, c.TEAM_MANAGER)


def _polled_only(provider: BaseVoiceProvider) -> bool:
    caps = provider.capabilities
    return bool(caps.status_polling and not caps.status_callback)


async def poll_voice_calls(
    ctx: Context, *, now: dt.datetime | None = None, timeout_seconds: float = 30.0
) -> int:
    """The ``voice_status_poll`` job (S7.7): ask polling-only providers for call statuses.

    Notifications of ``voice_call`` channels whose provider declares ``status_polling`` and no
    ``status_callback``, with a non-terminal status and younger than one hour, at most 20 per
    provider per run; a changed status is stored as a status callback would store it.

    Returns:
        The number of calls whose status changed.
    """
    sender = ctx.senders.get("voice_call")
    if not isinstance(sender, VoiceCallChannel):
        return 0
    now = now or ctx.clock.now()
    work: list[tuple[int, BaseVoiceProvider, list[str]]] = []
    per_provider: dict[str, int] = {}
    async with ctx.uow_factory() as uow:
        for channel in await uow.channels.find(channel_type="voice_call"):
            if channel.deleted_at is not None:
                continue
            try:
                provider = sender.provider_for(channel.config, channel_id=channel.id)
            except Exception as exc:
                log.warning("voice status poll: channel %s provider unavailable: %s", channel.id, exc)
                continue
            if not _polled_only(provider):
                continue
            used = per_provider.get(provider.name, 0)
            room = POLL_BATCH_PER_PROVIDER - used
            if room <= 0:
                continue
            records = await uow.notifications.find(
                channel_id=channel.id, created_at__gte=now - POLL_MAX_AGE, order_by="-created_at"
            )
            call_ids = [
                r.external_message_id
                for r in records
                if r.external_message_id and r.provider_status not in TERMINAL_CALL_STATUSES
            ][:room]
            if call_ids:
                per_provider[provider.name] = used + len(call_ids)
                work.append((channel.id, provider, call_ids))
    changed = 0
    for channel_id, provider, call_ids in work:
        for call_id in call_ids:
            try:
                result = await asyncio.wait_for(
                    asyncio.to_thread(provider.get_call_status, call_id), timeout_seconds
                )
            except Exception as exc:
                log.warning("voice status poll failed for call %s: %s: %s", call_id, type(exc).__name__, exc)
                continue
            changed += await _store_polled_status(ctx, channel_id, call_id, result.status, dict(result.raw))
    return changed


async def _store_polled_status(
    ctx: Context, channel_id: int, call_id: str, status: str, raw: dict[str, Any]
) -> int:
    from relay_core.services.lifecycle import acknowledge_in, resolve_in

    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        record = await uow.notifications.first(channel_id=channel_id, external_message_id=call_id)
        if record is None or not status or status == record.provider_status:
            return 0
        if record.provider_status in TERMINAL_CALL_STATUSES:
            return 0
        writer = Writer(ctx, uow, now)
        event = VoiceCallCallbackEvent(call_id=call_id, event_type="status", status=status, raw=raw)
        await _apply_event(
            ctx, uow, writer, channel_id, event, {}, now, acknowledge_in, resolve_in, source="poll"
        )
        await uow.commit()
    return 1


_TERMINAL_SMS_STATUSES = frozenset({"delivered", "failed", "undelivered", "rejected"})


async def _handle_sms_callback(
    ctx: Context,
    channel_id: int,
    secret: str | None,
    *,
    provider_for: Callable[[Mapping[str, Any]], Any],
    payload: Any,
    headers: Mapping[str, str],
    raw_body: bytes,
    query_args: Mapping[str, Any],
) -> CallbackOutcome:
    """Process an SMS provider callback (S7.9) with the checks of S7.5; replies are P2 (recorded).

    Args:
        provider_for: Builds the channel's SMS provider from its config (the shell's loader).
    """
    now = ctx.clock.now()
    async with ctx.uow_factory() as uow:
        channel = await uow.channels.get(channel_id)
        if channel is None or channel.deleted_at is not None:
            raise NotFound("sms channel not found")
        if channel.channel_type != "sms":
            raise RelayError(f"channel {channel_id} is not a sms channel", code="channel_type_mismatch")
        expected = channel.callback_secret or ""
        if not secret or not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
            log.warning("sms callback rejected: wrong secret (channel %s)", channel_id)
            raise PermissionDenied("sms callback rejected", code="sms_callback_rejected")
        digest = hashlib.sha256(raw_body).hexdigest()
        if await uow.callback_receipts.first(channel_id=channel.id, digest=digest, expires_at__gt=now):
            raise Conflict("callback already processed", code="duplicate_callback")
        try:
            provider = provider_for(channel.config)
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "sms callback: cannot load provider for channel %s: %s (error_id %s)",
                channel_id,
                exc,
                error_id,
            )
            raise ProviderUnavailable(
                "sms provider could not be loaded", extra={"error_id": error_id}
            ) from exc
        try:
            events = await asyncio.to_thread(
                provider.parse_callback, payload, dict(headers), raw_body, dict(query_args)
            )
        except Exception as exc:
            log.warning("sms callback rejected by provider: %s (channel %s)", exc, channel_id)
            raise CallbackRejected(str(exc)) from exc
        await uow.callback_receipts.add(
            CallbackReceipt(
                channel_id=channel.id,
                digest=digest,
                expires_at=now + dt.timedelta(seconds=ctx.settings.callback_replay_window_seconds),
            )
        )
        if not events:
            log.info("sms callback ignored: provider returned no events (channel %s)", channel_id)
        items: list[dict[str, Any]] = []
        for ev in events:
            item: dict[str, Any] = {
                "message_id": ev.message_id,
                "event_type": ev.event_type,
                "status": ev.status,
                "alert_id": None,
                "delivery_id": None,
                "result": None,
            }
            record = await uow.notifications.first(channel_id=channel.id, external_message_id=ev.message_id)
            if record is None:
                log.warning("sms callback for unknown message_id %s (channel %s)", ev.message_id, channel_id)
                item["status"] = item["result"] = "notification_not_found"
                items.append(item)
                continue
            status = record.provider_status
            if ev.status and not (
                status in _TERMINAL_SMS_STATUSES and ev.status not in _TERMINAL_SMS_STATUSES
            ):
                status = ev.status
            await uow.notifications.update(
                attrs.evolve(
                    record,
                    provider_status=status,
                    provider_payload={**dict(record.provider_payload), "last_callback": dict(ev.raw)},
                    last_error=ev.message if ev.event_type == "error" else record.last_error,
                    callback_count=record.callback_count + 1,
                    last_callback_at=now,
                    updated_at=now,
                )
            )
            result = "error_recorded" if ev.event_type == "error" else "recorded"
            if ev.event_type == "error":
                log.warning(
                    "sms provider error: %s (message %s, channel %s)", ev.message, ev.message_id, channel_id
                )
            await uow.callbacks.add(
                CallbackEvent(
                    notification_id=record.id,
                    channel_id=channel.id,
                    kind="sms",
                    event_type=ev.event_type,
                    provider_status=ev.status,
                    message=ev.message,
                    payload=dict(ev.raw),
                    result=result,
                    created_at=now,
                )
            )
            if record.group_id is not None:
                await uow.events.add(
                    AlertEvent(
                        group_id=record.group_id,
                        event_type=f"sms_{ev.event_type}",
                        message=f"event={ev.event_type}, status={status}",
                        user_id=record.recipient_user_id,
                        data={"message_id": ev.message_id, "result": result},
                        created_at=now,
                    )
                )
            item.update(status=status, alert_id=record.group_id, delivery_id=record.id, result=result)
            items.append(item)
        await uow.commit()
    return CallbackOutcome(status="processed" if events else "ignored", events=items)


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
    """Process a provider callback (S7.5): checks, replay guard, events, DTMF action (S7.6).

    Counted in ``relay_callbacks_received_total{kind="voice"}`` (S9.9)."""
    try:
        outcome = await _handle_voice_callback(
            ctx,
            channel_id,
            secret,
            payload=payload,
            headers=headers,
            raw_body=raw_body,
            query_args=query_args,
        )
    except Exception as exc:
        ctx.metrics.callback(kind="voice", result=error_result(exc))
        raise
    ctx.metrics.callback(kind="voice", result=outcome.status)
    return outcome


async def handle_sms_callback(
    ctx: Context,
    channel_id: int,
    secret: str | None,
    *,
    provider_for: Callable[[Mapping[str, Any]], Any],
    payload: Any,
    headers: Mapping[str, str],
    raw_body: bytes,
    query_args: Mapping[str, Any],
) -> CallbackOutcome:
    """Process an SMS provider callback (S7.9); see :func:`_handle_sms_callback`.

    Counted in ``relay_callbacks_received_total{kind="sms"}`` (S9.9)."""
    try:
        outcome = await _handle_sms_callback(
            ctx,
            channel_id,
            secret,
            provider_for=provider_for,
            payload=payload,
            headers=headers,
            raw_body=raw_body,
            query_args=query_args,
        )
    except Exception as exc:
        ctx.metrics.callback(kind="sms", result=error_result(exc))
        raise
    ctx.metrics.callback(kind="sms", result=outcome.status)
    return outcome
