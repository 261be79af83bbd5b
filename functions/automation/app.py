"""Automation API (contract section 6): workflows, executions with step logs, events, webhooks.
Capability: ``dramac_common.automation`` (``workflows``).

Routes under /api/sites/{siteId}/automation (JWT; read = any member, manage = owner/admin):
  POST   workflows                 create a workflow with its steps and trigger (manage) → 201
  GET    workflows                 list the site's workflows
  GET    workflows/{workflowId}    one workflow with steps and subscription
  PATCH  workflows/{workflowId}    change name, trigger, filter, steps, isActive (deactivate) (manage)
  DELETE workflows/{workflowId}    delete it with its executions (manage)
  GET    executions                newest first; ?workflowId=&status=&limit=&offset=
  GET    executions/{executionId}  the execution with its step logs in order
  POST   executions/{executionId}/cancel  stop a pending, running or waiting execution (manage)
  POST   executions/{executionId}/rerun   {"from": "failed_step"|"start"}: a failed or cancelled one again,
                                          as a new execution linked to it (manage) → 201
  POST   events                    emit an event from outside (manage role or the site's API key) → 202
  GET    event-types               the events a workflow may be triggered by on this site
  POST   webhooks, GET webhooks, DELETE webhooks/{webhookId}   incoming webhooks (manage to change)
  POST   connections, GET connections, GET|DELETE connections/{connectionId},
  POST   connections/{connectionId}/rotate   credentials for steps, answered masked (manage to change)
And, without an authorizer (the secret token is the credential):
  POST   /api/webhooks/automation/{token}   turns the request into an event → 202

The creating POSTs (workflows, events, webhooks, and an incoming webhook's delivery) honour an
Idempotency-Key (an incoming webhook also Webhook-Id): a repeat with the same key answers the first answer.
"""

import uuid
from typing import Annotated, Any

from dramac_common.automation import connections, workflows
from dramac_common.automation.connections import Connection
from dramac_common.automation.workflows import (
    CreatedWebhook,
    EmittedEvent,
    EventType,
    Execution,
    ExecutionWithSteps,
    Webhook,
    Workflow,
)
from dramac_common.core import db
from dramac_common.core.api import (
    ConnectionId,
    ExecutionId,
    SiteId,
    WebhookId,
    WorkflowId,
    create_app,
    decode_body,
    envelope,
    lambda_handler,
)
from dramac_common.core.auth import CallerDep, PrincipalDep, principal_id
from dramac_common.core.idempotency import IdempotencyKey, idempotent_response
from dramac_common.core.jsonbody import check_value
from dramac_common.core.tenancy import site_unit
from dramac_common.core.wire import Deleted, Envelope
from fastapi import Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

app = create_app("DRAMAC automation")
BASE = "/api/sites/{siteId}/automation"


@app.post(f"{BASE}/workflows", response_model=Envelope[Workflow], status_code=201)
def create_workflow(site_id: SiteId, body: workflows.WorkflowCreate, request: Request, caller: CallerDep,
                    idempotency_key: IdempotencyKey = None) -> Response:
    def act() -> tuple[int, Any]:
        with db.user_unit(caller.db_claims) as unit:
            return 201, workflows.create_workflow(unit, caller, site_id, body)

    return idempotent_response(request, scope="workflow-create", principal=str(caller.user_id),
                               fingerprint={"siteId": str(site_id), "body": _fingerprint(body)}, action=act)


@app.get(f"{BASE}/workflows", response_model=Envelope[list[Workflow]])
def list_workflows(site_id: SiteId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.list_workflows(unit, site_id))


@app.get(f"{BASE}/workflows/{{workflowId}}", response_model=Envelope[Workflow])
def get_workflow(site_id: SiteId, workflow_id: WorkflowId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.get_workflow(unit, site_id, workflow_id))


@app.patch(f"{BASE}/workflows/{{workflowId}}", response_model=Envelope[Workflow])
def update_workflow(site_id: SiteId, workflow_id: WorkflowId, body: workflows.WorkflowUpdate,
                    caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.update_workflow(unit, site_id, workflow_id, body))


@app.delete(f"{BASE}/workflows/{{workflowId}}", response_model=Envelope[Deleted])
def delete_workflow(site_id: SiteId, workflow_id: WorkflowId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.delete_workflow(unit, site_id, workflow_id))


@app.get(f"{BASE}/executions", response_model=Envelope[list[Execution]])
def list_executions(site_id: SiteId, caller: CallerDep,
                    workflow_id: Annotated[uuid.UUID | None, Query(alias="workflowId")] = None,
                    status: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.list_executions(unit, site_id, workflow_id=workflow_id, status=status,
                                                  limit=limit, offset=offset))


@app.get(f"{BASE}/executions/{{executionId}}", response_model=Envelope[ExecutionWithSteps])
def get_execution(site_id: SiteId, execution_id: ExecutionId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.get_execution(unit, site_id, execution_id))


@app.post(f"{BASE}/executions/{{executionId}}/cancel", response_model=Envelope[ExecutionWithSteps])
def cancel_execution(site_id: SiteId, execution_id: ExecutionId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.cancel_execution(unit, site_id, execution_id))


