"""Build pluggy plugin managers for Relay and describe what they loaded (SPEC S7.12).

:func:`make_plugin_manager` is the only way Relay gets a plugin manager: a new one per call, no
module-level singleton, no environment read here (callers turn ``RELAY_LOAD_PLUGINS`` into an
allow-list with :func:`allow_from_env`). Loading order:

1. the objects passed as ``builtins`` (modules or instances with ``@hookimpl`` functions);
2. the ``relay`` entry points, the built-in one (``builtin`` from ``relay-adapters``) first,
   then the others by name, each imported and registered in isolation: a plugin that fails to
   import, to register, or implements a hook Relay does not define is recorded with its error
   and left out, never fatal;
3. ``check_pending()``, which still fails loudly for a ``builtins`` object with an unknown hook.

What happened to each plugin is available as :class:`PluginInfo` records from
:func:`plugin_infos`, for ``relay plugins list`` and ``GET /api/plugins``.
"""

from __future__ import annotations

import re
import types
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Literal, TypeAlias

import attrs
import pluggy

from relay_core.plugins import PROJECT, hookspecs

if TYPE_CHECKING:
    import importlib.metadata

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "BUILTIN_ENTRY_POINT",
    "PluginInfo",
    "PluginStatus",
    "allow_from_env",
    "make_plugin_manager",
    "plugin_infos",
]

#: Name of the entry point through which Relay's own adapters register; always allowed.
BUILTIN_ENTRY_POINT = "builtin"
#: Distribution that owns :data:`BUILTIN_ENTRY_POINT` (another distribution using that
#: entry-point name gets no special treatment).
BUILTIN_DISTRIBUTION = "relay-adapters"

PluginStatus: TypeAlias = Literal["loaded", "error", "skipped"]


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What Relay knows about one plugin.

    Attributes:
        name: The entry-point name (the name the plugin is registered under in pluggy and the
            one ``RELAY_LOAD_PLUGINS`` lists); for a ``builtins`` object, its dotted name.
        distribution: The distribution that declares the entry point, ``None`` for objects
            passed as ``builtins``.
        version: That distribution's version, or ``None``.
        module: The module the plugin lives in (the entry point's module for plugins that
            were not imported).
        status: ``"loaded"``; ``"error"`` when importing, registering or calling one of its
            hooks failed; ``"skipped"`` when the allow-list left it out (it was not imported).
        error: ``"<ExceptionType>: <message>"`` (several separated by ``"; "``) when
            ``status == "error"``, else ``None``.
        hooks: Names of the Relay hooks the plugin implements, sorted.
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    status: PluginStatus = "loaded"
    error: str | None = None
    hooks: tuple[str, ...] = ()


