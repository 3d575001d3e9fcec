"""Plugin loading through real entry points: distributions written to disk and put on sys.path."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import cattrs
import pluggy
import pytest

import relay_core
from relay_core.plugins import (
    DuplicatePluginError,
    PluginInfo,
    PluginRegistry,
    allow_from_env,
    hookimpl,
    make_plugin_manager,
    plugin_infos,
)

OK_PLUGIN = """
    from relay_core import hookimpl

    class OkChannel:
        name = "ok_channel"

    @hookimpl
    def relay_register_channels():
        return [OkChannel]
"""


class Site:
    """A throw-away site-packages: each install writes a module and its ``.dist-info``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def install(self, module: str, source: str, *, entry_point: str, version: str = "1.0") -> None:
        """Write ``module.py`` and a distribution named after it declaring one ``relay`` entry point."""
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        dist_info = self.root / f"{module}-{version}.dist-info"
        dist_info.mkdir()
        distribution = module.replace("_", "-")
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
        )
        (dist_info / "entry_points.txt").write_text(f"[relay]\n{entry_point} = {module}\n")
        self.modules.append(module)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.syspath_prepend(tmp_path)
    site = Site(tmp_path)
    yield site
    for module in site.modules:  # the next test installs modules with the same names elsewhere
        sys.modules.pop(module, None)


def info_named(pm: pluggy.PluginManager, name: str) -> PluginInfo:
    (info,) = (info for info in plugin_infos(pm) if info.name == name)
    return info


def test_entry_point_plugin_is_loaded_and_its_channel_listed(site: Site) -> None:
    """A plugin installed through a ``relay`` entry point is loaded, described and its channel listed."""
    site.install("relay_test_plugin_ok", OK_PLUGIN, entry_point="okplugin")

    pm = make_plugin_manager()
    registry = PluginRegistry(pm)

    assert info_named(pm, "okplugin") == PluginInfo(
        name="okplugin",
        distribution="relay-test-plugin-ok",
        version="1.0",
        module="relay_test_plugin_ok",
        status="loaded",
        hooks=("relay_register_channels",),
    )
    assert registry.channels()["ok_channel"] is sys.modules["relay_test_plugin_ok"].OkChannel
    assert registry.provided_by("channel", "ok_channel") == "okplugin"


def test_builtin_entry_point_of_relay_adapters_is_loaded_first(site: Site) -> None:
    """The ``builtin`` entry point of relay-adapters is loaded before any third-party plugin."""
    site.install("relay_test_plugin_ok", OK_PLUGIN, entry_point="okplugin")

    names = [info.name for info in plugin_infos(make_plugin_manager())]

    assert names.index("builtin") < names.index("okplugin")
    assert info_named(make_plugin_manager(), "builtin").distribution == "relay-adapters"


def test_broken_plugin_is_reported_and_the_others_still_load(site: Site) -> None:
    """A plugin whose module raises on import is listed with status ``error`` and the others load."""
    site.install("relay_test_plugin_broken", "raise RuntimeError('boom at import')", entry_point="broken")
    site.install("relay_test_plugin_ok", OK_PLUGIN, entry_point="okplugin")

    pm = make_plugin_manager()

    broken = info_named(pm, "broken")
    assert (broken.status, broken.error) == ("error", "RuntimeError: boom at import")
    assert not pm.has_plugin("broken")
    assert info_named(pm, "okplugin").status == "loaded"
    assert "ok_channel" in PluginRegistry(pm).channels()


def test_duplicate_channel_name_is_refused_naming_both_classes_and_plugins(site: Site) -> None:
    """Two plugins registering different classes under one channel name are refused, naming both."""
    site.install("relay_test_plugin_ok", OK_PLUGIN, entry_point="okplugin")
    site.install(
        "relay_test_plugin_dup",
        OK_PLUGIN.replace("class OkChannel", "class CopyChannel").replace("[OkChannel]", "[CopyChannel]"),
        entry_point="dupplugin",
    )
    registry = PluginRegistry(make_plugin_manager())

    with pytest.raises(DuplicatePluginError) as raised:
        registry.channels()

    message = str(raised.value)
    assert "'ok_channel'" in message
    assert "relay_test_plugin_dup.CopyChannel (plugin 'dupplugin')" in message
    assert "relay_test_plugin_ok.OkChannel (plugin 'okplugin')" in message


def test_allow_list_restricts_loading_but_keeps_the_builtin(site: Site) -> None:
    """With an allow-list only the listed plugins (and the built-in) are imported; the rest are skipped."""
    site.install("relay_test_plugin_ok", OK_PLUGIN, entry_point="okplugin")
    site.install("relay_test_plugin_other", OK_PLUGIN.replace('"ok_channel"', '"other"'), entry_point="other")

    pm = make_plugin_manager(allow=allow_from_env(" okplugin, ,"))

    assert info_named(pm, "okplugin").status == "loaded"
    assert info_named(pm, "builtin").status == "loaded"
    assert info_named(pm, "other").status == "skipped"
    assert "relay_test_plugin_other" not in sys.modules
    assert set(PluginRegistry(pm).channels()) >= {"ok_channel"}
    assert "other" not in PluginRegistry(pm).channels()


def test_allow_list_reports_a_listed_plugin_that_is_not_installed(site: Site) -> None:
    """A name in the allow-list that no distribution provides is reported as an error record."""
    pm = make_plugin_manager(allow=("nosuchplugin",))

    missing = info_named(pm, "nosuchplugin")
    assert missing.status == "error"
    assert missing.error == (
        "LookupError: plugin 'nosuchplugin' is in the allow-list but not installed "
        "(no 'relay' entry point has that name)"
    )


