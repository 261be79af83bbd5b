"""The catalogue's admin side through the real catalog handler: draft modules, versions validated and
dry-run by the provisioner's own validator and planner (the DDL executed and rolled back), publishing
only what provisions, immutable versions, and the marketplace following the current version."""

from __future__ import annotations

import copy
import uuid

import psycopg
import pytest
from dramac_common.provisioning import provisioner

from dramac_dev.seed import CRM_MANIFEST

ADMIN = "/api/admin/modules"


@pytest.fixture
def api(function_client):
    return function_client("catalog")


@pytest.fixture
def market(function_client):
    return function_client("subscribe")


@pytest.fixture
def operator(make_user):
    return make_user(super_admin=True)


def v(manifest, version, extra_column=None):
    out = copy.deepcopy(manifest)
    out["version"] = version
    if extra_column:
        out["database"]["tables"][1]["columns"].append(extra_column)
    return out


def new_module(api, operator, module_type="app", **kw):
    slug = f"m{uuid.uuid4().hex[:10]}"
    reply = api.post(ADMIN, user=operator, body={"slug": slug, "name": slug.upper(), "moduleType": module_type, **kw})
    assert reply.status == 201, reply.body
    return reply.data


def add(api, operator, module_id, manifest):
    return api.post(f"{ADMIN}/{module_id}/versions", user=operator, body={"manifest": manifest})


def test_a_module_goes_from_draft_to_published_and_the_marketplace_shows_its_current_version(
        api, market, operator, tenant, owner_conn):
    module = new_module(api, operator)
    assert (module["status"], module["currentVersion"]) == ("draft", None)
    added = add(api, operator, module["id"], v(CRM_MANIFEST, "1.0.0"))
    assert (added.status, added.data["status"], added.data["version"]) == (201, "draft", "1.0.0")
    assert added.data["dryRun"]["canProvision"] is True
    assert module["id"] not in {m["id"] for m in market.get("/api/modules", user=tenant.owner).data}
    published = api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/publish", user=operator)
    assert published.status == 200
    assert (published.data["status"], published.data["currentVersion"]) == ("published", "1.0.0")
    assert [(x["version"], x["status"]) for x in published.data["versions"]] == [("1.0.0", "published")]
    listed = {m["id"]: m for m in market.get("/api/modules", user=tenant.owner).data}
    assert listed[module["id"]]["version"] == "1.0.0"
    add(api, operator, module["id"], v(CRM_MANIFEST, "1.1.0", {"name": "source", "type": "text"}))
    api.post(f"{ADMIN}/{module['id']}/versions/1.1.0/publish", user=operator)
    got = api.get(f"{ADMIN}/{module['id']}", user=operator).data
    assert (got["currentVersion"], [x["version"] for x in got["versions"]]) == ("1.1.0", ["1.1.0", "1.0.0"])
    manifest = owner_conn.execute("SELECT manifest FROM modules_v2 WHERE id = %s", (module["id"],)).fetchone()
    assert manifest["manifest"]["version"] == "1.1.0"
    actions = [r["action"] for r in owner_conn.execute(
        "SELECT action FROM audit_log WHERE target_id = %s ORDER BY id", (module["id"],)).fetchall()]
    assert actions == ["catalog.module_created", "catalog.version_added", "catalog.version_published",
                       "catalog.version_added", "catalog.version_published"]


