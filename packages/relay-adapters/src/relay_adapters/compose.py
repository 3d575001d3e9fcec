"""The shared composition root (ARCHITECTURE §5): settings in, a ready :class:`Relay` out.

Both shells (``relay_server``, ``relay_worker``) and library users call
:func:`relay_from_settings`; it resolves everything named in the settings (storage URL, plugin
allow-list, voice providers, the outbound HTTP client) and hands the pieces to
:func:`relay_core.bootstrap.bootstrap`. Nothing here runs at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from relay_adapters.settings import RelaySettings
from relay_core.bootstrap import Relay, bootstrap
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.plugins import PluginRegistry, make_plugin_manager
from relay_core.ports.channels import ChannelSender
from relay_core.ports.clock import Clock
from relay_core.ports.dispatch import Dispatcher, VoiceProviderLoader
from relay_core.ports.metrics import Instrumentation
from relay_core.ports.storage import UnitOfWorkFactory
from relay_core.services.context import CoreSettings

if TYPE_CHECKING:
    from relay_adapters.dispatch_redis import RedisDispatcher

__all__ = [
    "SECRET_KEY_FILE",
    "aclose_relay",
    "core_settings",
    "ensure_secret_key",
    "make_builtin_channels",
    "make_http_client",
    "make_registry",
    "make_uow_factory",
    "make_voice_loader",
    "redis_dispatcher",
    "relay_from_settings",
]

#: Name of the file under ``main.data_dir`` holding the generated secret key (SPEC S10.1).
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name
_HTTP_MODULE = "relay_adapters.channels._http"


def ensure_secret_key(settings: RelaySettings) -> RelaySettings:
    """``settings`` with ``main.secret_key`` set.

    An explicit key is kept. Otherwise (embedded use) the key stored in
    ``<data_dir>/secret_key`` is read, or generated there once with mode 0600. With
    ``memory://`` storage nothing is written: the key lives as long as the process, like the
    data it protects.
    """
    if settings.main.secret_key:
        return settings
    if settings.is_memory:
        key = secrets.token_urlsafe(48)
    else:
        key = _stored_secret_key(settings.data_dir / SECRET_KEY_FILE)
    return attrs.evolve(settings, main=attrs.evolve(settings.main, secret_key=key))


def _stored_secret_key(path: Path) -> str:
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: when two processes start at once, the second one reads the first one's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key


def core_settings(settings: RelaySettings) -> CoreSettings:
    """The subset of the settings the core reads (SPEC S10.3 -> ``CoreSettings``)."""
    extra: dict[str, Any] = {}
    if settings.main.secret_key:
        extra["secret_key"] = settings.main.secret_key
    return CoreSettings(
        public_base_url=settings.server.public_base_url,
        group_wait_seconds=settings.alerts.group_wait_seconds,
        group_interval_seconds=settings.alerts.group_interval_seconds,
        dedup_window_seconds=settings.alerts.dedup_window_seconds,
        explain_trace_level=settings.alerts.explain_trace_level,
        max_attempts=settings.delivery.max_attempts,
        backoff_base_seconds=settings.delivery.backoff_base_seconds,
        backoff_max_seconds=settings.delivery.backoff_max_seconds,
        lease_seconds=settings.delivery.lease_seconds,
        requeue_after_seconds=settings.delivery.requeue_after_seconds,
        max_ambiguous_resends=settings.delivery.max_ambiguous_resends,
        max_age_seconds=settings.delivery.max_age_seconds,
        scheduler_batch_size=settings.scheduler.batch_size,
        callback_replay_window_seconds=settings.callbacks.replay_window_seconds,
        action_link_ttl_seconds=settings.action_links.ttl_seconds,
        dtmf_actions=dict(settings.voice.dtmf_actions),
        default_voice_provider=settings.voice.provider,
        voice_provider_config=dict(settings.voice_provider),
        **extra,
    )


def make_uow_factory(settings: RelaySettings) -> UnitOfWorkFactory:
    """Storage chosen by ``database.url``: ``memory://``, ``sqlite:///…`` or ``postgresql://…``."""
    if settings.is_memory:
        return InMemoryUnitOfWorkFactory()
    from relay_adapters.storage.sqlalchemy.encryption import derive_encryption_key
    from relay_adapters.storage.sqlalchemy.uow import SqlAlchemyUnitOfWorkFactory

    # Secrets at rest (SPEC S13.4): every process (server, worker, CLI) derives the same key
    # from the same settings; without an explicit key the stored <data_dir>/secret_key is used.
    settings = ensure_secret_key(settings)
    url = settings.database_url
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
    db = settings.database
    return SqlAlchemyUnitOfWorkFactory(
        url,
        pool_size=db.pool_size,
        max_overflow=db.max_overflow,
        connect_timeout=db.connect_timeout_seconds,
        sqlite_busy_timeout_ms=db.sqlite_busy_timeout_ms,
        # Configuration reads (route, team, channels, silences ...) are shared across requests
        # for a short time, and a transaction served from that cache takes no connection
        # (SPEC S12; see relay_adapters.storage.sqlalchemy.cache).
        read_cache_ttl=CONFIG_READ_CACHE_SECONDS,
        lazy_begin=True,
        encryption_key=derive_encryption_key(
            secret_key=settings.main.secret_key, encryption_key=settings.main.encryption_key
        ),
    )


