"""The error envelope and the exceptions that map to it, in one place.

Every failure a client can cause is an ``ApiError``; the API factory turns it into
``{"success": false, "error": "<for a person>", "code": "<machine_code>"}`` with its status.

Database errors are mapped by SQLSTATE in ``DATABASE_ERRORS`` (the exact code first, then its
two-character class): values the database refuses are 4xx, only real unavailability is 503, and the
message never repeats PostgreSQL's own text or names. The API factory's handler and the module data
SDK (which adds the caller's column) both map through it; workers use it to tell a retryable outage
from a permanent refusal.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: list[Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details
        self.headers = headers  # sent with the error (429's Retry-After)

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


class DatabaseErrorRule(NamedTuple):
    status: int
    code: str
    message: str  # for a person, when no field can be named
    about_field: str  # follows "<field>: " when the caller's field is known
    retryable: bool = False  # the same request later may succeed (outage, timeout, a lost race)


_UNAVAILABLE = DatabaseErrorRule(503, "database_unavailable", "The database is unavailable, try again shortly",
                                 "could not be written: the database is unavailable, try again shortly", True)
# A concurrent request won a race the request's guarded statements could not avoid: the request
# changed nothing, and repeating it answers as a sequential repeat would (never a 5xx).
_CONCURRENT = DatabaseErrorRule(409, "conflict_retry", "A concurrent request changed the same data; repeat the request",
                                "was changed by a concurrent request; repeat the request", True)

# SQLSTATE (five characters) or SQLSTATE class (two) -> how the caller hears about it.
DATABASE_ERRORS: dict[str, DatabaseErrorRule] = {
    # 08 connection exception, 53 insufficient resources (53300 too many connections), 57P0x shutdown:
    # the database cannot serve now; nothing was wrong with the request
    "08": _UNAVAILABLE,
    "53": _UNAVAILABLE,
    "57P01": _UNAVAILABLE,
    "57P02": _UNAVAILABLE,
    "57P03": _UNAVAILABLE,
    "57014": DatabaseErrorRule(503, "database_timeout", "The database took too long to answer, try again",
                               "took too long to process, try again", True),
    # 40 transaction rollback (serialization failure, deadlock): a concurrent request won
    "40": _CONCURRENT,
    # 55P03 lock not available (lock_timeout): another transaction holds what this one needs
    "55P03": _CONCURRENT,
    # 22 data exception: a value the request carried
    "22": DatabaseErrorRule(400, "invalid_value", "A value in the request is out of range or malformed",
                            "is out of range or malformed for its type"),
    "22001": DatabaseErrorRule(400, "value_too_long", "A value is longer than its field allows",
                               "is longer than the column allows"),
    "22003": DatabaseErrorRule(400, "invalid_value", "A number in the request is out of range",
                               "is out of range for its type"),
    "22021": DatabaseErrorRule(400, "invalid_character", "A value contains a character that cannot be stored",
                               "contains a character that cannot be stored (such as \\u0000)"),
    "22P05": DatabaseErrorRule(400, "invalid_character", "A value contains a character that cannot be stored",
                               "contains a character that cannot be stored (such as \\u0000)"),
    # 21000 cardinality violation: one statement would change the same row twice (an upsert naming a row
    # twice in one request)
    "21": DatabaseErrorRule(400, "duplicate_in_request", "The request names the same row more than once",
                            "names the same row more than once in one request"),
    # 23 integrity constraint violation: say which rule the request broke
    "23": DatabaseErrorRule(409, "conflict", "The request conflicts with existing data", "conflicts with existing data"),
    "23502": DatabaseErrorRule(400, "missing_value", "A required value is missing", "is required"),
    "23503": DatabaseErrorRule(400, "invalid_reference", "The request refers to something that does not exist",
                               "refers to a row that does not exist"),
    "23505": DatabaseErrorRule(409, "unique_violation", "Something with these values already exists",
                               "a row with this value already exists"),
    "23514": DatabaseErrorRule(400, "check_violation", "A value breaks one of the rules of its field",
                               "breaks the rule the module sets for this column"),
    "23P01": DatabaseErrorRule(409, "conflict", "The request conflicts with existing data",
                               "conflicts with an existing row"),
    # 54 program limit exceeded: the request is too large or too complex for the database's limits
    "54": DatabaseErrorRule(400, "limit_exceeded", "The request exceeds a limit of the database",
                            "exceeds a limit of the database"),
    "54000": DatabaseErrorRule(400, "value_too_large", "A value is too large to be indexed",
                               "is too large for an index on this column (at most about 2,700 bytes)"),
    "54001": DatabaseErrorRule(400, "too_complex", "The request is nested or combined too deeply to process",
                               "is nested too deeply to process"),
    # 42501 insufficient privilege: row-level security refused a row the shared layer let through
    "42501": DatabaseErrorRule(404, "not_found", "Not found", "was not found"),
}


def database_error_rule(exc: BaseException) -> DatabaseErrorRule | None:
    """The rule for a psycopg error: its SQLSTATE, else its class. Errors psycopg raises itself carry no
    SQLSTATE: operational ones (connection lost, pool exhausted) are unavailability."""
    state = getattr(exc, "sqlstate", None)
    if state:
        return DATABASE_ERRORS.get(state) or DATABASE_ERRORS.get(state[:2])
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    if "OperationalError" in kinds:
        return _UNAVAILABLE
    if "DataError" in kinds:  # psycopg refused to send a value (a NUL in a string): the caller's value
        return DATABASE_ERRORS["22"]
    return None


def database_error(exc: BaseException, *, field: str | None = None, where: str | None = None) -> ApiError | None:
    """The ``ApiError`` a database error means to the caller (``None``: a defect of ours, a 500).
    ``field`` names the caller's field (a module table's column), ``where`` the caller's thing (a table)."""
    rule = database_error_rule(exc)
    if rule is None:
        return None
    if field:
        message = f"{field}: {rule.about_field}"
        details: list[Any] | None = [{"field": field, "message": rule.about_field}]
    else:
        message = f"{where}: {rule.message}" if where else rule.message
        details = None
    kind = {400: ValidationFailed, 404: NotFound, 409: Conflict, 503: ServiceUnavailable}.get(rule.status, ApiError)
    error = kind(message, code=rule.code, details=details)
    error.status = rule.status
    return error


def is_unavailable(exc: BaseException) -> bool:
    """A database error worth retrying later (an outage, a timeout, a lost race), not a refusal."""
    rule = database_error_rule(exc)
    return rule is not None and rule.retryable
