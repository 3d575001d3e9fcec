"""Phone keypad (DTMF) actions of voice calls (SPEC S7.3, S7.6).

A ``voice_call`` channel maps keys to actions (``{"1": "acknowledge", "2": "resolve"}``).
:func:`resolve_dtmf_action` turns a provider callback event into the action to perform and a
reason the callback handler logs; :func:`dtmf_menu` renders the spoken menu.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from relay_core.domain import constants as c
from relay_core.domain.errors import ValidationError

#: Keys a caller can press, in keypad reading order (used to order the spoken menu).
DTMF_KEYS: Final = "1234567890*#"
DTMF_ACTIONS: Final = (c.ACTION_ACKNOWLEDGE, c.ACTION_RESOLVE)
EVENT_DTMF: Final = "dtmf"

# Reasons returned by resolve_dtmf_action.
REASON_PROVIDER_ACTION: Final = "provider_action"
"""The provider sent a normalized ``acknowledge``/``resolve`` action."""
REASON_DIGIT_MAPPED: Final = "digit_mapped"
"""The pressed digit maps to an action."""
REASON_NOT_DTMF: Final = "not_dtmf"
"""A status or error event without an action: nothing to perform."""
REASON_NO_DIGIT_OR_ACTION: Final = "no_digit_or_action"
"""A DTMF event carrying neither: log ``voice dtmf event without digit or action``."""
REASON_UNKNOWN_ACTION: Final = "unknown_action"
"""A DTMF event with an action other than acknowledge/resolve and no digit."""
REASON_DIGIT_NOT_MAPPED: Final = "digit_not_mapped"
"""The digit maps to nothing: log ``voice dtmf digit not mapped``; event result ``ignored``."""

_SPOKEN_KEYS: Final = {"*": "star", "#": "pound"}


def validate_dtmf_actions(mapping: Any, *, loc: str = "dtmf_actions") -> dict[str, str]:
    """Check a channel's ``dtmf_actions`` and return it as a plain dict.

    Keys must be one of ``0-9``, ``*``, ``#``; values ``acknowledge`` or ``resolve``
    (surrounding spaces and case are forgiven).

    Raises:
        ValidationError: one ``{"loc": "dtmf_actions.<key>", "message"}`` detail per problem.
    """
    if not isinstance(mapping, Mapping):
        raise ValidationError(
            "invalid dtmf_actions",
            details=[{"loc": loc, "message": "dtmf_actions must be an object mapping keys to actions"}],
        )
    details: list[dict[str, str]] = []
    result: dict[str, str] = {}
    for key, value in mapping.items():
        where = f"{loc}.{key}"
        digit = key.strip() if isinstance(key, str) else str(key)
        if len(digit) != 1 or digit not in DTMF_KEYS:
            details.append({"loc": where, "message": "key must be one of 0-9, * or #"})
            continue
        action = value.strip().lower() if isinstance(value, str) else None
        if action not in DTMF_ACTIONS:
            details.append({"loc": where, "message": "action must be acknowledge or resolve"})
            continue
        result[digit] = action
    if details:
        raise ValidationError("invalid dtmf_actions", details=details)
    return result


def _clean(value: str | None) -> str:
    return (value or "").strip()


def resolve_dtmf_action(
    *,
    event_type: str,
    digit: str | None,
    action: str | None,
    dtmf_actions: Mapping[str, str],
) -> tuple[str | None, str]:
    """The action a voice callback event asks for, and why (S7.6).

    A normalized provider ``action`` (``acknowledge``/``resolve``) wins for any event type;
    otherwise a ``dtmf`` event's digit is looked up in ``dtmf_actions``.

    Returns:
        ``(action, reason)``: ``action`` is ``acknowledge``, ``resolve`` or ``None``; ``reason``
        is one of the ``REASON_*`` constants.
    """
    provider_action = _clean(action).lower()
    if provider_action in DTMF_ACTIONS:
        return provider_action, REASON_PROVIDER_ACTION
    if _clean(event_type).lower() != EVENT_DTMF:
        return None, REASON_NOT_DTMF
    pressed = _clean(digit)
    if not pressed:
        return None, (REASON_UNKNOWN_ACTION if provider_action else REASON_NO_DIGIT_OR_ACTION)
    mapped = _clean(dtmf_actions.get(pressed)).lower()
    if mapped in DTMF_ACTIONS:
        return mapped, REASON_DIGIT_MAPPED
    return None, REASON_DIGIT_NOT_MAPPED


def dtmf_menu(dtmf_actions: Mapping[str, str]) -> str:
    """The spoken menu, e.g. ``"Press 1 to acknowledge. Press 2 to resolve."``.

    Keys are read in keypad order (1–9, 0, star, pound); invalid entries are left out, and an
    empty mapping gives ``""``.
    """
    entries = sorted(
        (
            (key, action)
            for key, action in dtmf_actions.items()
            if isinstance(key, str) and len(key) == 1 and key in DTMF_KEYS and action in DTMF_ACTIONS
        ),
        key=lambda entry: DTMF_KEYS.index(entry[0]),
    )
    return " ".join(f"Press {_SPOKEN_KEYS.get(key, key)} to {action}." for key, action in entries)
