"""Agency-level events (marketplace subscriptions) run the matching workflows of every site of that
agency, each execution on its own site, and never another agency's workflows."""

from __future__ import annotations

import dataclasses

import pytest
from support.automation import create_workflow, executions, listen

from dramac_dev import seed


@pytest.fixture
def automation(function_client):
    return function_client("automation")


@pytest.fixture
def subscribe(function_client):
    return function_client("subscribe")


def _note_step() -> list[dict]:
    return [{"type": "set_variable", "config": {"name": "module", "value": "{{event.payload.module_slug}}"}}]


def test_subscription_activation_runs_workflows_on_each_site_of_the_agency(
        automation, subscribe, tenant, other_tenant, make_module, owner_conn, aws):
    second_site = seed.create_site(owner_conn, tenant.agency_id, client_id=tenant.client_id)
    first = create_workflow(automation, tenant, _note_step(), trigger="marketplace.subscription.activated")
    second_tenant_view = dataclasses.replace(tenant, site_id=second_site)
    second = create_workflow(automation, second_tenant_view, _note_step(), trigger="marketplace.subscription.activated")
    foreign = create_workflow(automation, other_tenant, _note_step(), trigger="marketplace.subscription.activated")
    module = make_module(slug=f"crm{tenant.agency_id.hex[:8]}")

    reply = subscribe.post("/api/modules/subscribe", user=tenant.owner,
                           body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    assert reply.status == 201
    aws.drain()

    ran = {wf["id"]: executions(owner_conn, wf["id"]) for wf in (first, second, foreign)}
    assert [e["status"] for e in ran[first["id"]]] == ["completed"]
    assert [e["status"] for e in ran[second["id"]]] == ["completed"]
    assert ran[foreign["id"]] == []
    sites = {r["site_id"] for r in owner_conn.execute(
        "SELECT site_id FROM workflow_executions WHERE workflow_id = ANY(%s)", ([first["id"], second["id"]],))}
    assert sites == {tenant.site_id, second_site}
    values = owner_conn.execute("SELECT value FROM workflow_variables WHERE workflow_id = %s",
                                (first["id"],)).fetchone()
    assert values["value"] == f"crm{tenant.agency_id.hex[:8]}"


def test_subscription_events_reach_the_queue_in_one_send_and_are_marked_when_the_processor_reads_them(
        subscribe, tenant, make_module, owner_conn, aws, monkeypatch):
    from dramac_common.core import queues

    sends = []
    real_send = queues.send_messages
    monkeypatch.setattr(queues, "send_messages", lambda logical, bodies: sends.append(bodies) or real_send(logical, bodies))
    listen(owner_conn, tenant.site_id, "marketplace.subscription.created", "marketplace.subscription.activated")
    module = make_module(slug=f"crm{tenant.agency_id.hex[:8]}")

    reply = subscribe.post("/api/modules/subscribe", user=tenant.owner,
                           body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})

    assert reply.status == 201
    events = owner_conn.execute(
        "SELECT id, event_type, dispatched_at FROM automation_events_log WHERE agency_id = %s ORDER BY event_type",
        (tenant.agency_id,)).fetchall()
    assert [e["event_type"] for e in events] == ["marketplace.subscription.activated", "marketplace.subscription.created"]
    assert all(e["dispatched_at"] is None for e in events)  # the request sends, nothing more
    [sent] = sends  # both events in one batched send
    assert sorted(m["eventId"] for m in sent) == sorted(str(e["id"]) for e in events)
    aws.drain()
    received = owner_conn.execute("SELECT dispatched_at FROM automation_events_log WHERE id = ANY(%s)",
                                  ([e["id"] for e in events],)).fetchall()
    assert len(received) == 2 and all(e["dispatched_at"] is not None for e in received)  # the processor's receipt
