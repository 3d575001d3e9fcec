"""Helpers shared by intake sources (SPEC S2.3, S2.4, S2.6)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_core.domain.errors import IntakeValidationError
from relay_core.domain.intake import (
    MAX_LABELS,
    InvalidJson,
    ItemError,
    ValidationDetails,
    apply_field_limits,
    clamp_dedup_key,
    decode_json_body,
    extract_hostname,
    first_text,
    flatten_labels,
    generated_dedup_key,
    get_header,
    limit_labels,
    limit_payload,
    loc_key,
    merge_labels,
    parse_timestamp,
    team_hint,
    truncate_utf8,
)
from relay_core.domain.model import NormalizedAlert

UTC = dt.UTC

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


# --- dedup keys -------------------------------------------------------------------------------


def test_generated_dedup_key_is_sha256_of_canonical_json() -> None:
    """The generated key is the lower-case SHA-256 hex of sorted-key JSON without spaces."""
    fields = {"source": "alertmanager", "labels": {"instance": "host1", "alertname": "DiskFull"}}
    canonical = '{"labels":{"alertname":"DiskFull","instance":"host1"},"source":"alertmanager"}'
    assert generated_dedup_key(fields) == hashlib.sha256(canonical.encode()).hexdigest()


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_generated_dedup_key_ignores_key_order(fields: dict[str, Any]) -> None:
    """The same fields in any insertion order give the same 64-character hex key."""
    reordered = dict(reversed(list(fields.items())))
    key = generated_dedup_key(fields)
    assert key == generated_dedup_key(reordered)
    assert len(key) == 64
    assert key == key.lower()


def test_clamp_dedup_key_hashes_only_long_keys() -> None:
    """A supplied key up to 255 characters is kept; a longer one becomes its SHA-256 hex."""
    assert clamp_dedup_key("k" * 255) == "k" * 255
    long_key = "k" * 256
    assert clamp_dedup_key(long_key) == hashlib.sha256(long_key.encode()).hexdigest()


# --- labels -----------------------------------------------------------------------------------


def test_flatten_labels_serializes_nested_values() -> None:
    """Scalars become text, nested values compact sorted JSON, and null labels are dropped."""
    labels = {
        "a": "x",
        "n": 3,
        "f": 1.5,
        "b": True,
        "none": None,
        "nested": {"z": 1, "a": [1, "two"]},
        "l": [],
    }
    assert flatten_labels(labels) == {
        "a": "x",
        "n": "3",
        "f": "1.5",
        "b": "true",
        "nested": '{"a":[1,"two"],"z":1}',
        "l": "[]",
    }


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=8))
def test_flatten_labels_is_flat_and_lossless(labels: dict[str, Any]) -> None:
    """Flattened labels are str -> str, keep every non-null key, and nested values decode back."""
    flat = flatten_labels(labels)
    assert set(flat) == {key for key, value in labels.items() if value is not None}
    for key, text in flat.items():
        assert isinstance(text, str)
        value = labels[key]
        if isinstance(value, str):
            assert text == value
        elif isinstance(value, dict | list):
            assert json.loads(text) == value


def test_merge_labels_puts_derived_labels_first_and_lets_them_win() -> None:
    """Derived labels override source labels, come first, and empty derived values are left out."""
    merged = merge_labels(
        {"alertname": "A", "hostname": "raw"}, {"hostname": "h1", "event_link": None, "x": ""}
    )
    assert merged == {"hostname": "h1", "alertname": "A"}
    assert next(iter(merged)) == "hostname"


def test_limit_labels_keeps_first_hundred_and_flags_truncation() -> None:
    """Extra labels are dropped, long keys and values shortened, and the flag reports it."""
    many = {f"k{i:03}": "v" for i in range(150)}
    limited, truncated = limit_labels(many)
    assert truncated is True
    assert list(limited) == [f"k{i:03}" for i in range(MAX_LABELS)]

    limited, truncated = limit_labels({"k" * 200: "v" * 5000})
    assert truncated is True
    assert limited == {"k" * 128: "v" * 4096}

    limited, truncated = limit_labels({"a": "b"})
    assert (limited, truncated) == ({"a": "b"}, False)


def test_limit_labels_counts_key_collisions_after_truncation() -> None:
    """Two long keys sharing their first 128 characters keep the first one and flag truncation."""
    limited, truncated = limit_labels({"k" * 130 + "1": "first", "k" * 130 + "2": "second"})
    assert limited == {"k" * 128: "first"}
    assert truncated is True


# --- field limits -------------------------------------------------------------------------------


def test_apply_field_limits_truncates_every_field() -> None:
    """Title, message (by UTF-8 bytes), labels, payload, dedup key and external id are all bounded."""
    alert = NormalizedAlert(
        source="webhook",
        dedup_key="d" * 300,
        external_id="e" * 300,
        title="t" * 300,
        message="é" * 10_000,  # 20000 bytes
        labels={f"k{i}": "v" for i in range(120)},
        payload={"blob": "x" * 70_000},
    )
    limited, labels_truncated = apply_field_limits(alert)
    assert labels_truncated is True
    assert limited.title == "t" * 255
    assert limited.message == "é" * 8192
    assert len(limited.labels) == 100
    assert limited.payload == {"_truncated": True}
    assert limited.dedup_key == hashlib.sha256(("d" * 300).encode()).hexdigest()
    assert limited.external_id == "e" * 255


def test_apply_field_limits_is_idempotent_and_leaves_small_alerts_alone() -> None:
    """A second pass changes nothing and reports no truncation."""
    alert = NormalizedAlert(source="webhook", dedup_key="k", title="t", labels={"a": "b"}, payload={"a": 1})
    limited, truncated = apply_field_limits(alert)
    assert (limited, truncated) == (alert, False)
    big = attrs.evolve(alert, labels={f"k{i}": "v" for i in range(101)})
    once, _ = apply_field_limits(big)
    assert apply_field_limits(once) == (once, False)


def test_truncate_utf8_never_splits_a_character() -> None:
    """Cutting inside a multi-byte character drops the partial character."""
    assert truncate_utf8("aé", 2) == "a"
    assert truncate_utf8("aé", 3) == "aé"


def test_limit_payload_boundary() -> None:
    """A payload of exactly 64 KiB of JSON is kept; one byte more is replaced."""
    filler = 65536 - len('{"a":""}')
    assert limit_payload({"a": "x" * filler}) == {"a": "x" * filler}
    assert limit_payload({"a": "x" * (filler + 1)}) == {"_truncated": True}


# --- host names, hints, headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"instance": "host1:9100"}, "host1"),
        ({"instance": "https://root@db1.example:8443/metrics?x=1"}, "db1.example"),
        ({"instance": "[2001:db8::1]:9100"}, "2001:db8::1"),
        ({"instance": "2001:db8::1"}, "2001:db8::1"),
        ({"ip": "10.0.0.5:22"}, "10.0.0.5"),
        ({"hostname": "web-1", "instance": "other:9100"}, "web-1"),
        ({"host": "", "nodename": "node-a"}, "node-a"),
        ({"job": "x"}, None),
    ],
)
def test_extract_hostname(labels: dict[str, str], expected: str | None) -> None:
    """The first host-like label wins, stripped of scheme, user, path, port and IPv6 brackets."""
    assert extract_hostname(labels) == expected


def test_team_hint_order() -> None:
    """The team hint comes from team, then labels.team, then labels.oncall_team."""
    assert team_hint({"team": "infra"}, {"team": "db"}) == "infra"
    assert team_hint({}, {"team": "db", "oncall_team": "ops"}) == "db"
    assert team_hint({}, {"oncall_team": "ops"}) == "ops"
    assert team_hint({"team": " "}, {}) is None


def test_first_text_and_headers() -> None:
    """first_text skips blanks and stringifies; header lookup ignores case."""
    assert first_text(None, "  ", 0, "x") == "0"
    assert first_text(None, "") is None
    assert get_header({"X-Grafana-Alerting-Signature": "ab"}, "x-grafana-alerting-signature") == "ab"
    assert get_header({}, "X-Missing") is None


# --- timestamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-01T07:00:00Z", dt.datetime(2026, 6, 1, 7, tzinfo=UTC)),
        ("2026-06-01T07:00:00.123456789Z", dt.datetime(2026, 6, 1, 7, 0, 0, 123456, tzinfo=UTC)),
        ("2026-06-01T07:00:00.5+02:00", dt.datetime(2026, 6, 1, 5, 0, 0, 500000, tzinfo=UTC)),
        ("2026-06-01t07:00:00-01:30", dt.datetime(2026, 6, 1, 8, 30, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(text: str | None, expected: dt.datetime | None) -> None:
    """RFC 3339 with up to 9 fractional digits parses to aware UTC; Go zero time means null."""
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "2026-06-01T07:00:00", "2026-06-01T07:00:00.1234567890Z", "2026-13-01T00:00:00Z", 5]
)
def test_parse_timestamp_rejects_invalid(text: Any) -> None:
    """Anything that is not an RFC 3339 timestamp with a zone raises ValueError."""
    with pytest.raises(ValueError):
        parse_timestamp(text)


# --- JSON body checks ------------------------------------------------------------------------------


def test_decode_json_body_reports_line_and_column() -> None:
    """Invalid JSON is invalid_json with the position in the message."""
    with pytest.raises(InvalidJson, match=r"line 2 column 9") as info:
        decode_json_body(b'{"a": 1,\n "b": 2,,}', allow_array=False)
    assert info.value.code == "invalid_json"
    assert (info.value.line, info.value.column) == (2, 9)


def test_decode_json_body_rejects_non_utf8() -> None:
    """A body that is not UTF-8 is invalid_json naming the offending byte's position."""
    with pytest.raises(InvalidJson, match=r"UTF-8.*line 2 column 5"):
        decode_json_body(b'{"a":\n"caf\xe9 x"}', allow_array=False)


