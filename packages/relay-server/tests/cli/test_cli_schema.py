"""``relay migrate`` and ``relay check-schema`` on a SQLite data dir."""

from __future__ import annotations

import sqlite3
from typing import Any

from .conftest import Cli


def test_migrate_then_check_schema_is_ok(cli: Cli) -> None:
    """A fresh data dir migrates to head and then passes the schema check."""
    migrated = cli.ok("migrate")
    assert "migrated" in migrated.stdout
    assert (cli.data_dir / "relay.db").exists()
    result = cli.ok("check-schema")
    assert result.stdout.strip() == "Schema check OK: all model tables and columns exist."
    assert cli.ok("migrate", "--check").stdout.strip() == "No pending migrations."


def test_check_schema_lists_differences_and_exits_1(cli: Cli) -> None:
    """Without migrations every table is reported missing, one line each, exit 1."""
    result = cli("check-schema")
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert lines
    assert all(line.startswith("missing table: ") for line in lines)
    assert not (cli.data_dir / "relay.db").exists(), "a check must not create the database"


def test_migrate_check_reports_pending(cli: Cli) -> None:
    """``migrate --check`` exits 1 and names the pending revisions on an empty database."""
    result = cli("migrate", "--check")
    assert result.exit_code == 1
    assert "pending migration" in result.stdout


def test_version_names_the_database_kind(cli: Cli) -> None:
    """``relay version`` prints the version, Python and the database kind."""
    out = cli.ok("version").stdout
    assert out.startswith("relay ")
    assert "python: " in out
    assert "database: sqlite" in out


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    """Usage errors exit 2."""
    assert cli("no-such-command").exit_code == 2
    assert cli("serve", "--port", "not-a-number").exit_code == 2


def test_every_command_of_the_spec_is_there(cli: Cli) -> None:
    """``relay --help`` lists the S10.1 commands this shell implements."""
    out = cli.ok("--help").stdout
    for command in (
        "serve",
        "worker",
        "scheduler",
        "migrate",
        "check-schema",
        "create-admin",
        "set-password",
        "demo-data",
        "token",
        "plugins",
        "config",
        "simulate",
        "version",
    ):
        assert command in out
    assert cli("worker", "--processes", "0").exit_code == 2


def test_migrate_sql_prints_a_script_that_builds_the_schema(cli: Cli, monkeypatch: Any) -> None:
    """``migrate --sql`` prints the upgrade SQL without touching the database; running that SQL
    on an empty SQLite file gives a database that passes ``check-schema``."""
    printed = cli.ok("migrate", "--sql").stdout
    assert "CREATE TABLE users" in printed
    assert not (cli.data_dir / "relay.db").exists(), "--sql must not create or migrate the database"
    target = cli.data_dir.parent / "from-sql.db"
    with sqlite3.connect(target) as conn:
        conn.executescript(printed)
    monkeypatch.setenv("RELAY_DATABASE_URL", f"sqlite:///{target}")
    assert cli.ok("check-schema").stdout.strip() == "Schema check OK: all model tables and columns exist."
    assert cli.ok("migrate", "--check").stdout.strip() == "No pending migrations."


def test_migrate_sql_uses_the_configured_dialect_and_checks_its_arguments(cli: Cli, monkeypatch: Any) -> None:
    """For PostgreSQL the script is PostgreSQL DDL in one transaction (no server contacted); an
    unknown revision exits 1 and ``--sql --check`` is a usage error."""
    monkeypatch.setenv("RELAY_DATABASE_URL", "postgresql://relay@192.0.2.1:5/relay")
    monkeypatch.setenv("RELAY_SECRET_KEY", "k" * 40)
    script = cli.ok("migrate", "--sql").stdout
    assert script.lstrip().startswith("BEGIN;")
    assert "JSONB" in script
    assert script.rstrip().endswith("COMMIT;")
    unknown = cli("migrate", "--sql", "--revision", "no-such-revision")
    assert unknown.exit_code == 1
    assert "no-such-revision" in unknown.stderr
    assert cli("migrate", "--sql", "--check").exit_code == 2
