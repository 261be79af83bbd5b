"""The automation routes of contract section 6 through the real automation handler."""

from __future__ import annotations

import uuid

import pytest
from support.automation import create_workflow, emit, listen

STEPS = [
    {"type": "condition", "config": {"field": "event.payload.lead_score", "operator": "gte", "value": 50}},
    {"type": "http_request", "config": {"method": "POST", "url": "https://hooks.example.com/{{event.payload.id}}",
                                        "body": {"score": "{{event.payload.lead_score}}"}}},
    {"type": "set_variable", "config": {"name": "last_status", "value": "{{steps.2.output.status}}"}},
]


@pytest.fixture
def api(function_client):
    return function_client("automation")


def base(tenant) -> str:
    return f"/api/sites/{tenant.site_id}/automation"


def test_owner_creates_workflow_with_steps_and_trigger(api, tenant):
    reply = api.post(f"{base(tenant)}/workflows", user=tenant.owner, body={
        "name": "Hot leads", "triggerEventType": "crm.contact.created", "filter": {"status": "active"},
        "steps": STEPS})
    assert reply.status == 201
    workflow = reply.data
    assert workflow["name"] == "Hot leads" and workflow["isActive"] is True
    assert [(s["position"], s["type"]) for s in workflow["steps"]] == [
        (1, "condition"), (2, "http_request"), (3, "set_variable")]
    assert workflow["subscription"]["eventType"] == "crm.contact.created"
    assert workflow["subscription"]["filter"] == {"status": "active"}
    assert api.get(f"{base(tenant)}/workflows/{workflow['id']}", user=tenant.member).data == workflow
    assert [w["id"] for w in api.get(f"{base(tenant)}/workflows", user=tenant.member).data] == [workflow["id"]]


@pytest.mark.parametrize("steps, field, message", [
    ([{"type": "teleport", "config": {}}], "steps.0.type", "unknown step type 'teleport'"),
    ([{"type": "delay", "config": {"seconds": 0}}], "steps.0.config.seconds", "greater than or equal to 1"),
    ([{"type": "http_request", "config": {"url": "ftp://x.test/"}}], "steps.0.config.url", "http or https"),
    ([{"type": "http_request", "config": {"url": "https://x.test/{{secrets.key}}"}}], "steps.0.config.url",
     "unknown template root 'secrets'"),
    ([{"type": "set_variable", "config": {"name": "a", "value": "{{steps.2.output.x}}"}},
      {"type": "set_variable", "config": {"name": "b", "value": 1}}], "steps.0.config.value",
     "does not run before step 1"),
    ([{"type": "condition", "config": {"field": "event.payload.x", "operator": "between", "value": 1}}],
     "steps.0.config.operator", "Input should be"),
    ([{"type": "condition", "config": {"field": "event.payload.x", "operator": "in", "value": 1}}],
     "steps.0.config.value", "takes a list"),
    ([{"type": "send_email", "config": {"to": "not-an-address", "subject": "s", "body": "b"}}],
     "steps.0.config.to", "not an e-mail address"),
    ([{"type": "create_record", "config": {"module": "crm", "table": "Contacts; DROP", "values": {}}}],
     "steps.0.config.table", "lower-case identifier"),
    ([{"type": "update_record", "config": {"module": "crm", "table": "contacts", "values": {}}}],
     "steps.0.config.id", "Field required"),
    ([{"type": "http_request", "config": {"url": "https://x.test/{{event.payload.id"}}], "steps.0.config.url",
     "unbalanced"),
    # which module a record step writes is fixed when saved: never picked by the event
    ([{"type": "create_record", "config": {"module": "{{event.payload.m}}", "table": "contacts", "values": {}}}],
     "steps.0.config.module", "module cannot be a template"),
    ([{"type": "update_record", "config": {"module": "crm", "table": "{{event.payload.t}}", "id": "x", "values": {}}}],
     "steps.0.config.table", "lower-case identifier"),
    ([{"type": "create_record", "config": {"module": "not-installed-here", "table": "contacts", "values": {}}}],
     "steps.0.config.module", "module 'not-installed-here' is not installed on this site"),
])
def test_invalid_steps_are_400_with_details(api, tenant, steps, field, message, owner_conn):
    reply = api.post(f"{base(tenant)}/workflows", user=tenant.owner,
                     body={"name": "Bad", "triggerEventType": "crm.contact.created", "steps": steps})
    assert reply.status == 400
    assert reply.body["code"] == "validation_error"
    assert any(d["field"] == field and message in d["message"] for d in reply.body["details"]), reply.body
    assert owner_conn.execute("SELECT count(*) AS n FROM automation_workflows WHERE site_id = %s",
                              (tenant.site_id,)).fetchone()["n"] == 0