def test_decode_json_body_rejects_nan() -> None:
    """Non-standard constants such as NaN are invalid JSON, located outside strings."""
    with pytest.raises(InvalidJson, match=r"NaN is not allowed at line 1 column 19"):
        decode_json_body(b'{"s": "NaN", "v": NaN}', allow_array=False)


def test_decode_json_body_accepts_a_bom() -> None:
    """A UTF-8 byte order mark is tolerated."""
    assert decode_json_body(b'\xef\xbb\xbf{"a": 1}', allow_array=False) == {"a": 1}


def test_decode_json_body_depth_limit() -> None:
    """Depth 32 passes, 33 is a validation_error, and absurd nesting never escapes as RecursionError."""
    ok = b'{"a":' * 31 + b"{}" + b"}" * 31
    assert decode_json_body(ok, allow_array=False)
    too_deep = b'{"a":' * 32 + b"{}" + b"}" * 32
    with pytest.raises(IntakeValidationError, match="depth exceeds 32") as info:
        decode_json_body(too_deep, allow_array=False)
    assert info.value.code == "validation_error"
    with pytest.raises(IntakeValidationError, match="depth"):
        decode_json_body(b"[" * 200_000 + b"]" * 200_000, allow_array=True)


def test_decode_json_body_top_level_and_items() -> None:
    """The top level must be an object (or an array where allowed) of at most 1000 items."""
    with pytest.raises(IntakeValidationError) as info:
        decode_json_body(b"[]", allow_array=False)
    assert info.value.details == [{"loc": "$", "message": "expected a JSON object"}]
    with pytest.raises(IntakeValidationError, match="JSON object or array"):
        decode_json_body(b'"text"', allow_array=True)
    assert decode_json_body(json.dumps([{}] * 1000).encode(), allow_array=True) == [{}] * 1000
    with pytest.raises(IntakeValidationError, match="too many items: 1001"):
        decode_json_body(json.dumps([{}] * 1001).encode(), allow_array=True)


