"""Records of the automation tests: events written as modules write them, workflows created over the
API, and the executions and step logs they left (emulated AWS: ``support.aws``)."""

from __future__ import annotations

import json
import uuid
from typing import Any


def emit(site_id: uuid.UUID, event_type: str, payload: dict[str, Any]) -> uuid.UUID:
    """An event written the way modules write them: log_automation_event in a transaction."""
    from dramac_common.automation.outbox import log_automation_event
    from dramac_common.core import db

    with db.service_unit() as unit:
        return log_automation_event(unit, site_id, event_type, payload, source_module="test")


def create_workflow(api, tenant, steps: list[dict[str, Any]], *, trigger: str = "crm.contact.created",
                    filter_: dict[str, Any] | None = None, name: str = "Workflow") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "triggerEventType": trigger, "steps": steps}
    if filter_ is not None:
        body["filter"] = filter_
    reply = api.post(f"/api/sites/{tenant.site_id}/automation/workflows", user=tenant.owner, body=body)
    assert reply.status == 201, reply.body
    return reply.data


def listen(owner_conn, site_id: uuid.UUID, *event_types: str, active: bool = True,
           subscribed: bool = True) -> uuid.UUID:
    """A workflow on the site, without steps, subscribed to ``event_types``: events of those types on the
    site (and agency-level ones of its agency) are sent to the queue; unheard ones are not (migration 0180).
    ``active``/``subscribed`` False: an inactive workflow, or inactive subscriptions, which do not count."""
    workflow = owner_conn.execute(
        "INSERT INTO automation_workflows (site_id, name, is_active) VALUES (%s, 'Listener', %s) RETURNING id",
        (site_id, active)).fetchone()["id"]
    for event_type in event_types:
        owner_conn.execute(
            "INSERT INTO automation_event_subscriptions (workflow_id, site_id, event_type, is_active) "
            "VALUES (%s, %s, %s, %s)", (workflow, site_id, event_type, subscribed))
    return workflow


def executions(owner_conn, workflow_id) -> list[dict[str, Any]]:
    return owner_conn.execute(
        "SELECT id, status, error, next_position FROM workflow_executions WHERE workflow_id = %s ORDER BY created_at",
        (workflow_id,),
    ).fetchall()


def step_logs(owner_conn, execution_id) -> list[dict[str, Any]]:
    return owner_conn.execute(
        "SELECT position, step_type, status, input, output, error, attempts, duration_ms "
        "FROM step_execution_logs WHERE execution_id = %s ORDER BY position",
        (execution_id,),
    ).fetchall()


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
