"""The hooks Relay calls on this plugin (entry point ``example_ntfy`` in group ``relay``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay_channel_example.channel import NtfyChannel
from relay_core import hookimpl


@hookimpl
def relay_register_channels() -> Sequence[type[Any]]:
    """Contribute the ``example_ntfy`` channel type."""
    return [NtfyChannel]
