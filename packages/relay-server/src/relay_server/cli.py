"""The ``relay`` command (SPEC S10.1).

Every command reads the same settings as the server (``RELAY_CONFIG_FILE`` + ``RELAY_*``).
Exit codes: 0 success, 1 runtime error (including invalid configuration), 2 usage error.
Commands that need the database migrate a SQLite file first, as ``relay serve`` does; on
PostgreSQL they refuse to run while migrations are pending.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.metadata
import inspect
import json
import os
import platform
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import attrs
import typer

from relay_adapters.compose import aclose_relay, make_registry, relay_from_settings
from relay_adapters.logging import is_secret_key
from relay_adapters.settings import RelaySettings, ServerSettings, SettingsError, load_settings, masked
from relay_core.bootstrap import Relay
from relay_core.domain import constants as c
from relay_core.domain.categories import BUILTIN_CATEGORY_DEFINITIONS, assign_category, subscription_decision
from relay_core.domain.errors import RelayError
from relay_core.domain.escalation import arm_timers, due_action, first_notification_wait, reminder_interval
from relay_core.domain.grouping import build_group_key
from relay_core.domain.intake import ItemError
from relay_core.domain.matchers import MatchContext
from relay_core.domain.model import AlertGroup, NormalizedAlert, Route, Team, User
from relay_core.domain.rotation import next_oncall_user, oncall_at
from relay_core.domain.routing import NO_HINT, NoHint, select_route
from relay_core.domain.silences import matching_silences
from relay_core.plugins import PluginKind, PluginRegistry
from relay_core.ports.storage import UnitOfWork
from relay_server import runtime
from relay_server.auth import ALL_SCOPES, PASSWORD_MAX, PASSWORD_MIN
from relay_server.demo import (
    check_demo_data,
    create_demo_data,
    format_demo_info,
    hash_password,
    hash_token,
    new_personal_token,
    new_route_token,
)

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="relay",
    help="Relay: self-hosted on-call alerting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="API and intake tokens.", no_args_is_help=True)
plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)
config_app = typer.Typer(help="Effective configuration.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(plugins_app, name="plugins")
app.add_typer(config_app, name="config")

SCHEMA_OK = "Schema check OK: all model tables and columns exist."
#: Scopes a personal API token may carry (SPEC S9.4).
TOKEN_SCOPES = ALL_SCOPES


# --- helpers -----------------------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"relay: {message}", err=True)
    raise typer.Exit(code)


def _settings(overrides: Mapping[str, Any] | None = None) -> RelaySettings:
    try:
        return load_settings(overrides=overrides)
    except SettingsError as exc:
        _fail(str(exc))


def _run(coro: Awaitable[T]) -> T:
    async def runner() -> T:
        return await coro

    return asyncio.run(runner())


def _prepare(settings: RelaySettings) -> None:
    """Migrate SQLite, or check that PostgreSQL is migrated, before a command uses the database."""
    try:
        runtime.prepare_storage(settings, migrate=False)
    except (runtime.StartupError, RelayError) as exc:
        _fail(str(exc) or exc.__class__.__name__)


def _with_relay(settings: RelaySettings, work: Callable[[Relay], Awaitable[T]]) -> T:
    """Run ``work`` with a relay composed from ``settings`` (schema prepared), closing it afterwards."""
    _prepare(settings)

    async def run() -> T:
        relay = relay_from_settings(settings)
        try:
            return await work(relay)
        finally:
            await aclose_relay(relay)

    try:
        return _run(run())
    except RelayError as exc:
        _fail(str(exc) or exc.__class__.__name__)


def _database_kind(settings: RelaySettings) -> str:
    if settings.is_memory:
        return "memory"
    return "postgresql" if settings.is_postgres else "sqlite"


def _schema() -> Any:
    from relay_adapters.storage.sqlalchemy import schema

    return schema


def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a schema function that may be sync or async; an unreachable database exits 1."""
    try:
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            return _run(result)
        return result
    except RelayError as exc:
        _fail(str(exc) or exc.__class__.__name__)


def _check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise typer.BadParameter(
            f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long", param_hint="'--password'"
        )


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False, highlight=False, width=max(100, _terminal_width()))


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


