"""Typed access to what plugins contribute: name -> class mappings per kind (SPEC S7.2, S7.12).

:class:`PluginRegistry` calls the ``relay_register_*`` hooks of a plugin manager once, on first
use, and keys the returned classes by their ``name`` class attribute (lower-cased). Each hook
implementation is called on its own, so a plugin whose hook raises or returns something that
is not a class with a valid name is reported (its :class:`PluginInfo` turns to ``"error"``) and
the others still count. Two different classes claiming one name are refused with
:class:`DuplicatePluginError`, naming both classes and both plugins: configuration could not
tell them apart.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

import attrs
import pluggy

from relay_core.domain.errors import RelayError
from relay_core.plugins.manager import PluginInfo, _describe_error, plugin_infos

if TYPE_CHECKING:
    import cattrs

__all__ = ["DuplicatePluginError", "PluginError", "PluginKind", "PluginRegistry"]

PluginKind: TypeAlias = Literal["channel", "voice_provider", "sms_provider", "intake_source"]


class _KindSpec(NamedTuple):
    hook: str
    label: str  # as used in messages: "voice provider name is missing"
    pattern: re.Pattern[str]
    allowed: str


_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SOURCE_NAME = re.compile(r"[a-z][a-z0-9_-]*")  # intake names are URL path segments
_LETTERS = "letters, numbers and underscore"

_KINDS: Mapping[PluginKind, _KindSpec] = {
    "channel": _KindSpec("relay_register_channels", "channel", _NAME, _LETTERS),
    "voice_provider": _KindSpec("relay_register_voice_providers", "voice provider", _NAME, _LETTERS),
    "sms_provider": _KindSpec("relay_register_sms_providers", "sms provider", _NAME, _LETTERS),
    "intake_source": _KindSpec(
        "relay_register_intake_sources",
        "intake source",
        _SOURCE_NAME,
        "letters, numbers, underscore and hyphen",
    ),
}


class PluginError(RelayError):
    """A plugin problem that stops Relay at startup."""

    code = "plugin_error"
    status = 500


class DuplicatePluginError(PluginError):
    """Two different classes registered under one name.

    Attributes:
        kind: The kind both classes were registered as.
        name: The contested name.
        first: ``(class path, plugin name)`` of the class registered first.
        second: ``(class path, plugin name)`` of the class refused.
    """

    code = "duplicate_plugin"

    def __init__(
        self, *, kind: PluginKind, name: str, first: tuple[str, str], second: tuple[str, str]
    ) -> None:
        label = _KINDS[kind].label
        super().__init__(
            f"two {label}s are named {name!r}: {first[0]} (plugin {first[1]!r}) and "
            f"{second[0]} (plugin {second[1]!r}); uninstall one or leave one out of "
            "RELAY_LOAD_PLUGINS"
        )
        self.kind = kind
        self.name = name
        self.first = first
        self.second = second


class _Rejected(Exception):
    """A hook returned something that cannot be registered; reported on the plugin, not raised."""


@attrs.frozen
class _Collected:
    classes: Mapping[str, type[Any]]
    owners: Mapping[str, str]  # name -> plugin name


class PluginRegistry:
    """The classes a plugin manager's plugins contribute, by kind and name.

    Example::

        pm = make_plugin_manager(allow=allow_from_env(os.environ.get("RELAY_LOAD_PLUGINS")))
        registry = PluginRegistry(pm)
        SlackChannel = registry.channels()["slack"]

    Each kind is collected on first access and cached; the mappings are read-only, in
    registration order (built-ins first). Hook wrappers on the ``relay_register_*`` hooks are
    not supported and are ignored.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self._collected: dict[PluginKind, _Collected] = {}
        self._errors: dict[str, dict[str, None]] = {}  # plugin name -> messages (ordered set)

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The wrapped manager."""
        return self._pm

    def channels(self) -> Mapping[str, type[Any]]:
        """Channel classes by ``name`` (``relay_register_channels``)."""
        return self.classes("channel")

    def voice_providers(self) -> Mapping[str, type[Any]]:
        """Voice provider classes by ``name`` (``relay_register_voice_providers``)."""
        return self.classes("voice_provider")

    def sms_providers(self) -> Mapping[str, type[Any]]:
        """SMS provider classes by ``name`` (``relay_register_sms_providers``)."""
        return self.classes("sms_provider")

    def intake_sources(self) -> Mapping[str, type[Any]]:
        """Intake source classes by ``name`` (``relay_register_intake_sources``)."""
        return self.classes("intake_source")

    def classes(self, kind: PluginKind) -> Mapping[str, type[Any]]:
        """The classes of one kind by name.

        Raises:
            DuplicatePluginError: Two different classes of this kind share a name.
        """
        return self._collect(kind).classes

    def provided_by(self, kind: PluginKind, name: str) -> str:
        """Name of the plugin that registered the ``kind`` class called ``name``.

        Raises:
            KeyError: No such class (``"<kind> not found: <name>"``).
        """
        owners = self._collect(kind).owners
        try:
            return owners[name.lower()]
        except KeyError:
            raise KeyError(f"{_KINDS[kind].label} not found: {name}") from None

    def configure_converter(self, converter: cattrs.Converter) -> None:
        """Let every plugin register its cattrs hooks on ``converter`` (``relay_configure_converter``).

        A plugin whose hook raises is reported in :meth:`infos`; the others still run.
        """
        for impl in self._impls("relay_configure_converter"):
            try:
                _call(impl, converter=converter)
            except Exception as exc:  # one plugin's bug must not stop the others
                self._report(impl.plugin_name, f"relay_configure_converter: {_describe_error(exc)}")

    def infos(self) -> tuple[PluginInfo, ...]:
        """:func:`~relay_core.plugins.plugin_infos`, with failures found while calling hooks.

        Collects every kind first, so a plugin whose register hook fails shows as ``"error"``.

        Raises:
            DuplicatePluginError: As :meth:`classes`.
        """
        for kind in _KINDS:
            self._collect(kind)
        return tuple(self._with_errors(info) for info in plugin_infos(self._pm))

    def _collect(self, kind: PluginKind) -> _Collected:
        collected = self._collected.get(kind)
        if collected is not None:
            return collected
        spec = _KINDS[kind]
        classes: dict[str, type[Any]] = {}
        owners: dict[str, str] = {}
        errors: list[tuple[str, str]] = []  # committed only if the whole kind is accepted
        for impl in self._impls(spec.hook):
            plugin = impl.plugin_name
            try:
                result = _call(impl)
                items = () if result is None else _as_tuple(result)
            except Exception as exc:  # one plugin's bug must not stop the others
                detail = str(exc) if isinstance(exc, _Rejected) else _describe_error(exc)
                errors.append((plugin, f"{spec.hook}: {detail}"))
                continue
            for item in items:
                try:
                    name, cls = _checked(spec, item)
                except _Rejected as exc:
                    errors.append((plugin, f"{spec.hook}: {exc}"))
                    continue
                previous = classes.get(name)
                if previous is cls:  # the same class offered twice (a re-export) is harmless
                    continue
                if previous is not None:
                    raise DuplicatePluginError(
                        kind=kind,
                        name=name,
                        first=(_class_path(previous), owners[name]),
                        second=(_class_path(cls), plugin),
                    )
                classes[name] = cls
                owners[name] = plugin
        for plugin, message in errors:
            self._report(plugin, message)
        collected = _Collected(types.MappingProxyType(classes), types.MappingProxyType(owners))
        self._collected[kind] = collected
        return collected

    def _impls(self, hook: str) -> list[pluggy.HookImpl]:
        caller: pluggy.HookCaller | None = getattr(self._pm.hook, hook, None)
        if caller is None:
            return []
        return [impl for impl in caller.get_hookimpls() if not (impl.wrapper or impl.hookwrapper)]

    def _report(self, plugin: str, message: str) -> None:
        self._errors.setdefault(plugin, {})[message] = None

    def _with_errors(self, info: PluginInfo) -> PluginInfo:
        found = self._errors.get(info.name)
        if not found:
            return info
        messages = [info.error] if info.error else []
        return attrs.evolve(info, status="error", error="; ".join([*messages, *found]))


def _call(impl: pluggy.HookImpl, **kwargs: object) -> object:
    # What pluggy does for each implementation: pass the arguments it declares, by position.
    return impl.function(*(kwargs[name] for name in impl.argnames))


def _as_tuple(result: object) -> tuple[object, ...]:
    if isinstance(result, str | bytes | Mapping) or not isinstance(result, Iterable):
        raise _Rejected(f"expected a sequence of classes, got {type(result).__name__}")
    return tuple(result)


def _checked(spec: _KindSpec, item: object) -> tuple[str, type[Any]]:
    if not isinstance(item, type):
        raise _Rejected(f"expected a {spec.label} class, got {item!r}")
    raw = getattr(item, "name", None)
    if not isinstance(raw, str) or not raw:
        raise _Rejected(f"{spec.label} name is missing ({_class_path(item)})")
    name = raw.lower()
    if not spec.pattern.fullmatch(name):
        raise _Rejected(f"{spec.label} name must contain only {spec.allowed}: {raw!r} ({_class_path(item)})")
    return name, item


def _class_path(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
