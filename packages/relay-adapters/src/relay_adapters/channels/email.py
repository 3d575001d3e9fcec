"""The ``email`` channel: one multipart (text + HTML) message per recipient over SMTP (SPEC S6.9).

SMTP comes from the global ``[smtp]`` section (:class:`~relay_adapters.channels._common.SmtpOptions`
in the channel environment): STARTTLS is required by default (a server that does not offer it is
refused, never used in clear), implicit TLS with ``use_ssl``, AUTH only when ``user`` is set. The
blocking :mod:`smtplib` session runs in a worker thread.

Recipients: the person the delivery is for (``to_assignee``, the default) and the configured
``recipients``. Messages of one group thread together: the first notification's ``Message-ID``
is ``<relay.<group>.<channel>@<domain>>`` and every later message names it in ``In-Reply-To`` and
``References``. Templates use ``{placeholder}`` names only (no attribute access or format
specs); unknown placeholders stay as written and HTML values are escaped.

SMTP 4yz answers are retryable, 5yz permanent (S5.9).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import html
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any, ClassVar, Final

import attrs

from relay_adapters.channels._common import (
    ChannelEnvironment,
    CommonConfig,
    SmtpOptions,
    alert_id_text,
    field_values,
    plain_text,
    prefixed_title,
    status_color,
    status_of,
    structure_config,
    team_of,
    title_of,
)
from relay_core.ports.channels import (
    ChannelCapabilities,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

__all__ = [
    "DEFAULT_SUBJECT_TEMPLATE",
    "EmailChannel",
    "EmailConfig",
    "build_email",
    "render_template",
    "template_values",
]

DEFAULT_SUBJECT_TEMPLATE: Final = "[{event_type}] [{severity}] {title} (#{alert_id})"
MISSING_EMAIL: Final = "email recipient is missing: set email on the assigned user"
_PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ADDRESS: Final = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def _addresses(_instance: object, attribute: attrs.Attribute[Any], value: Sequence[str]) -> None:
    for address in value:
        if not _ADDRESS.match(address.strip()):
            raise ValueError(f"{attribute.name}: {address!r} is not an e-mail address")


def _address_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())
    return tuple(str(part).strip() for part in value if str(part).strip())


@attrs.frozen(kw_only=True)
class EmailConfig(CommonConfig):
    """Configuration of an ``email`` channel."""

    to_assignee: bool = True
    """Send to the person the delivery is for (the assignee, or the tester for ``test``)."""
    recipients: tuple[str, ...] = attrs.field(default=(), converter=_address_list, validator=_addresses)
    to: tuple[str, ...] = attrs.field(default=(), converter=_address_list, validator=_addresses)
    """Alias of ``recipients``."""
    subject_template: str = DEFAULT_SUBJECT_TEMPLATE
    html_template: str | None = None
    text_template: str | None = None


# --- rendering ----------------------------------------------------------------------------------


def template_values(message: OutboundMessage) -> dict[str, str]:
    """The placeholder values of S6.9 (raw; HTML templates get them escaped)."""
    group = message.group
    values = dict(field_values(message))
    return {
        "event_type": message.event_type,
        "title": title_of(message),
        "message": group.message if group else "",
        "alert_id": alert_id_text(message),
        "team": team_of(group),
        "category": (group.category or "") if group else "",
        "status": status_of(message),
        "severity": group.severity if group else "",
        "assignee": (group.assignee or "") if group else "",
        "source": (group.source or "") if group else "",
        "alert_url": (group.alert_url or "") if group else "",
        "ack_url": message.action_links.acknowledge or "",
        "resolve_url": message.action_links.resolve or "",
        "text": plain_text(message),
        "fields": "\n".join(f"{label}: {value}" for label, value in values.items()),
    }


def render_template(template: str, values: Mapping[str, str], *, escape: bool = False) -> str:
    """Replace ``{name}`` by ``values[name]``; unknown names (and anything else) stay literal."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        return html.escape(value) if escape else value

    return _PLACEHOLDER.sub(substitute, template)


def _default_text(message: OutboundMessage) -> str:
    lines = [plain_text(message)]
    links = message.action_links
    if links.acknowledge or links.resolve:
        lines.append("")
    if links.acknowledge:
        lines.append(f"Acknowledge: {links.acknowledge}")
    if links.resolve:
        lines.append(f"Resolve: {links.resolve}")
    return "\n".join(lines) + "\n"


def _button(url: str, label: str, color: str) -> str:
    return (
        f'<a href="{html.escape(url)}" style="display:inline-block;padding:8px 16px;margin-right:8px;'
        f'background:{color};color:#ffffff;text-decoration:none;border-radius:4px">{html.escape(label)}</a>'
    )