# --- serve ---------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (server.port).")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run the in-process worker.")] = False,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="Do not run the scheduler.")] = False,
    migrate: Annotated[bool, typer.Option("--migrate", help="Apply migrations on PostgreSQL.")] = False,
    demo: Annotated[bool, typer.Option("--demo", help="Create demo data on an empty database.")] = False,
) -> None:
    """Run the web server, the scheduler and an in-process worker."""
    server: dict[str, Any] = {}
    if host is not None:
        server["host"] = host
    if port is not None:
        server["port"] = port
    settings = _settings({"server": server} if server else None)
    settings = _default_public_url(settings)
    code = runtime.serve(
        settings, demo=demo, worker=not no_worker, scheduler=not no_scheduler, migrate=migrate
    )
    raise typer.Exit(code)


@app.command()
def worker(
    processes: Annotated[int, typer.Option(min=1, help="Worker processes (supervised when above 1).")] = 1,
    threads: Annotated[int | None, typer.Option(min=1, help="Concurrent sends per process.")] = None,
) -> None:
    """Run delivery workers: dramatiq on redis.url, or outbox polling without Redis."""
    from relay_worker.entrypoint import run_worker

    settings = _settings()
    _prepare(settings)
    raise typer.Exit(run_worker(settings, processes=processes, threads=threads))


@app.command()
def scheduler() -> None:
    """Run the scheduler jobs (reminders, escalations, outbox relay); safe to run several."""
    from relay_worker.entrypoint import run_scheduler

    settings = _settings()
    _prepare(settings)
    raise typer.Exit(run_scheduler(settings))


def _default_public_url(settings: RelaySettings) -> RelaySettings:
    """Follow ``--host``/``--port`` in ``public_base_url`` unless it was configured."""
    default = ServerSettings()
    srv = settings.server
    if srv.public_base_url != default.public_base_url or (srv.host, srv.port) == (default.host, default.port):
        return settings
    host = "127.0.0.1" if srv.host in ("0.0.0.0", "::", "") else srv.host  # noqa: S104 - compared, not bound
    if ":" in host:
        host = f"[{host}]"
    return attrs.evolve(settings, server=attrs.evolve(srv, public_base_url=f"http://{host}:{srv.port}"))


# --- schema --------------------------------------------------------------------------------


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if migrations are pending.")] = False,
) -> None:
    """Apply database migrations (Alembic upgrade)."""
    settings = _settings()
    if settings.is_memory:
        typer.echo("memory:// storage has no schema to migrate.")
        return
    schema = _schema()
    url = settings.database_url
    if check:
        pending = list(_call(schema.pending_migrations, url) or ())
        if pending:
            typer.echo(f"{len(pending)} pending migration(s):")
            for rev in pending:
                typer.echo(f"  {rev}")
            raise typer.Exit(1)
        typer.echo("No pending migrations.")
        return
    try:
        result = schema.migrate(url, revision=revision)
        if inspect.isawaitable(result):
            _run(result)
    except Exception as exc:  # alembic, driver and domain errors alike: report, exit 1
        _fail(f"migration failed: {exc or exc.__class__.__name__}")
    typer.echo(f"Database migrated to {revision} ({_database_kind(settings)}).")


@app.command("check-schema")
def check_schema() -> None:
    """Compare the models with the live database."""
    settings = _settings()
    if settings.is_memory:
        typer.echo(SCHEMA_OK)
        return
    problems = [str(p) for p in _call(_schema().check_schema, settings.database_url) or ()]
    if problems:
        for line in problems:
            typer.echo(line)
        raise typer.Exit(1)
    typer.echo(SCHEMA_OK)


# --- users ---------------------------------------------------------------------------------


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(help="Login name.")],
    password: Annotated[str, typer.Option(help="Password (10-256 characters).")],
    email: Annotated[str, typer.Option(help="E-mail address.")],
    display_name: Annotated[str | None, typer.Option(help="Name shown in the UI.")] = None,
) -> None:
    """Create a global admin."""
    _check_password(password)
    username = username.strip()
    if not username:
        raise typer.BadParameter("must not be empty", param_hint="'--username'")
    settings = _settings()

    async def work(relay: Relay) -> bool:
        async with relay.uow_factory() as uow:
            if await uow.users.first(username=username) is not None:
                return False
            await uow.users.add(
                User(
                    username=username,
                    display_name=display_name or username,
                    email=email,
                    password_hash=hash_password(password),
                    is_admin=True,
                )
            )
            await uow.commit()
        return True

    if not _with_relay(settings, work):
        _fail("user already exists")
    typer.echo(f"Admin {username} created.")