def test_unknown_or_malformed_trigger_is_refused(api, tenant):
    unknown = api.post(f"{base(tenant)}/workflows", user=tenant.owner,
                       body={"name": "W", "triggerEventType": "crm.spaceship.launched", "steps": STEPS})
    malformed = api.post(f"{base(tenant)}/workflows", user=tenant.owner,
                         body={"name": "W", "triggerEventType": "Contact Created", "steps": STEPS})
    assert (unknown.status, unknown.body["code"]) == (400, "unknown_event_type")
    assert (malformed.status, malformed.body["code"]) == (400, "invalid_event_type")


def test_bad_filter_and_missing_steps_are_400(api, tenant):
    bad_filter = api.post(f"{base(tenant)}/workflows", user=tenant.owner, body={
        "name": "W", "triggerEventType": "crm.contact.created", "filter": {"score": {"gte": 1, "around": 2}},
        "steps": STEPS})
    no_steps = api.post(f"{base(tenant)}/workflows", user=tenant.owner,
                        body={"name": "W", "triggerEventType": "crm.contact.created", "steps": []})
    assert bad_filter.status == 400 and "unknown operator 'around'" in bad_filter.body["error"]
    assert no_steps.status == 400 and no_steps.body["code"] == "validation_error"


def test_module_events_are_known_once_the_module_is_installed(api, tenant, make_module, owner_conn):
    from dramac_dev.seed import CRM_MANIFEST

    module = make_module(slug="sales-crm", manifest=CRM_MANIFEST)
    body = {"name": "W", "triggerEventType": "sales_crm.company.updated", "steps": STEPS[:1]}
    before = api.post(f"{base(tenant)}/workflows", user=tenant.owner, body=body)
    owner_conn.execute("INSERT INTO site_module_installations (site_id, module_id, agency_id, status) "
                       "VALUES (%s, %s, %s, 'active')", (tenant.site_id, module, tenant.agency_id))
    after = api.post(f"{base(tenant)}/workflows", user=tenant.owner, body=body)
    types = {e["eventType"] for e in api.get(f"{base(tenant)}/event-types", user=tenant.member).data}
    assert before.status == 400 and before.body["code"] == "unknown_event_type"
    assert after.status == 201
    assert {"sales_crm.contact.created", "sales_crm.company.deleted", "crm.deal.created", "form.submitted"} <= types


def test_member_cannot_create_and_another_agency_sees_nothing(api, tenant, other_tenant):
    body = {"name": "W", "triggerEventType": "crm.contact.created", "steps": STEPS}
    member = api.post(f"{base(tenant)}/workflows", user=tenant.member, body=body)
    stranger = api.post(f"{base(tenant)}/workflows", user=other_tenant.owner, body=body)
    workflow = create_workflow(api, tenant, STEPS)
    peek = api.get(f"/api/sites/{other_tenant.site_id}/automation/workflows/{workflow['id']}",
                   user=other_tenant.owner)
    assert (member.status, member.body["code"]) == (403, "forbidden")
    assert (stranger.status, stranger.body["code"]) == (404, "site_not_found")
    assert api.get(f"{base(tenant)}/workflows/{workflow['id']}", user=other_tenant.owner).status == 404
    assert peek.status == 404


def test_update_replaces_steps_and_deactivates(api, tenant, aws, owner_conn):
    workflow = create_workflow(api, tenant, STEPS)
    reply = api.patch(f"{base(tenant)}/workflows/{workflow['id']}", user=tenant.admin, body={
        "name": "Renamed", "isActive": False, "filter": {"lead_score": {"gt": 10}},
        "steps": [{"type": "set_variable", "config": {"name": "x", "value": 1}}]})
    assert reply.status == 200
    assert reply.data["name"] == "Renamed" and reply.data["isActive"] is False
    assert reply.data["subscription"]["isActive"] is False
    assert reply.data["subscription"]["filter"] == {"lead_score": {"gt": 10}}
    assert [s["type"] for s in reply.data["steps"]] == ["set_variable"]
    emit(tenant.site_id, "crm.contact.created", {"lead_score": 90})
    aws.drain()
    assert owner_conn.execute("SELECT count(*) AS n FROM workflow_executions WHERE workflow_id = %s",
                              (workflow["id"],)).fetchone()["n"] == 0


