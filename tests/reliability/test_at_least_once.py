"""At-least-once delivery: SQS hands a queue handler the same message more than once, out of order, and
to two workers at the same time. Every queue handler (provision, event_processor) and the relay's
scheduled run must leave the same state as a single delivery: one schema, one execution per
(event, workflow), one log per step, one HTTP call, one e-mail."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from typing import Any

from support.automation import emit
from support.world import schema_shape

from dramac_dev.events import LocalContext, sqs_event, sqs_record
from dramac_dev.functions_loader import get_handler
from dramac_dev.seed import CRM_MANIFEST

PROVISION_ARN = "arn:aws:sqs:us-east-1:000000000000:dramac-provision"


def deliver(function: str, arn: str, messages: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """One invocation with these (message id, body) records; returns the ids reported failed."""
    records = [sqs_record(json.dumps(body), queue_arn=arn, message_id=mid) for mid, body in messages]
    result = get_handler(function)(sqs_event(records), LocalContext(function))
    return {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}


def concurrently(*calls: Any) -> list[Any]:
    barrier, results, errors = threading.Barrier(len(calls)), [None] * len(calls), []

    def run(i: int, call: Any) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_provision_jobs_delivered_twice_out_of_order_and_concurrently_provision_once(
        owner_conn, make_module, tenant):
    from dramac_common.core.naming import get_module_schema_name

    m1, m2, reference = (make_module(module_id=uuid.uuid4(), manifest=copy.deepcopy(CRM_MANIFEST)) for _ in range(3))
    for module_id in (m1, m2):
        owner_conn.execute("INSERT INTO site_module_installations (site_id, module_id, agency_id, status) "
                           "VALUES (%s, %s, %s, 'provisioning')", (tenant.site_id, module_id, tenant.agency_id))
    job1 = ("msg-1", {"action": "provision", "moduleId": str(m1), "siteId": str(tenant.site_id)})
    job2 = ("msg-2", {"action": "provision", "moduleId": str(m2), "siteId": str(tenant.site_id)})
    assert deliver("provision", PROVISION_ARN, [("ref", {"action": "provision", "moduleId": str(reference)})]) == set()
    expected = schema_shape(owner_conn, get_module_schema_name(reference))

    failed = deliver("provision", PROVISION_ARN, [job2, job1, job1, job2])
    failed |= set().union(*concurrently(lambda: deliver("provision", PROVISION_ARN, [job1, job2]),
                                        lambda: deliver("provision", PROVISION_ARN, [job2, job1])))
    # a delivery that lost a race may be retried by SQS; the retry must settle it
    for mid, body in (job1, job2):
        if mid in failed:
            assert deliver("provision", PROVISION_ARN, [(mid, body)]) == set()

    for module_id in (m1, m2):
        schema = get_module_schema_name(module_id)
        assert schema_shape(owner_conn, schema) == expected
        registry = owner_conn.execute("SELECT status FROM module_database_registry WHERE module_id = %s",
                                      (module_id,)).fetchall()
        assert [r["status"] for r in registry] == ["active"]
        installs = owner_conn.execute("SELECT status FROM site_module_installations WHERE module_id = %s",
                                      (module_id,)).fetchall()
        assert [r["status"] for r in installs] == ["active"]


def workflow_with_side_effects(function_client, tenant, receiver_url: str) -> uuid.UUID:
    reply = function_client("automation").post(f"/api/sites/{tenant.site_id}/automation/workflows", user=tenant.owner,
                                               body={"name": "side effects", "triggerEventType": "crm.contact.created",
                                                     "steps": [
        {"type": "set_variable", "config": {"name": "last", "value": "{{event.payload.email}}"}},
        {"type": "http_request", "config": {"url": f"{receiver_url}/hook", "body": {"e": "{{event.payload.email}}"}}},
        {"type": "send_email", "config": {"to": "{{event.payload.email}}", "subject": "Hi", "body": "Hello"}},
    ]})
    assert reply.status == 201, reply.body
    return uuid.UUID(reply.data["id"])


def assert_one_run_per_event(owner_conn, aws, receiver, workflow_id: uuid.UUID, events: list[uuid.UUID]) -> None:
    rows = owner_conn.execute("SELECT id, event_id, status FROM workflow_executions WHERE workflow_id = %s",
                              (workflow_id,)).fetchall()
    assert sorted(r["event_id"] for r in rows) == sorted(events)
    assert {r["status"] for r in rows} == {"completed"}
    for row in rows:
        logs = owner_conn.execute("SELECT position, status FROM step_execution_logs WHERE execution_id = %s "
                                  "ORDER BY position", (row["id"],)).fetchall()
        assert [(s["position"], s["status"]) for s in logs] == [(1, "completed"), (2, "completed"), (3, "completed")]
    assert sorted(r.body["e"] for r in receiver.requests) == sorted(f"{e}@example.test" for e in ("ada", "bob"))
    assert aws.ses.get_send_quota()["SentLast24Hours"] == len(events)


def test_events_delivered_twice_out_of_order_and_concurrently_run_once(function_client, tenant, aws, receiver,
                                                                       owner_conn):
    workflow_id = workflow_with_side_effects(function_client, tenant, receiver.url)
    e1 = emit(tenant.site_id, "crm.contact.created", {"email": "ada@example.test"})
    e2 = emit(tenant.site_id, "crm.contact.created", {"email": "bob@example.test"})
    aws.purge()  # delivered below by hand, duplicated and reordered
    m1, m2 = ("msg-1", {"eventId": str(e1)}), ("msg-2", {"eventId": str(e2)})

    failed = deliver("event_processor", aws.queue_arn, [m2, m1, m1, m2])
    failed |= set().union(*concurrently(lambda: deliver("event_processor", aws.queue_arn, [m1, m2]),
                                        lambda: deliver("event_processor", aws.queue_arn, [m2, m1])))
    for mid, body in (m1, m2):
        if mid in failed:
            assert deliver("event_processor", aws.queue_arn, [(mid, body)]) == set()
    aws.drain()  # resume messages the engine itself queued, if any

    assert_one_run_per_event(owner_conn, aws, receiver, workflow_id, [e1, e2])


def test_relay_runs_twice_and_concurrently_without_running_an_event_twice(function_client, tenant, aws, receiver,
                                                                          owner_conn, env):
    env.set("AUTOMATION_RELAY_GRACE_SECONDS", "0")
    workflow_id = workflow_with_side_effects(function_client, tenant, receiver.url)
    e1 = emit(tenant.site_id, "crm.contact.created", {"email": "ada@example.test"})
    e2 = emit(tenant.site_id, "crm.contact.created", {"email": "bob@example.test"})
    aws.purge()
    # as if the workers died between commit and send: the relay must pick both up
    owner_conn.execute("UPDATE automation_events_log SET dispatched_at = NULL WHERE id = ANY(%s)", ([e1, e2],))
    relay = get_handler("relay")
    scheduled = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}

    concurrently(lambda: relay(scheduled, LocalContext("relay")), lambda: relay(scheduled, LocalContext("relay")))
    relay(scheduled, LocalContext("relay"))
    aws.drain()
    relay(scheduled, LocalContext("relay"))  # after the events ran: nothing is sent again
    aws.drain()

    assert_one_run_per_event(owner_conn, aws, receiver, workflow_id, [e1, e2])
    undispatched = owner_conn.execute("SELECT count(*) AS n FROM automation_events_log WHERE id = ANY(%s) "
                                      "AND dispatched_at IS NULL", ([e1, e2],)).fetchone()["n"]
    assert undispatched == 0