def _default_html(message: OutboundMessage) -> str:
    group = message.group
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{html.escape(label)}</th>'
        f"<td>{html.escape(value)}</td></tr>"
        for label, value in field_values(message)
    )
    body = html.escape(group.message) if group is not None and group.message else ""
    buttons = []
    if message.action_links.acknowledge:
        buttons.append(_button(message.action_links.acknowledge, "Acknowledge", "#f0ad4e"))
    if message.action_links.resolve:
        buttons.append(_button(message.action_links.resolve, "Resolve", "#2e7d32"))
    if group is not None and group.alert_url:
        buttons.append(_button(group.alert_url, "Open alert", "#4a90e2"))
    source = (
        f'<p><a href="{html.escape(group.event_link)}">Source event</a></p>'
        if group is not None and group.event_link
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html><body style="font-family:sans-serif">'
        f'<h2 style="border-left:6px solid {status_color(message)};padding-left:8px">'
        f"{html.escape(prefixed_title(message))}</h2>"
        f"<table>{rows}</table>"
        + (f'<p style="white-space:pre-wrap">{body}</p>' if body else "")
        + (f"<p>{''.join(buttons)}</p>" if buttons else "")
        + source
        + "</body></html>\n"
    )


def _domain(address: str) -> str:
    _, parsed = parseaddr(address)
    domain = parsed.rpartition("@")[2].strip().lower()
    return domain or "relay.invalid"


def thread_root_id(message: OutboundMessage, domain: str) -> str | None:
    """The ``Message-ID`` of the group's first message in this channel (``None`` without a group)."""
    if message.group is None or message.event_type == "test":
        return None
    return f"<relay.{message.group.id}.{message.channel.id}@{domain}>"


def _message_id(message: OutboundMessage, recipient: str, domain: str) -> str:
    if message.event_type == "notification":
        root = thread_root_id(message, domain)
        if root is not None:
            return root
    # Stable across retries of one intent (a resend is recognisably the same message).
    digest = hashlib.sha256(f"{message.idempotency_key}\0{recipient.lower()}".encode()).hexdigest()[:24]
    return f"<relay.{digest}@{domain}>"


def build_email(
    message: OutboundMessage, config: EmailConfig, *, sender: str, recipient: str
) -> EmailMessage:
    """The multipart/alternative message for one recipient."""
    values = template_values(message)
    subject = render_template(config.subject_template, values)
    text = render_template(config.text_template, values) if config.text_template else _default_text(message)
    body_html = (
        render_template(config.html_template, values, escape=True)
        if config.html_template
        else _default_html(message)
    )
    domain = _domain(sender)
    email = EmailMessage()
    email["Subject"] = " ".join(subject.split())
    email["From"] = sender
    email["To"] = recipient
    email["Date"] = format_datetime(message.clock.now().astimezone(dt.UTC))
    message_id = _message_id(message, recipient, domain)
    email["Message-ID"] = message_id
    root = thread_root_id(message, domain)
    if root is not None and root != message_id:
        email["In-Reply-To"] = root
        email["References"] = root
    email["Auto-Submitted"] = "auto-generated"
    email["X-Auto-Response-Suppress"] = "All"
    if message.group is not None:
        email["X-Relay-Alert-Id"] = str(message.group.id)
    email["X-Relay-Event"] = message.event_type
    email.set_content(text)
    email.add_alternative(body_html, subtype="html")
    return email


# --- SMTP ---------------------------------------------------------------------------------------


