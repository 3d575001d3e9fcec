"""Operations commands: diagnostics, data retention and channels (SPEC S10.1, S10.7, S6.1, S6.6).

``relay diagnose`` checks an installation (configuration, database and schema, Redis, plugins,
``public_base_url``, the secret key, SMTP and the outbound allow-list) and exits 1 when a check
fails; ``relay diagnose --alert ID`` prints one redacted report about an alert group for a
support request. ``relay retention run`` runs one cleanup pass (``--dry-run`` only counts).
``relay channel test N`` sends event ``test`` through a channel as ``POST
/api/channels/{id}/test`` does; ``relay telegram set-webhook --channel N`` registers the
channel's webhook with Telegram (``telegram.mode = "webhook"``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn
from urllib.parse import urlsplit

import attrs
import typer

from relay_adapters.logging import redact_value
from relay_adapters.settings import RelaySettings, SettingsError, load_settings
from relay_core.bootstrap import Relay
from relay_core.domain.errors import RelayError
from relay_core.domain.model import AuditLog, Channel
from relay_core.ports.channels import DeliveryError
from relay_core.ports.storage import UnitOfWork
from relay_core.services.retention import RETENTION_KINDS, RetentionPolicy, run_retention

__all__ = ["WEAK_SECRETS", "Check", "register", "run_checks"]

OK: Final = "ok"
WARN: Final = "warn"
FAIL: Final = "fail"

#: Placeholder secrets found in examples; a deployment still using one is not secret at all.
WEAK_SECRETS: Final = frozenset(
    {
        "change-me",
        "changeme",
        "change-me-to-a-long-random-string",
        "please-change-me-to-at-least-32-characters",
        "secret",
        "relay",
        "password",
        "…at least 32 characters…",
    }
)
_SECRET_MIN: Final = 32
_NETWORK_TIMEOUT: Final = 3.0


@attrs.frozen
class Check:
    """One line of ``relay diagnose``: what was checked, ``ok``/``warn``/``fail``, the evidence."""

    name: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail}


def _cli() -> Any:
    """The ``relay`` command module (imported late: it registers this module at import time)."""
    from relay_server import cli

    return cli


# --- installation checks ------------------------------------------------------------------------


def _check_database(settings: RelaySettings) -> list[Check]:
    if settings.is_memory:
        return [Check("database", WARN, "memory:// storage: every restart loses all data")]
    from relay_adapters.storage.sqlalchemy import schema

    cli = _cli()
    kind = "postgresql" if settings.is_postgres else "sqlite"
    url = settings.database_url
    if kind == "sqlite":
        path = Path(url.split(":///", 1)[-1])
        if not path.exists():
            return [
                Check(
                    "database",
                    WARN,
                    f"sqlite file {path} does not exist yet; `relay serve` or `relay migrate` creates it",
                )
            ]
    try:
        pending = list(cli._run(schema.pending_migrations(url)))
        problems = list(cli._run(schema.check_schema(url)))
    except (RelayError, RuntimeError, OSError) as exc:
        return [Check("database", FAIL, f"{kind}: cannot connect: {_redacted(exc)}")]
    except Exception as exc:  # driver errors (SQLAlchemy, asyncpg) not mapped to domain errors
        return [Check("database", FAIL, f"{kind}: {type(exc).__name__}: {_redacted(exc)}")]
    checks = [Check("database", OK, f"{kind}: connected")]
    if pending:
        checks.append(
            Check(
                "migrations",
                FAIL,
                f"{len(pending)} pending migration(s): {', '.join(pending)}; run `relay migrate`",
            )
        )
    else:
        checks.append(Check("migrations", OK, "no pending migrations"))
    if problems:
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
        checks.append(Check("schema", FAIL, shown))
    else:
        checks.append(Check("schema", OK, "all model tables and columns exist"))
    return checks


def _check_redis(settings: RelaySettings) -> Check:
    if not settings.redis.url:
        return Check("redis", OK, "not configured: workers poll the database outbox")
    import redis

    host = urlsplit(settings.redis.url).hostname or "?"
    try:
        client = redis.Redis.from_url(
            settings.redis.url, socket_timeout=_NETWORK_TIMEOUT, socket_connect_timeout=_NETWORK_TIMEOUT
        )
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        finally:
            client.close()
    except Exception as exc:  # connection refused, auth, DNS: all reported, none fatal to diagnose
        return Check("redis", FAIL, f"{host}: {type(exc).__name__}: {_redacted(exc)}")
    if _version_tuple(str(version)) < (6,):
        return Check("redis", FAIL, f"{host}: Redis {version}; Relay needs Redis 6 or newer")
    return Check("redis", OK, f"{host}: Redis {version} answers")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def _check_plugins(settings: RelaySettings) -> Check:
    from relay_adapters.compose import make_registry

    try:
        registry = make_registry(settings)
        infos = list(registry.infos())
    except RelayError as exc:
        return Check("plugins", FAIL, _redacted(exc))
    broken = [f"{info.name}: {info.error}" for info in infos if info.status == "error"]
    loaded = [info.name for info in infos if info.status != "error"]
    if broken:
        return Check("plugins", FAIL, "; ".join(broken))
    return Check("plugins", OK, f"{len(loaded)} loaded: {', '.join(loaded)}")


def _is_local_host(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_public_url(settings: RelaySettings) -> Check:
    url = settings.server.public_base_url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check("public_base_url", FAIL, f"{url!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment:
        return Check("public_base_url", FAIL, f"{url!r} must not have a query or fragment")
    local = _is_local_host(parts.hostname)
    if local and not settings.embedded:
        return Check(
            "public_base_url",
            WARN,
            f"{url} is a loopback address: links, chat buttons and provider callbacks will not "
            "reach it from outside; set server.public_base_url to the external URL",
        )
    if parts.scheme == "http" and not local:
        return Check("public_base_url", WARN, f"{url} is plain http: use https behind a reverse proxy")
    return Check("public_base_url", OK, url)


def _check_secret_key(settings: RelaySettings) -> Check:
    key = settings.main.secret_key
    if not key:
        if settings.is_postgres:
            return Check("secret_key", FAIL, "main.secret_key is required with PostgreSQL")
        stored = settings.data_dir / "secret_key"
        if stored.exists():
            return Check("secret_key", OK, f"generated key in {stored}")
        return Check("secret_key", OK, f"will be generated into {stored} on first start")
    if key.strip().lower() in WEAK_SECRETS or len(set(key)) < 8:
        return Check("secret_key", FAIL, "main.secret_key is a placeholder or trivially guessable")
    if len(key) < _SECRET_MIN:
        status = FAIL if settings.is_postgres else WARN
        return Check("secret_key", status, f"main.secret_key has {len(key)} characters; use at least 32")
    return Check("secret_key", OK, f"set ({len(key)} characters)")


def _check_smtp(settings: RelaySettings) -> Check:
    smtp = settings.smtp
    if not smtp.host:
        return Check("smtp", OK, "not configured: e-mail channels cannot send")
    problems = []
    if not smtp.from_address or "@" not in smtp.from_address:
        problems.append("smtp.from must be an e-mail address")
    if not 0 < smtp.port < 65536:
        problems.append(f"smtp.port {smtp.port} is not a port")
    if smtp.use_tls and smtp.use_ssl:
        problems.append("smtp.use_tls (STARTTLS) and smtp.use_ssl (implicit TLS) exclude each other")
    if smtp.user and not smtp.password:
        problems.append("smtp.user is set without smtp.password")
    if problems:
        return Check("smtp", FAIL, "; ".join(problems))
    mode = "implicit TLS" if smtp.use_ssl else ("STARTTLS" if smtp.use_tls else "no TLS")
    where = f"{smtp.host}:{smtp.port}"
    try:
        with socket.create_connection((smtp.host, smtp.port), timeout=_NETWORK_TIMEOUT):
            pass
    except OSError as exc:
        # Only a warning: this host may not be the one that sends (firewalls differ per process).
        return Check(
            "smtp", WARN, f"{where} ({mode}) is not reachable from here: {type(exc).__name__}: {exc}"
        )
    return Check("smtp", WARN if mode == "no TLS" else OK, f"{where} ({mode}) accepts connections")


def _check_outbound(settings: RelaySettings) -> Check:
    security = settings.security
    problems: list[str] = []
    broad: list[str] = []
    for entry in security.outbound_private_network_allowlist:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(f"{entry!r} is not an address or CIDR network")
            continue
        if network.prefixlen < (8 if network.version == 4 else 16):
            broad.append(str(network))
    if security.outbound_timeout_seconds <= 0:
        problems.append("security.outbound_timeout_seconds must be positive")
    if problems:
        return Check("outbound", FAIL, "; ".join(problems))
    if broad:
        return Check(
            "outbound",
            WARN,
            f"allow-list entries {', '.join(broad)} open most internal addresses to webhooks (SSRF)",
        )
    allowed = ", ".join(security.outbound_private_network_allowlist) or "none"
    https = "https only" if security.outbound_https_only else "http and https"
    return Check("outbound", OK, f"private networks allowed: {allowed}; {https}")


def _check_data_dir(settings: RelaySettings) -> Check:
    if settings.is_postgres or settings.is_memory:
        return Check("data_dir", OK, f"{settings.data_dir} (secret key and provider files only)")
    path = settings.data_dir
    probe = path if path.exists() else path.parent
    if probe.exists() and not _writable(probe):
        return Check("data_dir", FAIL, f"{probe} is not writable")
    return Check("data_dir", OK, str(path.resolve()))


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def _redacted(value: object) -> str:
    return str(redact_value(str(value) or type(value).__name__))


def run_checks(settings: RelaySettings) -> list[Check]:
    """Every installation check, in order; none raises."""
    checks = [Check("configuration", OK, f"config file: {settings.config_file or 'none'}")]
    steps: list[Callable[[RelaySettings], Check | list[Check]]] = [
        _check_data_dir,
        _check_database,
        _check_redis,
        _check_plugins,
        _check_public_url,
        _check_secret_key,
        _check_smtp,
        _check_outbound,
    ]
    for step in steps:
        try:
            result = step(settings)
        except Exception as exc:  # a broken check is a failed check, not a crash
            name = step.__name__.removeprefix("_check_")
            result = Check(name, FAIL, f"{type(exc).__name__}: {_redacted(exc)}")
        checks.extend(result if isinstance(result, list) else [result])
    return checks


def _print_checks(checks: list[Check]) -> None:
    from rich.table import Table

    marks = {OK: "✓ ok", WARN: "! warn", FAIL: "✗ FAIL"}
    table = Table("check", "status", "detail", title="relay diagnose")
    for check in checks:
        table.add_row(check.name, marks.get(check.status, check.status), check.detail)
    _cli()._console().print(table)


# --- alert report -------------------------------------------------------------------------------


def _row(entity: Any, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    data = {k: v for k, v in attrs.asdict(entity, recurse=True).items() if k not in drop}
    return {k: (_cli()._iso(v) if isinstance(v, dt.datetime) else v) for k, v in data.items()}


async def alert_report(relay: Relay, settings: RelaySettings, group_id: int) -> dict[str, Any] | None:
    """Everything Relay knows about alert group ``group_id``, redacted (SPEC S10.1 ``diagnose``)."""
    async with relay.uow_factory() as uow:
        group = await uow.alert_groups.get(group_id)
        if group is None:
            return None
        alerts = await uow.alerts.find(group_id=group_id)
        events = await uow.events.find(group_id=group_id, order_by="created_at")
        traces = await uow.traces.find(group_id=group_id, order_by="started_at")
        intents = await uow.intents.find(group_id=group_id, order_by="created_at")
        attempts = (
            await uow.attempts.find(intent_id__in=[i.id for i in intents], order_by="started_at")
            if intents
            else []
        )
        notifications = await uow.notifications.find(group_id=group_id)
        callbacks = (
            await uow.callbacks.find(notification_id__in=[n.id for n in notifications], order_by="created_at")
            if notifications
            else []
        )
        channel_ids = sorted(
            {i.channel_id for i in intents if i.channel_id is not None}
            | {n.channel_id for n in notifications}
        )
        channels = [ch for ch in [await uow.channels.get(cid) for cid in channel_ids] if ch is not None]
        route = await uow.routes.get(group.route_id)
        team = await uow.teams.get(group.team_id)
    by_intent: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_intent.setdefault(attempt.intent_id, []).append(_row(attempt, drop=("intent_id",)))
    deliveries = []
    for intent in intents:
        row = _row(intent, drop=("lease_owner", "lease_until"))
        row["attempts"] = by_intent.get(intent.id, [])
        deliveries.append(row)
    report: dict[str, Any] = {
        "group": _row(group),
        "route": {"id": route.id, "name": route.name} if route is not None else None,
        "team": {"id": team.id, "slug": team.slug} if team is not None else None,
        "alerts": [_row(a, drop=("payload",)) for a in alerts],
        "events": [_row(e) for e in events],
        "traces": [_row(t) for t in traces],
        "deliveries": deliveries,
        "subscription_decisions": [
            {"intent_id": i.id, "subscription_id": i.subscription_id, "status": i.status, "reason": i.reason}
            for i in intents
            if i.subscription_id is not None
        ],
        "delivery_records": [_row(n, drop=("provider_payload",)) for n in notifications],
        "callbacks": [_row(cb, drop=("payload",)) for cb in callbacks],
        "channels": [
            {"id": ch.id, "name": ch.name, "type": ch.channel_type, "enabled": ch.enabled} for ch in channels
        ],
        "log_lines": _log_lines(settings, group_id, [a.id for a in alerts]),
    }
    redacted: dict[str, Any] = redact_value(report)
    return redacted


_LOG_LINE_LIMIT: Final = 500


def _log_lines(settings: RelaySettings, group_id: int, alert_ids: list[int]) -> list[Any]:
    """JSON lines of ``logging.file`` that name the group or one of its alerts (newest 500)."""
    if not settings.logging.file:
        return []
    path = Path(settings.logging.file)
    if not path.exists():
        return []
    wanted_alerts = set(alert_ids)
    found: list[Any] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, Mapping):
                continue
            if entry.get("alert_group_id") == group_id or entry.get("alert_id") in wanted_alerts:
                found.append(entry)
                if len(found) > _LOG_LINE_LIMIT:
                    found.pop(0)
    return found


def _print_report(report: Mapping[str, Any]) -> None:
    console = _cli()._console()
    group = report["group"]
    console.print(
        f"Alert group {group['id']}: {group['title']} [{group['severity']}] status {group['status']}",
        markup=False,
    )
    if report["route"]:
        console.print(
            f"  route {report['route']['name']} (id {report['route']['id']}), team "
            f"{(report['team'] or {}).get('slug')}",
            markup=False,
        )
    for key in ("first_seen_at", "last_seen_at", "acknowledged_at", "resolved_at", "next_action_at"):
        if group.get(key):
            console.print(f"  {key}: {group[key]}", markup=False)
    console.print(f"  alerts: {len(report['alerts'])}, events: {len(report['events'])}", markup=False)
    for channel in report["channels"]:
        state = "enabled" if channel["enabled"] else "disabled"
        console.print(f"  channel {channel['name']} ({channel['type']}, {state})", markup=False)
    for trace in report["traces"]:
        console.print(
            f"  trace {trace['trace_id']}: {trace['outcome']} {trace.get('reason') or ''}", markup=False
        )
    for delivery in report["deliveries"]:
        console.print(
            f"  delivery {delivery['id']} {delivery['event_type']} → channel {delivery['channel_id']}: "
            f"{delivery['status']} ({delivery['attempt_count']} attempt(s))"
            + (f" last error: {delivery['last_error']}" if delivery.get("last_error") else ""),
            markup=False,
        )
        for attempt in delivery["attempts"]:
            console.print(
                f"    attempt {attempt['attempt_no']}: {attempt['outcome']}"
                + (f" HTTP {attempt['http_status']}" if attempt.get("http_status") else "")
                + (f" {attempt['error']}" if attempt.get("error") else ""),
                markup=False,
            )
    for decision in report["subscription_decisions"]:
        console.print(
            f"  subscription {decision['subscription_id']}: {decision['status']} {decision['reason']}",
            markup=False,
        )
    if report["log_lines"]:
        console.print(f"  {len(report['log_lines'])} matching log line(s):", markup=False)
        for entry in report["log_lines"]:
            console.print("    " + json.dumps(entry, default=str), markup=False)


# --- retention ----------------------------------------------------------------------------------


def _print_retention(data: Mapping[str, Any]) -> None:
    from rich.table import Table

    verb = "deleted" if data["applied"] else "would delete"
    table = Table("rows", verb, title="relay retention run" + ("" if data["applied"] else " (dry run)"))
    for kind in RETENTION_KINDS:
        table.add_row(kind, str(data["counts"][kind]))
    table.add_row("total", str(data["total"]))
    console = _cli()._console()
    console.print(table)
    cutoffs = data["cutoffs"]
    console.print(
        "cut-offs: resolved groups before "
        + (cutoffs["alert_groups"] or "never (retention.alert_days = 0)")
        + "; standalone traces before "
        + (cutoffs["traces"] or "never")
        + "; finished deliveries before "
        + (cutoffs["intents"] or "never"),
        markup=False,
    )


# --- channels: test and Telegram webhook (S6.1, S6.6) --------------------------------------------

TEST_TEXT: Final = "TEST: Test notification from Relay"


def _fail(message: str) -> NoReturn:
    _cli()._fail(message)
    raise AssertionError("unreachable")  # pragma: no cover - _fail exits


def telegram_webhook_url(settings: RelaySettings, channel_id: int) -> str:
    """Where Telegram posts a channel's updates: ``<public_base_url>/api/integrations/telegram/webhook/N``."""
    return f"{settings.server.public_base_url.rstrip('/')}/api/integrations/telegram/webhook/{channel_id}"


