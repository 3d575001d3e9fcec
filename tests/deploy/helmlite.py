"""A small renderer for the subset of Go templates and Sprig functions the Relay chart uses.

Used by the deployment tests when ``helm`` is not installed, so the chart is still rendered and
its output parsed as YAML. It implements Go's ``text/template`` actions (``if``/``else if``/
``else``, ``with``, ``range``, ``define``, ``end``, variables, pipelines, ``{{-``/``-}}`` trimming)
and the functions the chart calls; anything else raises, so a template that starts using more
fails loudly here instead of rendering wrongly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TemplateError", "render_chart"]


class TemplateError(Exception):
    pass


_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.S)
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+)|(?P<assign>:=)|(?P<pipe>\|)|(?P<lp>\()|(?P<rp>\))'
    r"|(?P<var>\$\w*(?:\.\w+)*)|(?P<field>(?:\.\w+)+|\.)|(?P<ident>\w+))"
)


# --- parsing ------------------------------------------------------------------------------------


def _lex(template: str) -> list[tuple[str, str]]:
    """Text and action pieces with Go's whitespace trimming applied."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match[1]:
            text = text.rstrip()
        pieces.append(("text", text))
        body = match[2]
        if not body.startswith("/*"):
            pieces.append(("action", body))
        trim_next = bool(match[3])
        pos = match.end()
    text = template[pos:]
    pieces.append(("text", text.lstrip() if trim_next else text))
    return pieces


def _parse(
    pieces: list[tuple[str, str]], start: int, defines: dict[str, list[Any]]
) -> tuple[list[Any], int, str]:
    """Nodes up to a closing ``end``/``else``; returns (nodes, next index, the closing action)."""
    nodes: list[Any] = []
    i = start
    while i < len(pieces):
        kind, body = pieces[i]
        i += 1
        if kind == "text":
            if body:
                nodes.append(("text", body))
            continue
        word = body.split(None, 1)[0] if body else ""
        rest = body[len(word) :].strip()
        if word == "end" or word == "else":
            return nodes, i, body
        if word in ("if", "with", "range"):
            branches: list[tuple[str, list[Any]]] = []
            cond = rest
            while True:
                inner, i, closing = _parse(pieces, i, defines)
                branches.append((cond, inner))
                if closing == "end":
                    break
                cond = closing[len("else") :].strip()
                if cond.startswith("if "):
                    cond = cond[3:].strip()
                elif cond:
                    raise TemplateError(f"unsupported else clause: {closing}")
            nodes.append((word, branches))
        elif word == "define":
            name = _unquote(rest)
            inner, i, closing = _parse(pieces, i, defines)
            if closing != "end":
                raise TemplateError(f"define {name} not closed by end")
            defines[name] = inner
        else:
            nodes.append(("expr", body))
    return nodes, i, ""


def _unquote(text: str) -> str:
    return str(yaml.safe_load(text))


