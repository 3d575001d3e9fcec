"""The hooks Relay calls on this plugin (entry point ``example_http`` in group ``relay``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay_core import hookimpl
from relay_voice_example.provider import Provider


@hookimpl
def relay_register_voice_providers() -> Sequence[type[Any]]:
    """Contribute the ``example_http`` voice provider."""
    return [Provider]
