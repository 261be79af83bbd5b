"""An SQS batch of events runs together (admitted in one transaction, steps in shared transactions,
external calls at once) and still as if each message ran alone: each (event, workflow) once, every
step logged, a site's running limit kept, and one bad message or failing step touching no other."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from support.automation import create_workflow, emit, executions, step_logs
from support.modules import make_crm

from dramac_dev.events import LocalContext, sqs_event, sqs_record
from dramac_dev.functions_loader import get_handler


@pytest.fixture
def api(function_client):
    return function_client("automation")


def deliver(arn: str, messages: list[tuple[str, Any]]) -> set[str]:
    """One invocation of the event processor with these (message id, body) records; the failed ids."""
    records = [sqs_record(body if isinstance(body, str) else json.dumps(body), queue_arn=arn, message_id=mid)
               for mid, body in messages]
    result = get_handler("event_processor")(sqs_event(records), LocalContext("event_processor"))
    return {f["itemIdentifier"] for f in result["batchItemFailures"]}


def side_effects_workflow(api, tenant, url: str, **kwargs: Any) -> dict[str, Any]:
    return create_workflow(api, tenant, [
        {"type": "set_variable", "config": {"name": "last", "value": "{{event.payload.email}}"}},
        {"type": "http_request", "config": {"url": f"{url}/hook", "body": {"e": "{{event.payload.email}}"}}},
    ], **kwargs)


def assert_each_ran_once(owner_conn, receiver, workflow_id, event_ids: list[uuid.UUID]) -> None:
    rows = executions(owner_conn, workflow_id)
    assert len(rows) == len(event_ids) and {r["status"] for r in rows} == {"completed"}, rows
    for row in rows:
        assert [(s["position"], s["status"]) for s in step_logs(owner_conn, row["id"])] == [
            (1, "completed"), (2, "completed")]
    calls = [r for r in receiver.requests if r.path == "/hook"]
    assert sorted(r.body["e"] for r in calls) == sorted(f"c{n}@example.test" for n in range(len(event_ids)))
    assert len({r.headers["idempotency-key"] for r in calls}) == len(event_ids)


def test_a_batch_makes_its_calls_at_once_runs_each_event_once_and_fails_only_the_bad_message(
        api, tenant, aws, receiver, owner_conn):
    receiver.delay_s = 0.3  # slow answers: calls made one after the other would never overlap
    workflow = side_effects_workflow(api, tenant, receiver.url)
    events = [emit(tenant.site_id, "crm.contact.created", {"email": f"c{n}@example.test"}) for n in range(6)]
    aws.purge()  # delivered below by hand
    messages = [(f"m{n}", {"eventId": str(e)}) for n, e in enumerate(events)]
    failed = deliver(aws.queue_arn, [*messages, ("again", messages[2][1]), ("bad", "not json")])

    assert failed == {"bad"}
    assert receiver.max_in_flight == len(events)  # every call of the batch was in flight at once
    assert_each_ran_once(owner_conn, receiver, workflow["id"], events)
    last = owner_conn.execute("SELECT value FROM workflow_variables WHERE workflow_id = %s AND key = 'last'",
                              (workflow["id"],)).fetchone()
    assert last["value"] == "c5@example.test"  # set by each event in the batch's order: the last one's stays
    assert deliver(aws.queue_arn, messages) == set()  # redelivered: nothing runs again
    assert_each_ran_once(owner_conn, receiver, workflow["id"], events)


def test_a_batch_keeps_the_sites_running_limit_and_runs_the_rest_after_its_own(api, tenant, aws, receiver,
                                                                                 owner_conn, env):
    env.set("DRAMAC_PLAN_LIMITS", json.dumps({"standard": {"maxRunningExecutions": 2}}))
    receiver.delay_s = 0.2
    workflow = side_effects_workflow(api, tenant, receiver.url)
    events = [emit(tenant.site_id, "crm.contact.created", {"email": f"c{n}@example.test"}) for n in range(5)]
    aws.purge()

    assert deliver(aws.queue_arn, [(f"m{n}", {"eventId": str(e)}) for n, e in enumerate(events)]) == set()

    assert receiver.max_in_flight == 2  # never more than the site's slots, and not one at a time either
    assert_each_ran_once(owner_conn, receiver, workflow["id"], events)  # none was queued for later
    delayed = aws.sqs.get_queue_attributes(QueueUrl=aws.events_url, AttributeNames=["ApproximateNumberOfMessages",
                                                                                     "ApproximateNumberOfMessagesDelayed"])
    assert set(delayed["Attributes"].values()) == {"0"}


def test_a_failing_database_step_fails_its_execution_alone_and_repeats_no_other_effect(
        api, tenant, aws, receiver, owner_conn, make_module):
    _, slug = make_crm(owner_conn, make_module, tenant)
    trigger = f"{slug}.contact.created"
    # the shared transaction is rolled back when this step is refused; the batch goes on one at a time
    broken = create_workflow(api, tenant, trigger=trigger, name="Broken", filter_={"broken": True}, steps=[
        {"type": "set_variable", "config": {"name": "seen", "value": "{{event.payload.email}}"}},
        {"type": "create_record", "config": {"module": slug, "table": "companies",
                                             "values": {"name": "Co", "revenue": 10}}}])
    workflow = side_effects_workflow(api, tenant, receiver.url, trigger=trigger)
    events = [emit(tenant.site_id, trigger, {"email": f"c{n}@example.test", "broken": n == 1}) for n in range(3)]
    aws.purge()

    assert deliver(aws.queue_arn, [(f"m{n}", {"eventId": str(e)}) for n, e in enumerate(events)]) == set()

    assert_each_ran_once(owner_conn, receiver, workflow["id"], events)
    [failed] = executions(owner_conn, broken["id"])
    assert failed["status"] == "failed" and "revenue" in failed["error"]
    assert [(s["position"], s["status"]) for s in step_logs(owner_conn, failed["id"])] == [
        (1, "completed"), (2, "failed")]
    seen = owner_conn.execute("SELECT value FROM workflow_variables WHERE workflow_id = %s AND key = 'seen'",
                              (broken["id"],)).fetchone()
    assert seen["value"] == "c1@example.test"


def test_a_batch_near_its_deadline_hands_the_rest_to_a_resume(api, tenant, aws, receiver, owner_conn):
    receiver.delay_s = 2.5  # the call leaves less than the 20 s a next step needs
    workflow = create_workflow(api, tenant, [
        {"type": "http_request", "config": {"url": f"{receiver.url}/hook", "body": {"e": "{{event.payload.email}}"}}},
        {"type": "set_variable", "config": {"name": "last", "value": "{{event.payload.email}}"}},
    ])
    events = [emit(tenant.site_id, "crm.contact.created", {"email": f"c{n}@example.test"}) for n in range(2)]
    aws.purge()
    records = [sqs_record(json.dumps({"eventId": str(e)}), queue_arn=aws.queue_arn) for e in events]
    result = get_handler("event_processor")(sqs_event(records), LocalContext("event_processor", timeout_s=22))

    assert result["batchItemFailures"] == []
    for row in executions(owner_conn, workflow["id"]):  # step 1 done, the lease given back for a resume
        assert (row["status"], row["next_position"]) == ("running", 2)
        assert [(s["position"], s["status"]) for s in step_logs(owner_conn, row["id"])] == [(1, "completed")]
    assert owner_conn.execute("SELECT count(*) AS n FROM workflow_executions WHERE workflow_id = %s "
                              "AND lease_expires_at > now()", (workflow["id"],)).fetchone()["n"] == 0
    receiver.delay_s = 0
    aws.drain()  # the resume messages
    assert_each_ran_once(owner_conn, receiver, workflow["id"], events)


def test_a_batch_statement_whose_guard_fails_commits_nothing_of_its_transaction(api, tenant, aws, owner_conn):
    """The statements that write what a batch ran check their own guards, so the COMMIT queued after them
    (``Unit.queue_commit``) never commits a batch that lost a race: 40001, and nothing of it stays."""
    import psycopg
    from dramac_common.automation import dal
    from dramac_common.core import db

    workflow = create_workflow(api, tenant, [
        {"type": "set_variable", "config": {"name": "last", "value": "{{event.payload.email}}"}}])
    event = emit(tenant.site_id, "crm.contact.created", {"email": "c0@example.test"})
    aws.purge()
    assert deliver(aws.queue_arn, [("m0", {"eventId": str(event)})]) == set()
    [execution] = executions(owner_conn, workflow["id"])
    step = owner_conn.execute("SELECT id, position, step_type FROM workflow_steps WHERE workflow_id = %s",
                              (workflow["id"],)).fetchone()
    worker = uuid.uuid4()
    owner_conn.execute("UPDATE workflow_executions SET status = 'running', next_position = 1, lease_owner = %s, "
                       "lease_expires_at = now() + interval '1 minute' WHERE id = %s", (worker, execution["id"]))
    finished = {"execution_id": execution["id"], "workflow_id": workflow["id"], "step": step, "next_position": 2,
                "log_status": "completed", "input_": {}, "output": {"value": "x"}, "error": None, "attempts": 1,
                "duration_ms": 0, "execution_status": "completed"}
    duplicate = {"id": uuid.uuid4(), "event_id": event, "workflow_id": workflow["id"], "site_id": tenant.site_id,
                 "next_position": 1, "status": "running"}
    attempt = {"execution_id": execution["id"], "position": 1, "step": step, "input_": {}}
    for write in (lambda unit, owner: dal.insert_finished_executions(unit, [duplicate], owner, 60, []),
                  lambda unit, owner: dal.finish_steps(unit, owner, 60, [finished]),
                  lambda unit, owner: dal.finish_steps(unit, owner, 60, [finished],  # the variables in the statement
                                                       {(workflow["id"], "guarded"): (tenant.site_id, "written")}),
                  lambda unit, owner: dal.record_attempt_later(unit, owner=owner, lease_s=60, guarded=True, **attempt)):
        with pytest.raises(psycopg.errors.SerializationFailure), db.service_unit() as unit, unit.pipeline():
            dal.set_variables(unit, {(workflow["id"], "guarded"): (tenant.site_id, "written")})
            write(unit, uuid.uuid4())  # another worker's id: it holds no lease, or another execution exists
            unit.queue_commit()
        assert owner_conn.execute("SELECT count(*) AS n FROM workflow_variables WHERE workflow_id = %s "
                                  "AND key = 'guarded'", (workflow["id"],)).fetchone()["n"] == 0
    [still] = executions(owner_conn, workflow["id"])
    assert (still["id"], still["status"], still["next_position"]) == (execution["id"], "running", 1)
    assert [(s["position"], s["status"]) for s in step_logs(owner_conn, execution["id"])] == [(1, "completed")]

    with db.service_unit() as unit, unit.pipeline():  # the lease's holder passes the same guards
        dal.finish_steps(unit, worker, 60, [finished])
        unit.queue_commit()
    [done] = executions(owner_conn, workflow["id"])
    assert (done["status"], done["next_position"]) == ("completed", 2)


def test_a_batch_whose_connection_died_while_idle_runs_together_on_a_new_one(api, tenant, aws, owner_conn, env,
                                                                               caplog):
    """The batch's transaction opens with its first statements (``Unit.pipeline``): a container's connection
    closed while idle between invocations is found dead there, before anything ran, and the batch runs again
    on a new connection, together (not one event at a time)."""
    from dramac_common.core import db

    env.set("AWS_LAMBDA_FUNCTION_NAME", "event_processor")  # one connection kept between invocations
    db.close_pool()
    try:
        workflow = create_workflow(api, tenant, [
            {"type": "set_variable", "config": {"name": "last", "value": "{{event.payload.email}}"}}])
        events = [emit(tenant.site_id, "crm.contact.created", {"email": f"c{n}@example.test"}) for n in range(3)]
        aws.purge()
        with db.service_unit() as unit:
            kept = unit.fetchrow("SELECT pg_backend_pid() AS pid")["pid"]
        owner_conn.execute("SELECT pg_terminate_backend(%s)", (kept,))

        assert deliver(aws.queue_arn, [(f"m{n}", {"eventId": str(e)}) for n, e in enumerate(events)]) == set()

        rows = executions(owner_conn, workflow["id"])
        assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"}
        assert "each goes again alone" not in caplog.text
    finally:
        db.close_pool()
