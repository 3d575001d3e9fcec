"""The example plugins pass their contract suites as installed distributions (issue 7, SPEC S7.12, S0.7).

The session fixture builds wheels of ``relay-core`` and of both plugins, installs them into a fresh
virtual environment (no system site-packages, no editable installs) with their runtime dependencies
from the package index, and every test here looks at that environment: what ``make_plugin_manager``
and ``PluginRegistry`` discover through the ``relay`` entry-point group, where the modules are
imported from, and whether each plugin's own tests (copied out of the source tree) pass there.

Needs the package index: without it the tests skip, or fail under ``RELAY_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from . import distcheck

pytestmark = pytest.mark.slow

PLUGINS = {plugin.distribution: plugin for plugin in distcheck.plugins()}
WHEEL_PACKAGES = {"relay_core", *(plugin.package for plugin in PLUGINS.values())}

# Contract checks a plugin may skip, with the capability its class declares it lacks. Any other skip
# fails the test: a contract check that silently does not run is not a passing contract.
JUSTIFIED_SKIPS = {
    "relay-channel-example": {
        # ntfy cannot edit a published message: NtfyChannel declares supports_update=False.
        "test_update_edits_an_earlier_delivery": "does not declare supports_update",
    },
    "relay-voice-example": {},
}
# Contract checks that must have run and passed: the ones only an installed distribution can pass.
REQUIRED_PASSES = {
    "relay-channel-example": {"test_registered_through_the_entry_point", "test_send_delivers_a_notification"},
    "relay-voice-example": {
        "test_registered_through_the_entry_point",
        "test_loads_from_a_provider_file",
        "test_place_call_returns_a_call_id",
        "test_polling_when_declared",
    },
}


@dataclass(frozen=True)
class DistEnv:
    workdir: Path
    wheels: list[Path]
    python: Path
    site: Path
    report: dict[str, Any]


def _unavailable(reason: str) -> NoReturn:
    message = f"cannot install the plugin distributions: {reason}"
    if os.environ.get("RELAY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (RELAY_REQUIRE_SERVICES=1 makes this a failure)", pytrace=False)
    pytest.skip(f"{message}; set RELAY_REQUIRE_SERVICES=1 to make this a failure")


@pytest.fixture(scope="session")
def dist_env(tmp_path_factory: pytest.TempPathFactory) -> DistEnv:
    """Wheels of relay-core and both plugins, installed into a new virtual environment."""
    reason = distcheck.index_unreachable()
    if reason:
        _unavailable(reason)
    workdir = tmp_path_factory.mktemp("distcheck")
    try:
        wheels = distcheck.build_wheels(workdir / "wheels")
        python = distcheck.create_env(workdir / "venv", wheels)
    except distcheck.IndexUnreachable as exc:
        _unavailable(str(exc))
    report = distcheck.discovery_report(python, sorted(WHEEL_PACKAGES))
    return DistEnv(workdir, wheels, python, distcheck.site_packages(python), report)


def _is_installed_copy(path: str | Path, env: DistEnv) -> bool:
    resolved = Path(path).resolve()
    in_source = any(resolved.is_relative_to(src) for src in distcheck.source_dirs())
    return resolved.is_relative_to(env.site) and not in_source


def test_the_environment_is_isolated_from_the_workspace(dist_env: DistEnv) -> None:
    """The new environment does not see the system site-packages, so the workspace's .venv is not in it."""
    cfg = (dist_env.python.parent.parent / "pyvenv.cfg").read_text(encoding="utf-8")
    assert "include-system-site-packages = false" in cfg
    assert dist_env.site.is_relative_to(dist_env.workdir.resolve())
    # relay-server and relay-adapters were not installed: only the wheels' own dependency closure is.
    assert "relay-adapters" not in dist_env.report["distributions"]
    assert "relay-server" not in dist_env.report["distributions"]


def test_modules_are_imported_from_the_installed_wheels(dist_env: DistEnv) -> None:
    """relay_core and both plugin packages load from the environment's site-packages, not from src/."""
    modules = dist_env.report["modules"]
    assert set(modules) == WHEEL_PACKAGES
    for name, path in modules.items():
        assert _is_installed_copy(path, dist_env), f"{name} imported from {path}, not from {dist_env.site}"


