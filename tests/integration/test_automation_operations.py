"""Operating executions (issue 17): cancel a running or delayed execution, re-run a failed one from
the failed step or from the start (a new execution linked to the old), and the relay's cap on
resuming an execution that keeps stalling at the same step."""

from __future__ import annotations

import pytest
from support.automation import create_workflow, emit, executions, step_logs
from support.concurrency import fire

CONTACT = {"id": "6f1c1d7e-1111-4222-8333-444455556666", "email": "ada@example.test", "lead_score": 72}


@pytest.fixture
def api(function_client):
    return function_client("automation")


def base(tenant) -> str:
    return f"/api/sites/{tenant.site_id}/automation"


def three_steps(receiver_url: str) -> list[dict]:
    return [
        {"type": "set_variable", "config": {"name": "email", "value": "{{event.payload.email}}"}},
        {"type": "http_request", "config": {"url": f"{receiver_url}/hooks",
                                            "body": {"email": "{{steps.1.output.value}}"}, "maxAttempts": 1}},
        {"type": "set_variable", "config": {"name": "done", "value": True}},
    ]


def failed_execution(api, tenant, aws, receiver, owner_conn) -> tuple[dict, dict]:
    receiver.script = [404]
    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "failed"
    return workflow, execution


def variable(owner_conn, workflow_id, key):
    row = owner_conn.execute("SELECT value FROM workflow_variables WHERE workflow_id = %s AND key = %s",
                             (workflow_id, key)).fetchone()
    return row["value"] if row else None


def test_rerun_from_the_failed_step_keeps_the_earlier_outputs(api, tenant, aws, receiver, owner_conn):
    workflow, old = failed_execution(api, tenant, aws, receiver, owner_conn)
    reply = api.post(f"{base(tenant)}/executions/{old['id']}/rerun", user=tenant.admin, body={"from": "failed_step"})
    assert reply.status == 201, reply.body
    new = reply.data
    assert (new["rerunOf"], new["rerunFrom"], new["status"]) == (str(old["id"]), "failed_step", "pending")
    aws.drain()
    detail = api.get(f"{base(tenant)}/executions/{new['id']}", user=tenant.member).data
    assert detail["status"] == "completed"
    # step 1 ran in the old execution only; its output still feeds step 2's template
    assert [(s["position"], s["status"]) for s in detail["steps"]] == [(2, "completed"), (3, "completed")]
    assert [r.body for r in receiver.requests] == [{"email": "ada@example.test"}] * 2
    assert detail["eventId"] == api.get(f"{base(tenant)}/executions/{old['id']}", user=tenant.member).data["eventId"]
    assert api.get(f"{base(tenant)}/executions/{old['id']}", user=tenant.member).data["rerunId"] == new["id"]
    assert variable(owner_conn, workflow["id"], "done") is True


def test_rerun_from_the_start_runs_every_step_again(api, tenant, aws, receiver, owner_conn):
    workflow, old = failed_execution(api, tenant, aws, receiver, owner_conn)
    reply = api.post(f"{base(tenant)}/executions/{old['id']}/rerun", user=tenant.owner, body={"from": "start"})
    assert reply.status == 201, reply.body
    aws.drain()
    logs = step_logs(owner_conn, reply.data["id"])
    assert [(s["position"], s["status"]) for s in logs] == [(1, "completed"), (2, "completed"), (3, "completed")]
    # the old execution is left as it was: failed, with its own logs
    assert [s["status"] for s in step_logs(owner_conn, old["id"])] == ["completed", "failed", "skipped"]
    assert executions(owner_conn, workflow["id"])[0]["status"] == "failed"


def test_only_failed_or_cancelled_executions_are_rerun_and_only_once(api, tenant, aws, receiver, owner_conn):
    workflow, old = failed_execution(api, tenant, aws, receiver, owner_conn)
    first = api.post(f"{base(tenant)}/executions/{old['id']}/rerun", user=tenant.owner)
    again = api.post(f"{base(tenant)}/executions/{old['id']}/rerun", user=tenant.owner)
    assert first.status == 201 and first.data["rerunFrom"] == "failed_step"
    assert again.status == 409 and again.body["code"] == "execution_already_rerun"
    aws.drain()
    completed = api.post(f"{base(tenant)}/executions/{first.data['id']}/rerun", user=tenant.owner)
    assert completed.status == 409 and completed.body["code"] == "execution_not_rerunnable"
    bad = api.post(f"{base(tenant)}/executions/{old['id']}/rerun", user=tenant.owner, body={"from": "middle"})
    assert bad.status == 400
    assert len(executions(owner_conn, workflow["id"])) == 2


