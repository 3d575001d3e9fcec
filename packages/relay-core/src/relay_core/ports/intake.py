"""The intake source port (SPEC S2, S7.12): a request body in, normalized alerts out.

Built-in sources (``relay_adapters.intake``) and plugin sources registered through
``relay_register_intake_sources`` implement it. A source is a class; the registry
instantiates it without arguments, keys it by ``name`` and serves it at
``/api/integrations/<name>`` (plus ``path_aliases``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol, runtime_checkable

from relay_core.domain.intake import ItemError, ParsedItem
from relay_core.domain.model import Route

__all__ = ["IntakeSource", "ItemError", "ParsedItem", "VerifyingIntakeSource"]


@runtime_checkable
class IntakeSource(Protocol):
    """Parses one intake request body into normalized alerts (S2.4).

    ``parse`` is pure: no I/O, no clock, no storage. It returns one entry per input item, in
    input order: a :class:`~relay_core.domain.model.NormalizedAlert`, or an
    :class:`~relay_core.domain.intake.ItemError` for an item that fails on its own (for example
    an unknown webhook ``status``) so that one bad item does not fail the others. The intake
    service answers an ``ItemError`` as a ``failed`` response item (S2.15).

    Whole-request problems raise instead, and then nothing is stored:
    :class:`~relay_core.domain.intake.InvalidJson` (400 ``invalid_json``) or
    :class:`~relay_core.domain.errors.IntakeValidationError` (400 ``validation_error`` with
    ``details`` such as ``{"loc": "$.alerts[0].labels", "message": "expected a mapping"}``).

    Sources return full-fidelity values; the intake service applies
    :func:`~relay_core.domain.intake.apply_field_limits` to every alert (S2.3) and records the
    ``labels_truncated`` trace step from its flag.
    """

    name: ClassVar[str]
    """Source key stored on alerts and routes, and the path ``/api/integrations/<name>``."""
    path_aliases: ClassVar[tuple[str, ...]]
    """Further paths under ``/api/integrations/`` served by this source."""
    content_types: ClassVar[tuple[str, ...]]
    """Accepted media types, compared without parameters (``application/json``); else 415."""
    default_group_by: ClassVar[tuple[str, ...]]
    """``group_by`` suggested for new routes of this source (S2.13); never applied automatically."""

    def parse(self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]) -> list[ParsedItem]:
        """Decode ``body`` and map each item (see the class docstring for errors)."""
        ...


@runtime_checkable
class VerifyingIntakeSource(IntakeSource, Protocol):
    """An intake source that also checks a request signature before ``parse``.

    ``verify`` is optional on sources: the intake service calls it when the source has it,
    after token authentication and before parsing. ``route`` is the route forced by the
    intake token, or ``None`` (then there is no per-route secret to check against).
    """

    def verify(self, headers: Mapping[str, str], body: bytes, route: Route | None) -> None:
        """Return quietly, or raise :class:`~relay_core.domain.errors.Unauthorized`
        with code ``invalid_signature`` (401)."""
        ...
