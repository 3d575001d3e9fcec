"""Pure helpers shared by intake sources (SPEC S2.3-S2.9).

Sources turn a request body into :class:`~relay_core.domain.model.NormalizedAlert` values
with these helpers, so every source agrees on JSON checks, dedup key generation, label
flattening, host names, timestamps and field limits.

Field limits (S2.3) are applied by :func:`apply_field_limits`, which the intake service
calls on every alert whatever its source (built-in or plugin) and whose flag becomes the
``labels_truncated`` trace step. Sources return full-fidelity values and only clamp the
dedup key, since it is the alert's identity.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final, TypeAlias

import attrs

from relay_core.domain.errors import IntakeValidationError
from relay_core.domain.model import NormalizedAlert

# --- limits (S2.3, S1.5) ------------------------------------------------------------------

MAX_BODY_BYTES: Final = 1_048_576
MAX_JSON_DEPTH: Final = 32
MAX_ITEMS: Final = 1000
MAX_DEDUP_KEY_CHARS: Final = 255
MAX_EXTERNAL_ID_CHARS: Final = 255
MAX_TITLE_CHARS: Final = 255
MAX_MESSAGE_BYTES: Final = 16 * 1024
MAX_LABELS: Final = 100
MAX_LABEL_KEY_CHARS: Final = 128
MAX_LABEL_VALUE_CHARS: Final = 4096
MAX_PAYLOAD_BYTES: Final = 64 * 1024
TRUNCATED_PAYLOAD: Final[Mapping[str, Any]] = {"_truncated": True}

HOSTNAME_LABELS: Final = ("hostname", "host", "nodename", "node", "instance", "ip")
"""Labels :func:`extract_hostname` looks at, in order (S2.6)."""


# --- errors and per-item failures ----------------------------------------------------------


class InvalidJson(IntakeValidationError):
    """The body is not UTF-8 JSON (S2.3: 400 ``invalid_json``, with line/column in the message).

    A :class:`~relay_core.domain.errors.ValidationError` through :class:`IntakeValidationError`,
    so whoever catches the intake error of ``parse`` also gets this one, with its own ``code``.
    """

    code = "invalid_json"

    def __init__(self, reason: str, *, line: int, column: int) -> None:
        super().__init__(f"{reason} at line {line} column {column}")
        self.reason = reason
        self.line = line
        self.column = column


@attrs.frozen(kw_only=True)
class ItemError:
    """One intake item that failed on its own, without failing the rest of its request.

    ``IntakeSource.parse`` returns it in place of the item's alert, so the result keeps the
    input order and the intake service reports this index as a ``failed`` response item
    (S2.15) while the other items are processed. Whole-body problems (invalid JSON, wrong
    shapes, too many items) still raise :class:`IntakeValidationError` and change nothing.
    """

    index: int
    """Position of the item in the request (0 for a single-object body)."""
    message: str
    """Human reason, e.g. ``"unknown status 'x'"``."""
    code: str = "validation_error"
    details: tuple[Mapping[str, str], ...] = ()
    """``{"loc", "message"}`` mappings, as in :class:`IntakeValidationError`."""

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": [dict(d) for d in self.details]}


ParsedItem: TypeAlias = NormalizedAlert | ItemError
"""What ``IntakeSource.parse`` returns per item."""


class ValidationDetails:
    """Collects ``{"loc", "message"}`` problems while a source walks a body, then raises once.

    Every check records the problem and returns a harmless stand-in, so one request reports all
    of its problems instead of the first.
    """

    expected_mapping: ClassVar[str] = "expected a mapping"

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def __bool__(self) -> bool:
        return bool(self.details)

    def add(self, loc: str, message: str) -> None:
        self.details.append({"loc": loc, "message": message})

    def mapping(self, value: Any, loc: str) -> Mapping[str, Any]:
        """``value`` if it is a mapping; ``{}`` when it is missing (``None``) or recorded as wrong."""
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return value
        self.add(loc, self.expected_mapping)
        return {}

    def text(self, value: Any, loc: str) -> str | None:
        """``value`` as a string when it is a string or a number; ``None`` when missing or recorded."""
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.add(loc, "expected a string")
        return None

    def timestamp(self, value: Any, loc: str) -> dt.datetime | None:
        """``value`` per :func:`parse_timestamp`; ``None`` when missing or recorded as invalid."""
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            self.add(loc, str(exc))
            return None

    def raise_if_any(self, message: str) -> None:
        if self.details:
            raise IntakeValidationError(message, details=self.details)


def loc_key(base: str, key: str) -> str:
    """JSONPath-like location of ``key`` under ``base``: ``$.alerts`` or ``$["odd key"]``."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{base}.{key}"
    return f"{base}[{json.dumps(key, ensure_ascii=False)}]"


