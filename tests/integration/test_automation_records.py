"""The create_record / update_record steps on the real module data SDK, over a module the product
provisioned: records land in the module table of the execution's own site, emit their own events,
and a workflow never writes another site's module data."""

from __future__ import annotations

import uuid

import pytest
from dramac_common.core import db
from dramac_common.core.naming import get_module_schema_name
from dramac_common.module_data import ModuleDatabaseSDK
from support.automation import create_workflow, executions, step_logs
from support.handlers import claims_for
from support.modules import make_crm


@pytest.fixture
def api(function_client):
    return function_client("automation")


@pytest.fixture
def crm(owner_conn, make_module, tenant, other_tenant):
    """A CRM-like module provisioned by the real provisioner and installed on both tenants' sites."""
    module_id, slug = make_crm(owner_conn, make_module, tenant, other_tenant)
    return slug, get_module_schema_name(module_id)


def create_contact(tenant, slug, values):
    """A contact created the way a site does it: the SDK as the site's owner (its event is dispatched)."""
    with db.user_unit(claims_for(tenant.owner)) as unit:
        return ModuleDatabaseSDK.for_request(unit, site_id=tenant.site_id, module=slug).create_one("contacts", values)


def rows(owner_conn, schema, table, site_id):
    return owner_conn.execute(f'SELECT * FROM "{schema}"."{table}" WHERE site_id = %s ORDER BY created_at',
                              (site_id,)).fetchall()


def events(owner_conn, site_id, event_type):
    return owner_conn.execute(
        "SELECT id, payload, source_entity_id, chain_depth FROM automation_events_log WHERE site_id = %s AND event_type = %s",
        (site_id, event_type)).fetchall()


def test_workflow_creates_and_updates_records_in_its_sites_module_tables(api, tenant, other_tenant, aws, crm,
                                                                         owner_conn):
    from dramac_common.automation.engine import handle_message

    slug, schema = crm
    workflow = create_workflow(api, tenant, trigger=f"{slug}.contact.created", steps=[
        {"type": "create_record", "config": {"module": slug, "table": "companies",
                                             "values": {"name": "{{event.payload.email}} Inc"}}},
        {"type": "update_record", "config": {"module": slug, "table": "contacts", "id": "{{event.payload.id}}",
                                             "values": {"company_id": "{{steps.1.output.id}}", "lead_score": 99,
                                                        "status": "customer"}}},
    ])
    create_contact(tenant, slug, {"email": "ada@example.com", "lead_score": 60})
    aws.drain()
    [created_event] = events(owner_conn, tenant.site_id, f"{slug}.contact.created")
    handle_message({"eventId": str(created_event["id"])})  # redelivered: nothing is written twice

    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    logs = step_logs(owner_conn, execution["id"])
    assert [(s["step_type"], s["status"]) for s in logs] == [("create_record", "completed"),
                                                             ("update_record", "completed")]
    [company] = rows(owner_conn, schema, "companies", tenant.site_id)
    [stored] = rows(owner_conn, schema, "contacts", tenant.site_id)
    assert company["name"] == "ada@example.com Inc"
    assert (stored["company_id"], stored["lead_score"], stored["status"]) == (company["id"], 99, "customer")
    assert logs[0]["output"]["id"] == str(company["id"]) and logs[1]["output"]["lead_score"] == 99
    # the step's writes emit their own events, one link further down the chain
    [company_event] = events(owner_conn, tenant.site_id, f"{slug}.company.created")
    [update_event] = events(owner_conn, tenant.site_id, f"{slug}.contact.updated")
    assert (company_event["source_entity_id"], company_event["chain_depth"]) == (str(company["id"]), 1)
    assert update_event["payload"]["previous"]["lead_score"] == 60 and update_event["chain_depth"] == 1
    assert created_event["chain_depth"] == 0
    assert rows(owner_conn, schema, "companies", other_tenant.site_id) == []


