"""Voice provider ``example_http``: places calls through a generic HTTP voice API (SPEC S7.12).

This module is self-contained on purpose: besides installing the plugin, it can be copied alone
into Relay's ``voice.providers_dir`` as ``example_http.py``.

API it speaks:

- ``POST <api_url>/calls`` with ``Authorization: Bearer <api_token>`` and
  ``{to, text, callback_url, metadata{alert_id, event_type, severity, team, assignee},
  dtmf{enabled, actions}}``; the answer carries ``id`` (or ``call_id``) and ``status``.
- ``GET <api_url>/calls/<id>`` for polling.
- Callbacks: objects (or a list of them) with ``call_id`` or ``id``, ``event`` or
  ``event_type``, ``status``, ``digit``, ``action``, ``message``. With ``webhook_secret`` set,
  each callback must carry ``X-Example-Signature``: hex HMAC-SHA256 of the raw body.

Config: ``api_url`` and ``api_token`` (required), ``timeout`` in seconds (default 10),
``webhook_secret`` (optional).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from relay_core.voice import (
    CALL_STATUS_FAILED,
    CALL_STATUS_QUEUED,
    CALL_STATUS_UNKNOWN,
    CALL_STATUSES,
    VOICE_CALLBACK_DTMF,
    VOICE_CALLBACK_ERROR,
    VOICE_CALLBACK_STATUS,
    BaseVoiceProvider,
    PermanentProviderError,
    TransientProviderError,
    VoiceCallCallbackEvent,
    VoiceCallRequest,
    VoiceCallResult,
    VoiceProviderCapabilities,
    require_config,
)

__all__ = ["SIGNATURE_HEADER", "ExampleHttpProvider", "Provider", "signature"]

SIGNATURE_HEADER = "X-Example-Signature"
DEFAULT_TIMEOUT = 10.0
_CONNECT_TIMEOUT = 5.0
_ERROR_SNIPPET = 200

# Spellings seen in voice APIs, mapped to Relay's call statuses (S7.1).
_STATUS_ALIASES = {
    "initiated": "queued",
    "created": "queued",
    "in-progress": "answered",
    "in_progress": "answered",
    "no-answer": "no_answer",
    "noanswer": "no_answer",
    "canceled": "cancelled",
}


def signature(secret: str, body: bytes) -> str:
    """The ``X-Example-Signature`` of ``body``: hex HMAC-SHA256 keyed by the webhook secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class Provider(BaseVoiceProvider):
    """Relay voice provider ``example_http``."""

    name: ClassVar[str] = "example_http"
    capabilities: ClassVar[VoiceProviderCapabilities] = VoiceProviderCapabilities(
        tts=True, status_callback=True, dtmf_callback=True, status_polling=True
    )

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Require ``api_url`` and ``api_token``; ``timeout`` must be a positive number."""
        require_config(cls.name, config, ("api_url", "api_token"))
        timeout = config.get("timeout", DEFAULT_TIMEOUT)
        try:
            positive = float(timeout) > 0
        except (TypeError, ValueError):
            positive = False
        if not positive:
            raise RuntimeError(f"{cls.name} config timeout must be a positive number of seconds")

    @property
    def timeout(self) -> float:
        """Seconds allowed for each request to the API."""
        return float(self.config.get("timeout", DEFAULT_TIMEOUT))

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        """Create the call; raise TransientProviderError or PermanentProviderError on failure."""
        self.validate_config(self.config)
        payload = {
            "to": request.phone,
            "text": request.text,
            "callback_url": request.callback_url,
            "metadata": {
                "alert_id": request.alert_id,
                "event_type": request.event_type,
                "severity": request.severity,
                "team": request.team,
                "assignee": request.assignee,
            },
            "dtmf": {"enabled": bool(request.action_hints), "actions": dict(request.action_hints)},
        }
        data = self._call_api("POST", "/calls", payload)
        call_id = data.get("call_id") or data.get("id")
        return VoiceCallResult(
            call_id=str(call_id) if call_id else None,
            status=_status(data.get("status")) or CALL_STATUS_QUEUED,
            raw=data,
        )

    def get_call_status(self, call_id: str) -> VoiceCallResult:
        """Poll ``GET <api_url>/calls/<id>``."""
        self.validate_config(self.config)
        data = self._call_api("GET", f"/calls/{urllib.parse.quote(call_id, safe='')}", None)
        return VoiceCallResult(
            call_id=call_id, status=_status(data.get("status")) or CALL_STATUS_UNKNOWN, raw=data
        )

    def parse_callback(
        self,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        query_args: Mapping[str, Any] | None = None,
    ) -> list[VoiceCallCallbackEvent]:
        """Check the signature (when configured) and turn each callback object into an event."""
        secret = self.config.get("webhook_secret")
        if secret:
            lowered = {str(key).lower(): str(value) for key, value in (headers or {}).items()}
            given = lowered.get(SIGNATURE_HEADER.lower(), "")
            if not hmac.compare_digest(given, signature(str(secret), raw_body or b"")):
                raise RuntimeError("invalid provider callback signature")
        items = payload if isinstance(payload, list) else [payload]
        return [_event(item) for item in items]

    def _call_api(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{str(self.config['api_url']).rstrip('/')}{path}"
        headers = {"Authorization": f"Bearer {self.config['api_token']}", "Accept": "application/json"}
        timeout = httpx.Timeout(self.timeout, connect=min(_CONNECT_TIMEOUT, self.timeout))
        try:
            if isinstance(self.http, httpx.Client):
                # Relay's shared client (S6.2) applies the outbound network policy; the timeout is ours.
                response = self.http.request(method, url, json=body, headers=headers, timeout=timeout)
            else:
                with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                    response = client.request(method, url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientProviderError(f"{self.name} request timed out after {self.timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise TransientProviderError(f"{self.name} request failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientProviderError(f"{self.name} API answered {status}")
        if status >= 300:
            raise PermanentProviderError(
                f"{self.name} API answered {status}: {response.text[:_ERROR_SNIPPET]}"
            )
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise PermanentProviderError(f"{self.name} API answered {status} without JSON") from exc
        if not isinstance(data, dict):
            raise PermanentProviderError(f"{self.name} API answered {status} with a non-object body")
        return data


ExampleHttpProvider = Provider


def _status(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    text = _STATUS_ALIASES.get(text, text)
    return text if text in CALL_STATUSES else CALL_STATUS_UNKNOWN


def _event(item: Any) -> VoiceCallCallbackEvent:
    if not isinstance(item, Mapping):
        raise RuntimeError("callback payload must be an object")
    call_id = item.get("call_id") or item.get("id")
    if not call_id:
        raise RuntimeError("callback call_id is missing")
    digit = item.get("digit")
    digit = None if digit is None or digit == "" else str(digit)
    event_type = str(item.get("event") or item.get("event_type") or "").strip().lower()
    if not event_type:
        event_type = VOICE_CALLBACK_DTMF if digit is not None else VOICE_CALLBACK_STATUS
    status = _status(item.get("status"))
    if event_type == VOICE_CALLBACK_ERROR and status is None:
        status = CALL_STATUS_FAILED
    action = item.get("action")
    message = item.get("message") or item.get("error")
    return VoiceCallCallbackEvent(
        call_id=str(call_id),
        event_type=event_type,
        status=status,
        digit=digit,
        action=str(action).strip().lower() if action else None,
        alert_id=_alert_id(item),
        message=str(message) if message else None,
        occurred_at=_timestamp(item.get("timestamp")),
        raw=dict(item),
    )


def _alert_id(item: Mapping[str, Any]) -> int | None:
    metadata = item.get("metadata")
    value = item.get("alert_id")
    if value is None and isinstance(metadata, Mapping):
        value = metadata.get("alert_id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
