#!/usr/bin/env python3
"""Run the example plugins' tests against *installed* distributions, not the source tree (SPEC S7.12).

The steps, shared by ``tests/distributions/test_plugin_distributions.py`` and ``nox -s plugins``:

1. build wheels of ``relay-core`` and of every ``plugins/*`` distribution (``pip wheel --no-deps``, in
   one build environment holding their ``[build-system] requires``);
2. create a fresh virtual environment (no system site-packages, no pip of its own) and install the wheels
   into it, with their runtime dependencies from the package index and ``pytest``;
3. copy each plugin's ``tests/`` directory out of the tree next to a generated ``conftest.py`` that
   refuses to run unless ``relay_core`` and the plugin are imported from that environment's
   site-packages, and run pytest there with that environment's interpreter.

Standard library only, so that it runs with any Python 3.11+ that has pip::

    python tests/distributions/distcheck.py [--workdir DIR] [-- PYTEST ARGS]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE_DIR = ROOT / "packages" / "relay-core"
ENTRY_POINT_GROUP = "relay"
#: What pip may spend on one request to the package index, and how often it retries.
PIP_NETWORK_OPTIONS = ("--timeout", "20", "--retries", "1")
# Lines pip prints when it cannot talk to the package index at all (as opposed to a build failure).
_NETWORK_MARKERS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "No route to host",
)


class DistCheckError(RuntimeError):
    """A step failed for a reason that is the project's to fix (a build, an install, a test run)."""


class IndexUnreachable(DistCheckError):
    """pip could not reach the package index, so the environment could not be installed."""


@dataclass(frozen=True)
class Plugin:
    """One in-tree plugin distribution."""

    distribution: str
    path: Path
    package: str
    """The top-level import package (from the entry point's module)."""
    entry_points: dict[str, str]
    """``relay`` entry points: name -> module."""

    @property
    def tests(self) -> Path:
        return self.path / "tests"

    @property
    def source(self) -> Path:
        return self.path / "src"


def plugins() -> list[Plugin]:
    """The ``plugins/*`` distributions that declare entry points in the ``relay`` group."""
    found = []
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        entry_points = dict(project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {}))
        if not entry_points:
            raise DistCheckError(f"{pyproject}: no [project.entry-points.{ENTRY_POINT_GROUP}] table")
        packages = {value.split(":")[0].split(".")[0] for value in entry_points.values()}
        if len(packages) != 1:
            raise DistCheckError(f"{pyproject}: entry points name several packages: {sorted(packages)}")
        found.append(
            Plugin(
                distribution=project["name"],
                path=pyproject.parent,
                package=packages.pop(),
                entry_points=entry_points,
            )
        )
    return found


def source_dirs() -> list[Path]:
    """Directories the checked modules must NOT be imported from."""
    return [CORE_DIR / "src", *(plugin.source for plugin in plugins())]


