"""Relay settings (SPEC S10.2, S10.3): defaults -> TOML file (``RELAY_CONFIG_FILE``) -> environment.

Environment names are ``RELAY_<SECTION>__<KEY>`` plus a few short aliases; any key may be
given as ``<NAME>_FILE`` to read the value from a file (container secrets). Invalid
configuration raises :class:`SettingsError` listing every problem.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs

from relay_core.domain import constants as c


@attrs.frozen(kw_only=True)
class MainSettings:
    secret_key: str = ""
    encryption_key: str = ""
    data_dir: str = "relay-data"
    timezone: str = "UTC"


@attrs.frozen(kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str = "http://127.0.0.1:8080"
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576
    intake_max_body_bytes: int = 1_048_576
    intake_max_inflight: int = 256
    cors_origins: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class DatabaseSettings:
    url: str = ""
    pool_size: int = 10
    max_overflow: int = 10
    connect_timeout_seconds: int = 5
    sqlite_busy_timeout_ms: int = 5000


@attrs.frozen(kw_only=True)
class RedisSettings:
    url: str = ""
    namespace: str = "relay"


@attrs.frozen(kw_only=True)
class WorkerSettings:
    threads: int = 8
    poll_interval_ms: int = 200


@attrs.frozen(kw_only=True)
class SchedulerSettings:
    tick_seconds: float = 1.0
    lease_ttl_seconds: int = 30
    batch_size: int = 500


@attrs.frozen(kw_only=True)
class AlertsSettings:
    group_wait_seconds: int = 30
    group_interval_seconds: int = 300
    dedup_window_seconds: int = 3600
    explain_trace_level: str = c.TRACE_FULL


@attrs.frozen(kw_only=True)
class DeliverySettings:
    max_attempts: int = 5
    backoff_base_seconds: int = 5
    backoff_max_seconds: int = 300
    lease_seconds: int = 60
    requeue_after_seconds: int = 10
    max_ambiguous_resends: int = 1
    max_age_seconds: int = 3600
    test_wait_seconds: int = 15


@attrs.frozen(kw_only=True)
class AuthSettings:
    jwt_secret: str = ""
    jwt_expire_minutes: int = 1440
    jwt_cookie_name: str = "relay_jwt"
    login_ip_max_failures: int = 10
    login_ip_window_seconds: int = 60
    login_account_max_failures: int = 20
    login_account_window_seconds: int = 300
    login_block_seconds: int = 300


@attrs.frozen(kw_only=True)
class SecuritySettings:
    outbound_private_network_allowlist: tuple[str, ...] = ()
    outbound_timeout_seconds: float = 10.0
    outbound_max_redirects: int = 0
    outbound_max_response_bytes: int = 1_048_576
    outbound_https_only: bool = False


@attrs.frozen(kw_only=True)
class SmtpSettings:
    host: str = ""
    port: int = 587
    from_address: str = ""
    use_tls: bool = True
    use_ssl: bool = False
    user: str = ""
    password: str = ""
    timeout_seconds: float = 10.0


@attrs.frozen(kw_only=True)
class MattermostSettings:
    action_secret: str = ""
    """Default secret signing interactive-button callbacks (S6.4); channels may set their own."""


@attrs.frozen(kw_only=True)
class TelegramSettings:
    mode: str = "polling"
    proxy_url: str = ""


@attrs.frozen(kw_only=True)
class VoiceSettings:
    provider: str = "stub"
    providers_dir: str = ""
    text_template: str = ""
    dtmf_actions: Mapping[str, str] = attrs.field(factory=lambda: dict(c.DEFAULT_DTMF_ACTIONS))
    call_timeout_seconds: float = 30.0
    poll_interval_seconds: int = 30
    incidentrelay_compat_imports: bool = True


@attrs.frozen(kw_only=True)
class SmsSettings:
    provider: str = "stub"
    providers_dir: str = ""
    text_template: str = ""


@attrs.frozen(kw_only=True)
class CallbacksSettings:
    replay_window_seconds: int = 86400


@attrs.frozen(kw_only=True)
class ActionLinksSettings:
    ttl_seconds: int = 86400
    require_login: bool = True


@attrs.frozen(kw_only=True)
class SimulatorSettings:
    enabled: bool | None = None
    """None = true only in embedded mode without a config file."""


@attrs.frozen(kw_only=True)
class MetricsSettings:
    enabled: bool = True
    auth_token: str = ""


@attrs.frozen(kw_only=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "json"
    file: str = ""


@attrs.frozen(kw_only=True)
class RetentionSettings:
    alert_days: int = 0
    explain_trace_days: int = 7
    delivery_days: int = 90
    cleanup_interval_seconds: int = 86400
    batch_size: int = 500


@attrs.frozen(kw_only=True)
class PluginsSettings:
    load: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class RelaySettings:
    main: MainSettings = MainSettings()
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    worker: WorkerSettings = WorkerSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    alerts: AlertsSettings = AlertsSettings()
    delivery: DeliverySettings = DeliverySettings()
    auth: AuthSettings = AuthSettings()
    security: SecuritySettings = SecuritySettings()
    smtp: SmtpSettings = SmtpSettings()
    mattermost: MattermostSettings = MattermostSettings()
    telegram: TelegramSettings = TelegramSettings()
    voice: VoiceSettings = VoiceSettings()
    voice_provider: Mapping[str, Any] = attrs.field(factory=dict)
    sms: SmsSettings = SmsSettings()
    sms_provider: Mapping[str, Any] = attrs.field(factory=dict)
    callbacks: CallbacksSettings = CallbacksSettings()
    action_links: ActionLinksSettings = ActionLinksSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    retention: RetentionSettings = RetentionSettings()
    plugins: PluginsSettings = PluginsSettings()
    config_file: str | None = None
    """The TOML file the settings came from, if any (not a configurable key)."""

    @property
    def data_dir(self) -> Path:
        return Path(self.main.data_dir)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'relay.db'}"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql", "postgres"))

    @property
    def is_memory(self) -> bool:
        return self.database_url in ("memory://", "memory")

    @property
    def embedded(self) -> bool:
        return self.config_file is None and not self.redis.url and not self.is_postgres

    @property
    def simulator_enabled(self) -> bool:
        return self.simulator.enabled if self.simulator.enabled is not None else self.embedded


for _cls in list(globals().values()):
    if isinstance(_cls, type) and attrs.has(_cls):
        attrs.resolve_types(_cls)


class SettingsError(ValueError):
    """Every problem found in the configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"- {p}" for p in problems))
        self.problems = problems


