"""What the built-in channels share: their environment, config structuring, wording and colours.

Channel classes are constructed without arguments by the plugin registry (S6.13); the few
process-wide settings some of them need (``public_base_url``, ``secret_key``, ``[smtp]``,
``[sms]``, the outbound options for a client of their own) arrive as an optional
:class:`ChannelEnvironment` keyword argument. :func:`relay_adapters.channels.make_channels`
builds every built-in with the environment of a ``RelaySettings``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import cattrs
import httpx

from relay_adapters.channels._http import OutboundOptions, options_from_settings
from relay_core.ports.channels import GroupView, OutboundMessage, PermanentDeliveryError, render_plain_text

if TYPE_CHECKING:
    from relay_adapters.settings import RelaySettings

__all__ = [
    "TEST_TITLE",
    "ChannelEnvironment",
    "CommonConfig",
    "InboundCallbackError",
    "SmtpOptions",
    "environment_from_settings",
]

TEST_TITLE: Final = "Test notification from Relay"
EDIT_EVENTS: Final = frozenset({"acknowledged", "resolved"})
"""Status changes: editable channels edit their anchor message (S5.6)."""
REPLY_EVENTS: Final = frozenset({"update", "reminder", "escalation"})
"""Posted as replies to the anchor, which is edited too (S6.1)."""

COLOR_RESOLVED: Final = "#2e7d32"
COLOR_WARNING: Final = "#f0ad4e"
COLOR_CRITICAL: Final = "#d9534f"
COLOR_INFO: Final = "#4a90e2"

_converter = cattrs.Converter()
_T = TypeVar("_T")


@attrs.frozen(kw_only=True)
class SmtpOptions:
    """The global ``[smtp]`` section (S6.9)."""

    host: str = ""
    port: int = 587
    from_address: str = ""
    use_tls: bool = True
    """STARTTLS, required: a server that does not offer it is refused."""
    use_ssl: bool = False
    """Implicit TLS (port 465)."""
    user: str = ""
    password: str = attrs.field(default="", repr=False)
    timeout_seconds: float = 10.0
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, eq=False, repr=False)
    """TLS settings (trusted CAs); the system defaults when ``None``."""


@attrs.frozen(kw_only=True)
class ChannelEnvironment:
    """Process-wide settings the built-in channels read (never per-channel configuration)."""

    public_base_url: str | None = None
    """``server.public_base_url``; derived from ``group.alert_url`` when unset."""
    secret_key: str | None = attrs.field(default=None, repr=False)
    """``main.secret_key``: signs Telegram callback data (S6.6)."""
    mattermost_action_secret: str | None = attrs.field(default=None, repr=False)
    """``mattermost.action_secret``: default Mattermost callback secret (S6.4)."""
    smtp: SmtpOptions = attrs.field(factory=SmtpOptions)
    sms_provider: str = "stub"
    sms_provider_config: Mapping[str, Any] = attrs.field(factory=dict)
    sms_text_template: str = ""
    sms_loader: Any = None
    """A ``relay_adapters.voice.ProviderLoader`` for SMS; built-ins only when ``None``."""
    sms_timeout_seconds: float = 30.0
    outbound: OutboundOptions = attrs.field(factory=OutboundOptions)
    """Options of the client a channel builds when ``message.http`` is ``None``."""


def environment_from_settings(settings: RelaySettings, *, sms_loader: Any = None) -> ChannelEnvironment:
    """The :class:`ChannelEnvironment` of ``settings``."""
    smtp = settings.smtp
    return ChannelEnvironment(
        public_base_url=settings.server.public_base_url,
        secret_key=settings.main.secret_key or None,
        mattermost_action_secret=_section_value(settings, "mattermost", "action_secret"),
        smtp=SmtpOptions(
            host=smtp.host,
            port=smtp.port,
            from_address=smtp.from_address,
            use_tls=smtp.use_tls,
            use_ssl=smtp.use_ssl,
            user=smtp.user,
            password=smtp.password,
            timeout_seconds=smtp.timeout_seconds,
        ),
        sms_provider=settings.sms.provider or "stub",
        sms_provider_config=dict(settings.sms_provider),
        sms_text_template=settings.sms.text_template,
        sms_loader=sms_loader,
        outbound=options_from_settings(settings),
    )


def _section_value(settings: Any, section: str, key: str) -> str | None:
    value = getattr(getattr(settings, section, None), key, None)
    return str(value) if value else None


@attrs.frozen(kw_only=True)
class CommonConfig:
    """Keys every channel type accepts (S6.1); the core reads them, channels ignore them."""

    notify_on_severities: tuple[str, ...] = ()
    send_status_updates: bool | None = None


class InboundCallbackError(Exception):
    """An interactive callback failed verification; ``code`` and ``status`` are the API answer."""

    def __init__(self, code: str, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# --- configuration ---------------------------------------------------------------------------


def structure_config(config_class: type[_T], config: Mapping[str, Any], channel: str) -> _T:
    """Structure ``config`` into ``config_class``, ignoring keys the class does not know.

    Raises:
        PermanentDeliveryError: ``"<channel> config is invalid: <details>"`` (S5.9: invalid
            configuration is permanent).
    """
    known = {field.name for field in attrs.fields(config_class)}  # type: ignore[arg-type]
    try:
        return _converter.structure({k: v for k, v in dict(config).items() if k in known}, config_class)
    except Exception as exc:
        raise PermanentDeliveryError(f"{channel} config is invalid: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        details = cattrs.transform_error(exc, format_exception=_format_exception)
        return "; ".join(detail.removesuffix(" @ $") for detail in details)
    return str(exc) or type(exc).__name__


def _format_exception(exc: BaseException, type_: Any) -> str:
    # attrs validators raise ValueError with a message that says what is wrong: keep it.
    if type(exc) is ValueError and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _structure_strings(value: Any, _type: Any) -> tuple[str, ...]:
    """A list of strings, or one comma-separated string (``"a@x.test, b@x.test"``)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, list | tuple):
        raise ValueError("expected a list of strings")
    return tuple(str(item) for item in value)


