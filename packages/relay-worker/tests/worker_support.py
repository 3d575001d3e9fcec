"""Shared by the worker tests and by the worker/scheduler child processes they start.

Holds the seeded world (one team, three responders, a weekly rotation, one channel, a route),
an Alertmanager payload helper, a tiny HTTP channel that posts to a local receiver with a
``webhook-id`` header, and the ``main`` of the child processes. Importing it has no side effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_core.bootstrap import Relay
from relay_core.domain.model import (
    Channel,
    Group,
    GroupMembership,
    Rotation,
    RotationMember,
    Route,
    Team,
    TeamMembership,
    User,
)
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from relay_core.ports.storage import UnitOfWorkFactory

SUPPORT = Path(__file__).resolve()
WAIT_SECONDS = 30.0
START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
USERS = ("ivan", "sergey", "anna")


async def seed_world(
    uow_factory: UnitOfWorkFactory,
    *,
    channel_type: str = "recording",
    channel_config: Mapping[str, Any] | None = None,
    reminder: int = 300,
    escalate_after: int = 2,
    group_wait: int | None = None,
) -> dict[str, int]:
    """One team with three responders on a weekly rotation, one channel, one route; the ids."""
    ids: dict[str, int] = {}
    async with uow_factory() as uow:
        grp = await uow.groups.add(Group(slug="ops", name="Operations"))
        team = await uow.teams.add(
            Team(
                group_id=grp.id,
                slug="infra",
                name="Infrastructure",
                escalation_after_reminders=escalate_after,
            )
        )
        users = []
        for name in USERS:
            user = await uow.users.add(User(username=name, display_name=name.title()))
            await uow.group_memberships.add(GroupMembership(user_id=user.id, group_id=grp.id))
            await uow.team_memberships.add(TeamMembership(team_id=team.id, user_id=user.id, role="responder"))
            users.append(user)
            ids[name] = user.id
        rot = await uow.rotations.add(
            Rotation(
                team_id=team.id,
                name="primary",
                start_at=dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC),
                rotation_type="weekly",
                handoff_time="09:00",
                timezone="UTC",
                reminder_interval_seconds=reminder,
            )
        )
        for position, user in enumerate(users):
            await uow.rotation_members.add(
                RotationMember(rotation_id=rot.id, user_id=user.id, position=position)
            )
        chat = await uow.channels.add(
            Channel(
                group_id=grp.id,
                team_id=team.id,
                name="chat",
                channel_type=channel_type,
                config=dict(channel_config or {}),
            )
        )
        route = await uow.routes.add(
            Route(
                team_id=team.id,
                name="prometheus",
                source="alertmanager",
                rotation_id=rot.id,
                channel_ids=(chat.id,),
                group_wait_seconds=group_wait,
            )
        )
        await uow.commit()
    ids.update(team=team.id, rotation=rot.id, chat=chat.id, route=route.id, group=grp.id)
    return ids


async def add_route_token(uow_factory: UnitOfWorkFactory, route_id: int) -> str:
    """Give route ``route_id`` a new intake token (as ``relay token create --route`` does); the token."""
    from relay_server.demo import new_route_token

    token = new_route_token()
    async with uow_factory() as uow:
        route = await uow.routes.get(route_id)
        await uow.routes.update(
            attrs.evolve(route, intake_token_prefix=token.prefix, intake_token_hash=token.hash)
        )
        await uow.commit()
    return token.raw


def am_payload(
    *, fingerprint: str = "fp-disk-1", status: str = "firing", alertname: str = "DiskFull"
) -> bytes:
    """An Alertmanager v4 webhook body with one alert."""
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "relay",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": alertname, "severity": "critical", "instance": fingerprint},
                "annotations": {"summary": f"{alertname} on {fingerprint}"},
                "startsAt": "2026-06-01T09:59:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }
    return json.dumps(body).encode()


async def post_alert(
    relay: Relay, route_id: int, *, fingerprint: str = "fp-disk-1", status: str = "firing"
) -> Any:
    """Ingest one Alertmanager alert on ``route_id``; the item result."""
    items = AlertmanagerSource().parse(am_payload(fingerprint=fingerprint, status=status), {}, {})
    [result] = await relay.ingest("alertmanager", items, route_id=route_id)
    return result


@attrs.frozen(kw_only=True)
class HttpPostConfig:
    url: str


class HttpPostChannel:
    """Channel type ``test_http``: POSTs the message as JSON to ``config.url``.

    Like the webhook channel of S6.10 it sends the idempotency key as ``webhook-id``; 2xx is
    success, 5xx/connection errors are retryable, other statuses permanent.
    """

    name: ClassVar[str] = "test_http"
    label: ClassVar[str] = "HTTP POST (tests)"
    Config: ClassVar[type[Any]] = HttpPostConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities()

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        url = str(message.channel.config["url"])
        body = json.dumps(
            {"event_type": message.event_type, "intent_id": message.intent_id, "text": message.text}
        ).encode()
        status = await asyncio.to_thread(_post, url, body, message.idempotency_key)
        if 200 <= status < 300:
            return DeliveryResult(provider=self.name, provider_status=str(status))
        if status >= 500:
            raise RetryableDeliveryError(f"receiver answered {status}")
        raise PermanentDeliveryError(f"receiver answered {status}")

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        return await self.send(message)


def _post(url: str, body: bytes, key: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - a local test receiver
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "webhook-id": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        raise RetryableDeliveryError(f"receiver unreachable: {exc}") from exc


class Children:
    """Child processes of one test; all of them are stopped at the end, whatever happened."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``worker_support.py <args>``: a worker or scheduler with :class:`HttpPostChannel`."""
        return self.start_python(name, str(SUPPORT), *args)

    def start_relay(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``python -m relay_server <args>``: the real ``relay`` command."""
        return self.start_python(name, "-m", "relay_server", *args)

    def start_python(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def dump(self) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            parts.append(f"----- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def children(env: dict[str, str], logs: Path) -> Iterator[Children]:
    kids = Children(env, logs)
    try:
        yield kids
    except BaseException:
        kids.stop_all()
        print(kids.dump())  # shown by pytest for the failing test
        raise
    kids.stop_all()


async def wait_until(what: str, check: Callable[[], Awaitable[bool]], seconds: float = WAIT_SECONDS) -> None:
    """Poll ``check`` (another process or thread is doing the work) until true, or fail after ``seconds``."""
    interval = 0.05
    for _ in range(int(seconds / interval)):
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for: {what}")


async def wait_live(client: Any, kids: Children, seconds: float = 60.0) -> None:
    """Wait until the web process answers ``/livez`` on ``client`` (an ``httpx.AsyncClient``)."""
    import httpx

    async def live() -> bool:
        for name, proc in kids.procs:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}"
        try:
            return (await client.get("/livez", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until("the web process to serve /livez", live, seconds=seconds)


def child_env(tmp_path: Path, db_url: str, redis_url: str = "", namespace: str = "relay") -> dict[str, str]:
    """Environment of the child processes: short leases and ticks, our database and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        RELAY_DATABASE_URL=db_url,
        RELAY_REDIS_URL=redis_url,
        RELAY_REDIS__NAMESPACE=namespace,
        RELAY_SECRET_KEY="fault-test-secret-key-0123456789abcdef",
        RELAY_DATA_DIR=str(tmp_path / "data"),
        RELAY_DELIVERY__LEASE_SECONDS="3",
        RELAY_DELIVERY__REQUEUE_AFTER_SECONDS="1",
        RELAY_SCHEDULER__TICK_SECONDS="0.2",
        RELAY_SCHEDULER__LEASE_TTL_SECONDS="5",
        RELAY_ALERTS__GROUP_WAIT_SECONDS="0",
        RELAY_LOGGING__FORMAT="console",
        RELAY_LOAD_PLUGINS="relay",
        # dramatiq waits 3 s before reconnecting a consumer by default; keep the test short.
        dramatiq_restart_delay="300",
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_main(argv: list[str]) -> int:
    """``worker [threads [processes]]`` or ``scheduler``: settings from the environment, plus
    :class:`HttpPostChannel`."""
    from relay_adapters.settings import load_settings
    from relay_worker.entrypoint import run_scheduler, run_worker

    settings = load_settings()
    if argv[0] == "worker":
        threads = int(argv[1]) if len(argv) > 1 else 1
        processes = int(argv[2]) if len(argv) > 2 else 1
        return run_worker(settings, processes=processes, threads=threads, channels=[HttpPostChannel()])
    return run_scheduler(settings, channels=[HttpPostChannel()])


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
