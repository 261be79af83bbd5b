"""Installing modules on sites through the real install handler, with the provision queue in moto
and its jobs run by the real provision handler."""

import asyncio
import copy
import threading
import uuid

import pytest
from dramac_common.core import db
from dramac_common.core.naming import get_module_schema_name
from dramac_common.installations import site_modules
from support.automation import listen
from support.aws import emulated_aws
from support.handlers import claims_for
from support.provision import ProvisionQueue

from dramac_dev.seed import CRM_MANIFEST

INSTALL_KEYS = {"id", "siteId", "agencyId", "moduleId", "slug", "moduleName", "status", "isEnabled", "is_enabled",
                "config", "error", "installedAt", "updatedAt", "installedVersion", "targetVersion", "latestVersion",
                "upgradeAvailable", "purgeAfter"}


@pytest.fixture
def provision_queue():
    with emulated_aws() as emulated:
        yield ProvisionQueue(emulated.sqs, emulated.urls["provision"], emulated.arn("provision"))


@pytest.fixture
def api(function_client, provision_queue):
    return function_client("install")


def path(site, module=None):
    return f"/api/sites/{site}/modules" + (f"/{module}" if module else "")


def subscribe(owner_conn, agency_id, module_id, status="active"):
    owner_conn.execute(
        "INSERT INTO agency_module_subscriptions (agency_id, module_id, status) VALUES (%s, %s, %s) "
        "ON CONFLICT (agency_id, module_id) DO UPDATE SET status = EXCLUDED.status", (agency_id, module_id, status))


@pytest.fixture
def crm(make_module, owner_conn, tenant):
    """A subscribed CRM-like app module (fresh id, fresh schema) for the tenant's agency."""
    def make(manifest=None, subscribed=True, **kw):
        module = make_module(module_id=uuid.uuid4(), module_type=kw.pop("module_type", "app"),
                             manifest=copy.deepcopy(manifest or CRM_MANIFEST), **kw)
        if subscribed:
            subscribe(owner_conn, tenant.agency_id, module)
        return module
    return make


def test_app_module_is_provisioned_then_polled_until_active(api, tenant, crm, provision_queue, owner_conn):
    module = crm()
    reply = api.post(path(tenant.site_id, module), user=tenant.owner, body={"config": {"pipeline": "sales"}})
    assert reply.status == 202
    assert set(reply.data) == INSTALL_KEYS
    assert (reply.data["status"], reply.data["isEnabled"], reply.data["config"]) == (
        "provisioning", True, {"pipeline": "sales"})
    assert api.get(path(tenant.site_id, module), user=tenant.member).data["status"] == "provisioning"
    assert provision_queue.drain() == 1
    polled = api.get(path(tenant.site_id, module), user=tenant.member)
    assert polled.status == 200
    assert (polled.data["status"], polled.data["error"], polled.data["id"]) == ("active", None, reply.data["id"])
    assert owner_conn.execute("SELECT to_regclass(%s) IS NOT NULL AS ok",
                              (f"{get_module_schema_name(module)}.contacts",)).fetchone()["ok"]


def test_widget_module_is_active_at_once_and_queues_nothing(api, tenant, crm, provision_queue):
    module = crm(module_type="widget")
    reply = api.post(path(tenant.site_id, module), user=tenant.admin)
    assert (reply.status, reply.data["status"]) == (201, "active")
    assert provision_queue.receive() == []


@pytest.mark.parametrize("manifest", [{"version": "1.0.0"}, {"version": "1.0.0", "database": {"tables": []}}])
def test_app_module_without_tables_is_active_at_once_and_queues_nothing(api, tenant, crm, provision_queue, manifest):
    reply = api.post(path(tenant.site_id, crm(manifest=manifest)), user=tenant.owner)
    assert (reply.status, reply.data["status"]) == (201, "active")
    assert provision_queue.receive() == []


def test_module_provisioned_at_the_manifest_version_is_active_at_once(api, tenant, make_tenant, crm,
                                                                      provision_queue, owner_conn):
    module = crm()
    api.post(path(tenant.site_id, module), user=tenant.owner)
    provision_queue.drain()
    second = make_tenant()
    subscribe(owner_conn, second.agency_id, module)
    reply = api.post(path(second.site_id, module), user=second.owner)
    assert (reply.status, reply.data["status"]) == (201, "active")
    assert provision_queue.receive() == []


