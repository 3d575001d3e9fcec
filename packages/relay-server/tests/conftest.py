"""A shared world for server tests: two groups, one team per group, users with every role,
a rotation, routes with intake tokens, a channel and personal API tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import argon2
import attrs
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from relay_adapters.settings import RelaySettings, ServerSettings
from relay_core.bootstrap import Relay, bootstrap
from relay_core.domain.errors import StorageUnavailable
from relay_core.domain.model import (
    ApiToken,
    Channel,
    Group,
    GroupMembership,
    Rotation,
    RotationLayer,
    RotationMember,
    Route,
    Team,
    TeamMembership,
    User,
)
from relay_core.memory import InMemoryUnitOfWorkFactory
from relay_core.plugins import PluginRegistry, make_plugin_manager
from relay_core.services.context import CoreSettings
from relay_core.testing.fakes import FakeClock, RecordingChannel
from relay_server.app import create_app
from relay_server.auth import PERSONAL_TOKEN_PREFIX, ROUTE_TOKEN_PREFIX, LoginThrottle, new_token
from relay_server.controllers._support import STATE_KEY, ServerState

START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse-battery"
# Cheap parameters for fixture users; a login rehashes to the production parameters.
_FAST = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class FlakyUnitOfWorkFactory:
    """Wraps a factory; while ``down`` every unit of work fails with ``StorageUnavailable``."""

    def __init__(self, inner: InMemoryUnitOfWorkFactory) -> None:
        self.inner = inner
        self.down = False

    def __call__(self) -> Any:
        if self.down:
            raise StorageUnavailable()
        return self.inner()

    async def aclose(self) -> None:
        await self.inner.aclose()


@attrs.define
class World:
    relay: Relay
    app: Litestar
    settings: RelaySettings
    clock: FakeClock
    storage: FlakyUnitOfWorkFactory
    channel: RecordingChannel
    ids: dict[str, int]
    tokens: dict[str, str]

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state[STATE_KEY]
        return state

    def session(self, name: str) -> str:
        """A session JWT for fixture user ``name``, minted like a login would."""
        user = self._users[name]
        token, _expires, _jti = self.state.sessions.issue(user, self.clock.now())
        return token

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session(name)}"}

    def bearer(self, token_name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[token_name]}"}

    _users: dict[str, User] = attrs.field(factory=dict)

    async def count(self, repo: str, **where: Any) -> int:
        async with self.relay.uow_factory() as uow:
            result: int = await getattr(uow, repo).count(**where)
            return result

    async def find(self, repo: str, **where: Any) -> list[Any]:
        async with self.relay.uow_factory() as uow:
            result: list[Any] = await getattr(uow, repo).find(**where)
            return result

    async def get(self, repo: str, id: int) -> Any:
        async with self.relay.uow_factory() as uow:
            return await getattr(uow, repo).get(id)


async def build_world(*, settings: RelaySettings | None = None, app: Litestar | None = None) -> World:
    """A fresh world; with ``app``, that already-built app is rebound to the new world's relay
    (building a Litestar app is the slow part, so tests running many worlds share one)."""
    clock = FakeClock(START)
    recording = RecordingChannel()
    storage = FlakyUnitOfWorkFactory(InMemoryUnitOfWorkFactory())
    settings = settings or RelaySettings(server=ServerSettings(public_base_url="https://relay.test"))
    relay = bootstrap(
        uow_factory=storage,
        clock=clock,
        settings=CoreSettings(public_base_url=settings.server.public_base_url),
        registry=PluginRegistry(make_plugin_manager()),
        channels=[recording],
    )
    ids: dict[str, int] = {}
    tokens: dict[str, str] = {}
    users: dict[str, User] = {}
    async with relay.uow_factory() as uow:
        ops = await uow.groups.add(Group(slug="ops", name="Operations"))
        other = await uow.groups.add(Group(slug="other", name="Other"))
        ids.update(group=ops.id, other_group=other.id)
        infra = await uow.teams.add(Team(group_id=ops.id, slug="infra", name="Infrastructure"))
        billing = await uow.teams.add(Team(group_id=other.id, slug="billing", name="Billing"))
        ids.update(team=infra.id, other_team=billing.id)
        pw = _FAST.hash(PASSWORD)
        # name: (is_admin, group role in ops, team role in infra, phone)
        people = {
            "admin": (True, None, None, "+15550000000"),
            "manager": (False, "viewer", "manager", "+15550001111"),
            "responder": (False, "viewer", "responder", "+15550002222"),
            "viewer": (False, "viewer", "viewer", None),
            "editor": (False, "editor", None, None),
            "useradmin": (False, "user_admin", None, None),
            "outsider": (False, None, None, None),
        }
        for name, (is_admin, group_role, team_role, phone) in people.items():
            user = await uow.users.add(
                User(
                    username=name,
                    display_name=name.title(),
                    email=f"{name}@example.com",
                    phone=phone,
                    password_hash=pw,
                    is_admin=is_admin,
                )
            )
            users[name] = user
            ids[name] = user.id
            if group_role:
                await uow.group_memberships.add(
                    GroupMembership(user_id=user.id, group_id=ops.id, role=group_role)
                )
            if team_role:
                await uow.team_memberships.add(
                    TeamMembership(team_id=infra.id, user_id=user.id, role=team_role)
                )
        await uow.group_memberships.add(
            GroupMembership(user_id=users["outsider"].id, group_id=other.id, role="editor")
        )
        await uow.team_memberships.add(
            TeamMembership(team_id=billing.id, user_id=users["outsider"].id, role="manager")
        )
        rotation = await uow.rotations.add(
            Rotation(team_id=infra.id, name="primary", start_at=dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC))
        )
        layer = await uow.rotation_layers.add(RotationLayer(rotation_id=rotation.id))
        for position, name in enumerate(("manager", "responder")):
            await uow.rotation_members.add(
                RotationMember(
                    rotation_id=rotation.id, layer_id=layer.id, user_id=users[name].id, position=position
                )
            )
        ids["rotation"] = rotation.id
        channel = await uow.channels.add(
            Channel(group_id=ops.id, team_id=infra.id, name="room", channel_type="recording")
        )
        ids["channel"] = channel.id
        for source in ("alertmanager", "webhook", "grafana", "zabbix"):
            token = new_token(ROUTE_TOKEN_PREFIX)
            route = await uow.routes.add(
                Route(
                    team_id=infra.id,
                    name=f"{source} route",
                    source=source,
                    rotation_id=rotation.id,
                    channel_ids=(channel.id,),
                    intake_token_hash=token.hash,
                    intake_token_prefix=token.prefix,
                )
            )
            ids[f"route_{source}"] = route.id
            tokens[f"route_{source}"] = token.raw
        for name, owner, scopes in (
            ("alerts_write", "responder", ("alerts:write",)),
            ("teams_read", "responder", ("teams:read",)),
            ("all", "manager", ("*",)),
        ):
            token = new_token(PERSONAL_TOKEN_PREFIX)
            row = await uow.api_tokens.add(
                ApiToken(
                    user_id=users[owner].id,
                    name=name,
                    token_prefix=token.prefix,
                    token_hash=token.hash,
                    scopes=scopes,
                )
            )
            ids[f"token_{name}"] = row.id
            tokens[name] = token.raw
        await uow.commit()
    if app is None:
        app = create_app(relay=relay, settings=settings)
    else:
        state: ServerState = app.state[STATE_KEY]
        state.relay = relay
        state.registry = relay.registry
        state.throttle = LoginThrottle(settings)
    return World(
        relay=relay,
        app=app,
        settings=settings,
        clock=clock,
        storage=storage,
        channel=recording,
        ids=ids,
        tokens=tokens,
        users=users,
    )


@pytest.fixture
async def world() -> World:
    return await build_world()


@pytest.fixture
async def client(world: World) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=world.app) as test_client:
        yield test_client
