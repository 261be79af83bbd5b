"""Execution limits per site (concurrency and hourly volume, from the site's plan) and trigger-loop
detection: a burst or a loop on one site never takes every worker, and what did not run says why."""

from __future__ import annotations

import json
import threading

import pytest
from dramac_common.core import db
from dramac_common.module_data import ModuleDatabaseSDK
from support.automation import create_workflow, emit, executions
from support.handlers import claims_for
from support.modules import make_crm


@pytest.fixture
def api(function_client):
    return function_client("automation")


@pytest.fixture
def crm(owner_conn, make_module, tenant):
    _, slug = make_crm(owner_conn, make_module, tenant)
    return slug


def limits(env, **plans) -> None:
    env.set("DRAMAC_PLAN_LIMITS", json.dumps(plans))


def all_executions(owner_conn, site_id):
    return owner_conn.execute(
        "SELECT e.id, e.status, e.error, e.stop_reason, ev.chain_depth FROM workflow_executions e "
        "JOIN automation_events_log ev ON ev.id = e.event_id WHERE e.site_id = %s ORDER BY ev.chain_depth, e.created_at",
        (site_id,)).fetchall()


def test_a_workflow_that_retriggers_itself_is_stopped_with_a_clear_reason(api, tenant, aws, crm, owner_conn, env):
    env.set("AUTOMATION_MAX_CHAIN_DEPTH", "3")
    # each run writes a contact, whose contact.created event starts the same workflow again
    workflow = create_workflow(api, tenant, trigger=f"{crm}.contact.created", steps=[
        {"type": "create_record", "config": {"module": crm, "table": "contacts",
                                             "values": {"email": "again-{{event.payload.email}}"}}}])
    with db.user_unit(claims_for(tenant.owner)) as unit:
        ModuleDatabaseSDK.for_request(unit, site_id=tenant.site_id, module=crm).create_one(
            "contacts", {"email": "first@example.test"})
    aws.drain(rounds=30)
    runs = all_executions(owner_conn, tenant.site_id)
    assert [(r["chain_depth"], r["status"], r["stop_reason"]) for r in runs] == [
        (0, "completed", None), (1, "completed", None), (2, "completed", None), (3, "failed", "loop_detected")]
    assert runs[-1]["error"].startswith("stopped: trigger loop detected")
    assert "3 chained workflow steps (limit 3)" in runs[-1]["error"]
    detail = api.get(f"/api/sites/{tenant.site_id}/automation/executions/{runs[-1]['id']}", user=tenant.member).data
    assert (detail["status"], detail["stopReason"], detail["steps"]) == ("failed", "loop_detected", [])
    count = owner_conn.execute("SELECT count(*) AS n FROM workflow_executions WHERE workflow_id = %s",
                               (workflow["id"],)).fetchone()["n"]
    assert count == 4 and aws.pending_messages() == []  # nothing left running or queued


def http_step(url: str) -> dict:
    return {"type": "http_request", "config": {"url": f"{url}/x"}}