async def _audit_channel(
    relay: Relay,
    uow: UnitOfWork,
    channel: Channel,
    action: str,
    message: str,
    data: Mapping[str, Any],
    *,
    user_id: int | None = None,
) -> None:
    """The audit row of a command acting on a channel (no API caller: ``user_id`` when known)."""
    await uow.audit.add(
        AuditLog(
            action=action,
            object_type="channel",
            object_id=channel.id,
            message=message,
            data=dict(data),
            user_id=user_id,
            group_id=channel.group_id,
            team_id=channel.team_id,
            created_at=relay.clock.now(),
        )
    )


async def set_telegram_webhook(relay: Relay, settings: RelaySettings, channel_id: int) -> str:
    """``setWebhook`` for a ``telegram`` channel; a missing ``webhook_secret`` is generated and
    stored first (Telegram then sends it in ``X-Telegram-Bot-Api-Secret-Token``). Returns the URL."""
    from relay_adapters.channels._common import structure_config
    from relay_adapters.channels.telegram import TelegramConfig, set_webhook

    async with relay.uow_factory() as uow:
        channel = await uow.channels.get(channel_id)
        if channel is None:
            _fail(f"channel not found: {channel_id}")
        if channel.channel_type != "telegram":
            _fail(f"channel {channel_id} is a {channel.channel_type} channel, not telegram")
        config = dict(channel.config)
        if not config.get("webhook_secret"):
            config["webhook_secret"] = secrets.token_urlsafe(32)  # Telegram allows A-Z a-z 0-9 _ -
            await uow.channels.update(attrs.evolve(channel, config=config))
            await _audit_channel(
                relay,
                uow,
                channel,
                "channel.update",
                "relay telegram set-webhook generated the webhook secret",
                {"fields": ["config"]},
            )
            await uow.commit()
    url = telegram_webhook_url(settings, channel_id)
    try:
        await set_webhook(relay.ctx.http, structure_config(TelegramConfig, config, "telegram"), url)
    except DeliveryError as exc:
        _fail(f"setWebhook failed: {exc.message}")
    return url


