"""Relay's built-in plugin: the channels, providers and intake sources that ship with Relay.

Registered like any third-party plugin, through the ``relay`` entry-point group
(``[project.entry-points.relay] builtin = "relay_adapters.plugin"``), and always loaded, whatever
``RELAY_LOAD_PLUGINS`` says. Each hook imports its adapters when called, so loading the plugin
stays cheap and free of side effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay_core import hookimpl


@hookimpl
def relay_register_channels() -> Sequence[type[Any]]:
    """Built-in channels (SPEC S6): mattermost, slack, telegram, discord, teams, email, webhook, sms."""
    from relay_adapters.channels import BUILTIN_CHANNELS

    return tuple(BUILTIN_CHANNELS)


@hookimpl
def relay_register_voice_providers() -> Sequence[type[Any]]:
    """Built-in voice providers ``stub`` and ``simulator`` (SPEC S7.10)."""
    from relay_adapters.voice import simulator, stub

    return (stub.Provider, simulator.Provider)


@hookimpl
def relay_register_sms_providers() -> Sequence[type[Any]]:
    """Built-in SMS providers ``stub`` and ``simulator`` (SPEC S7.10)."""
    from relay_adapters.voice import simulator, stub

    return (stub.SmsProvider, simulator.SmsProvider)


@hookimpl
def relay_register_intake_sources() -> Sequence[type[Any]]:
    """Built-in intake sources (``alertmanager``, ``zabbix``, ``webhook``, ...)."""
    from relay_adapters.intake import BUILTIN_SOURCES

    return tuple(BUILTIN_SOURCES)