def test_distributions_are_wheel_installs_with_mit_license(dist_env: DistEnv) -> None:
    """Each distribution is installed from its wheel (not editable) and carries MIT and its LICENSE (S0.7)."""
    installed = dist_env.report["distributions"]
    for distribution in ("relay-core", *PLUGINS):
        info = installed.get(distribution)
        assert info is not None, f"{distribution} is not installed; have {sorted(installed)}"
        assert info["license"] == "MIT", (distribution, info["license"])
        assert any(path.endswith("LICENSE") for path in info["license_files"]), info["license_files"]
        direct_url = info["direct_url"] or ""
        assert ".whl" in direct_url, f"{distribution} was not installed from a wheel: {direct_url}"
        assert '"editable": true' not in direct_url


def test_entry_points_are_discovered_by_the_plugin_registry(dist_env: DistEnv) -> None:
    """make_plugin_manager() loads each plugin's `relay` entry point and PluginRegistry lists its class."""
    infos = {info["name"]: info for info in dist_env.report["plugins"]}
    expected = {name: plugin for plugin in PLUGINS.values() for name in plugin.entry_points}
    assert set(infos) == set(expected), infos
    for name, plugin in expected.items():
        info = infos[name]
        assert info["status"] == "loaded", info
        assert info["error"] is None
        assert info["distribution"] == plugin.distribution
        assert info["version"] == "0.1.0"
        assert info["module"] == plugin.entry_points[name]

    assert infos["example_ntfy"]["hooks"] == ["relay_register_channels"]
    assert infos["example_http"]["hooks"] == ["relay_register_voice_providers"]
    channel = dist_env.report["channels"]["example_ntfy"]
    provider = dist_env.report["voice_providers"]["example_http"]
    assert channel["class"] == "relay_channel_example.channel.NtfyChannel"
    assert provider["class"] == "relay_voice_example.provider.Provider"
    assert _is_installed_copy(channel["file"], dist_env)
    assert _is_installed_copy(provider["file"], dist_env)


@pytest.mark.parametrize("distribution", sorted(PLUGINS))
def test_plugin_suite_passes_against_the_installed_distribution(dist_env: DistEnv, distribution: str) -> None:
    """The plugin's tests, copied out of the tree, pass in the environment with every contract check run."""
    plugin = PLUGINS[distribution]
    staged = distcheck.stage_tests(plugin, dist_env.workdir / "tests")
    junit = staged / "junit.xml"
    result = distcheck.run_tests(dist_env.python, staged, junit=junit)
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, output[-6000:]

    # The guard conftest reported where the code came from: the environment, never src/.
    origins = dict(
        line.removeprefix("distcheck: ").split(" from ", 1)
        for line in result.stdout.splitlines()
        if line.startswith("distcheck: ")
    )
    assert set(origins) == {"relay_core", plugin.package, "pytest plugin relay"}, origins
    assert all(_is_installed_copy(path, dist_env) for path in origins.values()), origins

    outcomes = distcheck.read_junit(junit)
    contract = [case for case in outcomes if case.classname.endswith("Contract")]
    assert contract, f"no contract suite ran for {distribution}: {[c.classname for c in outcomes]}"
    assert all(case.outcome in {"passed", "skipped"} for case in outcomes)
    skipped = {case.name: case.message for case in outcomes if case.outcome == "skipped"}
    justified = JUSTIFIED_SKIPS[distribution]
    unjustified = {
        name: why for name, why in skipped.items() if name not in justified or justified[name] not in why
    }
    assert not unjustified, f"contract checks skipped without a declared capability: {unjustified}"
    passed = {case.name for case in contract if case.outcome == "passed"}
    assert REQUIRED_PASSES[distribution] <= passed, REQUIRED_PASSES[distribution] - passed


def test_the_guard_refuses_a_plugin_imported_from_source(dist_env: DistEnv) -> None:
    """With the source tree first on sys.path the staged run stops before any test: the check can fail."""
    plugin = PLUGINS["relay-channel-example"]
    staged = distcheck.stage_tests(plugin, dist_env.workdir / "guard")
    result = distcheck.run_tests(dist_env.python, staged, env={"PYTHONPATH": str(plugin.source)})
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"{plugin.package} was imported from {plugin.source.resolve()}" in result.stderr
