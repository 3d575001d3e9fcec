"""The matcher language shared by routes, silences, category rules and subscriptions (SPEC S3.4).

A matcher is a JSON object whose conditions are ANDed; ``{}`` matches everything. Flat keys
match labels; the reserved keys ``source``, ``title``, ``title_regex``, ``labels`` and
``fields`` address the rest of the :class:`MatchContext`. Each condition has a *value form*:
a scalar (string equality), a list (membership), or one operator object (``regex``, ``not``,
``contains``, ``exists`` or ``{"op": ..., "value": ...}``).

:func:`normalize_matchers` validates what users save (and converts the Alertmanager-style list
form); :func:`matches` evaluates a saved matcher on the intake hot path. A malformed matcher
that slipped past validation (legacy rows, hand-edited data) matches nothing, so a broken
silence never mutes and a broken route never captures alerts.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from relay_core.domain.errors import ValidationError
from relay_core.domain.model import Category, NormalizedAlert, Route, Team

#: Longest regex accepted on save.
MAX_REGEX_LENGTH: Final = 512
#: Values are cut to this many characters before matching, bounding regex work per alert.
MAX_MATCH_VALUE_LENGTH: Final = 4096

RESERVED_KEYS: Final = frozenset({"source", "title", "title_regex", "labels", "fields"})
#: Labels the context adds when the alert's own labels lack them.
DERIVED_LABELS: Final = ("severity", "status", "source", "category", "team_id", "route_id")
#: Operators of the object form ``{"<operator>": ...}``.
OPERATORS: Final = frozenset({"regex", "not", "contains", "exists"})
#: Operators of the ``{"op": ..., "value": ...}`` form.
OP_NAMES: Final = frozenset({"regex", "equals", "eq", "not_equals", "ne", "neq", "contains", "not_contains"})

_SIMPLE_FIELDS: Final = frozenset({"status", "severity", "source", "title", "message", "category"})
_TEAM_FIELDS: Final = frozenset({"slug", "id", "name"})
_ROUTE_FIELDS: Final = frozenset({"id", "name", "source"})
_PREFIX_FIELDS: Final = frozenset({"labels", "annotations", "payload"})
_LIST_FORM_KEYS: Final = frozenset({"name", "value", "is_regex", "is_equal", "isRegex", "isEqual"})

_Scalar = str | int | float | bool


class _Malformed(Exception):
    """A stored matcher breaks the language; the whole matcher then matches nothing."""


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regex_error(pattern: object) -> str | None:
    if not isinstance(pattern, str):
        return "regex must be a string"
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"regex must be at most {MAX_REGEX_LENGTH} characters"
    try:
        _compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        return f"invalid regex: {exc}"
    return None


def _text(value: object) -> str:
    # JSON spellings for booleans: labels arrive from JSON, where true is "true", not "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(value)


def _is_scalar(value: object) -> bool:
    return isinstance(value, _Scalar)


# --- match context -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MatchContext:
    """Everything a matcher may look at for one alert: labels, fields, team, route, category.

    Build it with :meth:`for_alert` at intake, or directly for a group (subscriptions on later
    events). ``category`` is a category slug.
    """

    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, Any] = attrs.field(factory=dict)
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    status: str = "firing"
    severity: str = "warning"
    source: str = ""
    title: str = ""
    message: str = ""
    category: str | None = None
    team_id: int | None = None
    team_slug: str | None = None
    team_name: str | None = None
    route_id: int | None = None
    route_name: str | None = None
    route_source: str | None = None

    @classmethod
    def for_alert(
        cls,
        alert: NormalizedAlert,
        *,
        team: Team | None = None,
        route: Route | None = None,
        category: Category | str | None = None,
    ) -> MatchContext:
        """The context of a normalized alert, optionally routed to ``route`` of ``team``."""
        team_id = team.id if team is not None else (route.team_id if route is not None else None)
        return cls(
            labels=alert.labels,
            annotations=alert.annotations,
            payload=alert.payload,
            status=alert.status,
            severity=alert.severity,
            source=alert.source,
            title=alert.title,
            message=alert.message,
            category=category.slug if isinstance(category, Category) else category,
            team_id=team_id,
            team_slug=team.slug if team is not None else None,
            team_name=team.name if team is not None else None,
            route_id=route.id if route is not None else None,
            route_name=route.name if route is not None else None,
            route_source=route.source if route is not None else None,
        )

    @functools.cached_property
    def effective_labels(self) -> Mapping[str, str]:
        """The alert's labels plus the derived labels (S3.4) it lacks."""
        derived = {
            "severity": self.severity,
            "status": self.status,
            "source": self.source,
            "category": self.category,
            "team_id": None if self.team_id is None else str(self.team_id),
            "route_id": None if self.route_id is None else str(self.route_id),
        }
        missing = {k: v for k, v in derived.items() if v and k not in self.labels}
        if not missing:
            return self.labels
        return {**self.labels, **missing}

    def label(self, name: str) -> str | None:
        """A label's value (derived labels included), or ``None`` when absent."""
        value = self.effective_labels.get(name)
        return None if value is None else _text(value)

    def value_at(self, path: str) -> str | None:
        """The value at a ``fields`` path (``team.slug``, ``payload.a.b`` ...) as text, or ``None``.

        Raises:
            ValueError: ``path`` is not one of the S3.4 field paths.
        """
        if not isinstance(path, str):
            raise ValueError(f"unknown field path {path!r}")
        head, dot, rest = path.partition(".")
        if not dot:
            if head in _SIMPLE_FIELDS:
                value: object = getattr(self, head)
                return None if value is None else _text(value)
        elif head == "team" and rest in _TEAM_FIELDS:
            value = getattr(self, f"team_{rest}")
            return None if value is None else _text(value)
        elif head == "route" and rest in _ROUTE_FIELDS:
            value = getattr(self, f"route_{rest}")
            return None if value is None else _text(value)
        elif head == "labels" and rest:
            return self.label(rest)
        elif head == "annotations" and rest:
            value = self.annotations.get(rest)
            return None if value is None else _text(value)
        elif head == "payload" and rest and all(rest.split(".")):
            return _dig(self.payload, rest.split("."))
        raise ValueError(f"unknown field path '{path}'")