_converter.register_structure_hook_func(lambda type_: type_ == tuple[str, ...], _structure_strings)


def require(value: Any, what: str, channel: str) -> None:
    """Fail permanently when a required config value is empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PermanentDeliveryError(f"{channel} config is invalid: {what} is required")


def not_blank(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """attrs validator: optional strings, when given, are not blank."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def http_url(_instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    """attrs validator: an absolute http(s) URL (or ``None``)."""
    if value is None:
        return
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{attribute.name} must be an http(s) URL")


# --- the HTTP client ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def outbound_client(
    message: OutboundMessage, env: ChannelEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    """``message.http`` when set, else a client of the environment's options for this call."""
    if isinstance(message.http, httpx.AsyncClient):
        yield message.http
        return
    client = env.outbound.build()
    try:
        yield client
    finally:
        await client.aclose()


# --- wording ----------------------------------------------------------------------------------


def public_base_url(message: OutboundMessage, env: ChannelEnvironment) -> str | None:
    """``server.public_base_url``, else the prefix of ``group.alert_url`` (``…/alerts/<id>``)."""
    if env.public_base_url:
        return env.public_base_url.rstrip("/")
    group = message.group
    if group is not None and group.alert_url:
        suffix = f"/alerts/{group.id}"
        if group.alert_url.endswith(suffix):
            return group.alert_url[: -len(suffix)].rstrip("/")
    return None


def plain_text(message: OutboundMessage) -> str:
    """The S6.1 plain-text body: ``message.text``, rendered here when the dispatcher left it empty."""
    if message.text:
        return message.text
    if message.group is not None:
        title = TEST_TITLE if message.event_type == "test" else None
        return render_plain_text(message.event_type, message.group, title=title)
    if message.event_type == "test":
        return f"TEST: {TEST_TITLE}"
    return message.event_type.upper()


def title_of(message: OutboundMessage) -> str:
    """The group's title, or the test title for ``test`` events."""
    if message.event_type == "test" or message.group is None:
        return TEST_TITLE
    return message.group.title


def status_of(message: OutboundMessage) -> str:
    """The group status the message shows; the event decides when the group view is older."""
    if message.event_type == "resolved":
        return "resolved"
    if message.event_type == "acknowledged":
        return "acknowledged"
    return message.group.status if message.group is not None else "firing"


