"""The step types: each one's config validation and executor.

Kinds decide how the engine runs a step (see ``engine``):
- ``local`` (condition): no effect outside the execution; logged in one transaction.
- ``database`` (set_variable, create_record, update_record): the effect runs in the same
  transaction as the step's log row, so it commits exactly once.
- ``external`` (http_request, send_email): the attempt is recorded before the call and the result
  after it; see ``engine`` for what a crash in between means for each.
- ``delay``: the execution waits and is resumed by a delayed queue message.

Configs may carry more keys than listed (they are kept); templates are validated here and rendered
by the engine just before a step runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..core import aws, jsonbody
from ..core.db import Unit
from ..core.errors import ApiError
from ..core.settings import get_settings
from . import dal, outbound
from .filters import OPERATORS, FilterError, evaluate_condition, validate_operand
from .templates import TemplateError, validate_path, validate_templates

MAX_DELAY_S = 30 * 24 * 3600
EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+\Z")
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")


class Outcome(Enum):
    CONTINUE = "continue"
    STOP = "stop"  # a false condition: the execution completes, later steps are skipped
    WAIT = "wait"  # a delay: the execution waits


@dataclass
class StepResult:
    output: Any
    outcome: Outcome = Outcome.CONTINUE
    attempts: int = 1
    wait_seconds: int = 0


class StepFailed(Exception):
    """The step failed (after its retries): the execution fails with this message."""

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.message = message
        self.attempts = attempts


@dataclass
class StepRuntime:
    """What an executor may use: ids, the template context, and (database steps) the transaction."""

    execution_id: uuid.UUID
    workflow_id: uuid.UUID
    site_id: uuid.UUID
    position: int
    context: dict[str, Any]
    variables: dict[str, Any]
    unit: Unit | None = None
    budget_s: float = 60.0
    previous_attempts: int = 0
    auth: dict[str, str] | None = None  # the step's connection (http_request ``connection``), opened
    hidden: list[str] = field(default_factory=list)  # secret values: redacted from whatever the step returns
    # a batch's transaction: variables set by its steps, written together before it commits
    # ((workflow id, name) → (site id, value); the last value set wins, as written one by one)
    variable_writes: dict[tuple[uuid.UUID, str], tuple[uuid.UUID, Any]] | None = None

    def database(self) -> Unit:
        """The step's transaction (the engine gives one to the step types that write)."""
        if self.unit is None:
            raise StepFailed("this step needs the database and was given no transaction")
        return self.unit


# Configs -------------------------------------------------------------------------------------------

class _Config(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ConditionConfig(_Config):
    field: str
    operator: Literal["eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "contains", "exists"] = "eq"
    value: Any = None

    @field_validator("field")
    @classmethod
    def _path(cls, value: str) -> str:
        validate_path(value)
        return value


class DelayConfig(_Config):
    seconds: int = Field(ge=1, le=MAX_DELAY_S)


class HttpRequestConfig(_Config):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    url: str = Field(min_length=1, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=30, alias="timeoutSeconds")
    max_attempts: int = Field(default=3, ge=1, le=5, alias="maxAttempts")
    connection: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,62}$")  # authenticates the request

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith("{{"):
            scheme = value.split(":", 1)[0].lower()
            if scheme not in ("http", "https") or "://" not in value:
                raise ValueError("url must be an absolute http or https URL (templates may fill in parts)")
        return value


class _RecordConfig(_Config):
    module: str = Field(min_length=1, max_length=63)
    table: str
    values: dict[str, Any]

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not IDENTIFIER_RE.match(value):
            raise ValueError("table must be a lower-case identifier")
        return value

    @field_validator("values")
    @classmethod
    def _columns(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not IDENTIFIER_RE.match(k)]
        if bad:
            raise ValueError(f"invalid column name {bad[0]!r}")
        return value


class CreateRecordConfig(_RecordConfig):
    pass


class UpdateRecordConfig(_RecordConfig):
    id: str = Field(min_length=1)


class SetVariableConfig(_Config):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    value: Any = None


class SendEmailConfig(_Config):
    to: str | list[str]
    subject: str = Field(min_length=1, max_length=998)
    body: str = Field(min_length=1, max_length=100_000)
    html: bool = False

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: str | list[str]) -> str | list[str]:
        items = value if isinstance(value, list) else [value]
        if not items or len(items) > 50:
            raise ValueError("to takes one to fifty addresses")
        for item in items:
            if "{{" not in item and not EMAIL_RE.match(item):
                raise ValueError(f"{item!r} is not an e-mail address")
        return value


