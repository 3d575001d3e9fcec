"""In-process intake cost: SQL statements, CPU per alert and an optional pyinstrument profile.

The same core path the server runs for ``POST /api/v1/intake/alertmanager`` (parse, then
``Relay.ingest``) on a unit-of-work factory configured as the server configures it (read cache,
lazy BEGIN), without HTTP. Statements are counted by a ``before_cursor_execute`` listener
(an ``executemany`` counts once: it is one round trip through the driver).

    .venv/bin/python bench/profile_intake.py                     # SQLite, 1- and 50-alert posts
    .venv/bin/python bench/profile_intake.py --pg                # PostgreSQL at RELAY_BENCH_PG
    .venv/bin/python bench/profile_intake.py --profile 1         # pyinstrument over 1-alert posts
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import _am_body, _pg_database, _world


async def measure(url: str, requests: dict[int, int], profile: int | None) -> dict[str, Any]:
    from sqlalchemy import event

    from relay_adapters.intake.alertmanager import AlertmanagerSource
    from relay_adapters.storage.sqlalchemy.uow import SqlAlchemyUnitOfWorkFactory

    relay, seed_factory, _clock, ids = await _world(url)
    await seed_factory.aclose()
    # RELAY_BENCH_AIOSQLITE=1: SQLite through aiosqlite's thread instead of the inline driver.
    extra = {"sqlite_inline": False} if os.environ.get("RELAY_BENCH_AIOSQLITE") == "1" else {}
    factory = SqlAlchemyUnitOfWorkFactory(url, read_cache_ttl=2, lazy_begin=True, **extra)
    relay.ctx.uow_factory = factory
    count = [0]

    def counter(*_args: Any) -> None:
        count[0] += 1

    event.listen(factory.engine.sync_engine, "before_cursor_execute", counter)
    source = AlertmanagerSource()
    out: dict[str, Any] = {}
    try:
        offset = 0
        for batch, n in requests.items():
            for warm in range(5):  # warm the caches and compiled statements
                await relay.ingest(
                    "alertmanager",
                    source.parse(_am_body(batch, 9_000_000 + offset + warm * batch), {}, {}),
                    route_id=ids["route"],
                )
            offset += 10 * batch
            bodies = [_am_body(batch, batch * 100_000 + r * batch) for r in range(n)]
            profiler = None
            if profile == batch:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005, async_mode="disabled")
                profiler.start()
            count[0] = 0
            cpu, wall = time.process_time(), time.perf_counter()
            for body in bodies:
                await relay.ingest("alertmanager", source.parse(body, {}, {}), route_id=ids["route"])
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if profiler is not None:
                profiler.stop()
                print(profiler.output_text(unicode=False, color=False, show_all=False))
            out[batch] = {
                "statements_per_request": round(count[0] / n, 1),
                "cpu_ms_per_alert": round(cpu * 1000 / (n * batch), 2),
                "alerts_per_s_one_client": round(n * batch / wall, 1),
            }
    finally:
        await factory.aclose()
    return out


async def main_async(args: argparse.Namespace) -> None:
    requests = {1: args.single, 50: args.multi}
    if args.pg:
        url, drop = await _pg_database()
        try:
            result = await measure(url, requests, args.profile)
        finally:
            await drop()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = await measure(f"sqlite:///{tmp}/relay.db", requests, args.profile)
    for batch, figures in result.items():
        print(f"{'postgresql' if args.pg else 'sqlite'} {batch:>2}-alert posts: {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", action="store_true", help="PostgreSQL at RELAY_BENCH_PG instead of SQLite")
    parser.add_argument("--single", type=int, default=400, help="single-alert requests")
    parser.add_argument("--multi", type=int, default=20, help="50-alert requests")
    parser.add_argument("--profile", type=int, choices=(1, 50), help="pyinstrument over this batch size")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
