"""Public test support for Relay and its plugins (SPEC S7.12).

- :mod:`relay_core.testing.fakes`: ``FakeClock``, ``RecordingChannel``, ``FakeVoiceProvider``,
  ``FakeSmsProvider``.
- :mod:`relay_core.testing.contracts`: conformance suites to subclass in plugin tests
  (``ChannelContract``, ``VoiceProviderContract``, ``SmsProviderContract``,
  ``IntakeSourceContract``); they need pytest.
- :mod:`relay_core.testing.pytest_plugin`: the ``pytest11`` plugin with the ``fake_clock``,
  ``recording_channel`` and ``local_http_server`` fixtures.

Importing this package does not import pytest.
"""

from __future__ import annotations

from relay_core.testing.fakes import (
    FakeClock,
    FakeSmsProvider,
    FakeVoiceProvider,
    RecordedDelivery,
    RecordingChannel,
    RecordingConfig,
)

__all__ = [
    "FakeClock",
    "FakeSmsProvider",
    "FakeVoiceProvider",
    "RecordedDelivery",
    "RecordingChannel",
    "RecordingConfig",
]
