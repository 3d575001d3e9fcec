#!/usr/bin/env python3
"""Load generator of the bench harness (SPEC S12.3): runs as its own process, prints JSON.

Two modes, both over plain HTTP/1.1 keep-alive connections on loopback (a tiny asyncio client:
cheaper per request than a general-purpose client, so the generator takes as little of the
shared CPU as possible):

``load``       closed loop: ``--concurrency`` connections each POST an Alertmanager body with
               ``--batch`` alerts (distinct fingerprints) as fast as answers come back, for
               ``--warmup`` then ``--duration`` seconds; reports requests, alerts/s, errors and
               the latency percentiles of the measured window.
``firstsend``  open loop at ``--rate`` single-alert posts per second for ``--warmup`` +
               ``--duration`` seconds, with a webhook receiver on ``--receiver-port`` in this
               same process (one clock): reports p50/p95/p99 from request start to the first
               byte of the matching webhook delivery, and how many never arrived.

Every loop is bounded in count and time, and only loopback addresses are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def pct(samples: list[float], p: float) -> float:
    if not samples:
        return -1.0
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def latency_summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(samples_ms, 50), 2),
        "p95_ms": round(pct(samples_ms, 95), 2),
        "p99_ms": round(pct(samples_ms, 99), 2),
        "max_ms": round(max(samples_ms), 2) if samples_ms else -1.0,
    }


_ALERT = (
    '{"status":"firing","labels":{"alertname":"Bench","severity":"critical","instance":"%(key)s"},'
    '"annotations":{"summary":"Bench alert %(key)s"},"startsAt":"2026-06-01T09:59:00Z",'
    '"endsAt":"0001-01-01T00:00:00Z","fingerprint":"%(key)s"}'
)


def am_body(keys: list[str]) -> bytes:
    alerts = ",".join(_ALERT % {"key": key} for key in keys)
    return (
        '{"version":"4","status":"firing","receiver":"relay","groupKey":"{}:{}","alerts":[' + alerts + "]}"
    ).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection issuing POSTs one at a time."""

    def __init__(self, host: str, port: int, path: str, token: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            payload = b"".join(parts)
        else:
            payload = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing non-loopback target {host!r}")
    return host, parts.port or 80, parts.path or "/"


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    host, port, path = _target(args.url)
    run = args.tag or uuid.uuid4().hex[:8]
    counter = 0
    start = time.perf_counter()
    measure_from = start + args.warmup
    stop_at = measure_from + args.duration
    latencies: list[float] = []
    stats = {"requests": 0, "errors": 0, "warmup_requests": 0, "exceptions": 0}
    statuses: dict[str, int] = {}
    first_error: list[str] = []
    ends: list[float] = []

    async def worker(index: int) -> None:
        nonlocal counter
        conn = Connection(host, port, path, args.token)
        try:
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                keys = [f"{run}-{counter + i}" for i in range(args.batch)]
                counter += args.batch
                body = am_body(keys)
                s = time.perf_counter()
                try:
                    status, payload = await conn.post(body)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    stats["exceptions"] += 1
                    if not first_error:
                        first_error.append(repr(exc))
                    await conn.close()
                    await asyncio.sleep(0.01)
                    continue
                e = time.perf_counter()
                if s < measure_from:
                    stats["warmup_requests"] += 1
                    continue
                ends.append(e)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                stats["requests"] += 1
                latencies.append((e - s) * 1000)
                if status >= 300 and not args.any_status:
                    stats["errors"] += 1
                    if not first_error:
                        first_error.append(f"{status}: {payload[:300].decode('utf-8', 'replace')}")
        finally:
            await conn.close()

    await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    # Requests started inside the window are waited for; the window ends at the last answer.
    window = max(args.duration, (max(ends) - measure_from) if ends else 0.0)
    ok = stats["requests"] - stats["errors"]
    return {
        "concurrency": args.concurrency,
        "batch": args.batch,
        "window_s": round(window, 3),
        **stats,
        "statuses": statuses,
        "requests_per_s": round(stats["requests"] / window, 1),
        "alerts_per_s": round(ok * args.batch / window, 1),
        **latency_summary(latencies),
        "first_error": first_error[0] if first_error else None,
    }


async def run_firstsend(args: argparse.Namespace) -> dict[str, Any]:
    host, port, path = _target(args.url)
    run = args.tag or uuid.uuid4().hex[:8]
    marker = re.compile(rb"fs" + run.encode() + rb"x(\d+)x")
    sent_at: dict[int, float] = {}
    arrived_at: dict[int, float] = {}
    deliveries = {"count": 0, "duplicates": 0}

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                got = time.perf_counter()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                deliveries["count"] += 1
                found = marker.search(body)
                if found:
                    n = int(found[1])
                    if n in arrived_at:
                        deliveries["duplicates"] += 1
                    else:
                        arrived_at[n] = got
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok")
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", args.receiver_port)
    stats = {"requests": 0, "errors": 0}
    first_error: list[str] = []
    start = time.perf_counter()
    total = int((args.warmup + args.duration) * args.rate)
    measure_from_n = int(args.warmup * args.rate)
    conns = [Connection(host, port, path, args.token) for _ in range(8)]
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)

    async def one(n: int) -> None:
        conn = await free.get()
        key = f"fs{run}x{n}x"
        sent_at[n] = time.perf_counter()
        try:
            status, payload = await conn.post(am_body([key]))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await conn.close()
            status, payload = 599, repr(exc).encode()
        finally:
            free.put_nowait(conn)
        stats["requests"] += 1
        if status >= 300:
            stats["errors"] += 1
            sent_at.pop(n, None)
            if not first_error:
                first_error.append(f"{status}: {payload[:300].decode('utf-8', 'replace')}")

    tasks = []
    for n in range(total):
        due = start + n / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + args.drain
    while time.perf_counter() < deadline and not set(sent_at) <= set(arrived_at):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    server.close()
    for conn in conns:
        await conn.close()
    measured = [n for n in sent_at if n >= measure_from_n]
    samples = [(arrived_at[n] - sent_at[n]) * 1000 for n in measured if n in arrived_at]
    return {
        "rate_per_s": args.rate,
        "window_s": args.duration,
        **stats,
        "measured": len(measured),
        "delivered": len(samples),
        "lost": len(measured) - len(samples),
        "webhook_requests": deliveries["count"],
        "duplicates": deliveries["duplicates"],
        **latency_summary(samples),
        "first_error": first_error[0] if first_error else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("load", "firstsend"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default="none")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--receiver-port", type=int, default=0)
    parser.add_argument("--drain", type=float, default=10)
    parser.add_argument("--tag", default="")
    parser.add_argument("--any-status", action="store_true", help="count every status as a success")
    args = parser.parse_args()
    runner = run_load if args.mode == "load" else run_firstsend
    result = asyncio.run(runner(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