def prefixed_title(message: OutboundMessage) -> str:
    """The title with ``RESOLVED: ``, ``ACKNOWLEDGED: ``, ``REMINDER: `` or ``ESCALATION: `` (S6.4)."""
    title = title_of(message)
    status = status_of(message)
    if status == "resolved":
        return f"RESOLVED: {title}"
    if status == "acknowledged":
        return f"ACKNOWLEDGED: {title}"
    if message.event_type == "reminder":
        return f"REMINDER: {title}"
    if message.event_type == "escalation":
        return f"ESCALATION: {title}"
    return title


def status_sentence(message: OutboundMessage) -> str | None:
    """The sentence S6.4 puts before the message for status, reminder and escalation events."""
    status = status_of(message)
    if status == "resolved":
        return "The alert has been resolved."
    if status == "acknowledged":
        group = message.group
        who = (group.acknowledged_by if group is not None else None) or "unknown"
        return f"The alert was acknowledged by {who}."
    if message.event_type == "reminder":
        return "This alert is still not acknowledged."
    if message.event_type == "escalation":
        return "The alert was escalated."
    return None


def body_text(message: OutboundMessage) -> str:
    """The attachment/embed text: the status sentence (if any), a blank line, the alert message."""
    group_message = message.group.message.strip() if message.group is not None else ""
    sentence = status_sentence(message)
    if sentence is None:
        return group_message
    return f"{sentence}\n\n{group_message}" if group_message else sentence


def severity_of(group: GroupView | None) -> str:
    return (group.severity if group is not None else "info").lower()


def status_color(message: OutboundMessage) -> str:
    """``#rrggbb`` by status, then severity (S6.4)."""
    status = status_of(message)
    if status == "resolved":
        return COLOR_RESOLVED
    if status == "acknowledged":
        return COLOR_WARNING
    severity = severity_of(message.group)
    if severity in ("critical", "high"):
        return COLOR_CRITICAL
    if severity in ("medium", "warning"):
        return COLOR_WARNING
    return COLOR_INFO


def team_of(group: GroupView | None) -> str:
    if group is None:
        return ""
    return group.team_name or group.team_slug


def field_values(message: OutboundMessage) -> list[tuple[str, str]]:
    """``(label, value)`` of Team, Category, Status, Severity, Assignee, Source; ``-`` when unknown."""
    group = message.group
    return [
        ("Team", team_of(group) or "-"),
        ("Category", (group.category if group else None) or "-"),
        ("Status", status_of(message)),
        ("Severity", severity_of(group) if group else "-"),
        ("Assignee", (group.assignee if group else None) or "-"),
        ("Source", (group.source if group else "") or "-"),
    ]


def button_actions(message: OutboundMessage) -> tuple[str, ...]:
    """Actions offered by buttons: firing → acknowledge + resolve, acknowledged → resolve, else none."""
    if message.group is None or message.event_type == "test":
        return ()
    status = status_of(message)
    if status == "firing":
        return ("acknowledge", "resolve")
    if status == "acknowledged":
        return ("resolve",)
    return ()


def alert_id_text(message: OutboundMessage) -> str:
    return str(message.group.id) if message.group is not None and message.event_type != "test" else "test"


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """``text`` cut to ``limit`` characters, ending in ``ellipsis`` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ellipsis), 0)] + ellipsis


def hmac_hex(key: str | bytes, message: str) -> str:
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.new(raw, message.encode("utf-8"), hashlib.sha256).hexdigest()


def header_value(headers: Mapping[str, str] | Any, name: str) -> str | None:
    """A header from a plain mapping (any case) or a case-insensitive headers object."""
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)
        if value is not None:
            return str(value)
    wanted = name.lower()
    for key, value in dict(headers).items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def is_public_url(url: str | None) -> bool:
    """Whether ``url`` is an http(s) URL with a host chat services accept in buttons.

    Telegram refuses ``localhost`` and IP-address URLs in inline keyboards.
    """
    if not url:
        return False
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or host == "localhost" or "." not in host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False
