"""Voice and SMS provider callbacks and the simulator API (SPEC S7.5, S7.9, S7.10).

Callbacks (no session: the channel's callback secret authenticates, compared in constant time):

- ``POST /api/integrations/voice/callback/{channel_id}/{secret}``, or ``.../{channel_id}`` with
  the secret in ``Authorization: Bearer``, ``X-Relay-Callback-Secret`` or
  ``X-IncidentRelay-Callback-Secret``. Answers: 200 ``processed``/``ignored``; 404 unknown or
  deleted channel; 400 ``channel_type_mismatch``; 403 ``voice_callback_rejected``; 409
  ``duplicate_callback``; 400 ``callback_rejected`` (the provider's exception text); 500 with
  ``error_id`` when the provider cannot be loaded. An unknown ``call_id`` is not an error: its
  item says ``"status": "notification_not_found"``.
- ``POST /api/integrations/sms/callback/{channel_id}/{secret}`` (and the header form), the same
  way for ``sms`` channels.

Simulator (admin only, 404 while ``simulator.enabled`` is false): calls, messages and the
webhook sink of :mod:`relay_adapters.voice.simulator`, kept under ``<data_dir>/simulator``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath

from relay_adapters.voice.simulator import Simulator, SimulatorError, SimulatorStore
from relay_core.domain import commands as cmd
from relay_core.domain.dtmf import validate_dtmf_actions
from relay_core.domain.errors import ValidationError
from relay_core.services.voice import VoiceCallChannel, handle_sms_callback
from relay_server.auth import require
from relay_server.controllers._support import Caller, ServerState, server_state
from relay_server.errors import ApiError, validation_error

__all__ = [
    "CONTROLLERS",
    "SIMULATOR_CLIENT_KEY",
    "SimulatorController",
    "SmsCallbackController",
    "VoiceCallbackController",
    "callback_secret_from_headers",
    "simulator_for",
    "validate_callback_channel_config",
]

#: ``app.state`` key of an optional ``() -> httpx.AsyncClient`` the simulator sends callbacks
#: with (tests bind it to the app in-process); a plain client by default.
SIMULATOR_CLIENT_KEY: Final = "relay_simulator_client"
_SECRET_HEADERS: Final = ("x-relay-callback-secret", "x-incidentrelay-callback-secret")


def callback_secret_from_headers(headers: Mapping[str, str]) -> str | None:
    """The secret of the header form: ``Authorization: Bearer``, then the two named headers."""
    auth = headers.get("authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for name in _SECRET_HEADERS:
        if headers.get(name):
            return headers[name]
    return None


async def _callback_input(
    request: Request[Any, Any, Any],
) -> tuple[Any, bytes, dict[str, str], dict[str, Any]]:
    raw = await request.body()
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    payload: Any
    if media == "application/json" or media.endswith("+json"):
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError(400, "callback_rejected", "callback body is not valid JSON") from None
    else:
        form = await request.form()
        payload = {key: form.get(key) for key in form}
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = {k: v for k, v in request.query_params.items()}
    return payload, raw, headers, query


async def _voice_callback(
    request: Request[Any, Any, Any], channel_id: int, secret: str | None
) -> dict[str, Any]:
    st = server_state(request)
    payload, raw, headers, query = await _callback_input(request)
    outcome = await st.relay.handle(
        cmd.HandleVoiceCallback(
            channel_id=channel_id,
            secret=secret,
            payload=payload,
            headers=headers,
            raw_body=raw,
            query_args=query,
        )
    )
    return {"status": outcome.status, "events": outcome.events}


def _sms_loader(st: ServerState) -> Any:
    from relay_adapters.voice.loader import make_sms_loader

    plugins = st.registry.sms_providers() if st.registry is not None else None
    providers_dir = st.settings.sms.providers_dir or str(st.settings.data_dir / "sms_providers")
    return make_sms_loader(plugins=plugins, providers_dir=providers_dir)


async def _sms_callback(
    request: Request[Any, Any, Any], channel_id: int, secret: str | None
) -> dict[str, Any]:
    st = server_state(request)
    payload, raw, headers, query = await _callback_input(request)
    loader = _sms_loader(st)

    def provider_for(config: Mapping[str, Any]) -> Any:
        name = config.get("provider") or st.settings.sms.provider or "stub"
        provider_config = config.get("provider_config") or dict(st.settings.sms_provider)
        return loader.create(name, provider_config, referenced_by=f"channel {channel_id}")

    outcome = await handle_sms_callback(
        st.relay.ctx,
        channel_id,
        secret,
        provider_for=provider_for,
        payload=payload,
        headers=headers,
        raw_body=raw,
        query_args=query,
    )
    return {"status": outcome.status, "events": outcome.events}


class VoiceCallbackController(Controller):
    path = "/api/integrations/voice/callback"
    tags = ("integrations",)

    @post("/{channel_id:int}/{secret:str}", operation_id="VoiceCallback", status_code=200)
    async def callback(
        self, request: Request[Any, Any, Any], channel_id: FromPath[int], secret: FromPath[str]
    ) -> dict[str, Any]:
        """A voice provider's status/DTMF/error callback, the secret in the path (S7.5)."""
        return await _voice_callback(request, channel_id, secret)

    @post("/{channel_id:int}", operation_id="VoiceCallbackHeaderSecret", status_code=200)
    async def callback_header(
        self, request: Request[Any, Any, Any], channel_id: FromPath[int]
    ) -> dict[str, Any]:
        """The same callback with the secret in ``Authorization: Bearer`` or ``X-Relay-Callback-Secret``."""
        return await _voice_callback(request, channel_id, callback_secret_from_headers(request.headers))


