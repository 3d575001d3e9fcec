#!/usr/bin/env python3
"""Bootstrap a development environment for Relay and run its tasks, with nothing but Python 3.11+.

Usage::

    python3 dev.py serve [relay serve args...]   # e.g. `python3 dev.py serve --demo`
    python3 dev.py test [pytest args...]         # ruff, import-linter, mypy, then pytest
    python3 dev.py lint | typecheck | docs | bench [args...] | sync

Every command first makes sure a virtual environment exists (``.venv`` at the repository root, or the
directory named by ``RELAY_VENV``) and holds the workspace distributions installed editable: the four
``packages/*`` and every ``plugins/*`` that has a ``pyproject.toml``. Commands other than ``serve`` also
install the ``dev`` dependency group of the root ``pyproject.toml``. Installing is skipped when a stamp in
the environment shows that no ``pyproject.toml`` (and not this file) changed since the last install.

This file uses the standard library only, and ``noxfile.py`` imports it for the same install list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

if sys.version_info < (3, 11):  # noqa: UP036 - an older Python must get this message, not a traceback
    sys.exit(f"Relay needs Python 3.11 or newer; this is {sys.version.split()[0]} ({sys.executable}).")

import tomllib

ROOT = Path(__file__).resolve().parent
STAMP_NAME = ".relay-dev-stamp.json"
# Directories never searched for pyproject.toml files: tool caches, build output, virtual environments.
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".nox",
        ".tox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        ".import_linter_cache",
        "__pycache__",
        "node_modules",
        "build",
        "dist",
        "site",
        "relay-data",
    }
)

# The checks `test` runs before pytest, in order; noxfile.py reuses these lists.
LINT_STEPS: tuple[tuple[str, ...], ...] = (("ruff", "check"), ("lint-imports",))
TYPECHECK_STEPS: tuple[tuple[str, ...], ...] = (("mypy",),)


# --- what to install --------------------------------------------------------------------------------


def package_dirs() -> list[Path]:
    """The core distributions under ``packages/``."""
    return sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))


def plugin_dirs() -> list[Path]:
    """The in-tree plugin distributions under ``plugins/`` (only those that have a pyproject.toml)."""
    return sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))


def workspace_dirs() -> list[Path]:
    """Every distribution of the workspace, installed editable."""
    return package_dirs() + plugin_dirs()


def dependency_group(name: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Requirement strings of a PEP 735 dependency group, following ``include-group`` entries."""
    groups = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("dependency-groups", {})

    def expand(group: str, seen: tuple[str, ...]) -> Iterator[str]:
        if group in seen:
            raise SystemExit(f"dependency group cycle: {' -> '.join((*seen, group))}")
        if group not in groups:
            raise SystemExit(f"{pyproject}: no dependency group named {group!r}")
        for item in groups[group]:
            if isinstance(item, str):
                yield item
            else:
                yield from expand(item["include-group"], (*seen, group))

    return list(expand(name, ()))


def install_args(groups: Iterable[str] = ()) -> list[str]:
    """Arguments for ``pip install``: the workspace editable plus the requested dependency groups.

    One pip call gets all of them, so the resolver takes ``relay-core`` & co. from the tree, not an index.
    """
    args: list[str] = []
    for path in workspace_dirs():
        args += ["-e", str(path)]
    for group in groups:
        args += dependency_group(group)
    return args


# --- the environment --------------------------------------------------------------------------------


def venv_dir() -> Path:
    return Path(os.environ.get("RELAY_VENV") or ROOT / ".venv").expanduser().absolute()


def venv_bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def venv_python(venv: Path) -> Path:
    return venv_bin(venv) / ("python.exe" if os.name == "nt" else "python")


def _pyproject_files() -> Iterator[Path]:
    venv = venv_dir()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in _SKIP_DIRS
            and not d.startswith(".venv")
            and here / d != venv
            and not (here / d / "pyvenv.cfg").exists()
        )
        if "pyproject.toml" in filenames:
            yield here / "pyproject.toml"


