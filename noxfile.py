"""Nox sessions for Relay: the same install list and checks as ``dev.py``, each in its own environment.

Run ``nox -l`` to list them; ``nox -s tests`` runs every package, ``nox -s "tests(package='relay-core')"``
one of them. Arguments after ``--`` go to pytest (or to ``bench/run.py`` for the bench session).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

# dev.py sits beside this file; nox does not put that directory on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dev

nox.options.sessions = ["lint", "typecheck", "tests", "plugins"]
nox.options.reuse_existing_virtualenvs = True


def install(session: nox.Session) -> None:
    """Install the workspace editable plus the ``dev`` dependency group, as ``dev.py`` does."""
    session.install(*dev.install_args(["dev"]))


def run_steps(session: nox.Session, steps: tuple[tuple[str, ...], ...]) -> None:
    for step in steps:
        session.run(*step)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and the import-linter contracts."""
    install(session)
    run_steps(session, dev.LINT_STEPS)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy, strict on relay_core (configuration in pyproject.toml)."""
    install(session)
    run_steps(session, dev.TYPECHECK_STEPS)


@nox.session
@nox.parametrize("package", [path.name for path in dev.package_dirs()])
def tests(session: nox.Session, package: str) -> None:
    """The test suite of one distribution under packages/."""
    install(session)
    session.run("pytest", f"packages/{package}", *session.posargs)


@nox.session
def plugins(session: nox.Session) -> None:
    """The example plugins' own tests against their installed wheels, never the source tree.

    ``tests/distributions/distcheck.py`` builds wheels of relay-core and each ``plugins/*`` distribution,
    installs them into a fresh virtual environment (dependencies from the package index), checks that
    ``make_plugin_manager()`` loads every ``relay`` entry point, then runs each plugin's tests copied
    out of the tree. Arguments after ``--`` go to those pytest runs.
    """
    if not dev.plugin_dirs():
        session.error("no plugins/*/pyproject.toml found")
    session.install("pip>=22.3")  # distcheck installs into its environment with `pip --python`
    workdir = Path(session.create_tmp()) / "distcheck"
    script = "tests/distributions/distcheck.py"
    session.run("python", script, "--workdir", str(workdir), "--", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """Whole-stack tests: real server and worker processes over HTTP."""
    install(session)
    session.run("pytest", "tests/e2e", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the MkDocs site the way CI does."""
    install(session)
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The performance harness (SPEC S12.3); pass --quick for a short run."""
    install(session)
    if not (dev.ROOT / "bench" / "run.py").exists():
        session.error("bench/run.py does not exist yet")
    session.run("python", "bench/run.py", *session.posargs)
