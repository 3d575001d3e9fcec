"""Commands: what callers ask Relay to do (ARCHITECTURE §8: imperative names)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from relay_core.domain.intake import ItemError
from relay_core.domain.model import NormalizedAlert


@attrs.frozen(kw_only=True)
class IngestAlerts:
    source: str
    items: Sequence[NormalizedAlert | ItemError]
    route_id: int | None = None
    user_id: int | None = None
    team_id: int | None = None


@attrs.frozen(kw_only=True)
class AcknowledgeAlert:
    group_id: int
    user_id: int | None = None
    via: str = "api"
    comment: str | None = None


@attrs.frozen(kw_only=True)
class ResolveAlert:
    group_id: int
    user_id: int | None = None
    via: str = "api"
    comment: str | None = None


@attrs.frozen(kw_only=True)
class RunSchedulerTick:
    now: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class DeliverDueIntents:
    ids: Sequence[int] | None = None
    limit: int = 50


@attrs.frozen(kw_only=True)
class HandleVoiceCallback:
    channel_id: int
    secret: str | None
    payload: Any
    headers: Mapping[str, str] = attrs.field(factory=dict)
    raw_body: bytes = b""
    query_args: Mapping[str, Any] = attrs.field(factory=dict)
