"""Voice calls end to end through the simulator: calls, callbacks, DTMF, polling, troubleshooting
(SPEC S7.4-S7.8, S7.10)."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from relay_adapters.logging import configure_logging
from relay_adapters.settings import (
    LoggingSettings,
    MainSettings,
    RelaySettings,
    ServerSettings,
    SimulatorSettings,
)
from relay_adapters.voice.loader import make_voice_loader
from relay_adapters.voice.simulator import Provider as SimulatorProvider
from relay_core.services.voice import VoiceCallChannel, poll_voice_calls
from relay_core.voice import BaseVoiceProvider, VoiceCallRequest, VoiceCallResult
from relay_server.controllers.voice import SIMULATOR_CLIENT_KEY

from .conftest import World, build_world

AM = json.loads((Path(__file__).parent / "fixtures" / "alertmanager_v4.json").read_text())
BASE = "https://relay.test"


class NoCallIdProvider(BaseVoiceProvider):
    """A provider that accepts calls but returns no call_id."""

    name: ClassVar[str] = "no_call_id"

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        return VoiceCallResult(call_id=None, status="queued")


class HangingProvider(BaseVoiceProvider):
    """A provider whose API never answers in time."""

    name: ClassVar[str] = "hanging"

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        time.sleep(1.0)
        return VoiceCallResult(call_id="late")


class OtherSimulator(SimulatorProvider):
    """A second simulator-shaped provider, to switch a channel's provider after a call."""

    name: ClassVar[str] = "other_sim"


@attrs.define
class VoiceWorld:
    world: World
    client: AsyncTestClient[Litestar]
    channel_id: int
    secret: str

    @property
    def admin(self) -> dict[str, str]:
        return self.world.auth("admin")

    async def fire(self, fingerprint: str = "disk-full", **labels: str) -> int:
        body = copy.deepcopy(AM)
        body["alerts"][0]["fingerprint"] = fingerprint
        body["alerts"][0]["labels"].update(labels)
        response = await self.client.post(
            "/api/integrations/alertmanager", json=body, headers=self.world.bearer("route_alertmanager")
        )
        assert response.status_code == 200, response.text
        group_id: int = response.json()[0]["group_id"]
        return group_id

    async def deliver(self) -> None:
        await self.world.relay.run_until_idle()

    async def calls(self) -> list[dict[str, Any]]:
        response = await self.client.get("/api/simulator/calls", headers=self.admin)
        assert response.status_code == 200, response.text
        calls: list[dict[str, Any]] = response.json()
        return calls

    async def sim(self, call_id: str, action: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(
            f"/api/simulator/calls/{call_id}/{action}", json=body or {}, headers=self.admin
        )

    async def group(self, group_id: int) -> Any:
        return await self.world.get("alert_groups", group_id)

    async def notification(self, call_id: str) -> Any:
        (record,) = await self.world.find("notifications", external_message_id=call_id)
        return record

    async def set_config(self, **config: Any) -> None:
        async with self.world.relay.uow_factory() as uow:
            channel = await uow.channels.get(self.channel_id)
            await uow.channels.update(attrs.evolve(channel, config={**channel.config, **config}))
            await uow.commit()

    async def intents(self) -> list[Any]:
        return await self.world.find("intents", channel_id=self.channel_id)


@pytest.fixture
async def voice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VoiceWorld]:
    monkeypatch.setenv("RELAY_SIMULATOR_DIR", str(tmp_path / "simulator"))
    monkeypatch.delenv("VOICE_API_URL", raising=False)
    settings = RelaySettings(
        main=MainSettings(data_dir=str(tmp_path)),
        server=ServerSettings(public_base_url=BASE),
        simulator=SimulatorSettings(enabled=True),
    )
    world = await build_world(settings=settings)
    registry = world.relay.registry
    assert registry is not None
    plugins = {
        **registry.voice_providers(),
        "no_call_id": NoCallIdProvider,
        "hanging": HangingProvider,
        "other_sim": OtherSimulator,
    }
    # The production loader (files, plugins, ${ENV}), as relay_from_settings wires it.
    loader = make_voice_loader(plugins=plugins, providers_dir=tmp_path / "voice_providers")
    world.relay.ctx.voice_loader = loader
    world.relay.ctx.senders["voice_call"] = VoiceCallChannel(
        loader, public_base_url=BASE, call_timeout_seconds=0.3
    )
    world.app.state[SIMULATOR_CLIENT_KEY] = lambda: httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.app), base_url=BASE
    )
    async with AsyncTestClient(app=world.app) as client:
        created = await client.post(
            "/api/channels",
            json={
                "team_id": world.ids["team"],
                "name": "phone",
                "channel_type": "voice_call",
                "config": {"provider": "simulator"},
            },
            headers=world.auth("manager"),
        )
        assert created.status_code == 201, created.text
        channel_id = created.json()["id"]
        async with world.relay.uow_factory() as uow:
            route = await uow.routes.get(world.ids["route_alertmanager"])
            await uow.routes.update(attrs.evolve(route, channel_ids=(channel_id,)))
            channel = await uow.channels.get(channel_id)
            await uow.commit()
        yield VoiceWorld(world=world, client=client, channel_id=channel_id, secret=channel.callback_secret)


