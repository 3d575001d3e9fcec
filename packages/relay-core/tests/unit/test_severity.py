"""Severity normalization and ordering (SPEC S2.5)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_core.domain import constants as c
from relay_core.domain.severity import (
    is_known_severity,
    most_urgent,
    normalize_severity,
    severity_rank,
    unrecognized_original,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", c.SEV_CRITICAL),
        ("CRIT", c.SEV_CRITICAL),
        ("error", c.SEV_CRITICAL),
        ("Fatal", c.SEV_CRITICAL),
        ("disaster", c.SEV_CRITICAL),
        ("emergency", c.SEV_CRITICAL),
        ("P1", c.SEV_CRITICAL),
        ("high", c.SEV_HIGH),
        ("medium", c.SEV_MEDIUM),
        ("avg", c.SEV_MEDIUM),
        ("Average", c.SEV_MEDIUM),
        ("warning", c.SEV_WARNING),
        ("warn", c.SEV_WARNING),
        ("low", c.SEV_LOW),
        ("info", c.SEV_INFO),
        ("information", c.SEV_INFO),
        ("informational", c.SEV_INFO),
        ("not_classified", c.SEV_INFO),
        ("Not classified", c.SEV_INFO),
        ("notice", c.SEV_INFO),
        ("OK", c.SEV_INFO),
        (" critical ", c.SEV_CRITICAL),
    ],
)
def test_aliases_map_to_canonical_severity(value: str, expected: str) -> None:
    """Every S2.5 alias maps case-insensitively to its canonical severity and keeps the original text."""
    assert normalize_severity(value, default=c.SEV_INFO) == (expected, value)


@pytest.mark.parametrize("value", ["sev2", "P3", "urgent", "5", 7, True])
def test_unknown_severity_becomes_warning_with_original(value: Any) -> None:
    """An unrecognised value maps to warning and is kept as text in original_severity."""
    severity, original = normalize_severity(value, default=c.SEV_INFO)
    assert severity == c.SEV_WARNING
    assert original == {True: "true"}.get(value, str(value))
    assert unrecognized_original(original) == original


@pytest.mark.parametrize("value", [None, "", "   "])
@pytest.mark.parametrize("default", [c.SEV_WARNING, c.SEV_INFO])
def test_missing_severity_uses_source_default(value: Any, default: str) -> None:
    """A missing or blank severity takes the source default and reports no original."""
    assert normalize_severity(value, default=default) == (default, None)


def test_default_must_be_canonical() -> None:
    """A default that is not a canonical severity is a programming error."""
    with pytest.raises(ValueError, match="default severity"):
        normalize_severity("high", default="sev1")


@given(value=json_values, default=st.sampled_from(c.SEVERITIES))
def test_normalize_severity_is_total(value: Any, default: str) -> None:
    """Any JSON value yields a canonical severity, and the original is None exactly when nothing was said."""
    severity, original = normalize_severity(value, default=default)
    assert severity in c.SEVERITIES
    if original is None:
        assert severity == default
    else:
        assert original.strip()
        assert severity == c.SEV_WARNING or is_known_severity(original)


def test_known_severity_is_not_reported_as_unrecognized() -> None:
    """Canonical names and aliases need no severity_original label; missing values neither."""
    assert unrecognized_original("P1") is None
    assert unrecognized_original(None) is None
    assert unrecognized_original("sev1") == "sev1"


def test_rank_orders_most_urgent_first() -> None:
    """Ranks follow the canonical order, critical first, aliases ranking as their canonical value."""
    assert [severity_rank(s) for s in c.SEVERITIES] == [0, 1, 2, 3, 4, 5]
    assert severity_rank("P1") == 0
    assert severity_rank("bogus") == severity_rank(c.SEV_WARNING)


def test_most_urgent_picks_lowest_rank() -> None:
    """The most urgent severity wins, None entries are skipped and an empty input gives None."""
    assert most_urgent([c.SEV_INFO, c.SEV_HIGH, c.SEV_WARNING]) == c.SEV_HIGH
    assert most_urgent(iter([None, c.SEV_LOW, "crit"])) == c.SEV_CRITICAL
    assert most_urgent([]) is None
    assert most_urgent([None]) is None


@given(st.lists(st.sampled_from(c.SEVERITIES), min_size=1))
def test_most_urgent_is_the_minimum_rank(severities: list[str]) -> None:
    """most_urgent agrees with sorting by rank."""
    assert most_urgent(severities) == min(severities, key=severity_rank)
