"""ASGI entry point for external servers: ``uvicorn relay_server.asgi:app``.

``app`` is built on first access (module ``__getattr__``), not at import: importing this module
reads no configuration and opens nothing. The settings come from ``RELAY_CONFIG_FILE`` and
``RELAY_*`` like every other entry point; the app closes its :class:`Relay` on shutdown. This is
a web process only: with ``redis.url`` committed intents are sent to ``relay worker`` through
dramatiq, without it the workers poll the outbox.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar

__all__ = ["build_app"]  # and ``app``, served lazily by ``__getattr__``

_app: Litestar | None = None


def build_app() -> Litestar:
    """Load settings, compose a Relay and wrap it in the HTTP app."""
    from relay_adapters.compose import aclose_relay, ensure_secret_key, redis_dispatcher, relay_from_settings
    from relay_adapters.settings import load_settings
    from relay_server.app import create_app

    settings = ensure_secret_key(load_settings())
    # A production web process: with redis.url, committed intents go to the workers at once.
    queue = redis_dispatcher(settings)
    relay = relay_from_settings(settings, dispatcher=queue)
    if queue is not None:
        queue.bind(relay)
    application = create_app(relay=relay, settings=settings)

    async def close_relay() -> None:
        try:
            if queue is not None:
                await queue.aclose()
        finally:
            await aclose_relay(relay)

    application.on_shutdown.append(close_relay)
    from relay_server.runtime import HeartbeatLoop, attach_background

    # The process_heartbeat job of this web process (SPEC S1.8), stopped before the relay closes.
    attach_background(application, [HeartbeatLoop(relay, ["web"])])
    return application


def __getattr__(name: str) -> Any:
    global _app
    if name == "app":
        if _app is None:
            _app = build_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
