"""Events no workflow listens to when they are written are marked received at insert and never sent
(migration 0180): the match is the processor's (an active subscription of an active workflow on the
event's site, or on any site of the agency for an agency-level event)."""

from __future__ import annotations

import pytest
from support.automation import emit, executions, listen

from dramac_dev import seed

CONTACT = {"id": "6f1c1d7e-1111-4222-8333-444455556666", "email": "ada@example.test"}


@pytest.fixture
def sends(monkeypatch):
    from dramac_common.core import queues

    sent: list[dict] = []
    real_send = queues.send_messages
    monkeypatch.setattr(queues, "send_messages",
                        lambda logical, bodies: sent.extend(bodies) or real_send(logical, bodies))
    return sent


def _dispatched_at(owner_conn, event_id):
    return owner_conn.execute("SELECT dispatched_at FROM automation_events_log WHERE id = %s",
                              (event_id,)).fetchone()["dispatched_at"]


def test_an_event_no_workflow_listens_to_is_written_marked_and_not_sent(tenant, aws, owner_conn, sends):
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    assert _dispatched_at(owner_conn, event_id) is not None
    assert {"eventId": str(event_id)} not in sends
    assert aws.take("events") == []


def test_an_event_a_workflow_on_its_site_listens_to_is_sent_run_once_and_marked_by_the_processor(
        tenant, aws, owner_conn, sends):
    workflow = listen(owner_conn, tenant.site_id, "crm.contact.created")
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    assert _dispatched_at(owner_conn, event_id) is None
    assert sends == [{"eventId": str(event_id)}]
    aws.drain()
    assert [e["status"] for e in executions(owner_conn, workflow)] == ["completed"]
    assert _dispatched_at(owner_conn, event_id) is not None


def test_a_listener_of_another_type_or_site_does_not_count(tenant, other_tenant, aws, owner_conn, sends):
    listen(owner_conn, tenant.site_id, "crm.contact.updated")
    listen(owner_conn, other_tenant.site_id, "crm.contact.created")
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    assert _dispatched_at(owner_conn, event_id) is not None
    assert sends == []


@pytest.mark.parametrize("inactive", ["workflow", "subscription"])
def test_an_inactive_workflow_or_subscription_does_not_count(tenant, aws, owner_conn, sends, inactive):
    workflow = listen(owner_conn, tenant.site_id, "crm.contact.created", active=inactive != "workflow",
                      subscribed=inactive != "subscription")
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    assert _dispatched_at(owner_conn, event_id) is not None
    assert sends == []
    aws.drain()
    assert executions(owner_conn, workflow) == []


def test_an_agency_event_is_sent_when_a_workflow_on_one_of_the_agency_sites_listens(
        function_client, tenant, other_tenant, make_module, owner_conn, aws, sends):
    second_site = seed.create_site(owner_conn, tenant.agency_id, client_id=tenant.client_id)
    listen(owner_conn, other_tenant.site_id, "marketplace.subscription.created")  # another agency's: no count
    workflow = listen(owner_conn, second_site, "marketplace.subscription.created")
    subscribe = function_client("subscribe")
    reply = subscribe.post("/api/modules/subscribe", user=tenant.owner,
                           body={"agencyId": str(tenant.agency_id), "moduleId": str(make_module())})
    assert reply.status == 201
    events = {r["event_type"]: r for r in owner_conn.execute(
        "SELECT id, event_type, dispatched_at FROM automation_events_log WHERE agency_id = %s", (tenant.agency_id,))}
    created, activated = events["marketplace.subscription.created"], events["marketplace.subscription.activated"]
    assert created["dispatched_at"] is None and activated["dispatched_at"] is not None
    assert sends == [{"eventId": str(created["id"])}]
    aws.drain()
    assert [e["status"] for e in executions(owner_conn, workflow)] == ["completed"]
    assert _dispatched_at(owner_conn, created["id"]) is not None


def test_an_agency_event_of_an_agency_without_listeners_is_not_sent(function_client, tenant, other_tenant,
                                                                     make_module, owner_conn, aws, sends):
    listen(owner_conn, other_tenant.site_id, "marketplace.subscription.created", "marketplace.subscription.activated")
    reply = function_client("subscribe").post("/api/modules/subscribe", user=tenant.owner, body={
        "agencyId": str(tenant.agency_id), "moduleId": str(make_module())})
    assert reply.status == 201
    marks = owner_conn.execute("SELECT dispatched_at FROM automation_events_log WHERE agency_id = %s",
                               (tenant.agency_id,)).fetchall()
    assert len(marks) == 2 and all(m["dispatched_at"] is not None for m in marks)
    assert sends == []


def test_a_subscription_committed_after_the_event_does_not_see_it(tenant, aws, owner_conn, sends):
    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    workflow = listen(owner_conn, tenant.site_id, "crm.contact.created")
    aws.drain()
    assert sends == [] and executions(owner_conn, workflow) == []
    assert _dispatched_at(owner_conn, event_id) is not None


def test_the_relay_never_sends_a_marked_event(tenant, aws, owner_conn, sends):
    from dramac_common.automation import relay

    event_id = emit(tenant.site_id, "crm.contact.created", CONTACT)
    relay.run_relay(grace_s=0)
    assert {"eventId": str(event_id)} not in sends


def test_the_marking_trigger_leaves_an_event_written_as_received_alone(tenant, owner_conn):
    listen(owner_conn, tenant.site_id, "crm.contact.created")
    row = owner_conn.execute(
        "INSERT INTO automation_events_log (site_id, event_type, payload, dispatched_at) "
        "VALUES (%s, 'crm.contact.created', '{}', '2020-01-01') RETURNING dispatched_at", (tenant.site_id,)).fetchone()
    assert row["dispatched_at"].year == 2020
