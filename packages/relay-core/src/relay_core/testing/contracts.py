"""Conformance suites for channels, providers and intake sources (SPEC S7.12).

Each suite is a base class of pytest tests. A plugin's test module subclasses it under a name
starting with ``Test``, sets the class attributes and overrides the hooks that describe its
backend; pytest then runs every inherited test against it::

    class TestNtfyChannel(ChannelContract):
        channel_class = NtfyChannel
        entry_point_name = "example_ntfy"

        @pytest.fixture
        def receiver(self, local_http_server):
            return local_http_server

        def make_config(self, receiver):
            return {"server_url": receiver.url, "topic": "ops"}

The ``receiver`` fixture is whatever stands in for the remote side (usually the
``local_http_server`` fixture); every hook receives it. Hooks that return ``None``/``False``/an
empty sequence by default make the tests that need them skip with a reason, except where a
declared capability makes the check mandatory.

Channel sends are coroutines; the suites run them with :func:`asyncio.run`, so the tests work
without pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.metadata
import importlib.util
import inspect
import re
import shutil
import sys
import threading
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

import attrs
import cattrs.preconf.json
import pluggy
import pytest

from relay_core.domain.errors import IntakeValidationError
from relay_core.domain.model import NormalizedAlert
from relay_core.ports.channels import (
    ActionLinks,
    ChannelCapabilities,
    ChannelRef,
    ChannelSender,
    DeliveryResult,
    GroupView,
    OutboundMessage,
    PermanentDeliveryError,
    Recipient,
    RetryableDeliveryError,
    render_plain_text,
)
from relay_core.sms import (
    SMS_STATUSES,
    BaseSmsProvider,
    SmsCallbackEvent,
    SmsProviderCapabilities,
    SmsSendRequest,
    SmsSendResult,
)
from relay_core.testing.fakes import FakeClock
from relay_core.voice import (
    CALL_STATUSES,
    VOICE_ACTIONS,
    VOICE_CALLBACK_DTMF,
    BaseVoiceProvider,
    VoiceCallCallbackEvent,
    VoiceCallRequest,
    VoiceCallResult,
    VoiceProviderCapabilities,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "INTAKE_NAME_PATTERN",
    "NAME_PATTERN",
    "CallbackSample",
    "ChannelContract",
    "IntakeSample",
    "IntakeSourceContract",
    "SmsProviderContract",
    "VoiceProviderContract",
    "plugin_classes_from_entry_point",
]

ENTRY_POINT_GROUP: Final = "relay"
NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]*$")
INTAKE_NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_-]*$")
"""Intake source names may also contain hyphens: they are URL path segments."""
CONTRACT_NOW: Final = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)
_SECRET_NAME_PARTS: Final = ("token", "secret", "password")

_T = TypeVar("_T")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coro)


def plugin_classes_from_entry_point(entry_point_name: str, hook_name: str) -> list[Any]:
    """Load entry point ``entry_point_name`` of group ``relay`` and call its ``hook_name`` hook.

    Returns:
        The classes every implementation of the hook returned, flattened.
    """
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=entry_point_name)
    assert found, (
        f"no entry point {entry_point_name!r} in group {ENTRY_POINT_GROUP!r}: "
        "is the distribution installed (pip install -e .)?"
    )
    plugin = next(iter(found)).load()
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.register(plugin, name=entry_point_name)
    caller = getattr(manager.hook, hook_name, None)
    assert caller is not None, f"entry point {entry_point_name!r} implements no {hook_name} hook"
    return [cls for returned in caller() for cls in returned]


def _assert_matches(event: object, expected: Mapping[str, Any], what: str) -> None:
    for key, value in expected.items():
        actual = getattr(event, key)
        assert actual == value, f"{what}: {key} is {actual!r}, expected {value!r}"


# --- channels -----------------------------------------------------------------------------


class ChannelContract:
    """Checks a channel class against S6.13.

    Set :attr:`channel_class` (and :attr:`entry_point_name` for an installed plugin); override
    ``receiver``, :meth:`make_config`, :meth:`check_delivery` (assert the exact request) and
    :meth:`arrange_failure`.
    """

    channel_class: ClassVar[type[Any]]
    entry_point_name: ClassVar[str | None] = None
    """The plugin's entry point in group ``relay``; ``None`` skips the entry-point check."""
    event_types: ClassVar[tuple[str, ...]] = (
        "notification",
        "update",
        "reminder",
        "escalation",
        "acknowledged",
        "resolved",
        "test",
    )
    public_base_url: ClassVar[str] = "https://relay.example.test"

    # --- hooks -------------------------------------------------------------------------

    @pytest.fixture
    def receiver(self) -> Any:
        """The remote side the channel talks to; override (e.g. return ``local_http_server``)."""
        return None

    def make_channel(self, receiver: Any) -> Any:
        """A channel instance; the default calls the class without arguments."""
        return self.channel_class()

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        """A valid channel config that delivers to ``receiver``."""
        return {}

    def make_group(self, *, status: str = "firing") -> GroupView:
        """The sample group every message describes."""
        return GroupView(
            id=42,
            title="Disk is full",
            message="/var is 97% full",
            severity="critical",
            status=status,
            team_slug="ops",
            team_name="Operations",
            category="infrastructure",
            assignee="alice",
            labels={"host": "db-1"},
            event_link="https://monitoring.example.test/alerts/1",
            alert_url=f"{self.public_base_url}/alerts/42",
            alert_count=2,
            firing_count=2,
            acknowledged_by="alice" if status == "acknowledged" else None,
            resolved_by="alice" if status == "resolved" else None,
            source="alertmanager",
        )

    def make_recipient(self) -> Recipient | None:
        """The recipient of person-addressed channels (``None`` for room channels)."""
        if not self.channel_class.capabilities.person_addressed:
            return None
        return Recipient(
            user_id=7,
            username="alice",
            display_name="Alice",
            email="alice@example.test",
            phone="+15550001234",
        )

    def make_message(self, receiver: Any, *, event_type: str = "notification") -> OutboundMessage:
        """The message sent by the tests, built from the hooks above."""
        status = {"acknowledged": "acknowledged", "resolved": "resolved"}.get(event_type, "firing")
        group = self.make_group(status=status)
        title = "Test notification from Relay" if event_type == "test" else None
        firing = status == "firing"
        links = ActionLinks(
            acknowledge=f"{self.public_base_url}/actions/ack.token" if firing else None,
            resolve=f"{self.public_base_url}/actions/resolve.token" if status != "resolved" else None,
        )
        return OutboundMessage(
            event_type=event_type,
            intent_id=1001,
            idempotency_key=f"contract:{event_type}:42",
            channel=ChannelRef(
                id=5, name="contract channel", type=self.channel_class.name, config=self.make_config(receiver)
            ),
            group=group,
            recipient=self.make_recipient(),
            text=render_plain_text(event_type, group, title=title),
            action_links=links,
            http=None,
            clock=FakeClock(CONTRACT_NOW),
        )

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        """Assert what ``receiver`` got for ``message``; the default checks nothing more."""

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        """Make the next delivery fail ``retryable`` or ``permanent``; return ``False`` if impossible."""
        return False

    # --- tests -------------------------------------------------------------------------

    def test_name_follows_the_naming_rule(self) -> None:
        """The channel type name matches ^[a-z][a-z0-9_]*$ and a label is set."""
        assert NAME_PATTERN.match(self.channel_class.name), self.channel_class.name
        assert isinstance(self.channel_class.label, str)
        assert self.channel_class.label.strip()

    def test_capabilities_are_declared(self) -> None:
        """The class declares its ChannelCapabilities."""
        assert isinstance(self.channel_class.capabilities, ChannelCapabilities)

    def test_satisfies_the_channel_sender_protocol(self, receiver: Any) -> None:
        """An instance has the attributes and coroutines of ChannelSender."""
        channel = self.make_channel(receiver)
        assert isinstance(channel, ChannelSender)
        assert inspect.iscoroutinefunction(channel.send)
        assert inspect.iscoroutinefunction(channel.update)

    def test_config_class_structures_the_sample_config(self, receiver: Any) -> None:
        """Config is an attrs class and the sample config structures into it without extra keys."""
        config_class = self.channel_class.Config
        assert attrs.has(config_class), "Config must be an attrs class"
        converter = cattrs.preconf.json.make_converter(forbid_extra_keys=True)
        converter.structure(dict(self.make_config(receiver)), config_class)

    def test_secret_like_config_fields_are_marked_secret(self) -> None:
        """Config fields named like tokens, secrets or passwords carry metadata secret=True."""
        unmarked = [
            field.name
            for field in attrs.fields(self.channel_class.Config)
            if any(part in field.name.lower() for part in _SECRET_NAME_PARTS)
            and field.metadata.get("secret") is not True
        ]
        assert not unmarked, f"mark these fields secret (metadata={{'secret': True}}): {unmarked}"

    def test_send_delivers_a_notification(self, receiver: Any) -> None:
        """send() returns a DeliveryResult naming the provider, and the receiver got the message."""
        message = self.make_message(receiver)
        result = _run(self.make_channel(receiver).send(message))
        assert isinstance(result, DeliveryResult)
        assert result.provider
        assert not result.skipped
        self.check_delivery(receiver, message, result)

    def test_send_handles_every_event_type(self, receiver: Any) -> None:
        """send() succeeds for each event type a channel can be given."""
        channel = self.make_channel(receiver)
        for event_type in self.event_types:
            result = _run(channel.send(self.make_message(receiver, event_type=event_type)))
            assert isinstance(result, DeliveryResult), event_type

    def test_update_edits_an_earlier_delivery(self, receiver: Any) -> None:
        """A channel that supports updates edits the earlier delivery and returns a result."""
        if not self.channel_class.capabilities.supports_update:
            pytest.skip("the channel does not declare supports_update")
        channel = self.make_channel(receiver)
        previous = _run(channel.send(self.make_message(receiver)))
        result = _run(channel.update(self.make_message(receiver, event_type="acknowledged"), previous))
        assert isinstance(result, DeliveryResult)
        assert not result.skipped

    def test_retryable_failure_raises_retryable_delivery_error(self, receiver: Any) -> None:
        """A failure that may pass later raises RetryableDeliveryError."""
        if not self.arrange_failure(receiver, "retryable"):
            pytest.skip("arrange_failure() cannot simulate a retryable failure")
        with pytest.raises(RetryableDeliveryError):
            _run(self.make_channel(receiver).send(self.make_message(receiver)))

    def test_permanent_failure_raises_permanent_delivery_error(self, receiver: Any) -> None:
        """A failure retrying cannot fix raises PermanentDeliveryError."""
        if not self.arrange_failure(receiver, "permanent"):
            pytest.skip("arrange_failure() cannot simulate a permanent failure")
        with pytest.raises(PermanentDeliveryError):
            _run(self.make_channel(receiver).send(self.make_message(receiver)))

    def test_registered_through_the_entry_point(self) -> None:
        """The installed entry point's relay_register_channels hook returns the class."""
        if self.entry_point_name is None:
            pytest.skip("entry_point_name is not set")
        classes = plugin_classes_from_entry_point(self.entry_point_name, "relay_register_channels")
        assert self.channel_class in classes