class SmsCallbackController(Controller):
    path = "/api/integrations/sms/callback"
    tags = ("integrations",)

    @post("/{channel_id:int}/{secret:str}", operation_id="SmsCallback", status_code=200)
    async def callback(
        self, request: Request[Any, Any, Any], channel_id: FromPath[int], secret: FromPath[str]
    ) -> dict[str, Any]:
        """An SMS provider's delivery callback, the secret in the path (S7.9)."""
        return await _sms_callback(request, channel_id, secret)

    @post("/{channel_id:int}", operation_id="SmsCallbackHeaderSecret", status_code=200)
    async def callback_header(
        self, request: Request[Any, Any, Any], channel_id: FromPath[int]
    ) -> dict[str, Any]:
        """The same callback with the secret in a header."""
        return await _sms_callback(request, channel_id, callback_secret_from_headers(request.headers))


# --- channel config validation on save (S7.3) ----------------------------------------------------


def validate_callback_channel_config(st: ServerState, channel_type: str, config: Mapping[str, Any]) -> None:
    """For ``voice_call``/``sms`` channels: ``dtmf_actions`` checked, the provider resolved and
    its ``validate_config`` run on the resolved config; 400 ``validation_error`` with the
    provider's message (``mango config requires: api_url, api_token``)."""
    if channel_type not in ("voice_call", "sms"):
        return
    if channel_type == "voice_call" and config.get("dtmf_actions") is not None:
        try:
            validate_dtmf_actions(config["dtmf_actions"], loc="$.config.dtmf_actions")
        except ValidationError as exc:
            raise validation_error(exc.message, exc.details) from None
    try:
        if channel_type == "voice_call":
            sender = st.relay.ctx.senders.get("voice_call")
            if isinstance(sender, VoiceCallChannel):
                sender.provider_for(config)
        else:
            name = config.get("provider") or st.settings.sms.provider or "stub"
            provider_config = config.get("provider_config") or dict(st.settings.sms_provider)
            _sms_loader(st).create(name, provider_config)
    except RuntimeError as exc:
        message = str(exc)
        raise validation_error(message, [{"loc": "$.config.provider", "message": message}]) from None