# Executors -----------------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    """Plain JSON values (a record's ``Decimal`` numbers stay numbers, as in the event payloads), copied:
    a value that is already plain JSON (most outputs) directly, any other through its JSON text."""
    copied = _plain_copy(value)
    if copied is _NOT_PLAIN:
        return json.loads(jsonbody.dumps(jsonbody.finite(value), default=str))
    return copied


_NOT_PLAIN = object()
_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


def _plain_copy(value: Any) -> Any:
    """A copy of a value made only of JSON's own types (str keys, finite floats), else ``_NOT_PLAIN``:
    what the JSON text round trip would give, without it."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if kind is float:
        return value if math.isfinite(value) else _NOT_PLAIN
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                return _NOT_PLAIN
            copy[key] = item = _plain_copy(item)
            if item is _NOT_PLAIN:
                return _NOT_PLAIN
        return copy
    if kind is list:
        items = [_plain_copy(item) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    return _NOT_PLAIN


def run_condition(rt: StepRuntime, config: dict[str, Any], raw: dict[str, Any]) -> StepResult:
    # The field is a path, not a template: it is resolved against the context as written.
    result, actual = evaluate_condition(raw["field"], config.get("operator", "eq"), config.get("value"), rt.context)
    output = {"result": result, "field": raw["field"], "actual": actual, "operator": config.get("operator", "eq"),
              "expected": config.get("value")}
    return StepResult(_jsonable(output), Outcome.CONTINUE if result else Outcome.STOP)


def run_delay(rt: StepRuntime, config: dict[str, Any], raw: dict[str, Any]) -> StepResult:
    seconds = int(config["seconds"])
    return StepResult({"seconds": seconds}, Outcome.WAIT, wait_seconds=seconds)


def run_set_variable(rt: StepRuntime, config: dict[str, Any], raw: dict[str, Any]) -> StepResult:
    name, value = raw["name"], _jsonable(config.get("value"))
    if rt.variable_writes is not None:
        rt.variable_writes[(rt.workflow_id, name)] = (rt.site_id, value)
    else:
        dal.set_variable(rt.database(), rt.workflow_id, rt.site_id, name, value)
    rt.variables[name] = value
    return StepResult({"name": name, "value": value})


def _sdk_for(rt: StepRuntime, module: str) -> Any:
    """The module's data on the execution's own site, in the step's transaction (imported here: only
    record steps need it). The SDK scopes every statement to that site under row-level security."""
    from ..module_data import ModuleDatabaseSDK

    try:
        return ModuleDatabaseSDK.for_service(rt.database(), module_slug=module, site_id=rt.site_id)
    except ApiError as exc:  # not installed, disabled or still provisioning on this site
        raise StepFailed(f"module {module}: {exc.message}") from exc


def run_create_record(rt: StepRuntime, config: dict[str, Any], raw: dict[str, Any]) -> StepResult:
    sdk = _sdk_for(rt, raw["module"])
    try:
        record = sdk.create_one(raw["table"], config["values"])
    except ApiError as exc:  # the SDK's refusal (unknown column, validation, constraint) is the step's error
        raise StepFailed(f"cannot create {raw['module']}.{raw['table']} record: {exc.message}") from exc
    return StepResult(_jsonable(record))


def run_update_record(rt: StepRuntime, config: dict[str, Any], raw: dict[str, Any]) -> StepResult:
    sdk = _sdk_for(rt, raw["module"])
    record_id = config.get("id")
    if record_id in (None, ""):
        raise StepFailed("update_record: the record id rendered empty")
    try:
        record = sdk.update_by_id(raw["table"], str(record_id), config["values"])
    except ApiError as exc:  # the SDK's refusal (unknown column, validation, constraint) is the step's error
        raise StepFailed(f"cannot update {raw['module']}.{raw['table']} {record_id}: {exc.message}") from exc
    if record is None:
        raise StepFailed(f"no {raw['module']}.{raw['table']} record with id {record_id} on this site")
    return StepResult(_jsonable(record))


def run_http_request(rt: StepRuntime, config: dict[str, Any], raw: dict[str, Any]) -> StepResult:
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise StepFailed("http_request: the url rendered empty")
    headers = {str(k): "" if v is None else str(v) for k, v in (config.get("headers") or {}).items()}
    # Receivers may deduplicate on this key: a retried delivery after a crash sends the same one.
    headers.setdefault("Idempotency-Key", f"{rt.execution_id}:{rt.position}")
    headers.setdefault("User-Agent", "DRAMAC-Automation/1.0")
    body = config.get("body")
    if rt.auth is not None:
        body = authenticate(rt.auth, headers, body, message_id=f"{rt.execution_id}:{rt.position}")
    try:
        response = outbound.request(
            config.get("method", "POST").upper(), url, headers=headers, body=body,
            timeout_s=float(config.get("timeoutSeconds", 10)), max_attempts=int(config.get("maxAttempts", 3)),
            budget_s=rt.budget_s)
    except outbound.OutboundRefused as exc:
        raise StepFailed(str(exc)) from exc
    except outbound.OutboundFailed as exc:
        raise StepFailed(str(exc), attempts=exc.attempts) from exc
    keep = ("content-type", "location", "etag")
    output = {"status": response.status, "headers": {k: v for k, v in response.headers.items() if k in keep},
              "body": response.body}
    return StepResult(_jsonable(output), attempts=response.attempts)


def authenticate(connection: dict[str, str], headers: dict[str, str], body: Any, *, message_id: str) -> Any:
    """Add the connection's credentials to a request (``headers`` in place); returns the body to send
    (a webhook signature covers the exact bytes sent, so the body is serialized here)."""
    kind = connection.get("type")
    if kind == "bearer":
        headers["Authorization"] = f"Bearer {connection['token']}"
    elif kind == "api_key":
        headers[connection.get("header") or "X-Api-Key"] = connection["token"]
    elif kind == "basic":
        pair = f"{connection.get('username', '')}:{connection['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif kind == "webhook_signing":
        # Standard Webhooks: v1 = base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")); a "whsec_" secret
        # carries its key in base64
        if body is None:
            content = ""
        elif isinstance(body, (dict, list, int, float, bool)):
            content = json.dumps(body, default=str)
            headers.setdefault("Content-Type", "application/json")
        else:
            content = str(body)
        secret = connection["secret"]
        key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
        timestamp = str(int(time.time()))
        digest = hmac.new(key, f"{message_id}.{timestamp}.{content}".encode(), hashlib.sha256).digest()
        headers.update({"webhook-id": message_id, "webhook-timestamp": timestamp,
                        "webhook-signature": "v1," + base64.b64encode(digest).decode()})
        return content if body is not None else None
    return body


ses_client = aws.LazyClient("ses", lambda: {"region_name": get_settings().aws_region,
                                            "endpoint_url": get_settings().ses_endpoint_url})
reset_clients = ses_client.reset  # tests and the local stack change endpoints


def run_send_email(rt: StepRuntime, config: dict[str, Any], raw: dict[str, Any]) -> StepResult:
    sender = get_settings().automation_email_from
    if not sender:
        raise StepFailed("send_email: AUTOMATION_EMAIL_FROM is not configured")
    to = config.get("to")
    recipients = [str(t).strip() for t in (to if isinstance(to, list) else [to]) if t]
    bad = [r for r in recipients if not EMAIL_RE.match(r)]
    if not recipients or bad:
        raise StepFailed(f"send_email: {bad[0] if bad else 'no recipient'!r} is not an e-mail address")
    body_kind = "Html" if config.get("html") else "Text"
    try:
        response = ses_client().send_email(
            Source=sender, Destination={"ToAddresses": recipients},
            Message={"Subject": {"Data": str(config.get("subject", "")), "Charset": "UTF-8"},
                     "Body": {body_kind: {"Data": str(config.get("body", "")), "Charset": "UTF-8"}}})
    except Exception as exc:  # SES's refusal (unverified identity, throttling) is the step's error
        raise StepFailed(f"send_email: SES refused the message: {exc}") from exc
    return StepResult({"messageId": response["MessageId"], "to": recipients})


# The table -----------------------------------------------------------------------------------------

Executor = Callable[[StepRuntime, dict[str, Any], dict[str, Any]], StepResult]


@dataclass(frozen=True)
class StepType:
    name: str
    kind: Literal["local", "database", "external", "delay"]
    config_model: type[BaseModel]
    execute: Executor
    # external steps only: after a crash mid-call, never call again (e-mail) or call again (HTTP)
    at_most_once: bool = False
    raw_keys: tuple[str, ...] = field(default=())  # keys used as written, never rendered
    # database steps only: the executor sends statements without reading their answers (or leaves its
    # writes to the batch, ``variable_writes``), so it may run in pipeline mode; the others read as they go
    pipelined: bool = False
    emits_events: bool = False  # database steps that write module data, whose triggers log events


STEP_TYPES: dict[str, StepType] = {
    t.name: t
    for t in (
        StepType("condition", "local", ConditionConfig, run_condition, raw_keys=("field",)),
        StepType("delay", "delay", DelayConfig, run_delay),
        StepType("http_request", "external", HttpRequestConfig, run_http_request),
        # which module and table a record step writes is fixed when the workflow is saved, never by an event
        StepType("create_record", "database", CreateRecordConfig, run_create_record, raw_keys=("module", "table"),
                 emits_events=True),
        StepType("update_record", "database", UpdateRecordConfig, run_update_record, raw_keys=("module", "table"),
                 emits_events=True),
        StepType("set_variable", "database", SetVariableConfig, run_set_variable, raw_keys=("name",),
                 pipelined=True),
        StepType("send_email", "external", SendEmailConfig, run_send_email, at_most_once=True),
    )
}


def validate_step(step_type: Any, config: Any, *, position: int, where: str) -> list[dict[str, Any]]:
    """Problems with one step (empty when valid), as ``[{"field", "message"}]``."""
    if step_type not in STEP_TYPES:
        return [{"field": f"{where}.type",
                 "message": f"unknown step type {step_type!r}: use one of {', '.join(STEP_TYPES)}"}]
    if not isinstance(config, dict):
        return [{"field": f"{where}.config", "message": "config must be a JSON object"}]
    definition = STEP_TYPES[step_type]
    problems = []
    try:
        definition.config_model.model_validate(config)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            problems.append({"field": f"{where}.config{'.' + loc if loc else ''}", "message": err.get("msg", "invalid")})
    except TemplateError as exc:
        problems.append({"field": f"{where}.config", "message": str(exc)})
    for key in definition.raw_keys:
        if isinstance(config.get(key), str) and "{{" in config[key]:
            problems.append({"field": f"{where}.config.{key}", "message": f"{key} cannot be a template"})
    if step_type == "condition" and isinstance(config.get("operator", "eq"), str):
        try:
            if config.get("operator", "eq") in OPERATORS and not (
                    isinstance(config.get("value"), str) and "{{" in config["value"]):
                validate_operand(config.get("operator", "eq"), config.get("value"), config.get("field", "?"))
        except FilterError as exc:
            problems.append({"field": f"{where}.config.value", "message": str(exc)})
    rendered_part = {k: v for k, v in config.items() if k not in definition.raw_keys}
    for problem in validate_templates(rendered_part, position=position):
        problems.append({"field": f"{where}.config.{problem['field']}", "message": problem["message"]})
    return problems