class _RelayPluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers the :class:`PluginInfo` of each load attempt.

    The records live in the ``relay_plugin_infos`` attribute; read them through
    :func:`plugin_infos`, which also covers plugins registered later by hand.
    """

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.relay_plugin_infos: tuple[PluginInfo, ...] = ()


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    allow: Collection[str] | None = None,
    builtins: Sequence[object] = (),
) -> pluggy.PluginManager:
    """Build a new plugin manager with Relay's hookspecs and plugins registered.

    Args:
        load_entrypoints: Load the plugins published under the ``relay`` entry-point group.
            Tests that want only their own plugins pass ``False`` and hand them as ``builtins``.
        allow: Entry-point names to load; ``None`` or empty loads all. The built-in entry point
            is always loaded. Listed names that no installed distribution provides are
            reported as ``"error"`` records.
        builtins: Plugin objects (modules, instances) registered first, unconditionally.

    Returns:
        A new :class:`pluggy.PluginManager`; :func:`plugin_infos` describes its plugins.

    Raises:
        pluggy.PluginValidationError: A ``builtins`` object implements a hook Relay does not
            define or has a bad hook signature (entry-point plugins are never fatal).
        ValueError: Two ``builtins`` objects are the same object.
    """
    pm = _RelayPluginManager()
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    for obj in builtins:
        name = _unused_name(pm, _dotted_name(obj))
        pm.register(obj, name=name)
        infos.append(PluginInfo(name=name, module=_module_of(obj), hooks=_hook_names(pm, obj)))
    if load_entrypoints:
        infos.extend(_load_entry_points(pm, allow=tuple(dict.fromkeys(allow or ()))))
    pm.check_pending()
    pm.relay_plugin_infos = tuple(infos)
    return pm


def plugin_infos(pm: pluggy.PluginManager) -> tuple[PluginInfo, ...]:
    """Describe the plugins of ``pm``: each load attempt in order, then any plugin registered later.

    Works on any pluggy manager; one not built by :func:`make_plugin_manager` just has no
    records of failed or skipped plugins.
    """
    recorded = pm.relay_plugin_infos if isinstance(pm, _RelayPluginManager) else ()
    known = {info.name for info in recorded}
    later = tuple(
        PluginInfo(name=name, module=_module_of(plugin), hooks=_hook_names(pm, plugin))
        for name, plugin in pm.list_name_plugin()
        if plugin is not None and name not in known
    )
    return (*recorded, *later)


def allow_from_env(value: str | None) -> tuple[str, ...] | None:
    """Parse a ``RELAY_LOAD_PLUGINS`` value into an ``allow`` list for :func:`make_plugin_manager`.

    ``"acme, mango"`` gives ``("acme", "mango")``; ``None`` (unset), an empty or blank value
    gives ``None``, meaning load every plugin. Duplicates are dropped, order is kept.
    """
    if value is None:
        return None
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    return names or None


def _load_entry_points(pm: pluggy.PluginManager, *, allow: Sequence[str]) -> list[PluginInfo]:
    import importlib.metadata  # here, not at the top: it costs more than the rest of relay_core

    infos: list[PluginInfo] = []
    owners: dict[str, str | None] = {}  # entry-point name -> distribution that took it
    for ep in sorted(importlib.metadata.entry_points(group=PROJECT), key=_load_order):
        dist = ep.dist
        info = PluginInfo(
            name=ep.name,
            distribution=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None,
            module=ep.module,
        )
        if allow and ep.name not in allow and not _is_builtin(ep):
            infos.append(attrs.evolve(info, status="skipped"))
            continue
        if ep.name in owners:
            error = f"ValueError: plugin name {ep.name!r} is already used by {owners[ep.name]!r}"
            infos.append(attrs.evolve(info, status="error", error=error))
            continue
        owners[ep.name] = info.distribution
        plugin: object = None
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
            _reject_unknown_hooks(pm, plugin)
        except Exception as exc:  # a broken plugin must never stop Relay
            if plugin is not None and pm.get_plugin(ep.name) is plugin:
                pm.unregister(name=ep.name)
            infos.append(attrs.evolve(info, status="error", error=_describe_error(exc)))
            continue
        infos.append(attrs.evolve(info, hooks=_hook_names(pm, plugin)))
    seen = {info.name for info in infos}
    infos.extend(
        PluginInfo(
            name=name,
            status="error",
            error=f"LookupError: plugin {name!r} is in the allow-list but not installed "
            f"(no {PROJECT!r} entry point has that name)",
        )
        for name in allow
        if name not in seen
    )
    return infos


def _describe_error(exc: BaseException) -> str:
    """Render an exception for :attr:`PluginInfo.error`: ``"<ExceptionType>: <message>"``."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _reject_unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> None:
    # check_pending() for one plugin, so the offender alone is left out.
    for caller in pm.get_hookcallers(plugin) or ():
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.optionalhook:
                raise pluggy.PluginValidationError(
                    plugin, f"unknown hook {caller.name!r} in plugin {impl.plugin_name!r}"
                )


def _load_order(ep: importlib.metadata.EntryPoint) -> tuple[bool, str, str]:
    dist = ep.dist
    return (not _is_builtin(ep), ep.name, dist.name if dist is not None else "")


def _is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    dist = ep.dist
    return (
        ep.name == BUILTIN_ENTRY_POINT
        and dist is not None
        and _normalize(dist.name) == _normalize(BUILTIN_DISTRIBUTION)
    )


def _normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _hook_names(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))


def _dotted_name(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _module_of(obj: object) -> str | None:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj if isinstance(obj, type) else type(obj), "__module__", None)
    return module if isinstance(module, str) else None


def _unused_name(pm: pluggy.PluginManager, base: str) -> str:
    # Two instances of one plugin class are distinct plugins; give the second a suffix.
    name, n = base, 2
    while pm.has_plugin(name):
        name, n = f"{base}#{n}", n + 1
    return name
