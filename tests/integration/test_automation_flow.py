"""The automation flow on real PostgreSQL with moto SQS/SES: events → executions → steps → logs."""

from __future__ import annotations

import json
import threading

import pytest
from support.automation import create_workflow, emit, executions, step_logs

CONTACT = {"id": "6f1c1d7e-1111-4222-8333-444455556666", "email": "ada@example.test", "first_name": "Ada",
           "lead_score": 72, "status": "active"}


@pytest.fixture
def api(function_client):
    return function_client("automation")


def three_steps(receiver_url: str) -> list[dict]:
    return [
        {"type": "condition", "config": {"field": "event.payload.lead_score", "operator": "gte", "value": 50}},
        {"type": "set_variable", "config": {"name": "last_email", "value": "{{event.payload.email}}"}},
        {"type": "http_request", "config": {
            "method": "POST", "url": f"{receiver_url}/hooks/{{{{event.payload.id}}}}",
            "headers": {"X-Score": "{{event.payload.lead_score}}"},
            "body": {"email": "{{variables.last_email}}", "score": "{{event.payload.lead_score}}",
                     "passed": "{{steps.1.output.result}}", "text": "Hi {{event.payload.first_name}}!"}}},
    ]


def http_step(receiver_url: str) -> dict:
    return {"type": "http_request", "config": {"url": f"{receiver_url}/hooks", "body": {"id": "{{event.payload.id}}"}}}


def test_event_runs_three_step_workflow_with_templates(api, tenant, aws, receiver, owner_conn):
    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    logs = step_logs(owner_conn, execution["id"])
    assert [(s["position"], s["step_type"], s["status"]) for s in logs] == [
        (1, "condition", "completed"), (2, "set_variable", "completed"), (3, "http_request", "completed")]
    assert logs[2]["output"]["status"] == 200
    [request] = receiver.requests
    assert request.path == f"/hooks/{CONTACT['id']}"
    assert request.body == {"email": "ada@example.test", "score": 72, "passed": True, "text": "Hi Ada!"}
    assert request.headers["x-score"] == "72"
    assert request.headers["idempotency-key"] == f"{execution['id']}:3"
    variable = owner_conn.execute("SELECT value FROM workflow_variables WHERE workflow_id = %s AND key = 'last_email'",
                                  (workflow["id"],)).fetchone()
    assert variable["value"] == "ada@example.test"


def test_false_condition_completes_and_skips_later_steps(api, tenant, aws, receiver, owner_conn):
    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    emit(tenant.site_id, "crm.contact.created", {**CONTACT, "lead_score": 10})
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    assert [s["status"] for s in step_logs(owner_conn, execution["id"])] == ["completed", "skipped", "skipped"]
    assert receiver.requests == []


def test_filter_decides_which_events_start_the_workflow(api, tenant, aws, receiver, owner_conn):
    workflow = create_workflow(api, tenant, three_steps(receiver.url),
                               filter_={"status": "active", "lead_score": {"gte": 50}, "email": {"exists": True}})
    emit(tenant.site_id, "crm.contact.created", {**CONTACT, "status": "archived"})
    emit(tenant.site_id, "crm.contact.created", {**CONTACT, "lead_score": 49})
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    assert [e["status"] for e in executions(owner_conn, workflow["id"])] == ["completed"]


