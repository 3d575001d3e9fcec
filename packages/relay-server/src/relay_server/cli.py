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
from relay_core.domain.errors import RelayError
from relay_core.domain.model import Route, User
from relay_core.ports.storage import UnitOfWork
from relay_server import runtime
from relay_server.auth import ALL_SCOPES, PASSWORD_MAX, PASSWORD_MIN
from relay_server.controllers.users import plugin_rows
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
    _metrics_multiprocess(settings)
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
    _metrics_multiprocess(settings)
    raise typer.Exit(run_worker(settings, processes=processes, threads=threads))


@app.command()
def scheduler() -> None:
    """Run the scheduler jobs (reminders, escalations, outbox relay); safe to run several."""
    from relay_worker.entrypoint import run_scheduler

    settings = _settings()
    _prepare(settings)
    _metrics_multiprocess(settings)
    raise typer.Exit(run_scheduler(settings))


def _metrics_multiprocess(settings: RelaySettings) -> None:
    """Prometheus multiprocess mode before any metric exists, so counters of workers and schedulers
    reach the web's ``/metrics`` (S9.9; ``relay_adapters.metrics.setup_multiprocess``)."""
    from relay_adapters.metrics import setup_multiprocess

    setup_multiprocess(settings)


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
    revision: Annotated[str, typer.Option(help="Target revision (with --sql also FROM:TO).")] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL of the upgrade instead of applying it.")
    ] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if migrations are pending.")] = False,
) -> None:
    """Apply database migrations (Alembic upgrade)."""
    if sql and check:
        raise _usage("give --sql or --check, not both")
    settings = _settings()
    if settings.is_memory:
        if sql:
            _fail("memory:// storage has no schema: --sql needs a SQLite or PostgreSQL database.url")
        typer.echo("memory:// storage has no schema to migrate.")
        return
    schema = _schema()
    url = settings.database_url
    if sql:
        _print_migration_sql(schema, url, revision)
        return
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


def _print_migration_sql(schema: Any, url: str, revision: str) -> None:
    """Alembic offline mode: the SQL of the upgrade for ``url``'s dialect, from the empty schema
    (or ``FROM:TO``); the database is not contacted."""
    from alembic import command
    from alembic.util import CommandError

    from relay_adapters.storage.sqlalchemy.uow import async_url

    config = schema.alembic_config()
    config.output_buffer = sys.stdout
    target = async_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", target.replace("%", "%%"))
    try:
        command.upgrade(config, revision, sql=True)
    except CommandError as exc:
        _fail(f"cannot render the migration SQL: {exc}")


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


@plugins_app.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Name, distribution, version, hooks, provided names and status of each plugin."""
    settings = _settings()
    try:
        rows = plugin_rows(make_registry(settings))
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
    """Run the intake decisions for ``body`` without writing anything (SPEC S3.9).

    The report is built by :func:`relay_core.services.simulation.simulate_intake`, shared with
    ``POST /api/simulate``; this wrapper resolves ``--route``/``--token`` and turns a bad source or
    payload into a usage error.
    """
    from relay_core.domain.errors import ValidationError
    from relay_core.services.simulation import simulate_intake

    registry = relay.registry or make_registry(settings)
    async with relay.uow_factory() as uow:  # read only: never committed
        forced: Route | None = None
        if route_ref is not None:
            forced = await _find_route(uow, route_ref)
        elif token is not None:
            forced = await uow.routes.first(intake_token_hash=hash_token(token))
            if forced is None:
                _fail("Route intake token is invalid")
        try:
            return await simulate_intake(
                uow,
                registry=registry,
                source=source,
                body=body,
                now=at or relay.clock.now(),
                forced_route=forced,
                horizon_seconds=horizon_seconds,
                default_group_wait=settings.alerts.group_wait_seconds,
            )
        except ValidationError as exc:
            details = "; ".join(f"{d.get('loc')}: {d.get('message')}" for d in exc.details)
            raise _usage(exc.message + (f" ({details})" if details else "")) from None


def _usage(message: str) -> typer.BadParameter:
    """A usage error (exit 2); typer's own exception class, whichever click it bundles."""
    return typer.BadParameter(message)


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


# Command groups kept in their own modules; registered last because they use this module's helpers.
from relay_server import cli_ops, cli_phone  # noqa: E402

cli_phone.register(app)
cli_ops.register(app)
