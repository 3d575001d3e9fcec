"""The channel port: what a channel sender receives, returns and raises (SPEC S6.1, S6.13).

A channel class (built-in or from a plugin) satisfies :class:`ChannelSender`. The dispatcher
builds one :class:`OutboundMessage` per notification intent and hands it to ``send`` (first
delivery) or ``update`` (edit of an earlier delivery, when the channel supports it); the
returned :class:`DeliveryResult` becomes the delivery record. Failures are classified by the
exception raised: :class:`RetryableDeliveryError`, :class:`PermanentDeliveryError`, and any
other exception counts as retryable.

:func:`render_plain_text` is the common plain-text body of S6.1, shared by every channel that
sends plain text (webhook ``text``, Discord, Telegram, the e-mail text part, the SMS base).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from relay_core.ports.clock import Clock

__all__ = [
    "ActionLinks",
    "ChannelCapabilities",
    "ChannelRef",
    "ChannelSender",
    "DeliveryError",
    "DeliveryResult",
    "GroupView",
    "OutboundMessage",
    "PermanentDeliveryError",
    "Recipient",
    "RetryableDeliveryError",
    "render_plain_text",
]


@attrs.frozen(kw_only=True)
class ChannelCapabilities:
    """What a channel type can do; shown by ``GET /api/channels/types``."""

    supports_update: bool = False
    """Earlier messages can be edited (the group's anchor message, S6.1)."""
    supports_actions: bool = False
    """Messages carry Acknowledge/Resolve actions (buttons or signed links)."""
    person_addressed: bool = False
    """Deliveries go to a person (e-mail, SMS, voice), not to a shared room."""


@attrs.frozen(kw_only=True)
class ChannelRef:
    """The configured channel a message goes through."""

    id: int
    name: str
    type: str
    config: Mapping[str, Any] = attrs.field(factory=dict)
    """The channel's validated configuration (secrets decrypted, ``${ENV}`` resolved)."""


@attrs.frozen(kw_only=True)
class GroupView:
    """The alert group as channels see it: display values, no storage ids beyond ``id``."""

    id: int
    title: str
    message: str = ""
    severity: str
    status: str
    team_slug: str = ""
    team_name: str = ""
    category: str | None = None
    assignee: str | None = None
    """Username of the assignee, ``None`` when nobody is assigned."""
    labels: Mapping[str, str] = attrs.field(factory=dict)
    event_link: str | None = None
    alert_url: str | None = None
    """``<public_base_url>/alerts/<id>``."""
    alert_count: int = 1
    firing_count: int = 1
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    source: str = ""


@attrs.frozen(kw_only=True)
class Recipient:
    """The person a person-addressed delivery goes to."""

    user_id: int | None = None
    username: str | None = None
    display_name: str | None = None
    email: str | None = None
    phone: str | None = None


@attrs.frozen(kw_only=True)
class ActionLinks:
    """Signed action links (S6.3) for channels without callbacks; ``None`` when not offered."""

    acknowledge: str | None = None
    resolve: str | None = None


@attrs.frozen(kw_only=True)
class OutboundMessage:
    """One notification intent, ready to deliver."""

    event_type: str
    """One of ``notification update reminder escalation acknowledged resolved test``."""
    intent_id: int
    idempotency_key: str
    channel: ChannelRef
    group: GroupView | None = None
    recipient: Recipient | None = None
    text: str = ""
    """The plain-text body (S6.1), already rendered."""
    action_links: ActionLinks = attrs.field(factory=ActionLinks)
    http: Any = None
    """The outbound HTTP client of S6.2 (an ``httpx.AsyncClient`` in the adapters); ``Any`` in core."""
    clock: Clock


@attrs.frozen(kw_only=True)
class DeliveryResult:
    """What a delivery produced; stored on the delivery record (S1.6)."""

    provider: str
    external_message_id: str | None = None
    external_channel_id: str | None = None
    provider_status: str | None = None
    provider_payload: Mapping[str, Any] = attrs.field(factory=dict)
    skipped: bool = False
    skip_reason: str | None = None


class DeliveryError(Exception):
    """Base of the delivery failures a channel raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableDeliveryError(DeliveryError):
    """The delivery may succeed later (timeouts, 429, 5xx); ``retry_after`` in seconds if known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (bad configuration, 4xx, refused destination)."""


@runtime_checkable
class ChannelSender(Protocol):
    """A channel type (S6.13). Constructed without arguments; configuration arrives per message."""

    name: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[Any]]
    capabilities: ClassVar[ChannelCapabilities]

    async def send(self, message: OutboundMessage) -> DeliveryResult: ...

    async def update(self, message: OutboundMessage, previous: DeliveryResult) -> DeliveryResult: ...


def render_plain_text(
    event_type: str,
    group: GroupView,
    *,
    public_base_url: str | None = None,
    title: str | None = None,
) -> str:
    """Render the S6.1 plain-text body of ``group`` for ``event_type``.

    Args:
        event_type: The notification event; its upper-cased name starts the first line.
        group: The group to describe.
        public_base_url: When given, ``Alert URL`` is ``<public_base_url>/alerts/<id>``;
            otherwise ``group.alert_url`` is used.
        title: Replaces the group's title (the test event's "Test notification from Relay").

    Returns:
        One line per non-empty field, joined by newlines, without a trailing newline.
    """
    if public_base_url:
        alert_url: str | None = f"{public_base_url.rstrip('/')}/alerts/{group.id}"
    else:
        alert_url = group.alert_url
    headline_title = group.title if title is None else title
    fields = (
        ("Team", group.team_name or group.team_slug),
        ("Category", group.category),
        ("Status", group.status),
        ("Severity", group.severity),
        ("Assignee", group.assignee),
        ("Source", group.source),
        ("Message", group.message),
        ("Alert URL", alert_url),
        ("Source event", group.event_link),
    )
    lines = [f"{event_type.upper()}: [{group.severity.upper()}] {headline_title}".rstrip()]
    lines.extend(f"{label}: {value.strip()}" for label, value in fields if value and value.strip())
    return "\n".join(lines)