def test_allow_from_env_parses_a_comma_list() -> None:
    """``RELAY_LOAD_PLUGINS`` parses to a de-duplicated tuple; unset or blank means load everything."""
    assert allow_from_env("acme, mango,,acme ") == ("acme", "mango")
    assert allow_from_env("") is None
    assert allow_from_env(" , ") is None
    assert allow_from_env(None) is None


def test_unknown_hook_in_an_entry_point_plugin_is_rejected_alone(site: Site) -> None:
    """A plugin implementing a hook Relay does not define is rejected by validation, the rest loads."""
    site.install(
        "relay_test_plugin_typo",
        """
        from relay_core import hookimpl

        @hookimpl
        def relay_register_chanels():
            return []
        """,
        entry_point="typo",
    )
    site.install("relay_test_plugin_ok", OK_PLUGIN, entry_point="okplugin")

    pm = make_plugin_manager()

    typo = info_named(pm, "typo")
    assert typo.status == "error"
    assert typo.error == ("PluginValidationError: unknown hook 'relay_register_chanels' in plugin 'typo'")
    assert not pm.has_plugin("typo")
    assert info_named(pm, "okplugin").status == "loaded"


def test_check_pending_rejects_an_unknown_hook_in_a_builtin_object() -> None:
    """A ``builtins`` object with a hook Relay does not define fails ``check_pending()`` loudly."""

    class Typo:
        @hookimpl
        def relay_register_widgets(self) -> list[type]:
            return []

    with pytest.raises(pluggy.PluginValidationError, match="unknown hook 'relay_register_widgets'"):
        make_plugin_manager(load_entrypoints=False, builtins=[Typo()])


def test_each_call_builds_an_independent_manager(site: Site) -> None:
    """Two calls of ``make_plugin_manager`` give managers that share no registrations."""
    site.install("relay_test_plugin_ok", OK_PLUGIN, entry_point="okplugin")

    class Extra:
        name = "extra"

    class ExtraPlugin:
        @hookimpl
        def relay_register_channels(self) -> list[type]:
            return [Extra]

    first, second = make_plugin_manager(), make_plugin_manager()
    first.register(ExtraPlugin(), name="extra")

    assert first is not second
    assert "extra" in PluginRegistry(first).channels()
    assert "extra" not in PluginRegistry(second).channels()
    assert [info.name for info in plugin_infos(second)].count("extra") == 0
    assert info_named(first, "extra").hooks == ("relay_register_channels",)


def test_builtin_objects_come_first_and_bad_contributions_are_reported() -> None:
    """Invalid names, non-classes and raising hooks mark their plugin as failed while others register."""

    class Good:
        name = "good"

    class BadName:
        name = "Bad-Name"

    class NoName:
        pass

    class Mixed:
        @hookimpl
        def relay_register_channels(self) -> list[object]:
            return [Good, BadName, NoName, "not a class"]

    class Raising:
        @hookimpl
        def relay_register_voice_providers(self) -> list[type]:
            raise RuntimeError("provider table missing")

    pm = make_plugin_manager(load_entrypoints=False, builtins=[Mixed(), Raising()])
    registry = PluginRegistry(pm)

    assert dict(registry.channels()) == {"good": Good}
    assert registry.voice_providers() == {}
    infos = {info.name.rsplit(".", 1)[-1]: info for info in registry.infos()}
    assert infos["Mixed"].status == "error"
    assert infos["Mixed"].error is not None
    assert (
        "channel name must contain only letters, numbers and underscore: 'Bad-Name'" in infos["Mixed"].error
    )
    assert "channel name is missing" in infos["Mixed"].error
    assert "expected a channel class, got 'not a class'" in infos["Mixed"].error
    assert infos["Raising"].error == "relay_register_voice_providers: RuntimeError: provider table missing"


def test_intake_source_names_may_contain_hyphens_and_names_are_lower_cased() -> None:
    """Intake sources accept hyphenated names; every kind is keyed by its lower-cased name."""

    class Grafana:
        name = "grafana-oncall"

    class Mango:
        name = "Mango"

    class Plugin:
        @hookimpl
        def relay_register_intake_sources(self) -> list[type]:
            return [Grafana]

        @hookimpl
        def relay_register_voice_providers(self) -> list[type]:
            return [Mango]

    registry = PluginRegistry(make_plugin_manager(load_entrypoints=False, builtins=[Plugin()]))

    assert registry.intake_sources() == {"grafana-oncall": Grafana}
    assert registry.voice_providers() == {"mango": Mango}
    assert registry.provided_by("voice_provider", "MANGO").endswith("Plugin")


def test_configure_converter_calls_every_plugin_and_reports_failures() -> None:
    """``configure_converter`` hands the converter to each plugin; one that raises does not stop the next."""
    seen: list[object] = []

    class Failing:
        @hookimpl
        def relay_configure_converter(self, converter: object) -> None:
            raise ValueError("bad hook")

    class Recording:
        @hookimpl
        def relay_configure_converter(self, converter: object) -> None:
            seen.append(converter)

    registry = PluginRegistry(make_plugin_manager(load_entrypoints=False, builtins=[Recording(), Failing()]))
    converter = cattrs.Converter()
    registry.configure_converter(converter)

    assert seen == [converter]
    (failing,) = (info for info in registry.infos() if info.name.endswith("Failing"))
    assert failing.error == "relay_configure_converter: ValueError: bad hook"


def test_hookimpl_is_reexported_from_relay_core() -> None:
    """``relay_core.hookimpl`` is the marker plugin authors import."""
    assert relay_core.hookimpl is hookimpl