# --- voice and SMS providers --------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CallbackSample:
    """A provider callback as Relay would receive it, and the first event it must produce."""

    payload: Any
    expected: Mapping[str, Any] = attrs.field(factory=dict)
    """Attributes of the first returned event, e.g. ``{"call_id": "c1", "status": "answered"}``."""
    headers: Mapping[str, str] | None = None
    raw_body: bytes | None = None
    query_args: Mapping[str, Any] | None = None


class _ProviderContract:
    """What voice and SMS provider suites share."""

    provider_class: ClassVar[type[Any]]
    required_config_keys: ClassVar[tuple[str, ...]] = ()
    """Keys ``validate_config({})`` must name; empty skips that check."""
    entry_point_name: ClassVar[str | None] = None
    """The plugin's entry point in group ``relay``; ``None`` skips the entry-point check."""
    load_from_file: ClassVar[bool] = True
    """Whether the provider is also meant to be dropped into a providers directory as one file."""
    provider_file: ClassVar[str | Path | None] = None
    """The module file defining ``Provider``; by default the file the class was defined in."""
    hang_deadline_seconds: ClassVar[float] = 15.0

    _kind: ClassVar[str]
    _base_class: ClassVar[type[Any]]
    _hook_name: ClassVar[str]

    @pytest.fixture
    def receiver(self) -> Any:
        """The remote side the provider talks to; override (e.g. return ``local_http_server``)."""
        return None

    def make_config(self, receiver: Any) -> dict[str, Any]:
        """A valid provider config that talks to ``receiver``."""
        return {}

    def make_provider(self, receiver: Any) -> Any:
        """A provider instance built with :meth:`make_config`."""
        return self.provider_class(self.make_config(receiver))

    def timeout_config(self, receiver: Any) -> dict[str, Any] | None:
        """A config whose API never answers and whose timeout is short; ``None`` skips the check."""
        return None

    def arrange_failure(self, receiver: Any) -> bool:
        """Make the provider API answer an error; return ``False`` if impossible."""
        return False

    def bad_signature_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        """Callbacks whose signature is wrong; each must make ``parse_callback`` raise."""
        return ()

    def _send(self, provider: Any, receiver: Any) -> Any:
        raise NotImplementedError

    # --- tests -------------------------------------------------------------------------

    def test_name_follows_the_naming_rule(self) -> None:
        """The provider name matches ^[a-z][a-z0-9_]*$ and is not the base name."""
        name = self.provider_class.name
        assert isinstance(name, str)
        assert NAME_PATTERN.match(name), name
        assert name != "base"

    def test_subclasses_the_base_provider(self) -> None:
        """The class subclasses the provider base class of relay_core."""
        assert issubclass(self.provider_class, self._base_class)

    def test_loads_from_a_provider_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The module file, copied alone into a providers directory, defines a class named Provider."""
        if not self.load_from_file:
            pytest.skip("load_from_file is False")
        assert self.provider_class.__name__ == "Provider", "the class must be named exactly Provider"
        source = self.provider_file or inspect.getsourcefile(self.provider_class)
        assert source, "cannot locate the provider's module file; set provider_file"
        name = self.provider_class.name
        target = tmp_path / f"{name}.py"
        shutil.copyfile(source, target)
        module_name = f"relay_{self._kind}_provider_{name}"
        spec = importlib.util.spec_from_file_location(module_name, target)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, module_name, module)
        spec.loader.exec_module(module)
        loaded = getattr(module, "Provider", None)
        assert isinstance(loaded, type), f"{target.name} defines no class Provider"
        assert issubclass(loaded, self._base_class)
        assert getattr(loaded, "name", None) == name

    def test_registered_through_the_entry_point(self) -> None:
        """The installed entry point's registration hook returns the class."""
        if self.entry_point_name is None:
            pytest.skip("entry_point_name is not set")
        classes = plugin_classes_from_entry_point(self.entry_point_name, self._hook_name)
        assert self.provider_class in classes

    def test_validate_config_rejects_empty_config_naming_the_keys(self) -> None:
        """validate_config({}) raises RuntimeError whose message names every required key."""
        if not self.required_config_keys:
            pytest.skip("required_config_keys is empty")
        with pytest.raises(RuntimeError) as raised:
            self.provider_class.validate_config({})
        for key in self.required_config_keys:
            assert key in str(raised.value), f"{key!r} missing from {str(raised.value)!r}"

    def test_validate_config_accepts_the_sample_config(self, receiver: Any) -> None:
        """validate_config() accepts the config the other tests use."""
        self.provider_class.validate_config(self.make_config(receiver))

    def test_gives_up_when_the_provider_hangs(self, receiver: Any) -> None:
        """Against an API that never answers, the provider raises within its timeout."""
        config = self.timeout_config(receiver)
        if config is None:
            pytest.skip("timeout_config() returns None")
        provider = self.provider_class(config)
        outcome: list[BaseException | object] = []

        def attempt() -> None:
            try:
                outcome.append(self._send(provider, receiver))
            except BaseException as exc:  # the outcome is asserted below
                outcome.append(exc)

        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(self.hang_deadline_seconds)
        assert not worker.is_alive(), f"still waiting after {self.hang_deadline_seconds} s: set a timeout"
        assert outcome, "the provider returned nothing"
        assert isinstance(outcome[0], Exception), f"a hanging API must raise, not return {outcome[0]!r}"

    def test_provider_errors_raise(self, receiver: Any) -> None:
        """An error answer from the provider API raises instead of faking success."""
        if not self.arrange_failure(receiver):
            pytest.skip("arrange_failure() cannot simulate a provider error")
        provider = self.make_provider(receiver)
        with pytest.raises(Exception):  # noqa: B017  # any exception class is acceptable (S7.1)
            self._send(provider, receiver)

    def test_bad_signatures_raise(self, receiver: Any) -> None:
        """parse_callback raises for each callback with a bad signature."""
        samples = self.bad_signature_samples(receiver)
        if not samples:
            pytest.skip("bad_signature_samples() is empty")
        provider = self.make_provider(receiver)
        for sample in samples:
            with pytest.raises(Exception):  # noqa: B017  # the text is the provider's
                provider.parse_callback(sample.payload, sample.headers, sample.raw_body, sample.query_args)

    def _check_samples(
        self, receiver: Any, samples: Sequence[CallbackSample], event_class: type[Any], what: str
    ) -> list[Any]:
        provider = self.make_provider(receiver)
        firsts = []
        for sample in samples:
            events = provider.parse_callback(
                sample.payload, sample.headers, sample.raw_body, sample.query_args
            )
            assert isinstance(events, list), f"{what}: parse_callback must return a list"
            assert events, f"{what}: no event for {sample.payload!r}"
            assert all(isinstance(event, event_class) for event in events)
            _assert_matches(events[0], sample.expected, what)
            firsts.append(events[0])
        return firsts


