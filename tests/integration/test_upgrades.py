"""Upgrading a site's module through the real install handler: versions published through the real
catalog handler, schema changes through the moto provision queue and the real provision handler, and
two sites of one shared schema running different versions."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from dramac_common.core.naming import get_module_schema_name
from support.aws import emulated_aws
from support.provision import ProvisionQueue

from dramac_dev.seed import CRM_MANIFEST

ADMIN = "/api/admin/modules"


@pytest.fixture
def provision_queue():
    with emulated_aws() as emulated:
        yield ProvisionQueue(emulated.sqs, emulated.urls["provision"], emulated.arn("provision"))


@pytest.fixture
def install(function_client, provision_queue):
    return function_client("install")


@pytest.fixture
def catalog(function_client):
    return function_client("catalog")


@pytest.fixture
def operator(make_user):
    return make_user(super_admin=True)


def version(number, *extra_columns):
    manifest = copy.deepcopy(CRM_MANIFEST)
    manifest["version"] = number
    manifest["database"]["tables"][1]["columns"] += list(extra_columns)
    return manifest


def publish(catalog, operator, module_id, manifest):
    added = catalog.post(f"{ADMIN}/{module_id}/versions", user=operator, body={"manifest": manifest})
    assert added.status == 201, added.body
    published = catalog.post(f"{ADMIN}/{module_id}/versions/{manifest['version']}/publish", user=operator)
    assert published.status == 200, published.body


@pytest.fixture
def crm_module(catalog, operator, owner_conn):
    """A free app module published at 1.0.0 through the catalogue."""
    slug = f"crm{uuid.uuid4().hex[:8]}"
    module = catalog.post(ADMIN, user=operator, body={"slug": slug, "name": "CRM", "moduleType": "app"}).data
    publish(catalog, operator, module["id"], version("1.0.0"))
    return uuid.UUID(module["id"])


def installed_on(install, provision_queue, owner_conn, tenant, module_id):
    owner_conn.execute("INSERT INTO agency_module_subscriptions (agency_id, module_id, status) "
                       "VALUES (%s, %s, 'active')", (tenant.agency_id, module_id))
    install.post(f"/api/sites/{tenant.site_id}/modules/{module_id}", user=tenant.owner)
    provision_queue.drain()
    got = install.get(f"/api/sites/{tenant.site_id}/modules/{module_id}", user=tenant.owner).data
    assert (got["status"], got["installedVersion"]) == ("active", "1.0.0")
    return got


def upgrade_path(tenant, module_id):
    return f"/api/sites/{tenant.site_id}/modules/{module_id}/upgrade"


def events(owner_conn, site_id, module_id, kind="upgraded"):
    return [r["payload"] for r in owner_conn.execute(
        "SELECT payload FROM automation_events_log WHERE site_id = %s AND event_type = %s "
        "AND payload ->> 'module_id' = %s ORDER BY created_at", (site_id, f"marketplace.module.{kind}",
                                                                 str(module_id))).fetchall()]


def test_two_sites_on_one_schema_run_different_versions(install, catalog, operator, provision_queue, owner_conn,
                                                        tenant, other_tenant, crm_module):
    installed_on(install, provision_queue, owner_conn, tenant, crm_module)
    installed_on(install, provision_queue, owner_conn, other_tenant, crm_module)
    publish(catalog, operator, crm_module, version("1.1.0", {"name": "source", "type": "text"}))
    seen = install.get(f"/api/sites/{tenant.site_id}/modules/{crm_module}", user=tenant.admin).data
    assert (seen["installedVersion"], seen["latestVersion"], seen["upgradeAvailable"]) == ("1.0.0", "1.1.0", True)
    schema = get_module_schema_name(crm_module)
    preview = install.get(upgrade_path(tenant, crm_module), user=tenant.admin).data
    assert (preview["fromVersion"], preview["toVersion"], preview["availableVersions"], preview["schemaVersion"],
            preview["runs"], preview["allowed"]) == ("1.0.0", "1.1.0", ["1.1.0"], "1.0.0", "provision_queue", True)
    assert preview["statements"] == [f'ALTER TABLE "{schema}"."contacts"\n  ADD COLUMN "source" text']

    queued = install.post(upgrade_path(tenant, crm_module), user=tenant.admin)
    assert (queued.status, queued.data["installedVersion"], queued.data["targetVersion"]) == (202, "1.0.0", "1.1.0")
    assert events(owner_conn, tenant.site_id, crm_module) == []  # not upgraded until the schema is
    assert provision_queue.drain() == 1
    first = install.get(f"/api/sites/{tenant.site_id}/modules/{crm_module}", user=tenant.owner).data
    second = install.get(f"/api/sites/{other_tenant.site_id}/modules/{crm_module}", user=other_tenant.owner).data
    assert (first["installedVersion"], first["targetVersion"], first["upgradeAvailable"]) == ("1.1.0", None, False)
    assert (second["installedVersion"], second["upgradeAvailable"]) == ("1.0.0", True)
    assert owner_conn.execute("SELECT version FROM module_database_registry WHERE module_id = %s",
                              (crm_module,)).fetchone()["version"] == "1.1.0"
    # the site still on 1.0.0 keeps writing its rows without the new column
    owner_conn.execute(f'INSERT INTO "{schema}".contacts (site_id, email) VALUES (%s, %s)',
                       (other_tenant.site_id, "still@1-0.test"))
    [event] = events(owner_conn, tenant.site_id, crm_module)
    assert (event["from_version"], event["to_version"], event["version"], event["actor_id"]) == (
        "1.0.0", "1.1.0", "1.1.0", str(tenant.admin))

    # the second site moves at once: the shared schema already has 1.1.0
    second_preview = install.get(upgrade_path(other_tenant, crm_module), user=other_tenant.owner).data
    assert (second_preview["runs"], second_preview["statements"]) == ("now", [])
    moved = install.post(upgrade_path(other_tenant, crm_module), user=other_tenant.owner, body={"toVersion": "1.1.0"})
    assert (moved.status, moved.data["installedVersion"]) == (200, "1.1.0")
    assert provision_queue.receive() == []
    assert len(events(owner_conn, other_tenant.site_id, crm_module)) == 1
    audit = [r["action"] for r in owner_conn.execute(
        "SELECT action FROM audit_log WHERE site_id = ANY(%s) AND action LIKE 'installation.upgrade%%' ORDER BY id",
        ([tenant.site_id, other_tenant.site_id],)).fetchall()]
    assert audit == ["installation.upgrade_requested", "installation.upgraded"]


def test_a_destructive_upgrade_is_refused_with_the_reason_and_changes_nothing(
        install, catalog, operator, provision_queue, owner_conn, tenant, crm_module):
    installed_on(install, provision_queue, owner_conn, tenant, crm_module)
    # published by SQL, as an operator might, bypassing the catalogue's dry run
    dropped = version("2.0.0")
    dropped["database"]["tables"][1]["columns"] = [c for c in dropped["database"]["tables"][1]["columns"]
                                                   if c["name"] != "last_name"]
    owner_conn.execute("INSERT INTO module_versions (module_id, version, manifest, status) "
                       "VALUES (%s, '2.0.0', %s, 'published')", (crm_module, json.dumps(dropped)))
    preview = install.get(upgrade_path(tenant, crm_module), user=tenant.owner, query={"toVersion": "2.0.0"}).data
    assert (preview["allowed"], preview["code"]) == (False, "destructive_upgrade")
    assert "column last_name: dropping a column is not supported" in preview["reason"]
    refused = install.post(upgrade_path(tenant, crm_module), user=tenant.owner, body={"toVersion": "2.0.0"})
    assert (refused.status, refused.body["code"]) == (409, "destructive_upgrade")
    assert "dropping a column" in refused.body["error"]
    got = install.get(f"/api/sites/{tenant.site_id}/modules/{crm_module}", user=tenant.owner).data
    assert (got["installedVersion"], got["targetVersion"]) == ("1.0.0", None)
    assert provision_queue.receive() == []


def test_refusals_are_4xx_and_members_or_other_agencies_cannot_upgrade(
        install, catalog, operator, provision_queue, owner_conn, tenant, other_tenant, crm_module):
    installed_on(install, provision_queue, owner_conn, tenant, crm_module)
    current = install.post(upgrade_path(tenant, crm_module), user=tenant.owner)
    assert (current.status, current.body["code"]) == (409, "already_at_version")
    publish(catalog, operator, crm_module, version("1.1.0"))
    assert install.post(upgrade_path(tenant, crm_module), user=tenant.member).status == 403
    assert install.get(upgrade_path(tenant, crm_module), user=tenant.member).status == 403
    assert install.post(upgrade_path(tenant, crm_module), user=other_tenant.owner).body["code"] == "site_not_found"
    unknown = install.post(upgrade_path(tenant, crm_module), user=tenant.owner, body={"toVersion": "9.0.0"})
    assert (unknown.status, unknown.body["code"]) == (404, "version_not_available")
    older = install.post(upgrade_path(tenant, crm_module), user=tenant.owner, body={"toVersion": "0.9.0"})
    assert older.status == 404
    assert install.post(upgrade_path(tenant, crm_module), user=tenant.owner, body={"toVersion": "1.1"}).status == 400
    install.delete(f"/api/sites/{tenant.site_id}/modules/{crm_module}", user=tenant.owner)
    disabled = install.post(upgrade_path(tenant, crm_module), user=tenant.owner)
    assert (disabled.status, disabled.body["code"]) == (409, "installation_not_active")
    catalog.post(f"{ADMIN}/{crm_module}/versions/1.1.0/deprecate", user=operator)
    install.post(f"/api/sites/{tenant.site_id}/modules/{crm_module}", user=tenant.owner)
    deprecated = install.post(upgrade_path(tenant, crm_module), user=tenant.owner, body={"toVersion": "1.1.0"})
    assert (deprecated.status, deprecated.body["code"]) == (404, "version_not_available")
    got = install.get(f"/api/sites/{tenant.site_id}/modules/{crm_module}", user=tenant.owner).data
    assert got["installedVersion"] == "1.0.0"


def test_a_widget_upgrades_at_once(install, catalog, operator, provision_queue, owner_conn, tenant):
    slug = f"w{uuid.uuid4().hex[:8]}"
    module = uuid.UUID(catalog.post(ADMIN, user=operator, body={"slug": slug, "name": "W", "moduleType": "widget"})
                       .data["id"])
    publish(catalog, operator, module, {"version": "1.0.0"})
    owner_conn.execute("INSERT INTO agency_module_subscriptions (agency_id, module_id, status) "
                       "VALUES (%s, %s, 'active')", (tenant.agency_id, module))
    assert install.post(f"/api/sites/{tenant.site_id}/modules/{module}", user=tenant.owner).status == 201
    publish(catalog, operator, module, {"version": "1.0.1"})
    moved = install.post(upgrade_path(tenant, module), user=tenant.owner)
    assert (moved.status, moved.data["installedVersion"]) == (200, "1.0.1")
    assert provision_queue.receive() == []
