"""Voice and SMS providers: the loader (providers dir, plugins, built-ins) and the ``stub``."""

from __future__ import annotations

from relay_adapters.voice.loader import (
    SMS,
    VOICE,
    ProviderKind,
    ProviderLoader,
    ProviderLoadError,
    ProviderNotFoundError,
    install_compat_alias,
    make_sms_loader,
    make_voice_loader,
    normalize_provider_name,
    substitute_env,
)
from relay_adapters.voice.stub import StubSmsProvider, StubVoiceProvider

__all__ = [
    "SMS",
    "VOICE",
    "ProviderKind",
    "ProviderLoadError",
    "ProviderLoader",
    "ProviderNotFoundError",
    "StubSmsProvider",
    "StubVoiceProvider",
    "install_compat_alias",
    "make_sms_loader",
    "make_voice_loader",
    "normalize_provider_name",
    "substitute_env",
]
