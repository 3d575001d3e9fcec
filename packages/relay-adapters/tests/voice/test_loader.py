"""The voice/SMS provider loader: naming, lookup order, files, IncidentRelay imports, ${ENV} (S7.2, S7.3)."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from relay_adapters.voice import stub
from relay_adapters.voice.loader import (
    SMS,
    ProviderLoader,
    ProviderLoadError,
    ProviderNotFoundError,
    install_compat_alias,
    make_sms_loader,
    make_voice_loader,
    normalize_provider_name,
    substitute_env,
)
from relay_core.sms import BaseSmsProvider
from relay_core.voice import BaseVoiceProvider, VoiceCallRequest, VoiceCallResult

LOGGER = "relay.voice.loader"

INCIDENTRELAY_MANGO = '''
from app.notifiers.voice.base import (
    BaseVoiceProvider,
    VoiceCallCallbackEvent,
    VoiceCallRequest,
    VoiceCallResult,
    VoiceProviderCapabilities,
)


class Provider(BaseVoiceProvider):
    """Unchanged IncidentRelay provider module."""

    name = "mango"

    capabilities = VoiceProviderCapabilities(tts=True, status_callback=True, dtmf_callback=True)

    @classmethod
    def validate_config(cls, config):
        missing = [item for item in ["api_url", "api_token"] if not config.get(item)]
        if missing:
            raise RuntimeError(f"mango config requires: {', '.join(missing)}")

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        return VoiceCallResult(call_id="mango-1", status="queued", raw={"to": request.phone[-4:]})

    def parse_callback(self, payload, headers=None, raw_body=None, query_args=None):
        return [
            VoiceCallCallbackEvent(
                call_id=str(payload["call_id"]),
                event_type=payload.get("event_type", "status"),
                status=payload.get("status"),
                digit=payload.get("digit"),
                raw=payload,
            )
        ]
'''

RELAY_STYLE = """
from relay_core.voice import BaseVoiceProvider, VoiceCallResult


class Provider(BaseVoiceProvider):
    name = "{name}"

    def place_call(self, request):
        return VoiceCallResult(call_id="{name}-call")
"""


@pytest.fixture(autouse=True)
def _restore_modules() -> Iterator[None]:
    """Drop the provider modules and import aliases a test added to sys.modules."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name == "app" or name.startswith(("app.", "relay_voice_provider_", "relay_sms_provider_")):
            del sys.modules[name]


