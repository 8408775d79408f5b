"""One error-body shape for every refusal, and the map from library errors to HTTP statuses.

Every error response, from any endpoint, has this body::

    {"error": {"status": 404, "code": "not_found", "message": "...", "request_id": "3f1c..."}}

Messages come from the library (they name what was refused and why, as
the CLI prints them) or from the service; another tenant's object is "not
found" in exactly the words an id that never existed gets, so an error
body never confirms what a caller may not see.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from datadrive.errors import (
    AccessDeniedError,
    AssistantError,
    AuthenticationError,
    ConfigError,
    ConflictError,
    DatadriveError,
    InputError,
    LakeError,
    MiningError,
    NotFoundError,
    PermissionDeniedError,
    QueryTimeoutError,
    RateLimitError,
    ResidencyError,
    SimulationInputError,
    StorageError,
    TooLargeError,
    UnknownPlaceError,
    UnknownVehicleError,
)

__all__ = ["ERROR_RESPONSES", "ErrorBody", "ErrorDetail", "error_body", "status_of"]


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    request_id: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[DatadriveError], int, str], ...] = (
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (ResidencyError, 403, "residency"),
    (AccessDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (UnknownVehicleError, 404, "not_found"),
    (UnknownPlaceError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (RateLimitError, 429, "rate_limited"),
    (TooLargeError, 413, "too_large"),
    (InputError, 422, "bad_input"),
    (SimulationInputError, 422, "bad_input"),
    (AssistantError, 422, "bad_input"),
    (MiningError, 422, "bad_input"),  # an expression that does not parse, words a description cannot place
    (QueryTimeoutError, 408, "query_timeout"),
    (StorageError, 503, "storage_unavailable"),
    (LakeError, 400, "bad_request"),
    (ConfigError, 400, "bad_request"),
)


def status_of(exc: DatadriveError) -> tuple[int, str]:
    """The HTTP status and error code for a library or service error."""
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def error_body(
    status: int, code: str, message: str, request_id: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON body of an error response."""
    err: dict[str, Any] = {"status": status, "code": code, "message": message, "request_id": request_id}
    if details is not None:
        err["details"] = details
    return {"error": err}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No, unknown, expired or revoked credentials."},
    403: {"model": ErrorBody, "description": "The role, key scope or the data's region policy refuses it."},
    404: {"model": ErrorBody, "description": "No such object, or none you may see."},
    422: {"model": ErrorBody, "description": "The request is malformed."},
    429: {"model": ErrorBody, "description": "Too many requests for this key; see Retry-After."},
}
"""Error responses every authenticated endpoint documents."""