async def test_alert_calls_the_assignee_and_dtmf_1_acknowledges_2_resolves(voice: VoiceWorld) -> None:
    """Alert -> simulator call -> status callbacks -> DTMF 1 acknowledges; another -> DTMF 2 resolves."""
    first = await voice.fire("disk-full")
    await voice.deliver()
    (call,) = await voice.calls()
    assert call["status"] == "ringing"
    assert call["text"].startswith(f"Relay alert {first}. ")
    assert call["text"].endswith("Press 1 to acknowledge. Press 2 to resolve.")
    assert re.fullmatch(r"\*\*\*\d{4}", call["to"])
    assert voice.secret not in json.dumps(call)
    record = await voice.notification(call["id"])
    assert record.provider == "voice_call:simulator"
    assert record.provider_status == "ringing"

    answered = await voice.sim(call["id"], "answer")
    assert answered.status_code == 200, answered.text
    callback = answered.json()["callback"]
    assert callback["status_code"] == 200
    assert callback["response"]["status"] == "processed"
    assert (await voice.notification(call["id"])).provider_status == "answered"

    pressed = await voice.sim(call["id"], "press", {"digit": "1"})
    assert pressed.status_code == 200, pressed.text
    (event,) = pressed.json()["callback"]["response"]["events"]
    assert event["action"] == "acknowledge"
    assert event["result"] == "applied"
    group = await voice.group(first)
    assert group.status == "acknowledged"
    record = await voice.notification(call["id"])
    assert group.acknowledged_by == record.recipient_user_id
    assert record.callback_count == 2
    history = await voice.world.find("callbacks", notification_id=record.id)
    assert [(h.event_type, h.digit, h.result) for h in history] == [
        ("status", None, "recorded"),
        ("dtmf", "1", "applied"),
    ]
    timeline = [e.event_type for e in await voice.world.find("events", group_id=first)]
    assert "voice_status" in timeline
    assert "voice_dtmf" in timeline

    second = await voice.fire("cpu-hot", alertname="CpuHot")
    await voice.deliver()
    newest = (await voice.calls())[0]
    assert newest["alert_id"] == second
    pressed = await voice.sim(newest["id"], "press", {"digit": "2"})
    assert pressed.status_code == 200, pressed.text
    assert [c["status_code"] for c in pressed.json()["callbacks"]] == [200, 200]
    assert (await voice.group(second)).status == "resolved"
    assert (await voice.notification(newest["id"])).provider_status == "answered"
    hung_up = await voice.sim(newest["id"], "hangup")
    assert hung_up.json()["call"]["status"] == "completed"
    assert (await voice.notification(newest["id"])).provider_status == "completed"


