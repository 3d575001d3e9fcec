"""Relay's built-in channel senders (SPEC S6) and the outbound HTTP client they share (S6.2).

Each module defines one channel class, registered through ``relay_register_channels`` in
:mod:`relay_adapters.plugin`: :class:`WebhookChannel` (``webhook``), :class:`SlackChannel`
(``slack``), :class:`MattermostChannel` (``mattermost``), :class:`TelegramChannel`
(``telegram``), :class:`DiscordChannel` (``discord``), :class:`TeamsChannel` (``teams``),
:class:`EmailChannel` (``email``) and :class:`SmsChannel` (``sms``).

The registry builds them without arguments; :func:`make_channels` builds them with the
process-wide settings some need (``public_base_url``, ``secret_key``, ``[smtp]``, ``[sms]``), for
``bootstrap(channels=...)``, where instances win over the registry's classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from relay_adapters.channels._common import ChannelEnvironment, InboundCallbackError, SmtpOptions
from relay_adapters.channels._common import environment_from_settings as environment_from_settings
from relay_adapters.channels._http import OutboundClient, OutboundPolicyError, make_http_client
from relay_adapters.channels.discord import DiscordChannel
from relay_adapters.channels.email import EmailChannel
from relay_adapters.channels.mattermost import MattermostChannel
from relay_adapters.channels.slack import SlackChannel
from relay_adapters.channels.sms import SmsChannel
from relay_adapters.channels.teams import TeamsChannel
from relay_adapters.channels.telegram import TelegramChannel
from relay_adapters.channels.webhook import WebhookChannel

if TYPE_CHECKING:
    from relay_adapters.settings import RelaySettings

__all__ = [
    "BUILTIN_CHANNELS",
    "ChannelEnvironment",
    "DiscordChannel",
    "EmailChannel",
    "InboundCallbackError",
    "MattermostChannel",
    "OutboundClient",
    "OutboundPolicyError",
    "SlackChannel",
    "SmsChannel",
    "SmtpOptions",
    "TeamsChannel",
    "TelegramChannel",
    "WebhookChannel",
    "environment_from_settings",
    "make_channels",
    "make_http_client",
]

BUILTIN_CHANNELS: Final[tuple[type[Any], ...]] = (
    MattermostChannel,
    SlackChannel,
    TelegramChannel,
    DiscordChannel,
    TeamsChannel,
    EmailChannel,
    WebhookChannel,
    SmsChannel,
)


def make_channels(settings: RelaySettings, *, sms_loader: Any = None) -> Sequence[Any]:
    """Every built-in channel, configured with the process-wide settings of ``settings``.

    Args:
        settings: The loaded settings.
        sms_loader: The SMS ``ProviderLoader`` (with plugin providers and ``sms.providers_dir``);
            built-ins only when ``None``.
    """
    env = environment_from_settings(settings, sms_loader=sms_loader)
    return [cls(env=env) for cls in BUILTIN_CHANNELS]
