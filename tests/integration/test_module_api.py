"""The module data routes (contract section 5) through the real Lambda handler, on real PostgreSQL."""

import json
import uuid

import pytest
from support.modules import install_module, make_crm


@pytest.fixture
def api(function_client):
    return function_client("module_api")


@pytest.fixture
def crm(owner_conn, make_module, tenant, other_tenant, aws):
    module_id, slug = make_crm(owner_conn, make_module, tenant, other_tenant)
    return module_id, slug


def data_path(t, module, table, row_id=None):
    path = f"/api/sites/{t.site_id}/modules/{module}/data/{table}"
    return f"{path}/{row_id}" if row_id else path


def seed_contacts(api, t, module, n=5):
    reply = api.post(data_path(t, module, "contacts"), user=t.owner,
                     body=[{"email": f"p{i}@example.com", "lead_score": i * 20, "status": "active" if i % 2 else "lead"}
                           for i in range(n)])
    assert reply.status == 201, reply.body
    return reply.data


def test_create_list_filter_update_delete(api, crm, tenant):
    module_id, slug = crm
    created = api.post(data_path(tenant, slug, "contacts"), user=tenant.owner,
                       body={"email": "ada@example.com", "lead_score": 70})
    assert created.status == 201 and created.body["success"] is True
    contact = created.data
    seed_contacts(api, tenant, module_id)
    listed = api.get(data_path(tenant, slug, "contacts"), user=tenant.member,
                     query="lead_score=gte.50&email=ilike.*@example.com&order=lead_score.desc&select=email,lead_score")
    assert listed.status == 200
    assert listed.data == [{"email": "p4@example.com", "lead_score": 80}, {"email": "ada@example.com", "lead_score": 70},
                           {"email": "p3@example.com", "lead_score": 60}]
    one = api.get(data_path(tenant, slug, "contacts", contact["id"]), user=tenant.member)
    assert one.status == 200 and one.data["email"] == "ada@example.com"
    patched = api.patch(data_path(tenant, slug, "contacts", contact["id"]), user=tenant.admin,
                        body={"status": "qualified"})
    assert patched.status == 200 and patched.data["status"] == "qualified"
    deleted = api.delete(data_path(tenant, slug, "contacts", contact["id"]), user=tenant.owner)
    assert deleted.status == 200 and deleted.data["id"] == contact["id"]
    gone = api.get(data_path(tenant, slug, "contacts", contact["id"]), user=tenant.owner)
    assert gone.status == 404 and gone.body["code"] == "row_not_found"


def test_count_exact_ignores_limit_and_offset(api, crm, tenant):
    module_id, _ = crm
    seed_contacts(api, tenant, module_id, n=7)
    reply = api.get(data_path(tenant, module_id, "contacts"), user=tenant.member,
                    query="status=eq.active&limit=2&offset=1&count=exact")
    assert reply.status == 200
    assert reply.body["count"] == 3 and len(reply.data) == 2


def test_repeated_filters_on_one_column_are_anded(api, crm, tenant):
    module_id, _ = crm
    seed_contacts(api, tenant, module_id, n=6)
    reply = api.get(data_path(tenant, module_id, "contacts"), user=tenant.member,
                    query="lead_score=gte.20&lead_score=lt.60&order=lead_score")
    assert [r["lead_score"] for r in reply.data] == [20, 40]


def test_in_is_and_not_filters(api, crm, tenant):
    module_id, _ = crm
    rows = seed_contacts(api, tenant, module_id, n=4)
    ids = f"in.({rows[0]['id']},{rows[2]['id']})"
    assert {r["id"] for r in api.get(data_path(tenant, module_id, "contacts"), user=tenant.member,
                                     query={"id": ids}).data} == {rows[0]["id"], rows[2]["id"]}
    assert len(api.get(data_path(tenant, module_id, "contacts"), user=tenant.member,
                       query="deleted_at=is.null").data) == 4
    assert len(api.get(data_path(tenant, module_id, "contacts"), user=tenant.member,
                       query="status=not.eq.active").data) == 2


