"""An example Relay voice provider plugin: calls through a generic HTTP API (``example_http``)."""

from __future__ import annotations

from relay_voice_example.provider import ExampleHttpProvider, Provider

__all__ = ["ExampleHttpProvider", "Provider"]
__version__ = "0.1.0"