def test_events_of_another_type_or_site_do_not_start_the_workflow(api, tenant, other_tenant, aws, receiver,
                                                                   owner_conn):
    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    emit(tenant.site_id, "crm.contact.updated", CONTACT)
    emit(other_tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    assert executions(owner_conn, workflow["id"]) == []


def test_redelivered_message_runs_the_workflow_once(api, tenant, aws, receiver, owner_conn):
    from dramac_common.automation.engine import handle_message

    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    for _ in range(3):  # SQS delivers at least once: the same message again, later
        handle_message({"eventId": str(event_id)})
    [execution] = executions(owner_conn, workflow["id"])
    assert len(step_logs(owner_conn, execution["id"])) == 3
    assert len(receiver.requests) == 1


def test_concurrent_duplicate_deliveries_make_one_execution(api, tenant, aws, receiver, owner_conn):
    from dramac_common.automation.engine import handle_message

    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.purge()
    barrier, errors = threading.Barrier(8), []

    def deliver() -> None:
        barrier.wait()
        try:
            handle_message({"eventId": str(event_id)})
        except Exception as exc:  # collected: the assertion below shows them
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    assert [s["status"] for s in step_logs(owner_conn, execution["id"])] == ["completed"] * 3
    assert len(receiver.requests) == 1


def test_server_errors_are_retried_then_succeed(api, tenant, aws, receiver, owner_conn):
    receiver.script = [503, 500]
    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    assert step_logs(owner_conn, execution["id"])[2]["attempts"] == 3
    assert len(receiver.requests) == 3
    assert len({r.headers["idempotency-key"] for r in receiver.requests}) == 1


def test_step_failing_after_retries_fails_execution_and_skips_the_rest(api, tenant, aws, receiver, owner_conn):
    receiver.script = [500, 500, 500]
    steps = [http_step(receiver.url),
             {"type": "set_variable", "config": {"name": "after", "value": 1}}]
    workflow = create_workflow(api, tenant, steps)
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "failed"
    assert execution["error"].startswith("step 1 (http_request) failed: HTTP 500 Internal Server Error")
    logs = step_logs(owner_conn, execution["id"])
    assert [(s["status"], s["attempts"]) for s in logs] == [("failed", 3), ("skipped", 0)]
    assert "after 3 attempts" in logs[0]["error"]


def test_client_errors_are_not_retried(api, tenant, aws, receiver, owner_conn):
    receiver.script = [404]
    workflow = create_workflow(api, tenant, [http_step(receiver.url)])
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "failed"
    assert "HTTP 404 Not Found" in execution["error"]
    assert len(receiver.requests) == 1


def test_private_addresses_are_refused_without_the_setting(api, tenant, aws, receiver, owner_conn, env):
    env.unset("AUTOMATION_ALLOW_PRIVATE_HTTP")
    workflow = create_workflow(api, tenant, [http_step(receiver.url)])
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "failed"
    assert "private, loopback or reserved address (127.0.0.1)" in execution["error"]
    assert receiver.requests == []


def test_send_email_goes_through_ses(api, tenant, aws, owner_conn):
    workflow = create_workflow(api, tenant, [{"type": "send_email", "config": {
        "to": "{{event.payload.email}}", "subject": "Welcome {{event.payload.first_name}}",
        "body": "Your score is {{event.payload.lead_score}}"}}])
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    [log] = step_logs(owner_conn, execution["id"])
    assert log["output"]["to"] == ["ada@example.test"] and log["output"]["messageId"]
    assert log["input"]["subject"] == "Welcome Ada"
    assert aws.ses.get_send_quota()["SentLast24Hours"] == 1


def test_interrupted_email_is_not_sent_twice(api, tenant, aws, owner_conn):
    """A worker died during the SES call: the next delivery cannot know whether it was sent."""
    from dramac_common.automation.engine import handle_message

    workflow = create_workflow(api, tenant, [{"type": "send_email", "config": {
        "to": "ada@example.test", "subject": "Hi", "body": "Hello"}}])
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.purge()
    [step] = owner_conn.execute("SELECT id FROM workflow_steps WHERE workflow_id = %s", (workflow["id"],)).fetchall()
    execution = owner_conn.execute(
        "INSERT INTO workflow_executions (workflow_id, site_id, event_id, status, next_position, lease_owner, "
        "lease_expires_at) VALUES (%s, %s, %s, 'running', 1, gen_random_uuid(), now() - interval '1 minute') "
        "RETURNING id", (workflow["id"], tenant.site_id, event_id)).fetchone()
    owner_conn.execute("INSERT INTO step_execution_logs (execution_id, step_id, site_id, position, status) "
                       "VALUES (%s, %s, %s, 1, 'running')", (execution["id"], step["id"], tenant.site_id))
    handle_message({"eventId": str(event_id)})
    [row] = executions(owner_conn, workflow["id"])
    assert row["status"] == "failed"
    assert "outcome unknown" in row["error"]
    assert aws.ses.get_send_quota()["SentLast24Hours"] == 0


def test_delay_waits_and_is_resumed_by_a_delayed_message(api, tenant, aws, receiver, owner_conn):
    import time

    workflow = create_workflow(api, tenant, [
        {"type": "delay", "config": {"seconds": 1}},
        {"type": "set_variable", "config": {"name": "done", "value": True}}])
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "waiting"
    assert [s["status"] for s in step_logs(owner_conn, execution["id"])] == ["running"]
    time.sleep(1.2)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    assert [s["status"] for s in step_logs(owner_conn, execution["id"])] == ["completed", "completed"]


def test_long_delay_hops_at_most_fifteen_minutes_at_a_time(api, tenant, aws, owner_conn, monkeypatch):
    from dramac_common.automation import engine

    sent: list[tuple[str, float]] = []
    monkeypatch.setattr(engine, "send_resume", lambda execution_id, delay_s=0: sent.append((str(execution_id), delay_s)))
    workflow = create_workflow(api, tenant, [{"type": "delay", "config": {"seconds": 3600}},
                                             {"type": "set_variable", "config": {"name": "x", "value": 1}}])
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert sent == [(str(execution["id"]), 3600)]  # send_resume caps DelaySeconds at 900
    engine.handle_message({"executionId": str(execution["id"])})  # the first hop arrives, early
    assert executions(owner_conn, workflow["id"])[0]["status"] == "waiting"
    assert 3500 < sent[-1][1] <= 3600
    owner_conn.execute("UPDATE workflow_executions SET resume_at = now() WHERE id = %s", (execution["id"],))
    engine.handle_message({"executionId": str(execution["id"])})  # the last hop
    assert executions(owner_conn, workflow["id"])[0]["status"] == "completed"


def test_resume_message_delay_is_capped_at_900_seconds(aws, monkeypatch):
    from dramac_common.automation.engine import send_resume

    sent = []
    real_send = aws.sqs.send_message
    monkeypatch.setattr(aws.sqs, "send_message", lambda **kw: sent.append(kw) or real_send(**kw))
    send_resume("00000000-0000-4000-8000-000000000000", 3600)
    # one message, delayed by SQS's maximum (above 900 SQS refuses the send), so not visible yet
    assert [(m["QueueUrl"], m["DelaySeconds"]) for m in sent] == [(aws.events_url, 900)]
    assert json.loads(sent[0]["MessageBody"])["executionId"] == "00000000-0000-4000-8000-000000000000"
    assert aws.pending_messages() == []


def test_crash_between_commit_and_send_is_recovered_by_the_relay(api, tenant, aws, receiver, owner_conn,
                                                                  monkeypatch):
    from dramac_common.automation import relay
    from dramac_common.core import queues

    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    real_send = queues.send_messages

    def crash(*args, **kwargs):
        raise ConnectionError("the process died before the send")

    monkeypatch.setattr(queues, "send_messages", crash)
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    monkeypatch.setattr(queues, "send_messages", real_send)
    assert owner_conn.execute("SELECT dispatched_at FROM automation_events_log WHERE id = %s",
                              (event_id,)).fetchone()["dispatched_at"] is None
    assert aws.drain() == []  # nothing reached the queue
    # the relay sends every undispatched event of the database: other tests' may be among them (a test
    # running beside this one may be between its commit and its send), so this one's is checked by id
    assert relay.run_relay(grace_s=0)["eventsSent"] >= 1
    sent_at = owner_conn.execute("SELECT dispatched_at FROM automation_events_log WHERE id = %s",
                                 (event_id,)).fetchone()["dispatched_at"]
    assert sent_at is not None
    relay.run_relay(grace_s=0)
    assert owner_conn.execute("SELECT dispatched_at FROM automation_events_log WHERE id = %s",
                              (event_id,)).fetchone()["dispatched_at"] == sent_at  # not sent again
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    assert len(receiver.requests) == 1


def test_the_processor_marks_the_events_it_reads_and_the_relay_leaves_them_alone(api, tenant, aws, receiver,
                                                                                 owner_conn, monkeypatch):
    from dramac_common.automation import relay
    from dramac_common.core import queues

    create_workflow(api, tenant, three_steps(receiver.url))
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)

    def dispatched_at():
        return owner_conn.execute("SELECT dispatched_at FROM automation_events_log WHERE id = %s",
                                  (event_id,)).fetchone()["dispatched_at"]

    assert dispatched_at() is None  # sent after commit; no transaction follows the send
    aws.drain()
    assert dispatched_at() is not None  # the receipt, committed with the admission of its workflow
    relayed = []
    real_send = queues.send_messages
    monkeypatch.setattr(queues, "send_messages", lambda logical, bodies: relayed.extend(bodies) or real_send(logical, bodies))
    relay.run_relay(grace_s=0)
    assert {"eventId": str(event_id)} not in relayed
    assert len(receiver.requests) == 1


