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
