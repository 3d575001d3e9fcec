"""The built-in ``simulator`` voice and SMS providers: a local fake carrier (SPEC S7.10).

Placing a call creates a *SimulatorCall* (status ``ringing``) holding the spoken text and the
callback URL Relay handed over. Nothing rings anywhere: the call then behaves as scripted through
the simulator API (``/api/simulator/...``) or ``relay phone ...``: answer, press digits, hang
up, end busy / no-answer / failed, report a provider error, or send a raw or tampered callback.
Every step sends a provider-shaped callback (``{"call_id", "event_type", "status"|"digit"|
"message"}``) over HTTP to the real callback endpoint, signed with ``X-Simulator-Signature``
(hex HMAC-SHA256 of the body keyed by the channel's callback secret), so the whole path,
secret and signature checks included, is exercised offline.

Storage: one JSON document, ``<data_dir>/simulator/simulator.json`` (directory mode 0700, file
mode 0600, writes under an exclusive ``flock`` and replaced atomically). The server (simulator
API), the worker (placing calls) and the CLI (``relay phone``) of one host share it without a
schema migration; the simulator is a development and test tool, so a multi-host deployment that
wants it must point ``RELAY_SIMULATOR_DIR`` at a shared directory. The file holds each call's
callback URL and secret (to sign callbacks); answers of :class:`Simulator` never include them,
and phone numbers are stored masked (``***1234``) only.

The store directory is, in order: the provider config's ``store_dir``, the class attribute
:attr:`Provider.store_dir` (set by :func:`simulator_providers`, which the composition root uses
with ``main.data_dir``), ``$RELAY_SIMULATOR_DIR``, then ``$RELAY_DATA_DIR/simulator``.

Provider config: ``callbacks`` (default true; false makes a polling-only provider: no callbacks
are sent and ``status_polling`` is the only capability), ``reject_calls`` (a message: every
``place_call`` raises it as a provider error, to see provider errors surface).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

from relay_core.sms import (
    BaseSmsProvider,
    SmsCallbackEvent,
    SmsProviderCapabilities,
    SmsSendRequest,
    SmsSendResult,
)
from relay_core.voice import (
    TERMINAL_CALL_STATUSES,
    BaseVoiceProvider,
    PermanentProviderError,
    VoiceCallCallbackEvent,
    VoiceCallRequest,
    VoiceCallResult,
    VoiceProviderCapabilities,
    mask_phone,
)

try:  # POSIX; elsewhere the store is used without an inter-process lock
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CALL_SCRIPT_STATUSES",
    "SIGNATURE_HEADER",
    "Provider",
    "Simulator",
    "SimulatorError",
    "SimulatorSmsProvider",
    "SimulatorStore",
    "SimulatorVoiceProvider",
    "SmsProvider",
    "default_store_dir",
    "sign_body",
    "simulator_providers",
]

logger = logging.getLogger("relay.voice.simulator")

SIGNATURE_HEADER: Final = "X-Simulator-Signature"
CALL_HEADER: Final = "X-Simulator-Call"
STORE_FILE: Final = "simulator.json"
#: Outcomes ``POST /api/simulator/calls/{id}/status`` accepts.
CALL_SCRIPT_STATUSES: Final = frozenset({"busy", "no_answer", "failed"})
SMS_SCRIPT_STATUSES: Final = frozenset({"sent", "delivered", "failed", "undelivered", "rejected"})
DTMF_KEYS: Final = frozenset("0123456789*#")
_MAX_EVENTS: Final = 50
_MAX_SINK_RECORDS: Final = 100
_REDACTED: Final = "<redacted>"
_SECRET_HEADER_RE: Final = re.compile(r"(authorization|secret|token|signature|cookie|key)", re.IGNORECASE)


def default_store_dir() -> Path:
    """``$RELAY_SIMULATOR_DIR``, else ``$RELAY_DATA_DIR/simulator`` (``relay-data/simulator``)."""
    explicit = os.environ.get("RELAY_SIMULATOR_DIR")
    if explicit:
        return Path(explicit).expanduser()
    data_dir = os.environ.get("RELAY_DATA_DIR") or os.environ.get("RELAY_MAIN__DATA_DIR") or "relay-data"
    return Path(data_dir).expanduser() / "simulator"


def sign_body(secret: str, body: bytes) -> str:
    """The ``X-Simulator-Signature`` value: hex HMAC-SHA256 of ``body`` keyed by ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class SimulatorError(Exception):
    """A refused simulator request: ``status`` (404/400/409), ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class SimulatorStore:
    """The simulator's JSON document, shared by every process using the same directory."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_store_dir()

    @property
    def path(self) -> Path:
        return self.directory / STORE_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "a+") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            data = dict(json.loads(self.path.read_text(encoding="utf-8")))
        data.setdefault("seq", 0)
        for key in ("calls", "messages", "sinks"):
            data.setdefault(key, {})
        return data

    def read(self) -> dict[str, Any]:
        """A snapshot of the whole document."""
        with self._locked():
            return self._load()

    def transact(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Run ``change`` on the document under the lock and write the result back atomically."""
        with self._locked():
            data = self._load()
            result = change(data)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            return result

    def next_id(self, data: dict[str, Any], prefix: str) -> str:
        data["seq"] = int(data["seq"]) + 1
        return f"{prefix}-{data['seq']}"


def _store_for(provider: Any) -> SimulatorStore:
    configured = provider.config.get("store_dir") or getattr(type(provider), "store_dir", None)
    return SimulatorStore(configured)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    lowered = name.lower()
    for key, value in (headers or {}).items():
        if str(key).lower() == lowered:
            return str(value)
    return None


def _verify(headers: Mapping[str, str] | None, raw_body: bytes | None, secret: str | None) -> None:
    signature = _header(headers, SIGNATURE_HEADER)
    expected = sign_body(secret, raw_body or b"") if secret else None
    if not signature or expected is None or not hmac.compare_digest(signature, expected):
        raise RuntimeError("invalid provider callback signature")


def _check_config(label: str, config: Mapping[str, Any]) -> None:
    callbacks = config.get("callbacks", True)
    if not isinstance(callbacks, bool):
        raise RuntimeError(f"{label} config: callbacks must be true or false")
    reject = config.get("reject_calls")
    if reject is not None and not isinstance(reject, str):
        raise RuntimeError(f"{label} config: reject_calls must be a message")


class Provider(BaseVoiceProvider):
    """Voice provider ``simulator``: calls land in the local simulator store."""

    name: ClassVar[str] = "simulator"
    capabilities: ClassVar[VoiceProviderCapabilities] = VoiceProviderCapabilities(
        tts=True, status_callback=True, dtmf_callback=True, status_polling=True
    )
    store_dir: ClassVar[str | None] = None

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        if self.config.get("callbacks") is False:
            # A polling-only carrier: Relay asks for statuses (S7.7), nothing calls back.
            self.capabilities = VoiceProviderCapabilities(tts=True, status_polling=True)  # type: ignore[misc]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Accept ``callbacks`` (bool), ``reject_calls`` (message) and ``store_dir``."""
        _check_config("simulator", config)

    @property
    def store(self) -> SimulatorStore:
        return _store_for(self)

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        """Create a ringing SimulatorCall; ``reject_calls`` makes this a provider error."""
        reject = self.config.get("reject_calls")
        if reject:
            raise PermanentProviderError(str(reject))
        callbacks = self.config.get("callbacks", True) is not False

        def create(data: dict[str, Any]) -> str:
            call_id = self.store.next_id(data, "sim-call")
            now = _now()
            data["calls"][call_id] = {
                "id": call_id,
                "status": "ringing",
                "to": mask_phone(request.phone),
                "text": request.text,
                "alert_id": request.alert_id,
                "event_type": request.event_type,
                "severity": request.severity,
                "title": request.title,
                "channel_id": request.metadata.get("channel_id"),
                "action_hints": dict(request.action_hints),
                "callbacks": callbacks,
                "callback_url": request.callback_url,
                "callback_secret": request.callback_secret,
                "created_at": now,
                "updated_at": now,
                "events": [{"at": now, "type": "placed", "status": "ringing"}],
            }
            return call_id

        call_id: str = self.store.transact(create)
        logger.info(
            "voice simulator call %s to %s (alert %s, %s)",
            call_id,
            mask_phone(request.phone),
            request.alert_id,
            request.event_type,
        )
        return VoiceCallResult(
            call_id=call_id,
            status="ringing",
            raw={"provider": self.name, "call_id": call_id, "status": "ringing"},
        )

    def parse_callback(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        query_args: Mapping[str, Any] | None = None,
    ) -> list[VoiceCallCallbackEvent]:
        """Verify ``X-Simulator-Signature``, then map ``{"call_id", "event_type", ...}`` to one event."""
        body = payload if isinstance(payload, Mapping) else {}
        sender = _header(headers, CALL_HEADER) or str(body.get("call_id") or "")
        call = self.store.read()["calls"].get(sender)
        _verify(headers, raw_body, call.get("callback_secret") if call else None)
        call_id = body.get("call_id")
        if not call_id:
            return []
        alert_id = body.get("alert_id")
        return [
            VoiceCallCallbackEvent(
                call_id=str(call_id),
                event_type=str(body.get("event_type") or "status"),
                status=body.get("status"),
                digit=None if body.get("digit") is None else str(body.get("digit")),
                action=body.get("action"),
                alert_id=alert_id if isinstance(alert_id, int) else None,
                message=body.get("message"),
                raw=dict(body),
            )
        ]

    def get_call_status(self, call_id: str) -> VoiceCallResult:
        """The SimulatorCall's current status."""
        call = self.store.read()["calls"].get(call_id)
        if call is None:
            raise RuntimeError(f"simulator call not found: {call_id}")
        return VoiceCallResult(
            call_id=call_id, status=call["status"], raw={"call_id": call_id, "status": call["status"]}
        )


class SmsProvider(BaseSmsProvider):
    """SMS provider ``simulator``: messages land in the local simulator store."""

    name: ClassVar[str] = "simulator"
    capabilities: ClassVar[SmsProviderCapabilities] = SmsProviderCapabilities(
        delivery_callback=True, status_polling=True
    )
    store_dir: ClassVar[str | None] = None

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Accept ``callbacks`` (bool), ``reject_calls`` (message) and ``store_dir``."""
        _check_config("simulator", config)

    @property
    def store(self) -> SimulatorStore:
        return _store_for(self)

    def send_sms(self, request: SmsSendRequest) -> SmsSendResult:
        """Record the message with status ``sent``."""
        reject = self.config.get("reject_calls")
        if reject:
            raise PermanentProviderError(str(reject))

        def create(data: dict[str, Any]) -> str:
            message_id = self.store.next_id(data, "sim-sms")
            now = _now()
            data["messages"][message_id] = {
                "id": message_id,
                "status": "sent",
                "to": mask_phone(request.phone),
                "text": request.text,
                "alert_id": request.alert_id,
                "event_type": request.event_type,
                "channel_id": request.metadata.get("channel_id"),
                "callbacks": self.config.get("callbacks", True) is not False,
                "callback_url": request.callback_url,
                "callback_secret": request.callback_secret,
                "created_at": now,
                "updated_at": now,
                "events": [{"at": now, "type": "sent", "status": "sent"}],
            }
            return message_id

        message_id: str = self.store.transact(create)
        logger.info(
            "sms simulator message %s to %s (alert %s)",
            message_id,
            mask_phone(request.phone),
            request.alert_id,
        )
        return SmsSendResult(
            message_id=message_id, status="sent", raw={"provider": self.name, "message_id": message_id}
        )

    def parse_callback(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        query_args: Mapping[str, Any] | None = None,
    ) -> list[SmsCallbackEvent]:
        """Verify ``X-Simulator-Signature``, then map ``{"message_id", "event_type", ...}``."""
        body = payload if isinstance(payload, Mapping) else {}
        sender = _header(headers, CALL_HEADER) or str(body.get("message_id") or "")
        message = self.store.read()["messages"].get(sender)
        _verify(headers, raw_body, message.get("callback_secret") if message else None)
        message_id = body.get("message_id")
        if not message_id:
            return []
        return [
            SmsCallbackEvent(
                message_id=str(message_id),
                event_type=str(body.get("event_type") or "status"),
                status=body.get("status"),
                text=body.get("text"),
                message=body.get("message"),
                raw=dict(body),
            )
        ]

    def get_message_status(self, message_id: str) -> SmsSendResult:
        message = self.store.read()["messages"].get(message_id)
        if message is None:
            raise RuntimeError(f"simulator message not found: {message_id}")
        return SmsSendResult(
            message_id=message_id, status=message["status"], raw={"status": message["status"]}
        )


SimulatorVoiceProvider = Provider
SimulatorSmsProvider = SmsProvider


def simulator_providers(store_dir: str | os.PathLike[str]) -> tuple[type[Provider], type[SmsProvider]]:
    """Voice and SMS ``simulator`` classes bound to ``store_dir`` (``<data_dir>/simulator``)."""
    directory = str(store_dir)
    voice = type("Provider", (Provider,), {"store_dir": directory, "__module__": __name__})
    sms = type("SmsProvider", (SmsProvider,), {"store_dir": directory, "__module__": __name__})
    return voice, sms


# --- the carrier's control side (API and CLI) ---------------------------------------------------


def _public(record: Mapping[str, Any]) -> dict[str, Any]:
    """A call or message without its secret; the callback URL's secret segment hidden."""
    out = {k: v for k, v in record.items() if k not in ("callback_secret", "callback_url")}
    url = record.get("callback_url")
    secret = record.get("callback_secret")
    if url and secret and str(url).endswith(f"/{secret}"):
        url = str(url)[: -len(secret)] + _REDACTED
    out["callback_url"] = url
    return out


def _redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (_REDACTED if _SECRET_HEADER_RE.search(k) else v) for k, v in headers.items()}


