"""Faults: the worker's database connection is killed (``pg_terminate_backend``, from a second
connection) just before its Nth statement, for every N of a provisioning job and of an event's
execution. Afterwards nothing is half done, and a redelivery completes to the same state as a run
that was never interrupted."""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from support.automation import emit
from support.world import schema_shape

from dramac_dev.events import LocalContext, sqs_event, sqs_record
from dramac_dev.functions_loader import get_handler
from dramac_dev.seed import CRM_MANIFEST


class StatementKiller:
    """Counts the statements the worker sends (every psycopg cursor execute on a pooled connection)
    and, when ``kill_at`` is reached, terminates that connection's backend before the statement runs."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.count = 0
        self.kill_at: int | None = None
        self.killed = False

    @contextmanager
    def watching(self, kill_at: int | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatementKiller]:
        self.count, self.kill_at, self.killed = 0, kill_at, False
        original = psycopg.Cursor.execute
        killer = self

        def execute(cursor: psycopg.Cursor, query: Any, params: Any = None, **kw: Any) -> Any:
            killer.count += 1
            if killer.count == killer.kill_at:
                killer.killed = True
                with psycopg.connect(killer.database_url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (cursor.connection.info.backend_pid,))
            return original(cursor, query, params, **kw)

        with monkeypatch.context() as m:
            m.setattr(psycopg.Cursor, "execute", execute)
            yield self


def provision(module_id: uuid.UUID, receive_count: int = 1) -> bool:
    """One delivery of a provision job; True when the handler reports it done."""
    record = sqs_record(json.dumps({"action": "provision", "moduleId": str(module_id)}),
                        queue_arn="arn:aws:sqs:us-east-1:000000000000:dramac-provision", receive_count=receive_count)
    result = get_handler("provision")(sqs_event([record]), LocalContext("provision"))
    return not result["batchItemFailures"]


def provisioned_state(owner_conn, module_id: uuid.UUID, site_id: uuid.UUID) -> dict[str, Any]:
    from dramac_common.core.naming import get_module_schema_name

    schema = get_module_schema_name(module_id)
    exists = owner_conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None
    registry = owner_conn.execute("SELECT status FROM module_database_registry WHERE module_id = %s",
                                  (module_id,)).fetchone()
    install = owner_conn.execute("SELECT status FROM site_module_installations WHERE module_id = %s AND site_id = %s",
                                 (module_id, site_id)).fetchone()
    return {"shape": schema_shape(owner_conn, schema) if exists else None,
            "registry": registry and registry["status"], "installation": install and install["status"]}


def test_provisioning_killed_at_every_statement_leaves_nothing_partial_and_retry_completes(
        database_url, owner_conn, make_module, tenant, monkeypatch):
    killer = StatementKiller(database_url)

    def new_module() -> uuid.UUID:
        module_id = make_module(module_id=uuid.uuid4(), manifest=copy.deepcopy(CRM_MANIFEST))
        owner_conn.execute("INSERT INTO site_module_installations (site_id, module_id, agency_id, status) "
                           "VALUES (%s, %s, %s, 'provisioning')", (tenant.site_id, module_id, tenant.agency_id))
        return module_id

    reference = new_module()
    with killer.watching(None, monkeypatch):
        assert provision(reference)
    statements = killer.count
    expected = provisioned_state(owner_conn, reference, tenant.site_id)
    assert expected["registry"] == "active" and expected["installation"] == "active"
    # BEGIN with the lock and the state read, then the DDL script with COMMIT (a kill in the middle of the
    # script: test_provision's test_connection_killed_mid_job_leaves_no_partial_schema_and_a_retry_succeeds)
    assert statements >= 2

    for n in range(1, statements + 1):
        module_id = new_module()
        with killer.watching(n, monkeypatch):
            done = provision(module_id)
        assert killer.killed, n
        after_fault = provisioned_state(owner_conn, module_id, tenant.site_id)
        # all or nothing: a schema is either absent or whole, and no installation is active without it
        assert after_fault["shape"] in (None, expected["shape"]), n
        if after_fault["installation"] == "active":
            assert after_fault["shape"] == expected["shape"] and after_fault["registry"] == "active", n
        if not done or after_fault != expected:
            assert provision(module_id, receive_count=2), n
        assert provisioned_state(owner_conn, module_id, tenant.site_id) == expected, n


def test_event_execution_killed_at_every_statement_leaves_nothing_partial_and_retry_completes(
        database_url, function_client, tenant, aws, receiver, owner_conn, monkeypatch):
    from dramac_common.automation.engine import handle_message

    reply = function_client("automation").post(f"/api/sites/{tenant.site_id}/automation/workflows", user=tenant.owner,
                                               body={"name": "faults", "triggerEventType": "crm.contact.created",
                                                     "steps": [
        {"type": "set_variable", "config": {"name": "last", "value": "{{event.payload.email}}"}},
        {"type": "http_request", "config": {"url": f"{receiver.url}/hook", "body": {"e": "{{event.payload.email}}"}}},
    ]})
    assert reply.status == 201, reply.body
    workflow_id = reply.data["id"]
    killer = StatementKiller(database_url)

    def state(event_id: uuid.UUID) -> dict[str, Any]:
        executions = owner_conn.execute("SELECT id, status FROM workflow_executions WHERE event_id = %s",
                                        (event_id,)).fetchall()
        logs = owner_conn.execute(
            "SELECT l.position, l.status FROM step_execution_logs l JOIN workflow_executions e ON e.id = l.execution_id "
            "WHERE e.event_id = %s ORDER BY l.position", (event_id,)).fetchall()
        return {"executions": [e["status"] for e in executions], "steps": [(s["position"], s["status"]) for s in logs]}

    reference = emit(tenant.site_id, "crm.contact.created", {"email": "ref@example.test"})
    aws.purge()
    with killer.watching(None, monkeypatch):
        handle_message({"eventId": str(reference)})
    statements = killer.count
    expected = state(reference)
    assert expected == {"executions": ["completed"], "steps": [(1, "completed"), (2, "completed")]}

    for n in range(1, statements + 1):
        email = f"n{n}@example.test"
        event_id = emit(tenant.site_id, "crm.contact.created", {"email": email})
        aws.purge()
        with killer.watching(n, monkeypatch), contextlib.suppress(psycopg.OperationalError):
            handle_message({"eventId": str(event_id)})  # a failure here sends the message back to SQS
        assert killer.killed, n
        after_fault = state(event_id)
        assert len(after_fault["executions"]) <= 1, n
        assert all(status in ("completed", "running") for _, status in after_fault["steps"]), (n, after_fault)
        # the redelivery comes after the visibility timeout, when a dead worker's lease has run out
        owner_conn.execute("UPDATE workflow_executions SET lease_expires_at = now() - interval '1 second' "
                           "WHERE event_id = %s", (event_id,))
        handle_message({"eventId": str(event_id)})
        aws.drain()
        assert state(event_id) == expected, (n, state(event_id))
        calls = [r for r in receiver.requests if r.body == {"e": email}]
        assert 1 <= len(calls) <= 2 and len({r.headers["idempotency-key"] for r in calls}) == 1, n
    assert owner_conn.execute("SELECT count(*) AS n FROM workflow_executions WHERE workflow_id = %s",
                              (workflow_id,)).fetchone()["n"] == statements + 1