def test_two_reruns_at_the_same_moment_make_one_execution(api, tenant, aws, receiver, owner_conn):
    workflow, old = failed_execution(api, tenant, aws, receiver, owner_conn)
    replies = fire(2, lambda i: api.post(f"{base(tenant)}/executions/{old['id']}/rerun", user=tenant.owner))
    assert sorted(r.status for r in replies) == [201, 409]
    aws.drain()
    assert [e["status"] for e in executions(owner_conn, workflow["id"])] == ["failed", "completed"]


def test_members_and_other_agencies_cannot_cancel_or_rerun(api, tenant, other_tenant, aws, receiver, owner_conn):
    workflow, old = failed_execution(api, tenant, aws, receiver, owner_conn)
    for action in ("rerun", "cancel"):
        member = api.post(f"{base(tenant)}/executions/{old['id']}/{action}", user=tenant.member)
        stranger = api.post(f"{base(tenant)}/executions/{old['id']}/{action}", user=other_tenant.owner)
        own_site = api.post(f"{base(other_tenant)}/executions/{old['id']}/{action}", user=other_tenant.owner)
        assert member.status == 403, action
        assert stranger.status == 404 and own_site.status == 404, action
    assert len(executions(owner_conn, workflow["id"])) == 1


def delayed_workflow(api, tenant) -> dict:
    return create_workflow(api, tenant, [{"type": "delay", "config": {"seconds": 3600}},
                                         {"type": "set_variable", "config": {"name": "after", "value": 1}}])


def test_cancelling_a_delayed_execution_stops_it_for_good(api, tenant, aws, owner_conn):
    from dramac_common.automation.engine import handle_message

    workflow = delayed_workflow(api, tenant)
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "waiting"
    reply = api.post(f"{base(tenant)}/executions/{execution['id']}/cancel", user=tenant.admin)
    assert reply.status == 200, reply.body
    assert reply.data["status"] == "cancelled" and reply.data["cancelledBy"] == str(tenant.admin)
    assert [(s["position"], s["status"]) for s in reply.data["steps"]] == [(1, "skipped"), (2, "skipped")]
    # the delay's own message arrives later (made due here): nothing runs
    owner_conn.execute("UPDATE workflow_executions SET resume_at = now() WHERE id = %s", (execution["id"],))
    handle_message({"executionId": str(execution["id"])})
    assert executions(owner_conn, workflow["id"])[0]["status"] == "cancelled"
    assert variable(owner_conn, workflow["id"], "after") is None
    again = api.post(f"{base(tenant)}/executions/{execution['id']}/cancel", user=tenant.admin)
    assert again.status == 409 and again.body["code"] == "execution_finished"


def test_a_cancelled_execution_can_be_rerun(api, tenant, aws, owner_conn):
    workflow = delayed_workflow(api, tenant)
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    api.post(f"{base(tenant)}/executions/{execution['id']}/cancel", user=tenant.owner)
    reply = api.post(f"{base(tenant)}/executions/{execution['id']}/rerun", user=tenant.owner)
    assert reply.status == 201
    aws.drain()
    assert api.get(f"{base(tenant)}/executions/{reply.data['id']}", user=tenant.owner).data["status"] == "waiting"


def test_cancelling_a_running_execution_stops_its_worker_at_its_next_write(api, tenant, aws, receiver, owner_conn,
                                                                           monkeypatch):
    from dramac_common.automation.engine import Engine

    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    real_call = Engine._call
    cancelled = []

    def cancel_during_the_http_call(definition, runtime, rendered, raw):
        if definition.name == "http_request":
            cancelled.append(api.post(f"{base(tenant)}/executions/{runtime.execution_id}/cancel", user=tenant.owner))
        return real_call(definition, runtime, rendered, raw)

    monkeypatch.setattr(Engine, "_call", staticmethod(cancel_during_the_http_call))
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert [r.status for r in cancelled] == [200]
    assert execution["status"] == "cancelled"
    logs = step_logs(owner_conn, execution["id"])
    assert [s["status"] for s in logs] == ["completed", "skipped", "skipped"]
    assert "an external call may have been made" in logs[1]["error"]
    assert len(receiver.requests) == 1  # the call in flight went out; nothing after it ran
    assert variable(owner_conn, workflow["id"], "done") is None


def test_completed_or_unknown_executions_are_not_cancelled(api, tenant, aws, receiver, owner_conn):
    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    done = api.post(f"{base(tenant)}/executions/{execution['id']}/cancel", user=tenant.owner)
    unknown = api.post(f"{base(tenant)}/executions/00000000-0000-4000-8000-000000000000/cancel", user=tenant.owner)
    assert done.status == 409 and done.body["code"] == "execution_finished"
    assert unknown.status == 404 and unknown.body["code"] == "execution_not_found"


# The relay's cap -----------------------------------------------------------------------------------