def runner_requirements() -> list[str]:
    """``pytest`` as pinned by the root ``dev`` dependency group (the plugins' tests need nothing else)."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8")).get("dependency-groups", {})
    pinned = [
        item
        for item in groups.get("dev", [])
        if isinstance(item, str) and item.split("[")[0].split(">")[0].split("=")[0].strip() == "pytest"
    ]
    return pinned or ["pytest"]


# --- running pip -------------------------------------------------------------------------------------


def index_url(python: str | Path = sys.executable) -> str | None:
    """The package index pip uses: ``PIP_INDEX_URL``, pip's configured ``index-url``, else pip's default."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    argv = [str(python), "-m", "pip", "config", "list"]
    listed = subprocess.run(argv, capture_output=True, text=True, env=_pip_env(), check=False)
    for line in listed.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url") and value.strip():
            return value.strip().strip("'\"")
    asked = subprocess.run(
        [str(python), "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return asked.stdout.strip() or None


def index_unreachable(python: str | Path = sys.executable, *, timeout: float = 5.0) -> str | None:
    """Why the package index cannot be reached (a TCP connect to it or to the HTTPS proxy), or ``None``.

    A quick probe: without it pip spends minutes retrying before it gives up.
    """
    url = index_url(python)
    if url is None:
        return None  # nothing to probe; let pip find out
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    parsed = urllib.parse.urlsplit(proxy or url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        return None  # a file:// index or an odd proxy spelling: nothing to connect to
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        what = "the HTTPS proxy" if proxy else "the package index"
        return f"cannot connect to {what} ({parsed.hostname}:{port}): {type(exc).__name__}: {exc}"


def _pip_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "PYTHONHOME"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def _pip(python: str | Path, args: Sequence[str | Path], what: str) -> None:
    argv = [str(python), "-m", "pip", *(str(arg) for arg in args)]
    result = subprocess.run(argv, capture_output=True, text=True, env=_pip_env(), check=False)
    if result.returncode == 0:
        return
    output = f"{result.stdout}\n{result.stderr}"
    tail = "\n".join(line for line in output.splitlines()[-40:] if line.strip())
    if any(marker in output for marker in _NETWORK_MARKERS):
        raise IndexUnreachable(f"{what}: pip could not reach the package index.\n{tail}")
    raise DistCheckError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{tail}")


def build_requirements(sources: Iterable[Path]) -> list[str]:
    """The union of the ``[build-system] requires`` of the given projects, in first-seen order."""
    found: dict[str, None] = {}
    for source in sources:
        pyproject = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
        found.update(dict.fromkeys(pyproject.get("build-system", {}).get("requires", [])))
    return list(found)


def build_wheels(dest: Path, *, python: str | Path = sys.executable) -> list[Path]:
    """Build wheels of relay-core and every plugin into ``dest``; return their paths.

    One build environment (``dest/../build-env``) with the projects' build requirements serves all
    of them (``--no-build-isolation``), instead of pip setting one up per project.
    """
    dest.mkdir(parents=True, exist_ok=True)
    sources = [CORE_DIR, *(plugin.path for plugin in plugins())]
    builder = _new_venv(dest.parent / "build-env", python)
    backend: list[str | Path] = [*PIP_NETWORK_OPTIONS, *build_requirements(sources)]
    _pip(python, ["--python", builder, "install", "--quiet", *backend], "installing the build backend")
    wheel: list[str | Path] = ["--python", builder, "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    _pip(python, [*wheel, "-w", dest, *sources], "building wheels")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != len(sources):
        raise DistCheckError(f"expected {len(sources)} wheels in {dest}, found {[w.name for w in wheels]}")
    return wheels


def _new_venv(venv: Path, python: str | Path) -> Path:
    """A new virtual environment without pip (``pip --python`` installs into it); its interpreter."""
    venv = venv.resolve()
    if venv.exists():
        raise DistCheckError(f"{venv} already exists")
    argv = [str(python), "-m", "venv", "--without-pip", str(venv)]
    created = subprocess.run(argv, capture_output=True, text=True, check=False)
    if created.returncode != 0:
        raise DistCheckError(f"python -m venv {venv} failed:\n{created.stderr}")
    return venv_python(venv)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def create_env(venv: Path, wheels: Iterable[Path], *, python: str | Path = sys.executable) -> Path:
    """A new virtual environment at ``venv`` holding ``wheels``, their dependencies and pytest.

    The environment gets no pip of its own: the pip of ``python`` installs into it (``pip --python``),
    which saves bootstrapping one. Returns the environment's interpreter.
    """
    target = _new_venv(venv, python)
    _pip(
        python,
        ["--python", target, "install", "--quiet", *PIP_NETWORK_OPTIONS, *wheels, *runner_requirements()],
        "installing the wheels into a fresh environment",
    )
    return target


def site_packages(python: Path) -> Path:
    """The purelib directory of the environment whose interpreter is ``python``."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    result = _run_python(python, ["-c", code])
    return Path(result.stdout.strip()).resolve()


# --- what the installed environment sees ------------------------------------------------------------

_DISCOVERY = r"""
import importlib, importlib.metadata, json, sys
from relay_core.plugins import PluginRegistry, make_plugin_manager

registry = PluginRegistry(make_plugin_manager())
def located(classes):
    return {
        name: {"class": f"{cls.__module__}.{cls.__qualname__}", "file": sys.modules[cls.__module__].__file__}
        for name, cls in classes.items()
    }
report = {
    "plugins": [
        {"name": i.name, "distribution": i.distribution, "version": i.version, "module": i.module,
         "status": i.status, "error": i.error, "hooks": list(i.hooks)}
        for i in registry.infos()
    ],
    "channels": located(registry.channels()),
    "voice_providers": located(registry.voice_providers()),
    "modules": {name: importlib.import_module(name).__file__ for name in sys.argv[1:]},
    "distributions": {},
}
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    report["distributions"][name] = {
        "version": dist.version,
        "license": dist.metadata.get("License-Expression") or dist.metadata.get("License"),
        "license_files": [str(f) for f in (dist.files or ()) if "licenses/" in str(f).replace("\\", "/")],
        "direct_url": dist.read_text("direct_url.json"),
    }
print(json.dumps(report))
"""


def discovery_report(python: Path, modules: Sequence[str]) -> dict[str, object]:
    """What ``make_plugin_manager``/``PluginRegistry`` find in the environment, as a JSON-like dict.

    ``modules`` are imported and their ``__file__`` reported under ``"modules"``.
    """
    result = _run_python(python, ["-c", _DISCOVERY, *modules])
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"}
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def _run_python(
    python: Path,
    args: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = [str(python), *(str(arg) for arg in args)]
    # cwd outside the source tree: nothing there shadows an installed package.
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=_clean_env(env),
        cwd=cwd or tempfile.gettempdir(),
        check=False,
        timeout=300,
    )
    if check and result.returncode != 0:
        command = " ".join(argv[:3])
        raise DistCheckError(f"{command} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return result


# --- the plugins' own tests -------------------------------------------------------------------------

_PYTEST_INI = """\
# Written by tests/distributions/distcheck.py; the same strictness as the repository's pytest configuration.
[pytest]
addopts = --strict-markers --strict-config -ra --import-mode=importlib -p no:cacheprovider
filterwarnings = error
"""

_CONFTEST = '''\
"""Written by tests/distributions/distcheck.py: these tests must exercise the INSTALLED distributions."""

import importlib
import sysconfig
from pathlib import Path

import pytest

MODULES = {modules!r}
SOURCE_DIRS = [Path(p) for p in {source_dirs!r}]


def _origins():
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    found = {{}}
    for name in MODULES:
        path = Path(importlib.import_module(name).__file__).resolve()
        if not path.is_relative_to(site) or any(path.is_relative_to(src) for src in SOURCE_DIRS):
            raise pytest.UsageError(
                f"{{name}} was imported from {{path}}, not from the installed distribution in {{site}}"
            )
        found[name] = path
    return found


def pytest_configure(config):
    if config.pluginmanager.get_plugin("relay") is None:
        raise pytest.UsageError("relay-core's pytest11 entry point 'relay' is not loaded")
    _origins()


def pytest_report_header(config):
    plugin = config.pluginmanager.get_plugin("relay")
    lines = [f"distcheck: {{name}} from {{path}}" for name, path in _origins().items()]
    lines.append(f"distcheck: pytest plugin relay from {{Path(plugin.__file__).resolve()}}")
    return lines
'''


def stage_tests(plugin: Plugin, dest: Path) -> Path:
    """Copy ``plugin``'s tests to ``dest/<distribution>`` with the guard conftest; return that directory."""
    if not plugin.tests.is_dir():
        raise DistCheckError(f"{plugin.distribution} has no tests/ directory")
    staged = dest / plugin.distribution
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(
        plugin.tests, staged / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    )
    (staged / "pytest.ini").write_text(_PYTEST_INI, encoding="utf-8")
    conftest = _CONFTEST.format(
        modules=["relay_core", plugin.package], source_dirs=[str(path) for path in source_dirs()]
    )
    (staged / "conftest.py").write_text(conftest, encoding="utf-8")
    return staged


def run_tests(
    python: Path,
    staged: Path,
    *,
    junit: Path | None = None,
    pytest_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run pytest on a staged test directory with the environment's interpreter (never raises).

    ``env`` adds variables to the cleaned environment (which has no ``PYTHONPATH`` of its own).
    """
    args: list[str | Path] = ["-m", "pytest", "tests", "--rootdir", staged, "-c", staged / "pytest.ini"]
    if junit is not None:
        args += ["--junitxml", junit]
    return _run_python(python, [*args, *pytest_args], cwd=staged, check=False, env=env)


@dataclass(frozen=True)
class Outcome:
    """One test of a junit report."""

    classname: str
    name: str
    outcome: str  # passed | skipped | failed | error
    message: str = ""


def read_junit(path: Path) -> list[Outcome]:
    """The test cases of a pytest ``--junitxml`` report."""
    outcomes = []
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314  # our own pytest's output
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "failed" if tag == "failure" else tag
                message = node.get("message", "")
                break
        outcomes.append(Outcome(case.get("classname", ""), case.get("name", ""), outcome, message))
    return outcomes


# --- command line -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temporary directory)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    options = parser.parse_args(argv)
    workdir = (options.workdir or Path(tempfile.mkdtemp(prefix="relay-distcheck-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"distcheck [{time.monotonic() - started:5.1f} s] {message}", flush=True)

    unreachable = index_unreachable()
    if unreachable:
        say(f"{unreachable}; the wheels' dependencies cannot be installed")
        return 2
    for leftover in ("build-env", "wheels", "venv", "tests"):  # a reused --workdir starts clean
        shutil.rmtree(workdir / leftover, ignore_errors=True)
    try:
        wheels = build_wheels(workdir / "wheels")
        say("built " + ", ".join(wheel.name for wheel in wheels))
        python = create_env(workdir / "venv", wheels)
        say(f"installed them into {workdir / 'venv'}")
        found = plugins()
        report = discovery_report(python, [plugin.package for plugin in found])
        infos: list[dict[str, object]] = report["plugins"]  # type: ignore[assignment]
        for info in infos:
            say(f"plugin {info['name']}: {info['status']} ({info['distribution']} {info['version']})")
        loaded = {info["name"] for info in infos if info["status"] == "loaded"}
        missing = sorted({name for plugin in found for name in plugin.entry_points} - loaded)
        if missing:
            say(f"entry points not loaded by make_plugin_manager(): {missing}")
            return 1
        code = 0
        for plugin in found:
            staged = stage_tests(plugin, workdir / "tests")
            result = run_tests(python, staged, pytest_args=options.pytest_args)
            print(result.stdout, end="")
            print(result.stderr, end="", file=sys.stderr)
            say(f"{plugin.distribution}: pytest exit {result.returncode}")
            code = code or result.returncode
    except DistCheckError as exc:
        say(str(exc))
        return 2
    say("all plugin suites passed against the installed distributions" if code == 0 else "FAILED")
    return code


if __name__ == "__main__":
    sys.exit(main())