def test_repeated_install_is_idempotent(api, tenant, crm, provision_queue):
    module = crm(module_type="integration")
    first = api.post(path(tenant.site_id, module), user=tenant.owner)
    second = api.post(path(tenant.site_id, module), user=tenant.owner)
    assert (first.status, second.status) == (201, 200)
    assert second.data["id"] == first.data["id"]
    assert second.data["installedAt"] == first.data["installedAt"]
    assert len(api.get(path(tenant.site_id), user=tenant.owner).data) == 1


def test_repeated_install_while_provisioning_queues_the_job_again(api, tenant, crm, provision_queue):
    module = crm()
    first = api.post(path(tenant.site_id, module), user=tenant.owner)
    second = api.post(path(tenant.site_id, module), user=tenant.owner)
    assert (first.status, second.status) == (202, 202)
    assert second.data["id"] == first.data["id"]
    assert provision_queue.drain() == 2  # the second job finds nothing left to do
    assert api.get(path(tenant.site_id, module), user=tenant.owner).data["status"] == "active"


def test_disabling_keeps_the_data_and_installing_again_re_enables_it(api, tenant, crm, provision_queue, owner_conn):
    module = crm()
    api.post(path(tenant.site_id, module), user=tenant.owner, body={"config": {"a": 1}})
    provision_queue.drain()
    contacts = f"{get_module_schema_name(module)}.contacts"
    owner_conn.execute(f"INSERT INTO {contacts} (site_id, email) VALUES (%s, 'kept@x.test')", (tenant.site_id,))
    disabled = api.delete(path(tenant.site_id, module), user=tenant.owner)
    assert disabled.status == 200
    assert (disabled.data["status"], disabled.data["isEnabled"], disabled.data["is_enabled"]) == (
        "disabled", False, False)
    assert api.delete(path(tenant.site_id, module), user=tenant.owner).status == 200  # idempotent
    reenabled = api.post(path(tenant.site_id, module), user=tenant.owner)
    assert (reenabled.status, reenabled.data["status"], reenabled.data["isEnabled"]) == (201, "active", True)
    assert (reenabled.data["id"], reenabled.data["config"]) == (disabled.data["id"], {"a": 1})
    assert provision_queue.receive() == []
    assert owner_conn.execute(f"SELECT email FROM {contacts}").fetchall() == [{"email": "kept@x.test"}]


@pytest.mark.parametrize("status", [None, "pending", "canceled", "past_due"])
def test_installing_without_an_active_subscription_is_402(api, tenant, crm, owner_conn, status):
    module = crm(subscribed=False)
    if status:
        subscribe(owner_conn, tenant.agency_id, module, status)
    reply = api.post(path(tenant.site_id, module), user=tenant.owner)
    assert (reply.status, reply.body["code"]) == (402, "subscription_required")
    assert api.get(path(tenant.site_id), user=tenant.owner).data == []


def test_missing_dependencies_are_409_and_named(api, tenant, crm, make_module, owner_conn, provision_queue):
    base = make_module(slug=f"base{uuid.uuid4().hex[:8]}", module_type="widget")
    subscribe(owner_conn, tenant.agency_id, base)
    slug = owner_conn.execute("SELECT slug FROM modules_v2 WHERE id = %s", (base,)).fetchone()["slug"]
    addon = crm(module_type="widget", manifest={"version": "1.0.0", "dependencies": [slug, "not-published"]})
    reply = api.post(path(tenant.site_id, addon), user=tenant.owner)
    assert (reply.status, reply.body["code"]) == (409, "missing_dependencies")
    assert reply.body["details"] == [{"slug": slug}, {"slug": "not-published"}]
    assert slug in reply.body["error"]
    api.post(path(tenant.site_id, base), user=tenant.owner)
    reply = api.post(path(tenant.site_id, addon), user=tenant.owner)
    assert reply.body["details"] == [{"slug": "not-published"}]


def test_a_dependency_in_use_cannot_be_disabled(api, tenant, crm, make_module, owner_conn):
    base = make_module(slug=f"base{uuid.uuid4().hex[:8]}", module_type="widget")
    subscribe(owner_conn, tenant.agency_id, base)
    slug = owner_conn.execute("SELECT slug FROM modules_v2 WHERE id = %s", (base,)).fetchone()["slug"]
    addon = crm(module_type="widget", manifest={"version": "1.0.0", "dependencies": [slug]})
    api.post(path(tenant.site_id, base), user=tenant.owner)
    api.post(path(tenant.site_id, addon), user=tenant.owner)
    reply = api.delete(path(tenant.site_id, base), user=tenant.owner)
    assert (reply.status, reply.body["code"]) == (409, "module_in_use")
    api.delete(path(tenant.site_id, addon), user=tenant.owner)
    assert api.delete(path(tenant.site_id, base), user=tenant.owner).status == 200


