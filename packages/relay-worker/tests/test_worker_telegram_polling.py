"""``relay scheduler`` as a real process long-polls Telegram (``telegram.mode = "polling"``, SPEC S6.6).

The Bot API is a local HTTP server the test starts; the scheduler finds the bot of the enabled
telegram channel in the database, fetches a callback query with ``getUpdates``, acknowledges the
alert group as the Telegram user's Relay account, answers the query, and holds the bot's lease.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import signal
from pathlib import Path

import attrs
import pytest

from relay_adapters.channels.telegram import callback_data
from relay_adapters.storage.sqlalchemy import SqlAlchemyUnitOfWorkFactory
from relay_core.bootstrap import bootstrap
from relay_core.services.context import CoreSettings
from relay_core.testing.pytest_plugin import LocalHttpServer

from .worker_support import child_env, children, post_alert, seed_world, wait_until

pytestmark = pytest.mark.slow

TOKEN = "4242:scheduler-poll-token"


async def test_worker_scheduler_process_long_polls_telegram_and_acts_on_a_button(
    tmp_path: Path, sqlite_url: str, local_http_server: LocalHttpServer
) -> None:
    """`relay scheduler` polls getUpdates, acknowledges as the linked user, answers the query."""
    api = local_http_server
    api.respond(200, {"ok": True, "result": []}, path=f"/bot{TOKEN}/getUpdates")
    api.respond(200, {"ok": True, "result": True}, path=f"/bot{TOKEN}/answerCallbackQuery")
    store = SqlAlchemyUnitOfWorkFactory(sqlite_url)
    relay = bootstrap(uow_factory=store, settings=CoreSettings(group_wait_seconds=0))
    try:
        ids = await seed_world(
            store,
            channel_type="telegram",
            channel_config={"bot_token": TOKEN, "chat_id": "-100", "api_base": api.url},
        )
        async with store() as uow:
            ivan = await uow.users.get(ids["ivan"])
            assert ivan is not None
            await uow.users.update(attrs.evolve(ivan, telegram_user_id="700"))
            await uow.commit()
        group_id = int((await post_alert(relay, ids["route"])).group_id)

        env = child_env(tmp_path, sqlite_url)
        env["RELAY_TELEGRAM__MODE"] = "polling"
        env["RELAY_SECURITY__OUTBOUND_PRIVATE_NETWORK_ALLOWLIST"] = "127.0.0.1/32"
        # The button as the channel renders it: callback data signed with main.secret_key.
        data = callback_data(env["RELAY_SECRET_KEY"], "acknowledge", group_id, ids["chat"])
        update = {
            "update_id": 41,
            "callback_query": {
                "id": "q-41",
                "from": {"id": 700},
                "message": {"message_id": 5, "chat": {"id": -100}},
                "data": data,
            },
        }
        api.enqueue(200, {"ok": True, "result": [update]})

        with children(env, tmp_path) as kids:
            scheduler = kids.start_relay("scheduler", "scheduler")

            async def answered() -> bool:
                assert scheduler.poll() is None, "relay scheduler exited"
                return any(r.path.endswith("/answerCallbackQuery") for r in api.requests)

            await wait_until("the scheduler to answer the callback query", answered)

            async def confirmed() -> bool:  # the next getUpdates carries the following offset
                return any(
                    r.path == f"/bot{TOKEN}/getUpdates" and r.json().get("offset") == 42 for r in api.requests
                )

            await wait_until("the scheduler to confirm the update", confirmed)

            lease_name = "telegram_poll:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:16]
            async with store() as uow:
                taken = await uow.leases.acquire(lease_name, "probe", dt.datetime.now(dt.UTC), 30)
                await uow.commit()
            assert taken is None  # the scheduler holds the bot's lease: no second poller

            scheduler.send_signal(signal.SIGTERM)
            assert scheduler.wait(20) == 0

        polls = [r for r in api.requests if r.path == f"/bot{TOKEN}/getUpdates"]
        assert polls
        assert polls[0].json()["allowed_updates"] == ["callback_query"]
        # After the update, the next poll confirms it with the following offset.
        assert any(r.json().get("offset") == 42 for r in polls[1:])
        answers = [r.json() for r in api.requests if r.path.endswith("/answerCallbackQuery")]
        assert answers == [{"callback_query_id": "q-41", "text": "Acknowledged"}]
        async with store() as uow:
            group = await uow.alert_groups.get(group_id)
        assert group is not None
        assert (group.status, group.acknowledged_by) == ("acknowledged", ids["ivan"])
    finally:
        await store.aclose()