# --- validation details and item errors ---------------------------------------------------------


def test_validation_details_collect_every_problem() -> None:
    """All recorded problems are raised together with their locations."""
    problems = ValidationDetails()
    assert problems.mapping(None, "$.a") == {}
    assert problems.mapping({"x": 1}, "$.a") == {"x": 1}
    assert problems.mapping([1], "$.alerts[0].labels") == {}
    assert problems.text(5, "$.b") == "5"
    assert problems.text({}, "$.c") is None
    assert problems.timestamp("nope", "$.alerts[0].startsAt") is None
    with pytest.raises(IntakeValidationError) as info:
        problems.raise_if_any("payload is invalid")
    assert [d["loc"] for d in info.value.details] == ["$.alerts[0].labels", "$.c", "$.alerts[0].startsAt"]
    assert info.value.details[0]["message"] == "expected a mapping"


def test_loc_key_quotes_odd_keys() -> None:
    """Identifier-like keys use dots; others use quoted brackets."""
    assert loc_key("$", "alerts") == "$.alerts"
    assert loc_key("$.labels", "a b") == '$.labels["a b"]'


def test_item_error_as_dict() -> None:
    """An item error renders like an error body, defaulting to validation_error."""
    error = ItemError(
        index=1, message="unknown status 'x'", details=({"loc": "$[1].status", "message": "m"},)
    )
    assert error.as_dict() == {
        "error": "validation_error",
        "message": "unknown status 'x'",
        "details": [{"loc": "$[1].status", "message": "m"}],
    }


def test_invalid_json_is_an_intake_validation_error() -> None:
    """InvalidJson is caught as an IntakeValidationError yet keeps its own code and status."""
    with pytest.raises(IntakeValidationError) as info:
        decode_json_body(b"", allow_array=False)
    assert isinstance(info.value, InvalidJson)
    assert (info.value.code, info.value.status) == ("invalid_json", 400)
    assert info.value.as_dict()["message"] == "invalid JSON: Expecting value at line 1 column 1"
