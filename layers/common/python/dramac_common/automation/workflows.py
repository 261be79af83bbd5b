"""The automation API's rules: workflows with their steps and trigger, executions, events, webhooks.

Every function takes the caller's unit of work (row-level security applies) and checks the caller's
role on the site through ``tenancy``: reading needs membership, changing needs the manage role.
Step positions are 1, 2, 3… in the order the steps are given; ``{{steps.1.output.x}}`` reads the
first step's output.
"""

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..core import audit, jsonbody
from ..core.auth import Caller
from ..core.db import Unit
from ..core.errors import Conflict, NotFound, ValidationFailed
from ..core.tenancy import require_site_access
from ..core.wire import CamelModel
from . import connections, dal
from .filters import FilterError, validate_filter
from .outbox import log_automation_event
from .registry import PLATFORM_EVENT_PREFIXES, require_known_event, site_events, validate_payload

MAX_STEPS = 50
WEBHOOK_EVENT = "automation.webhook.received"
EXECUTION_STATUSES = ("pending", "running", "waiting", "completed", "failed", "cancelled")


class _Body(CamelModel):
    """A request body: nothing unknown is accepted."""

    model_config = ConfigDict(extra="forbid")


class StepInput(_Body):
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class WorkflowCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    trigger_event_type: str
    filter: dict[str, Any] | None = None
    is_active: bool = True
    steps: list[StepInput] = Field(min_length=1, max_length=MAX_STEPS)