@pytest.mark.parametrize("query, code", [
    ("lead_score=between.1", "invalid_query"),
    ("lead_score=gte", "invalid_query"),
    ("id=in.a,b", "invalid_query"),
    ("limit=5000", "invalid_query"),
    ("limit=abc", "invalid_query"),
    ("order=email.sideways", "invalid_query"),
    ("count=planned", "invalid_query"),
    ("Robert'); DROP TABLE x;--=eq.1", "invalid_query"),
    ("nope=eq.1", "unknown_column"),
    ("select=email,nope", "unknown_column"),
    ("order=nope.desc", "unknown_column"),
    ("lead_score=gte.lots", "invalid_value"),
    ("company_id=eq.not-a-uuid", "invalid_value"),
    ("id=in.(1,2)", "invalid_value"),
    ("birthday=gt.someday", "invalid_value"),
    ("lead_score=gte.99999999999", "invalid_value"),
])
def test_malformed_queries_are_400_in_the_envelope(api, crm, tenant, query, code):
    module_id, _ = crm
    reply = api.get(data_path(tenant, module_id, "contacts"), user=tenant.member, query=query)
    assert reply.status == 400, reply.body
    assert reply.body["success"] is False and reply.body["code"] == code
    assert reply.body.get("details")


def test_unknown_table_is_400(api, crm, tenant):
    module_id, _ = crm
    reply = api.get(data_path(tenant, module_id, "pg_authid"), user=tenant.member)
    assert reply.status == 400 and reply.body["code"] == "unknown_table"


@pytest.mark.parametrize("body, code", [
    ({"email": "x@y", "nope": 1}, "unknown_column"),
    ({"email": "x@y", "lead_score": "high"}, "invalid_value"),
    ({"email": "x@y", "lead_score": -4}, "check_violation"),
    ({"first_name": "no email"}, "missing_value"),
    ({"email": "x@y", "created_at": "2020-01-01T00:00:00Z"}, "read_only_column"),
    ("just a string", "invalid_body"),
    ([{"email": "ok@y"}, {"email": "x@y", "nope": 1}], "unknown_column"),
])
def test_invalid_bodies_are_400(api, crm, tenant, body, code):
    module_id, _ = crm
    reply = api.post(data_path(tenant, module_id, "contacts"), user=tenant.owner, body=body)
    assert reply.status == 400, reply.body
    assert reply.body["code"] == code


def test_malformed_json_is_400(api, crm, tenant):
    module_id, _ = crm
    reply = api.post(data_path(tenant, module_id, "contacts"), user=tenant.owner, raw_body="{not json",
                     headers={"content-type": "application/json"})
    assert reply.status == 400 and reply.body["code"] == "invalid_json"


def test_over_large_body_is_413_and_too_many_rows_413(api, crm, tenant):
    module_id, _ = crm
    huge = json.dumps({"email": "x@y", "first_name": "a" * 1_100_000})
    reply = api.post(data_path(tenant, module_id, "contacts"), user=tenant.owner, raw_body=huge,
                     headers={"content-type": "application/json"})
    assert reply.status == 413 and reply.body["code"] == "payload_too_large"
    many = api.post(data_path(tenant, module_id, "contacts"), user=tenant.owner,
                    body=[{"email": f"{i}@y"} for i in range(1001)])
    assert many.status == 413 and many.body["code"] == "too_many_rows"


def test_another_sites_ids_are_404_and_unchanged(api, crm, tenant, other_tenant):
    module_id, _ = crm
    theirs = seed_contacts(api, other_tenant, module_id, n=1)[0]
    for reply in (
        api.get(data_path(tenant, module_id, "contacts", theirs["id"]), user=tenant.owner),
        api.patch(data_path(tenant, module_id, "contacts", theirs["id"]), user=tenant.owner, body={"status": "x"}),
        api.delete(data_path(tenant, module_id, "contacts", theirs["id"]), user=tenant.owner),
        api.get(data_path(tenant, module_id, "contacts", "not-a-uuid"), user=tenant.owner),
    ):
        assert reply.status == 404, reply.body
    # a filter naming the other site finds nothing; a body naming it is refused (its own site's id is fine)
    assert api.get(data_path(tenant, module_id, "contacts"), user=tenant.owner,
                   query={"site_id": f"eq.{other_tenant.site_id}"}).data == []
    sneaky = api.post(data_path(tenant, module_id, "contacts"), user=tenant.owner,
                      body={"email": "sneaky@x", "site_id": str(other_tenant.site_id)})
    assert (sneaky.status, sneaky.body["details"][0]["code"]) == (400, "site_mismatch")
    mine = api.post(data_path(tenant, module_id, "contacts"), user=tenant.owner,
                    body={"email": "mine@x", "site_id": str(tenant.site_id)})
    assert mine.status == 201 and mine.data["site_id"] == str(tenant.site_id)
    still = api.get(data_path(other_tenant, module_id, "contacts", theirs["id"]), user=other_tenant.owner)
    assert still.data["status"] == theirs["status"]


