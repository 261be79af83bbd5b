"""End to end over `dramac dev`: a workflow created over HTTP runs when an event is posted, through
the real events queue (moto), the event_processor poller, a delayed resume and a local receiver."""

import time

import pytest

from dramac_dev.receiver import Receiver


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _wait_for_execution(http, base, workflow_id, status, timeout=40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = http.get(f"{base}/executions", params={"workflowId": workflow_id}).json()["data"]
        if listed and listed[0]["status"] == status:
            return http.get(f"{base}/executions/{listed[0]['id']}").json()["data"]
        time.sleep(0.3)
    pytest.fail(f"no {status} execution of {workflow_id} within {timeout}s: {listed}")


def test_posted_event_runs_workflow_with_delay_http_call_and_variable(local_stack, tenant, receiver):
    base = f"/api/sites/{tenant.site_id}/automation"
    workflow = {
        "name": "Hot lead to CRM hook", "triggerEventType": "crm.contact.created", "filter": {"status": "active"},
        "steps": [
            {"type": "condition", "config": {"field": "event.payload.lead_score", "operator": "gte", "value": 50}},
            {"type": "delay", "config": {"seconds": 1}},
            {"type": "http_request", "config": {"url": f"{receiver.url}/leads",
                                                "body": {"email": "{{event.payload.email}}"}}},
            {"type": "set_variable", "config": {"name": "hook_status", "value": "{{steps.3.output.status}}"}},
        ],
    }
    with local_stack.client(tenant.owner) as http:
        created = http.post(f"{base}/workflows", json=workflow)
        assert created.status_code == 201, created.text
        posted = http.post(f"{base}/events", json={"eventType": "crm.contact.created",
                                                   "payload": {"email": "ada@example.test", "lead_score": 80,
                                                               "status": "active"}})
        assert posted.status_code == 202
        execution = _wait_for_execution(http, base, created.json()["data"]["id"], "completed")
    assert execution["eventId"] == posted.json()["data"]["eventId"]
    assert [(s["type"], s["status"]) for s in execution["steps"]] == [
        ("condition", "completed"), ("delay", "completed"), ("http_request", "completed"),
        ("set_variable", "completed")]
    assert execution["steps"][1]["durationMs"] >= 900
    assert execution["steps"][3]["output"] == {"name": "hook_status", "value": 200}
    assert [r.body for r in receiver.requests] == [{"email": "ada@example.test"}]


def test_incoming_webhook_over_http_starts_a_workflow(local_stack, tenant):
    base = f"/api/sites/{tenant.site_id}/automation"
    with local_stack.client(tenant.owner) as http:
        created = http.post(f"{base}/workflows", json={
            "name": "Orders", "triggerEventType": "automation.webhook.received",
            "steps": [{"type": "set_variable", "config": {"name": "order", "value": "{{event.payload.body.order}}"}}]})
        hook = http.post(f"{base}/webhooks", json={"name": "Shop"}).json()["data"]
        with local_stack.client() as anonymous:
            called = anonymous.post(hook["path"], json={"order": 7})
        assert called.status_code == 202
        execution = _wait_for_execution(http, base, created.json()["data"]["id"], "completed")
    assert execution["steps"][0]["output"] == {"name": "order", "value": 7}