class WorkflowUpdate(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    trigger_event_type: str | None = None
    filter: dict[str, Any] | None = None
    is_active: bool | None = None
    steps: list[StepInput] | None = Field(default=None, min_length=1, max_length=MAX_STEPS)


class EventInput(_Body):
    event_type: str
    payload: dict[str, Any] = Field(default_factory=dict)


class WebhookCreate(_Body):
    name: str = Field(default="", max_length=200)
    event_type: str = Field(default=WEBHOOK_EVENT)
    workflow_id: uuid.UUID | None = None


# What the automation API answers (the dicts below are built in SQL, camelCase already; these models
# document them in the function's OpenAPI document).

class WorkflowStep(CamelModel):
    id: uuid.UUID
    position: int
    type: str
    config: dict[str, Any]


class WorkflowTrigger(CamelModel):
    id: uuid.UUID
    event_type: str
    filter: dict[str, Any]
    is_active: bool


class Workflow(CamelModel):
    id: uuid.UUID
    site_id: uuid.UUID
    name: str
    description: str
    is_active: bool
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    steps: list[WorkflowStep]
    subscription: WorkflowTrigger | None


class Execution(CamelModel):
    id: uuid.UUID
    workflow_id: uuid.UUID
    site_id: uuid.UUID
    event_id: uuid.UUID | None
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    resume_at: datetime | None
    error: str | None
    created_at: datetime
    rerun_of: uuid.UUID | None = None  # the execution this one re-runs
    rerun_from: str | None = None  # start | failed_step
    rerun_id: uuid.UUID | None = None  # the execution that re-ran this one
    cancelled_by: uuid.UUID | None = None
    stop_reason: str | None = None  # not run: loop_detected, volume_limit (docs/limits.md)


class ExecutionRerun(_Body):
    from_: Literal["failed_step", "start"] = Field(default="failed_step", alias="from")


class ExecutionEvent(CamelModel):
    id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    created_at: datetime


class StepLog(CamelModel):
    id: uuid.UUID
    step_id: uuid.UUID | None
    position: int
    type: str
    status: str
    input: Any
    output: Any
    error: str | None
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class ExecutionWithSteps(Execution):
    event: ExecutionEvent | None
    steps: list[StepLog]


class EventType(CamelModel):
    event_type: str
    category: str
    name: str
    description: str
    payload_schema: dict[str, str]
    source_module: str | None


class EmittedEvent(CamelModel):
    event_id: uuid.UUID
    event_type: str | None = None


class Webhook(CamelModel):
    id: uuid.UUID
    site_id: uuid.UUID
    workflow_id: uuid.UUID | None
    name: str
    event_type: str
    is_active: bool
    created_at: datetime
    last_received_at: datetime | None


class CreatedWebhook(Webhook):
    token: str | None = None  # shown once: a replay of the creation carries neither token nor path
    path: str | None = None


def validated_steps(unit: Unit, site_id: uuid.UUID, steps: list[StepInput],
                    workflow_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Steps as rows (position 1…n); ``ValidationFailed`` listing every problem. Record steps must name a
    module installed on the site and a table of its manifest, as written (templates are refused)."""
    from .steps import validate_step  # with the steps' runners: loaded here, not at the API's cold start

    problems: list[dict[str, Any]] = []
    rows = []
    for index, step in enumerate(steps):
        position = index + 1
        step_problems = validate_step(step.type, step.config, position=position, where=f"steps.{index}")
        if not step_problems and step.type in RECORD_STEPS:
            step_problems = _record_target_problems(unit, site_id, step.config, where=f"steps.{index}.config")
        if not step_problems:
            step_problems = connections.connection_problems(unit, site_id, step.type, step.config,
                                                            where=f"steps.{index}")
        problems += step_problems
        rows.append({"position": position, "step_type": step.type, "config": step.config})
    if problems:
        first = problems[0]
        raise ValidationFailed(f"Invalid workflow: {first['field']}: {first['message']}", code="validation_error",
                               details=problems)
    # Header values typed into a step are stored encrypted and answered masked from now on.
    connections.seal_step_headers(unit, site_id, workflow_id, rows)
    return rows


RECORD_STEPS = ("create_record", "update_record")


def _record_target_problems(unit: Unit, site_id: uuid.UUID, config: dict[str, Any], *, where: str) -> list[dict[str, Any]]:
    """The module (slug or id) must be installed on the site, the table one of its manifest's."""
    module, table = config["module"], config["table"]
    try:
        module_id, slug = uuid.UUID(module), None
    except ValueError:
        module_id, slug = None, module
    row = unit.fetchone("SELECT slug, manifest, installation_status FROM private.module_data_target(%s, %s, %s)",
                        (site_id, module_id, slug))
    if row is None or row["installation_status"] in (None, "failed"):
        return [{"field": f"{where}.module", "message": f"module {module!r} is not installed on this site"}]
    manifest = row["manifest"] if isinstance(row["manifest"], dict) else {}
    database = manifest["database"] if isinstance(manifest.get("database"), dict) else {}
    tables = [t.get("name") for t in database.get("tables") or [] if isinstance(t, dict)]
    if table not in tables:
        known = ", ".join(sorted(t for t in tables if isinstance(t, str))) or "none"
        return [{"field": f"{where}.table",
                 "message": f"{table!r} is not a table of module {row['slug']} (its tables: {known})"}]
    return []


def _filter(filter_: dict[str, Any] | None) -> dict[str, Any]:
    try:
        return validate_filter(filter_)
    except FilterError as exc:
        raise ValidationFailed(f"Invalid workflow: filter: {exc}", code="validation_error",
                               details=[{"field": "filter", "message": str(exc)}]) from exc


def _found(workflow: dict[str, Any] | None) -> dict[str, Any]:
    if workflow is None:  # deleted by a concurrent request between two statements of this one
        raise NotFound("Workflow not found", code="workflow_not_found")
    return workflow


def create_workflow(unit: Unit, caller: Caller, site_id: uuid.UUID, body: WorkflowCreate) -> dict[str, Any]:
    access = require_site_access(unit, site_id, manage=True)
    require_known_event(unit, site_id, body.trigger_event_type)
    filter_ = _filter(body.filter)
    steps = validated_steps(unit, site_id, body.steps)
    workflow_id = dal.insert_workflow(unit, site_id=site_id, name=body.name, description=body.description,
                                      is_active=body.is_active, created_by=caller.user_id,
                                      event_type=body.trigger_event_type, filter_=filter_, steps=steps)
    audit.record(unit, "workflow.created", agency_id=access.agency_id, site_id=site_id, target_type="workflow",
                 target_id=workflow_id, details={"name": body.name, "triggerEventType": body.trigger_event_type,
                                                 "isActive": body.is_active, "steps": len(steps)})
    return _found(dal.get_workflow(unit, site_id, workflow_id))


def list_workflows(unit: Unit, site_id: uuid.UUID) -> list[dict[str, Any]]:
    require_site_access(unit, site_id)
    return dal.list_workflows(unit, site_id)


def get_workflow(unit: Unit, site_id: uuid.UUID, workflow_id: uuid.UUID) -> dict[str, Any]:
    require_site_access(unit, site_id)
    workflow = dal.get_workflow(unit, site_id, workflow_id)
    if workflow is None:
        raise NotFound("Workflow not found", code="workflow_not_found")
    return workflow


def update_workflow(unit: Unit, site_id: uuid.UUID, workflow_id: uuid.UUID, body: WorkflowUpdate) -> dict[str, Any]:
    access = require_site_access(unit, site_id, manage=True)
    if body.trigger_event_type is not None:
        require_known_event(unit, site_id, body.trigger_event_type)
    filter_ = _filter(body.filter) if "filter" in body.model_fields_set else None
    if "filter" in body.model_fields_set and body.filter is None:
        filter_ = {}
    steps = validated_steps(unit, site_id, body.steps, workflow_id) if body.steps is not None else None
    if not dal.update_workflow(unit, site_id, workflow_id, name=body.name, description=body.description,
                               is_active=body.is_active, event_type=body.trigger_event_type, filter_=filter_,
                               steps=steps):
        raise NotFound("Workflow not found", code="workflow_not_found")
    _audit_update(unit, access.agency_id, site_id, workflow_id, body)
    return _found(dal.get_workflow(unit, site_id, workflow_id))


def _audit_update(unit: Unit, agency_id: uuid.UUID, site_id: uuid.UUID, workflow_id: uuid.UUID,
                  body: WorkflowUpdate) -> None:
    """``workflow.enabled``/``workflow.disabled`` for ``isActive``, ``workflow.updated`` naming the other
    fields changed (names only: step configs may hold credentials)."""
    fields = sorted(body.model_dump(by_alias=True, exclude_unset=True))
    if body.is_active is not None:
        audit.record(unit, "workflow.enabled" if body.is_active else "workflow.disabled", agency_id=agency_id,
                     site_id=site_id, target_type="workflow", target_id=workflow_id)
    changed = [f for f in fields if f != "isActive"]
    if changed:
        audit.record(unit, "workflow.updated", agency_id=agency_id, site_id=site_id, target_type="workflow",
                     target_id=workflow_id, details={"fields": changed})


def delete_workflow(unit: Unit, site_id: uuid.UUID, workflow_id: uuid.UUID) -> dict[str, Any]:
    access = require_site_access(unit, site_id, manage=True)
    if not dal.delete_workflow(unit, site_id, workflow_id):
        raise NotFound("Workflow not found", code="workflow_not_found")
    audit.record(unit, "workflow.deleted", agency_id=access.agency_id, site_id=site_id, target_type="workflow",
                 target_id=workflow_id)
    return {"id": str(workflow_id), "deleted": True}


def list_executions(unit: Unit, site_id: uuid.UUID, *, workflow_id: uuid.UUID | None, status: str | None,
                    limit: int, offset: int) -> list[dict[str, Any]]:
    require_site_access(unit, site_id)
    if status is not None and status not in EXECUTION_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(EXECUTION_STATUSES)}", code="validation_error")
    return dal.list_executions(unit, site_id, workflow_id=workflow_id, status=status, limit=limit, offset=offset)


def get_execution(unit: Unit, site_id: uuid.UUID, execution_id: uuid.UUID) -> dict[str, Any]:
    require_site_access(unit, site_id)
    execution = dal.get_execution(unit, site_id, execution_id)
    if execution is None:
        raise NotFound("Execution not found", code="execution_not_found")
    return execution


def cancel_execution(unit: Unit, site_id: uuid.UUID, execution_id: uuid.UUID) -> dict[str, Any]:
    """Stop a pending, running or waiting execution: it turns ``cancelled``, its remaining steps are
    logged skipped, and no worker writes to it again (manage role)."""
    access = require_site_access(unit, site_id, manage=True)
    result = dal.cancel_execution(unit, site_id, execution_id)
    if result["outcome"] == "not_found":
        raise NotFound("Execution not found", code="execution_not_found")
    if result["outcome"] == "finished":
        raise Conflict(f"The execution has already finished ({result['status']}); only a pending, running or "
                       "waiting execution can be cancelled", code="execution_finished")
    audit.record(unit, "execution.cancelled", agency_id=access.agency_id, site_id=site_id,
                 target_type="execution", target_id=execution_id)
    return get_execution(unit, site_id, execution_id)


def rerun_execution(unit: Unit, site_id: uuid.UUID, execution_id: uuid.UUID, body: ExecutionRerun) -> dict[str, Any]:
    """A failed or cancelled execution again, as a new execution linked to it (``rerunOf``): from the
    step it stopped at (the earlier steps' outputs carried over) or from the start (manage role). It is
    queued after commit; the relay's sweep sends it if that send is lost. Once per execution."""
    access = require_site_access(unit, site_id, manage=True)
    result = dal.rerun_execution(unit, site_id, execution_id, body.from_)
    outcome = result["outcome"]
    if outcome == "not_found":
        raise NotFound("Execution not found", code="execution_not_found")
    if outcome == "not_rerunnable":
        raise Conflict(f"Only a failed or cancelled execution can be re-run (this one is {result['status']})",
                       code="execution_not_rerunnable")
    if outcome == "already_rerun":
        raise Conflict(f"The execution was already re-run as {result['rerunId']}; re-run that one instead",
                       code="execution_already_rerun", details=[{"rerunId": result["rerunId"]}])
    if outcome == "event_pruned":
        raise Conflict("The execution's event was deleted by retention; there is nothing to replay",
                       code="event_pruned")
    if outcome == "no_steps":
        raise Conflict("The workflow has no steps left to run", code="workflow_has_no_steps")
    new_id = uuid.UUID(result["id"])
    audit.record(unit, "execution.rerun", agency_id=access.agency_id, site_id=site_id, target_type="execution",
                 target_id=new_id, details={"rerunOf": str(execution_id), "from": body.from_})
    from .engine import send_resume_after_commit  # the engine loads on the first rerun, not at cold start

    unit.after_commit(lambda: send_resume_after_commit(new_id))
    return get_execution(unit, site_id, new_id)


def list_event_types(unit: Unit, site_id: uuid.UUID) -> list[dict[str, Any]]:
    require_site_access(unit, site_id)
    return [d.as_dict() for d in sorted(site_events(unit, site_id).values(), key=lambda d: d.event_type)]


def refuse_platform_event(event_type: str, field: str) -> None:
    """Platform events (``marketplace.*``, ``automation.*``) record what the platform did, in the
    transaction that did it; nobody posts them from outside."""
    prefix = event_type.split(".", 1)[0] if isinstance(event_type, str) else ""
    if prefix in PLATFORM_EVENT_PREFIXES:
        raise ValidationFailed(f"{prefix}.* events are recorded by the platform itself and cannot be sent",
                               code="platform_event", details=[{"field": field, "message": "a platform event"}])


def emit_event(unit: Unit, site_id: uuid.UUID, body: EventInput) -> dict[str, Any]:
    """``POST events``: an event from outside, validated against the registry; queued after commit.
    ``unit`` comes from ``api_keys.site_unit(principal, site_id, manage=True)``: a manager of the
    site, or the site's own API key, already checked; a key may emit only its modules' events
    (``registry.require_key_may_emit``, through ``log_automation_event``)."""
    refuse_platform_event(body.event_type, "eventType")
    definition = require_known_event(unit, site_id, body.event_type)
    payload = validate_payload(definition, body.payload)
    event_id = log_automation_event(unit, site_id, body.event_type, payload, source_module="api")
    return {"eventId": str(event_id), "eventType": body.event_type}


# Incoming webhooks ---------------------------------------------------------------------------------

def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _webhook(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "siteId": str(row["site_id"]),
            "workflowId": str(row["workflow_id"]) if row["workflow_id"] else None, "name": row["name"],
            "eventType": row["event_type"], "isActive": row["is_active"], "createdAt": row["created_at"].isoformat(),
            "lastReceivedAt": row["last_received_at"].isoformat() if row["last_received_at"] else None}


def create_webhook(unit: Unit, site_id: uuid.UUID, body: WebhookCreate) -> dict[str, Any]:
    """A webhook with a fresh secret token; the token is returned once and only its hash is stored."""
    require_site_access(unit, site_id, manage=True)
    if body.event_type != WEBHOOK_EVENT:
        refuse_platform_event(body.event_type, "eventType")
    require_known_event(unit, site_id, body.event_type)
    if body.workflow_id is not None and not dal.workflow_exists(unit, site_id, body.workflow_id):
        raise NotFound("Workflow not found", code="workflow_not_found")
    token = secrets.token_urlsafe(32)
    row = dal.insert_webhook(unit, site_id=site_id, name=body.name, event_type=body.event_type,
                             workflow_id=body.workflow_id, token_hash=hash_token(token))
    return {**_webhook(row), "token": token, "path": f"/api/webhooks/automation/{token}"}


def without_webhook_secret(created: dict[str, Any]) -> dict[str, Any]:
    """A created webhook as kept for Idempotency-Key replays: its token (and the path that holds it)
    is shown once and never stored."""
    return {k: v for k, v in created.items() if k not in ("token", "path")}


def list_webhooks(unit: Unit, site_id: uuid.UUID) -> list[dict[str, Any]]:
    require_site_access(unit, site_id)
    return [_webhook(r) for r in dal.list_webhooks(unit, site_id)]


def delete_webhook(unit: Unit, site_id: uuid.UUID, webhook_id: uuid.UUID) -> dict[str, Any]:
    require_site_access(unit, site_id, manage=True)
    if not dal.delete_webhook(unit, site_id, webhook_id):
        raise NotFound("Webhook not found", code="webhook_not_found")
    return {"id": str(webhook_id), "deleted": True}


def webhook_body(raw: bytes) -> Any:
    """An incoming webhook's body as its event carries it: the JSON value when the body is JSON, else
    its text. JSON or text PostgreSQL could not store (NUL, lone surrogates, absurd nesting) is a 400."""
    if not raw:
        return None
    try:
        return jsonbody.loads(raw, where="webhook body")
    except jsonbody.JsonRefused as exc:
        if exc.code != "invalid_json":
            raise
    return jsonbody.check_value(raw.decode("utf-8", errors="replace"), where="webhook body")


def receive_webhook(unit: Unit, token: str, body: Any, query: dict[str, str]) -> dict[str, Any]:
    """The no-authorizer endpoint: the secret token in the URL names the webhook (service unit)."""
    if not token or len(token) > 128:
        raise NotFound("Webhook not found", code="webhook_not_found")
    row = dal.webhook_by_token_hash(unit, hash_token(token))
    if row is None:
        raise NotFound("Webhook not found", code="webhook_not_found")
    payload = {"webhook_id": str(row["id"]), "webhook_name": row["name"], "body": body, "query": query}
    if row["workflow_id"]:
        payload["workflow_id"] = str(row["workflow_id"])
    event_id = log_automation_event(unit, row["site_id"], row["event_type"], payload, source_module="webhook",
                                    source_entity_type="webhook", source_entity_id=row["id"])
    dal.touch_webhook(unit, row["id"], event_id)
    return {"eventId": str(event_id)}