def test_delete_workflow_then_404(api, tenant):
    workflow = create_workflow(api, tenant, STEPS)
    member = api.delete(f"{base(tenant)}/workflows/{workflow['id']}", user=tenant.member)
    deleted = api.delete(f"{base(tenant)}/workflows/{workflow['id']}", user=tenant.owner)
    again = api.get(f"{base(tenant)}/workflows/{workflow['id']}", user=tenant.owner)
    assert member.status == 403
    assert deleted.status == 200 and deleted.data == {"id": workflow["id"], "deleted": True}
    assert again.status == 404 and again.body["code"] == "workflow_not_found"


def test_post_event_is_202_and_executions_are_readable_with_step_logs(api, tenant, aws):
    workflow = create_workflow(api, tenant, [
        {"type": "condition", "config": {"field": "event.payload.lead_score", "operator": "gte", "value": 50}},
        {"type": "set_variable", "config": {"name": "email", "value": "{{event.payload.email}}"}}])
    reply = api.post(f"{base(tenant)}/events", user=tenant.owner,
                     body={"eventType": "crm.contact.created", "payload": {"email": "a@b.test", "lead_score": 60}})
    assert reply.status == 202 and reply.data["eventType"] == "crm.contact.created"
    aws.drain()
    listed = api.get(f"{base(tenant)}/executions", user=tenant.member, query={"workflowId": workflow["id"]})
    [summary] = listed.data
    assert summary["status"] == "completed" and summary["eventId"] == reply.data["eventId"]
    detail = api.get(f"{base(tenant)}/executions/{summary['id']}", user=tenant.member).data
    assert [(s["position"], s["type"], s["status"]) for s in detail["steps"]] == [
        (1, "condition", "completed"), (2, "set_variable", "completed")]
    assert detail["steps"][1]["output"] == {"name": "email", "value": "a@b.test"}
    assert detail["event"]["payload"]["lead_score"] == 60


def test_post_event_validation_and_roles(api, tenant, owner_conn):
    unknown = api.post(f"{base(tenant)}/events", user=tenant.owner, body={"eventType": "crm.ufo.seen", "payload": {}})
    wrong_kind = api.post(f"{base(tenant)}/events", user=tenant.owner,
                          body={"eventType": "crm.contact.created", "payload": {"lead_score": "high"}})
    member = api.post(f"{base(tenant)}/events", user=tenant.member,
                      body={"eventType": "crm.contact.created", "payload": {}})
    assert (unknown.status, unknown.body["code"]) == (400, "unknown_event_type")
    assert (wrong_kind.status, wrong_kind.body["code"]) == (400, "invalid_payload")
    assert wrong_kind.body["details"][0]["field"] == "lead_score"
    assert member.status == 403
    assert owner_conn.execute("SELECT count(*) AS n FROM automation_events_log WHERE site_id = %s",
                              (tenant.site_id,)).fetchone()["n"] == 0


def site_key(function_client, tenant) -> dict:
    reply = function_client("module_api").post(f"/api/sites/{tenant.site_id}/api-keys", user=tenant.owner,
                                               body={"name": "integration"})
    assert reply.status == 201, reply.body
    return reply.data