@app.command("set-password")
def set_password(
    username: Annotated[str, typer.Option(help="Login name.")],
    password: Annotated[str, typer.Option(help="New password (10-256 characters).")],
) -> None:
    """Reset a user's password (signs the user out everywhere)."""
    _check_password(password)
    settings = _settings()

    async def work(relay: Relay) -> bool:
        async with relay.uow_factory() as uow:
            user = await uow.users.first(username=username)
            if user is None:
                return False
            await uow.users.update(
                attrs.evolve(
                    user, password_hash=hash_password(password), password_version=user.password_version + 1
                )
            )
            await uow.commit()
        return True

    if not _with_relay(settings, work):
        _fail("user not found")
    typer.echo(f"Password of {username} changed.")


@app.command("demo-data")
def demo_data(
    check: Annotated[bool, typer.Option("--check", help="Verify the demo data without writing.")] = False,
) -> None:
    """Create the demo group, users, team, rotation, channels, routes, preset and silence."""
    settings = _default_public_url(_settings())
    if check:
        missing = _with_relay(settings, check_demo_data)
        if missing:
            for line in missing:
                typer.echo(line)
            raise typer.Exit(1)
        typer.echo("Demo data OK.")
        return
    info = _with_relay(settings, lambda relay: create_demo_data(relay, settings))
    typer.echo(format_demo_info(info))


# --- tokens --------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    user: Annotated[str | None, typer.Option(help="Owner of a personal API token (username).")] = None,
    name: Annotated[str | None, typer.Option(help="Token name.")] = None,
    scopes: Annotated[str | None, typer.Option(help="Comma-separated scopes, e.g. alerts:write.")] = None,
    days: Annotated[int | None, typer.Option(min=0, help="Days until expiry (0 or unset: never).")] = None,
    route: Annotated[
        str | None, typer.Option(help="Regenerate the intake token of this route (id or name).")
    ] = None,
) -> None:
    """Create a personal API token, or a new intake token for a route; printed once as JSON."""
    if route is not None:
        if any(v is not None for v in (user, name, scopes, days)):
            raise _usage("--route cannot be combined with --user/--name/--scopes/--days")
        result = _with_relay(_settings(), lambda relay: _route_token(relay, route))
    else:
        if user is None or name is None or scopes is None:
            raise _usage("give --route, or all of --user, --name and --scopes")
        wanted = tuple(dict.fromkeys(s.strip() for s in scopes.split(",") if s.strip()))
        unknown = [s for s in wanted if s not in TOKEN_SCOPES]
        if not wanted or unknown:
            raise typer.BadParameter(
                f"unknown scope(s): {', '.join(unknown)}" if unknown else "at least one scope is required",
                param_hint="'--scopes'",
            )
        result = _with_relay(_settings(), lambda relay: _personal_token(relay, user, name, wanted, days))
    typer.echo(json.dumps(result))


async def _find_route(uow: UnitOfWork, ref: str) -> Route:
    if ref.isdigit():
        found = await uow.routes.get(int(ref))
        if found is not None:
            return found
    named = await uow.routes.find(name=ref)
    if len(named) > 1:
        _fail(f"several routes are named {ref!r}; give the route id ({', '.join(str(r.id) for r in named)})")
    if not named:
        _fail(f"route not found: {ref}")
    return named[0]


async def _route_token(relay: Relay, ref: str) -> dict[str, Any]:
    token = new_route_token()
    async with relay.uow_factory() as uow:
        route = await _find_route(uow, ref)
        await uow.routes.update(
            attrs.evolve(route, intake_token_prefix=token.prefix, intake_token_hash=token.hash)
        )
        await uow.commit()
    return {"token": token.raw, "prefix": token.prefix, "expires_at": None}