def test_a_user_of_another_agency_gets_404_for_the_site(api, crm, tenant, other_tenant):
    module_id, _ = crm
    reply = api.get(data_path(tenant, module_id, "contacts"), user=other_tenant.owner)
    assert reply.status == 404 and reply.body["code"] == "site_not_found"


def test_member_reads_and_writes_module_data(api, crm, tenant):
    module_id, _ = crm
    assert api.get(data_path(tenant, module_id, "contacts"), user=tenant.member).status == 200
    reply = api.post(data_path(tenant, module_id, "contacts"), user=tenant.member, body={"email": "m@x"})
    assert reply.status == 201, reply.body


def test_no_credentials_is_401(api, crm, tenant):
    module_id, _ = crm
    reply = api.get(data_path(tenant, module_id, "contacts"))
    assert reply.status == 401 and reply.body["success"] is False


@pytest.mark.parametrize("status, enabled, http, code", [
    ("provisioning", True, 409, "module_provisioning"),
    ("active", False, 404, "module_disabled"),
])
def test_module_gates(api, crm, tenant, owner_conn, status, enabled, http, code):
    module_id, _ = crm
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=module_id,
                   status=status, is_enabled=enabled)
    reply = api.get(data_path(tenant, module_id, "contacts"), user=tenant.owner)
    assert reply.status == http and reply.body["code"] == code


def test_batch_over_http_is_all_or_none(api, crm, tenant):
    module_id, _ = crm
    path = f"/api/sites/{tenant.site_id}/modules/{module_id}/data/_batch"
    failed = api.post(path, user=tenant.owner, body={"operations": [
        {"op": "create", "table": "companies", "values": {"name": "Acme"}},
        {"op": "create", "table": "contacts", "values": {"email": "x@y", "lead_score": -1}},
    ]})
    assert failed.status == 400 and failed.body["code"] == "check_violation"
    assert failed.body["details"][0]["operation"] == 1
    assert api.get(data_path(tenant, module_id, "companies"), user=tenant.owner).data == []
    ok = api.post(path, user=tenant.owner, body={"operations": [
        {"op": "create", "table": "companies", "values": {"name": "Acme"}},
        {"op": "create", "table": "contacts", "values": [{"email": "a@y"}, {"email": "b@y"}]},
    ]})
    assert ok.status == 200 and [len(r["data"]) if isinstance(r["data"], list) else 1 for r in ok.data] == [1, 2]
    too_many = api.post(path, user=tenant.owner, body={"operations": [
        {"op": "create", "table": "companies", "values": {"name": str(i)}} for i in range(101)]})
    assert too_many.status == 413


def test_events_are_emitted_over_http(api, crm, tenant, owner_conn):
    module_id, slug = crm
    row = api.post(data_path(tenant, module_id, "contacts"), user=tenant.owner, body={"email": "e@x"}).data
    api.patch(data_path(tenant, module_id, "contacts", row["id"]), user=tenant.owner, body={"lead_score": 3})
    events = owner_conn.execute("SELECT event_type, payload FROM automation_events_log WHERE site_id = %s "
                                "AND source_module = %s ORDER BY created_at", (tenant.site_id, slug)).fetchall()
    assert [e["event_type"] for e in events] == [f"{slug}.contact.created", f"{slug}.contact.updated"]
    assert events[1]["payload"]["previous"]["lead_score"] == 0 and events[1]["payload"]["lead_score"] == 3


def test_widget_storage_routes(api, owner_conn, make_module, tenant):
    module_id = make_module(module_type="widget")
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=module_id)
    base = f"/api/sites/{tenant.site_id}/modules/{module_id}/storage"
    assert api.request("PUT", f"{base}/title", user=tenant.owner, body={"value": "Hello"}).status == 200
    assert api.get(f"{base}/title", user=tenant.member).data == {"key": "title", "value": "Hello"}
    assert api.get(base, user=tenant.member).data == ["title"]
    assert api.delete(f"{base}/title", user=tenant.owner).status == 200
    assert api.get(f"{base}/title", user=tenant.member).status == 404


def test_unknown_module_is_404(api, crm, tenant):
    reply = api.get(data_path(tenant, uuid.uuid4(), "contacts"), user=tenant.owner)
    assert reply.status == 404 and reply.body["code"] == "module_not_installed"
