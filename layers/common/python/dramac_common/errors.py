"""The error envelope and the exceptions that map to it, in one place.

Every failure a client can cause is an ``ApiError``; the API factory turns it into
``{"success": false, "error": "<for a person>", "code": "<machine_code>"}`` with its status.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: list[Any] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.message, self.code, self.details)


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class ValidationFailed(ApiError):
    status = 400
    code = "validation_error"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class PaymentRequired(ApiError):
    status = 402
    code = "payment_required"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class Throttled(ApiError):
    status = 429
    code = "throttled"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


def error_envelope(message: str, code: str, details: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": message, "code": code}
    if details is not None:
        body["details"] = details
    return body


def success_envelope(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}