async def _personal_token(
    relay: Relay, username: str, name: str, scopes: tuple[str, ...], days: int | None
) -> dict[str, Any]:
    from relay_core.domain.model import ApiToken

    token = new_personal_token()
    expires = relay.clock.now() + dt.timedelta(days=days) if days else None
    async with relay.uow_factory() as uow:
        owner = await uow.users.first(username=username)
        if owner is None or not owner.active:
            _fail(f"user not found: {username}")
        await uow.api_tokens.add(
            ApiToken(
                user_id=owner.id,
                name=name,
                token_prefix=token.prefix,
                token_hash=token.hash,
                scopes=scopes,
                expires_at=expires,
            )
        )
        await uow.commit()
    return {"token": token.raw, "prefix": token.prefix, "expires_at": _iso(expires)}


# --- plugins and configuration ------------------------------------------------------------------


def _plugin_rows(registry: PluginRegistry) -> list[dict[str, Any]]:
    provides: dict[str, list[str]] = {}
    kinds: tuple[PluginKind, ...] = ("channel", "voice_provider", "sms_provider", "intake_source")
    for kind in kinds:
        try:
            names = registry.classes(kind)
        except RelayError as exc:  # two classes with one name: shown, not fatal for the listing
            provides.setdefault("(registry)", []).append(str(exc))
            continue
        for cls_name in names:
            provides.setdefault(registry.provided_by(kind, cls_name), []).append(f"{kind}:{cls_name}")
    rows = []
    for info in registry.infos():
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "module": info.module,
                "status": info.status,
                "error": info.error,
                "hooks": list(info.hooks),
                "provides": provides.get(info.name, []),
            }
        )
    return rows


@plugins_app.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Name, distribution, version, hooks, provided names and status of each plugin."""
    settings = _settings()
    try:
        rows = _plugin_rows(make_registry(settings))
    except RelayError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("name", "distribution", "version", "status", "hooks", "provides", "error")
    for row in rows:
        table.add_row(
            row["name"],
            row["distribution"] or "-",
            row["version"] or "-",
            row["status"],
            "\n".join(row["hooks"]),
            "\n".join(row["provides"]),
            row["error"] or "",
        )
    _console().print(table)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return '""'
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml_key(key: Any) -> str:
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text)


def _render_toml(data: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for section, values in data.items():
        if not isinstance(values, Mapping):
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            if section == "smtp" and key == "from_address":
                key = "from"
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _mask_more(node: Any, key: str = "") -> Any:
    """Also mask provider-table keys the settings module does not know (``api_key``, ``auth_secret``)."""
    if isinstance(node, Mapping):
        return {k: _mask_more(v, str(k)) for k, v in node.items()}
    if key and is_secret_key(key) and isinstance(node, str) and node:
        return "***"
    return node


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The effective settings, secrets masked."""
    settings = _settings()
    data = _mask_more(masked(settings))
    source = data.pop("config_file", None)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    typer.echo(f"# effective settings (config file: {source or 'none'}; secrets masked)")
    typer.echo(_render_toml(data), nl=False)


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration and the plugins it names, without starting anything."""
    settings = _settings()
    problems: list[str] = []
    try:
        registry = make_registry(settings)
        for info in registry.infos():
            if info.status == "error":
                problems.append(f"plugin {info.name}: {info.error}")
    except RelayError as exc:
        problems.append(str(exc))
    if problems:
        for line in problems:
            typer.echo(line)
        raise typer.Exit(1)
    typer.echo(
        f"Configuration OK ({_database_kind(settings)}, config file: {settings.config_file or 'none'})."
    )


# --- simulate ------------------------------------------------------------------------------


def _parse_duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None:
        raise typer.BadParameter("expected seconds or a duration like 90m, 1h, 2d", param_hint="'--horizon'")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def _parse_at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter("expected an ISO 8601 time", param_hint="'--at'") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@app.command()
def simulate(
    source: Annotated[str, typer.Option(help="Intake source, e.g. alertmanager.")],
    payload: Annotated[str, typer.Option(help="JSON payload file, or - for stdin.")],
    route: Annotated[str | None, typer.Option(help="Force this route (id or name).")] = None,
    token: Annotated[str | None, typer.Option(help="Force the route of this intake token.")] = None,
    at: Annotated[str | None, typer.Option(help="Pretend the alert arrives at this ISO time.")] = None,
    horizon: Annotated[str, typer.Option(help="Timeline length: seconds or 90m/1h/2d.")] = "3600",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Dry-run an intake payload: route, group, assignee, channels and the paging timeline."""
    if route is not None and token is not None:
        raise _usage("give --route or --token, not both")
    horizon_seconds = _parse_duration(horizon)
    when = _parse_at(at)
    if payload == "-":
        body = typer.get_binary_stream("stdin").read()
    else:
        try:
            body = Path(payload).read_bytes()
        except OSError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--payload'") from None
    settings = _settings()

    async def work(relay: Relay) -> dict[str, Any]:
        return await simulate_payload(
            relay,
            settings,
            source=source,
            body=body,
            route_ref=route,
            token=token,
            at=when,
            horizon_seconds=horizon_seconds,
        )

    report = _with_relay(settings, work)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    _print_simulation(report)