def test_a_sites_api_key_emits_events_on_its_own_site_only(api, function_client, tenant, other_tenant, owner_conn,
                                                          make_module, aws):
    from dramac_dev.seed import CRM_MANIFEST

    module = make_module(module_id=uuid.uuid4(), slug=f"shop-{uuid.uuid4().hex[:6]}", manifest=CRM_MANIFEST)
    owner_conn.execute("INSERT INTO site_module_installations (site_id, module_id, agency_id, status) "
                       "VALUES (%s, %s, %s, 'active')", (tenant.site_id, module, tenant.agency_id))
    slug = owner_conn.execute("SELECT slug FROM modules_v2 WHERE id = %s", (module,)).fetchone()["slug"]
    key = site_key(function_client, tenant)["key"]
    headers = {"X-Api-Key": key}
    listen(owner_conn, tenant.site_id, f"{slug.replace('-', '_')}.contact.created")
    declared = api.post(f"{base(tenant)}/events", headers=headers,
                        body={"eventType": f"{slug.replace('-', '_')}.contact.created", "payload": {"email": "x@y.z"}})
    updated = api.post(f"{base(tenant)}/events", headers=headers,
                       body={"eventType": f"{slug.replace('-', '_')}.contact.updated", "payload": {}})
    elsewhere = api.post(f"{base(other_tenant)}/events", headers=headers,
                         body={"eventType": f"{slug.replace('-', '_')}.contact.created", "payload": {}})
    assert declared.status == 202, declared.body
    assert updated.status == 202, updated.body
    assert (elsewhere.status, elsewhere.body["code"]) == (404, "site_not_found")
    rows = owner_conn.execute("SELECT site_id, event_type, source_module FROM automation_events_log "
                              "WHERE id = ANY(%s)", ([uuid.UUID(declared.data["eventId"]),
                                                     uuid.UUID(updated.data["eventId"])],)).fetchall()
    assert {(r["site_id"], r["source_module"]) for r in rows} == {(tenant.site_id, "api")}
    # the one a workflow listens to is handed to the events queue after commit; the other was marked at insert
    assert [m["eventId"] for m in aws.take("events")] == [declared.data["eventId"]]


def scoped_key(function_client, tenant, modules) -> str:
    reply = function_client("module_api").post(f"/api/sites/{tenant.site_id}/api-keys", user=tenant.owner,
                                               body={"name": "scoped", "modules": modules})
    assert reply.status == 201, reply.body
    return reply.data["key"]


@pytest.fixture
def two_installed(owner_conn, make_module, tenant):
    """Two modules declaring events (the demo CRM manifest), installed on the tenant's site: their slugs."""
    from dramac_dev.seed import CRM_MANIFEST

    slugs = []
    for name in ("mine", "theirs"):
        module = make_module(module_id=uuid.uuid4(), slug=f"{name}-{uuid.uuid4().hex[:6]}", manifest=CRM_MANIFEST)
        owner_conn.execute("INSERT INTO site_module_installations (site_id, module_id, agency_id, status) "
                           "VALUES (%s, %s, %s, 'active')", (tenant.site_id, module, tenant.agency_id))
        slugs.append(owner_conn.execute("SELECT slug FROM modules_v2 WHERE id = %s", (module,)).fetchone()["slug"])
    return slugs


@pytest.mark.parametrize("event, expected", [
    ("{mine}.contact.created", (202, None)),
    ("{theirs}.contact.created", (403, "api_key_scope")),   # another installed module's event
    ("crm.contact.created", (403, "api_key_scope")),        # documented, but not a module of the key
    ("form.submitted", (403, "api_key_scope")),
    ("marketplace.module.installed", (400, "platform_event")),
    ("marketplace.subscription.activated", (400, "platform_event")),
    ("automation.webhook.received", (400, "platform_event")),
])
def test_a_key_limited_to_a_module_emits_only_that_modules_events(api, function_client, tenant, two_installed,
                                                                  owner_conn, aws, event, expected):
    mine, theirs = two_installed
    key = scoped_key(function_client, tenant, [mine])
    event_type = event.format(mine=mine.replace("-", "_"), theirs=theirs.replace("-", "_"))
    reply = api.post(f"{base(tenant)}/events", headers={"X-Api-Key": key},
                     body={"eventType": event_type, "payload": {}})
    assert (reply.status, reply.body.get("code")) == expected, reply.body
    stored = owner_conn.execute("SELECT count(*) AS n FROM automation_events_log WHERE site_id = %s",
                                (tenant.site_id,)).fetchone()["n"]
    assert stored == (1 if expected[0] == 202 else 0)


def test_a_key_for_every_module_emits_the_installed_modules_events_and_nothing_else(api, function_client, tenant,
                                                                                     two_installed, aws):
    key = scoped_key(function_client, tenant, None)
    statuses = {event: api.post(f"{base(tenant)}/events", headers={"X-Api-Key": key},
                                body={"eventType": event, "payload": {}}).status
                for event in (f"{two_installed[0].replace('-', '_')}.contact.created",
                              f"{two_installed[1].replace('-', '_')}.company.created", "form.submitted",
                              "crm.deal.created")}
    assert list(statuses.values()) == [202, 202, 403, 403]