class VoiceProviderContract(_ProviderContract):
    """Checks a voice provider against S7.1–S7.7 (the list in S7.12).

    Set :attr:`provider_class`, :attr:`required_config_keys`, :attr:`entry_point_name`; override
    ``receiver``, :meth:`make_config`, :meth:`check_call`, the ``*_samples`` hooks,
    :meth:`timeout_config`, :meth:`arrange_failure` and :meth:`arrange_poll`.
    """

    provider_class: ClassVar[type[BaseVoiceProvider]]
    _kind = "voice"
    _base_class = BaseVoiceProvider
    _hook_name = "relay_register_voice_providers"

    def make_request(self, receiver: Any) -> VoiceCallRequest:
        """The call the tests place."""
        return VoiceCallRequest(
            phone="+15550001234",
            text=(
                "Relay alert 42. Disk is full. Severity critical. Press 1 to acknowledge. Press 2 to resolve."
            ),
            alert_id=42,
            event_type="notification",
            callback_url="https://relay.example.test/api/integrations/voice/callback/5/s3cr3t",
            callback_secret="s3cr3t",  # noqa: S106  # a sample, not a credential
            severity="critical",
            title="Disk is full",
            message="/var is 97% full",
            assignee="alice",
            team="ops",
            action_hints={"1": "acknowledge", "2": "resolve"},
            metadata={"channel_id": 5, "channel_name": "ops voice", "channel_type": "voice_call"},
        )

    def check_call(self, receiver: Any, request: VoiceCallRequest, result: VoiceCallResult) -> None:
        """Assert what ``receiver`` got for ``request``; the default checks nothing more."""

    def status_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        """Status callbacks and their expected events (required with ``status_callback``)."""
        return ()

    def dtmf_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        """Keypad callbacks and their expected events (required with ``dtmf_callback``)."""
        return ()

    def error_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        """Error callbacks and their expected events."""
        return ()

    def arrange_poll(self, receiver: Any, call_id: str) -> str | None:
        """Make the API report a status for ``call_id`` and return it (required with ``status_polling``)."""
        return None

    def _send(self, provider: Any, receiver: Any) -> Any:
        return provider.place_call(self.make_request(receiver))

    def test_capabilities_are_declared(self) -> None:
        """The class declares its VoiceProviderCapabilities."""
        assert isinstance(self.provider_class.capabilities, VoiceProviderCapabilities)

    def test_place_call_returns_a_call_id(self, receiver: Any) -> None:
        """place_call returns a VoiceCallResult with a call_id and a known status."""
        request = self.make_request(receiver)
        result = self.make_provider(receiver).place_call(request)
        assert isinstance(result, VoiceCallResult)
        assert isinstance(result.call_id, str)
        assert result.call_id
        assert result.status in CALL_STATUSES, result.status
        assert isinstance(result.raw, dict)
        self.check_call(receiver, request, result)

    def test_status_callbacks_map_to_events(self, receiver: Any) -> None:
        """Each status sample becomes the expected status event."""
        samples = self.status_samples(receiver)
        if not samples:
            if self.provider_class.capabilities.status_callback:
                pytest.fail("the provider declares status_callback but status_samples() is empty")
            pytest.skip("no status callbacks")
        for event in self._check_samples(receiver, samples, VoiceCallCallbackEvent, "status sample"):
            assert event.call_id
            assert event.status is None or event.status in CALL_STATUSES, event.status

    def test_dtmf_callbacks_map_to_events(self, receiver: Any) -> None:
        """Each keypad sample becomes the expected dtmf event."""
        samples = self.dtmf_samples(receiver)
        if not samples:
            if self.provider_class.capabilities.dtmf_callback:
                pytest.fail("the provider declares dtmf_callback but dtmf_samples() is empty")
            pytest.skip("no dtmf callbacks")
        for event in self._check_samples(receiver, samples, VoiceCallCallbackEvent, "dtmf sample"):
            assert event.event_type == VOICE_CALLBACK_DTMF

    def test_digit_and_action_pass_through(self, receiver: Any) -> None:
        """Keypad events carry the pressed digit as a string and a normalized action or none."""
        samples = self.dtmf_samples(receiver)
        if not samples:
            pytest.skip("no dtmf callbacks")
        for event in self._check_samples(receiver, samples, VoiceCallCallbackEvent, "dtmf sample"):
            assert event.digit is not None or event.action is not None, (
                "a dtmf event needs a digit or an action"
            )
            assert event.digit is None or isinstance(event.digit, str)
            assert event.action is None or event.action in VOICE_ACTIONS, event.action

    def test_error_callbacks_map_to_events(self, receiver: Any) -> None:
        """Each error sample becomes the expected error event."""
        samples = self.error_samples(receiver)
        if not samples:
            pytest.skip("error_samples() is empty")
        for event in self._check_samples(receiver, samples, VoiceCallCallbackEvent, "error sample"):
            assert event.event_type == "error"

    def test_polling_when_declared(self, receiver: Any) -> None:
        """A provider declaring status_polling answers get_call_status with the API's status."""
        if not self.provider_class.capabilities.status_polling:
            pytest.skip("the provider does not declare status_polling")
        provider = self.make_provider(receiver)
        placed = provider.place_call(self.make_request(receiver))
        assert placed.call_id
        expected = self.arrange_poll(receiver, placed.call_id)
        assert expected is not None, "the provider declares status_polling but arrange_poll() returns None"
        polled = provider.get_call_status(placed.call_id)
        assert isinstance(polled, VoiceCallResult)
        assert polled.status == expected
        assert polled.status in CALL_STATUSES