def test_the_dry_run_answers_the_exact_statements_the_provisioner_runs(api, operator, owner_conn):
    module = new_module(api, operator)
    add(api, operator, module["id"], v(CRM_MANIFEST, "1.0.0"))
    fresh = api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/dry-run", user=operator).data
    schema = fresh["schema"]
    assert fresh["upgrade"] is None and fresh["current"] is None
    assert fresh["fresh"]["statements"][0] == f'CREATE SCHEMA "{schema}"'
    assert any(s.startswith(f'CREATE TABLE "{schema}"."contacts"') for s in fresh["fresh"]["statements"])
    # nothing of the dry run stayed behind
    assert owner_conn.execute("SELECT count(*) AS n FROM pg_namespace WHERE nspname = %s",
                              (schema,)).fetchone()["n"] == 0
    api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/publish", user=operator)
    add(api, operator, module["id"], v(CRM_MANIFEST, "1.1.0", {"name": "source", "type": "text"}))
    upgrade = api.post(f"{ADMIN}/{module['id']}/versions/1.1.0/dry-run", user=operator).data["upgrade"]
    assert upgrade == {"statements": [f'ALTER TABLE "{schema}"."contacts"\n  ADD COLUMN "source" text'],
                       "ok": True, "error": None, "fromVersion": "1.0.0"}
    # the provisioner, upgrading a real schema from 1.0.0, runs exactly those statements
    owner_conn.execute("UPDATE modules_v2 SET manifest = (SELECT manifest FROM module_versions "
                       "WHERE module_id = %s AND version = '1.0.0') WHERE id = %s", (module["id"], module["id"]))
    provisioner.provision_module(module["id"])
    current = api.post(f"{ADMIN}/{module['id']}/versions/1.1.0/dry-run", user=operator).data["current"]
    assert (current["fromVersion"], current["statements"]) == ("1.0.0", upgrade["statements"])


def test_an_upgrade_adding_a_not_null_column_without_default_cannot_be_published(api, operator):
    module = new_module(api, operator)
    add(api, operator, module["id"], v(CRM_MANIFEST, "1.0.0"))
    api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/publish", user=operator)
    add(api, operator, module["id"], v(CRM_MANIFEST, "1.1.0", {"name": "phone", "type": "text", "nullable": False}))
    refused = api.post(f"{ADMIN}/{module['id']}/versions/1.1.0/publish", user=operator)
    assert (refused.status, refused.body["code"]) == (409, "cannot_provision")
    assert "column phone: a NOT NULL column added to an existing table needs a default" in refused.body["error"]
    got = api.get(f"{ADMIN}/{module['id']}", user=operator).data
    assert (got["currentVersion"], [x["status"] for x in got["versions"]]) == ("1.0.0", ["draft", "published"])


def test_a_destructive_upgrade_cannot_be_published_and_names_the_reason(api, operator):
    module = new_module(api, operator)
    add(api, operator, module["id"], v(CRM_MANIFEST, "1.0.0"))
    api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/publish", user=operator)
    dropped = v(CRM_MANIFEST, "2.0.0")
    dropped["database"]["tables"][1]["columns"] = [c for c in dropped["database"]["tables"][1]["columns"]
                                                   if c["name"] != "last_name"]
    added = add(api, operator, module["id"], dropped)
    assert added.status == 201
    assert added.data["dryRun"]["fresh"]["ok"] is True
    assert added.data["dryRun"]["upgrade"]["ok"] is False
    assert "column last_name: dropping a column is not supported" in added.data["dryRun"]["upgrade"]["error"]
    refused = api.post(f"{ADMIN}/{module['id']}/versions/2.0.0/publish", user=operator)
    assert (refused.status, refused.body["code"]) == (409, "cannot_provision")
    assert "dropping a column" in refused.body["error"]
    assert api.get(f"{ADMIN}/{module['id']}", user=operator).data["currentVersion"] == "1.0.0"


def test_an_invalid_manifest_is_refused_when_added_with_every_problem(api, operator):
    module = new_module(api, operator)
    bad = v(CRM_MANIFEST, "1.0.0")
    bad["database"]["tables"][0]["columns"][0]["type"] = "text; DROP TABLE public.sites"
    reply = add(api, operator, module["id"], bad)
    assert (reply.status, reply.body["code"]) == (400, "invalid_manifest")
    assert any("table companies, column name" in p for p in reply.body["details"])
    assert api.get(f"{ADMIN}/{module['id']}", user=operator).data["versions"] == []