class _SimulationError(Exception):
    pass


async def simulate_payload(
    relay: Relay,
    settings: RelaySettings,
    *,
    source: str,
    body: bytes,
    route_ref: str | None = None,
    token: str | None = None,
    at: dt.datetime | None = None,
    horizon_seconds: int = 3600,
) -> dict[str, Any]:
    """Run the intake decisions for ``body`` without writing anything (SPEC S3.9, simplified).

    Returns ``{"source", "at", "horizon_seconds", "items": [...]}`` with, per item, the route
    decision and its trace, the group key and whether an open group would be reused, matching
    silences, the category, the assignee at ``at``, the channels and subscriptions that would be
    notified, and the reminder/escalation timeline assuming nobody acknowledges.
    """
    registry = relay.registry or make_registry(settings)
    sources = registry.intake_sources()
    cls = sources.get(source.lower())
    if cls is None:
        raise _usage(f"unknown intake source {source!r} (known: {', '.join(sorted(sources))})")
    from relay_core.domain.errors import IntakeValidationError

    try:
        items = cls().parse(body, {"content-type": "application/json"}, {})
    except IntakeValidationError as exc:
        details = "; ".join(f"{d.get('loc')}: {d.get('message')}" for d in getattr(exc, "details", []) or [])
        raise _usage(f"payload rejected: {exc}" + (f" ({details})" if details else "")) from None
    now = at or relay.clock.now()
    report: dict[str, Any] = {
        "mode": c.TRACE_DRY_RUN,
        "source": source,
        "at": _iso(now),
        "horizon_seconds": horizon_seconds,
        "items": [],
    }
    async with relay.uow_factory() as uow:  # read only: never committed
        forced: Route | None = None
        if route_ref is not None:
            forced = await _find_route(uow, route_ref)
        elif token is not None:
            forced = await uow.routes.first(intake_token_hash=hash_token(token))
            if forced is None:
                _fail("Route intake token is invalid")
        teams = {t.id: t for t in await uow.teams.find()}
        groups = {g.id: g for g in await uow.groups.find()}
        users = {u.id: u for u in await uow.users.find()}
        for index, item in enumerate(items):
            if isinstance(item, ItemError):
                report["items"].append({"index": index, "outcome": c.OUTCOME_FAILED, "reason": item.message})
                continue
            report["items"].append(
                await _simulate_item(
                    uow, settings, item, index, forced, teams, groups, users, now, horizon_seconds
                )
            )
    return report


def _usage(message: str) -> typer.BadParameter:
    """A usage error (exit 2); typer's own exception class, whichever click it bundles."""
    return typer.BadParameter(message)


