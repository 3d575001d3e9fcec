"""``relay config show`` masks every secret; ``relay config check`` validates."""

from __future__ import annotations

import json

import attrs
import pytest

from relay_adapters.logging import is_secret_key
from relay_adapters.settings import SECRET_KEYS, RelaySettings, load_settings

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
    "RELAY_DATABASE_URL": "postgresql://relay:db-password-value-5@db.example/relay?password=db-query-pw-4",
    "RELAY_REDIS_URL": "rediss://default:redis-password-value-2@cache.example:6380/0",
    "RELAY_TELEGRAM__PROXY_URL": "http://proxyuser:proxy-password-value-7@proxy.example:3128",
    "RELAY_SMS_PROVIDER__API_TOKEN": "sms-api-token-value-11",
    "RELAY_VOICE_PROVIDER__PRIVATE_KEY": "voice-private-key-value-12",
    "RELAY_VOICE_PROVIDER__WEBHOOK_URL": "https://hooks.example/voice?token=voice-url-token-13",
}


def _secret_fields(settings: RelaySettings) -> dict[str, str]:
    """Every settings field the settings module or the log redaction calls a secret, by path."""
    found: dict[str, str] = {}
    for section in attrs.fields(RelaySettings):
        value = getattr(settings, section.name)
        if attrs.has(type(value)):
            for field in attrs.fields(type(value)):
                if field.type is str and (field.name in SECRET_KEYS or is_secret_key(field.name)):
                    found[f"{section.name}.{field.name}"] = getattr(value, field.name)
    return found


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
        assert data["database"]["url"] == "postgresql://relay:***@db.example/relay?password=***"
        assert data["redis"]["url"] == "rediss://default:***@cache.example:6380/0"
        assert data["telegram"]["proxy_url"] == "http://proxyuser:***@proxy.example:3128"
        assert data["mattermost"]["action_secret"] == "***"
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


def test_every_secret_field_of_the_settings_is_masked(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each secret-named field of every settings section, set to a distinct value, never shows."""
    fields = _secret_fields(load_settings({}))
    # The fields SPEC S10.3 names as secrets are all known to the settings model.
    assert {
        "main.secret_key",
        "main.encryption_key",
        "auth.jwt_secret",
        "smtp.password",
        "metrics.auth_token",
        "mattermost.action_secret",
    } <= set(fields)
    values = {}
    for path in fields:
        section, key = path.split(".")
        value = f"unique-{section}-{key}-value-{len(values)}"
        values[path] = value
        monkeypatch.setenv(f"RELAY_{section.upper()}__{key.upper()}", value)
    for flag in ([], ["--json"]):
        out = cli.ok("config", "show", *flag).stdout
        for path, value in values.items():
            assert value not in out, path


def test_environment_names_that_look_special(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """`RELAY_SMTP__FROM` sets smtp.from; `RELAY_LOGGING__FILE` is the key `file`, not a `_FILE` reference;
    `RELAY_LOGGING__FILE_FILE` reads that key from a file."""
    monkeypatch.setenv("RELAY_SMTP__FROM", "relay@example.com")
    monkeypatch.setenv("RELAY_LOGGING__FILE", str(tmp_path / "relay.log"))
    data = cli.json("config", "show", "--json")
    assert data["smtp"]["from_address"] == "relay@example.com"
    assert data["logging"]["file"] == str(tmp_path / "relay.log")
    assert 'from = "relay@example.com"' in cli.ok("config", "show").stdout
    monkeypatch.delenv("RELAY_LOGGING__FILE")
    holder = tmp_path / "log-path"
    holder.write_text(str(tmp_path / "other.log") + "\n")
    monkeypatch.setenv("RELAY_LOGGING__FILE_FILE", str(holder))
    assert cli.json("config", "show", "--json")["logging"]["file"] == str(tmp_path / "other.log")