def test_member_cannot_install_or_disable_but_may_read(api, tenant, crm):
    module = crm(module_type="widget")
    denied = api.post(path(tenant.site_id, module), user=tenant.member)
    assert (denied.status, denied.body["code"]) == (403, "forbidden")
    api.post(path(tenant.site_id, module), user=tenant.owner)
    assert api.delete(path(tenant.site_id, module), user=tenant.member).status == 403
    listed = api.get(path(tenant.site_id), user=tenant.member)
    assert [(i["moduleId"], i["status"]) for i in listed.data] == [(str(module), "active")]


def test_another_agencys_site_is_404_for_every_route(api, tenant, other_tenant, crm, owner_conn):
    module = crm(module_type="widget")
    api.post(path(tenant.site_id, module), user=tenant.owner)
    subscribe(owner_conn, other_tenant.agency_id, module)
    for reply in (api.post(path(tenant.site_id, module), user=other_tenant.owner),
                  api.get(path(tenant.site_id, module), user=other_tenant.owner),
                  api.get(path(tenant.site_id), user=other_tenant.owner),
                  api.delete(path(tenant.site_id, module), user=other_tenant.owner)):
        assert (reply.status, reply.body["code"]) == (404, "site_not_found")
    assert api.get(path(tenant.site_id, module), user=tenant.owner).data["status"] == "active"


def test_unknown_or_unpublished_module_is_404(api, tenant, crm):
    assert api.post(path(tenant.site_id, uuid.uuid4()), user=tenant.owner).body["code"] == "module_not_found"
    draft = crm(module_type="widget", status="draft")
    assert api.post(path(tenant.site_id, draft), user=tenant.owner).status == 404


def test_not_installed_is_404(api, tenant, crm):
    module = crm(module_type="widget")
    for reply in (api.get(path(tenant.site_id, module), user=tenant.owner),
                  api.delete(path(tenant.site_id, module), user=tenant.owner)):
        assert (reply.status, reply.body["code"]) == (404, "installation_not_found")


def test_a_module_with_an_invalid_manifest_cannot_be_installed(api, tenant, crm):
    bad = copy.deepcopy(CRM_MANIFEST)
    bad["database"]["tables"][0]["columns"][0]["type"] = "text; DROP TABLE public.sites"
    module = crm(manifest=bad)
    reply = api.post(path(tenant.site_id, module), user=tenant.owner)
    assert (reply.status, reply.body["code"]) == (409, "invalid_manifest")
    assert "table companies, column name" in reply.body["error"]


def test_malformed_input_is_400(api, tenant, crm):
    module = crm(module_type="widget")
    assert api.post(f"/api/sites/not-a-uuid/modules/{module}", user=tenant.owner).status == 400
    assert api.post(path(tenant.site_id, module), user=tenant.owner, body={"config": "x"}).status == 400
    assert api.post(path(tenant.site_id, module), user=tenant.owner, raw_body="{",
                    headers={"content-type": "application/json"}).body["code"] == "invalid_json"
    assert api.get(path(tenant.site_id)).status == 401


def test_a_failed_installation_is_retried_by_installing_again(api, tenant, crm, provision_queue, owner_conn):
    module = crm()
    api.post(path(tenant.site_id, module), user=tenant.owner)
    owner_conn.execute("UPDATE site_module_installations SET status = 'failed', error = 'boom' WHERE module_id = %s",
                       (module,))
    reply = api.post(path(tenant.site_id, module), user=tenant.owner)
    assert (reply.status, reply.data["status"], reply.data["error"]) == (202, "provisioning", None)
    provision_queue.drain()
    assert api.get(path(tenant.site_id, module), user=tenant.owner).data["status"] == "active"


