"""The audit trail of issue 17: the changes that write a row (workflows, API keys, markup, subscribe,
purchase, executions), written in the change's transaction, and the owners' read route
``GET /api/agencies/{agencyId}/audit-log`` (filters, pages, tenancy); no role changes a row."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from support.automation import create_workflow
from support.handlers import claims_for

STEPS = [{"type": "set_variable", "config": {"name": "seen", "value": "{{event.payload.email}}"}}]


@pytest.fixture
def automation(function_client):
    return function_client("automation")


@pytest.fixture
def subscribe_api(function_client):
    return function_client("subscribe")


def trail(owner_conn, agency_id) -> list[dict]:
    return owner_conn.execute(
        "SELECT action, actor_user_id, actor_role, site_id, target_type, target_id, details FROM audit_log "
        "WHERE agency_id = %s ORDER BY id", (agency_id,)).fetchall()


def actions(owner_conn, agency_id) -> list[str]:
    return [r["action"] for r in trail(owner_conn, agency_id)]


def test_workflow_changes_are_audited_with_who_did_them(automation, tenant, owner_conn):
    workflow = create_workflow(automation, tenant, STEPS)
    path = f"/api/sites/{tenant.site_id}/automation/workflows/{workflow['id']}"
    assert automation.patch(path, user=tenant.admin, body={"isActive": False}).status == 200
    assert automation.patch(path, user=tenant.admin, body={"name": "Renamed", "isActive": True}).status == 200
    assert automation.delete(path, user=tenant.owner).status == 200
    rows = trail(owner_conn, tenant.agency_id)
    assert [(r["action"], r["actor_user_id"], r["actor_role"]) for r in rows] == [
        ("workflow.created", tenant.owner, "owner"), ("workflow.disabled", tenant.admin, "admin"),
        ("workflow.enabled", tenant.admin, "admin"), ("workflow.updated", tenant.admin, "admin"),
        ("workflow.deleted", tenant.owner, "owner")]
    assert {r["target_id"] for r in rows} == {workflow["id"]}
    assert rows[0]["details"] == {"name": "Workflow", "triggerEventType": "crm.contact.created", "isActive": True,
                                  "steps": 1}
    assert rows[3]["details"] == {"fields": ["name"]}
    assert {r["site_id"] for r in rows} == {tenant.site_id}


def test_a_refused_change_writes_no_row(automation, tenant, owner_conn):
    workflow = create_workflow(automation, tenant, STEPS)
    path = f"/api/sites/{tenant.site_id}/automation/workflows/{workflow['id']}"
    refused = automation.patch(path, user=tenant.owner, body={"steps": [{"type": "teleport", "config": {}}]})
    by_member = automation.patch(path, user=tenant.member, body={"isActive": False})
    assert (refused.status, by_member.status) == (400, 403)
    assert actions(owner_conn, tenant.agency_id) == ["workflow.created"]


def test_api_key_create_rotate_and_revoke_are_audited_once_each(function_client, tenant, owner_conn):
    api = function_client("module_api")
    keys = f"/api/sites/{tenant.site_id}/api-keys"
    first = api.post(keys, user=tenant.owner, body={"name": "CI"}).data
    second = api.post(keys, user=tenant.admin, body={"rotatesKeyId": first["id"], "overlapSeconds": 0}).data
    assert api.delete(f"{keys}/{second['id']}", user=tenant.owner).status == 200
    assert api.delete(f"{keys}/{second['id']}", user=tenant.owner).status == 200  # already revoked: no new row
    rows = trail(owner_conn, tenant.agency_id)
    assert [(r["action"], r["target_id"]) for r in rows] == [
        ("api_key.created", first["id"]), ("api_key.rotated", second["id"]), ("api_key.revoked", second["id"])]
    assert rows[1]["details"]["rotatesKeyId"] == first["id"]
    # the secret is shown once to its creator, never kept in the trail
    assert first["key"] not in json.dumps([r["details"] for r in rows])


def test_subscribe_purchase_and_markup_are_audited(function_client, subscribe_api, tenant, make_module, owner_conn,
                                                   sandbox_aws):
    free = make_module()
    paid = make_module(pricing_type="monthly", wholesale_price_cents=1000)
    assert subscribe_api.post("/api/modules/subscribe", user=tenant.owner,
                              body={"agencyId": str(tenant.agency_id), "moduleId": str(free)}).status == 201
    assert subscribe_api.post("/api/modules/subscribe", user=tenant.owner,
                              body={"agencyId": str(tenant.agency_id), "moduleId": str(free)}).status == 200
    purchase = function_client("purchase")
    bought = purchase.post(f"/api/modules/{paid}/purchase", user=tenant.owner,
                           body={"agencyId": str(tenant.agency_id), "markupType": "fixed", "markupValue": 250})
    assert bought.status in (200, 201), bought.body
    sub_id = bought.data["subscriptionId"]
    assert purchase.patch(f"/api/agencies/{tenant.agency_id}/subscriptions/{sub_id}", user=tenant.owner,
                          body={"markupType": "percentage", "markupValue": 50}).status == 200
    rows = trail(owner_conn, tenant.agency_id)
    assert [r["action"] for r in rows] == ["subscription.subscribed", "subscription.purchase_started",
                                           "subscription.markup_changed"]
    assert rows[1]["details"]["wholesalePriceCents"] == 1000 and rows[1]["actor_user_id"] == tenant.owner
    assert rows[2]["details"] == {
        "before": {"markupType": "fixed", "markupValue": 250, "retailPriceCents": 1250},
        "after": {"markupType": "percentage", "markupValue": 50, "retailPriceCents": 1500}}


# The owners' read route --------------------------------------------------------------------------

def audit_path(agency_id) -> str:
    return f"/api/agencies/{agency_id}/audit-log"


@pytest.fixture
def three_workflows(automation, tenant):
    return [create_workflow(automation, tenant, STEPS, name=f"W{i}") for i in range(3)]


def test_owners_read_their_trail_newest_first_by_pages(subscribe_api, automation, tenant, three_workflows):
    path = f"/api/sites/{tenant.site_id}/automation/workflows/{three_workflows[0]['id']}"
    automation.patch(path, user=tenant.owner, body={"isActive": False})
    first = subscribe_api.get(audit_path(tenant.agency_id), user=tenant.owner, query={"limit": "2"})
    assert first.status == 200, first.body
    assert [e["action"] for e in first.data["entries"]] == ["workflow.disabled", "workflow.created"]
    assert first.data["entries"][0]["actorUserId"] == str(tenant.owner)
    second = subscribe_api.get(audit_path(tenant.agency_id), user=tenant.owner,
                               query={"limit": "2", "before": str(first.data["nextBefore"])})
    assert [e["action"] for e in second.data["entries"]] == ["workflow.created", "workflow.created"]
    assert second.data["nextBefore"] is None
    ids = [e["id"] for e in first.data["entries"] + second.data["entries"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4


def test_filters_narrow_the_trail(subscribe_api, automation, tenant, three_workflows):
    target = three_workflows[1]["id"]
    automation.patch(f"/api/sites/{tenant.site_id}/automation/workflows/{target}", user=tenant.admin,
                     body={"isActive": False})

    def entries(**query):
        reply = subscribe_api.get(audit_path(tenant.agency_id), user=tenant.owner, query=query)
        assert reply.status == 200, reply.body
        return [(e["action"], e["targetId"]) for e in reply.data["entries"]]

    assert entries(action="workflow.disabled") == [("workflow.disabled", target)]
    assert len(entries(action="workflow.*")) == 4
    assert entries(targetId=target, targetType="workflow") == [("workflow.disabled", target),
                                                               ("workflow.created", target)]
    assert entries(actorUserId=str(tenant.admin)) == [("workflow.disabled", target)]
    assert len(entries(siteId=str(tenant.site_id))) == 4
    assert entries(siteId=str(uuid.uuid4())) == []
    assert entries(until="2000-01-01T00:00:00Z") == []
    assert len(entries(since="2000-01-01T00:00:00Z")) == 4


@pytest.mark.parametrize("query", [{"action": "Workflow.Created"}, {"action": "x; DROP"}, {"limit": "0"},
                                   {"limit": "201"}, {"before": "-1"}, {"since": "yesterday"},
                                   {"siteId": "not-a-uuid"}, {"targetId": "a\x00b"}])
def test_bad_filters_are_400(subscribe_api, tenant, query):
    reply = subscribe_api.get(audit_path(tenant.agency_id), user=tenant.owner, query=query)
    assert reply.status == 400 and reply.body["success"] is False


@pytest.mark.parametrize("query", [{"since": "0001-01-01T00:00:00"}, {"until": "9999-12-31T23:59:59+14:00"}])
def test_valid_times_however_far_are_answered(subscribe_api, tenant, query):
    reply = subscribe_api.get(audit_path(tenant.agency_id), user=tenant.owner, query=query)
    assert reply.status == 200, reply.body


def test_only_owners_read_and_other_agencies_see_nothing(subscribe_api, tenant, other_tenant, three_workflows):
    assert subscribe_api.get(audit_path(tenant.agency_id), user=tenant.admin).status == 403
    assert subscribe_api.get(audit_path(tenant.agency_id), user=tenant.member).status == 403
    stranger = subscribe_api.get(audit_path(tenant.agency_id), user=other_tenant.owner)
    assert stranger.status == 404 and stranger.body["code"] == "agency_not_found"
    own = subscribe_api.get(audit_path(other_tenant.agency_id), user=other_tenant.owner)
    assert own.status == 200 and own.data == {"entries": [], "nextBefore": None}


# No role changes a row ----------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role", "dramac_backend", None])
@pytest.mark.parametrize("statement", [
    "UPDATE public.audit_log SET action = 'x.changed' WHERE agency_id = %(agency)s",
    "DELETE FROM public.audit_log WHERE agency_id = %(agency)s",
    "TRUNCATE public.audit_log",
])
def test_no_role_updates_or_deletes_audit_rows(database_url, owner_conn, automation, tenant, role, statement):
    create_workflow(automation, tenant, STEPS)
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims_for(tenant.owner)),))
        if role is not None:  # None: the table's owner, the login role of migrations
            conn.execute(psycopg.sql.SQL("SET LOCAL ROLE {}").format(psycopg.sql.Identifier(role)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement, {"agency": tenant.agency_id})
    assert actions(owner_conn, tenant.agency_id) == ["workflow.created"]


def test_revokes_at_the_same_moment_write_one_row(function_client, tenant, owner_conn):
    from support.concurrency import fire

    api = function_client("module_api")
    keys = f"/api/sites/{tenant.site_id}/api-keys"
    key = api.post(keys, user=tenant.owner, body={"name": "CI"}).data
    replies = fire(4, lambda i: api.delete(f"{keys}/{key['id']}", user=tenant.owner))
    assert [r.status for r in replies] == [200] * 4
    assert len({r.data["revokedAt"] for r in replies}) == 1
    assert actions(owner_conn, tenant.agency_id) == ["api_key.created", "api_key.revoked"]