async def test_channel(
    relay: Relay, settings: RelaySettings, channel_id: int, username: str | None
) -> dict[str, Any]:
    """Send event ``test`` through one channel (person-addressed types to ``username``'s contact;
    voice/SMS to the channel's ``test_phone`` first); the S6.1 answer plus ``channel_id``."""
    from relay_core.services.testalerts import send_test
    from relay_server.controllers.subscriptions import channel_test_target

    async with relay.uow_factory() as uow:
        channel = await uow.channels.get(channel_id)
        if channel is None:
            _fail(f"channel not found: {channel_id}")
        user = await uow.users.first(username=username) if username is not None else None
        if username is not None and (user is None or not user.active):
            _fail(f"user not found: {username}")
    target = channel_test_target(relay.ctx, channel, user)
    if target.recipient is not None and not target.recipient_address:
        raise _cli()._usage(
            f"channel {channel_id} ({channel.channel_type}) sends to a person: give --user USERNAME"
            " with a contact address"
            + (" (or set the channel's test_phone)" if channel.channel_type != "email" else "")
        )
    run = await send_test(
        relay.ctx, [target], text=TEST_TEXT, wait_seconds=settings.delivery.test_wait_seconds
    )
    async with relay.uow_factory() as uow:
        await _audit_channel(
            relay,
            uow,
            channel,
            "channel.test",
            "relay channel test",
            {"test_id": run.test_id},
            user_id=user.id if user is not None else None,
        )
        await uow.commit()
    return {
        "test_id": run.test_id,
        "channel_id": channel.id,
        "summary": run.summary,
        "results": [r.as_dict() for r in run.results],
    }


