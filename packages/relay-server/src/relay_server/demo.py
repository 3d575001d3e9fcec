"""Demo data for a first run (``relay demo-data``, ``relay serve --demo``; SPEC S10.1, S8.6).

:func:`create_demo_data` builds a small, complete world: the ``demo`` group, an admin and two
responders with phones, team ``infra`` with a daily Europe/Berlin 09:00 rotation, a webhook
channel pointing at the built-in simulator sink and a ``voice_call`` channel, one route per
built-in source with its intake token, the standard category preset and one silence. Every
object is found by its slug or name before it is created, so running it again changes nothing
and only reports what is new. Raw secrets (the admin password, intake tokens) exist only in the
returned :class:`DemoInfo`: storage keeps hashes.

Token and password helpers used by the CLI live here too.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import shlex
from collections.abc import Mapping
from typing import Any, Final, TextIO

import attrs

from relay_adapters.settings import RelaySettings
from relay_core.bootstrap import Relay
from relay_core.domain import constants as c
from relay_core.domain.categories import STANDARD_PRESET
from relay_core.domain.grouping import SUGGESTED_GROUP_BY
from relay_core.domain.model import (
    Channel,
    Group,
    GroupMembership,
    RoleGroupMember,
    Rotation,
    RotationMember,
    Route,
    Silence,
    Team,
    TeamMembership,
    User,
)
from relay_core.domain.rotation import localize, parse_handoff_time, validate_rotation
from relay_core.ports.storage import Repository, UnitOfWork
from relay_core.services.intake import ensure_builtin_categories
from relay_core.services.subscriptions import apply_standard_preset
from relay_server.auth import PERSONAL_TOKEN_PREFIX, ROUTE_TOKEN_PREFIX, NewToken, new_token, sha256_hex

__all__ = [
    "DEMO_GROUP_SLUG",
    "DEMO_SOURCES",
    "DEMO_TEAM_SLUG",
    "DemoInfo",
    "check_demo_data",
    "create_demo_data",
    "demo_alertmanager_payload",
    "ensure_demo_data",
    "format_demo_info",
    "hash_password",
    "hash_token",
    "new_personal_token",
    "new_route_token",
]

DEMO_GROUP_SLUG: Final = "demo"
DEMO_TEAM_SLUG: Final = "infra"
DEMO_ROTATION: Final = "infra-daily"
DEMO_TIMEZONE: Final = "Europe/Berlin"
DEMO_HANDOFF: Final = "09:00"
DEMO_WEBHOOK_CHANNEL: Final = "demo-webhook"
DEMO_VOICE_CHANNEL: Final = "demo-phone"
DEMO_SILENCE: Final = "demo-staging-maintenance"
DEMO_SOURCES: Final = ("alertmanager", "zabbix", "webhook", "grafana")
ADMIN_USERNAME: Final = "admin"
RESPONDERS: Final = (
    ("alice", "Alice Example", "alice@example.com", "+15550100001"),
    ("bob", "Bob Example", "bob@example.com", "+15550100002"),
)


def demo_route_name(source: str) -> str:
    return f"demo-{source}"


# --- tokens and passwords --------------------------------------------------------------------


def hash_token(raw: str) -> str:
    """SHA-256 hex of a token, the form tokens are stored and looked up in (SPEC S3.2)."""
    return sha256_hex(raw)


def new_route_token() -> NewToken:
    """A route intake token: ``rly_r_`` + 384 random bits (``raw``, ``hash``, ``prefix``)."""
    return new_token(ROUTE_TOKEN_PREFIX)


def new_personal_token() -> NewToken:
    """A personal API token: ``rly_p_`` + 384 random bits."""
    return new_token(PERSONAL_TOKEN_PREFIX)


def hash_password(password: str) -> str:
    """argon2id hash with argon2-cffi's default parameters (SPEC S13.5)."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def _webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# --- the demo world --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DemoInfo:
    """What a demo run created and the secrets to show once."""

    created: tuple[str, ...]
    """``"<kind> <name>"`` of every object created by this run (empty when all existed)."""
    admin_username: str
    admin_password: str | None = attrs.field(repr=False)
    """The generated password, or None when the admin already existed."""
    route_ids: Mapping[str, int]
    """Demo route id by source."""
    route_tokens: Mapping[str, str] = attrs.field(repr=False)
    """Raw intake token by source, for the routes created by this run."""
    public_base_url: str

    @property
    def intake_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/api/integrations/alertmanager"

    @property
    def token(self) -> str | None:
        """The Alertmanager route's intake token, when this run created it."""
        return self.route_tokens.get("alertmanager")

    @property
    def curl(self) -> str | None:
        """A ready-to-run curl posting one Alertmanager alert, when the token is known."""
        if self.token is None:
            return None
        body = json.dumps(demo_alertmanager_payload(), separators=(",", ":"))
        return " ".join(
            [
                "curl -sS -X POST",
                shlex.quote(self.intake_url),
                "-H",
                shlex.quote(f"Authorization: Bearer {self.token}"),
                "-H",
                shlex.quote("Content-Type: application/json"),
                "-d",
                shlex.quote(body),
            ]
        )