def _dig(node: object, parts: Sequence[str]) -> str | None:
    for part in parts:
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list | tuple) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if node is None:
            return None
    return _text(node)


def _path_error(path: object) -> str | None:
    if not isinstance(path, str) or not path:
        return "field path must be a non-empty string"
    head, dot, rest = path.partition(".")
    if not dot and head in _SIMPLE_FIELDS:
        return None
    if head == "team" and rest in _TEAM_FIELDS:
        return None
    if head == "route" and rest in _ROUTE_FIELDS:
        return None
    if head in _PREFIX_FIELDS and rest and (head != "payload" or all(rest.split("."))):
        return None
    return (
        f"unknown field path '{path}': use status, severity, source, title, message, category, "
        "team.slug|id|name, route.id|name|source, labels.<name>, annotations.<name> or payload.<path>"
    )


# --- evaluation --------------------------------------------------------------------------


def matches(spec: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, ctx: MatchContext) -> bool:
    """Whether ``ctx`` satisfies every condition of ``spec``; ``{}`` and ``None`` match everything.

    ``spec`` is normally a saved (normalized) object; the Alertmanager list form is accepted too.
    A malformed ``spec`` matches nothing.
    """
    if not spec:
        return True
    try:
        if not isinstance(spec, Mapping):
            spec = _from_list_form(spec)
        return _match_object(spec, ctx)
    except (_Malformed, ValidationError):
        return False


def _match_object(spec: Mapping[str, Any], ctx: MatchContext) -> bool:
    for key, form in spec.items():
        if key == "labels":
            if not isinstance(form, Mapping):
                raise _Malformed
            if not all(_match_value(f, ctx.label(name)) for name, f in form.items()):
                return False
        elif key == "fields":
            if not isinstance(form, Mapping):
                raise _Malformed
            for path, f in form.items():
                try:
                    actual = ctx.value_at(path)
                except ValueError:
                    raise _Malformed from None
                if not _match_value(f, actual):
                    return False
        elif key == "title_regex":
            if not _search(form, ctx.title):
                return False
        elif key == "source":
            if not _match_value(form, ctx.source):
                return False
        elif key == "title":
            if not _match_value(form, ctx.title):
                return False
        elif not _match_value(form, ctx.label(key)):
            return False
    return True


def _search(pattern: object, actual: str) -> bool:
    if not isinstance(pattern, str):
        raise _Malformed
    try:
        compiled = _compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError):
        raise _Malformed from None
    return compiled.search(actual[:MAX_MATCH_VALUE_LENGTH]) is not None


def _equals(expected: object, actual: str | None) -> bool:
    if actual is None:
        return False
    if isinstance(expected, list | tuple):
        return any(_equals(item, actual) for item in expected)
    if not _is_scalar(expected):
        raise _Malformed
    return actual[:MAX_MATCH_VALUE_LENGTH] == _text(expected)


