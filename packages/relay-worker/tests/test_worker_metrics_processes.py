"""Metrics and heartbeats across real processes (SPEC S9.9, S1.8, S5.11).

``relay serve --no-worker --no-scheduler``, ``relay worker`` and ``relay scheduler`` share one
``data_dir``: the CLI puts each in Prometheus multiprocess mode there, so the notification counter
incremented in the worker process and the job metrics of the scheduler process show up in the web
process's ``/metrics``. Each process upserts its own heartbeat row, and ``/readyz`` reports the
database, Redis and the migrations.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.domain import constants as c
from relay_core.testing.pytest_plugin import LocalHttpServer

from .worker_support import (
    add_route_token,
    am_payload,
    child_env,
    children,
    free_port,
    seed_world,
    wait_live,
    wait_until,
)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition, or None when absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)", line.strip())
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


@pytest.mark.services
@pytest.mark.slow
async def test_worker_counters_reach_the_web_metrics_and_each_process_beats(
    tmp_path: Path,
    sqlite_url: str,
    redis_url: str,
    namespace: str,
    local_http_server: LocalHttpServer,
) -> None:
    receiver = local_http_server
    store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    try:
        ids = await seed_world(
            store, channel_type="webhook", channel_config={"webhook_url": f"{receiver.url}/h"}
        )
        token = await add_route_token(store, ids["route"])
        port = free_port()
        env = child_env(tmp_path, sqlite_url, redis_url, namespace)
        env.update(RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST="127.0.0.1/32")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with children(env, tmp_path) as kids:
            kids.start_relay("web", "serve", "--no-worker", "--no-scheduler", "--port", str(port))
            kids.start_relay("worker", "worker", "--threads", "1")
            kids.start_relay("scheduler", "scheduler")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await wait_live(client, kids)
                response = await client.post(
                    "/api/integrations/alertmanager",
                    content=am_payload(),
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                assert response.status_code in (200, 201, 202), response.text

                async def sent() -> bool:
                    async with store() as uow:
                        return [i.status for i in await uow.intents.find()] == [c.INTENT_SENT]

                await wait_until("the worker to deliver the notification", sent)

                async def beating() -> bool:
                    async with store() as uow:
                        rows = await uow.process_heartbeats.find()
                    return {row.role for row in rows} == {"web", "worker", "scheduler"}

                await wait_until("a heartbeat row for each process", beating)

                scraped: dict[str, str] = {}

                async def scraped_all() -> bool:
                    text = (await client.get("/metrics")).text
                    scraped["text"] = text
                    return (
                        sample(
                            text,
                            "relay_scheduler_last_success_timestamp_seconds",
                            job="process_heartbeat",
                        )
                        is not None
                        and sample(text, "relay_scheduler_job_duration_seconds_count", job="due_actions")
                        is not None
                    )

                await wait_until("the scheduler's job metrics in the web's /metrics", scraped_all)
                text = scraped["text"]
                ready = await client.get("/readyz")
            async with store() as uow:
                rows = await uow.process_heartbeats.find()
                open_groups = await uow.alert_groups.count(status="firing")
    finally:
        await store.aclose()

    # Produced in the worker process, scraped from the web process.
    assert (
        sample(
            text,
            "relay_notifications_total",
            channel_type="webhook",
            event_type="notification",
            outcome="sent",
        )
        == 1.0
    )
    assert sample(text, "relay_delivery_latency_seconds_count", channel_type="webhook") == 1.0
    assert sample(text, "relay_time_to_first_notification_seconds_count") == 1.0
    # Produced in the web process.
    assert sample(text, "relay_alerts_received_total", source="alertmanager", outcome="created") == 1.0
    # Read from the database at scrape time.
    assert sample(text, "relay_alert_groups_open", status="firing", severity="critical") == float(open_groups)
    assert sample(text, "relay_outbox_oldest_pending_age_seconds") == 0.0
    assert sample(text, "relay_build_info") == 1.0
    assert "pid=" not in text  # aggregated over processes, no per-process series
    assert len(receiver.requests) == 1

    roles = {row.role: row for row in rows}
    assert set(roles) == {"web", "worker", "scheduler"}
    assert len({row.process_id for row in rows}) == 3
    assert all(row.seen_at >= row.started_at for row in rows)

    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["database"] == "ok"
    assert body["redis"] == "ok"
    assert body["migrations"]["applied"] == body["migrations"]["total"] >= 2
    # The metric files live under the shared data_dir.
    assert any((tmp_path / "data" / "prometheus").glob("*.db"))
