"""Exporting a site's module data (NDJSON per table in a zip in moto's S3, downloaded through its
presigned URL) and purging it (owner, confirmation, grace period, undo, the scheduled purger), through
the real install and purger handlers."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest
import requests
from dramac_common.core import storage
from dramac_common.core.naming import get_module_schema_name
from dramac_common.core.settings import get_settings
from dramac_common.provisioning import provisioner
from support.aws import emulated_aws
from support.modules import make_crm

from dramac_dev.events import LocalContext
from dramac_dev.functions_loader import get_handler


@pytest.fixture
def aws_env():
    with emulated_aws() as emulated:
        yield emulated


@pytest.fixture
def install(function_client, aws_env):
    return function_client("install")


@pytest.fixture
def crm(owner_conn, make_module, tenant, other_tenant):
    module_id, slug = make_crm(owner_conn, make_module, tenant, other_tenant)
    schema = get_module_schema_name(module_id)
    for t, emails in ((tenant, ["a@one.test", "b@one.test"]), (other_tenant, ["z@two.test"])):
        company = owner_conn.execute(f"INSERT INTO {schema}.companies (site_id, name) VALUES (%s, 'Acme') "
                                     "RETURNING id", (t.site_id,)).fetchone()["id"]
        for email in emails:
            owner_conn.execute(f"INSERT INTO {schema}.contacts (site_id, email, company_id) VALUES (%s, %s, %s)",
                               (t.site_id, email, company))
    owner_conn.execute("INSERT INTO agency_module_subscriptions (agency_id, module_id, status) VALUES (%s, %s, 'active')",
                       (tenant.agency_id, module_id))
    owner_conn.execute("INSERT INTO module_data (module_id, site_id, key, value) VALUES (%s, %s, 'title', %s)",
                       (module_id, tenant.site_id, json.dumps("Hello")))
    return module_id, slug, schema


def base(tenant, module_id):
    return f"/api/sites/{tenant.site_id}/modules/{module_id}"


def test_export_holds_every_row_of_the_site_and_nothing_of_another_site(install, crm, tenant):
    module_id, slug, _ = crm
    reply = install.post(f"{base(tenant, module_id)}/export", user=tenant.admin)
    assert reply.status == 201
    assert reply.data["tables"] == {"companies": 1, "contacts": 2, "deal_notes": 0, "module_data": 1}
    stored = storage.s3_client().get_object(Bucket=get_settings().exports_bucket, Key=reply.data["key"])["Body"].read()
    downloaded = requests.get(reply.data["url"], timeout=10)
    assert downloaded.status_code == 200 and downloaded.content == stored
    archive = zipfile.ZipFile(io.BytesIO(stored))
    assert sorted(archive.namelist()) == ["companies.ndjson", "contacts.ndjson", "deal_notes.ndjson", "export.json",
                                          "module_data.ndjson"]
    contacts = [json.loads(line) for line in archive.read("contacts.ndjson").decode().splitlines()]
    assert sorted(c["email"] for c in contacts) == ["a@one.test", "b@one.test"]
    assert {c["site_id"] for c in contacts} == {str(tenant.site_id)}
    assert [json.loads(line)["value"] for line in archive.read("module_data.ndjson").decode().splitlines()] == ["Hello"]
    meta = json.loads(archive.read("export.json"))
    assert (meta["moduleSlug"], meta["version"], meta["siteId"]) == (slug, "1.0.0", str(tenant.site_id))


def test_export_is_for_managers_of_the_site_only(install, crm, tenant, other_tenant, owner_conn):
    module_id, _, _ = crm
    assert install.post(f"{base(tenant, module_id)}/export", user=tenant.member).status == 403
    assert install.post(f"{base(tenant, module_id)}/export", user=other_tenant.owner).body["code"] == "site_not_found"
    assert install.post(f"{base(tenant, uuid.uuid4())}/export", user=tenant.owner).body["code"] == \
        "installation_not_found"
    assert owner_conn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'installation.exported' "
                              "AND site_id = %s", (tenant.site_id,)).fetchone()["n"] == 0


def run_purger():
    return get_handler("purger")({"source": "aws.events", "detail-type": "Scheduled Event"}, LocalContext("purger"))


def test_purge_needs_the_owner_and_the_slug_then_waits_for_the_grace_period(install, crm, tenant, owner_conn, env):
    module_id, slug, schema = crm
    path = f"{base(tenant, module_id)}/purge"
    assert install.post(path, user=tenant.admin, body={"confirm": slug}).body["code"] == "forbidden"
    unconfirmed = install.post(path, user=tenant.owner, body={"confirm": "yes"})
    assert (unconfirmed.status, unconfirmed.body["code"]) == (400, "confirmation_required")
    assert slug in unconfirmed.body["error"]
    scheduled = install.post(path, user=tenant.owner, body={"confirm": slug})
    assert (scheduled.status, scheduled.data["status"], scheduled.data["isEnabled"]) == (202, "disabled", False)
    assert scheduled.data["purgeAfter"] is not None
    assert install.post(path, user=tenant.owner, body={"confirm": slug}).status == 200  # already pending
    assert run_purger()["purged"] == 0  # the grace period lasts
    assert owner_conn.execute(f"SELECT count(*) AS n FROM {schema}.contacts WHERE site_id = %s",
                              (tenant.site_id,)).fetchone()["n"] == 2
    reinstall = install.post(base(tenant, module_id), user=tenant.owner)
    assert (reinstall.status, reinstall.body["code"]) == (409, "purge_pending")
    undone = install.delete(path, user=tenant.owner)
    assert (undone.status, undone.data["purgeAfter"], undone.data["status"]) == (200, None, "disabled")
    assert install.delete(path, user=tenant.owner).body["code"] == "no_pending_purge"
    assert install.post(base(tenant, module_id), user=tenant.owner).data["status"] == "active"
    kinds = [r["event_type"] for r in owner_conn.execute(
        "SELECT event_type FROM automation_events_log WHERE site_id = %s AND event_type LIKE 'marketplace.module.%%' "
        "ORDER BY created_at", (tenant.site_id,)).fetchall()]
    assert kinds[-2:] == ["marketplace.module.uninstalled", "marketplace.module.installed"]


def test_after_the_grace_period_the_purger_deletes_only_that_sites_data(install, crm, tenant, other_tenant,
                                                                        owner_conn, env):
    module_id, slug, schema = crm
    env.set("DRAMAC_PURGE_GRACE_SECONDS", "0")
    assert install.post(f"{base(tenant, module_id)}/purge", user=tenant.owner, body={"confirm": slug}).status == 202
    assert install.delete(f"{base(tenant, module_id)}/purge", user=tenant.owner).body["code"] == "purge_due"
    assert run_purger() == {"due": 1, "purged": 1, "failed": 0}
    counts = owner_conn.execute(
        f"SELECT (SELECT array_agg(DISTINCT site_id) FROM {schema}.contacts) AS contacts, "
        f"(SELECT array_agg(DISTINCT site_id) FROM {schema}.companies) AS companies, "
        "(SELECT count(*) FROM module_data WHERE module_id = %s AND site_id = %s) AS storage, "
        "(SELECT count(*) FROM site_module_installations WHERE module_id = %s AND site_id = %s) AS installed",
        (module_id, tenant.site_id, module_id, tenant.site_id)).fetchone()
    assert counts == {"contacts": [other_tenant.site_id], "companies": [other_tenant.site_id], "storage": 0,
                      "installed": 0}
    [purged] = owner_conn.execute(
        "SELECT payload FROM automation_events_log WHERE site_id = %s AND event_type = 'marketplace.module.purged'",
        (tenant.site_id,)).fetchall()
    assert purged["payload"]["deleted"] == {"companies": 1, "contacts": 2, "deal_notes": 0, "module_data": 1}
    assert purged["payload"]["actor_id"] == str(tenant.owner)
    assert run_purger()["due"] == 0
    # the schema stays while another site has the module; the operator path drops it only after
    assert provisioner.run_job("deprovision", module_id).status == "failed"
    owner_conn.execute("DELETE FROM site_module_installations WHERE module_id = %s", (module_id,))
    assert provisioner.run_job("deprovision", module_id).detail == {"dropped": True}
    actions = [r["action"] for r in owner_conn.execute(
        "SELECT action FROM audit_log WHERE site_id = %s AND action LIKE 'installation.purge%%' ORDER BY id",
        (tenant.site_id,)).fetchall()]
    assert actions == ["installation.purge_requested", "installation.purged"]
