"""Structured logging for every Relay process (SPEC S10.6) with the redaction rules of S13.7.

:func:`configure_logging` routes structlog *and* the standard library (uvicorn, SQLAlchemy,
plugins using ``logging``) through one formatter, so every line is one JSON object with
``ts`` (RFC 3339 UTC), ``level``, ``logger`` and ``event`` (dotted names such as
``relay.notification.sent``), plus bound ids. :func:`redact` runs on every event: values of
secret-looking keys are replaced, phone numbers keep their last four digits, e-mail addresses
their first letter and domain, and webhook/bot URLs or token query parameters are hidden.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any, Final

import structlog

from relay_adapters.settings import RelaySettings

__all__ = [
    "REDACTED",
    "configure_logging",
    "get_logger",
    "is_secret_key",
    "mask_email",
    "mask_phone",
    "redact",
    "redact_value",
]

REDACTED: Final = "<redacted>"

# Keys whose values are secrets wherever they appear (event fields, headers, nested configs).
_SECRET_KEY_RE: Final = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|authorization|cookie|signature|"
    r"credential|session|jwt|^key$|_key$|webhook_url|dsn)",
    re.IGNORECASE,
)
# ...unless the key names something derived and harmless.
_SAFE_KEY_RE: Final = re.compile(
    r"(_id|_ids|_prefix|_count|_at|_type|_name|_kind|_version|^fencing_token|^dedup_key|^group_key|"
    r"^idempotency_key|^event|^logger|^level|^ts)$",
    re.IGNORECASE,
)
_PHONE_KEY_RE: Final = re.compile(r"(phone|msisdn|caller|callee|^to$|^from$|number)", re.IGNORECASE)

# E.164-looking numbers inside free text: a plus sign and 7-15 digits, spaces/dashes allowed.
_PHONE_IN_TEXT: Final = re.compile(r"\+\d(?:[\s\-().]?\d){6,14}")
_EMAIL_IN_TEXT: Final = re.compile(
    r"\b([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})\b"
)
_TELEGRAM_BOT: Final = re.compile(r"/bot\d+:[A-Za-z0-9_\-]+")
_WEBHOOK_URL: Final = re.compile(
    r"https?://(?:hooks\.slack\.com|(?:[\w\-]+\.)?discord(?:app)?\.com/api/webhooks|"
    r"[\w\-.]+\.webhook\.office\.com|[\w\-.]+\.logic\.azure\.com)[^\s\"'<>]*",
    re.IGNORECASE,
)
_SECRET_QUERY: Final = re.compile(
    r"([?&](?:[\w\-]*(?:token|key|secret|password|signature|sig)[\w\-]*)=)[^&#\s\"']*", re.IGNORECASE
)
_BEARER: Final = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
_RELAY_TOKEN: Final = re.compile(r"\brly_[rp]_[A-Za-z0-9_\-]{8,}")
_URL_CREDENTIALS: Final = re.compile(r"(\w+://[^\s:/@]+:)[^\s@/]+@")
# Voice/SMS callback URLs carry the channel's callback secret as the last path segment (S7.5).
_CALLBACK_SECRET: Final = re.compile(r"(/api/integrations/(?:voice|sms)/callback/\d+/)[^/\s?#\"']+")


def mask_phone(value: str) -> str:
    """``+15550001234`` -> ``***1234``."""
    digits = re.sub(r"\D", "", value)
    return f"***{digits[-4:]}" if len(digits) >= 4 else "***"


def mask_email(value: str) -> str:
    """``jane@example.com`` -> ``j***@example.com``."""
    return _EMAIL_IN_TEXT.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", value)


def _redact_text(text: str) -> str:
    text = _TELEGRAM_BOT.sub("/bot" + REDACTED, text)
    text = _WEBHOOK_URL.sub(REDACTED, text)
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    text = _CALLBACK_SECRET.sub(r"\1" + REDACTED, text)
    text = _SECRET_QUERY.sub(r"\1" + REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _RELAY_TOKEN.sub(REDACTED, text)
    text = _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
    return mask_email(text)


def is_secret_key(key: str) -> bool:
    """Whether values under ``key`` are treated as secrets (``password``, ``api_key``, ``*_token`` ...)."""
    return bool(_SECRET_KEY_RE.search(key)) and not _SAFE_KEY_RE.search(key)


def redact_value(value: Any, key: str = "") -> Any:
    """``value`` with secrets hidden, recursively, judged by its ``key`` and its content."""
    if key and is_secret_key(key) and value not in (None, "", b""):
        return REDACTED if not isinstance(value, Mapping) else {k: REDACTED for k in value}
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        if key and _PHONE_KEY_RE.search(key) and re.search(r"\d{4,}", value):
            return mask_phone(value)
        return _redact_text(value)
    if isinstance(value, bytes):
        return _redact_text(value.decode("utf-8", "replace"))
    return value


#: Fields libraries add that duplicate ``event`` (uvicorn's ANSI-coloured copy of the message).
_DROPPED_KEYS: Final = ("color_message",)


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor applying :func:`redact_value` to every field of an event."""
    for key in _DROPPED_KEYS:
        event_dict.pop(key, None)
    for key in list(event_dict):
        if key.startswith("_"):  # structlog internals (``_record``, ``_from_structlog``)
            continue
        event_dict[key] = redact_value(event_dict[key], key if key not in ("event", "exception") else "")
    return event_dict


_LEADING_KEYS: Final = ("ts", "level", "logger", "event")


def _order_keys(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """``ts``, ``level``, ``logger`` and ``event`` first, then the bound fields."""
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.stdlib.ExtraAdder(),
    ]


def configure_logging(settings: RelaySettings, *, stream: IO[str] | None = None) -> None:
    """Set up structlog and the standard library from ``settings.logging``.

    ``logging.format`` ``json`` (default) writes one JSON object per line, ``console`` a
    human-readable line; ``logging.file`` (empty = stdout, or ``stream`` when given) is where
    lines go. Calling it again replaces the previous set-up.
    """
    level = logging.getLevelName(settings.logging.level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    renderer: Any
    if settings.logging.format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), redact],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text before redaction, so secrets in them are hidden too.
            structlog.processors.format_exc_info,
            redact,
            _order_keys,
            renderer,
        ],
    )
    handler: logging.Handler
    if settings.logging.file and stream is None:
        handler = logging.FileHandler(settings.logging.file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    handler.set_name("relay")
    # The process has one log format: handlers installed by libraries (a web framework's
    # default dictConfig, basicConfig calls) are replaced, not stacked.
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if old.get_name() == "relay":
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own handlers only with a log_config; make sure its loggers propagate.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "relay") -> Any:
    """A structlog logger named ``name``; log dotted events: ``log.info("relay.x.done", id=1)``."""
    return structlog.stdlib.get_logger(name)
