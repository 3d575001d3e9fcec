"""A PRIVATE PostgreSQL server for tests that stop and start the database (SPEC S13.2).

The shared server on 127.0.0.1:5432 serves every other test run at the same time, so a fault
test never stops it: it runs ``initdb`` in a temporary directory and ``pg_ctl`` on a free port
instead. Run as root (CI), the server runs as the ``postgres`` OS user (PostgreSQL refuses to
run as root), which is given the directory. :func:`private_postgres` always stops the server and
removes its directory, whatever the test did.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .conftest import unavailable
from .worker_support import free_port

__all__ = ["PrivatePostgres", "private_postgres"]

_SERVER_OPTIONS = (
    # Throwaway data: no durability work, a small footprint on a shared 2-core machine.
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c shared_buffers=16MB -c max_connections=60 -c listen_addresses=127.0.0.1"
)


def _bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian layout, then ``PATH``)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.parent.name.split(".")],
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PrivatePostgres:
    """One ``initdb``-ed cluster in ``directory``, served on ``port`` (trust auth, user ``postgres``)."""

    def __init__(self, bin_dir: Path, directory: Path, port: int, run_as: str | None) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "server.log"
        self.port = port
        self.run_as = run_as

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}"
                f"\n--- server log\n{self.server_log()}"
            )

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} {_SERVER_OPTIONS}"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, close every connection)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private server; stopped and deleted afterwards, whatever happened."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    assert bin_dir is not None
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root, but there is no 'postgres' OS user to run a server as")
            raise
        run_as = "postgres"
    directory = Path(tempfile.mkdtemp(prefix="relay-private-pg-"))
    if run_as is not None:
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    server = PrivatePostgres(bin_dir, directory, free_port(), run_as)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        try:
            if server.running:
                server.stop("immediate")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
