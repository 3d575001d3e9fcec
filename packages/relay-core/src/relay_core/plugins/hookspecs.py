"""Hook specifications: everything a Relay plugin can contribute (SPEC S7.12).

Each ``relay_register_*`` hook returns a sequence of *classes* (not instances). Relay keys them
by their ``name`` class attribute, which configuration uses to select them (``type = "slack"``,
``provider = "mango"``); two classes with one name are refused at startup, naming both.
Implementations may accept fewer arguments than the specification, as usual with pluggy.

These functions are signatures only; pluggy never calls their bodies.
"""

# mypy: disable-error-code="empty-body"

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from relay_core.plugins import hookspec

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "relay_configure_converter",
    "relay_register_channels",
    "relay_register_intake_sources",
    "relay_register_sms_providers",
    "relay_register_voice_providers",
]


@hookspec
def relay_register_channels() -> Sequence[type[Any]]:
    """Return the notification channel classes this plugin provides.

    Each class satisfies :class:`relay_core.ports.channels.ChannelSender` (SPEC S6.13): a
    ``name`` matching ``^[a-z][a-z0-9_]*$`` that is unique across all plugins, a ``label``, an
    attrs ``Config`` class the converter structures the channel's configuration into,
    ``capabilities``, and the async methods ``send`` and ``update``.

    :returns: A sequence of classes; an empty sequence when the plugin provides none.

    Example::

        @hookimpl
        def relay_register_channels():
            return [NtfyChannel]

    Use in plugins
    ==============

    Called once per :class:`~relay_core.plugins.PluginRegistry`, on first use. An exception
    raised here marks the plugin as failed (``status="error"``) without stopping Relay.
    """


@hookspec
def relay_register_voice_providers() -> Sequence[type[Any]]:
    """Return the voice call provider classes this plugin provides.

    Each class subclasses ``relay_core.voice.BaseVoiceProvider`` (SPEC S7.1) and sets ``name``
    (``^[a-z][a-z0-9_]*$``), the value a ``voice_call`` channel's ``provider`` selects it by.
    Providers from plugins take precedence over files in ``voice.providers_dir`` and come
    after the built-ins ``stub`` and ``simulator`` (SPEC S7.2).

    :returns: A sequence of classes; an empty sequence when the plugin provides none.

    Example::

        @hookimpl
        def relay_register_voice_providers():
            return [MangoProvider]
    """


@hookspec
def relay_register_sms_providers() -> Sequence[type[Any]]:
    """Return the SMS provider classes this plugin provides.

    Each class subclasses ``relay_core.sms.BaseSmsProvider`` (SPEC S7.9) and sets ``name``
    (``^[a-z][a-z0-9_]*$``), the value an ``sms`` channel's ``provider`` selects it by.

    :returns: A sequence of classes; an empty sequence when the plugin provides none.
    """


@hookspec
def relay_register_intake_sources() -> Sequence[type[Any]]:
    """Return the alert intake source classes this plugin provides.

    Each class has ``name`` (``^[a-z][a-z0-9_-]*$``: the source key and the path
    ``/api/integrations/<name>``), ``path_aliases``, ``content_types``, ``default_group_by``,
    ``parse(body: bytes, headers, query) -> list[NormalizedAlert]`` raising
    :class:`relay_core.domain.errors.IntakeValidationError` with ``details``, and optionally
    ``verify(headers, body, route)`` for signature-authenticated sources (SPEC S7.12).

    :returns: A sequence of classes; an empty sequence when the plugin provides none.
    """


@hookspec
def relay_configure_converter(converter: cattrs.Converter) -> None:
    """Register the cattrs hooks the plugin's own types need on Relay's converter.

    Relay builds one converter (``relay_core.serialization.make_converter()``) and calls this
    hook once on it, after its own hooks, so channel ``Config`` classes and other plugin types
    can be structured from configuration and unstructured for the API.

    :param converter: The converter to extend, in place; the return value is ignored.

    Example::

        @hookimpl
        def relay_configure_converter(converter):
            converter.register_structure_hook(Topic, lambda value, _: Topic(value))
    """