def test_an_event_still_queued_past_the_grace_is_sent_again_by_the_relay_and_runs_once(api, tenant, aws, receiver,
                                                                                       owner_conn, monkeypatch):
    from dramac_common.automation import relay
    from dramac_common.core import queues

    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    sent = []
    real_send = queues.send_messages
    monkeypatch.setattr(queues, "send_messages", lambda logical, bodies: sent.extend(bodies) or real_send(logical, bodies))
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    # a backlog: the processor has not read the request's message yet when the relay runs past the grace
    relay.run_relay(grace_s=0)
    assert sent.count({"eventId": str(event_id)}) == 2
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    assert len(receiver.requests) == 1


def test_relay_resumes_an_execution_whose_worker_died(api, tenant, aws, receiver, owner_conn):
    from dramac_common.automation import relay

    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.purge()  # the message was consumed by a worker that then died, and dead-lettered
    owner_conn.execute(
        "INSERT INTO workflow_executions (workflow_id, site_id, event_id, status, next_position, lease_owner, "
        "lease_expires_at) VALUES (%s, %s, %s, 'running', 1, gen_random_uuid(), now() - interval '1 hour')",
        (workflow["id"], tenant.site_id, event_id))
    assert relay.run_relay(grace_s=0)["executionsResumed"] >= 1  # this one, and any an earlier test left
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    assert len(receiver.requests) == 1


