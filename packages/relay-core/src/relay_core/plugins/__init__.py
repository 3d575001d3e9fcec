"""Relay's plugin API: pluggy markers, the plugin manager factory and the typed registry.

A plugin is a module (or any object) with functions marked ``@hookimpl`` whose names are the
hooks of :mod:`relay_core.plugins.hookspecs`, published by a distribution under the ``relay``
entry-point group::

    # pyproject.toml
    [project.entry-points.relay]
    acme = "relay_acme.plugin"

    # relay_acme/plugin.py
    from relay_core import hookimpl

    @hookimpl
    def relay_register_channels():
        return [AcmeChannel]

Relay's own adapters register the same way (entry point ``builtin`` of ``relay-adapters``).
There is no global manager: :func:`make_plugin_manager` builds a new one on each call and
:class:`PluginRegistry` turns hook results into name -> class mappings.
"""

from __future__ import annotations

import pluggy

#: The pluggy project name; also the entry-point group plugins publish under.
PROJECT = "relay"

#: Marks the hook specifications in :mod:`relay_core.plugins.hookspecs`.
hookspec = pluggy.HookspecMarker(PROJECT)

#: Marks a plugin's hook implementations; re-exported as ``relay_core.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)

# The markers above must exist before these imports: hookspecs.py imports ``hookspec`` from here.
from relay_core.plugins.manager import (  # noqa: E402
    BUILTIN_ENTRY_POINT,
    PluginInfo,
    PluginStatus,
    allow_from_env,
    make_plugin_manager,
    plugin_infos,
)
from relay_core.plugins.registry import (  # noqa: E402
    DuplicatePluginError,
    PluginError,
    PluginKind,
    PluginRegistry,
)

__all__ = [
    "BUILTIN_ENTRY_POINT",
    "PROJECT",
    "DuplicatePluginError",
    "PluginError",
    "PluginInfo",
    "PluginKind",
    "PluginRegistry",
    "PluginStatus",
    "allow_from_env",
    "hookimpl",
    "hookspec",
    "make_plugin_manager",
    "plugin_infos",
]