def test_a_workflow_never_writes_another_sites_module_data(api, tenant, other_tenant, aws, crm, owner_conn):
    slug, schema = crm
    theirs = create_contact(other_tenant, slug, {"email": "theirs@example.com", "lead_score": 5})
    # a record step naming another site's site_id is refused, never moved to the execution's site
    planted = create_workflow(api, tenant, trigger=f"{slug}.contact.created", steps=[
        {"type": "create_record", "config": {"module": slug, "table": "companies",
                                             "values": {"name": "Planted", "site_id": str(other_tenant.site_id)}}}])
    hijack = create_workflow(api, tenant, trigger=f"{slug}.contact.created", steps=[
        {"type": "update_record", "config": {"module": slug, "table": "contacts", "id": str(theirs["id"]),
                                             "values": {"lead_score": 0, "email": "hijacked@example.com"}}},
    ])
    create_contact(tenant, slug, {"email": "ours@example.com"})
    aws.drain()

    [refused] = executions(owner_conn, planted["id"])
    assert refused["status"] == "failed" and "site_id: must be this site's id" in refused["error"]
    [execution] = executions(owner_conn, hijack["id"])
    assert execution["status"] == "failed"
    assert f"no {slug}.contacts record with id {theirs['id']} on this site" in execution["error"]
    [untouched] = rows(owner_conn, schema, "contacts", other_tenant.site_id)
    assert (untouched["email"], untouched["lead_score"]) == ("theirs@example.com", 5)
    assert rows(owner_conn, schema, "companies", other_tenant.site_id) == []
    assert rows(owner_conn, schema, "companies", tenant.site_id) == []
    assert events(owner_conn, other_tenant.site_id, f"{slug}.contact.updated") == []


def test_record_steps_must_name_an_installed_module_and_one_of_its_tables_when_saved(api, tenant, crm, owner_conn,
                                                                                     make_module):
    slug, _ = crm
    absent = owner_conn.execute("SELECT slug FROM modules_v2 WHERE id = %s",
                                (make_module(module_id=uuid.uuid4(), module_type="app"),)).fetchone()["slug"]
    cases = {
        "steps.0.config.module": {"module": absent, "table": "notes", "values": {"body": "x"}},
        "steps.0.config.table": {"module": slug, "table": "invoices", "values": {}},
    }
    for field, config in cases.items():
        reply = api.post(f"/api/sites/{tenant.site_id}/automation/workflows", user=tenant.owner, body={
            "name": "W", "triggerEventType": f"{slug}.contact.created",
            "steps": [{"type": "create_record", "config": config}]})
        assert (reply.status, reply.body["code"]) == (400, "validation_error"), reply.body
        assert [d["field"] for d in reply.body["details"]] == [field]
    assert "'invoices' is not a table of module" in reply.body["details"][0]["message"]
    assert owner_conn.execute("SELECT count(*) AS n FROM automation_workflows WHERE site_id = %s",
                              (tenant.site_id,)).fetchone()["n"] == 0


def test_a_record_step_writes_the_module_it_was_saved_with_whatever_the_event_says(api, tenant, aws, crm,
                                                                                   owner_conn, make_module):
    """A step stored before save-time checks existed with its module as a template (as through the
    database) does not follow the event: the module's name is taken as written, and no module has it."""
    slug, schema = crm
    workflow = create_workflow(api, tenant, trigger=f"{slug}.contact.created", steps=[
        {"type": "create_record", "config": {"module": slug, "table": "companies", "values": {"name": "x"}}}])
    owner_conn.execute("UPDATE workflow_steps SET config = jsonb_set(config, '{module}', '\"{{event.payload.m}}\"') "
                       "WHERE workflow_id = %s", (workflow["id"],))
    create_contact(tenant, slug, {"email": "ada@example.com"})
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "failed"
    assert "module {{event.payload.m}}: This module is not installed on the site" in execution["error"]
    assert rows(owner_conn, schema, "companies", tenant.site_id) == []


def test_record_steps_fail_readably_when_the_module_is_disabled_after_saving(api, tenant, aws, crm, owner_conn):
    slug, _ = crm
    workflow = create_workflow(api, tenant, trigger="form.submitted", steps=[
        {"type": "create_record", "config": {"module": slug, "table": "companies", "values": {"name": "x"}}}])
    owner_conn.execute("UPDATE site_module_installations SET status = 'disabled', is_enabled = false "
                       "WHERE site_id = %s", (tenant.site_id,))
    posted = api.post(f"/api/sites/{tenant.site_id}/automation/events", user=tenant.owner,
                      body={"eventType": "form.submitted", "payload": {}})
    assert posted.status == 202
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "failed"
    assert f"module {slug}: This module is disabled on the site" in execution["error"]


def test_record_steps_refuse_unknown_columns_as_the_steps_error(api, tenant, aws, crm, owner_conn):
    slug, schema = crm
    workflow = create_workflow(api, tenant, trigger=f"{slug}.contact.created", steps=[
        {"type": "create_record", "config": {"module": slug, "table": "companies",
                                             "values": {"name": "Co", "revenue": 10}}}])
    create_contact(tenant, slug, {"email": "ada@example.com"})
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    [log] = step_logs(owner_conn, execution["id"])
    assert execution["status"] == "failed" and log["status"] == "failed"
    assert log["error"].startswith(f"cannot create {slug}.companies record: ") and "revenue" in log["error"]
    assert rows(owner_conn, schema, "companies", tenant.site_id) == []