def _write(directory: Path, filename: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(textwrap.dedent(source))
    return path


def _request() -> VoiceCallRequest:
    return VoiceCallRequest(phone="+15550001234", text="Alert", alert_id=1, event_type="test")


class PluginVoice(BaseVoiceProvider):
    name: ClassVar[str] = "acme"

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        return VoiceCallResult(call_id="acme-1")


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", None])
def test_missing_name_is_reported(name: str | None) -> None:
    """An empty provider name gives "voice provider name is missing"."""
    with pytest.raises(ProviderLoadError, match=r"^voice provider name is missing$"):
        normalize_provider_name(name)


@pytest.mark.parametrize(
    "name", ["mango-provider", "my.provider", "1mango", "../etc/passwd", "provider backup"]
)
def test_invalid_name_is_reported(name: str) -> None:
    """A name outside ^[a-z][a-z0-9_]*$ gives the letters-numbers-underscore message."""
    with pytest.raises(
        ProviderLoadError, match=r"^voice provider name must contain only letters, numbers and underscore$"
    ):
        make_voice_loader().load(name)


def test_names_are_lower_cased() -> None:
    """Names are trimmed and lower-cased before the rule applies."""
    assert normalize_provider_name("  Internal_PBX ") == "internal_pbx"


def test_sms_messages_say_sms() -> None:
    """The SMS loader words its messages for SMS providers."""
    with pytest.raises(ProviderLoadError, match=r"^sms provider name is missing$"):
        make_sms_loader().load("")
    with pytest.raises(ProviderNotFoundError, match=r"^sms provider not found: nope$"):
        make_sms_loader().load("nope")


# --- lookup order ---------------------------------------------------------------------------


def test_stub_is_built_in() -> None:
    """Without a providers directory the built-in stub is still found."""
    assert make_voice_loader().load("stub") is stub.Provider
    assert make_sms_loader().load("STUB") is stub.SmsProvider


def test_plugin_classes_are_found_by_name() -> None:
    """A class registered by a plugin is found under its name, case-insensitively."""
    loader = make_voice_loader(plugins={"Acme": PluginVoice})
    assert loader.load("acme") is PluginVoice


def test_built_ins_come_before_plugins_and_plugins_before_files(tmp_path: Path) -> None:
    """A built-in shadows a plugin of the same name, and a plugin shadows a file."""
    _write(tmp_path, "acme.py", RELAY_STYLE.format(name="acme"))
    _write(tmp_path, "stub.py", RELAY_STYLE.format(name="stub"))
    loader = make_voice_loader(plugins={"stub": PluginVoice, "acme": PluginVoice}, providers_dir=tmp_path)
    assert loader.load("stub") is stub.Provider
    assert loader.load("acme") is PluginVoice


def test_plugin_class_must_subclass_the_base() -> None:
    """A plugin entry that is not a BaseVoiceProvider subclass is refused."""
    loader = make_voice_loader(plugins={"odd": object})
    with pytest.raises(ProviderLoadError, match="odd from a plugin must subclass BaseVoiceProvider"):
        loader.load("odd")


def test_explicit_builtins_replace_the_defaults() -> None:
    """Built-ins passed in (e.g. with the simulator) replace the default stub-only set."""
    loader = make_voice_loader(builtins={"simulator": PluginVoice})
    assert loader.load("simulator") is PluginVoice
    with pytest.raises(ProviderNotFoundError):
        loader.load("stub")


# --- files ----------------------------------------------------------------------------------


def test_file_provider_is_imported_under_its_module_name(tmp_path: Path) -> None:
    """<providers_dir>/<name>.py is imported as relay_voice_provider_<name>."""
    _write(tmp_path, "internal_pbx.py", RELAY_STYLE.format(name="internal_pbx"))
    cls = make_voice_loader(providers_dir=tmp_path).load("Internal_PBX")
    assert cls.__module__ == "relay_voice_provider_internal_pbx"
    assert cls.__name__ == "Provider"
    assert cls().place_call(_request()).call_id == "internal_pbx-call"


def test_incidentrelay_module_loads_unchanged(tmp_path: Path) -> None:
    """A module importing from app.notifiers.voice.base loads and works against relay_core.voice."""
    _write(tmp_path, "mango.py", INCIDENTRELAY_MANGO)
    cls = make_voice_loader(providers_dir=tmp_path).load("mango")
    assert issubclass(cls, BaseVoiceProvider)
    provider = cls({"api_url": "https://mango.example.test", "api_token": "t"})
    result = provider.place_call(_request())
    assert isinstance(result, VoiceCallResult)
    assert result.call_id == "mango-1"
    event = provider.parse_callback({"call_id": "mango-1", "event_type": "dtmf", "digit": "1"})[0]
    assert (event.event_type, event.digit) == ("dtmf", "1")
    with pytest.raises(RuntimeError, match=r"^mango config requires: api_url, api_token$"):
        cls.validate_config({})


def test_incidentrelay_alias_is_skipped_when_a_real_app_package_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an importable app package the alias is not installed and the IncidentRelay module fails."""
    _write(tmp_path / "site" / "app", "__init__.py", "REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    _write(tmp_path / "providers", "mango.py", INCIDENTRELAY_MANGO)
    assert install_compat_alias() is False
    with pytest.raises(ProviderLoadError, match=r"^cannot load voice provider: mango$"):
        make_voice_loader(providers_dir=tmp_path / "providers").load("mango")
    assert getattr(sys.modules.get("app"), "REAL", None) is True


def test_incidentrelay_alias_can_be_disabled(tmp_path: Path) -> None:
    """With compat_imports off the alias is not installed and the module cannot import it."""
    _write(tmp_path, "mango.py", INCIDENTRELAY_MANGO)
    with pytest.raises(ProviderLoadError, match=r"^cannot load voice provider: mango$"):
        make_voice_loader(providers_dir=tmp_path, compat_imports=False).load("mango")
    assert "app.notifiers.voice.base" not in sys.modules


def test_sms_alias_points_at_relay_core_sms(tmp_path: Path) -> None:
    """SMS modules may import from app.notifiers.sms.base and load as relay_sms_provider_<name>."""
    source = """
    from app.notifiers.sms.base import BaseSmsProvider, SmsSendResult

    class Provider(BaseSmsProvider):
        name = "textco"

        def send_sms(self, request):
            return SmsSendResult(message_id="t-1")
    """
    _write(tmp_path, "textco.py", source)
    cls = make_sms_loader(providers_dir=tmp_path).load("textco")
    assert issubclass(cls, BaseSmsProvider)
    assert cls.__module__ == "relay_sms_provider_textco"


def test_missing_file_is_not_found_with_a_logged_search_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An absent provider gives "voice provider not found" and logs where it looked and the restart hint."""
    with (
        caplog.at_level(logging.ERROR, logger=LOGGER),
        pytest.raises(ProviderNotFoundError, match=r"^voice provider not found: mango$"),
    ):
        make_voice_loader(providers_dir=tmp_path).load("mango")
    logged = caplog.text
    assert str(tmp_path / "mango.py") in logged
    assert "built-ins (simulator, stub)" in logged
    assert "restart after adding a file" in logged


def test_module_without_provider_class_is_refused(tmp_path: Path) -> None:
    """A module whose class is not named Provider gives the must-define message."""
    _write(
        tmp_path,
        "mango.py",
        RELAY_STYLE.format(name="mango").replace("class Provider", "class MangoProvider"),
    )
    with pytest.raises(
        ProviderLoadError, match=r"^voice provider mango must define Provider\(BaseVoiceProvider\)$"
    ):
        make_voice_loader(providers_dir=tmp_path).load("mango")


def test_provider_not_subclassing_the_base_is_refused(tmp_path: Path) -> None:
    """A Provider class that does not subclass BaseVoiceProvider gives the must-define message."""
    _write(tmp_path, "mango.py", "class Provider:\n    name = 'mango'\n")
    with pytest.raises(ProviderLoadError, match=r"must define Provider\(BaseVoiceProvider\)$"):
        make_voice_loader(providers_dir=tmp_path).load("mango")


def test_sms_module_must_define_an_sms_provider(tmp_path: Path) -> None:
    """The SMS must-define message names BaseSmsProvider."""
    _write(tmp_path, "mango.py", RELAY_STYLE.format(name="mango"))
    with pytest.raises(
        ProviderLoadError, match=r"^sms provider mango must define Provider\(BaseSmsProvider\)$"
    ):
        make_sms_loader(providers_dir=tmp_path).load("mango")


def test_import_error_is_reported_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A module that raises on import gives "cannot load" and the log carries the exception."""
    _write(tmp_path, "broken.py", "import relay_no_such_module_xyz\n")
    with (
        caplog.at_level(logging.ERROR, logger=LOGGER),
        pytest.raises(ProviderLoadError, match=r"^cannot load voice provider: broken$"),
    ):
        make_voice_loader(providers_dir=tmp_path).load("broken")
    assert "relay_no_such_module_xyz" in caplog.text
    assert "relay_voice_provider_broken" not in sys.modules


def test_symlink_outside_the_directory_is_refused(tmp_path: Path) -> None:
    """A provider file resolving outside providers_dir is refused."""
    outside = _write(tmp_path / "elsewhere", "evil.py", RELAY_STYLE.format(name="evil"))
    providers = tmp_path / "providers"
    providers.mkdir()
    (providers / "evil.py").symlink_to(outside)
    with pytest.raises(ProviderLoadError, match=r"^voice provider path is outside providers_dir$"):
        make_voice_loader(providers_dir=providers).load("evil")


def test_classes_are_loaded_once(tmp_path: Path) -> None:
    """A loaded class is kept: editing the file has no effect until restart."""
    path = _write(tmp_path, "mango.py", RELAY_STYLE.format(name="mango"))
    loader = make_voice_loader(providers_dir=tmp_path)
    first = loader.load("mango")
    path.write_text("raise RuntimeError('changed')\n")
    assert loader.load("MANGO") is first
    assert make_voice_loader(providers_dir=tmp_path).load("mango") is first


def test_scan_logs_ignored_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Invalid file names and shadowed files are logged and left out of the scan."""
    for filename in ("mango.py", "mango-provider.py", "my.provider.py", "stub.py", "__init__.py"):
        _write(tmp_path, filename, RELAY_STYLE.format(name="x"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        found = make_voice_loader(providers_dir=tmp_path).scan()
    assert found == {"mango": tmp_path / "mango.py"}
    messages = [record.getMessage() for record in caplog.records]
    assert sum("voice provider file ignored: invalid name" in message for message in messages) == 2
    assert any("stub.py is shadowed by a built-in" in message for message in messages)


def test_sources_list_every_provider_with_its_origin(tmp_path: Path) -> None:
    """sources() shows built-ins, plugins and files with where each comes from."""
    path = _write(tmp_path, "mango.py", RELAY_STYLE.format(name="mango"))
    loader = make_voice_loader(plugins={"acme": PluginVoice}, providers_dir=tmp_path)
    assert loader.sources() == {
        "stub": "builtin",
        "simulator": "builtin",
        "acme": "plugin",
        "mango": str(path),
    }


def test_missing_directory_finds_nothing(tmp_path: Path) -> None:
    """A providers_dir that does not exist scans empty and finds no file provider."""
    loader = ProviderLoader(SMS, providers_dir=tmp_path / "absent")
    assert loader.scan() == {}
    with pytest.raises(ProviderNotFoundError):
        loader.load("mango")


# --- ${ENV} and create() --------------------------------------------------------------------


def test_substitute_env_replaces_whole_string_values_recursively() -> None:
    """${NAME} values are replaced anywhere in nested mappings and lists; other strings stay."""
    config = {
        "api_token": "${VOICE_API_TOKEN}",
        "nested": {"list": ["${REGION}", "x-${REGION}", 3], "pair": ("${ REGION }",)},
        "literal": "prefix ${REGION}",
    }
    result = substitute_env(config, {"VOICE_API_TOKEN": "t0k", "REGION": "eu"})
    assert result == {
        "api_token": "t0k",
        "nested": {"list": ["eu", "x-${REGION}", 3], "pair": ("eu",)},
        "literal": "prefix ${REGION}",
    }
    assert config["api_token"] == "${VOICE_API_TOKEN}"


def test_unset_variable_becomes_empty_with_a_warning_naming_only_the_variable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unset variable becomes "" and the warning names the variable and channel, nothing else."""
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = substitute_env(
            {"api_token": "${VOICE_API_TOKEN}", "api_url": "https://secret-host.example"},
            {"OTHER": "s3cret-value"},
            referenced_by="channel 12",
        )
    assert result["api_token"] == ""
    assert [record.getMessage() for record in caplog.records] == [
        "environment variable VOICE_API_TOKEN referenced by channel 12 is not set"
    ]


def test_create_resolves_env_validates_and_offers_the_client(tmp_path: Path) -> None:
    """create() substitutes ${ENV}, calls validate_config and sets the http client."""
    _write(tmp_path, "mango.py", INCIDENTRELAY_MANGO)
    loader = make_voice_loader(providers_dir=tmp_path)
    client = object()
    provider: Any = loader.create(
        "mango",
        {"api_url": "https://mango.example.test", "api_token": "${MANGO_TOKEN}"},
        environ={"MANGO_TOKEN": "t"},
        http=client,
    )
    assert provider.config == {"api_url": "https://mango.example.test", "api_token": "t"}
    assert provider.http is client
    with pytest.raises(RuntimeError, match=r"^mango config requires: api_token$"):
        loader.create("mango", {"api_url": "https://x", "api_token": "${MANGO_TOKEN}"}, environ={})
