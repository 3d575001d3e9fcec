"""Severity normalization and ordering (SPEC S2.5).

Every intake source maps whatever its sender calls a severity onto the six canonical
values of :data:`relay_core.domain.constants.SEVERITIES`, most urgent first. The raw value
is kept next to the canonical one so nothing a sender said is lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from relay_core.domain import constants as c

_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(c.SEVERITIES)}

ALIASES: Final[dict[str, str]] = {
    **{name: name for name in c.SEVERITIES},
    "crit": c.SEV_CRITICAL,
    "error": c.SEV_CRITICAL,
    "fatal": c.SEV_CRITICAL,
    "disaster": c.SEV_CRITICAL,
    "emergency": c.SEV_CRITICAL,
    "p1": c.SEV_CRITICAL,
    "avg": c.SEV_MEDIUM,
    "average": c.SEV_MEDIUM,
    "warn": c.SEV_WARNING,
    "information": c.SEV_INFO,
    "informational": c.SEV_INFO,
    "not_classified": c.SEV_INFO,
    "not classified": c.SEV_INFO,
    "notice": c.SEV_INFO,
    "ok": c.SEV_INFO,
}
"""Lower-case spelling -> canonical severity; the canonical names map to themselves."""

FALLBACK: Final = c.SEV_WARNING
"""What an unrecognised severity becomes."""


def _raw_text(value: Any) -> str | None:
    """The sender's value as text, or ``None`` when it says nothing."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if text.strip() else None


def canonical_severity(value: Any) -> str | None:
    """The canonical severity a value names (case-insensitive, aliases included), else ``None``."""
    text = _raw_text(value)
    if text is None:
        return None
    return ALIASES.get(text.strip().lower())


def is_known_severity(value: Any) -> bool:
    """Whether ``value`` is a canonical severity or one of its S2.5 aliases."""
    return canonical_severity(value) is not None


def normalize_severity(value: Any, *, default: str) -> tuple[str, str | None]:
    """Map a sender's severity to ``(canonical, original)``.

    Args:
        value: Whatever the sender supplied; ``None`` and blank strings count as missing.
        default: The canonical severity used when ``value`` is missing (S2.5: ``warning``
            for Alertmanager and Grafana, ``info`` for the generic webhook).

    Returns:
        The canonical severity and the original value as text (``None`` when missing, so
        callers can tell a defaulted severity apart). An unrecognised value maps to
        ``warning``.

    Raises:
        ValueError: ``default`` is not a canonical severity.
    """
    if default not in _RANK:
        raise ValueError(f"default severity must be one of {', '.join(c.SEVERITIES)}, not {default!r}")
    original = _raw_text(value)
    if original is None:
        return default, None
    return ALIASES.get(original.strip().lower(), FALLBACK), original


def unrecognized_original(original: str | None) -> str | None:
    """``original`` when it is a value S2.5 does not know (kept as ``labels.severity_original``)."""
    if original is None or is_known_severity(original):
        return None
    return original


def severity_rank(severity: str) -> int:
    """Urgency rank, ``0`` for ``critical`` up to ``5`` for ``info``.

    Aliases rank as their canonical severity and unrecognised values as ``warning``, the
    same way :func:`normalize_severity` maps them.
    """
    return _RANK[ALIASES.get(severity.strip().lower(), FALLBACK)]


def most_urgent(severities: Iterable[str | None]) -> str | None:
    """The most urgent canonical severity among ``severities`` (``None`` entries skipped).

    Returns ``None`` for an empty input (for example a group whose children are all resolved).
    """
    best: int | None = None
    for severity in severities:
        if severity is None:
            continue
        rank = severity_rank(severity)
        if best is None or rank < best:
            best = rank
    return None if best is None else c.SEVERITIES[best]