def _tokens(expr: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"cannot parse {expr[pos:]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match[kind]))
        pos = match.end()
    return out


# --- evaluation ---------------------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    return bool(value) if value is not None else False


def _to_yaml(value: Any) -> str:
    if value is None:
        return "null"
    return yaml.safe_dump(_plain(value), default_flow_style=False, sort_keys=True).rstrip("\n")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _to_toml(value: Mapping[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in value.items() if not isinstance(v, Mapping)]
    for key, table in value.items():
        if isinstance(table, Mapping):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines).strip() + "\n"


def _dig(*args: Any) -> Any:
    *keys, default, mapping = args
    node = mapping
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def _fail(message: str) -> Any:
    raise TemplateError(f"fail: {message}")


class _Renderer:
    def __init__(self, defines: dict[str, list[Any]], files: Mapping[str, str], root: dict[str, Any]) -> None:
        self.defines = defines
        self.files = files
        self.root = root
        self.functions: dict[str, Callable[..., Any]] = {
            "include": self.include,
            "nindent": lambda n, s: (
                "\n" + "\n".join(" " * n + line if line else line for line in s.split("\n"))
            ),
            "indent": lambda n, s: "\n".join(" " * n + line if line else line for line in s.split("\n")),
            "toYaml": _to_yaml,
            "toToml": _to_toml,
            "quote": lambda v: '"' + ("" if v is None else str(v)).replace('"', '\\"') + '"',
            "default": lambda d, v=None: v if _truthy(v) else d,
            "sha256sum": lambda s: hashlib.sha256(s.encode()).hexdigest(),
            "printf": lambda fmt, *a: fmt.replace("%s", "{}").format(*a),
            "print": lambda *a: "".join(str(x) for x in a),
            "trunc": lambda n, s: s[:n],
            "trimSuffix": lambda suffix, s: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
            "contains": lambda sub, s: sub in s,
            "eq": lambda a, *b: any(a == x for x in b),
            "ne": lambda a, b: a != b,
            "and": lambda *a: next((x for x in a if not _truthy(x)), a[-1]),
            "or": lambda *a: next((x for x in a if _truthy(x)), a[-1]),
            "not": lambda a: not _truthy(a),
            "has": lambda needle, haystack: needle in haystack,
            "list": lambda *a: list(a),
            "dict": lambda *a: dict(zip(a[::2], a[1::2], strict=True)),
            "hasKey": lambda m, k: k in (m or {}),
            "dig": _dig,
            "fail": _fail,
            "required": lambda msg, v: v if _truthy(v) else _fail(msg),
        }

    def include(self, name: str, context: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f"include of undefined template {name!r}")
        return self.run(self.defines[name], context, {"$": self.root})

    def run(self, nodes: list[Any], dot: Any, variables: dict[str, Any]) -> str:
        out: list[str] = []
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "expr":
                value = self.pipeline(node[1], dot, variables)
                if not node[1].lstrip().startswith("$") or ":=" not in node[1]:
                    out.append("" if value is None else self.text(value))
            elif kind == "if":
                for cond, body in node[1]:
                    if not cond or _truthy(self.pipeline(cond, dot, variables)):
                        out.append(self.run(body, dot, dict(variables)))
                        break
            elif kind == "with":
                (cond, body), *others = node[1]
                value = self.pipeline(cond, dot, variables)
                if _truthy(value):
                    out.append(self.run(body, value, dict(variables)))
                elif others:
                    out.append(self.run(others[0][1], dot, dict(variables)))
            elif kind == "range":
                (cond, body), *_ = node[1]
                target = cond
                names: list[str] = []
                if ":=" in cond:
                    left, target = cond.split(":=", 1)
                    names = [n.strip() for n in left.split(",")]
                items = self.pipeline(target, dot, variables) or []
                pairs = list(items.items()) if isinstance(items, Mapping) else list(enumerate(items))
                if isinstance(items, Mapping):
                    pairs.sort()
                for key, value in pairs:
                    scope = dict(variables)
                    if len(names) == 1:
                        scope[names[0]] = value
                    elif len(names) == 2:
                        scope[names[0]], scope[names[1]] = key, value
                    out.append(self.run(body, value, scope))
        return "".join(out)

    @staticmethod
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Mapping | list):
            return str(value)
        return str(value)

    def pipeline(self, expr: str, dot: Any, variables: dict[str, Any]) -> Any:
        tokens = _tokens(expr)
        if len(tokens) > 2 and tokens[0][0] == "var" and tokens[1][0] == "assign":
            value = self.pipeline(expr.split(":=", 1)[1], dot, variables)
            variables[tokens[0][1]] = value
            return value
        value: Any = _NOTHING
        for command in self._split(tokens, "pipe"):
            value = self.command(command, dot, variables, value)
        return value

    @staticmethod
    def _split(tokens: list[tuple[str, str]], kind: str) -> list[list[tuple[str, str]]]:
        parts: list[list[tuple[str, str]]] = [[]]
        depth = 0
        for token in tokens:
            if token[0] == "lp":
                depth += 1
            elif token[0] == "rp":
                depth -= 1
            if token[0] == kind and depth == 0:
                parts.append([])
            else:
                parts[-1].append(token)
        return parts

    def command(self, tokens: list[tuple[str, str]], dot: Any, variables: dict[str, Any], piped: Any) -> Any:
        args, i = [], 0
        while i < len(tokens):
            kind, text = tokens[i]
            if kind == "lp":
                depth, j = 1, i + 1
                while depth:
                    depth += {"lp": 1, "rp": -1}.get(tokens[j][0], 0)
                    j += 1
                args.append(("value", self.command(tokens[i + 1 : j - 1], dot, variables, _NOTHING)))
                i = j
                continue
            args.append((kind, text))
            i += 1
        head_kind, head = args[0]
        values = [self.operand(k, t, dot, variables) for k, t in args[1:]]
        if piped is not _NOTHING:
            values.append(piped)
        if head_kind == "ident":
            if head in ("true", "false"):
                return head == "true"
            if head not in self.functions:
                raise TemplateError(f"unsupported function {head!r}")
            return self.functions[head](*values)
        if values:
            raise TemplateError(f"{head!r} takes no arguments")
        return self.operand(head_kind, head, dot, variables)

    def operand(self, kind: str, text: Any, dot: Any, variables: dict[str, Any]) -> Any:
        if kind == "value":
            return text
        if kind == "str":
            return yaml.safe_load(text)
        if kind == "num":
            return int(text)
        if kind == "field":
            return self.field(dot, text)
        if kind == "var":
            name, _, path = text.partition(".")
            if name not in variables:
                raise TemplateError(f"undefined variable {name}")
            return self.field(variables[name], "." + path if path else ".")
        if kind == "ident" and text in ("true", "false", "nil"):
            return {"true": True, "false": False, "nil": None}[text]
        if kind == "ident" and text in self.functions:
            return self.functions[text]()
        raise TemplateError(f"unexpected {text!r}")

    @staticmethod
    def field(value: Any, path: str) -> Any:
        if path == ".":
            return value
        for part in path.strip(".").split("."):
            if isinstance(value, Mapping):
                value = value.get(part)
            else:
                return None
        return value


_NOTHING = object()


def render_chart(chart: Path, values: Mapping[str, Any], release: str = "relay") -> dict[str, str]:
    """Render every template of ``chart`` with ``values`` merged over its values.yaml: name -> text."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
        return over

    merged = merge(yaml.safe_load((chart / "values.yaml").read_text()), dict(values))
    sources = {p.name: p.read_text() for p in sorted((chart / "templates").iterdir()) if p.is_file()}
    defines: dict[str, list[Any]] = {}
    parsed = {}
    for name, text in sources.items():
        nodes, _, closing = _parse(_lex(text), 0, defines)
        if closing:
            raise TemplateError(f"{name}: unexpected {closing}")
        parsed[name] = nodes
    root: dict[str, Any] = {
        "Values": merged,
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion")},
        "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        "Template": {"BasePath": f"{meta['name']}/templates"},
    }
    renderer = _Renderer(defines, sources, root)
    for name, nodes in parsed.items():
        defines[f"{meta['name']}/templates/{name}"] = nodes
    return {
        name: renderer.run(nodes, root, {"$": root})
        for name, nodes in parsed.items()
        if not name.startswith("_")
    }