def test_a_manager_posts_no_platform_event_and_no_webhook_emits_one(api, tenant):
    posted = api.post(f"{base(tenant)}/events", user=tenant.owner,
                      body={"eventType": "marketplace.subscription.activated", "payload": {}})
    webhook = api.post(f"{base(tenant)}/webhooks", user=tenant.owner,
                       body={"name": "fake", "eventType": "marketplace.module.installed"})
    assert (posted.status, posted.body["code"]) == (400, "platform_event")
    assert (webhook.status, webhook.body["code"]) == (400, "platform_event")


def test_a_revoked_or_malformed_api_key_cannot_emit_events(api, function_client, tenant, owner_conn):
    created = site_key(function_client, tenant)
    revoked = function_client("module_api").delete(f"/api/sites/{tenant.site_id}/api-keys/{created['id']}",
                                                   user=tenant.owner)
    assert revoked.status == 200
    body = {"eventType": "crm.contact.created", "payload": {}}
    with_revoked = api.post(f"{base(tenant)}/events", headers={"X-Api-Key": created["key"]}, body=body)
    with_garbage = api.post(f"{base(tenant)}/events", headers={"X-Api-Key": "dk_live_nope"}, body=body)
    anonymous = api.post(f"{base(tenant)}/events", body=body)
    assert [(r.status, r.body["code"]) for r in (with_revoked, with_garbage, anonymous)] == [
        (401, "invalid_api_key"), (401, "invalid_api_key"), (401, "unauthorized")]
    assert owner_conn.execute("SELECT count(*) AS n FROM automation_events_log WHERE site_id = %s",
                              (tenant.site_id,)).fetchone()["n"] == 0


def test_executions_of_another_site_are_404(api, tenant, other_tenant):
    reply = api.get(f"{base(tenant)}/executions/{uuid.uuid4()}", user=tenant.owner)
    stranger = api.get(f"{base(tenant)}/executions", user=other_tenant.owner)
    assert reply.status == 404 and reply.body["code"] == "execution_not_found"
    assert stranger.status == 404


def test_incoming_webhook_turns_a_post_into_an_event(api, tenant, aws, owner_conn):
    workflow = create_workflow(api, tenant, [
        {"type": "set_variable", "config": {"name": "order", "value": "{{event.payload.body.order}}"}}],
        trigger="automation.webhook.received")
    created = api.post(f"{base(tenant)}/webhooks", user=tenant.owner, body={"name": "Shop"})
    assert created.status == 201
    token = created.data["token"]
    assert created.data["path"] == f"/api/webhooks/automation/{token}"
    call = api.post(created.data["path"], body={"order": 42}, query={"source": "shop"})
    assert call.status == 202
    aws.drain()
    event = owner_conn.execute("SELECT event_type, payload FROM automation_events_log WHERE id = %s",
                               (call.data["eventId"],)).fetchone()
    assert event["event_type"] == "automation.webhook.received"
    assert event["payload"]["body"] == {"order": 42} and event["payload"]["query"] == {"source": "shop"}
    variable = owner_conn.execute("SELECT value FROM workflow_variables WHERE workflow_id = %s",
                                  (workflow["id"],)).fetchone()
    assert variable["value"] == 42
    [listed] = api.get(f"{base(tenant)}/webhooks", user=tenant.member).data
    assert "token" not in listed and listed["lastReceivedAt"]
    stored = owner_conn.execute("SELECT token_hash FROM automation_webhooks WHERE id = %s", (listed["id"],)).fetchone()
    assert token not in stored["token_hash"]


def test_unknown_or_deleted_webhook_token_is_404(api, tenant):
    created = api.post(f"{base(tenant)}/webhooks", user=tenant.owner, body={}).data
    assert api.delete(f"{base(tenant)}/webhooks/{created['id']}", user=tenant.owner).status == 200
    assert api.post(created["path"], body={}).status == 404
    assert api.post("/api/webhooks/automation/not-a-token", body={}).status == 404


def test_requests_without_a_token_are_401(api, tenant):
    assert api.get(f"{base(tenant)}/workflows").status == 401


def test_huge_execution_offset_is_400_not_a_database_error(api, tenant):
    reply = api.get(f"/api/sites/{tenant.site_id}/automation/executions", user=tenant.owner,
                    query={"offset": str(2**63)})
    assert reply.status == 400
    assert reply.body["code"] == "validation_error"