def stalled_execution(api, tenant, aws, receiver, owner_conn, position: int = 2) -> dict:
    """An execution whose worker died at ``position`` (an HTTP call that kills the Lambda each time)."""
    workflow = create_workflow(api, tenant, three_steps(receiver.url))
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.purge()
    row = owner_conn.execute(
        "INSERT INTO workflow_executions (workflow_id, site_id, event_id, status, next_position, lease_owner, "
        "lease_expires_at) VALUES (%s, %s, %s, 'running', %s, gen_random_uuid(), now() - interval '1 hour') "
        "RETURNING id", (workflow["id"], tenant.site_id, event_id, position)).fetchone()
    owner_conn.execute(
        "INSERT INTO step_execution_logs (execution_id, step_id, site_id, position, step_type, status, error) "
        "SELECT %s, id, site_id, position, step_type, 'running', 'Lambda timed out' FROM workflow_steps "
        "WHERE workflow_id = %s AND position = %s", (row["id"], workflow["id"], position))
    return {"id": row["id"], "workflow_id": workflow["id"]}


def worker_dies_again(aws, owner_conn, execution_id) -> None:
    aws.purge()  # the resume message was taken by a worker that died at the same step
    owner_conn.execute("UPDATE workflow_executions SET status = 'running', lease_owner = gen_random_uuid(), "
                       "lease_expires_at = now() - interval '1 hour' WHERE id = %s", (execution_id,))


def relay_resumes(aws, execution_id) -> bool:
    """Run the relay and say whether it sent this execution a resume message (it sweeps the whole
    database: what an earlier test on the same worker left stalled is swept too, so counts tell nothing)."""
    from dramac_common.automation import relay

    relay.run_relay(grace_s=0)
    return any(str(execution_id) in m["Body"] for m in aws.pending_messages())


def test_the_relay_gives_up_on_an_execution_stalled_at_the_same_step(api, tenant, aws, receiver, owner_conn, env):

    env.set("AUTOMATION_MAX_RELAY_RESUMES", "2")
    stalled = stalled_execution(api, tenant, aws, receiver, owner_conn)
    for _ in range(2):
        assert relay_resumes(aws, stalled["id"])
        worker_dies_again(aws, owner_conn, stalled["id"])
    assert not relay_resumes(aws, stalled["id"])  # it gives up: the execution fails
    [execution] = executions(owner_conn, stalled["workflow_id"])
    assert execution["status"] == "failed"
    assert execution["error"] == ("stalled: the relay resumed it 2 times and it never got past step 2 (http_request): "
                                  "last error: Lambda timed out; gave up (AUTOMATION_MAX_RELAY_RESUMES)")
    assert [(s["position"], s["status"]) for s in step_logs(owner_conn, execution["id"])] == [
        (2, "failed"), (3, "skipped")]
    assert not relay_resumes(aws, stalled["id"])


def test_an_execution_that_moves_on_starts_a_new_count(api, tenant, aws, receiver, owner_conn, env):
    from dramac_common.automation import relay

    env.set("AUTOMATION_MAX_RELAY_RESUMES", "2")
    stalled = stalled_execution(api, tenant, aws, receiver, owner_conn, position=1)
    for _ in range(2):
        assert relay_resumes(aws, stalled["id"])
        worker_dies_again(aws, owner_conn, stalled["id"])
    owner_conn.execute("UPDATE workflow_executions SET next_position = 2 WHERE id = %s", (stalled["id"],))

    relay.run_relay(grace_s=0)
    aws.drain()
    assert executions(owner_conn, stalled["workflow_id"])[0]["status"] == "completed"


def test_cancels_at_the_same_moment_cancel_once(api, tenant, aws, owner_conn):
    workflow = delayed_workflow(api, tenant)
    emit(tenant.site_id, "crm.contact.created", CONTACT)
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    replies = fire(4, lambda i: api.post(f"{base(tenant)}/executions/{execution['id']}/cancel", user=tenant.owner))
    assert sorted(r.status for r in replies) == [200, 409, 409, 409]
    assert {r.body["code"] for r in replies if r.status == 409} == {"execution_finished"}
    audited = owner_conn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'execution.cancelled' "
                                 "AND target_id = %s", (str(execution["id"]),)).fetchone()["n"]
    assert audited == 1


def test_a_rerun_counts_towards_the_sites_hourly_volume(api, tenant, aws, receiver, owner_conn):
    def counted() -> int:
        return owner_conn.execute("SELECT coalesce(sum(executions), 0) AS n FROM private.site_execution_minutes "
                                  "WHERE site_id = %s", (tenant.site_id,)).fetchone()["n"]

    _, old = failed_execution(api, tenant, aws, receiver, owner_conn)
    assert counted() == 1
    reply = api.post(f"{base(tenant)}/executions/{old['id']}/rerun", user=tenant.owner, body={"from": "start"})
    assert reply.status == 201, reply.body
    assert counted() == 2
