"""The core composition root: ``bootstrap(...)`` wires the use cases into a :class:`Relay`.

Shells call ``relay_adapters.compose.relay_from_settings``, which resolves names from
settings and then calls this. Tests and embedders call it directly with memory adapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from relay_core.domain import commands as cmd
from relay_core.domain.intake import ItemError
from relay_core.domain.model import NormalizedAlert
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.plugins.registry import PluginRegistry
from relay_core.ports.channels import ChannelSender
from relay_core.ports.clock import Clock, SystemClock
from relay_core.ports.dispatch import Dispatcher, NullDispatcher, VoiceProviderLoader
from relay_core.ports.metrics import Instrumentation, NullInstrumentation
from relay_core.ports.storage import UnitOfWorkFactory
from relay_core.services import delivery, intake, lifecycle, silences, voice
from relay_core.services.context import Context, CoreSettings
from relay_core.services.results import ActionResult, IntakeAuth, ItemResult


class MappingVoiceLoader:
    """Resolves voice providers from a name -> class mapping (registry plus extras)."""

    def __init__(self, providers: Mapping[str, type[Any]]) -> None:
        self._providers = dict(providers)

    def load(self, name: str) -> type[Any]:
        key = (name or "").strip().lower()
        if not key:
            raise RuntimeError("voice provider name is missing")
        try:
            return self._providers[key]
        except KeyError:
            raise RuntimeError(f"voice provider not found: {key}") from None


@attrs.define
class Relay:
    """The facade shells and embedders talk to."""

    ctx: Context
    registry: PluginRegistry | None = None

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def uow_factory(self) -> UnitOfWorkFactory:
        return self.ctx.uow_factory

    async def handle(self, command: object) -> Any:
        """Run one command (see ``relay_core.domain.commands``)."""
        match command:
            case cmd.IngestAlerts():
                auth = IntakeAuth(route_id=command.route_id, user_id=command.user_id, team_id=command.team_id)
                return await intake.ingest(self.ctx, command.source, command.items, auth)
            case cmd.AcknowledgeAlert():
                return await lifecycle.acknowledge(
                    self.ctx,
                    command.group_id,
                    user_id=command.user_id,
                    via=command.via,
                    comment=command.comment,
                )
            case cmd.ResolveAlert():
                return await lifecycle.resolve(
                    self.ctx,
                    command.group_id,
                    user_id=command.user_id,
                    via=command.via,
                    comment=command.comment,
                )
            case cmd.RunSchedulerTick():
                return await self.tick(command.now)
            case cmd.DeliverDueIntents():
                ids = list(command.ids) if command.ids is not None else None
                return await delivery.deliver_due(self.ctx, ids=ids, limit=command.limit)
            case cmd.HandleVoiceCallback():
                return await voice.handle_voice_callback(
                    self.ctx,
                    command.channel_id,
                    command.secret,
                    payload=command.payload,
                    headers=command.headers,
                    raw_body=command.raw_body,
                    query_args=command.query_args,
                )
        raise TypeError(f"unknown command {type(command).__name__}")

    async def ingest(
        self,
        source: str,
        items: Sequence[NormalizedAlert | ItemError],
        *,
        route_id: int | None = None,
        user_id: int | None = None,
        team_id: int | None = None,
    ) -> list[ItemResult]:
        result: list[ItemResult] = await self.handle(
            cmd.IngestAlerts(source=source, items=items, route_id=route_id, user_id=user_id, team_id=team_id)
        )
        return result

    async def acknowledge(
        self, group_id: int, *, user_id: int | None = None, via: str = "api"
    ) -> ActionResult:
        result: ActionResult = await self.handle(
            cmd.AcknowledgeAlert(group_id=group_id, user_id=user_id, via=via)
        )
        return result

    async def resolve(self, group_id: int, *, user_id: int | None = None, via: str = "api") -> ActionResult:
        result: ActionResult = await self.handle(
            cmd.ResolveAlert(group_id=group_id, user_id=user_id, via=via)
        )
        return result

    async def tick(self, now: Any = None) -> int:
        """One scheduler pass: reclaim expired leases, then due reminders and escalations.

        Returns the number of reminders and escalations taken.
        """
        await delivery.reclaim_expired(self.ctx, now=now)
        return await lifecycle.due_actions(self.ctx, now=now)

    async def silence_lifecycle(self, now: Any = None) -> tuple[int, int]:
        """The 30 s silence job: (alerts silenced by started silences, alerts released)."""
        return await silences.silence_lifecycle(self.ctx, now=now)

    async def deliver_due(self, *, limit: int = 50) -> int:
        return await delivery.deliver_due(self.ctx, limit=limit)

    async def run_until_idle(self, *, max_rounds: int = 100) -> int:
        """Deliver until nothing is due now (embedded use and tests). Returns intents handled."""
        total = 0
        for _ in range(max_rounds):
            handled = await self.deliver_due(limit=100)
            if not handled:
                break
            total += handled
        return total

    async def aclose(self) -> None:
        await self.ctx.uow_factory.aclose()


def bootstrap(
    *,
    uow_factory: UnitOfWorkFactory | None = None,
    clock: Clock | None = None,
    settings: CoreSettings | None = None,
    registry: PluginRegistry | None = None,
    channels: Sequence[ChannelSender] = (),
    voice_providers: Mapping[str, type[Any]] | None = None,
    voice_loader: VoiceProviderLoader | None = None,
    dispatcher: Dispatcher | None = None,
    http: Any = None,
    worker_id: str = "relay",
    metrics: Instrumentation | None = None,
) -> Relay:
    """Build a :class:`Relay`. Every argument has an embeddable default (memory, system clock).

    Channel senders come from the registry's channel classes (constructed without
    arguments) and then ``channels`` instances, which win on a name clash. A
    ``voice_call`` sender is added over the voice providers of the registry, of
    ``voice_providers`` and of ``voice_loader``.
    """
    settings = settings or CoreSettings()
    senders: dict[str, ChannelSender] = {}
    providers: dict[str, type[Any]] = {}
    if registry is not None:
        for name, cls in registry.channels().items():
            senders[name] = cls()
        providers.update(registry.voice_providers())
    providers.update(voice_providers or {})
    for sender in channels:
        senders[sender.name] = sender
    loader = voice_loader or MappingVoiceLoader(providers)
    if "voice_call" not in senders:
        senders["voice_call"] = voice.VoiceCallChannel(
            loader,
            public_base_url=settings.public_base_url,
            default_provider=settings.default_voice_provider,
            default_provider_config=settings.voice_provider_config,
        )
    ctx = Context(
        uow_factory=uow_factory or InMemoryUnitOfWorkFactory(),
        clock=clock or SystemClock(),
        settings=settings,
        senders=senders,
        dispatcher=dispatcher or NullDispatcher(),
        voice_loader=loader,
        http=http,
        worker_id=worker_id,
        metrics=metrics or NullInstrumentation(),
    )
    return Relay(ctx=ctx, registry=registry)