def test_versions_only_grow_and_must_match_their_manifest(api, operator):
    module = new_module(api, operator, module_type="widget")
    assert add(api, operator, module["id"], {"version": "1.2.0"}).status == 201
    for version in ("1.2.0", "1.1.9"):
        reply = add(api, operator, module["id"], {"version": version})
        assert (reply.status, reply.body["code"]) == (409, "version_not_newer")
    mismatch = api.post(f"{ADMIN}/{module['id']}/versions", user=operator,
                        body={"version": "2.0.0", "manifest": {"version": "1.3.0"}})
    assert (mismatch.status, mismatch.body["code"]) == (400, "version_mismatch")
    assert add(api, operator, module["id"], {"version": "1.10.0"}).status == 201


def test_published_versions_are_immutable_for_every_role(api, operator, owner_conn):
    module = new_module(api, operator, module_type="widget")
    add(api, operator, module["id"], {"version": "1.0.0"})
    api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/publish", user=operator)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        owner_conn.execute("UPDATE module_versions SET manifest = '{\"version\": \"1.0.0\", \"x\": 1}' "
                           "WHERE module_id = %s", (module["id"],))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        owner_conn.execute("UPDATE module_versions SET status = 'draft' WHERE module_id = %s", (module["id"],))


def test_deprecate_and_unpublish_move_the_current_version_and_the_modules_status(api, market, operator, tenant):
    module = new_module(api, operator, module_type="widget")
    for version in ("1.0.0", "1.1.0"):
        add(api, operator, module["id"], {"version": version})
        api.post(f"{ADMIN}/{module['id']}/versions/{version}/publish", user=operator)
    after = api.post(f"{ADMIN}/{module['id']}/versions/1.1.0/deprecate", user=operator).data
    assert (after["status"], after["currentVersion"]) == ("published", "1.0.0")
    after = api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/unpublish", user=operator).data
    assert (after["status"], after["currentVersion"]) == ("deprecated", None)
    assert module["id"] not in {m["id"] for m in market.get("/api/modules", user=tenant.owner).data}
    again = api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/publish", user=operator)
    assert (again.status, again.body["code"]) == (409, "invalid_version_status")  # unpublished is final
    republished = api.post(f"{ADMIN}/{module['id']}/versions/1.1.0/publish", user=operator).data
    assert (republished["status"], republished["currentVersion"]) == ("published", "1.1.0")


def test_only_super_admins_reach_the_catalogue(api, operator, tenant, other_tenant):
    module = new_module(api, operator, module_type="widget")
    for user in (tenant.owner, tenant.admin, tenant.member):
        for reply in (api.get(ADMIN, user=user), api.get(f"{ADMIN}/{module['id']}", user=user),
                      api.post(ADMIN, user=user, body={"slug": "nope", "name": "N", "moduleType": "widget"}),
                      add(api, user, module["id"], {"version": "1.0.0"})):
            assert (reply.status, reply.body["code"]) == (403, "super_admin_required")
    assert api.get(ADMIN).status == 401
    assert api.get(f"{ADMIN}/{module['id']}", user=operator).data["versions"] == []


def test_bad_input_is_a_clear_400_or_404(api, operator):
    module = new_module(api, operator, module_type="widget")
    assert api.post(ADMIN, user=operator, body={"slug": "Bad Slug", "name": "x", "moduleType": "app"}).status == 400
    assert api.post(ADMIN, user=operator, body={"slug": "ok", "name": "x", "moduleType": "rocket"}).status == 400
    paid_free = api.post(ADMIN, user=operator, body={"slug": f"p{uuid.uuid4().hex[:8]}", "name": "x",
                                                     "moduleType": "app", "pricingType": "monthly"})
    assert (paid_free.status, paid_free.body["code"]) == (400, "invalid_price")
    taken = api.post(ADMIN, user=operator, body={"slug": module["slug"], "name": "x", "moduleType": "app"})
    assert (taken.status, taken.body["code"]) == (409, "unique_violation")
    assert api.post(f"{ADMIN}/{module['id']}/versions/1.0/publish", user=operator).status == 400
    missing = api.post(f"{ADMIN}/{module['id']}/versions/1.0.0/publish", user=operator)
    assert (missing.status, missing.body["code"]) == (404, "version_not_found")
    assert api.get(f"{ADMIN}/{uuid.uuid4()}", user=operator).body["code"] == "module_not_found"
    assert add(api, operator, module["id"], "not an object").status == 400
