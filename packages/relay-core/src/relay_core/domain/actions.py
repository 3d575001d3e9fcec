"""Signed single-use action links (SPEC S6.3): ``base64url(json) + "." + base64url(hmac)``."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import attrs

from relay_core.domain.errors import RelayError


class InvalidActionToken(RelayError):
    code = "invalid_token"
    status = 400


class ExpiredActionToken(RelayError):
    code = "token_expired"
    status = 410


class ActionTokenUsed(RelayError):
    code = "token_already_used"
    status = 409


class ActionRejected(RelayError):
    """The actor may not act: unknown or unlinked user, no responder rights, wrong channel or team."""

    code = "action_rejected"
    status = 403


class AlertNotFound(RelayError):
    code = "alert_not_found"
    status = 404


@attrs.frozen(kw_only=True)
class ActionClaims:
    jti: str
    group_id: int
    action: str
    channel_id: int | None
    user_id: int | None
    expires_at: dt.datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest())


def sign_action(secret: str, claims: ActionClaims) -> str:
    body: dict[str, Any] = {
        "jti": claims.jti,
        "g": claims.group_id,
        "a": claims.action,
        "c": claims.channel_id,
        "u": claims.user_id,
        "exp": int(claims.expires_at.timestamp()),
    }
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_mac(secret, payload)}"


def verify_action(secret: str, token: str, now: dt.datetime) -> ActionClaims:
    """Check signature and expiry; single use is the caller's job (``action_tokens`` rows)."""
    payload, sep, mac = token.partition(".")
    if not sep or not payload.isascii() or not mac.isascii():
        raise InvalidActionToken("action link signature is invalid")
    if not hmac.compare_digest(_mac(secret, payload).encode(), mac.encode()):
        raise InvalidActionToken("action link signature is invalid")
    try:
        body = json.loads(_unb64(payload))
        claims = ActionClaims(
            jti=str(body["jti"]),
            group_id=int(body["g"]),
            action=str(body["a"]),
            channel_id=body.get("c"),
            user_id=body.get("u"),
            expires_at=dt.datetime.fromtimestamp(int(body["exp"]), dt.UTC),
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError) as exc:
        raise InvalidActionToken("action link is malformed") from exc
    if claims.expires_at <= now:
        raise ExpiredActionToken("action link has expired")
    return claims