def _contains(needle: object, actual: str | None) -> bool:
    if not _is_scalar(needle):
        raise _Malformed
    return actual is not None and _text(needle) in actual[:MAX_MATCH_VALUE_LENGTH]


def _match_value(form: object, actual: str | None) -> bool:
    """Evaluate one value form against one value (``None`` = absent)."""
    if isinstance(form, Mapping):
        if "op" in form:
            if "value" not in form or len(form) != 2 or not isinstance(form["op"], str):
                raise _Malformed
            op, value = form["op"].lower(), form["value"]
            if op == "regex":
                return actual is not None and _search(value, actual)
            if op in ("equals", "eq"):
                return _equals(value, actual)
            if op in ("not_equals", "ne", "neq"):
                return not _equals(value, actual)
            if op == "contains":
                return _contains(value, actual)
            if op == "not_contains":
                return not _contains(value, actual)
            raise _Malformed
        if len(form) != 1:
            raise _Malformed
        ((operator, operand),) = form.items()
        if operator == "regex":
            return actual is not None and _search(operand, actual)
        if operator == "not":
            return not _match_value(operand, actual)
        if operator == "contains":
            return _contains(operand, actual)
        if operator == "exists":
            if not isinstance(operand, bool):
                raise _Malformed
            return (actual is not None) is operand
        raise _Malformed
    return _equals(form, actual)


# --- validation and normalization --------------------------------------------------------


def normalize_matchers(spec: Any, *, loc: str = "matchers") -> dict[str, Any]:
    """Validate a matcher as saved by a user and return its canonical object form.

    Accepts the object form or the Alertmanager-style list form
    ``[{"name", "value", "is_regex", "is_equal"}]`` (``isRegex``/``isEqual`` spellings too);
    ``None`` and ``[]`` mean ``{}``. Operator names are lower-cased; everything else is kept.

    Raises:
        ValidationError: with one ``{"loc": "matchers.<key>", "message"}`` detail per problem.
    """
    errors: list[dict[str, str]] = []
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        result = _normalize_object(spec, loc, errors)
    elif isinstance(spec, list | tuple):
        result = _from_list_form(spec, loc=loc, errors=errors)
        if not errors:
            result = _normalize_object(result, loc, errors)
    else:
        errors.append(
            {"loc": loc, "message": "matchers must be an object or a list of Alertmanager-style matchers"}
        )
        result = {}
    if errors:
        raise ValidationError("invalid matchers", details=errors)
    return result