class Simulator:
    """Drives SimulatorCalls and messages and sends their callbacks (S7.10).

    Args:
        store: The shared store (``<data_dir>/simulator``).
        client_factory: Returns the ``httpx.AsyncClient`` used for one callback; a plain client
            with a 10 s timeout by default. Tests hand a client bound to the app in-process.
    """

    def __init__(self, store: SimulatorStore, *, client_factory: Callable[[], Any] | None = None) -> None:
        self.store = store
        self._client_factory = client_factory

    # -- reading --

    def calls(self) -> list[dict[str, Any]]:
        """Every call, newest first, without secrets."""
        calls = self.store.read()["calls"].values()
        return [_public(c) for c in sorted(calls, key=lambda c: _seq(c["id"]), reverse=True)]

    def call(self, call_id: str) -> dict[str, Any]:
        call = self.store.read()["calls"].get(call_id)
        if call is None:
            raise SimulatorError(404, "not_found", f"simulator call not found: {call_id}")
        return _public(call)

    def messages(self) -> list[dict[str, Any]]:
        messages = self.store.read()["messages"].values()
        return [_public(m) for m in sorted(messages, key=lambda m: _seq(m["id"]), reverse=True)]

    def message(self, message_id: str) -> dict[str, Any]:
        message = self.store.read()["messages"].get(message_id)
        if message is None:
            raise SimulatorError(404, "not_found", f"simulator message not found: {message_id}")
        return _public(message)

    # -- scripting calls --

    async def answer(self, call_id: str) -> dict[str, Any]:
        """The callee picks up: status ``answered``."""
        return await self._status(call_id, "answered")

    async def hangup(self, call_id: str) -> dict[str, Any]:
        """The call ends normally: status ``completed``."""
        return await self._status(call_id, "completed")

    async def set_status(self, call_id: str, status: str) -> dict[str, Any]:
        """End the call ``busy``, ``no_answer`` or ``failed``."""
        if status not in CALL_SCRIPT_STATUSES:
            raise SimulatorError(400, "validation_error", "status must be one of busy, no_answer, failed")
        return await self._status(call_id, status)

    async def press(self, call_id: str, digit: str) -> dict[str, Any]:
        """Press a key (answering first when the call still rings)."""
        digit = str(digit).strip()
        if len(digit) != 1 or digit not in DTMF_KEYS:
            raise SimulatorError(400, "validation_error", "digit must be one of 0-9, * or #")
        call = self._open_call(call_id)
        sent: list[dict[str, Any]] = []
        if call["status"] != "answered":
            sent.append((await self._status(call_id, "answered"))["callback"])
        body = {"call_id": call_id, "event_type": "dtmf", "digit": digit}
        result = await self._send("calls", call_id, body, event={"type": "dtmf", "digit": digit})
        result["callbacks"] = [*sent, result["callback"]]
        return result

    async def error(self, call_id: str, message: str) -> dict[str, Any]:
        """The carrier reports an error (e.g. "Insufficient balance"): status ``failed``."""
        if not str(message or "").strip():
            raise SimulatorError(400, "validation_error", "message is required")
        self._open_call(call_id)
        self._update("calls", call_id, status="failed")
        body = {"call_id": call_id, "event_type": "error", "status": "failed", "message": str(message)}
        return await self._send("calls", call_id, body, event={"type": "error", "message": str(message)})

    async def callback(
        self,
        call_id: str,
        body: Mapping[str, Any] | None = None,
        *,
        bad_secret: bool = False,
        bad_signature: bool = False,
    ) -> dict[str, Any]:
        """Send ``body`` (default: the current status) as this call's callback, maybe tampered."""
        call = self._get("calls", call_id)
        payload = (
            dict(body)
            if body is not None
            else {
                "call_id": call_id,
                "event_type": "status",
                "status": call["status"],
            }
        )
        return await self._send(
            "calls",
            call_id,
            payload,
            event={"type": "callback", "bad_secret": bad_secret, "bad_signature": bad_signature},
            bad_secret=bad_secret,
            bad_signature=bad_signature,
            force=True,
        )

    async def message_status(self, message_id: str, status: str) -> dict[str, Any]:
        """Report an SMS delivery status (``delivered``, ``failed``, ...)."""
        if status not in SMS_SCRIPT_STATUSES:
            raise SimulatorError(
                400, "validation_error", f"status must be one of {', '.join(sorted(SMS_SCRIPT_STATUSES))}"
            )
        self._get("messages", message_id)
        self._update("messages", message_id, status=status)
        body = {"message_id": message_id, "event_type": "status", "status": status}
        return await self._send("messages", message_id, body, event={"type": "status", "status": status})

    # -- webhook sink --

    def sink_record(
        self, name: str, headers: Mapping[str, str], body: bytes, signature_valid: bool | None
    ) -> None:
        """Keep one delivery to ``/api/simulator/sink/{name}`` (headers redacted)."""
        try:
            parsed: Any = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            parsed = body.decode("utf-8", "replace")

        def add(data: dict[str, Any]) -> None:
            records = data["sinks"].setdefault(name, [])
            records.append(
                {
                    "at": _now(),
                    "headers": _redact_headers(headers),
                    "body": parsed,
                    "signature_valid": signature_valid,
                }
            )
            del records[:-_MAX_SINK_RECORDS]

        self.store.transact(add)

    def sink(self, name: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.store.read()["sinks"].get(name, [])
        return records

    # -- internals --

    def _get(self, kind: str, item_id: str) -> dict[str, Any]:
        record: dict[str, Any] | None = self.store.read()[kind].get(item_id)
        if record is None:
            noun = "call" if kind == "calls" else "message"
            raise SimulatorError(404, "not_found", f"simulator {noun} not found: {item_id}")
        return record

    def _open_call(self, call_id: str) -> dict[str, Any]:
        call = self._get("calls", call_id)
        if call["status"] in TERMINAL_CALL_STATUSES:
            raise SimulatorError(409, "call_finished", f"simulator call {call_id} is {call['status']}")
        return call

    def _update(self, kind: str, item_id: str, **changes: Any) -> None:
        def change(data: dict[str, Any]) -> None:
            record = data[kind][item_id]
            record.update(changes)
            record["updated_at"] = _now()

        self.store.transact(change)

    async def _status(self, call_id: str, status: str) -> dict[str, Any]:
        self._open_call(call_id)
        self._update("calls", call_id, status=status)
        body = {"call_id": call_id, "event_type": "status", "status": status}
        return await self._send("calls", call_id, body, event={"type": "status", "status": status})

    async def _send(
        self,
        kind: str,
        item_id: str,
        body: Mapping[str, Any],
        *,
        event: dict[str, Any],
        bad_secret: bool = False,
        bad_signature: bool = False,
        force: bool = False,
    ) -> dict[str, Any]:
        record = self._get(kind, item_id)
        url = record.get("callback_url")
        secret = record.get("callback_secret") or ""
        outcome: dict[str, Any] = {"sent": False, "status_code": None, "response": None, "error": None}
        if not record.get("callbacks", True) and not force:
            outcome["error"] = "callbacks are disabled for this provider (polling only)"
        elif not url:
            outcome["error"] = "no callback URL: the channel has no callback secret"
        else:
            raw = json.dumps(dict(body), separators=(",", ":")).encode()
            signature = sign_body(secret, raw)
            if bad_signature:
                signature = sign_body(secret + "-tampered", raw)
            target = str(url)
            if bad_secret and secret and target.endswith(f"/{secret}"):
                target = target[: -len(secret)] + "wrong-secret"
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature, CALL_HEADER: item_id}
            outcome.update(await self._post(target, raw, headers))
        entry = {
            **event,
            "at": _now(),
            "body": dict(body),
            **{k: outcome[k] for k in ("status_code", "error")},
        }

        def log(data: dict[str, Any]) -> None:
            events = data[kind][item_id].setdefault("events", [])
            events.append(entry)
            del events[:-_MAX_EVENTS]

        self.store.transact(log)
        noun = "call" if kind == "calls" else "message"
        return {noun: _public(self._get(kind, item_id)), "callback": outcome}

    async def _post(self, url: str, raw: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        import httpx

        client = (
            self._client_factory() if self._client_factory is not None else httpx.AsyncClient(timeout=10.0)
        )
        try:
            async with client:
                response = await client.post(url, content=raw, headers=dict(headers))
        except httpx.HTTPError as exc:
            return {"sent": False, "error": f"{type(exc).__name__}: callback endpoint unreachable"}
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:500]
        return {"sent": True, "status_code": response.status_code, "response": answer}


def _seq(item_id: str) -> int:
    tail = item_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0
