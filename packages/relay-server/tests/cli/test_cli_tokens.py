"""``relay token create``: route intake tokens and personal API tokens, printed once as JSON."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Awaitable, Callable

from litestar.testing import AsyncTestClient

from relay_adapters.settings import RelaySettings
from relay_core.bootstrap import Relay
from relay_core.domain.model import ApiToken, Route
from relay_server.app import create_app
from relay_server.demo import demo_alertmanager_payload

from .conftest import Cli


async def _route(relay: Relay, name: str) -> Route | None:
    async with relay.uow_factory() as uow:
        return await uow.routes.first(name=name)


def _alert_poster(settings: RelaySettings, token: str) -> Callable[[Relay], Awaitable[tuple[int, object]]]:
    """A query that POSTs the demo Alertmanager alert through the real app with ``token``."""

    async def work(relay: Relay) -> tuple[int, object]:
        async with AsyncTestClient(create_app(relay=relay, settings=settings)) as client:
            response = await client.post(
                "/api/integrations/alertmanager",
                content=json.dumps(demo_alertmanager_payload()),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        return response.status_code, response.json()

    return work


def test_route_token_is_printed_once_and_authenticates(cli: Cli) -> None:
    """A regenerated route token is stored as SHA-256 + prefix and accepted by the intake endpoint."""
    cli.ok("demo-data")
    before = cli.query(lambda relay: _route(relay, "demo-alertmanager"))
    assert before is not None
    issued = cli.json("token", "create", "--route", "demo-alertmanager")
    assert set(issued) == {"token", "prefix", "expires_at"}
    assert issued["expires_at"] is None
    assert re.fullmatch(r"rly_r_[A-Za-z0-9_-]{64}", issued["token"])
    assert issued["prefix"] == issued["token"][:12]

    route = cli.query(lambda relay: _route(relay, "demo-alertmanager"))
    assert route is not None
    assert route.intake_token_hash == hashlib.sha256(issued["token"].encode()).hexdigest()
    assert route.intake_token_prefix == issued["prefix"]
    assert route.intake_token_hash != before.intake_token_hash

    settings = cli.settings
    status, body = cli.query(_alert_poster(settings, issued["token"]))
    assert status == 200
    assert isinstance(body, list)
    assert body[0]["outcome"] == "created"


def test_route_token_by_id_replaces_the_previous_one(cli: Cli) -> None:
    """``--route <id>`` works too, and the old token stops working."""
    cli.ok("demo-data")
    route = cli.query(lambda relay: _route(relay, "demo-webhook"))
    assert route is not None
    first = cli.json("token", "create", "--route", str(route.id))
    second = cli.json("token", "create", "--route", str(route.id))
    stored = cli.query(lambda relay: _route(relay, "demo-webhook"))
    assert stored is not None
    assert stored.intake_token_hash == hashlib.sha256(second["token"].encode()).hexdigest()
    assert stored.intake_token_hash != hashlib.sha256(first["token"].encode()).hexdigest()


def test_personal_token_has_scopes_and_expiry(cli: Cli) -> None:
    """A personal token is stored hashed with its scopes and an expiry D days ahead."""
    cli.ok("create-admin", "--username", "root", "--password", "correct horse battery", "--email", "r@x.io")
    issued = cli.json(
        "token",
        "create",
        "--user",
        "root",
        "--name",
        "ci",
        "--scopes",
        "alerts:write,routes:read",
        "--days",
        "30",
    )
    assert issued["token"].startswith("rly_p_")
    expires = dt.datetime.fromisoformat(issued["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(days=29) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)

    async def stored(relay: Relay) -> ApiToken | None:
        async with relay.uow_factory() as uow:
            return await uow.api_tokens.first(name="ci")

    token = cli.query(stored)
    assert token is not None
    assert token.scopes == ("alerts:write", "routes:read")
    assert token.token_hash == hashlib.sha256(issued["token"].encode()).hexdigest()
    assert token.token_prefix == issued["prefix"]


def test_token_create_usage_errors_exit_2(cli: Cli) -> None:
    """Missing or conflicting options and unknown scopes are usage errors."""
    assert cli("token", "create").exit_code == 2
    assert cli("token", "create", "--route", "x", "--user", "root").exit_code == 2
    assert cli("token", "create", "--user", "root", "--name", "n", "--scopes", "bogus:scope").exit_code == 2


def test_token_for_unknown_route_or_user_exits_1(cli: Cli) -> None:
    """Naming something that does not exist is a runtime error."""
    result = cli("token", "create", "--route", "no-such-route")
    assert result.exit_code == 1
    assert "route not found" in result.stderr
    result = cli("token", "create", "--user", "ghost", "--name", "n", "--scopes", "alerts:write")
    assert result.exit_code == 1