class _SmtpFailure(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def _smtp_code_failure(code: int, text: bytes | str, what: str) -> _SmtpFailure:
    detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    detail = " ".join(detail.split())[:200]
    return _SmtpFailure(f"SMTP {what} answered {code} {detail}".rstrip(), permanent=500 <= code < 600)


def _deliver(
    options: SmtpOptions, sender: str, emails: Sequence[tuple[str, EmailMessage]]
) -> dict[str, _SmtpFailure | None]:
    """Send each message in one SMTP session; returns recipient → failure (``None`` when sent)."""
    context = options.ssl_context or ssl.create_default_context()
    outcome: dict[str, _SmtpFailure | None] = {}
    try:
        smtp: smtplib.SMTP
        if options.use_ssl:
            smtp = smtplib.SMTP_SSL(
                options.host, options.port, timeout=options.timeout_seconds, context=context
            )
        else:
            smtp = smtplib.SMTP(options.host, options.port, timeout=options.timeout_seconds)
        with smtp:
            smtp.ehlo()
            if options.use_tls and not options.use_ssl:
                if not smtp.has_extn("starttls"):
                    raise _SmtpFailure(
                        "SMTP server does not offer STARTTLS (smtp.use_tls is true): "
                        "refusing to send in clear",
                        permanent=True,
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if options.user:
                smtp.login(options.user, options.password)
            for recipient, email in emails:
                try:
                    smtp.send_message(email, from_addr=sender, to_addrs=[recipient])
                    outcome[recipient] = None
                except smtplib.SMTPRecipientsRefused as exc:
                    code, text = next(iter(exc.recipients.values()), (550, b"refused"))
                    outcome[recipient] = _smtp_code_failure(code, text, "RCPT")
                    smtp.rset()
                except smtplib.SMTPSenderRefused:
                    raise
                except smtplib.SMTPResponseException as exc:
                    outcome[recipient] = _smtp_code_failure(exc.smtp_code, exc.smtp_error, "DATA")
                    smtp.rset()
    except _SmtpFailure:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise _SmtpFailure(f"SMTP authentication failed ({exc.smtp_code})", permanent=True) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise _SmtpFailure(
            f"SMTP server does not support a required extension: {exc}", permanent=True
        ) from exc
    except smtplib.SMTPSenderRefused as exc:
        raise _smtp_code_failure(exc.smtp_code, exc.smtp_error, "MAIL FROM") from exc
    except smtplib.SMTPResponseException as exc:
        raise _smtp_code_failure(exc.smtp_code, exc.smtp_error, "session") from exc
    except ssl.SSLCertVerificationError as exc:
        raise _SmtpFailure(
            f"SMTP server certificate is not trusted: {exc.verify_message}", permanent=True
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise _SmtpFailure(f"SMTP connection failed: {type(exc).__name__}: {exc}", permanent=False) from exc
    return outcome


class EmailChannel:
    """Relay channel type ``email`` (S6.9)."""

    name: ClassVar[str] = "email"
    label: ClassVar[str] = "E-mail"
    Config: ClassVar[type[Any]] = EmailConfig
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        supports_update=False, supports_actions=True, person_addressed=True
    )

    def __init__(self, *, env: ChannelEnvironment | None = None) -> None:
        self.env = env or ChannelEnvironment()

    def recipients(self, message: OutboundMessage, config: EmailConfig) -> list[str]:
        """Who gets this delivery: the addressed person (``to_assignee``) and ``recipients``.

        Raises:
            PermanentDeliveryError: The addressed person has no e-mail, or nobody is left.
        """
        found: list[str] = []
        if config.to_assignee and message.recipient is not None:
            if not message.recipient.email:
                raise PermanentDeliveryError(MISSING_EMAIL)
            found.append(message.recipient.email.strip())
        found.extend((*config.recipients, *config.to))
        unique = list(dict.fromkeys(address for address in found if address))
        if not unique:
            raise PermanentDeliveryError(MISSING_EMAIL if config.to_assignee else "email has no recipients")
        return unique

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Send one message per recipient in one SMTP session."""
        config = structure_config(EmailConfig, message.channel.config, self.name)
        options = self.env.smtp
        if not options.host:
            raise PermanentDeliveryError("email needs smtp.host in the settings")
        sender = options.from_address or (
            f"relay@{options.host}" if "." in options.host else "relay@localhost"
        )
        if "<" not in sender:
            sender = formataddr(("Relay", sender))
        _, envelope_sender = parseaddr(sender)
        addressed = self.recipients(message, config)
        emails = [(to, build_email(message, config, sender=sender, recipient=to)) for to in addressed]
        try:
            outcome = await asyncio.to_thread(_deliver, options, envelope_sender, emails)
        except _SmtpFailure as exc:
            if exc.permanent:
                raise PermanentDeliveryError(exc.message) from exc
            raise RetryableDeliveryError(exc.message) from exc
        failed = {to: failure for to, failure in outcome.items() if failure is not None}
        if failed and len(failed) == len(emails):
            if len(failed) == 1:
                only = next(iter(failed.values()))
                detail = only.message
            else:
                detail = "; ".join(f"{_mask(to)}: {failure.message}" for to, failure in failed.items())
            if all(failure.permanent for failure in failed.values()):
                raise PermanentDeliveryError(detail)
            raise RetryableDeliveryError(detail)
        first = emails[0][1]
        return DeliveryResult(
            provider=self.name,
            external_message_id=str(first["Message-ID"]),
            external_channel_id=None,
            provider_status="partial" if failed else "sent",
            provider_payload={
                "recipients": [_mask(to) for to in addressed],
                "failed": {_mask(to): failure.message for to, failure in failed.items()},
            },
        )

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult:
        """E-mail cannot be edited: send the new state as another message in the thread."""
        return await self.send(message)


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
