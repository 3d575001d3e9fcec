"""`relay phone ...`: drive the voice/SMS simulator from the shell (SPEC S7.10).

The commands work on the simulator store under ``<data_dir>/simulator`` (the same one the
server's ``/api/simulator`` API and the worker's ``simulator`` provider use) and send the
provider-shaped callbacks over HTTP to the callback URL Relay handed to the call, so the server
must be running to receive them. Numbers are shown masked and secrets never.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import typer

phone_app = typer.Typer(help="Phone simulator: list calls, press keys, script outcomes (SPEC S7.10).")


def _simulator() -> Any:
    from relay_adapters.voice.simulator import Simulator, SimulatorStore
    from relay_server.cli import _fail, _settings

    settings = _settings()
    if not settings.simulator_enabled:
        _fail("the simulator is disabled (simulator.enabled = false)")
    return Simulator(SimulatorStore(settings.data_dir / "simulator"))


def _act(work: Callable[[Any], Any]) -> Any:
    from relay_adapters.voice.simulator import SimulatorError
    from relay_server.cli import _fail, _run

    sim = _simulator()
    try:
        result = work(sim)
        if isinstance(result, Awaitable):
            result = _run(result)
    except SimulatorError as exc:
        _fail(exc.message)
    return result


def _print_action(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    item = result.get("call") or result.get("message") or {}
    callbacks = result.get("callbacks") or [result.get("callback") or {}]
    typer.echo(f"{item.get('id')}: {item.get('status')}")
    for cb in callbacks:
        if cb.get("sent"):
            typer.echo(
                f"  callback -> HTTP {cb.get('status_code')}: {json.dumps(cb.get('response'), default=str)}"
            )
        else:
            typer.echo(f"  callback not delivered: {cb.get('error')}")


def _json_option() -> Any:
    return typer.Option(False, "--json", help="Print JSON.")


@phone_app.command("calls")
def calls(as_json: bool = _json_option()) -> None:
    """List simulated calls, newest first."""
    rows = _act(lambda sim: sim.calls())
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.table import Table

    from relay_server.cli import _console

    table = Table("id", "status", "to", "alert", "event", "created")
    for row in rows:
        table.add_row(
            row["id"],
            row["status"],
            row["to"],
            str(row.get("alert_id")),
            str(row.get("event_type")),
            row["created_at"],
        )
    _console().print(table)


@phone_app.command("show")
def show(call_id: str, as_json: bool = _json_option()) -> None:
    """Show one call: the spoken text, its status and its callback history."""
    call = _act(lambda sim: sim.call(call_id))
    if as_json:
        typer.echo(json.dumps(call, indent=2, default=str))
        return
    typer.echo(f"{call['id']} to {call['to']}: {call['status']} (alert {call.get('alert_id')})")
    typer.echo(f"Text: {call['text']}")
    for event in call.get("events", []):
        detail = {k: v for k, v in event.items() if k not in ("at", "type") and v is not None}
        typer.echo(f"  {event['at']} {event['type']} {json.dumps(detail, default=str)}")


@phone_app.command("answer")
def answer(call_id: str, as_json: bool = _json_option()) -> None:
    """The callee picks up (status callback ``answered``)."""
    _print_action(_act(lambda sim: sim.answer(call_id)), as_json)


@phone_app.command("hangup")
def hangup(call_id: str, as_json: bool = _json_option()) -> None:
    """The call ends normally (``completed``)."""
    _print_action(_act(lambda sim: sim.hangup(call_id)), as_json)


@phone_app.command("press")
def press(call_id: str, digit: str, as_json: bool = _json_option()) -> None:
    """Press a key on the call (1 acknowledges, 2 resolves by default)."""
    _print_action(_act(lambda sim: sim.press(call_id, digit)), as_json)


@phone_app.command("status")
def status(call_id: str, outcome: str, as_json: bool = _json_option()) -> None:
    """End the call busy, no_answer or failed."""
    _print_action(_act(lambda sim: sim.set_status(call_id, outcome.replace("-", "_"))), as_json)


@phone_app.command("busy")
def busy(call_id: str, as_json: bool = _json_option()) -> None:
    """The line is busy."""
    _print_action(_act(lambda sim: sim.set_status(call_id, "busy")), as_json)


@phone_app.command("no-answer")
def no_answer(call_id: str, as_json: bool = _json_option()) -> None:
    """Nobody picks up."""
    _print_action(_act(lambda sim: sim.set_status(call_id, "no_answer")), as_json)


@phone_app.command("fail")
def fail(
    call_id: str,
    message: str = typer.Option("", "--message", help="Report a provider error with this message."),
    as_json: bool = _json_option(),
) -> None:
    """The call fails; with --message the carrier reports that error (e.g. "Insufficient balance")."""
    if message:
        _print_action(_act(lambda sim: sim.error(call_id, message)), as_json)
    else:
        _print_action(_act(lambda sim: sim.set_status(call_id, "failed")), as_json)


@phone_app.command("bad-callback")
def bad_callback(
    call_id: str,
    secret: bool = typer.Option(False, "--bad-secret", help="Use a wrong callback secret instead."),
    as_json: bool = _json_option(),
) -> None:
    """Send the call's status callback with a bad signature (or, with --bad-secret, a wrong secret)."""
    _print_action(
        _act(lambda sim: sim.callback(call_id, bad_secret=secret, bad_signature=not secret)),
        as_json,
    )