class SmsProviderContract(_ProviderContract):
    """Checks an SMS provider against S7.9, the same way as :class:`VoiceProviderContract`."""

    provider_class: ClassVar[type[BaseSmsProvider]]
    _kind = "sms"
    _base_class = BaseSmsProvider
    _hook_name = "relay_register_sms_providers"

    def make_request(self, receiver: Any) -> SmsSendRequest:
        """The message the tests send."""
        return SmsSendRequest(
            phone="+15550001234",
            text="Relay critical #42: Disk is full. firing. https://relay.example.test/alerts/42",
            alert_id=42,
            event_type="notification",
            callback_url="https://relay.example.test/api/integrations/sms/callback/6/s3cr3t",
            callback_secret="s3cr3t",  # noqa: S106  # a sample, not a credential
            metadata={"channel_id": 6, "channel_name": "ops sms", "channel_type": "sms"},
        )

    def check_send(self, receiver: Any, request: SmsSendRequest, result: SmsSendResult) -> None:
        """Assert what ``receiver`` got for ``request``; the default checks nothing more."""

    def status_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        """Delivery-status callbacks (required with ``delivery_callback``)."""
        return ()

    def reply_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        """Inbound replies (required with ``inbound_replies``)."""
        return ()

    def error_samples(self, receiver: Any) -> Sequence[CallbackSample]:
        """Error callbacks."""
        return ()

    def arrange_poll(self, receiver: Any, message_id: str) -> str | None:
        """Make the API report a status for ``message_id`` and return it (required with polling)."""
        return None

    def _send(self, provider: Any, receiver: Any) -> Any:
        return provider.send_sms(self.make_request(receiver))

    def test_capabilities_are_declared(self) -> None:
        """The class declares its SmsProviderCapabilities."""
        assert isinstance(self.provider_class.capabilities, SmsProviderCapabilities)

    def test_send_sms_returns_a_message_id(self, receiver: Any) -> None:
        """send_sms returns an SmsSendResult with a message_id and a known status."""
        request = self.make_request(receiver)
        result = self.make_provider(receiver).send_sms(request)
        assert isinstance(result, SmsSendResult)
        assert isinstance(result.message_id, str)
        assert result.message_id
        assert result.status in SMS_STATUSES, result.status
        assert isinstance(result.raw, dict)
        self.check_send(receiver, request, result)

    def test_status_callbacks_map_to_events(self, receiver: Any) -> None:
        """Each delivery-status sample becomes the expected status event."""
        samples = self.status_samples(receiver)
        if not samples:
            if self.provider_class.capabilities.delivery_callback:
                pytest.fail("the provider declares delivery_callback but status_samples() is empty")
            pytest.skip("no status callbacks")
        for event in self._check_samples(receiver, samples, SmsCallbackEvent, "status sample"):
            assert event.message_id
            assert event.status is None or event.status in SMS_STATUSES, event.status

    def test_reply_callbacks_map_to_events(self, receiver: Any) -> None:
        """Each reply sample becomes a reply event carrying the text."""
        samples = self.reply_samples(receiver)
        if not samples:
            if self.provider_class.capabilities.inbound_replies:
                pytest.fail("the provider declares inbound_replies but reply_samples() is empty")
            pytest.skip("no reply callbacks")
        for event in self._check_samples(receiver, samples, SmsCallbackEvent, "reply sample"):
            assert event.event_type == "reply"
            assert event.text is not None

    def test_error_callbacks_map_to_events(self, receiver: Any) -> None:
        """Each error sample becomes the expected error event."""
        samples = self.error_samples(receiver)
        if not samples:
            pytest.skip("error_samples() is empty")
        for event in self._check_samples(receiver, samples, SmsCallbackEvent, "error sample"):
            assert event.event_type == "error"

    def test_polling_when_declared(self, receiver: Any) -> None:
        """A provider declaring status_polling answers get_message_status with the API's status."""
        if not self.provider_class.capabilities.status_polling:
            pytest.skip("the provider does not declare status_polling")
        provider = self.make_provider(receiver)
        sent = provider.send_sms(self.make_request(receiver))
        assert sent.message_id
        expected = self.arrange_poll(receiver, sent.message_id)
        assert expected is not None, "the provider declares status_polling but arrange_poll() returns None"
        polled = provider.get_message_status(sent.message_id)
        assert isinstance(polled, SmsSendResult)
        assert polled.status == expected
        assert polled.status in SMS_STATUSES