#: Keys whose values are secrets: masked by ``relay config show`` and never logged.
SECRET_KEYS = frozenset(
    {
        "secret_key",
        "encryption_key",
        "jwt_secret",
        "password",
        "auth_token",
        "api_token",
        "token",
        "url_password",
    }
)
_ALIASES = {
    "RELAY_DATABASE_URL": ("database", "url"),
    "RELAY_REDIS_URL": ("redis", "url"),
    "RELAY_SECRET_KEY": ("main", "secret_key"),
    "RELAY_PUBLIC_BASE_URL": ("server", "public_base_url"),
    "RELAY_DATA_DIR": ("main", "data_dir"),
    "RELAY_LOG_LEVEL": ("logging", "level"),
    "RELAY_LOAD_PLUGINS": ("plugins", "load"),
}
_FIELD_RENAMES = {("smtp", "from"): ("smtp", "from_address")}


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def tuple_of_str(value: Any, _type: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return tuple(str(v) for v in value)

    def to_bool(value: Any, _type: Any) -> bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"not a boolean: {value!r}")
        return bool(value)

    def to_mapping(value: Any, _type: Any) -> Mapping[str, Any]:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, Mapping):
            raise ValueError("expected a table")
        return dict(value)

    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], tuple_of_str)
    conv.register_structure_hook(bool, to_bool)
    conv.register_structure_hook_func(lambda t: t in (Mapping[str, Any], Mapping[str, str]), to_mapping)
    return conv


def _env_value(environ: Mapping[str, str], name: str) -> str | None:
    if name in environ:
        return environ[name]
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text(encoding="utf-8").strip()
    return None