def test_twenty_concurrent_installs_on_twenty_sites_give_one_schema_and_twenty_active_installations(
        function_client, provision_queue, make_tenant, make_module, owner_conn, env):

    env.set("DRAMAC_DB_POOL_MAX", "20")
    db.close_pool()
    api = function_client("install")
    module = make_module(module_id=uuid.uuid4(), module_type="app", manifest=copy.deepcopy(CRM_MANIFEST))
    tenants = [make_tenant() for _ in range(20)]
    for t in tenants:
        subscribe(owner_conn, t.agency_id, module)
    replies = []

    def install(t):
        asyncio.set_event_loop(asyncio.new_event_loop())  # as Lambda gives each handler thread
        replies.append(api.post(path(t.site_id, module), user=t.owner))

    threads = [threading.Thread(target=install, args=(t,)) for t in tenants]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in replies) == [202] * 20
    assert provision_queue.drain(concurrent=True) == 20
    schema = get_module_schema_name(module)
    assert owner_conn.execute("SELECT count(*) AS n FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()["n"] == 1
    assert owner_conn.execute("SELECT count(*) AS n FROM module_database_registry WHERE module_id = %s",
                              (module,)).fetchone()["n"] == 1
    statuses = owner_conn.execute("SELECT status, count(*) AS n FROM site_module_installations WHERE module_id = %s "
                                  "GROUP BY status", (module,)).fetchall()
    assert statuses == [{"status": "active", "n": 20}]
    env.unset("DRAMAC_DB_POOL_MAX")
    db.close_pool()


def test_guards_report_enabled_modules_of_a_site(api, tenant, other_tenant, crm, owner_conn):
    module = crm(module_type="widget")
    slug = owner_conn.execute("SELECT slug FROM modules_v2 WHERE id = %s", (module,)).fetchone()["slug"]
    api.post(path(tenant.site_id, module), user=tenant.owner)
    with db.user_unit(claims_for(tenant.member)) as unit:
        assert slug in site_modules.get_site_enabled_modules(unit, tenant.site_id)
        assert site_modules.is_module_enabled_for_site(unit, tenant.site_id, slug)
        assert site_modules.is_module_enabled_for_site(unit, tenant.site_id, module)
        assert site_modules.is_module_enabled_for_site(unit, tenant.site_id, str(module))
        assert not site_modules.is_module_enabled_for_site(unit, tenant.site_id, "nope")
    with db.user_unit(claims_for(other_tenant.owner)) as unit:  # another agency sees nothing
        assert site_modules.get_site_enabled_modules(unit, tenant.site_id) == set()
        assert not site_modules.is_module_enabled_for_site(unit, tenant.site_id, slug)
    api.delete(path(tenant.site_id, module), user=tenant.owner)
    with db.user_unit(claims_for(tenant.member)) as unit:
        assert not site_modules.is_module_enabled_for_site(unit, tenant.site_id, slug)


# Lifecycle events (marketplace.module.*) and the audit trail -----------------------------------------

def lifecycle_events(owner_conn, site_id, module_id):
    return owner_conn.execute(
        "SELECT event_type, payload, source_entity_id FROM automation_events_log "
        "WHERE site_id = %s AND event_type LIKE 'marketplace.module.%%' AND payload ->> 'module_id' = %s "
        "ORDER BY created_at, event_type", (site_id, str(module_id))).fetchall()


def audit_actions(owner_conn, site_id):
    return [r["action"] for r in owner_conn.execute(
        "SELECT action FROM audit_log WHERE site_id = %s ORDER BY id", (site_id,)).fetchall()]


def test_install_disable_and_re_enable_emit_one_event_each_with_site_module_version_and_actor(
        api, tenant, crm, owner_conn):
    from dramac_common.installations.lifecycle import PAYLOAD_KEYS

    module = crm(module_type="widget")
    installed = api.post(path(tenant.site_id, module), user=tenant.admin)
    api.post(path(tenant.site_id, module), user=tenant.admin)  # already active: no event
    api.delete(path(tenant.site_id, module), user=tenant.owner)
    api.delete(path(tenant.site_id, module), user=tenant.owner)  # already disabled: no event
    api.post(path(tenant.site_id, module), user=tenant.owner)
    events = lifecycle_events(owner_conn, tenant.site_id, module)
    assert [e["event_type"] for e in events] == ["marketplace.module.installed", "marketplace.module.disabled",
                                                  "marketplace.module.installed"]
    first = events[0]["payload"]
    assert set(first) == PAYLOAD_KEYS
    assert (first["site_id"], first["module_id"], first["version"], first["actor_id"], first["installation_id"],
            first["previous_status"]) == (str(tenant.site_id), str(module), "1.0.0", str(tenant.admin),
                                          installed.data["id"], None)
    assert [(e["payload"]["actor_id"], e["payload"]["previous_status"]) for e in events[1:]] == [
        (str(tenant.owner), "active"), (str(tenant.owner), "disabled")]
    assert audit_actions(owner_conn, tenant.site_id) == ["installation.created", "installation.disabled",
                                                          "installation.enabled"]


def test_a_provisioned_installation_emits_installed_when_the_provisioner_activates_it(
        api, tenant, crm, provision_queue, owner_conn):
    module = crm()
    api.post(path(tenant.site_id, module), user=tenant.admin)
    assert lifecycle_events(owner_conn, tenant.site_id, module) == []  # provisioning: not installed yet
    provision_queue.drain()
    provision_queue.drain()  # a redelivered job activates nothing and emits nothing
    events = lifecycle_events(owner_conn, tenant.site_id, module)
    assert [e["event_type"] for e in events] == ["marketplace.module.installed"]
    assert (events[0]["payload"]["actor_id"], events[0]["payload"]["version"],
            events[0]["payload"]["previous_status"]) == (str(tenant.admin), "1.0.0", "provisioning")


@pytest.fixture
def sent_events(monkeypatch):
    """The event ids handed to the events queue."""
    from dramac_common.core import queues

    sent: list[str] = []
    real_send = queues.send_messages

    def send(logical, bodies):
        if logical == queues.EVENTS:
            sent.extend(b["eventId"] for b in bodies if "eventId" in b)
        return real_send(logical, bodies)
    monkeypatch.setattr(queues, "send_messages", send)
    return sent


def lifecycle_event_marks(owner_conn, site_id, module_id):
    return owner_conn.execute(
        "SELECT id::text, dispatched_at IS NOT NULL AS marked FROM automation_events_log "
        "WHERE site_id = %s AND event_type = 'marketplace.module.installed' AND payload ->> 'module_id' = %s",
        (site_id, str(module_id))).fetchall()


@pytest.mark.parametrize("listening", [True, False])
def test_the_installed_event_is_sent_only_when_a_workflow_listens(api, tenant, crm, owner_conn, sent_events,
                                                                  listening):
    if listening:
        listen(owner_conn, tenant.site_id, "marketplace.module.installed")
    module = crm(module_type="widget")
    assert api.post(path(tenant.site_id, module), user=tenant.admin).status == 201
    [event] = lifecycle_event_marks(owner_conn, tenant.site_id, module)
    assert event["marked"] is not listening  # unheard: marked received at insert
    assert sent_events == ([event["id"]] if listening else [])


@pytest.mark.parametrize("listening", [True, False])
def test_the_disabled_event_is_sent_only_when_a_workflow_listens(api, tenant, crm, owner_conn, sent_events,
                                                                 listening):
    """A platform event written one at a time (``lifecycle.emit``, through private.log_platform_event)."""
    module = crm(module_type="widget")
    assert api.post(path(tenant.site_id, module), user=tenant.admin).status == 201
    if listening:
        listen(owner_conn, tenant.site_id, "marketplace.module.disabled")
    sent_events.clear()
    assert api.delete(path(tenant.site_id, module), user=tenant.owner).status == 200
    [event] = owner_conn.execute(
        "SELECT id::text, dispatched_at IS NOT NULL AS marked FROM automation_events_log "
        "WHERE site_id = %s AND event_type = 'marketplace.module.disabled' AND payload ->> 'module_id' = %s",
        (tenant.site_id, str(module))).fetchall()
    assert event["marked"] is not listening
    assert sent_events == ([event["id"]] if listening else [])


@pytest.mark.parametrize("listening", [True, False])
def test_the_provisioners_installed_event_is_sent_only_when_a_workflow_listens(
        api, tenant, crm, provision_queue, owner_conn, sent_events, listening):
    if listening:
        listen(owner_conn, tenant.site_id, "marketplace.module.installed")
    module = crm()
    api.post(path(tenant.site_id, module), user=tenant.admin)
    provision_queue.drain()
    [event] = lifecycle_event_marks(owner_conn, tenant.site_id, module)
    assert event["marked"] is not listening
    assert sent_events == ([event["id"]] if listening else [])


def test_a_refused_install_emits_nothing_and_audits_nothing(api, tenant, crm, owner_conn):
    module = crm(module_type="widget", subscribed=False)
    assert api.post(path(tenant.site_id, module), user=tenant.owner).status == 402
    assert api.post(path(tenant.site_id, module), user=tenant.member).status == 403
    assert lifecycle_events(owner_conn, tenant.site_id, module) == []
    assert audit_actions(owner_conn, tenant.site_id) == []