def test_events_caused_by_workflows_stop_at_the_chain_limit(api, tenant, aws, receiver, owner_conn):
    from dramac_common.automation.engine import MAX_CHAIN_DEPTH, handle_message

    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    event = owner_conn.execute(
        "INSERT INTO automation_events_log (site_id, event_type, payload, chain_depth) VALUES (%s, %s, %s, %s) "
        "RETURNING id", (tenant.site_id, "crm.contact.created", '{"lead_score": 90}', MAX_CHAIN_DEPTH)).fetchone()
    handle_message({"eventId": str(event["id"])})
    [stopped] = executions(owner_conn, workflow["id"])  # recorded as stopped, not silently skipped
    assert stopped["status"] == "failed" and stopped["error"].startswith("stopped: trigger loop detected")
    assert step_logs(owner_conn, stopped["id"]) == [] and receiver.requests == []


def test_partial_batch_failure_reports_only_the_bad_message(aws):
    from dramac_dev.events import LocalContext, sqs_event, sqs_record
    from dramac_dev.functions_loader import get_handler

    good = sqs_record('{"eventId": "00000000-0000-4000-8000-000000000000"}', queue_arn=aws.queue_arn)
    bad = sqs_record("not json", queue_arn=aws.queue_arn)
    result = get_handler("event_processor")(sqs_event([good, bad]), LocalContext("event_processor"))
    assert result == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
