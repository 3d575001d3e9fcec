"""`relay phone ...` drives simulator calls and sends signed callbacks over HTTP (SPEC S7.10)."""

from __future__ import annotations

import json
from typing import Any

from relay_adapters.voice.simulator import Provider, sign_body
from relay_core.voice import VoiceCallRequest

from .conftest import Cli

SECRET = "chan-secret-123"


def _place(cli: Cli, url: str) -> str:
    provider = Provider({"store_dir": str(cli.data_dir / "simulator")})
    result = provider.place_call(
        VoiceCallRequest(
            phone="+15550001234",
            text="Relay alert 7. Disk is full. Press 1 to acknowledge. Press 2 to resolve.",
            alert_id=7,
            event_type="notification",
            callback_url=f"{url}/api/integrations/voice/callback/3/{SECRET}",
            callback_secret=SECRET,
            metadata={"channel_id": 3},
        )
    )
    assert result.call_id is not None
    return result.call_id


def test_phone_calls_and_show_list_masked_calls(cli: Cli, local_http_server: Any) -> None:
    """`relay phone calls` and `show` print the call with a masked number, the text and no secret."""
    call_id = _place(cli, local_http_server.url)
    rows = cli.json("phone", "calls", "--json")
    assert [(r["id"], r["status"], r["to"]) for r in rows] == [(call_id, "ringing", "***1234")]
    shown = cli.ok("phone", "show", call_id).stdout
    assert "Text: Relay alert 7. Disk is full. Press 1 to acknowledge." in shown
    assert "***1234" in shown
    for output in (json.dumps(rows), shown):
        assert SECRET not in output
        assert "+15550001234" not in output


def test_phone_press_sends_signed_answer_and_dtmf_callbacks(cli: Cli, local_http_server: Any) -> None:
    """`relay phone press` answers then sends the digit, each body signed with the channel secret."""
    call_id = _place(cli, local_http_server.url)
    result = cli.ok("phone", "press", call_id, "1")
    requests = local_http_server.requests
    assert [r.json() for r in requests] == [
        {"call_id": call_id, "event_type": "status", "status": "answered"},
        {"call_id": call_id, "event_type": "dtmf", "digit": "1"},
    ]
    for request in requests:
        assert request.path == f"/api/integrations/voice/callback/3/{SECRET}"
        assert request.header("X-Simulator-Signature") == sign_body(SECRET, request.body)
    assert "callback -> HTTP 200" in result.stdout
    assert cli.json("phone", "show", call_id, "--json")["status"] == "answered"


def test_phone_outcomes_and_bad_callbacks(cli: Cli, local_http_server: Any) -> None:
    """busy / no-answer / fail end calls; bad-callback tampers with the signature or the secret."""
    for command, status in (("busy", "busy"), ("no-answer", "no_answer"), ("fail", "failed")):
        call_id = _place(cli, local_http_server.url)
        cli.ok("phone", command, call_id)
        assert local_http_server.last_request.json()["status"] == status
        refused = cli("phone", "press", call_id, "1")
        assert refused.exit_code == 1
        assert f"simulator call {call_id} is {status}" in refused.stderr
    call_id = _place(cli, local_http_server.url)
    cli.ok("phone", "bad-callback", call_id)
    tampered = local_http_server.last_request
    assert tampered.header("X-Simulator-Signature") != sign_body(SECRET, tampered.body)
    cli.ok("phone", "bad-callback", call_id, "--bad-secret")
    assert local_http_server.last_request.path == "/api/integrations/voice/callback/3/wrong-secret"
    cli.ok("phone", "fail", call_id, "--message", "Insufficient balance")
    assert local_http_server.last_request.json()["message"] == "Insufficient balance"


def test_phone_rejects_unknown_calls_and_digits(cli: Cli, local_http_server: Any) -> None:
    """Unknown ids and invalid digits fail with a message and change nothing."""
    missing = cli("phone", "show", "sim-call-99")
    assert (missing.exit_code, missing.stderr.strip()) == (1, "relay: simulator call not found: sim-call-99")
    call_id = _place(cli, local_http_server.url)
    bad = cli("phone", "press", call_id, "x")
    assert bad.exit_code == 1
    assert "digit must be one of 0-9, * or #" in bad.stderr
    assert local_http_server.requests == []


def _voice_channel(cli: Cli, provider: str) -> int:
    """Point the demo's voice channel at ``provider`` and return its id."""
    import attrs

    async def work(relay: Any) -> int:
        async with relay.uow_factory() as uow:
            (channel,) = await uow.channels.find(name="demo-phone")
            await uow.channels.update(attrs.evolve(channel, config={**channel.config, "provider": provider}))
            for route in await uow.routes.find():  # page at once instead of after the group wait
                await uow.routes.update(attrs.evolve(route, group_wait_seconds=0))
            await uow.commit()
            return int(channel.id)

    return cli.query(work)


def test_voice_check_passes_every_step_with_the_simulator(cli: Cli) -> None:
    """`relay voice check` runs the whole checklist unattended on the simulator and exits 0."""
    cli.ok("demo-data")
    channel_id = _voice_channel(cli, "simulator")
    result = cli("voice", "check", "--channel", str(channel_id), "--wait", "2")
    out = result.stdout
    assert result.exit_code == 0, out + result.stderr
    for step in (
        "✓ channel is voice_call and enabled",
        "✓ provider loads: simulator",
        "✓ config validates",
        "✓ test call placed (call_id returned): call_id sim-call-1 to ***",
        "✓ status callback received: status answered",
        "✓ DTMF 1 acknowledges: alert",
        "✓ DTMF 2 resolves another: alert",
        "✓ a provider error is visible in the log",
        "✓ the log contains no secret and no full phone number",
    ):
        assert step in out
    assert "✗" not in out


def test_voice_check_fails_where_the_provider_cannot_call_back(cli: Cli) -> None:
    """With the stub (no callbacks) the check stops short and exits 1; unknown channels fail at once."""
    cli.ok("demo-data")
    channel_id = _voice_channel(cli, "stub")
    result = cli("voice", "check", "--channel", str(channel_id), "--wait", "1")
    assert result.exit_code == 1
    assert "✓ test call placed (call_id returned): call_id stub-" in result.stdout
    assert "✗ status callback received: no callback within 1 s" in result.stdout
    missing = cli("voice", "check", "--channel", "999", "--wait", "1")
    assert missing.exit_code == 1
    assert "✗ channel is voice_call and enabled: channel 999 not found" in missing.stdout
