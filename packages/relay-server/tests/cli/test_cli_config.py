"""``relay config show`` masks every secret; ``relay config check`` validates."""

from __future__ import annotations

import json

import pytest

from .conftest import Cli

SECRETS = {
    "RELAY_SECRET_KEY": "main-secret-key-value-0123456789abcdef",
    "RELAY_SMTP__PASSWORD": "smtp-password-value-42",
    "RELAY_AUTH__JWT_SECRET": "jwt-secret-value-77",
    "RELAY_VOICE_PROVIDER__API_TOKEN": "voice-api-token-value-9",
    "RELAY_METRICS__AUTH_TOKEN": "metrics-token-value-3",
    "RELAY_VOICE_PROVIDER__API_KEY": "voice-api-key-value-8",
    "RELAY_SMS_PROVIDER__AUTH_SECRET": "sms-auth-secret-value-6",
    "RELAY_MATTERMOST__ACTION_SECRET": "mm-action-secret-value-1",
    "RELAY_DATABASE_URL": "postgresql://relay:db-password-value-5@db.example/relay",
}


@pytest.mark.parametrize("json_flag", [False, True])
def test_config_show_hides_every_secret(cli: Cli, monkeypatch: pytest.MonkeyPatch, json_flag: bool) -> None:
    """No configured secret value appears in the output, in text or JSON form."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    out = cli.ok("config", "show", *(["--json"] if json_flag else [])).stdout
    for value in SECRETS.values():
        assert value not in out
    assert "db-password-value-5" not in out
    if json_flag:
        data = json.loads(out)
        assert data["main"]["secret_key"] == "***"
        assert data["smtp"]["password"] == "***"
        assert data["database"]["url"] == "postgresql://relay:***@db.example/relay"
    else:
        assert "[smtp]" in out
        assert 'password = "***"' in out


def test_config_show_reads_a_secret_from_a_file(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """``<NAME>_FILE`` secrets are masked like the others."""
    secret_file = tmp_path / "smtp_password"
    secret_file.write_text("file-held-smtp-secret\n")
    monkeypatch.setenv("RELAY_SMTP__PASSWORD_FILE", str(secret_file))
    out = cli.ok("config", "show").stdout
    assert "file-held-smtp-secret" not in out


def test_config_check_ok_and_failures(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid settings exit 0; invalid ones exit 1 listing every problem."""
    assert "Configuration OK" in cli.ok("config", "check").stdout
    monkeypatch.setenv("RELAY_LOGGING__FORMAT", "xml")
    monkeypatch.setenv("RELAY_ALERTS__EXPLAIN_TRACE_LEVEL", "loud")
    result = cli("config", "check")
    assert result.exit_code == 1
    assert "logging.format" in result.stderr
    assert "explain_trace_level" in result.stderr