def _user_label(users: Mapping[int, User], user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = users.get(user_id)
    return user.username if user is not None else f"user {user_id}"


async def _simulate_item(
    uow: UnitOfWork,
    settings: RelaySettings,
    alert: NormalizedAlert,
    index: int,
    forced: Route | None,
    teams: Mapping[int, Team],
    groups: Mapping[int, Any],
    users: Mapping[int, User],
    now: dt.datetime,
    horizon_seconds: int,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "index": index,
        "title": alert.title,
        "status": alert.status,
        "severity": alert.severity,
        "dedup_key": alert.dedup_key,
    }
    candidates = [] if forced is not None else await uow.routes.find(source=alert.source, enabled=True)
    hint: Team | NoHint | None = NO_HINT
    if forced is None and alert.team_slug:
        hint = next((t for t in teams.values() if t.slug == alert.team_slug), None)
    decision = select_route(
        alert,
        forced_route=forced,
        candidates=candidates,
        team_lookup=teams,
        group_lookup=groups,
        hint_team=hint,
    )
    trace = [{"stage": s.stage, "code": s.code, "status": s.status, "title": s.title} for s in decision.steps]
    result["trace"] = trace
    if decision.route is None or decision.team is None:
        result.update(outcome=c.OUTCOME_ROUTING_FAILED, routing_error=decision.routing_error)
        return result
    route, team = decision.route, decision.team
    result["route"] = {"id": route.id, "name": route.name}
    result["team"] = {"id": team.id, "slug": team.slug}

    stored = await uow.categories.find(order_by="position")
    have = {cat.slug for cat in stored if cat.group_id is None}
    stored += [d.to_category() for d in BUILTIN_CATEGORY_DEFINITIONS if d.slug not in have]
    visible = [cat for cat in stored if cat.group_id in (None, team.group_id)]
    rules = await uow.category_rules.find(group_id=team.group_id, enabled=True, order_by="position")
    match_ctx = MatchContext.for_alert(alert, team=team, route=route)
    category, step = assign_category(
        alert.labels,
        visible_categories=visible,
        rules=rules,
        route_category_id=route.category_id,
        ctx=match_ctx,
    )
    trace.append({"stage": step.stage, "code": step.code, "status": step.status, "title": step.title})
    match_ctx = MatchContext.for_alert(alert, team=team, route=route, category=category)
    result["category"] = category.slug

    key, key_hash = build_group_key(
        alert,
        team_id=team.id,
        team_slug=team.slug,
        route_id=route.id,
        group_by=tuple(route.group_by),
        category=category.slug,
    )
    open_statuses = (c.GROUP_FIRING, c.GROUP_ACKNOWLEDGED, c.GROUP_SILENCED)
    existing = await uow.alert_groups.first(
        team_id=team.id, group_key_hash=key_hash, status__in=open_statuses
    )
    child = await uow.alerts.first(
        team_id=team.id, source=alert.source, dedup_key=alert.dedup_key, group_open=True
    )
    result["group_key"] = key
    result["existing_group_id"] = existing.id if existing is not None else None
    result["existing_alert_id"] = child.id if child is not None else None

    silences = matching_silences(await uow.silences.find(team_id=team.id, enabled=True), match_ctx, now)
    result["silences"] = [{"id": s.id, "name": s.name} for s in silences]

    rot = await uow.rotations.get(route.rotation_id) if route.rotation_id is not None else None
    members = (
        await uow.rotation_members.find(rotation_id=rot.id, active=True, order_by="position") if rot else []
    )
    assignee_id: int | None = None
    if rot is not None:
        overrides = await uow.overrides.find(rotation_id=rot.id, starts_at__lte=now, ends_at__gt=now)
        oncall = oncall_at(rot, members, overrides, now)
        assignee_id = oncall.user_id if oncall is not None else None
    result["assignee"] = _user_label(users, assignee_id)
    if existing is not None and existing.assignee_id is not None:
        result["assignee"] = _user_label(users, existing.assignee_id)

    channels = []
    for channel_id in route.channel_ids:
        channel = await uow.channels.get(channel_id)
        if channel is not None and channel.enabled:
            channels.append({"id": channel.id, "name": channel.name, "type": channel.channel_type})
    result["channels"] = channels

    subs = await uow.subscriptions.find(group_id=team.group_id, category_id=category.id)
    result["subscriptions"] = [
        {
            "id": sub.id,
            "name": sub.name,
            "channel_types": list(sub.channel_types),
            "decision": subscription_decision(
                sub,
                category=category,
                ctx=match_ctx,
                event=c.SUB_EVENT_CREATED,
                group_silenced=bool(silences),
            )
            or "deliver",
        }
        for sub in subs
    ]

    if alert.status == c.ALERT_RESOLVED:
        if child is None:
            result.update(outcome=c.OUTCOME_IGNORED, reason="no open alert matches this resolve", timeline=[])
        else:
            result.update(outcome=c.OUTCOME_UPDATED, reason="the open alert would be resolved", timeline=[])
        return result
    if child is not None:
        result.update(outcome=c.OUTCOME_UPDATED, reason="an open alert has this dedup key", timeline=[])
        return result
    if existing is not None:
        result.update(outcome=c.OUTCOME_ADDED, reason="the alert would join an open group", timeline=[])
        return result
    result["outcome"] = c.OUTCOME_CREATED
    if silences:
        result.update(reason="silenced: nothing would be sent", timeline=[])
        return result

    wait = first_notification_wait(
        group_wait_seconds=route.group_wait_seconds,
        group_by=tuple(route.group_by),
        default_group_wait=settings.alerts.group_wait_seconds,
    )
    first_due = now + dt.timedelta(seconds=wait)
    names = [ch["name"] for ch in channels]
    end = now + dt.timedelta(seconds=horizon_seconds)
    timeline: list[dict[str, Any]] = []
    if first_due <= end:
        timeline.append(
            {"at": _iso(first_due), "action": "notification", "user": result["assignee"], "channels": names}
        )
    interval = reminder_interval(rot.reminder_interval_seconds if rot is not None and rot.enabled else 0)
    group = arm_timers(
        AlertGroup(
            team_id=team.id,
            route_id=route.id,
            rotation_id=route.rotation_id,
            assignee_id=assignee_id,
            source=alert.source,
            group_key=key,
            group_key_hash=key_hash,
            first_seen_at=now,
            last_seen_at=now,
        ),
        first_page_due=first_due,
        interval=interval,
    )
    while group.next_action_at is not None and group.next_action_at <= end and len(timeline) < 1000:
        when = group.next_action_at
        action = due_action(
            group,
            now=when,
            interval=interval,
            escalation_enabled=team.escalation_enabled,
            escalation_after_reminders=team.escalation_after_reminders,
            next_user_id=next_oncall_user(members, group.assignee_id),
        )
        if action is None:
            break
        timeline.append(
            {
                "at": _iso(when),
                "action": action.kind,
                "user": _user_label(users, action.target_user_id),
                "channels": names,
            }
        )
        group = action.group
    result["timeline"] = timeline
    return result


def _print_simulation(report: Mapping[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    console.print(
        f"Dry run of an intake payload from {report['source']} at {report['at']} (nothing is written)"
    )
    for item in report["items"]:
        console.print()
        console.print(
            f"Item {item['index']}: {item.get('title') or ''} [{item.get('severity', '')}]", markup=False
        )
        console.print(f"  outcome: {item['outcome']}", markup=False)
        if item.get("routing_error"):
            console.print(f"  routing error: {item['routing_error']}", markup=False)
        if item.get("reason"):
            console.print(f"  reason: {item['reason']}", markup=False)
        if "route" in item:
            console.print(
                f"  route: {item['route']['name']} (id {item['route']['id']}), team {item['team']['slug']}",
                markup=False,
            )
            console.print(f"  category: {item['category']}", markup=False)
            console.print(f"  group key: {item['group_key']}", markup=False)
            if item.get("existing_group_id"):
                console.print(f"  open group reused: {item['existing_group_id']}", markup=False)
            silences = ", ".join(s["name"] for s in item.get("silences", [])) or "none"
            console.print(f"  silences: {silences}", markup=False)
            console.print(f"  assignee: {item.get('assignee') or 'nobody on call'}", markup=False)
            channels = ", ".join(f"{ch['name']} ({ch['type']})" for ch in item.get("channels", [])) or "none"
            console.print(f"  channels: {channels}", markup=False)
            for sub in item.get("subscriptions", []):
                console.print(f"  subscription {sub['name']}: {sub['decision']}", markup=False)
        if item.get("timeline"):
            table = Table("at", "action", "user", "channels", title="Timeline (nobody acknowledges)")
            for entry in item["timeline"]:
                table.add_row(
                    entry["at"], entry["action"], entry["user"] or "-", ", ".join(entry["channels"])
                )
            console.print(table)


# --- version -------------------------------------------------------------------------------


def _version() -> str:
    try:
        return importlib.metadata.version("relay-server")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@app.command()
def version() -> None:
    """Version, commit, Python and database kind."""
    settings = _settings()
    commit = os.environ.get("RELAY_COMMIT") or "unknown"
    typer.echo(f"relay {_version()}")
    typer.echo(f"commit: {commit}")
    typer.echo(f"python: {platform.python_version()} ({sys.implementation.name})")
    typer.echo(f"database: {_database_kind(settings)}")


# --- entry point ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point of ``relay``."""
    app(args=list(argv) if argv is not None else None, prog_name="relay")
