"""Domain errors. Shells translate them into HTTP answers (SPEC S9.5) or CLI exit codes.

Each error carries a machine ``code`` (the ``error`` field of the JSON body), a human
``message`` and optional ``details`` (a list of ``{"loc", "message"}`` mappings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class RelayError(Exception):
    """Base of every error Relay raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(
        self,
        message: str,
        *,
        details: Sequence[Mapping[str, Any]] = (),
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = [dict(d) for d in details]
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.extra = dict(extra or {})

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message, "details": self.details}
        body.update(self.extra)
        return body


class ValidationError(RelayError):
    """Input breaks a rule; ``details`` lists each field."""

    code = "validation_error"
    status = 400


class IntakeValidationError(ValidationError):
    """An intake body failed its source's schema (SPEC S2.3)."""


class NotFound(RelayError):
    code = "not_found"
    status = 404


class Conflict(RelayError):
    code = "conflict"
    status = 409


class PermissionDenied(RelayError):
    code = "permission_denied"
    status = 403


class Unauthorized(RelayError):
    code = "unauthorized"
    status = 401


class StorageUnavailable(RelayError):
    """The database cannot be reached or locked in time (SPEC S2.16)."""

    code = "storage_unavailable"
    status = 503

    def __init__(self, message: str = "alert storage is temporarily unavailable") -> None:
        super().__init__(message)
