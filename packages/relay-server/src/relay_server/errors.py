"""HTTP error bodies (SPEC S9.5): every error answer is ``{"error", "message", "details"}``.

Domain errors (:class:`relay_core.domain.errors.RelayError`) carry their own code and status.
Litestar's own exceptions (routing 404/405, body validation, oversized bodies) are translated
into the same shape, and anything unexpected becomes a 500 ``internal_error`` with an
``error_id`` that is logged next to the traceback, so an operator can find it (S10.6).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from relay_core.domain.errors import RelayError

__all__ = [
    "ApiError",
    "error_body",
    "error_response",
    "exception_handlers",
    "forbidden",
    "not_found",
    "unauthorized",
    "validation_error",
]

log = logging.getLogger("relay.server")

RETRY_AFTER_SECONDS = 5
STORAGE_UNAVAILABLE_MESSAGE = "alert storage is temporarily unavailable"


class ApiError(RelayError):
    """An HTTP-level error raised by the server shell with an explicit status and code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Sequence[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, details=details, code=code, extra=extra)
        self.status = status  # type: ignore[misc]  # instance override of the class default
        self.headers = dict(headers or {})


def error_body(
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """The S9.5 body."""
    body: dict[str, Any] = {"error": code, "message": message, "details": [dict(d) for d in details]}
    body.update(extra)
    return body


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    return Response(
        error_body(code, message, details, **extra),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str = "You do not have permission to perform this action") -> ApiError:
    return ApiError(403, "permission_denied", message)


def unauthorized(message: str = "Authentication is required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def validation_error(message: str, details: Sequence[Mapping[str, Any]] = ()) -> ApiError:
    return ApiError(400, "validation_error", message, details=details)


def storage_unavailable() -> ApiError:
    return ApiError(
        503,
        "storage_unavailable",
        STORAGE_UNAVAILABLE_MESSAGE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _relay_error(request: Request[Any, Any, Any], exc: RelayError) -> Response[dict[str, Any]]:
    headers = dict(getattr(exc, "headers", {}) or {})
    if exc.code == "storage_unavailable":
        headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
    body = exc.as_dict()
    body["details"] = [_clean_detail(d) for d in body.get("details") or ()]
    return Response(body, status_code=int(exc.status), headers=headers, media_type="application/json")


def _clean_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(detail)
    loc = out.get("loc")
    # Body locations are JSONPath (``$.field``); query/path/header ones keep their prefix.
    if isinstance(loc, str) and loc and not loc.startswith(("$", "query.", "path.", "header.")):
        out["loc"] = "$." + loc
    return out


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")
_AT_PATH = re.compile(r" - at `(\$[^`]*)`")


def _validation_details(exc: ValidationException) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, Mapping):
            continue
        message = str(item.get("message") or "invalid value")
        key = str(item.get("key") or "")
        source = str(item.get("source") or "")
        path_match = _AT_PATH.search(message)
        unknown = _UNKNOWN_FIELD.search(message)
        if path_match:
            loc = path_match.group(1)
            message = message[: path_match.start()]
        elif source == "body":
            loc = "$" if key in ("", "data") else f"$.{key}"
        else:
            loc = f"{source}.{key}" if source else key
        if unknown:
            base = loc if loc != "$.data" else "$"
            loc = f"{base}.{unknown.group(1)}" if base != "$" else f"$.{unknown.group(1)}"
            details.append({"loc": loc, "message": "unknown field", "type": "extra_forbidden"})
            continue
        details.append({"loc": loc, "message": message, "type": "invalid"})
    return details


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    headers = dict(exc.headers or {})
    if isinstance(exc, RequestEntityTooLarge):
        limit = _body_limit(request)
        return error_response(413, "payload_too_large", f"request body exceeds {limit} bytes")
    if isinstance(exc, ValidationException):
        details = _validation_details(exc)
        return error_response(400, "validation_error", "request validation failed", details, headers=headers)
    if isinstance(exc, NotFoundException):
        return error_response(404, "not_found", "not found", headers=headers)
    if isinstance(exc, MethodNotAllowedException):
        return error_response(405, "method_not_allowed", "method not allowed", headers=headers)
    if isinstance(exc, NotAuthorizedException):
        return error_response(401, "unauthorized", "Authentication is required", headers=headers)
    if isinstance(exc, PermissionDeniedException):
        return error_response(403, "permission_denied", str(exc.detail), headers=headers)
    if isinstance(exc, ClientException) and exc.status_code == 400:
        cause = exc.__cause__
        if isinstance(cause, SerializationException | msgspec.DecodeError) or "JSON" in str(exc.detail):
            return error_response(400, "invalid_json", f"request body is not valid JSON: {exc.detail}")
        return error_response(400, "validation_error", str(exc.detail), headers=headers)
    status = exc.status_code
    if status >= 500:
        return _internal(request, exc)
    code = {415: "unsupported_media_type", 429: "too_many_attempts", 409: "conflict"}.get(status, "error")
    return error_response(status, code, str(exc.detail), headers=headers)


def _body_limit(request: Request[Any, Any, Any]) -> int:
    try:
        limit = request.route_handler.resolve_request_max_body_size()
    except Exception:
        limit = None
    return int(limit or 1_048_576)


def _internal(request: Request[Any, Any, Any], exc: BaseException) -> Response[dict[str, Any]]:
    error_id = uuid.uuid4().hex
    # The traceback names code, not data; request headers and bodies are never logged (S13.7).
    log.error(
        "relay.http.unhandled_error error_id=%s method=%s path=%s exception=%s",
        error_id,
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"error_id": error_id},  # a field of its own in the JSON line (S10.6)
    )
    return error_response(500, "internal_error", "Internal server error", error_id=error_id)


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, RelayError):
        return _relay_error(request, exc)
    if isinstance(exc, HTTPException):
        return _http_exception(request, exc)
    return _internal(request, exc)


def exception_handlers() -> dict[type[Exception] | int, Any]:
    """Litestar ``exception_handlers`` mapping for the app."""
    return {
        RelayError: _relay_error,
        HTTPException: _http_exception,
        Exception: _unhandled,
    }
