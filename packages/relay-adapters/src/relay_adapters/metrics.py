"""Prometheus metrics (SPEC S9.9): the core's instrumentation port, multiprocess support and the
gauges computed from the database at scrape time.

Multiprocess: with ``PROMETHEUS_MULTIPROC_DIR`` set (``relay serve``/``worker``/``scheduler`` set it to
``<data_dir>/prometheus`` before any metric exists, see :func:`enable_multiprocess`), every process
writes its counters and histograms to memory-mapped files there, and ``/metrics`` of any web process
aggregates all of them (prometheus_client's documented multiprocess mode), so counters produced in
worker and scheduler processes reach the scrape. Without it (tests, library use) metrics live in the
registries of this process.

Never use ids as label values: every label here is a name from a small fixed set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

__all__ = [
    "DELIVERY_LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "DatabaseGauges",
    "PrometheusInstrumentation",
    "enable_multiprocess",
    "exposition",
    "mark_process_dead",
    "multiprocess_dir",
    "multiprocess_dir_for",
    "setup_multiprocess",
]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: SPEC S9.9: intent due -> provider accepted.
DELIVERY_LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Group creation -> first page accepted (waits include group_wait, 30 s by default).
FIRST_NOTIFICATION_BUCKETS: Final = (1, 5, 10, 30, 45, 60, 120, 300, 600, 1800)
#: Scheduler jobs take milliseconds to seconds.
JOB_DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Statuses of an open group (S2.14): not resolved, not merged.
OPEN_STATUSES: Final = ("firing", "acknowledged", "silenced")


# --- multiprocess mode ------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    """The multiprocess directory in force for this process, if any."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def multiprocess_dir_for(data_dir: Path | str) -> Path:
    """Where Relay keeps the metric files of its processes: ``<data_dir>/prometheus``."""
    return Path(data_dir) / "prometheus"


def enable_multiprocess(directory: Path | str) -> Path:
    """Turn on prometheus_client's multiprocess mode for this process and its children.

    Call before any metric object is created (the CLI does, before building the app, workers or
    the scheduler). Child processes inherit the environment variable and start in that mode.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    from prometheus_client import values

    # The value class is chosen when prometheus_client is imported; metrics created from now on
    # write to files in `path` (the same switch the library makes when the variable is set early).
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


def mark_process_dead(pid: int | None = None) -> None:
    """Drop the live-gauge files of a process that exits (counters and histograms stay)."""
    if multiprocess_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid if pid is not None else os.getpid())  # type: ignore[no-untyped-call]


# --- the core's instrumentation port ------------------------------------------------------------


class PrometheusInstrumentation:
    """:class:`relay_core.ports.metrics.Instrumentation` on Prometheus metrics (S9.9 names)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.notifications = Counter(
            "relay_notifications_total",
            "Delivery outcomes of notification intents.",
            ["channel_type", "event_type", "outcome"],
            registry=r,
        )
        self.delivery_latency_seconds = Histogram(
            "relay_delivery_latency_seconds",
            "Time from an intent being due to the provider accepting it.",
            ["channel_type"],
            buckets=DELIVERY_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_notification_seconds = Histogram(
            "relay_time_to_first_notification_seconds",
            "Time from a group's first alert to its first accepted notification.",
            buckets=FIRST_NOTIFICATION_BUCKETS,
            registry=r,
        )
        self.reminders = Counter("relay_reminders_total", "Reminders taken by the scheduler.", registry=r)
        self.escalations = Counter(
            "relay_escalations_total", "Escalations taken by the scheduler.", ["mode"], registry=r
        )
        self.callbacks = Counter(
            "relay_callbacks_received_total",
            "Provider and chat callbacks by kind and result.",
            ["kind", "result"],
            registry=r,
        )
        self.job_duration = Histogram(
            "relay_scheduler_job_duration_seconds",
            "Duration of scheduler job runs.",
            ["job"],
            buckets=JOB_DURATION_BUCKETS,
            registry=r,
        )
        self.job_last_success = Gauge(
            "relay_scheduler_last_success_timestamp_seconds",
            "Unix time of the last successful run of each scheduler job.",
            ["job"],
            multiprocess_mode="mostrecent",
            registry=r,
        )

    def notification(self, *, channel_type: str, event_type: str, outcome: str) -> None:
        self.notifications.labels(channel_type=channel_type, event_type=event_type, outcome=outcome).inc()

    def delivery_latency(self, *, channel_type: str, seconds: float) -> None:
        self.delivery_latency_seconds.labels(channel_type=channel_type).observe(seconds)

    def time_to_first_notification(self, seconds: float) -> None:
        self.first_notification_seconds.observe(seconds)

    def reminder(self) -> None:
        self.reminders.inc()

    def escalation(self, *, mode: str) -> None:
        self.escalations.labels(mode=mode).inc()

    def callback(self, *, kind: str, result: str) -> None:
        self.callbacks.labels(kind=kind, result=result).inc()

    def job_finished(self, *, job: str, seconds: float, success: bool, timestamp: float) -> None:
        self.job_duration.labels(job=job).observe(seconds)
        if success:
            self.job_last_success.labels(job=job).set(timestamp)


# --- gauges from the database ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GaugeSnapshot:
    """Values read from the database at one scrape."""

    groups_open: dict[tuple[str, str], int]
    outbox_pending: dict[str, int]
    oldest_pending_age_seconds: float


class _HasCollect(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class DatabaseGauges:
    """``relay_alert_groups_open``, ``relay_outbox_pending`` and ``relay_outbox_oldest_pending_age_seconds``,
    read with grouped, indexed queries at scrape time and cached ``ttl`` seconds (S9.9)."""

    def __init__(self, relay: Any, *, ttl: float = 5.0) -> None:
        self.relay = relay
        self.ttl = ttl
        self._cached: tuple[float, GaugeSnapshot] | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self) -> GaugeSnapshot:
        async with self._lock:
            mono = time.monotonic()
            if self._cached is not None and mono - self._cached[0] < self.ttl:
                return self._cached[1]
            value = await self._read()
            self._cached = (time.monotonic(), value)
            return value

    async def _read(self) -> GaugeSnapshot:
        now = self.relay.clock.now()
        factory = self.relay.uow_factory
        engine = getattr(factory, "engine", None)
        if engine is not None:
            return await _read_sql(engine, now)
        return await _read_repositories(factory, now)

    async def collector(self) -> _HasCollect:
        """A collector yielding the current (possibly cached) values."""
        return _SnapshotCollector(await self.snapshot())


async def _read_sql(engine: Any, now: dt.datetime) -> GaugeSnapshot:
    import sqlalchemy as sa

    from relay_adapters.storage.sqlalchemy.tables import metadata

    groups, intents, channels = (metadata.tables[n] for n in ("alert_groups", "intents", "channels"))
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(groups.c.status, groups.c.severity, sa.func.count())
            .where(groups.c.status.in_(OPEN_STATUSES))
            .group_by(groups.c.status, groups.c.severity)
        )
        groups_open = {(str(s), str(v)): int(n) for s, v, n in rows}
        rows = await conn.execute(
            sa.select(channels.c.channel_type, sa.func.count())
            .select_from(intents.outerjoin(channels, channels.c.id == intents.c.channel_id))
            .where(intents.c.status == "pending")
            .group_by(channels.c.channel_type)
        )
        pending = {str(t or "unknown"): int(n) for t, n in rows}
        oldest = (
            await conn.execute(
                sa.select(sa.func.min(intents.c.due_at)).where(
                    intents.c.status == "pending", intents.c.due_at <= now
                )
            )
        ).scalar()
    return GaugeSnapshot(
        groups_open=groups_open, outbox_pending=pending, oldest_pending_age_seconds=_age(oldest, now)
    )