# --- registration -------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `relay` command app."""
    retention_app = typer.Typer(help="Data retention (retention.* settings).", no_args_is_help=True)
    app.add_typer(retention_app, name="retention")
    channel_app = typer.Typer(help="Notification channels.", no_args_is_help=True)
    app.add_typer(channel_app, name="channel")
    telegram_app = typer.Typer(help="Telegram bots (SPEC S6.6).", no_args_is_help=True)
    app.add_typer(telegram_app, name="telegram")

    @channel_app.command("test")
    def channel_test(
        channel_id: Annotated[int, typer.Argument(min=1, help="Channel id.")],
        user: Annotated[
            str | None, typer.Option("--user", help="Person-addressed types: send to this user's contact.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Send a test notification through a channel; exit 1 unless every destination got it."""
        cli = _cli()
        settings = cli._settings()
        report = cli._with_relay(settings, lambda relay: test_channel(relay, settings, channel_id, user))
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            typer.echo(f"Test {report['test_id']} of channel {channel_id}:")
            for result in report["results"]:
                line = f"  {result['status']}: {result['channel_type']} {result['channel_name']}"
                if result["recipient"]:
                    line += f" -> {result['recipient']}"
                if result["external_message_id"]:
                    line += f" (id {result['external_message_id']})"
                if result["error"]:
                    line += f" - {result['error']}"
                typer.echo(line)
        unsent = [r["status"] for r in report["results"] if r["status"] != "sent"]
        if unsent or not report["results"]:
            typer.echo(
                f"relay: the test was not sent everywhere ({', '.join(unsent) or 'no result'})", err=True
            )
            raise typer.Exit(1)

    @telegram_app.command("set-webhook")
    def telegram_set_webhook(
        channel: Annotated[int, typer.Option("--channel", min=1, help="The telegram channel's id.")],
    ) -> None:
        """Register <public_base_url>/api/integrations/telegram/webhook/N with Telegram (setWebhook)."""
        cli = _cli()
        settings = cli._settings()
        if settings.telegram.mode != "webhook":
            cli._fail(
                f'telegram.mode is {settings.telegram.mode!r}: set telegram.mode = "webhook" first'
                " (Telegram stops getUpdates polling once a webhook is set)"
            )
        if not settings.server.public_base_url.startswith("https://"):
            typer.echo("relay: warning: Telegram only delivers webhooks to https URLs", err=True)
        url = cli._with_relay(settings, lambda relay: set_telegram_webhook(relay, settings, channel))
        typer.echo(f"Telegram webhook of channel {channel} set to {url} (updates: callback_query).")

    @app.command()
    def diagnose(
        alert: Annotated[
            int | None, typer.Option("--alert", min=1, help="Report on this alert group instead.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Check this installation, or report on one alert group (--alert ID), secrets redacted."""
        cli = _cli()
        if alert is not None:
            settings = cli._settings()
            report = cli._with_relay(settings, lambda relay: alert_report(relay, settings, alert))
            if report is None:
                cli._fail(f"alert group not found: {alert}")
            if as_json:
                typer.echo(json.dumps(report, indent=2, default=str))
            else:
                _print_report(report)
            return
        try:
            checks = run_checks(load_settings())
        except SettingsError as exc:
            checks = [Check("configuration", FAIL, "; ".join(exc.problems))]
        if as_json:
            typer.echo(json.dumps([c.as_dict() for c in checks], indent=2))
        else:
            _print_checks(checks)
        failed = [c.name for c in checks if c.status == FAIL]
        if failed:
            typer.echo(f"relay: {len(failed)} check(s) failed: {', '.join(failed)}", err=True)
            raise typer.Exit(1)

    @retention_app.command("run")
    def retention_run(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
        alert_days: Annotated[
            int | None, typer.Option(min=0, help="Override retention.alert_days (0 = keep).")
        ] = None,
        explain_trace_days: Annotated[
            int | None, typer.Option(min=0, help="Override retention.explain_trace_days.")
        ] = None,
        delivery_days: Annotated[
            int | None, typer.Option(min=0, help="Override retention.delivery_days.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """One cleanup pass: old resolved groups, traces, finished deliveries, expired tokens."""
        cli = _cli()
        settings = cli._settings()
        try:
            policy = RetentionPolicy.of(
                settings.retention,
                alert_days=alert_days,
                explain_trace_days=explain_trace_days,
                delivery_days=delivery_days,
            )
        except ValueError as exc:
            cli._fail(f"invalid retention settings: {exc}")

        async def work(relay: Relay) -> dict[str, Any]:
            report = await run_retention(relay.uow_factory, policy, now=relay.clock.now(), apply=not dry_run)
            return report.as_dict()

        if as_json:
            data = cli._with_relay(settings, work)
        else:
            with cli._console().status("retention: " + ("counting…" if dry_run else "cleaning up…")):
                data = cli._with_relay(settings, work)
        if as_json:
            typer.echo(json.dumps(data, indent=2))
        else:
            _print_retention(data)
