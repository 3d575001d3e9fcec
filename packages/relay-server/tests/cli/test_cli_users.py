"""``relay create-admin`` and ``relay set-password``."""

from __future__ import annotations

from argon2 import PasswordHasher

from relay_core.bootstrap import Relay
from relay_core.domain.model import User

from .conftest import Cli

PASSWORD = "correct horse battery"


async def _user(relay: Relay, username: str) -> User | None:
    async with relay.uow_factory() as uow:
        return await uow.users.first(username=username)


def test_create_admin_twice_fails_with_user_already_exists(cli: Cli) -> None:
    """The first call creates a global admin (migrating SQLite); the second exits 1."""
    cli.ok("create-admin", "--username", "root", "--password", PASSWORD, "--email", "root@example.com")
    user = cli.query(lambda relay: _user(relay, "root"))
    assert user is not None
    assert user.is_admin
    assert user.email == "root@example.com"
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(user.password_hash, PASSWORD)

    again = cli("create-admin", "--username", "root", "--password", PASSWORD, "--email", "x@example.com")
    assert again.exit_code == 1
    assert "user already exists" in again.stderr


def test_create_admin_rejects_a_short_password(cli: Cli) -> None:
    """Passwords shorter than 10 characters are a usage error."""
    result = cli("create-admin", "--username", "root", "--password", "short", "--email", "r@example.com")
    assert result.exit_code == 2


def test_set_password_replaces_the_hash_and_bumps_the_version(cli: Cli) -> None:
    """A reset password verifies and invalidates older sessions (password_version + 1)."""
    cli.ok("create-admin", "--username", "root", "--password", PASSWORD, "--email", "r@example.com")
    cli.ok("set-password", "--username", "root", "--password", "another long password")
    user = cli.query(lambda relay: _user(relay, "root"))
    assert user is not None
    assert PasswordHasher().verify(user.password_hash or "", "another long password")
    assert user.password_version == 1
    missing = cli("set-password", "--username", "nobody", "--password", "another long password")
    assert missing.exit_code == 1
    assert "user not found" in missing.stderr