async def _read_repositories(factory: Any, now: dt.datetime) -> GaugeSnapshot:
    groups_open: dict[tuple[str, str], int] = {}
    pending: dict[str, int] = {}
    oldest: dt.datetime | None = None
    async with factory() as uow:
        for group in await uow.alert_groups.find(status__in=list(OPEN_STATUSES)):
            key = (group.status, group.severity)
            groups_open[key] = groups_open.get(key, 0) + 1
        types: dict[int, str] = {}
        for intent in await uow.intents.find(status="pending"):
            cid = intent.channel_id
            if cid is not None and cid not in types:
                channel = await uow.channels.get(cid)
                types[cid] = channel.channel_type if channel is not None else "unknown"
            kind = types.get(cid, "unknown") if cid is not None else "unknown"
            pending[kind] = pending.get(kind, 0) + 1
            if intent.due_at <= now and (oldest is None or intent.due_at < oldest):
                oldest = intent.due_at
    return GaugeSnapshot(
        groups_open=groups_open, outbox_pending=pending, oldest_pending_age_seconds=_age(oldest, now)
    )


def _age(oldest: dt.datetime | None, now: dt.datetime) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return max((now - oldest).total_seconds(), 0.0)


class _SnapshotCollector:
    def __init__(self, snap: GaugeSnapshot) -> None:
        self._snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self._snap
        groups = GaugeMetricFamily(
            "relay_alert_groups_open",
            "Open alert groups by status and severity.",
            labels=["status", "severity"],
        )
        for (status, severity), count in sorted(snap.groups_open.items()):
            groups.add_metric([status, severity], count)
        yield groups
        pending = GaugeMetricFamily(
            "relay_outbox_pending", "Pending notification intents (queue depth).", labels=["channel_type"]
        )
        for channel_type, count in sorted(snap.outbox_pending.items()):
            pending.add_metric([channel_type], count)
        yield pending
        yield GaugeMetricFamily(
            "relay_outbox_oldest_pending_age_seconds",
            "Seconds the oldest due pending intent has waited.",
            value=snap.oldest_pending_age_seconds,
        )


# --- exposition ---------------------------------------------------------------------------------


class _Combined:
    def __init__(self, sources: Sequence[_HasCollect]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source.collect()


def exposition(local: Sequence[_HasCollect], live: Sequence[_HasCollect] = ()) -> bytes:
    """The Prometheus text of one scrape.

    ``local``: this process's registries (used without multiprocess mode); ``live``: collectors
    computed at scrape time (database gauges), added in both modes. In multiprocess mode the
    metric files of every process replace ``local``.
    """
    directory = multiprocess_dir()
    if directory is not None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
        sources: list[_HasCollect] = [registry, *live]
    else:
        sources = [*local, *live]
    return generate_latest(_Combined(sources))  # type: ignore[arg-type,unused-ignore]


def setup_multiprocess(settings: Any) -> Path | None:
    """For ``relay serve``/``worker``/``scheduler``: multiprocess mode in ``PROMETHEUS_MULTIPROC_DIR``
    when the operator set it, else in ``<data_dir>/prometheus`` (None with metrics disabled)."""
    if not settings.metrics.enabled:
        return None
    return enable_multiprocess(multiprocess_dir() or multiprocess_dir_for(settings.data_dir))