def demo_alertmanager_payload() -> dict[str, Any]:
    """An Alertmanager v4 webhook body with one firing critical alert for the demo team."""
    labels = {
        "alertname": "DemoDiskFull",
        "severity": "critical",
        "instance": "demo-host:9100",
        "team": DEMO_TEAM_SLUG,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DemoDiskFull"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "relay",
        "groupLabels": {"alertname": "DemoDiskFull"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": "Disk almost full on demo-host",
                    "description": "/var is 95% full",
                },
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph",
                "fingerprint": "demo-disk-full",
            }
        ],
    }


class _Builder:
    """Get-or-create against one unit of work, remembering what it created."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.created: list[str] = []

    async def get_or_add(
        self, kind: str, label: str, repo: Repository[Any], entity: Any, **where: Any
    ) -> Any:
        existing = await repo.first(**where)
        if existing is not None:
            return existing
        added = await repo.add(entity)
        self.created.append(f"{kind} {label}")
        return added


async def create_demo_data(relay: Relay, settings: RelaySettings) -> DemoInfo:
    """Create whatever part of the demo world is missing (idempotent by slug/name)."""
    now = relay.clock.now()
    base = settings.server.public_base_url.rstrip("/")
    password: str | None = None
    tokens: dict[str, str] = {}
    route_ids: dict[str, int] = {}
    async with relay.uow_factory() as uow:
        b = _Builder(uow)
        group = await b.get_or_add(
            "group",
            DEMO_GROUP_SLUG,
            uow.groups,
            Group(slug=DEMO_GROUP_SLUG, name="Demo", description="Created by relay demo-data"),
            slug=DEMO_GROUP_SLUG,
        )
        admin = await uow.users.first(username=ADMIN_USERNAME)
        if admin is None:
            password = secrets.token_urlsafe(15)
            admin = await b.get_or_add(
                "user",
                ADMIN_USERNAME,
                uow.users,
                User(
                    username=ADMIN_USERNAME,
                    display_name="Demo Admin",
                    email="admin@example.com",
                    password_hash=hash_password(password),
                    is_admin=True,
                    active_group_id=group.id,
                ),
                username=ADMIN_USERNAME,
            )
        responders: list[User] = []
        for username, display, email, phone in RESPONDERS:
            responders.append(
                await b.get_or_add(
                    "user",
                    username,
                    uow.users,
                    User(
                        username=username,
                        display_name=display,
                        email=email,
                        phone=phone,
                        timezone=DEMO_TIMEZONE,
                        active_group_id=group.id,
                    ),
                    username=username,
                )
            )
        for user, role in ((admin, c.GROUP_EDITOR), *((r, c.GROUP_VIEWER) for r in responders)):
            await b.get_or_add(
                "group membership",
                user.username,
                uow.group_memberships,
                GroupMembership(user_id=user.id, group_id=group.id, role=role),
                user_id=user.id,
                group_id=group.id,
            )
        team = await b.get_or_add(
            "team",
            DEMO_TEAM_SLUG,
            uow.teams,
            Team(group_id=group.id, slug=DEMO_TEAM_SLUG, name="Infrastructure", escalation_after_reminders=2),
            slug=DEMO_TEAM_SLUG,
        )
        for user, role in ((admin, c.TEAM_MANAGER), *((r, c.TEAM_RESPONDER) for r in responders)):
            await b.get_or_add(
                "team membership",
                user.username,
                uow.team_memberships,
                TeamMembership(team_id=team.id, user_id=user.id, role=role),
                team_id=team.id,
                user_id=user.id,
            )
        rotation = await b.get_or_add(
            "rotation",
            DEMO_ROTATION,
            uow.rotations,
            _demo_rotation(team.id, now),
            team_id=team.id,
            name=DEMO_ROTATION,
        )
        for position, user in enumerate(responders):
            await b.get_or_add(
                "rotation member",
                user.username,
                uow.rotation_members,
                RotationMember(rotation_id=rotation.id, user_id=user.id, position=position),
                rotation_id=rotation.id,
                user_id=user.id,
            )
        webhook = await b.get_or_add(
            "channel",
            DEMO_WEBHOOK_CHANNEL,
            uow.channels,
            Channel(
                group_id=group.id,
                team_id=team.id,
                name=DEMO_WEBHOOK_CHANNEL,
                channel_type="webhook",
                config={"webhook_url": f"{base}/api/simulator/sink/demo", "secret": _webhook_secret()},
            ),
            group_id=group.id,
            name=DEMO_WEBHOOK_CHANNEL,
        )
        voice = await b.get_or_add(
            "channel",
            DEMO_VOICE_CHANNEL,
            uow.channels,
            Channel(
                group_id=group.id,
                team_id=team.id,
                name=DEMO_VOICE_CHANNEL,
                channel_type="voice_call",
                config={"provider": "stub"},
                callback_secret=secrets.token_urlsafe(32),
            ),
            group_id=group.id,
            name=DEMO_VOICE_CHANNEL,
        )
        for source in DEMO_SOURCES:
            name = demo_route_name(source)
            route = await uow.routes.first(team_id=team.id, name=name)
            if route is None:
                token = new_route_token()
                route = await b.get_or_add(
                    "route",
                    name,
                    uow.routes,
                    Route(
                        team_id=team.id,
                        name=name,
                        source=source,
                        rotation_id=rotation.id,
                        group_by=tuple(SUGGESTED_GROUP_BY.get(source, ())),
                        channel_ids=(webhook.id, voice.id),
                        intake_token_prefix=token.prefix,
                        intake_token_hash=token.hash,
                    ),
                    team_id=team.id,
                    name=name,
                )
                tokens[source] = token.raw
            route_ids[source] = route.id
        await _standard_preset(b, group.id, webhook.id, admin, responders)
        await b.get_or_add(
            "silence",
            DEMO_SILENCE,
            uow.silences,
            Silence(
                team_id=team.id,
                name=DEMO_SILENCE,
                reason="Demo: staging is under maintenance",
                matchers={"env": "staging"},
                starts_at=now,
                ends_at=now + dt.timedelta(days=30),
                created_by=admin.id,
            ),
            team_id=team.id,
            name=DEMO_SILENCE,
        )
        await uow.commit()
    return DemoInfo(
        created=tuple(b.created),
        admin_username=ADMIN_USERNAME,
        admin_password=password,
        route_ids=route_ids,
        route_tokens=tokens,
        public_base_url=base,
    )


def _demo_rotation(team_id: int, now: dt.datetime) -> Rotation:
    tz_now = now.astimezone(_berlin())
    # Started a week ago, so someone is on call from the first minute.
    start = localize(tz_now.date() - dt.timedelta(days=7), parse_handoff_time(DEMO_HANDOFF), _berlin())
    rotation = Rotation(
        team_id=team_id,
        name=DEMO_ROTATION,
        description="Daily handoff at 09:00 Berlin time",
        start_at=start,
        rotation_type=c.ROTATION_DAILY,
        interval_value=1,
        interval_unit=c.UNIT_DAYS,
        handoff_time=DEMO_HANDOFF,
        timezone=DEMO_TIMEZONE,
        reminder_interval_seconds=300,
    )
    validate_rotation(rotation)
    return rotation


def _berlin() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(DEMO_TIMEZONE)


async def _standard_preset(
    b: _Builder, group_id: int, webhook_channel_id: int, admin: User, responders: list[User]
) -> None:
    """The standard preset (SPEC S8.6) in the demo group, with the demo users as members.

    The role groups and subscriptions come from :func:`apply_standard_preset`, the same code as
    ``POST /api/subscriptions/presets/standard``; the webhook channel is attached where the preset
    names one.
    """
    uow = b.uow
    known_rgs = {rg.id for rg in await uow.role_groups.find(group_id=group_id)}
    known_subs = {sub.id for sub in await uow.subscriptions.find(group_id=group_id)}
    result = await apply_standard_preset(
        uow,
        group_id,
        categories=await ensure_builtin_categories(uow),
        webhook_channel_id=webhook_channel_id,
    )
    b.created.extend(f"role group {rg.slug}" for rg in result.role_groups if rg.id not in known_rgs)
    b.created.extend(f"subscription {sub.name}" for sub in result.subscriptions if sub.id not in known_subs)
    role_groups = {rg.slug: rg for rg in result.role_groups}
    members = {"org-admins": [admin], "tech-devops": responders}
    for slug, users in members.items():
        for user in users:
            await b.get_or_add(
                "role group member",
                f"{slug}/{user.username}",
                uow.role_group_members,
                RoleGroupMember(role_group_id=role_groups[slug].id, user_id=user.id),
                role_group_id=role_groups[slug].id,
                user_id=user.id,
            )


async def check_demo_data(relay: Relay) -> list[str]:
    """What is missing from the demo world, one line each (empty when complete); writes nothing."""
    missing: list[str] = []
    async with relay.uow_factory() as uow:
        group = await uow.groups.first(slug=DEMO_GROUP_SLUG)
        if group is None:
            return [f"missing group: {DEMO_GROUP_SLUG}"]
        for username in (ADMIN_USERNAME, *(r[0] for r in RESPONDERS)):
            if await uow.users.first(username=username) is None:
                missing.append(f"missing user: {username}")
        team = await uow.teams.first(slug=DEMO_TEAM_SLUG)
        if team is None:
            missing.append(f"missing team: {DEMO_TEAM_SLUG}")
        else:
            if await uow.rotations.first(team_id=team.id, name=DEMO_ROTATION) is None:
                missing.append(f"missing rotation: {DEMO_ROTATION}")
            for source in DEMO_SOURCES:
                if await uow.routes.first(team_id=team.id, name=demo_route_name(source)) is None:
                    missing.append(f"missing route: {demo_route_name(source)}")
            if await uow.silences.first(team_id=team.id, name=DEMO_SILENCE) is None:
                missing.append(f"missing silence: {DEMO_SILENCE}")
        for name in (DEMO_WEBHOOK_CHANNEL, DEMO_VOICE_CHANNEL):
            if await uow.channels.first(group_id=group.id, name=name) is None:
                missing.append(f"missing channel: {name}")
        for preset in STANDARD_PRESET.role_groups:
            if await uow.role_groups.first(group_id=group.id, slug=preset.slug) is None:
                missing.append(f"missing role group: {preset.slug}")
        if await uow.subscriptions.count(group_id=group.id) < len(STANDARD_PRESET.subscriptions):
            missing.append("missing subscriptions of the standard preset")
    return missing


def format_demo_info(info: DemoInfo) -> str:
    """The text ``relay serve --demo`` and ``relay demo-data`` print (secrets shown once)."""
    lines = ["Relay demo data created." if info.created else "Relay demo data is complete; nothing created."]
    if info.admin_password is not None:
        lines.append(f"  Admin login:   {info.admin_username} / {info.admin_password}")
    else:
        lines.append(f"  Admin login:   {info.admin_username} (existing user; password unchanged)")
    for source, token in info.route_tokens.items():
        lines.append(f"  Intake token for route {demo_route_name(source)} ({source}): {token}")
    if info.curl is not None:
        lines.append("  Send a test alert:")
        lines.append(f"    {info.curl}")
    lines.append("  These secrets are shown only once; mint a new intake token with")
    lines.append(f"    relay token create --route {demo_route_name('alertmanager')}")
    return "\n".join(lines)


async def ensure_demo_data(relay: Relay, settings: RelaySettings, *, out: TextIO) -> DemoInfo | None:
    """``relay serve --demo``: create the demo world when the database has no users yet."""
    async with relay.uow_factory() as uow:
        has_users = await uow.users.count() > 0
    if has_users:
        print(
            "Demo data already exists (the database has users). To mint a new intake token run:\n"
            f"  relay token create --route {demo_route_name('alertmanager')}",
            file=out,
            flush=True,
        )
        return None
    info = await create_demo_data(relay, settings)
    print(format_demo_info(info), file=out, flush=True)
    return info