def _without_file_suffix(name: str) -> str:
    """``RELAY_SMTP__PASSWORD_FILE`` -> ``RELAY_SMTP__PASSWORD``; ``RELAY_LOGGING__FILE`` is a key itself."""
    base = name.removesuffix("_FILE")
    return name if base.endswith("_") else base


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    config_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RelaySettings:
    """Build settings from defaults, the TOML file and the environment (env wins)."""
    environ = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    raw: dict[str, dict[str, Any]] = {}
    path = config_file or environ.get("RELAY_CONFIG_FILE")
    if path:
        try:
            raw = {
                k: dict(v) if isinstance(v, Mapping) else v
                for k, v in tomllib.loads(Path(path).read_text()).items()
            }
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"cannot read config file {path}: {exc}")
    sections = {f.name: f for f in attrs.fields(RelaySettings) if f.name != "config_file"}
    for name in list(raw):
        if name not in sections:
            problems.append(f"unknown section [{name}]")
            raw.pop(name)
    # Environment: RELAY_<SECTION>__<KEY>, then aliases.
    env_names = {_without_file_suffix(n) for n in environ if n.startswith("RELAY_")}
    for env_name in sorted(env_names):
        rest = env_name[len("RELAY_") :]
        if "__" not in rest:
            continue
        section, _, key = rest.partition("__")
        section, key = section.lower(), key.lower()
        if section not in sections:
            continue
        value = _env_value(environ, env_name)
        if value is not None:
            raw.setdefault(section, {})[key] = value
    for env_name, (section, key) in _ALIASES.items():
        value = _env_value(environ, env_name)
        if value is not None:
            raw.setdefault(section, {})[key] = value
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    # After the environment, so `RELAY_SMTP__FROM` works like `from` in the file.
    for (section, key), (new_section, new_key) in _FIELD_RENAMES.items():
        if key in raw.get(section, {}):
            raw[new_section][new_key] = raw[section].pop(key)
    conv = _converter()
    built: dict[str, Any] = {}
    for name, field in sections.items():
        if name not in raw:
            continue
        try:
            built[name] = conv.structure(raw[name], field.type)  # type: ignore[arg-type]
        except Exception as exc:
            for line in (
                cattrs.transform_error(exc, path=name)
                if isinstance(exc, cattrs.BaseValidationError)
                else [f"{name}: {exc}"]
            ):
                problems.append(line)
    settings = RelaySettings(**built, config_file=path or None)
    problems.extend(_validate(settings))
    if problems:
        raise SettingsError(problems)
    return settings


def _validate(settings: RelaySettings) -> list[str]:
    problems = []
    if settings.is_postgres and len(settings.main.secret_key) < 32:
        problems.append("main.secret_key must be set (at least 32 characters) with a PostgreSQL database")
    if settings.alerts.explain_trace_level not in (c.TRACE_FULL, c.TRACE_COMPACT, c.TRACE_DISABLED):
        problems.append("alerts.explain_trace_level must be full, compact or disabled")
    if settings.logging.format not in ("json", "console"):
        problems.append("logging.format must be json or console")
    if settings.telegram.mode not in ("polling", "webhook"):
        problems.append("telegram.mode must be polling or webhook")
    retention = settings.retention
    for key in ("alert_days", "explain_trace_days", "delivery_days"):
        if getattr(retention, key) < 0:
            problems.append(f"retention.{key} must not be negative (0 keeps the data)")
    if retention.batch_size < 1 or retention.cleanup_interval_seconds < 1:
        problems.append("retention.batch_size and retention.cleanup_interval_seconds must be positive")
    return problems


_QUERY_SECRET_RE = re.compile(
    r"([?&](?:[\w\-]*(?:password|passwd|secret|token|key|signature|sig)[\w\-]*)=)[^&#\s]*", re.IGNORECASE
)


def _mask_url(value: str) -> str:
    """``scheme://user:pw@host/x?password=y`` -> ``scheme://user:***@host/x?password=***``."""
    if "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    authority, sep, tail = rest.partition("/")
    if "@" in authority:
        creds, _, host = authority.rpartition("@")
        if ":" in creds:
            authority = f"{creds.split(':', 1)[0]}:***@{host}"
    tail = _QUERY_SECRET_RE.sub(r"\1***", tail)
    return f"{scheme}://{authority}{sep}{tail}"


def masked(settings: RelaySettings) -> dict[str, Any]:
    """The effective settings as a dict with every secret replaced by ``***``.

    Secrets are the values of secret-named keys (``secret_key``, ``*_secret``, ``*_token``,
    ``password`` ...), at any depth, and the passwords and secret query parameters of URLs
    (``postgresql://relay:***@db/relay``, ``redis://:***@redis:6379/0``).
    """
    data = cattrs.Converter().unstructure(settings)

    def mask(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: mask(v, str(k)) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [mask(v, key) for v in node]
        if (
            isinstance(node, str)
            and node
            and (key in SECRET_KEYS or key.endswith(("_secret", "_token", "password")))
        ):
            return "***"
        if isinstance(node, str):
            return _mask_url(node)
        return node

    result: dict[str, Any] = mask(data)
    return result
