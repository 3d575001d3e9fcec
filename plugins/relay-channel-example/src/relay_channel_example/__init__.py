"""An example Relay channel plugin: notifications pushed to an ntfy topic (type ``example_ntfy``)."""

from __future__ import annotations

from relay_channel_example.channel import NtfyChannel, NtfyConfig

__all__ = ["NtfyChannel", "NtfyConfig"]
__version__ = "0.1.0"