@app.post(f"{BASE}/executions/{{executionId}}/rerun", response_model=Envelope[ExecutionWithSteps], status_code=201)
def rerun_execution(site_id: SiteId, execution_id: ExecutionId, caller: CallerDep,
                    body: workflows.ExecutionRerun | None = None) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.rerun_execution(unit, site_id, execution_id, body or workflows.ExecutionRerun()),
                        status_code=201)


@app.post(f"{BASE}/events", response_model=Envelope[EmittedEvent], status_code=202)
def emit_event(site_id: SiteId, body: workflows.EventInput, request: Request, principal: PrincipalDep,
               idempotency_key: IdempotencyKey = None) -> Response:
    def act() -> tuple[int, Any]:
        with site_unit(principal, site_id, manage=True) as unit:
            return 202, workflows.emit_event(unit, site_id, body)

    return idempotent_response(request, scope="event-emit", principal=principal_id(principal),
                               fingerprint={"siteId": str(site_id), "body": _fingerprint(body)}, action=act)


@app.get(f"{BASE}/event-types", response_model=Envelope[list[EventType]])
def list_event_types(site_id: SiteId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.list_event_types(unit, site_id))


@app.post(f"{BASE}/webhooks", response_model=Envelope[CreatedWebhook], status_code=201)
def create_webhook(site_id: SiteId, body: workflows.WebhookCreate, request: Request, caller: CallerDep,
                   idempotency_key: IdempotencyKey = None) -> Response:
    def act() -> tuple[int, Any]:
        with db.user_unit(caller.db_claims) as unit:
            return 201, workflows.create_webhook(unit, site_id, body)

    # the webhook's secret token is shown once: a replay answers the same webhook without it
    return idempotent_response(request, scope="webhook-create", principal=str(caller.user_id),
                               fingerprint={"siteId": str(site_id), "body": _fingerprint(body)}, action=act,
                               stored=workflows.without_webhook_secret)


@app.get(f"{BASE}/webhooks", response_model=Envelope[list[Webhook]])
def list_webhooks(site_id: SiteId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.list_webhooks(unit, site_id))


@app.delete(f"{BASE}/webhooks/{{webhookId}}", response_model=Envelope[Deleted])
def delete_webhook(site_id: SiteId, webhook_id: WebhookId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.delete_webhook(unit, site_id, webhook_id))


@app.post(f"{BASE}/connections", response_model=Envelope[Connection], status_code=201)
def create_connection(site_id: SiteId, body: connections.ConnectionCreate, request: Request, caller: CallerDep,
                      idempotency_key: IdempotencyKey = None) -> Response:
    def act() -> tuple[int, Any]:
        with db.user_unit(caller.db_claims) as unit:
            return 201, connections.create_connection(unit, site_id, body, caller.user_id)

    # the fingerprint is stored as a hash only; the stored answer is the masked connection
    return idempotent_response(request, scope="connection-create", principal=str(caller.user_id),
                               fingerprint={"siteId": str(site_id), "body": _fingerprint(body)}, action=act)


@app.get(f"{BASE}/connections", response_model=Envelope[list[Connection]])
def list_connections(site_id: SiteId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(connections.list_connections(unit, site_id))


@app.get(f"{BASE}/connections/{{connectionId}}", response_model=Envelope[Connection])
def get_connection(site_id: SiteId, connection_id: ConnectionId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(connections.get_connection(unit, site_id, connection_id))


@app.post(f"{BASE}/connections/{{connectionId}}/rotate", response_model=Envelope[Connection])
def rotate_connection(site_id: SiteId, connection_id: ConnectionId, body: connections.ConnectionRotate,
                      caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(connections.rotate_connection(unit, site_id, connection_id, body))


@app.delete(f"{BASE}/connections/{{connectionId}}", response_model=Envelope[Deleted])
def delete_connection(site_id: SiteId, connection_id: ConnectionId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(connections.delete_connection(unit, site_id, connection_id))


@app.post("/api/webhooks/automation/{token}", response_model=Envelope[EmittedEvent], status_code=202)
def receive_webhook(token: str, request: Request, idempotency_key: IdempotencyKey = None,
                    webhook_id: Annotated[str | None, Header(alias="Webhook-Id")] = None) -> Response:
    body = workflows.webhook_body(decode_body(request.scope.get("aws.event") or {}))
    query = check_value(dict(request.query_params), where="query")

    def act() -> tuple[int, Any]:
        with db.service_unit() as unit:
            return 202, workflows.receive_webhook(unit, token, body, query)

    # A sender's delivery id (Idempotency-Key, or Standard Webhooks' Webhook-Id) makes a redelivery one event.
    return idempotent_response(request, scope="automation-webhook", principal=workflows.hash_token(token),
                               fingerprint={"body": body, "query": query}, action=act,
                               key_headers=("idempotency-key", "webhook-id"))


def _fingerprint(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(mode="json", by_alias=True)


handler = lambda_handler(app, service="automation")