# --- intake sources -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class IntakeSample:
    """An intake request body and the alerts it must produce."""

    body: bytes
    expected: Sequence[Mapping[str, Any]] = ()
    """Attributes of each produced NormalizedAlert, in order; the count must match."""
    headers: Mapping[str, str] = attrs.field(factory=lambda: {"content-type": "application/json"})
    query: Mapping[str, str] = attrs.field(factory=dict)


class IntakeSourceContract:
    """Checks an intake source class (``relay_register_intake_sources``, S7.12).

    Set :attr:`source_class` (and :attr:`entry_point_name`); override :meth:`valid_samples` and
    :meth:`invalid_samples`.
    """

    source_class: ClassVar[type[Any]]
    entry_point_name: ClassVar[str | None] = None

    def make_source(self) -> Any:
        """A source instance; the default calls the class without arguments."""
        return self.source_class()

    def valid_samples(self) -> Sequence[IntakeSample]:
        """Bodies the source accepts, with the alerts they produce (at least one)."""
        return ()

    def invalid_samples(self) -> Sequence[IntakeSample]:
        """Bodies the source must reject with IntakeValidationError."""
        return (IntakeSample(body=b""), IntakeSample(body=b"{not json"))

    def test_name_follows_the_naming_rule(self) -> None:
        """The source name matches ^[a-z][a-z0-9_-]*$."""
        assert INTAKE_NAME_PATTERN.match(self.source_class.name), self.source_class.name

    def test_declares_paths_content_types_and_grouping(self) -> None:
        """path_aliases, content_types and default_group_by are sequences of strings."""
        for attribute in ("path_aliases", "content_types", "default_group_by"):
            value = getattr(self.source_class, attribute)
            assert not isinstance(value, str), f"{attribute} must be a sequence, not a string"
            assert all(isinstance(item, str) for item in value), attribute
        assert self.source_class.content_types, "content_types must not be empty"

    def test_verify_is_callable_when_present(self) -> None:
        """A signature-authenticated source exposes verify(headers, body, route) as a callable."""
        verify = getattr(self.make_source(), "verify", None)
        if verify is None:
            pytest.skip("the source has no verify()")
        assert callable(verify)

    def test_parses_valid_samples_into_normalized_alerts(self) -> None:
        """Each valid sample becomes the expected list of NormalizedAlert values."""
        samples = self.valid_samples()
        assert samples, "valid_samples() must return at least one sample"
        source = self.make_source()
        for sample in samples:
            alerts = source.parse(sample.body, sample.headers, sample.query)
            assert isinstance(alerts, list)
            assert all(isinstance(alert, NormalizedAlert) for alert in alerts)
            assert len(alerts) == len(sample.expected), (
                f"{len(alerts)} alerts, expected {len(sample.expected)}"
            )
            for alert, expected in zip(alerts, sample.expected, strict=True):
                _assert_matches(alert, expected, "parsed alert")

    def test_parsing_is_repeatable(self) -> None:
        """Parsing the same sample twice gives equal alerts (no hidden state, no wall clock)."""
        source = self.make_source()
        for sample in self.valid_samples():
            first = source.parse(sample.body, sample.headers, sample.query)
            second = source.parse(sample.body, sample.headers, sample.query)
            assert first == second

    def test_rejects_invalid_samples_with_details(self) -> None:
        """Each invalid sample raises IntakeValidationError with a details list."""
        source = self.make_source()
        for sample in self.invalid_samples():
            with pytest.raises(IntakeValidationError) as raised:
                source.parse(sample.body, sample.headers, sample.query)
            assert isinstance(raised.value.details, list)

    def test_registered_through_the_entry_point(self) -> None:
        """The installed entry point's relay_register_intake_sources hook returns the class."""
        if self.entry_point_name is None:
            pytest.skip("entry_point_name is not set")
        classes = plugin_classes_from_entry_point(self.entry_point_name, "relay_register_intake_sources")
        assert self.source_class in classes
