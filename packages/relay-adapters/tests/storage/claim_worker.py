"""A minimal delivery worker process for the outbox concurrency tests (not a test module).

Usage: ``python claim_worker.py URL OWNER NOW BATCH WORKDIR MODE``

It writes ``WORKDIR/OWNER.ready``, waits for ``WORKDIR/go``, then claims due intents in batches
of ``BATCH`` at instant ``NOW`` (ISO 8601) with a 60 s lease, each claim in its own unit of
work. In mode ``send`` it marks every claimed intent ``sent`` (compare-and-set on its lease) and
keeps going until no intent is pending; the claimed ids go to ``WORKDIR/OWNER.json``. In mode
``crash`` it claims one batch, commits, records it and dies without sending, like a worker killed
mid-send.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.domain import constants as c

LEASE = dt.timedelta(seconds=60)


async def work(url: str, owner: str, now: dt.datetime, batch: int, workdir: Path, mode: str) -> None:
    factory = SqlAlchemyUnitOfWorkFactory(url, pool_size=2, max_overflow=0)
    claimed_ids: list[int] = []
    empty_claims = 0
    try:
        (workdir / f"{owner}.ready").touch()
        deadline = time.monotonic() + 60
        while not (workdir / "go").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("no go signal")
            await asyncio.sleep(0.002)
        while True:
            async with factory() as uow:
                claimed = await uow.intents.claim(owner=owner, now=now, lease_until=now + LEASE, limit=batch)
                await uow.commit()
            claimed_ids.extend(i.id for i in claimed)
            if mode == "crash":
                break
            if claimed:
                await asyncio.sleep(0.001)  # "sending", outside any transaction, as a real worker does
                async with factory() as uow:
                    for intent in claimed:
                        sent = await uow.intents.update_where(
                            intent.id,
                            {"status": c.INTENT_SENDING, "lease_owner": owner},
                            {"status": c.INTENT_SENT, "finished_at": now},
                        )
                        if sent is None:
                            raise RuntimeError(f"{owner} lost intent {intent.id} it had claimed")
                    await uow.commit()
                continue
            empty_claims += 1
            async with factory() as uow:
                if await uow.intents.count(status=c.INTENT_PENDING) == 0:
                    break
    finally:
        result = {"owner": owner, "claimed": claimed_ids, "empty_claims": empty_claims, "pid": os.getpid()}
        (workdir / f"{owner}.json").write_text(json.dumps(result))
        if mode == "crash":
            os._exit(137)  # killed mid-send: no release, no rollback of the committed claim
        await factory.aclose()


def main() -> None:
    url, owner, now, batch, workdir, mode = sys.argv[1:7]
    asyncio.run(work(url, owner, dt.datetime.fromisoformat(now), int(batch), Path(workdir), mode))


if __name__ == "__main__":
    main()