@phone_app.command("sms")
def sms(as_json: bool = _json_option()) -> None:
    """List simulated text messages, newest first."""
    rows = _act(lambda sim: sim.messages())
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        typer.echo(f"{row['id']} to {row['to']}: {row['status']}: {row['text']}")


# --- relay voice check (S7.11) --------------------------------------------------------------------

voice_app = typer.Typer(help="Voice calls: the production checklist (SPEC S7.11).")


class _LogCapture(logging.Handler):
    """Keeps every log line of the run as production would write it (redacted)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from relay_adapters.logging import redact_value

        try:
            text = record.getMessage()
        except Exception:  # a broken format string is still a line
            text = str(record.msg)
        self.lines.append(f"{record.name}: {redact_value(text)}")


class _Checklist:
    def __init__(self) -> None:
        self.results: list[tuple[bool, str, str]] = []

    def step(self, ok: bool, name: str, evidence: str) -> bool:
        self.results.append((ok, name, evidence))
        typer.echo(f"{'✓' if ok else '✗'} {name}: {evidence}")
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for ok, _, _ in self.results)


async def _voice_check(
    settings: Any, channel_id: int, phone: str | None, wait: float, checks: _Checklist, capture: _LogCapture
) -> None:
    import httpx

    from relay_adapters.compose import aclose_relay, relay_from_settings
    from relay_adapters.voice.simulator import Simulator, SimulatorError, SimulatorStore
    from relay_core.domain.escalation import first_notification_wait
    from relay_core.domain.model import NormalizedAlert
    from relay_core.services.voice import VoiceCallChannel, poll_voice_calls
    from relay_server.app import create_app

    relay = relay_from_settings(settings)
    try:
        async with relay.uow_factory() as uow:
            channel = await uow.channels.get(channel_id)
            routes = [
                r for r in await uow.routes.find() if channel_id in r.channel_ids and r.deleted_at is None
            ]
        if channel is None or channel.deleted_at is not None:
            checks.step(False, "channel is voice_call and enabled", f"channel {channel_id} not found")
            return
        if not checks.step(
            channel.channel_type == "voice_call" and channel.enabled,
            "channel is voice_call and enabled",
            f"channel {channel_id} {channel.name!r}: type {channel.channel_type}, "
            f"{'enabled' if channel.enabled else 'disabled'}",
        ):
            return
        sender = relay.ctx.senders.get("voice_call")
        assert isinstance(sender, VoiceCallChannel)
        name = sender.provider_name(channel.config)
        try:
            cls = relay.ctx.voice_loader.load(name) if relay.ctx.voice_loader else None
            loaded = cls is not None
            evidence = f"{name} ({cls.__module__}.{cls.__qualname__})" if cls else "no loader"
        except RuntimeError as exc:
            loaded, evidence = False, str(exc)
        if not checks.step(loaded, "provider loads", evidence):
            return
        try:
            provider = sender.provider_for(channel.config, channel_id=channel_id)
        except RuntimeError as exc:
            checks.step(False, "config validates", str(exc))
            return
        checks.step(True, "config validates", f"{name} accepted its provider_config")
        severities = list(channel.notify_on_severities)
        checks.step(
            True,
            "severity filter",
            f"notify_on_severities [{', '.join(severities)}]" if severities else "every severity is called",
        )
        if not checks.step(
            bool(routes),
            "a route sends to the channel",
            ", ".join(f"route {r.id} {r.name!r}" for r in routes)
            or f"attach channel {channel_id} to a route",
        ):
            return
        route = routes[0]
        severity = severities[0] if severities else "critical"
        group_wait = first_notification_wait(
            group_wait_seconds=route.group_wait_seconds,
            group_by=tuple(route.group_by),
            default_group_wait=settings.alerts.group_wait_seconds,
        )
        simulated = name == "simulator"
        app = create_app(relay=relay, settings=settings)
        base = settings.server.public_base_url.rstrip("/")
        asgi: Any = app  # callbacks reach this in-process app, secret checks included

        sim = Simulator(
            SimulatorStore(settings.data_dir / "simulator"),
            client_factory=lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url=base),
        )

        async def page(label: str) -> tuple[int, Any]:
            alert = NormalizedAlert(
                source=route.source,
                dedup_key=f"relay-voice-check-{uuid.uuid4().hex}",
                title=f"Relay voice check {label}",
                message="Test alert of relay voice check",
                severity=severity,
                original_severity=severity,
                labels={"alertname": "RelayVoiceCheck", "relay_test": "true"},
                starts_at=relay.clock.now(),
            )
            (item,) = await relay.ingest(route.source, [alert], route_id=route.id)
            group_id = int(item.as_dict()["group_id"])
            if group_wait:
                typer.echo(
                    f"  waiting up to {group_wait + wait:g} s for the page (route group wait {group_wait} s)"
                )
            deadline = asyncio.get_running_loop().time() + group_wait + wait
            while True:
                await relay.run_until_idle()
                async with relay.uow_factory() as uow:
                    record = await uow.notifications.first(group_id=group_id, channel_id=channel_id)
                    intents = await uow.intents.find(group_id=group_id, channel_id=channel_id)
                finished = intents and all(i.status not in ("pending", "sending") for i in intents)
                if record is not None or finished or asyncio.get_running_loop().time() >= deadline:
                    return group_id, record
                await asyncio.sleep(0.5)

        async def reload(record: Any) -> Any:
            async with relay.uow_factory() as uow:
                return await uow.notifications.get(record.id)

        async def group_status(group_id: int) -> str:
            async with relay.uow_factory() as uow:
                group = await uow.alert_groups.get(group_id)
            return str(group.status) if group else "missing"

        async def until(test: Callable[[], Awaitable[bool]]) -> bool:
            deadline = asyncio.get_running_loop().time() + wait
            while True:
                if await test():
                    return True
                if asyncio.get_running_loop().time() >= deadline:
                    return False
                await poll_voice_calls(relay.ctx)
                await asyncio.sleep(1.0)

        first, record = await page("1")
        call_id = str(record.external_message_id) if record and record.external_message_id else None
        if call_id is None or record is None:
            checks.step(
                False, "test call placed (call_id returned)", await _delivery_error(relay, first, channel_id)
            )
            return
        checks.step(
            True,
            "test call placed (call_id returned)",
            f"call_id {call_id} to {record.provider_payload.get('to', '***')}, "
            f"status {record.provider_status}",
        )
        if simulated:
            with contextlib.suppress(SimulatorError):
                await sim.answer(call_id)
        else:
            typer.echo(f"  answer the call to {record.provider_payload.get('to', 'the assignee')} ...")

        async def called_back() -> bool:
            fresh = await reload(record)
            return bool(fresh.callback_count) or fresh.provider_status != record.provider_status

        got = await until(called_back)
        fresh = await reload(record)
        checks.step(
            got,
            "status callback received",
            f"status {fresh.provider_status}, {fresh.callback_count} callback(s)"
            if got
            else f"no callback within {wait:g} s (status {fresh.provider_status}); check the callback URL",
        )
        await _dtmf(
            checks, sim, simulated, record, "1", "acknowledges", "acknowledged", first, group_status, until
        )
        # Close the first test group so that the second test alert opens a group of its own.
        with contextlib.suppress(Exception):
            await relay.resolve(first, via="voice_check")
        second, record2 = await page("2")
        if record2 is None or not record2.external_message_id:
            checks.step(False, "DTMF 2 resolves another", await _delivery_error(relay, second, channel_id))
        else:
            await _dtmf(
                checks,
                sim,
                simulated,
                record2,
                "2",
                "resolves another",
                "resolved",
                second,
                group_status,
                until,
            )
        if simulated:
            target = (record2.external_message_id if record2 else None) or call_id
            try:
                sent = (await sim.error(target, "relay voice check: simulated provider error"))["callback"]
            except SimulatorError as exc:
                sent = {"error": exc.message}
            seen = any("voice provider error" in line for line in capture.lines)
            checks.step(
                seen,
                "a provider error is visible in the log",
                "voice provider error logged" if seen else f"no log line (callback: {sent})",
            )
        else:
            try:
                type(provider).validate_config({})
                checks.step(
                    False, "a provider error is visible", "validate_config({}) accepted an empty config"
                )
            except RuntimeError as exc:
                checks.step(True, "a provider error is visible", f"validate_config({{}}) -> {exc}")
        for group_id in (first, second):
            with contextlib.suppress(Exception):
                await relay.resolve(group_id, via="voice_check")
        await _leak_check(relay, checks, capture, channel, phone)
    finally:
        await aclose_relay(relay)


async def _dtmf(
    checks: _Checklist,
    sim: Any,
    simulated: bool,
    record: Any,
    digit: str,
    action: str,
    expected: str,
    group_id: int,
    group_status: Callable[[int], Awaitable[str]],
    until: Callable[[Callable[[], Awaitable[bool]]], Awaitable[bool]],
) -> None:
    if simulated:
        await sim.press(record.external_message_id, digit)
    else:
        typer.echo(f"  press {digit} on the call {record.external_message_id} ...")

    async def reached() -> bool:
        return await group_status(group_id) == expected

    ok = await until(reached)
    checks.step(ok, f"DTMF {digit} {action}", f"alert {group_id} is {await group_status(group_id)}")


async def _delivery_error(relay: Any, group_id: int, channel_id: int) -> str:
    async with relay.uow_factory() as uow:
        intents = await uow.intents.find(group_id=group_id, channel_id=channel_id)
        events = await uow.events.find(group_id=group_id)
    if intents:
        last = intents[-1]
        return f"delivery {last.status}: {last.last_error or 'no call_id returned'}"
    skipped = [e.message for e in events if e.event_type.endswith("_skipped")]
    return skipped[-1] if skipped else "no call was scheduled for this channel"


async def _leak_check(
    relay: Any, checks: _Checklist, capture: _LogCapture, channel: Any, phone: str | None
) -> None:
    async with relay.uow_factory() as uow:
        users = await uow.users.find()
    secrets_ = {channel.callback_secret or ""} | {
        str(v)
        for k, v in dict(channel.config.get("provider_config") or {}).items()
        if "token" in k or "secret" in k
    }
    phones = {u.phone for u in users if u.phone} | {phone or ""}
    output = "\n".join(capture.lines)
    leaks = [s for s in secrets_ | phones if s and len(s) >= 6 and s in output]
    checks.step(
        not leaks,
        "the log contains no secret and no full phone number",
        f"{len(capture.lines)} log lines checked"
        if not leaks
        else f"{len(leaks)} secret value(s) found in the log",
    )


@voice_app.command("check")
def voice_check(
    channel: int = typer.Option(..., "--channel", help="The voice_call channel id."),
    phone: str | None = typer.Option(None, "--phone", help="Also make sure this number never shows in logs."),
    wait: float = typer.Option(120.0, "--wait", help="Seconds to wait for callbacks and key presses."),
) -> None:
    """Run the pre-production checklist step by step; exit 0 only if every step passed."""
    from relay_server.cli import _prepare, _run, _settings

    settings = _settings()
    _prepare(settings)
    checks = _Checklist()
    capture = _LogCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        _run(_voice_check(settings, channel, phone, wait, checks, capture))
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    ok = checks.passed
    typer.echo(
        f"{'passed' if ok else 'FAILED'}: {sum(r[0] for r in checks.results)}/{len(checks.results)} steps"
    )
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `relay` command app."""
    app.add_typer(phone_app, name="phone")
    app.add_typer(voice_app, name="voice")