#: How long another process's configuration change may take to reach this one's intake.
CONFIG_READ_CACHE_SECONDS = 2.0


def _ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite file so the first start needs no manual step."""
    _, _, path = url.partition(":///")
    path = path.split("?", 1)[0]
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def make_registry(settings: RelaySettings) -> PluginRegistry:
    """A new plugin manager and registry honouring ``plugins.load`` (empty = every plugin)."""
    allow = tuple(settings.plugins.load) or None
    return PluginRegistry(make_plugin_manager(allow=allow))


def make_voice_loader(settings: RelaySettings, registry: PluginRegistry) -> VoiceProviderLoader:
    """Voice providers by name: built-ins, plugin classes, then ``voice.providers_dir`` files."""
    from relay_adapters.voice import stub
    from relay_adapters.voice.loader import make_voice_loader as _make
    from relay_adapters.voice.simulator import simulator_providers

    providers_dir = settings.voice.providers_dir or str(settings.data_dir / "voice_providers")
    # The simulator keeps its calls under this data_dir, shared with the server and the CLI.
    simulator_voice, _ = simulator_providers(settings.data_dir / "simulator")
    loader: VoiceProviderLoader = _make(
        builtins={"stub": stub.Provider, "simulator": simulator_voice},
        plugins=registry.voice_providers(),
        providers_dir=providers_dir,
        compat_imports=settings.voice.incidentrelay_compat_imports,
    )
    # At process start: log provider files ignored for their name or shadowed (S7.2).
    scan = getattr(loader, "scan", None)
    if callable(scan):
        scan()
    return loader


def make_builtin_channels(settings: RelaySettings, registry: PluginRegistry) -> list[ChannelSender]:
    """Every built-in channel configured from ``settings`` (SMS providers of plugins included)."""
    from relay_adapters.channels import make_channels
    from relay_adapters.voice import stub
    from relay_adapters.voice.loader import make_sms_loader
    from relay_adapters.voice.simulator import simulator_providers

    _, simulator_sms = simulator_providers(settings.data_dir / "simulator")  # shared with server and CLI
    sms_loader = make_sms_loader(
        builtins={"stub": stub.SmsProvider, "simulator": simulator_sms},
        plugins=registry.sms_providers(),
        providers_dir=settings.sms.providers_dir or str(settings.data_dir / "sms_providers"),
        compat_imports=settings.voice.incidentrelay_compat_imports,
    )
    return list(make_channels(settings, sms_loader=sms_loader))


def make_http_client(settings: RelaySettings) -> Any:
    """The one outbound HTTP client (SPEC S6.2), or ``None`` when no channel module needs one.

    The policy (timeouts, SSRF checks, redirects) belongs to ``relay_adapters.channels._http``;
    its ``make_http_client(settings)`` is used when it has one.
    """
    if importlib.util.find_spec("relay_adapters.channels") is None:
        return None
    if importlib.util.find_spec(_HTTP_MODULE) is None:
        return None
    module = importlib.import_module(_HTTP_MODULE)
    factory = getattr(module, "make_http_client", None)
    if callable(factory):
        return factory(settings)
    import httpx

    security = settings.security
    return httpx.AsyncClient(
        timeout=httpx.Timeout(security.outbound_timeout_seconds, connect=5.0),
        follow_redirects=False,
    )


def relay_from_settings(
    settings: RelaySettings,
    *,
    clock: Clock | None = None,
    dispatcher: Dispatcher | None = None,
    channels: Sequence[ChannelSender] = (),
    registry: PluginRegistry | None = None,
    http: Any = None,
    worker_id: str | None = None,
    metrics: Instrumentation | None = None,
) -> Relay:
    """Build a :class:`Relay` from settings.

    Args:
        settings: Loaded settings (``relay_adapters.settings.load_settings``).
        clock: Time source; the system clock by default.
        dispatcher: Receives committed intent ids (the in-process worker, dramatiq);
            by default nothing is dispatched and ``Relay.deliver_due`` finds the work.
        channels: Channel sender instances that win over registry classes of the same name.
        registry: Plugin registry; a new one honouring ``plugins.load`` by default.
        http: Outbound HTTP client; by default the one of ``relay_adapters.channels._http``.
        worker_id: Identifies this process in outbox leases.
        metrics: Instrumentation of the core (S9.9); Prometheus metrics on a registry of
            their own (``relay.ctx.metrics.registry``) by default when ``metrics.enabled``.

    The caller owns the result: close it with :func:`aclose_relay`.
    """
    settings = ensure_secret_key(settings)
    registry = registry if registry is not None else make_registry(settings)
    if http is None:
        http = make_http_client(settings)
    voice_loader = make_voice_loader(settings, registry)
    return bootstrap(
        uow_factory=make_uow_factory(settings),
        clock=clock,
        settings=core_settings(settings),
        registry=registry,
        # Built-in channels with the process-wide settings they need (public URL, secret key,
        # SMTP, SMS, outbound options); the caller's instances still win on a name clash.
        channels=[
            *make_builtin_channels(settings, registry),
            _voice_channel(settings, voice_loader),
            *channels,
        ],
        voice_loader=voice_loader,
        dispatcher=dispatcher,
        http=http,
        worker_id=worker_id or f"relay-{os.getpid()}-{secrets.token_hex(3)}",
        metrics=metrics if metrics is not None else make_instrumentation(settings),
    )


def make_instrumentation(settings: RelaySettings) -> Instrumentation | None:
    """The Prometheus instrumentation of ``relay_adapters.metrics`` (None with metrics disabled)."""
    if not settings.metrics.enabled:
        return None
    from relay_adapters.metrics import PrometheusInstrumentation

    return PrometheusInstrumentation()


def redis_dispatcher(settings: RelaySettings, *, background: bool = True) -> RedisDispatcher | None:
    """The Redis dispatcher of a process that commits intents but consumes none (SPEC S5.8).

    None without ``redis.url``. See :func:`relay_adapters.dispatch_redis.redis_dispatcher`
    (imported only here, so dramatiq is needed only with Redis): bind it to the relay built
    with it, and ``await dispatcher.aclose()`` before :func:`aclose_relay`.
    """
    if not settings.redis.url:
        return None
    from relay_adapters.dispatch_redis import redis_dispatcher as _redis_dispatcher

    return _redis_dispatcher(settings, background=background)


def _voice_channel(settings: RelaySettings, loader: VoiceProviderLoader) -> ChannelSender:
    """The ``voice_call`` channel with the ``[voice]`` settings (timeout, default text, provider)."""
    from relay_core.services.voice import VoiceCallChannel

    voice = settings.voice
    return VoiceCallChannel(
        loader,
        public_base_url=settings.server.public_base_url,
        default_provider=voice.provider,
        default_provider_config=dict(settings.voice_provider),
        call_timeout_seconds=voice.call_timeout_seconds,
        text_template=voice.text_template,
    )


async def aclose_relay(relay: Relay) -> None:
    """Close what :func:`relay_from_settings` opened: storage pools and the HTTP client."""
    try:
        await relay.aclose()
    finally:
        http = relay.ctx.http
        close = getattr(http, "aclose", None)
        if close is not None:
            await close()