def fingerprint() -> str:
    """Hash of every pyproject.toml in the tree (paths and contents), this file, and the Python version."""
    digest = hashlib.sha256(f"python {sys.version_info[:2]}\n".encode())
    for path in sorted([*_pyproject_files(), Path(__file__).resolve()]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _say(message: str) -> None:
    print(f"dev.py: {message}", flush=True)


def _run(cmd: Sequence[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    argv = [str(c) for c in cmd]
    _say(f"$ {shlex.join(argv)}")
    return subprocess.run(argv, check=False, env=env, cwd=cwd).returncode


def ensure_env(groups: Sequence[str] = ()) -> Path:
    """Create the virtual environment if needed and install what changed; return its directory."""
    venv = venv_dir()
    python = venv_python(venv)
    if not python.exists():
        _say(f"creating virtual environment {venv}")
        if _run([sys.executable, "-m", "venv", venv]) != 0:
            raise SystemExit(
                "dev.py: could not create the virtual environment "
                "(on Debian/Ubuntu install the python3-venv package)."
            )

    stamp_path = venv / STAMP_NAME
    wanted = fingerprint()
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = {}
    if stamp.get("fingerprint") == wanted and set(groups) <= set(stamp.get("groups", ())):
        _say(f"environment {venv} is up to date (no pyproject.toml changed); skipping install")
        return venv

    started = time.monotonic()
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if _run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], env=env) != 0:
        _say("warning: could not upgrade pip; continuing with the one the environment has")
    what = ", ".join(p.name for p in workspace_dirs()) + "".join(f" + group {g!r}" for g in groups)
    _say(f"installing {what} into {venv}")
    if _run([python, "-m", "pip", "install", "--quiet", *install_args(groups)], env=env, cwd=ROOT) != 0:
        stamp_path.unlink(missing_ok=True)
        raise SystemExit("dev.py: pip install failed (see above); nothing was marked as installed.")
    stamp_path.write_text(json.dumps({"fingerprint": wanted, "groups": sorted(groups)}), encoding="utf-8")
    _say(f"installed in {time.monotonic() - started:.1f} s")
    return venv


def tool_env(venv: Path) -> dict[str, str]:
    """The process environment with the virtual environment activated."""
    return {
        **os.environ,
        "VIRTUAL_ENV": str(venv),
        "PATH": os.pathsep.join([str(venv_bin(venv)), os.environ.get("PATH", "")]),
    }


def run_steps(venv: Path, steps: Iterable[Sequence[str]]) -> int:
    """Run tools from the environment in order; stop at the first failure and return its exit code."""
    env = tool_env(venv)
    for tool, *args in steps:
        executable = shutil.which(tool, path=str(venv_bin(venv)))
        if executable is None:
            _say(f"{tool} is not installed in {venv}")
            return 1
        _say(f"==> {tool} {' '.join(args)}".rstrip())
        started = time.monotonic()
        code = _run([executable, *args], env=env, cwd=ROOT)
        if code == 5 and tool == "pytest":
            _say("pytest collected no tests (exit 5): a test run must execute at least one test")
            return code
        if code != 0:
            _say(f"{tool} failed with exit code {code}")
            return code
        _say(f"{tool} passed in {time.monotonic() - started:.1f} s")
    return 0


# --- commands ---------------------------------------------------------------------------------------


def cmd_serve(args: list[str]) -> int:
    venv = ensure_env()
    relay = shutil.which("relay", path=str(venv_bin(venv)))
    if relay is None:
        _say(
            f"the `relay` command is not installed in {venv}: relay-server provides it through "
            "[project.scripts] relay = relay_server.cli:main"
        )
        return 1
    argv = [relay, "serve", *args]
    _say(f"$ {shlex.join(argv)}")
    if os.name == "nt":  # pragma: no cover - exec does not replace the process on Windows
        return subprocess.run(argv, check=False, env=tool_env(venv)).returncode
    os.execve(relay, argv, tool_env(venv))


def cmd_test(args: list[str]) -> int:
    venv = ensure_env(["dev"])
    code = run_steps(venv, [*LINT_STEPS, *TYPECHECK_STEPS, ("pytest", *args)])
    if code == 0:
        _say("all checks and tests passed")
    return code


def cmd_lint(args: list[str]) -> int:
    return run_steps(ensure_env(["dev"]), LINT_STEPS)


def cmd_typecheck(args: list[str]) -> int:
    return run_steps(ensure_env(["dev"]), TYPECHECK_STEPS)


def cmd_docs(args: list[str]) -> int:
    return run_steps(ensure_env(["dev"]), [("mkdocs", "build", "--strict", *args)])


def cmd_bench(args: list[str]) -> int:
    venv = ensure_env(["dev"])
    script = ROOT / "bench" / "run.py"
    if not script.exists():
        _say(f"{script.relative_to(ROOT)} does not exist yet: there is no benchmark harness to run")
        return 1
    return _run([venv_python(venv), script, *args], env=tool_env(venv), cwd=ROOT)


def cmd_sync(args: list[str]) -> int:
    venv = ensure_env(["dev"])
    _say(f"activate with: source {venv_bin(venv) / 'activate'}")
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "test": cmd_test,
    "lint": cmd_lint,
    "typecheck": cmd_typecheck,
    "docs": cmd_docs,
    "bench": cmd_bench,
    "sync": cmd_sync,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"} or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in {"-h", "--help", "help"} else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