def loc_index(base: str, index: int) -> str:
    return f"{base}[{index}]"


# --- JSON body checks (S2.3) ----------------------------------------------------------------


def _line_column(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    return line, column


def _constant_position(text: str) -> int:
    """Index of the first bare NaN/Infinity token, outside strings (the rare error path only)."""
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif text.startswith(("NaN", "Infinity", "-Infinity"), index):
            return index
    return 0


class _NonFiniteConstant(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _reject_constant(name: str) -> Any:
    raise _NonFiniteConstant(name)


def json_depth(value: Any, *, limit: int | None = None) -> int:
    """Nesting depth of containers (``{}`` is 1, a scalar 0); stops early past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Iterable[Any] = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        deepest = max(deepest, depth)
        if limit is not None and deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def decode_json_body(
    body: bytes,
    *,
    allow_array: bool,
    max_depth: int = MAX_JSON_DEPTH,
    max_items: int = MAX_ITEMS,
) -> Any:
    """Decode an intake body and apply the generic S2.3 checks, in order.

    Returns:
        The decoded top-level ``dict`` (or ``list`` when ``allow_array``).

    Raises:
        InvalidJson: not UTF-8, not JSON, or uses ``NaN``/``Infinity``; the message names the
            line and column.
        IntakeValidationError: nesting deeper than ``max_depth``, a top level that is not an
            object (or array), or an array with more than ``max_items`` items.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        column = exc.start - body.rfind(b"\n", 0, exc.start)
        raise InvalidJson("body is not valid UTF-8: invalid byte", line=line, column=column) from None
    text = text.removeprefix("\ufeff")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno) from None
    except _NonFiniteConstant as exc:
        line, column = _line_column(text, _constant_position(text))
        raise InvalidJson(f"invalid JSON: {exc.name} is not allowed", line=line, column=column) from None
    except RecursionError:
        value = None
        depth = max_depth + 1
    else:
        depth = json_depth(value, limit=max_depth)
    if depth > max_depth:
        message = f"JSON nesting depth exceeds {max_depth}"
        raise IntakeValidationError(message, details=[{"loc": "$", "message": message}])
    if isinstance(value, dict):
        return value
    if allow_array and isinstance(value, list):
        check_item_count(len(value), "$", max_items=max_items)
        return value
    expected = "expected a JSON object or array" if allow_array else "expected a JSON object"
    raise IntakeValidationError(expected, details=[{"loc": "$", "message": expected}])


def check_item_count(count: int, loc: str, *, max_items: int = MAX_ITEMS) -> None:
    """Raise the S2.3 ``validation_error`` when a request carries more than ``max_items`` items."""
    if count > max_items:
        message = f"too many items: {count} (at most {max_items} per request)"
        raise IntakeValidationError(message, details=[{"loc": loc, "message": message}])


# --- text, labels and dedup keys (S2.4) ------------------------------------------------------


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the input of every generated hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def generated_dedup_key(fields: Mapping[str, Any]) -> str:
    """Lower-case SHA-256 hex of the canonical JSON of a source's identifying fields (S2.4)."""
    return sha256_hex(canonical_json(fields))


def clamp_dedup_key(key: str) -> str:
    """A supplied key longer than 255 characters is replaced by its SHA-256 hex (S2.4)."""
    return key if len(key) <= MAX_DEDUP_KEY_CHARS else sha256_hex(key)


def to_text(value: Any) -> str:
    """A JSON value as label text: strings as-is, ``true``/``false``, numbers, else compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def first_text(*values: Any) -> str | None:
    """The first value whose text is not blank, stripped; ``None`` when all are blank or missing."""
    for value in values:
        text = to_text(value).strip()
        if text:
            return text
    return None


def flatten_labels(labels: Mapping[Any, Any]) -> dict[str, str]:
    """Labels as a flat ``str -> str`` mapping (S2.4).

    Nested values are JSON-serialized (sorted keys, compact), scalars become text and
    ``None`` values are dropped: a null label says nothing a matcher could use.
    """
    return {str(key): to_text(value) for key, value in labels.items() if value is not None}


def merge_labels(base: Mapping[str, str], derived: Mapping[str, str | None]) -> dict[str, str]:
    """Source labels plus derived ones; derived labels win and come first.

    Coming first matters: :func:`apply_field_limits` keeps the first 100 labels, so the labels
    Relay adds (``hostname``, ``event_link``, ``severity_original`` ...) are never the ones dropped.
    Derived values that are ``None`` or empty are left out.
    """
    present = {key: value for key, value in derived.items() if value}
    return {**present, **{key: value for key, value in base.items() if key not in present}}


def team_hint(item: Mapping[str, Any], labels: Mapping[str, str]) -> str | None:
    """``team_slug`` hint (S2.4): ``team``, else ``labels.team``, else ``labels.oncall_team``."""
    return first_text(item.get("team"), labels.get("team"), labels.get("oncall_team"))


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup over any mapping."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def extract_hostname(labels: Mapping[str, str]) -> str | None:
    """Host name from the first non-empty of :data:`HOSTNAME_LABELS` (S2.6).

    Strips a scheme (``https://``), a ``user@`` part, a path/query and a port, and brackets
    of an IPv6 literal: ``https://root@db1.example:9100/metrics`` gives ``db1.example``.
    """
    for name in HOSTNAME_LABELS:
        raw = labels.get(name)
        if not raw:
            continue
        host = _bare_host(str(raw))
        if host:
            return host
    return None


def _bare_host(value: str) -> str:
    text = value.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = re.split(r"[/?#]", text, maxsplit=1)[0]
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else text[1:]
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.strip()


# --- timestamps -----------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime.

    Up to 9 fractional digits are accepted (nanoseconds are cut to microseconds). ``None``,
    an empty string and Go's zero time (``0001-01-01T00:00:00Z``, Alertmanager's "no end")
    give ``None``.

    Raises:
        ValueError: anything else that is not an RFC 3339 timestamp.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            raise ValueError("timestamp must carry a time zone")
        return value.astimezone(dt.UTC)
    if not isinstance(value, str):
        raise ValueError("expected an RFC 3339 timestamp string")
    text = value.strip()
    if not text:
        return None
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid RFC 3339 timestamp {text[:64]!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or ""
    microsecond = int(fraction[:6].ljust(6, "0"))
    if match.group(8):
        offset = dt.timedelta(0)
    else:
        sign = -1 if match.group(9) == "-" else 1
        offset = sign * dt.timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
    if (year, month, day, hour, minute, second, microsecond) == (1, 1, 1, 0, 0, 0, 0) and not offset:
        return None
    try:
        stamp = dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=dt.timezone(offset))
        return stamp.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid RFC 3339 timestamp {text[:64]!r}: {exc}") from None


# --- field limits (S2.3) ----------------------------------------------------------------------


def truncate_chars(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars]


def truncate_utf8(text: str, max_bytes: int) -> str:
    """At most ``max_bytes`` of UTF-8, never splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def limit_labels(labels: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
    """Apply the label limits: first 100 labels, keys ≤ 128 and values ≤ 4096 characters.

    Returns:
        The limited labels and whether anything was dropped or shortened (the
        ``labels_truncated`` trace step).
    """
    limited: dict[str, str] = {}
    truncated = False
    for raw_key, raw_value in labels.items():
        key = str(raw_key)
        value = raw_value if isinstance(raw_value, str) else to_text(raw_value)
        if len(key) > MAX_LABEL_KEY_CHARS:
            key, truncated = key[:MAX_LABEL_KEY_CHARS], True
        if len(value) > MAX_LABEL_VALUE_CHARS:
            value, truncated = value[:MAX_LABEL_VALUE_CHARS], True
        if key in limited:
            truncated = True  # two long keys that share their first 128 characters
            continue
        if len(limited) >= MAX_LABELS:
            truncated = True
            break
        limited[key] = value
    return limited, truncated


def limit_payload(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The payload itself, or ``{"_truncated": True}`` when its JSON exceeds 64 KiB (S1.5)."""
    size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))
    return payload if size <= MAX_PAYLOAD_BYTES else dict(TRUNCATED_PAYLOAD)


def apply_field_limits(alert: NormalizedAlert) -> tuple[NormalizedAlert, bool]:
    """Enforce every S2.3 field limit by truncation, never rejection.

    Title ≤ 255 characters, message ≤ 16 KiB, labels per :func:`limit_labels`, payload per
    :func:`limit_payload`, dedup key per :func:`clamp_dedup_key`, external id ≤ 255 characters.
    Idempotent.

    Returns:
        The limited alert and whether labels were truncated.
    """
    labels, labels_truncated = limit_labels(alert.labels)
    external_id = alert.external_id
    limited = attrs.evolve(
        alert,
        dedup_key=clamp_dedup_key(alert.dedup_key),
        external_id=None if external_id is None else truncate_chars(external_id, MAX_EXTERNAL_ID_CHARS),
        title=truncate_chars(alert.title, MAX_TITLE_CHARS),
        message=truncate_utf8(alert.message, MAX_MESSAGE_BYTES),
        labels=labels,
        payload=limit_payload(alert.payload),
    )
    return limited, labels_truncated
