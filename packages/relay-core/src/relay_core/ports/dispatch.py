"""Ports for handing work to workers and for voice providers (ARCHITECTURE §3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Dispatcher(Protocol):
    """Receives the ids of intents committed by a command, after commit.

    Production: one dramatiq message per id. Embedded: wake the in-process worker.
    Losing a call is harmless: the scheduler's outbox relay finds pending intents anyway.
    """

    async def enqueue(self, intent_ids: Sequence[int]) -> None: ...


class NullDispatcher:
    """Does nothing; delivery happens when someone calls ``Relay.deliver_due``."""

    async def enqueue(self, intent_ids: Sequence[int]) -> None:
        return None


class VoiceProviderLoader(Protocol):
    """Resolves a provider name to a ``BaseVoiceProvider`` subclass (SPEC S7.2)."""

    def load(self, name: str) -> type[Any]: ...