def test_over_the_concurrency_limit_executions_wait_queued_then_run(api, tenant, aws, receiver, owner_conn, env):
    limits(env, standard={"maxRunningExecutions": 1})
    workflow = create_workflow(api, tenant, [http_step(receiver.url)])
    other = create_workflow(api, tenant, [http_step(receiver.url)], name="Second")
    # another worker holds the site's one slot: a running execution with a live lease
    first = emit(tenant.site_id, "crm.contact.created", {"id": "1"})
    owner_conn.execute(
        "INSERT INTO workflow_executions (workflow_id, site_id, event_id, status, lease_owner, lease_expires_at, "
        "started_at) VALUES (%s, %s, %s, 'running', gen_random_uuid(), now() + interval '10 minutes', now())",
        (workflow["id"], tenant.site_id, first))
    aws.purge()
    from dramac_common.automation.engine import handle_message

    summary = handle_message({"eventId": str(first)})
    assert [e["status"] for e in summary.executions] == ["queued"]  # the second workflow waits
    [queued] = executions(owner_conn, other["id"])
    assert queued["status"] == "pending" and receiver.requests == []
    delayed = aws.sqs.get_queue_attributes(QueueUrl=aws.events_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert delayed["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"  # it asks again in 10 s
    message = {"executionId": str(queued["id"])}
    assert [e["status"] for e in handle_message(message).executions] == ["queued"]  # still no slot
    owner_conn.execute("UPDATE workflow_executions SET status = 'completed', lease_owner = NULL, "
                       "lease_expires_at = NULL WHERE workflow_id = %s", (workflow["id"],))
    assert [e["status"] for e in handle_message(message).executions] == ["completed"]
    assert executions(owner_conn, other["id"])[0]["status"] == "completed" and len(receiver.requests) == 1


def test_a_burst_never_runs_more_than_the_limit_at_once_and_everything_completes(api, tenant, aws, receiver,
                                                                                    owner_conn, env):
    from dramac_common.automation import relay
    from dramac_common.automation.engine import handle_message

    limits(env, standard={"maxRunningExecutions": 2})
    receiver.delay_s = 0.5  # each call takes a while: the executions overlap
    workflow = create_workflow(api, tenant, [http_step(receiver.url)])
    events = [emit(tenant.site_id, "crm.contact.created", {"id": str(n)}) for n in range(6)]
    aws.purge()
    start = threading.Barrier(len(events))

    def deliver(event_id) -> None:
        start.wait()
        handle_message({"eventId": str(event_id)})

    threads = [threading.Thread(target=deliver, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(20):  # the queued ones come back (the relay re-sends what waits) and run two at a time
        if all(r["status"] == "completed" for r in executions(owner_conn, workflow["id"])):
            break
        relay.run_relay(grace_s=0)
        aws.drain(rounds=5)
    assert [r["status"] for r in executions(owner_conn, workflow["id"])] == ["completed"] * 6
    assert len(receiver.requests) == 6 and receiver.max_in_flight <= 2


def test_over_the_hourly_volume_executions_are_recorded_not_run(api, tenant, other_tenant, aws, receiver,
                                                                owner_conn, env):
    limits(env, free={"maxExecutionsPerHour": 2}, standard={"maxExecutionsPerHour": 100})
    owner_conn.execute("INSERT INTO private.agency_plans (agency_id, plan) VALUES (%s, 'free')", (tenant.agency_id,))
    workflow = create_workflow(api, tenant, [http_step(receiver.url)])
    theirs = create_workflow(api, other_tenant, [http_step(receiver.url)])
    for n in range(4):
        emit(tenant.site_id, "crm.contact.created", {"id": str(n)})
        emit(other_tenant.site_id, "crm.contact.created", {"id": str(n)})
    aws.drain(rounds=10)
    mine = executions(owner_conn, workflow["id"])
    assert sorted(r["status"] for r in mine) == ["completed", "completed", "failed", "failed"]
    refused = [r for r in mine if r["status"] == "failed"]
    assert all("2 executions in the last hour" in r["error"] for r in refused)
    assert [r["status"] for r in executions(owner_conn, theirs["id"])] == ["completed"] * 4  # others unaffected


def test_concurrent_batches_of_one_site_never_start_more_than_its_hourly_volume(api, tenant, aws, owner_conn, env):
    from dramac_dev.events import LocalContext, sqs_event, sqs_record
    from dramac_dev.functions_loader import get_handler

    limits(env, free={"maxExecutionsPerHour": 3}, standard={"maxExecutionsPerHour": 100})
    owner_conn.execute("INSERT INTO private.agency_plans (agency_id, plan) VALUES (%s, 'free')", (tenant.agency_id,))
    workflow = create_workflow(api, tenant, [{"type": "set_variable", "config": {"name": "last", "value": "x"}}])
    events = [emit(tenant.site_id, "crm.contact.created", {"id": str(n)}) for n in range(8)]
    aws.purge()  # delivered below, four batches of two at the same moment
    start = threading.Barrier(4)
    failed: list[dict] = []

    def deliver(batch) -> None:
        records = [sqs_record(json.dumps({"eventId": str(e)}), queue_arn=aws.queue_arn) for e in batch]
        start.wait()
        failed.extend(get_handler("event_processor")(sqs_event(records), LocalContext("event_processor"))[
            "batchItemFailures"])

    threads = [threading.Thread(target=deliver, args=(events[n:n + 2],)) for n in range(0, 8, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failed == []
    runs = executions(owner_conn, workflow["id"])
    assert sorted(r["status"] for r in runs) == ["completed"] * 3 + ["failed"] * 5
    counted = owner_conn.execute("SELECT sum(executions) AS n FROM private.site_execution_minutes WHERE site_id = %s",
                                 (tenant.site_id,)).fetchone()["n"]
    assert counted == 3  # the refused ones do not count towards the volume
