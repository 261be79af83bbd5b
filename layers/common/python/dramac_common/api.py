"""The HTTP function factory: a FastAPI app behind Mangum, with Powertools and the error envelope.

``create_app`` builds the app with every exception mapped to the contract's envelope in one place;
``lambda_handler`` wraps it for API Gateway (HTTP API, payload v2) with a Logger whose correlation
id is the API Gateway request id, Metrics and Tracer. Mangum runs with ``lifespan="off"``:
resources (the database pool, AWS clients) are created lazily once per container instead of
running a lifespan cycle on every invocation.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import psycopg
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from mangum import Mangum
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ApiError, PayloadTooLarge, Unauthorized, error_envelope
from .settings import get_settings
from .tenancy import Caller

T = TypeVar("T")
logger = Logger(service="dramac")


class CamelModel(BaseModel):
    """Response and request models: snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T


def envelope(data: Any, status_code: int = 200) -> JSONResponse:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True)
    elif isinstance(data, list):
        data = [d.model_dump(mode="json", by_alias=True) if isinstance(d, BaseModel) else d for d in data]
    return JSONResponse({"success": True, "data": data}, status_code=status_code)


def error_response(status: int, message: str, code: str, details: list[Any] | None = None) -> JSONResponse:
    return JSONResponse(error_envelope(message, code, details), status_code=status)


def _validation_details(exc: RequestValidationError) -> tuple[str, str, list[dict[str, Any]]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        details.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid"), "type": err.get("type")})
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return "The request body is not valid JSON", "invalid_json", details
    first = details[0] if details else {"field": None, "message": "invalid input"}
    where = f"{first['field']}: " if first["field"] else ""
    return f"Invalid request: {where}{first['message']}", "validation_error", details


def create_app(title: str) -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url="/openapi.json")

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.envelope(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, code, details = _validation_details(exc)
        return error_response(400, message, code, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "route_not_found", 405: "method_not_allowed"}
        message = {404: "No such route", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message, codes.get(exc.status_code, "http_error"))

    @app.exception_handler(psycopg.errors.InsufficientPrivilege)
    async def _rls_denied(_: Request, exc: psycopg.Error) -> JSONResponse:
        # Row-level security refused a row the shared layer let through: never reveal why.
        logger.warning("row-level security refused a statement", extra={"sqlstate": exc.sqlstate})
        return error_response(404, "Not found", "not_found")

    @app.exception_handler(psycopg.errors.DataError)
    async def _data_error(_: Request, exc: psycopg.Error) -> JSONResponse:
        # A value the request carried that validation let through but PostgreSQL refuses
        # (out of range, malformed): the caller's input, so a 400, never a 5xx.
        logger.warning("database refused a value", extra={"sqlstate": exc.sqlstate})
        return error_response(400, "A value in the request is out of range or malformed", "invalid_value")

    # The last line of defence of "identical requests at the same moment": every write path is one
    # guarded statement (or re-reads in a new statement), so these should not happen; if a twin still
    # wins a race (class 40: serialization failure, deadlock; 23505: a unique key taken meanwhile), the
    # request changed nothing and repeating it answers as a sequential repeat would. Never a 5xx.
    async def _concurrent_change(_: Request, exc: psycopg.Error) -> JSONResponse:
        logger.warning("a concurrent change rolled the request back", extra={"sqlstate": exc.sqlstate})
        return error_response(409, "A concurrent request changed the same data; repeat the request", "conflict_retry")

    # psycopg maps each class-40 SQLSTATE to its own sibling class (none derives from TransactionRollback)
    for rolled_back in (psycopg.errors.TransactionRollback, psycopg.errors.SerializationFailure,
                        psycopg.errors.DeadlockDetected):
        app.add_exception_handler(rolled_back, _concurrent_change)

    @app.exception_handler(psycopg.errors.UniqueViolation)
    async def _unique_taken(_: Request, exc: psycopg.Error) -> JSONResponse:
        logger.warning("a unique key was taken by a concurrent request", extra={"sqlstate": exc.sqlstate})
        return error_response(409, "A concurrent request created the same data; repeat the request", "conflict_retry")

    @app.exception_handler(psycopg.OperationalError)
    async def _db_unavailable(_: Request, exc: psycopg.Error) -> JSONResponse:
        logger.exception("database unavailable")
        return error_response(503, "The database is unavailable, try again shortly", "database_unavailable")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return error_response(500, "Internal error", "internal_error")

    return app


def current_caller(request: Request) -> Caller:
    """The caller from the JWT claims API Gateway's authorizer verified (``dramac dev`` locally)."""
    event = request.scope.get("aws.event") or {}
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims")
    if not isinstance(claims, dict):
        raise Unauthorized("Sign in to use this API", code="unauthorized")
    return Caller.from_claims(claims)


def _body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode("utf-8")) if isinstance(body, str) else len(body)


def _too_large_response(limit: int) -> dict[str, Any]:
    return {
        "statusCode": 413,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(error_envelope(f"The request body is larger than {limit} bytes", PayloadTooLarge.code)),
        "isBase64Encoded": False,
    }


def tracing_enabled() -> bool:
    """X-Ray tracing runs in Lambda unless POWERTOOLS_TRACE_DISABLED is set."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and not disabled


def traced(service: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Powertools Tracer around a handler, built only where tracing runs: constructing a Tracer
    imports the X-Ray SDK (a few hundred ms of cold start), which is wasted where it is disabled."""
    if not tracing_enabled():
        return lambda fn: fn
    from aws_lambda_powertools import Tracer

    return Tracer(service=service).capture_lambda_handler(capture_response=False)


def lambda_handler(app: FastAPI, *, service: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for an HTTP function."""
    fn_logger = Logger(service=service)
    metrics = Metrics(namespace="Dramac", service=service)
    asgi = Mangum(app, lifespan="off")

    @fn_logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @traced(service)
    @metrics.log_metrics(raise_on_empty_metrics=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        limit = get_settings().max_body_bytes
        if _body_size(event) > limit:
            response = _too_large_response(limit)
        else:
            response = asgi(event, context)
        status = int(response.get("statusCode", 500))
        metrics.add_metric(name=f"Http{status // 100}xx", unit=MetricUnit.Count, value=1)
        return response

    return handler


def decode_body(event: dict[str, Any]) -> bytes:
    """The raw request body of an API Gateway v2 event (webhook signatures are over these bytes)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")
