"""DTMF action validation, resolution of callback events and the spoken menu (S7.3, S7.6)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_core.domain.constants import DEFAULT_DTMF_ACTIONS
from relay_core.domain.dtmf import DTMF_KEYS, dtmf_menu, resolve_dtmf_action, validate_dtmf_actions
from relay_core.domain.errors import ValidationError

KEYS = st.sampled_from(list(DTMF_KEYS))
ACTIONS = st.sampled_from(["acknowledge", "resolve"])
MAPPINGS = st.dictionaries(KEYS, ACTIONS, max_size=6)


# --- validation --------------------------------------------------------------------------


def test_default_mapping_is_valid() -> None:
    """The default `{"1": "acknowledge", "2": "resolve"}` validates unchanged."""
    assert validate_dtmf_actions(DEFAULT_DTMF_ACTIONS) == {"1": "acknowledge", "2": "resolve"}


@given(MAPPINGS)
def test_any_keypad_key_to_either_action_is_valid(mapping: dict[str, str]) -> None:
    """Every key of 0-9 * # may map to acknowledge or resolve."""
    assert validate_dtmf_actions(mapping) == mapping


def test_case_and_spaces_are_forgiven() -> None:
    """Values are lower-cased and keys and values trimmed."""
    assert validate_dtmf_actions({" 3 ": " Resolve "}) == {"3": "resolve"}


@pytest.mark.parametrize(
    ("mapping", "loc", "message"),
    [
        ({"10": "acknowledge"}, "dtmf_actions.10", "key must be one of 0-9, * or #"),
        ({"a": "acknowledge"}, "dtmf_actions.a", "key must be one of 0-9, * or #"),
        ({"": "acknowledge"}, "dtmf_actions.", "key must be one of 0-9, * or #"),
        ({"1": "escalate"}, "dtmf_actions.1", "action must be acknowledge or resolve"),
        ({"1": None}, "dtmf_actions.1", "action must be acknowledge or resolve"),
        (["1", "acknowledge"], "dtmf_actions", "must be an object"),
        (None, "dtmf_actions", "must be an object"),
    ],
)
def test_invalid_mappings_are_rejected(mapping: Any, loc: str, message: str) -> None:
    """Bad keys, bad actions and non-objects are 400 validation errors naming the key."""
    with pytest.raises(ValidationError) as info:
        validate_dtmf_actions(mapping)
    assert info.value.code == "validation_error"
    assert any(d["loc"] == loc and message in d["message"] for d in info.value.details), info.value.details


def test_all_problems_are_reported() -> None:
    """Each bad entry gets its own detail."""
    with pytest.raises(ValidationError) as info:
        validate_dtmf_actions({"1": "acknowledge", "x": "resolve", "2": "page"})
    assert [d["loc"] for d in info.value.details] == ["dtmf_actions.x", "dtmf_actions.2"]


# --- resolving callback events -----------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "digit", "action", "expected"),
    [
        ("dtmf", "1", None, ("acknowledge", "digit_mapped")),
        ("dtmf", " 2 ", None, ("resolve", "digit_mapped")),
        ("dtmf", "9", None, (None, "digit_not_mapped")),
        ("dtmf", None, None, (None, "no_digit_or_action")),
        ("dtmf", "", "", (None, "no_digit_or_action")),
        ("dtmf", None, "escalate", (None, "unknown_action")),
        ("dtmf", "1", "escalate", ("acknowledge", "digit_mapped")),
        ("dtmf", "1", "resolve", ("resolve", "provider_action")),
        ("dtmf", None, "Acknowledge", ("acknowledge", "provider_action")),
        ("status", None, "resolve", ("resolve", "provider_action")),
        ("status", "1", None, (None, "not_dtmf")),
        ("error", None, None, (None, "not_dtmf")),
        ("DTMF", "1", None, ("acknowledge", "digit_mapped")),
    ],
)
def test_resolve_action(
    event_type: str, digit: str | None, action: str | None, expected: tuple[Any, str]
) -> None:
    """A normalized provider action wins; otherwise a DTMF digit is looked up in the mapping."""
    assert (
        resolve_dtmf_action(
            event_type=event_type, digit=digit, action=action, dtmf_actions=DEFAULT_DTMF_ACTIONS
        )
        == expected
    )


@given(MAPPINGS, KEYS)
def test_digit_resolves_through_the_mapping(mapping: dict[str, str], digit: str) -> None:
    """For a DTMF event without a provider action the result is exactly the mapping's entry."""
    action, reason = resolve_dtmf_action(event_type="dtmf", digit=digit, action=None, dtmf_actions=mapping)
    assert action == mapping.get(digit)
    assert reason == ("digit_mapped" if digit in mapping else "digit_not_mapped")


@given(MAPPINGS, st.one_of(st.none(), KEYS), ACTIONS, st.sampled_from(["dtmf", "status", "error"]))
def test_provider_action_always_wins(
    mapping: dict[str, str], digit: str | None, action: str, event: str
) -> None:
    """Whatever the digit and event type, a provider-sent acknowledge/resolve is used as is."""
    assert resolve_dtmf_action(event_type=event, digit=digit, action=action, dtmf_actions=mapping) == (
        action,
        "provider_action",
    )


def test_corrupt_mapping_value_counts_as_not_mapped() -> None:
    """A stored mapping value that is not an action never becomes one."""
    assert resolve_dtmf_action(event_type="dtmf", digit="1", action=None, dtmf_actions={"1": "page"}) == (
        None,
        "digit_not_mapped",
    )


# --- menu --------------------------------------------------------------------------------


def test_default_menu() -> None:
    """The default mapping renders the S7.3 sentence."""
    assert dtmf_menu(DEFAULT_DTMF_ACTIONS) == "Press 1 to acknowledge. Press 2 to resolve."


def test_menu_reads_keys_in_keypad_order_and_names_symbols() -> None:
    """Keys are read 1–9, 0, star, pound whatever the mapping order."""
    mapping = {"#": "resolve", "0": "acknowledge", "*": "acknowledge", "5": "resolve"}
    assert dtmf_menu(mapping) == (
        "Press 5 to resolve. Press 0 to acknowledge. Press star to acknowledge. Press pound to resolve."
    )


def test_empty_mapping_gives_empty_menu() -> None:
    """No actions, no menu (the template then drops the empty sentence)."""
    assert dtmf_menu({}) == ""


@given(MAPPINGS)
def test_menu_has_one_sentence_per_entry(mapping: dict[str, str]) -> None:
    """Every mapped key is announced exactly once."""
    menu = dtmf_menu(mapping)
    assert menu.count("Press ") == len(mapping)
