"""Registration of the built-in channels and their construction from settings (SPEC S6.13, S7.12)."""

from __future__ import annotations

from relay_adapters.channels import BUILTIN_CHANNELS, EmailChannel, TelegramChannel, make_channels
from relay_adapters.settings import (
    MainSettings,
    RelaySettings,
    SecuritySettings,
    ServerSettings,
    SmtpSettings,
)
from relay_core.plugins import PluginRegistry, make_plugin_manager
from relay_core.ports.channels import ChannelSender

NAMES = {"mattermost", "slack", "telegram", "discord", "teams", "email", "webhook", "sms"}


def test_builtin_plugin_registers_every_channel() -> None:
    """The built-in plugin's relay_register_channels hook contributes the eight S6 channel types."""
    registry = PluginRegistry(make_plugin_manager(allow=["builtin"]))
    channels = registry.channels()
    assert set(channels) >= NAMES
    assert all(channels[cls.name] is cls for cls in BUILTIN_CHANNELS)


def test_every_channel_builds_without_arguments() -> None:
    """Each class constructs without arguments (as the registry does) and satisfies ChannelSender."""
    for cls in BUILTIN_CHANNELS:
        assert isinstance(cls(), ChannelSender)


def test_make_channels_passes_the_process_settings() -> None:
    """make_channels hands public_base_url, secret_key, [smtp] and [security] to every channel."""
    settings = RelaySettings(
        main=MainSettings(secret_key="k" * 40),
        server=ServerSettings(public_base_url="https://relay.example.test"),
        smtp=SmtpSettings(
            host="smtp.example.test", from_address="relay@example.test", user="u", password="p"
        ),
        security=SecuritySettings(
            outbound_private_network_allowlist=("10.0.0.0/8",), outbound_timeout_seconds=3
        ),
    )
    channels = {channel.name: channel for channel in make_channels(settings)}
    assert set(channels) == NAMES
    email = channels["email"]
    assert isinstance(email, EmailChannel)
    assert (email.env.smtp.host, email.env.smtp.from_address, email.env.smtp.user) == (
        "smtp.example.test",
        "relay@example.test",
        "u",
    )
    telegram = channels["telegram"]
    assert isinstance(telegram, TelegramChannel)
    assert telegram.env.secret_key == "k" * 40
    assert telegram.env.public_base_url == "https://relay.example.test"
    assert telegram.env.outbound.allowlist[0] == "10.0.0.0/8"
    assert telegram.env.outbound.timeout == 3
    assert "'p'" not in repr(email.env)  # the SMTP password stays out of reprs (logs)