# --- simulator (S7.10) -----------------------------------------------------------------------------


def simulator_for(request: Request[Any, Any, Any]) -> Simulator:
    """The simulator over ``<data_dir>/simulator``; 404 while ``simulator.enabled`` is false."""
    st = server_state(request)
    if not st.settings.simulator_enabled:
        raise ApiError(404, "not_found", "the simulator is disabled (simulator.enabled = false)")
    factory: Callable[[], Any] | None = request.app.state.get(SIMULATOR_CLIENT_KEY)
    return Simulator(SimulatorStore(st.settings.data_dir / "simulator"), client_factory=factory)


def _admin(request: Request[Any, Any, Any], principal: Any) -> Simulator:
    require(principal.is_admin, "Administrator rights are required")
    return simulator_for(request)


async def _run(work: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await work
    except SimulatorError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    return result


def _read(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except SimulatorError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


async def _json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise validation_error("body is not valid JSON", [{"loc": "$", "message": "invalid JSON"}]) from None
    if not isinstance(data, dict):
        raise validation_error("body must be a JSON object", [{"loc": "$", "message": "expected an object"}])
    return data


def _field(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise validation_error(f"{name} is required", [{"loc": f"$.{name}", "message": "a non-empty string"}])
    return value.strip()


async def _scripted(
    request: Request[Any, Any, Any],
    principal: Any,
    act: Callable[[Simulator, str], Awaitable[dict[str, Any]]],
    field: str,
) -> dict[str, Any]:
    """An admin's scripted simulator action taking one string field of the JSON body."""
    sim = _admin(request, principal)
    value = _field(await _json(request), field)
    return await _run(act(sim, value))


class SimulatorController(Controller):
    path = "/api/simulator"
    tags = ("simulator",)

    @get("/calls", operation_id="SimulatorListCalls")
    async def list_calls(self, request: Request[Any, Any, Any], principal: Caller) -> list[dict[str, Any]]:
        """Simulated calls, newest first (masked numbers, no secrets)."""
        return _admin(request, principal).calls()

    @get("/calls/{call_id:str}", operation_id="SimulatorGetCall")
    async def get_call(
        self, request: Request[Any, Any, Any], principal: Caller, call_id: FromPath[str]
    ) -> dict[str, Any]:
        """One call: spoken text, status and callback history."""
        sim = _admin(request, principal)
        result: dict[str, Any] = _read(lambda: sim.call(call_id))
        return result

    @post("/calls/{call_id:str}/answer", operation_id="SimulatorAnswer", status_code=200)
    async def answer(
        self, request: Request[Any, Any, Any], principal: Caller, call_id: FromPath[str]
    ) -> dict[str, Any]:
        """The callee picks up (status callback ``answered``)."""
        return await _run(_admin(request, principal).answer(call_id))

    @post("/calls/{call_id:str}/press", operation_id="SimulatorPress", status_code=200)
    async def press(
        self, request: Request[Any, Any, Any], principal: Caller, call_id: FromPath[str]
    ) -> dict[str, Any]:
        """Press a key: ``{"digit": "1"}`` (a DTMF callback)."""
        return await _scripted(request, principal, lambda sim, value: sim.press(call_id, value), "digit")

    @post("/calls/{call_id:str}/hangup", operation_id="SimulatorHangup", status_code=200)
    async def hangup(
        self, request: Request[Any, Any, Any], principal: Caller, call_id: FromPath[str]
    ) -> dict[str, Any]:
        """The call ends normally (status ``completed``)."""
        return await _run(_admin(request, principal).hangup(call_id))

    @post("/calls/{call_id:str}/status", operation_id="SimulatorStatus", status_code=200)
    async def status(
        self, request: Request[Any, Any, Any], principal: Caller, call_id: FromPath[str]
    ) -> dict[str, Any]:
        """End the call ``{"status": "busy"|"no_answer"|"failed"}``."""
        return await _scripted(
            request, principal, lambda sim, value: sim.set_status(call_id, value), "status"
        )

    @post("/calls/{call_id:str}/error", operation_id="SimulatorError", status_code=200)
    async def error(
        self, request: Request[Any, Any, Any], principal: Caller, call_id: FromPath[str]
    ) -> dict[str, Any]:
        """The carrier reports an error: ``{"message": "Insufficient balance"}``."""
        return await _scripted(request, principal, lambda sim, value: sim.error(call_id, value), "message")

    @post("/calls/{call_id:str}/callback", operation_id="SimulatorCallback", status_code=200)
    async def callback(
        self, request: Request[Any, Any, Any], principal: Caller, call_id: FromPath[str]
    ) -> dict[str, Any]:
        """Send a raw or tampered callback: ``{"body": {...}, "bad_secret": true, "bad_signature": true}``."""
        sim = _admin(request, principal)
        data = await _json(request)
        body = data.get("body")
        if body is not None and not isinstance(body, dict):
            raise validation_error(
                "body must be an object", [{"loc": "$.body", "message": "expected an object"}]
            )
        flags = {}
        for name in ("bad_secret", "bad_signature"):
            value = data.get(name, False)
            if not isinstance(value, bool):
                raise validation_error(
                    f"{name} must be a boolean", [{"loc": f"$.{name}", "message": "a boolean"}]
                )
            flags[name] = value
        return await _run(sim.callback(call_id, body, **flags))

    @get("/messages", operation_id="SimulatorListMessages")
    async def list_messages(self, request: Request[Any, Any, Any], principal: Caller) -> list[dict[str, Any]]:
        """Simulated text messages, newest first."""
        return _admin(request, principal).messages()

    @post("/messages/{message_id:str}/status", operation_id="SimulatorMessageStatus", status_code=200)
    async def message_status(
        self, request: Request[Any, Any, Any], principal: Caller, message_id: FromPath[str]
    ) -> dict[str, Any]:
        """Report a delivery status: ``{"status": "delivered"}``."""
        return await _scripted(
            request, principal, lambda sim, value: sim.message_status(message_id, value), "status"
        )

    @post("/sink/{name:str}", operation_id="SimulatorSinkReceive", status_code=200)
    async def sink_receive(self, request: Request[Any, Any, Any], name: FromPath[str]) -> dict[str, Any]:
        """Record any delivery (accepted without auth while the simulator is enabled)."""
        sim = simulator_for(request)
        st = server_state(request)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        valid = await _sink_signature(st, name, headers, body)
        sim.sink_record(name, headers, body, valid)
        return {"status": "recorded", "signature_valid": valid}

    @get("/sink/{name:str}", operation_id="SimulatorSinkList")
    async def sink_list(
        self, request: Request[Any, Any, Any], principal: Caller, name: FromPath[str]
    ) -> list[Any]:
        """Deliveries recorded by the sink ``name`` (headers redacted)."""
        return _admin(request, principal).sink(name)


async def _sink_signature(st: ServerState, name: str, headers: Mapping[str, str], body: bytes) -> bool | None:
    """Check ``webhook-signature`` with the secret of the webhook channel pointing at this sink."""
    signature = headers.get("webhook-signature")
    if not signature:
        return None
    from relay_adapters.channels.webhook import verify_signature

    suffix = f"/api/simulator/sink/{name}"
    async with st.uow() as uow:
        channels = await uow.channels.find(channel_type="webhook")
    for channel in channels:
        url = str(channel.config.get("webhook_url") or "")
        secret = channel.config.get("secret")
        if url.endswith(suffix) and secret:
            try:
                if verify_signature(
                    str(secret),
                    headers.get("webhook-id", ""),
                    headers.get("webhook-timestamp", ""),
                    body,
                    signature,
                ):
                    return True
            except Exception:  # noqa: S112 - a malformed secret or header is simply no match
                continue
    return False


CONTROLLERS: list[Any] = [VoiceCallbackController, SmsCallbackController, SimulatorController]