def _normalize_object(spec: Mapping[Any, Any], loc: str, errors: list[dict[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, form in spec.items():
        where = f"{loc}.{key}"
        if not isinstance(key, str) or not key:
            errors.append({"loc": where, "message": "matcher keys must be non-empty strings"})
        elif key in ("labels", "fields"):
            if not isinstance(form, Mapping):
                errors.append({"loc": where, "message": f"{key} must be an object"})
                continue
            inner: dict[str, Any] = {}
            for name, sub in form.items():
                sub_where = f"{where}.{name}"
                if key == "labels" and (not isinstance(name, str) or not name):
                    errors.append({"loc": sub_where, "message": "label names must be non-empty strings"})
                    continue
                if key == "fields" and (problem := _path_error(name)) is not None:
                    errors.append({"loc": sub_where, "message": problem})
                    continue
                inner[name] = _normalize_value(sub, sub_where, errors)
            out[key] = inner
        elif key == "title_regex":
            if (problem := _regex_error(form)) is not None:
                errors.append({"loc": where, "message": problem})
            out[key] = form
        else:
            out[key] = _normalize_value(form, where, errors)
    return out


def _normalize_value(form: Any, loc: str, errors: list[dict[str, str]]) -> Any:
    if _is_scalar(form):
        return form
    if form is None:
        errors.append({"loc": loc, "message": 'null is not a matcher value; use {"exists": false}'})
        return form
    if isinstance(form, list | tuple):
        if not all(_is_scalar(item) for item in form):
            errors.append({"loc": loc, "message": "list items must be strings, numbers or booleans"})
        return list(form)
    if not isinstance(form, Mapping):
        errors.append({"loc": loc, "message": "expected a string, number, boolean, list or operator object"})
        return form
    if "op" in form:
        return _normalize_op_form(form, loc, errors)
    if len(form) != 1:
        errors.append(
            {
                "loc": loc,
                "message": "an operator object holds exactly one of regex, not, contains, exists, "
                'or the pair {"op", "value"}',
            }
        )
        return dict(form)
    ((operator, operand),) = form.items()
    if operator == "regex":
        if (problem := _regex_error(operand)) is not None:
            errors.append({"loc": loc, "message": problem})
        return {"regex": operand}
    if operator == "not":
        return {"not": _normalize_value(operand, loc, errors)}
    if operator == "contains":
        if not _is_scalar(operand):
            errors.append({"loc": loc, "message": "contains expects a string"})
        return {"contains": operand}
    if operator == "exists":
        if not isinstance(operand, bool):
            errors.append({"loc": loc, "message": "exists expects true or false"})
        return {"exists": operand}
    errors.append({"loc": loc, "message": f"unknown operator '{operator}'"})
    return dict(form)


def _normalize_op_form(form: Mapping[Any, Any], loc: str, errors: list[dict[str, str]]) -> Any:
    extra = sorted(str(k) for k in form if k not in ("op", "value"))
    op = form["op"]
    if extra:
        errors.append({"loc": loc, "message": f"unexpected keys next to op: {', '.join(extra)}"})
        return dict(form)
    if not isinstance(op, str) or op.lower() not in OP_NAMES:
        errors.append({"loc": loc, "message": f"unknown operator '{op}'"})
        return dict(form)
    if "value" not in form:
        errors.append({"loc": loc, "message": f"operator '{op}' needs a value"})
        return dict(form)
    op, value = op.lower(), form["value"]
    if op == "regex":
        if (problem := _regex_error(value)) is not None:
            errors.append({"loc": loc, "message": problem})
    elif op in ("contains", "not_contains"):
        if not _is_scalar(value):
            errors.append({"loc": loc, "message": f"operator '{op}' expects a string"})
    elif isinstance(value, list | tuple):
        if not all(_is_scalar(item) for item in value):
            errors.append({"loc": loc, "message": "list items must be strings, numbers or booleans"})
        value = list(value)
    elif not _is_scalar(value):
        errors.append({"loc": loc, "message": f"operator '{op}' expects a string, number, boolean or list"})
    return {"op": op, "value": value}


def _from_list_form(
    items: Sequence[Any], *, loc: str = "matchers", errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """Convert ``[{"name", "value", "is_regex", "is_equal"}]`` to the object form.

    The first condition on a label becomes a flat key (or goes under ``labels`` when the name is
    a reserved key), a further one goes under ``labels`` and then under ``fields.labels.<name>``:
    all are ANDed, so a label may carry up to three conditions (two for reserved names).
    """
    collected: list[dict[str, str]] = [] if errors is None else errors
    out: dict[str, Any] = {}
    for index, item in enumerate(items):
        where = f"{loc}.{index}"
        if not isinstance(item, Mapping):
            collected.append({"loc": where, "message": "expected an object with name and value"})
            continue
        unknown = sorted(str(k) for k in item if k not in _LIST_FORM_KEYS)
        name, value = item.get("name"), item.get("value")
        is_regex = item.get("is_regex", item.get("isRegex", False))
        is_equal = item.get("is_equal", item.get("isEqual", True))
        problems = []
        if unknown:
            problems.append(f"unexpected keys: {', '.join(unknown)}")
        if not isinstance(name, str) or not name:
            problems.append("name must be a non-empty string")
        if not _is_scalar(value) or isinstance(value, bool):
            problems.append("value must be a string or a number")
        if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
            problems.append("is_regex and is_equal must be booleans")
        if problems or not isinstance(name, str):
            collected.extend({"loc": where, "message": p} for p in problems)
            continue
        form: Any = _text(value)
        if is_regex:
            if (problem := _regex_error(form)) is not None:
                collected.append({"loc": f"{where}.value", "message": problem})
                continue
            form = {"regex": form}
        if not is_equal:
            form = {"not": form}
        if name not in RESERVED_KEYS and name not in out:
            out[name] = form
        elif name not in out.setdefault("labels", {}):
            out["labels"][name] = form
        elif f"labels.{name}" not in out.setdefault("fields", {}):
            out["fields"][f"labels.{name}"] = form
        else:
            collected.append({"loc": where, "message": f"too many matchers for label '{name}'"})
    if errors is None and collected:
        raise ValidationError("invalid matchers", details=collected)
    # Drop empty reserved containers created by setdefault above.
    return {k: v for k, v in out.items() if not (k in ("labels", "fields") and v == {})}
