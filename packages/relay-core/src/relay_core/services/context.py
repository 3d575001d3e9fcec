"""What every use case needs: storage, clock, settings, channel senders, dispatcher."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from relay_core.domain import constants as c
from relay_core.ports.channels import ChannelSender
from relay_core.ports.clock import Clock
from relay_core.ports.dispatch import Dispatcher, VoiceProviderLoader
from relay_core.ports.metrics import Instrumentation, NullInstrumentation
from relay_core.ports.storage import UnitOfWorkFactory


@attrs.frozen(kw_only=True)
class CoreSettings:
    """The settings the core reads (a subset of SPEC S10.3, with its defaults)."""

    public_base_url: str = "http://127.0.0.1:8080"
    secret_key: str = "relay-development-secret-key-change-me"  # noqa: S105 - replaced by settings in every shell
    group_wait_seconds: int = 30
    group_interval_seconds: int = 300
    dedup_window_seconds: int = 3600
    explain_trace_level: str = c.TRACE_FULL
    max_attempts: int = 5
    voice_max_attempts: int = 3
    backoff_base_seconds: int = 5
    backoff_max_seconds: int = 300
    lease_seconds: int = 60
    requeue_after_seconds: int = 10
    max_ambiguous_resends: int = 1
    max_age_seconds: int = 3600
    scheduler_batch_size: int = 500
    callback_replay_window_seconds: int = 86400
    action_link_ttl_seconds: int = 86400
    dtmf_actions: Mapping[str, str] = attrs.field(factory=lambda: dict(c.DEFAULT_DTMF_ACTIONS))
    default_voice_provider: str = "stub"
    voice_provider_config: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True)
class Context:
    """Dependencies of the use cases, built once by ``bootstrap``."""

    uow_factory: UnitOfWorkFactory
    clock: Clock
    settings: CoreSettings
    senders: dict[str, ChannelSender]
    dispatcher: Dispatcher
    voice_loader: VoiceProviderLoader | None = None
    http: Any = None
    worker_id: str = "relay"
    metrics: Instrumentation = attrs.field(factory=NullInstrumentation)
