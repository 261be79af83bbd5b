"""Automation API (contract section 6): workflows, executions with step logs, events, webhooks.

Routes under /api/sites/{siteId}/automation (JWT; read = any member, manage = owner/admin):
  POST   workflows                 create a workflow with its steps and trigger (manage) → 201
  GET    workflows                 list the site's workflows
  GET    workflows/{workflowId}    one workflow with steps and subscription
  PATCH  workflows/{workflowId}    change name, trigger, filter, steps, isActive (deactivate) (manage)
  DELETE workflows/{workflowId}    delete it with its executions (manage)
  GET    executions                newest first; ?workflowId=&status=&limit=&offset=
  GET    executions/{executionId}  the execution with its step logs in order
  POST   events                    emit an event from outside (manage role or the site's API key) → 202
  GET    event-types               the events a workflow may be triggered by on this site
  POST   webhooks, GET webhooks, DELETE webhooks/{webhookId}   incoming webhooks (manage to change)
And, without an authorizer (the secret token is the credential):
  POST   /api/webhooks/automation/{token}   turns the request into an event → 202

The creating POSTs (workflows, events, webhooks, and an incoming webhook's delivery) honour an
Idempotency-Key (an incoming webhook also Webhook-Id): a repeat with the same key answers the first answer.
"""

from __future__ import annotations

import uuid
from typing import Any

from dramac_common.automation import workflows
from dramac_common.core import db
from dramac_common.core.api import create_app, decode_body, envelope, lambda_handler
from dramac_common.core.auth import Caller, Principal, current_caller, current_principal, principal_id
from dramac_common.core.idempotency import IdempotencyKey, idempotent_response
from dramac_common.core.jsonbody import check_value
from dramac_common.core.tenancy import site_unit
from fastapi import Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

app = create_app("DRAMAC automation")
BASE = "/api/sites/{siteId}/automation"


@app.post(f"{BASE}/workflows", status_code=201)
def create_workflow(siteId: uuid.UUID, body: workflows.WorkflowCreate, request: Request,  # noqa: N803
                    caller: Caller = Depends(current_caller), idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def act() -> tuple[int, Any]:
        with db.user_unit(caller.db_claims) as unit:
            return 201, workflows.create_workflow(unit, caller, siteId, body)

    return idempotent_response(request, scope="workflow-create", principal=str(caller.user_id),
                               fingerprint={"siteId": str(siteId), "body": _fingerprint(body)}, action=act)


@app.get(f"{BASE}/workflows")
def list_workflows(siteId: uuid.UUID, caller: Caller = Depends(current_caller)) -> JSONResponse:  # noqa: N803
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.list_workflows(unit, siteId))


@app.get(f"{BASE}/workflows/{{workflowId}}")
def get_workflow(siteId: uuid.UUID, workflowId: uuid.UUID,  # noqa: N803
                 caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.get_workflow(unit, siteId, workflowId))


@app.patch(f"{BASE}/workflows/{{workflowId}}")
def update_workflow(siteId: uuid.UUID, workflowId: uuid.UUID, body: workflows.WorkflowUpdate,  # noqa: N803
                    caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.update_workflow(unit, siteId, workflowId, body))


@app.delete(f"{BASE}/workflows/{{workflowId}}")
def delete_workflow(siteId: uuid.UUID, workflowId: uuid.UUID,  # noqa: N803
                    caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.delete_workflow(unit, siteId, workflowId))


@app.get(f"{BASE}/executions")
def list_executions(siteId: uuid.UUID, workflowId: uuid.UUID | None = None,  # noqa: N803
                    status: str | None = None, limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=1_000_000),
                    caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.list_executions(unit, siteId, workflow_id=workflowId, status=status,
                                                  limit=limit, offset=offset))


@app.get(f"{BASE}/executions/{{executionId}}")
def get_execution(siteId: uuid.UUID, executionId: uuid.UUID,  # noqa: N803
                  caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.get_execution(unit, siteId, executionId))


@app.post(f"{BASE}/events", status_code=202)
def emit_event(siteId: uuid.UUID, body: workflows.EventInput, request: Request,  # noqa: N803
               principal: Principal = Depends(current_principal),
               idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def act() -> tuple[int, Any]:
        with site_unit(principal, siteId, manage=True) as unit:
            return 202, workflows.emit_event(unit, siteId, body)

    return idempotent_response(request, scope="event-emit", principal=principal_id(principal),
                               fingerprint={"siteId": str(siteId), "body": _fingerprint(body)}, action=act)


@app.get(f"{BASE}/event-types")
def list_event_types(siteId: uuid.UUID, caller: Caller = Depends(current_caller)) -> JSONResponse:  # noqa: N803
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.list_event_types(unit, siteId))


@app.post(f"{BASE}/webhooks", status_code=201)
def create_webhook(siteId: uuid.UUID, body: workflows.WebhookCreate, request: Request,  # noqa: N803
                   caller: Caller = Depends(current_caller), idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def act() -> tuple[int, Any]:
        with db.user_unit(caller.db_claims) as unit:
            return 201, workflows.create_webhook(unit, siteId, body)

    # the webhook's secret token is shown once: a replay answers the same webhook without it
    return idempotent_response(request, scope="webhook-create", principal=str(caller.user_id),
                               fingerprint={"siteId": str(siteId), "body": _fingerprint(body)}, action=act,
                               stored=workflows.without_webhook_secret)


@app.get(f"{BASE}/webhooks")
def list_webhooks(siteId: uuid.UUID, caller: Caller = Depends(current_caller)) -> JSONResponse:  # noqa: N803
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.list_webhooks(unit, siteId))


@app.delete(f"{BASE}/webhooks/{{webhookId}}")
def delete_webhook(siteId: uuid.UUID, webhookId: uuid.UUID,  # noqa: N803
                   caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(workflows.delete_webhook(unit, siteId, webhookId))


@app.post("/api/webhooks/automation/{token}", status_code=202)
def receive_webhook(token: str, request: Request, idempotency_key: IdempotencyKey = None,
                    webhook_id: str | None = Header(default=None, alias="Webhook-Id")) -> JSONResponse:
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