async def test_busy_no_answer_and_failed_are_stored_and_terminal(voice: VoiceWorld) -> None:
    """Scripted busy / no_answer / failed outcomes reach the delivery record; a finished call refuses keys."""
    for n, outcome in enumerate(("busy", "no_answer", "failed")):
        await voice.fire(f"fp-{n}", alertname=f"Alert{n}")
        await voice.deliver()
        call = (await voice.calls())[0]
        response = await voice.sim(call["id"], "status", {"status": outcome})
        assert response.status_code == 200, response.text
        assert (await voice.notification(call["id"])).provider_status == outcome
        late = await voice.sim(call["id"], "press", {"digit": "1"})
        assert late.status_code == 409
        assert late.json()["error"] == "call_finished"
    bad = await voice.sim(call["id"], "status", {"status": "exploded"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "validation_error"


async def test_polling_only_provider_reaches_the_same_states(voice: VoiceWorld) -> None:
    """A provider with status_polling and no callbacks is polled: ringing -> answered -> completed."""
    await voice.set_config(provider_config={"callbacks": False})
    await voice.fire()
    await voice.deliver()
    (call,) = await voice.calls()
    ctx = voice.world.relay.ctx
    assert await poll_voice_calls(ctx) == 0  # still ringing: nothing changed
    answered = await voice.sim(call["id"], "answer")
    assert answered.json()["callback"]["sent"] is False
    assert (await voice.notification(call["id"])).provider_status == "ringing"
    assert await poll_voice_calls(ctx) == 1
    assert (await voice.notification(call["id"])).provider_status == "answered"
    await voice.sim(call["id"], "hangup")
    assert await poll_voice_calls(ctx) == 1
    record = await voice.notification(call["id"])
    assert record.provider_status == "completed"
    assert await poll_voice_calls(ctx) == 0  # terminal: no longer polled
    polled = [
        e
        for e in await voice.world.find("events", group_id=record.group_id)
        if e.event_type == "voice_status"
    ]
    assert [e.data["source"] for e in polled] == ["poll", "poll"]


async def test_provider_error_event_is_recorded_and_logged(
    voice: VoiceWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """An error callback stores status and message, writes voice_error and logs `voice provider error`."""
    group_id = await voice.fire()
    await voice.deliver()
    (call,) = await voice.calls()
    with caplog.at_level(logging.INFO):
        response = await voice.sim(call["id"], "error", {"message": "Insufficient balance"})
    assert response.json()["callback"]["response"]["events"][0]["result"] == "error_recorded"
    record = await voice.notification(call["id"])
    assert record.provider_status == "failed"
    assert record.last_error == "Insufficient balance"
    assert "voice provider error: Insufficient balance" in caplog.text
    events = [e for e in await voice.world.find("events", group_id=group_id) if e.event_type == "voice_error"]
    assert "message=Insufficient balance" in events[0].message


# --- S7.8 troubleshooting map --------------------------------------------------------------------


async def _create(voice: VoiceWorld, config: dict[str, Any], name: str = "phone2") -> httpx.Response:
    return await voice.client.post(
        "/api/channels",
        json={
            "team_id": voice.world.ids["team"],
            "name": name,
            "channel_type": "voice_call",
            "config": config,
        },
        headers=voice.world.auth("manager"),
    )


async def test_channel_save_reports_provider_problems(
    voice: VoiceWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saving shows the loader's and the provider's messages as 400 validation_error."""
    cases = {
        "mango": "voice provider not found: mango",
        "mango-provider": "voice provider name must contain only letters, numbers and underscore",
        "example_http": "example_http config requires: api_url, api_token",
    }
    for provider, message in cases.items():
        response = await _create(voice, {"provider": provider})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "validation_error"
        assert response.json()["message"] == message
    bad_dtmf = await _create(
        voice, {"provider": "simulator", "dtmf_actions": {"5": "explode", "x": "resolve"}}
    )
    assert bad_dtmf.status_code == 400
    locs = {d["loc"] for d in bad_dtmf.json()["details"]}
    assert locs == {"$.config.dtmf_actions.5", "$.config.dtmf_actions.x"}
    assert await voice.world.count("channels", name="phone2") == 0
    update = await voice.client.put(
        f"/api/channels/{voice.channel_id}",
        json={"config": {"provider": "mango"}},
        headers=voice.world.auth("manager"),
    )
    assert update.status_code == 400
    assert update.json()["message"] == "voice provider not found: mango"
    monkeypatch.setenv("VOICE_API_URL", "https://voice.example")
    monkeypatch.setenv("VOICE_API_TOKEN", "tkn")
    good = await _create(
        voice,
        {
            "provider": "example_http",
            "provider_config": {"api_url": "${VOICE_API_URL}", "api_token": "${VOICE_API_TOKEN}"},
        },
    )
    assert good.status_code == 201, good.text


async def test_missing_env_var_and_config_fail_the_delivery(
    voice: VoiceWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """An unset ${VAR} logs its name only; the provider's config message is the permanent failure."""
    await voice.set_config(
        provider="example_http", provider_config={"api_url": "${VOICE_API_URL}", "api_token": "t"}
    )
    await voice.fire()
    with caplog.at_level(logging.WARNING):
        await voice.deliver()
    assert (
        f"environment variable VOICE_API_URL referenced by channel {voice.channel_id} is not set"
        in caplog.text
    )
    (intent,) = await voice.intents()
    assert intent.status == "failed"
    assert intent.last_error.endswith("example_http config requires: api_url")


async def test_skip_reasons_and_phone_missing(voice: VoiceWorld) -> None:
    """severity_filtered, alert_not_firing, channel_disabled and phone_missing show as documented."""
    await voice.set_config(notify_on_severities=["info"])
    first = await voice.fire("a")
    await voice.deliver()
    assert await voice.intents() == []
    assert await voice.calls() == []
    events = await voice.world.find("events", group_id=first)
    (skipped,) = [e for e in events if e.event_type.endswith("_skipped")]
    assert skipped.data["reason"] == "severity_filtered"
    assert "severity critical not in notify_on_severities [info]" in skipped.message
    await voice.set_config(notify_on_severities=[])
    group_id = await voice.fire("b", alertname="Other")
    await voice.world.relay.acknowledge(group_id, user_id=voice.world.ids["manager"])
    await voice.deliver()
    cancelled = (await voice.intents())[-1]
    # Acknowledging cancels the pending page (the delivery path would skip it as alert_not_firing).
    assert (cancelled.status, cancelled.last_error) == ("cancelled", "group_acknowledged")
    assert await voice.calls() == []
    async with voice.world.relay.uow_factory() as uow:
        for user in await uow.users.find():
            await uow.users.update(attrs.evolve(user, phone=None))
        await uow.commit()
    await voice.fire("c", alertname="Third")
    await voice.deliver()
    last = (await voice.intents())[-1]
    assert (last.status, last.last_error) == (
        "failed",
        "voice_call phone is missing: set phone on the assigned user",
    )
    async with voice.world.relay.uow_factory() as uow:
        channel = await uow.channels.get(voice.channel_id)
        await uow.channels.update(attrs.evolve(channel, enabled=False))
        await uow.commit()
    fourth = await voice.fire("d", alertname="Fourth")
    await voice.deliver()
    reasons = [e.data.get("reason") for e in await voice.world.find("events", group_id=fourth)]
    assert "channel_disabled" in reasons


async def test_callback_rejections(voice: VoiceWorld, caplog: pytest.LogCaptureFixture) -> None:
    """Wrong channel 404, type 400, secret 403, signature 400, replay 409; the header form works."""
    await voice.fire()
    await voice.deliver()
    (call,) = await voice.calls()
    body = {"call_id": call["id"], "event_type": "status", "status": "answered"}
    missing = await voice.client.post(f"/api/integrations/voice/callback/9999/{voice.secret}", json=body)
    assert (missing.status_code, missing.json()["message"]) == (404, "voice channel not found")
    wrong_type = await voice.client.post(
        f"/api/integrations/voice/callback/{voice.world.ids['channel']}/{voice.secret}", json=body
    )
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"] == "channel_type_mismatch"
    assert wrong_type.json()["message"] == f"channel {voice.world.ids['channel']} is not a voice_call channel"
    bad_secret = await voice.sim(call["id"], "callback", {"bad_secret": True})
    assert bad_secret.json()["callback"]["status_code"] == 403
    assert bad_secret.json()["callback"]["response"] == {
        "error": "voice_callback_rejected",
        "message": "voice callback rejected",
        "details": [],
    }
    bad_signature = await voice.sim(call["id"], "callback", {"bad_signature": True})
    assert bad_signature.json()["callback"]["status_code"] == 400
    assert bad_signature.json()["callback"]["response"]["error"] == "callback_rejected"
    assert bad_signature.json()["callback"]["response"]["message"] == "invalid provider callback signature"
    assert (await voice.notification(call["id"])).callback_count == 0
    # Header-secret form, signed like the simulator signs.
    from relay_adapters.voice.simulator import sign_body

    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Relay-Callback-Secret": voice.secret,
        "X-Simulator-Signature": sign_body(voice.secret, raw),
    }
    ok = await voice.client.post(
        f"/api/integrations/voice/callback/{voice.channel_id}", content=raw, headers=headers
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["events"][0]["status"] == "answered"
    replay = await voice.client.post(
        f"/api/integrations/voice/callback/{voice.channel_id}", content=raw, headers=headers
    )
    assert (replay.status_code, replay.json()["error"]) == (409, "duplicate_callback")
    assert (await voice.notification(call["id"])).callback_count == 1


async def test_callback_event_problems_are_logged(
    voice: VoiceWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """No events -> ignored; unknown call_id -> notification_not_found; DTMF and provider problems logged."""
    group_id = await voice.fire()
    await voice.deliver()
    (call,) = await voice.calls()
    cid = call["id"]
    with caplog.at_level(logging.INFO):
        ignored = await voice.sim(cid, "callback", {"body": {"unexpected": "shape"}})
        assert ignored.json()["callback"]["response"] == {"status": "ignored", "events": []}
        assert "voice callback ignored: provider returned no events" in caplog.text
        unknown = await voice.sim(cid, "callback", {"body": {"call_id": "nope", "event_type": "status"}})
        (item,) = unknown.json()["callback"]["response"]["events"]
        assert (item["call_id"], item["status"]) == ("nope", "notification_not_found")
        assert "voice callback for unknown call_id" in caplog.text
        no_digit = await voice.sim(cid, "callback", {"body": {"call_id": cid, "event_type": "dtmf"}})
        assert no_digit.json()["callback"]["response"]["events"][0]["result"] == "ignored"
        assert "voice dtmf event without digit or action" in caplog.text
        unmapped = await voice.sim(cid, "press", {"digit": "9"})
        assert unmapped.json()["callback"]["response"]["events"][0]["result"] == "ignored"
        assert "voice dtmf digit not mapped: digit=9" in caplog.text
        assert (await voice.group(group_id)).status == "firing"
        await voice.set_config(provider="other_sim")
        await voice.sim(cid, "callback", {"body": {"call_id": cid, "event_type": "dtmf", "digit": "1"}})
        assert "voice callback provider mismatch" in caplog.text
    assert (await voice.group(group_id)).status == "acknowledged"


async def test_no_call_id_and_timeouts_are_visible(
    voice: VoiceWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """A result without call_id logs the warning; a hanging provider fails with the timeout message."""
    await voice.set_config(provider="no_call_id")
    await voice.fire("a")
    with caplog.at_level(logging.WARNING):
        await voice.deliver()
    assert "voice provider returned no call_id; callbacks cannot be matched" in caplog.text
    await voice.set_config(provider="hanging")
    await voice.fire("b", alertname="Other")
    await voice.deliver()
    last = (await voice.intents())[-1]
    assert last.last_error.endswith("voice provider timed out after 0.3 s")
    await asyncio.sleep(1.0)  # let the abandoned provider thread finish before the loop closes


async def test_unreachable_provider_api_names_the_error_class(voice: VoiceWorld) -> None:
    """A provider API that refuses connections fails the attempt with ConnectError in the message."""
    await voice.set_config(
        provider="example_http", provider_config={"api_url": "http://127.0.0.1:9", "api_token": "t"}
    )
    await voice.fire()
    await voice.deliver()
    (intent,) = await voice.intents()
    assert "ConnectError" in (intent.last_error or "")


async def test_simulator_api_is_admin_only_and_off_when_disabled(voice: VoiceWorld) -> None:
    """Non-admins get 403; with simulator.enabled false every simulator path is 404."""
    denied = await voice.client.get("/api/simulator/calls", headers=voice.world.auth("manager"))
    assert denied.status_code == 403
    missing = await voice.client.get("/api/simulator/calls/sim-call-99", headers=voice.admin)
    assert missing.status_code == 404
    voice.world.state.settings = attrs.evolve(
        voice.world.settings, simulator=SimulatorSettings(enabled=False)
    )
    off = await voice.client.get("/api/simulator/calls", headers=voice.admin)
    assert off.status_code == 404


async def test_full_call_flow_logs_no_secret_and_no_full_phone(voice: VoiceWorld) -> None:
    """Every log line of a whole call flow (production formatter) is free of secrets and full numbers."""
    stream = io.StringIO()
    configure_logging(RelaySettings(logging=LoggingSettings(level="DEBUG", format="json")), stream=stream)
    try:
        group_id = await voice.fire()
        await voice.deliver()
        (call,) = await voice.calls()
        await voice.sim(call["id"], "answer")
        await voice.sim(call["id"], "press", {"digit": "9"})
        await voice.sim(call["id"], "callback", {"bad_secret": True})
        await voice.sim(call["id"], "press", {"digit": "1"})
        await voice.sim(call["id"], "error", {"message": "Insufficient balance"})
    finally:
        logging.getLogger().handlers.clear()
    assert (await voice.group(group_id)).status == "acknowledged"
    output = stream.getvalue()
    assert "voice call placed" in output
    assert "voice provider error" in output
    phones = {u.phone for u in await voice.world.find("users") if u.phone}
    for phone in phones:
        assert phone not in output
        assert phone.lstrip("+") not in output
    assert voice.secret not in output
    assert "***" in output


async def test_dtmf_needs_the_called_users_responder_rights(voice: VoiceWorld) -> None:
    """A called user without responder rights cannot acknowledge by keypad; the alert stays firing."""
    group_id = await voice.fire()
    await voice.deliver()
    (call,) = await voice.calls()
    record = await voice.notification(call["id"])
    async with voice.world.relay.uow_factory() as uow:
        (membership,) = await uow.team_memberships.find(user_id=record.recipient_user_id)
        await uow.team_memberships.update(attrs.evolve(membership, role="viewer"))
        await uow.commit()
    pressed = await voice.sim(call["id"], "press", {"digit": "1"})
    (event,) = pressed.json()["callback"]["response"]["events"]
    assert (event["action"], event["result"]) == ("acknowledge", "permission_denied")
    assert (await voice.group(group_id)).status == "firing"


async def test_sms_simulator_delivery_callbacks(voice: VoiceWorld) -> None:
    """An sms channel on the simulator: the message is recorded and its delivery status comes back."""
    created = await voice.client.post(
        "/api/channels",
        json={
            "team_id": voice.world.ids["team"],
            "name": "texts",
            "channel_type": "sms",
            "config": {"provider": "simulator"},
        },
        headers=voice.world.auth("manager"),
    )
    assert created.status_code == 201, created.text
    sms_id = created.json()["id"]
    async with voice.world.relay.uow_factory() as uow:
        route = await uow.routes.get(voice.world.ids["route_alertmanager"])
        await uow.routes.update(attrs.evolve(route, channel_ids=(sms_id,)))
        await uow.commit()
    await voice.fire()
    await voice.deliver()
    listing = await voice.client.get("/api/simulator/messages", headers=voice.admin)
    (message,) = listing.json()
    assert message["status"] == "sent"
    assert re.fullmatch(r"\*\*\*\d{4}", message["to"])
    response = await voice.client.post(
        f"/api/simulator/messages/{message['id']}/status", json={"status": "delivered"}, headers=voice.admin
    )
    callback = response.json()["callback"]
    assert callback["status_code"] == 200, callback
    assert callback["response"]["events"][0]["result"] == "recorded"
    (record,) = await voice.world.find("notifications", external_message_id=message["id"])
    assert (record.provider_status, record.callback_count) == ("delivered", 1)
    wrong = await voice.client.post(f"/api/integrations/sms/callback/{sms_id}/nope", json={})
    assert (wrong.status_code, wrong.json()["error"]) == (403, "sms_callback_rejected")
    mismatch = await voice.client.post(
        f"/api/integrations/sms/callback/{voice.channel_id}/{voice.secret}", json={}
    )
    assert (mismatch.status_code, mismatch.json()["error"]) == (400, "channel_type_mismatch")


async def test_webhook_sink_records_deliveries_with_redacted_headers(voice: VoiceWorld) -> None:
    """POST /api/simulator/sink/{name} records body and redacted headers; GET lists them (admin)."""
    posted = await voice.client.post(
        "/api/simulator/sink/demo", json={"hello": "world"}, headers={"Authorization": "Bearer abc"}
    )
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"status": "recorded", "signature_valid": None}
    (record,) = (await voice.client.get("/api/simulator/sink/demo", headers=voice.admin)).json()
    assert record["body"] == {"hello": "world"}
    assert record["headers"]["authorization"] == "<redacted>"
    denied = await voice.client.get("/api/simulator/sink/demo", headers=voice.world.auth("manager"))
    assert denied.status_code == 403


async def test_unloadable_provider_on_callback_is_500_with_an_error_id(
    voice: VoiceWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """A channel whose provider cannot be loaded answers 500 with error_id; the log has the loader message."""
    await voice.set_config(provider="vanished")
    with caplog.at_level(logging.ERROR):
        response = await voice.client.post(
            f"/api/integrations/voice/callback/{voice.channel_id}/{voice.secret}", json={"call_id": "x"}
        )
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert re.fullmatch(r"[0-9a-f]{12}", body["error_id"])
    assert "voice provider not found: vanished" in caplog.text
    assert body["error_id"] in caplog.text


async def test_embedded_scheduler_polls_voice_calls(voice: VoiceWorld) -> None:
    """The embedded SchedulerLoop runs voice_status_poll: a polled status reaches the delivery record."""
    from relay_server.runtime import SchedulerLoop

    await voice.set_config(provider_config={"callbacks": False})
    await voice.fire()
    await voice.deliver()
    (call,) = await voice.calls()
    await voice.sim(call["id"], "status", {"status": "no_answer"})
    loop = SchedulerLoop(voice.world.relay, holder="test")
    await loop.run_once()
    assert (await voice.notification(call["id"])).provider_status == "no_answer"


def test_header_secret_forms() -> None:
    """Bearer, X-Relay-Callback-Secret and X-IncidentRelay-Callback-Secret carry the callback secret."""
    from relay_server.controllers.voice import callback_secret_from_headers

    assert callback_secret_from_headers({"authorization": "Bearer abc"}) == "abc"
    assert callback_secret_from_headers({"x-relay-callback-secret": "def"}) == "def"
    assert callback_secret_from_headers({"x-incidentrelay-callback-secret": "ghi"}) == "ghi"
    assert callback_secret_from_headers({"authorization": "Basic abc"}) is None
    assert callback_secret_from_headers({}) is None
