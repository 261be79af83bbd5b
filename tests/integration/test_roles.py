"""The seed's five roles (docs/roles.md), route by route, through the real handlers on real PostgreSQL,
and the same rules met directly as ``authenticated`` (row-level security)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from dramac_common.core import db
from support.concurrency import fire
from support.handlers import claims_for
from support.modules import CRM_MANIFEST, install_module, make_crm

ROLES = ("owner", "admin", "member", "client_user")


def user_of(tenant, role):
    return getattr(tenant, role)


@pytest.fixture
def fn(function_client):
    clients: dict[str, object] = {}

    def get(name):
        if name not in clients:
            clients[name] = function_client(name)
        return clients[name]

    return get


@pytest.fixture
def parallel_pool(database_url, env):
    """A pool wide enough for two overlapping transactions (two Lambda containers)."""
    env.set("DRAMAC_DB_POOL_MAX", "6")
    db.close_pool()
    yield
    db.close_pool()


@pytest.fixture
def super_admin(make_user):
    return make_user(super_admin=True)


# -- billing is the owner's ------------------------------------------------------------------------

@pytest.mark.parametrize("role, expected", [("owner", 201), ("admin", 403), ("member", 403), ("client_user", 404)])
def test_only_an_owner_subscribes_the_agency(fn, tenant, make_module, role, expected):
    reply = fn("subscribe").post("/api/modules/subscribe", user=user_of(tenant, role),
                                 body={"agencyId": str(tenant.agency_id), "moduleId": str(make_module())})
    assert reply.status == expected, reply.body


def test_a_super_admin_may_subscribe_an_agency(fn, tenant, make_module, super_admin):
    reply = fn("subscribe").post("/api/modules/subscribe", user=super_admin,
                                 body={"agencyId": str(tenant.agency_id), "moduleId": str(make_module())})
    assert reply.status == 201, reply.body


@pytest.mark.parametrize("role, expected", [("owner", 201), ("admin", 403), ("member", 403), ("client_user", 404)])
def test_only_an_owner_purchases(fn, tenant, make_module, sandbox_aws, role, expected):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1000)
    reply = fn("purchase").post(f"/api/modules/{module}/purchase", user=user_of(tenant, role),
                                body={"agencyId": str(tenant.agency_id), "billingCycle": "monthly"})
    assert reply.status == expected, reply.body


@pytest.mark.parametrize("role, expected", [("owner", 200), ("admin", 403), ("member", 403), ("client_user", 404)])
def test_only_an_owner_changes_a_markup(fn, tenant, make_module, owner_conn, role, expected):
    sub = owner_conn.execute(
        "INSERT INTO agency_module_subscriptions (agency_id, module_id, status, wholesale_price_cents) "
        "VALUES (%s, %s, 'active', 1000) RETURNING id", (tenant.agency_id, make_module())).fetchone()["id"]
    reply = fn("purchase").patch(f"/api/agencies/{tenant.agency_id}/subscriptions/{sub}", user=user_of(tenant, role),
                                 body={"markupType": "percentage", "markupValue": 25})
    assert reply.status == expected, reply.body


@pytest.mark.parametrize("role, expected", [("owner", 200), ("admin", 200), ("member", 200), ("client_user", 404)])
def test_the_team_reads_the_subscriptions(fn, tenant, role, expected):
    reply = fn("purchase").get(f"/api/agencies/{tenant.agency_id}/subscriptions", user=user_of(tenant, role))
    assert reply.status == expected, reply.body


@pytest.mark.parametrize("role, expected", [("owner", 200), ("admin", 200), ("member", 200), ("client_user", 403)])
def test_client_users_do_not_see_the_catalogue(fn, tenant, make_module, role, expected):
    make_module()
    reply = fn("subscribe").get("/api/modules", user=user_of(tenant, role))
    assert reply.status == expected, reply.body


def test_an_admin_cannot_write_subscriptions_even_through_the_write_path(tenant, make_module):
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_unit(claims_for(tenant.admin)) as unit:
        unit.call_write_path("subscribe_free_module", tenant.agency_id, make_module())


def test_a_client_user_reads_no_catalogue_row(tenant, make_module):
    make_module()
    with db.user_unit(claims_for(tenant.client_user)) as unit:
        assert unit.fetchall("SELECT id FROM public.modules_v2") == []


# -- member management is the owner's --------------------------------------------------------------

def members_path(t, user=None):
    return f"/api/agencies/{t.agency_id}/members" + (f"/{user}" if user else "")


@pytest.mark.parametrize("role, expected", [("owner", 200), ("admin", 200), ("member", 200), ("client_user", 404)])
def test_the_team_lists_the_agencys_people(fn, tenant, role, expected):
    reply = fn("agencies").get(members_path(tenant), user=user_of(tenant, role))
    assert reply.status == expected, reply.body
    if expected == 200:
        people = {p["userId"]: p for p in reply.data}
        assert people[str(tenant.owner)]["role"] == "owner"
        assert people[str(tenant.client_user)] | {"createdAt": None} == {
            **people[str(tenant.client_user)], "role": "client", "clientId": str(tenant.client_id), "createdAt": None}


@pytest.mark.parametrize("role, expected", [("owner", 201), ("admin", 403), ("member", 403), ("client_user", 404)])
def test_only_an_owner_adds_people(fn, tenant, make_user, role, expected):
    newcomer = make_user(email=f"new-{uuid.uuid4().hex[:8]}@example.test")
    reply = fn("agencies").post(members_path(tenant), user=user_of(tenant, role),
                                body={"userId": str(newcomer), "role": "member"})
    assert reply.status == expected, reply.body


def test_an_owner_adds_by_email_and_a_repeat_changes_nothing(fn, tenant, make_user, owner_conn):
    newcomer = make_user(email="Casey@Example.test")
    first = fn("agencies").post(members_path(tenant), user=tenant.owner, body={"email": "casey@example.test",
                                                                              "role": "admin"})
    again = fn("agencies").post(members_path(tenant), user=tenant.owner, body={"email": "casey@example.test",
                                                                              "role": "admin"})
    assert (first.status, again.status) == (201, 200), (first.body, again.body)
    assert first.data["userId"] == str(newcomer) and first.data["role"] == "admin"
    actions = [r["action"] for r in owner_conn.execute(
        "SELECT action FROM audit_log WHERE agency_id = %s AND target_id = %s", (tenant.agency_id, str(newcomer)))]
    assert actions == ["member.added"]


def test_adding_an_unknown_user_or_a_client_of_another_agency_is_refused(fn, tenant, other_tenant, make_user):
    unknown = fn("agencies").post(members_path(tenant), user=tenant.owner,
                                  body={"email": "nobody@example.test", "role": "member"})
    assert (unknown.status, unknown.body["code"]) == (404, "user_not_found")
    foreign = fn("agencies").post(members_path(tenant), user=tenant.owner,
                                  body={"userId": str(make_user()), "role": "client",
                                        "clientId": str(other_tenant.client_id)})
    assert (foreign.status, foreign.body["code"]) == (404, "client_not_found")
    missing = fn("agencies").post(members_path(tenant), user=tenant.owner,
                                  body={"userId": str(make_user()), "role": "client"})
    assert (missing.status, missing.body["code"]) == (400, "client_required")


@pytest.mark.parametrize("role, expected", [("owner", 200), ("admin", 403), ("member", 403), ("client_user", 404)])
def test_only_an_owner_changes_a_role(fn, tenant, role, expected):
    reply = fn("agencies").patch(members_path(tenant, tenant.member), user=user_of(tenant, role),
                                 body={"role": "admin"})
    assert reply.status == expected, reply.body


@pytest.mark.parametrize("role, expected", [("owner", 200), ("admin", 403), ("member", 403), ("client_user", 404)])
def test_only_an_owner_removes_people(fn, tenant, role, expected):
    reply = fn("agencies").delete(members_path(tenant, tenant.member), user=user_of(tenant, role))
    assert reply.status == expected, reply.body


def test_a_member_becomes_a_client_user_and_back(fn, tenant):
    to_client = fn("agencies").patch(members_path(tenant, tenant.member), user=tenant.owner,
                                     body={"role": "client", "clientId": str(tenant.client_id)})
    assert to_client.status == 200 and to_client.data["role"] == "client", to_client.body
    installs = fn("install").get(f"/api/sites/{tenant.site_id}/modules", user=tenant.member)
    assert installs.status == 403, installs.body
    back = fn("agencies").patch(members_path(tenant, tenant.member), user=tenant.owner, body={"role": "member"})
    assert back.status == 200 and back.data == {**back.data, "role": "member", "clientId": None}


def test_the_last_owner_can_be_neither_demoted_nor_removed(fn, tenant, owner_conn):
    demote = fn("agencies").patch(members_path(tenant, tenant.owner), user=tenant.owner, body={"role": "admin"})
    remove = fn("agencies").delete(members_path(tenant, tenant.owner), user=tenant.owner)
    assert (demote.status, demote.body["code"], remove.status, remove.body["code"]) == \
        (409, "last_owner", 409, "last_owner")
    role = owner_conn.execute("SELECT role FROM agency_members WHERE agency_id = %s AND user_id = %s",
                              (tenant.agency_id, tenant.owner)).fetchone()["role"]
    assert role == "owner"


def test_two_owners_demoting_each_other_at_once_leave_one_owner(fn, tenant, owner_conn, parallel_pool):
    """Changes to one agency's people are serialized before the caller's ownership is checked: the one
    who comes second is no owner any more (403), whoever it is and however the two interleave."""
    owner_conn.execute("UPDATE agency_members SET role = 'owner' WHERE agency_id = %s AND user_id = %s",
                       (tenant.agency_id, tenant.admin))
    pairs = [(tenant.owner, tenant.admin), (tenant.admin, tenant.owner)]
    replies = fire(2, lambda i: fn("agencies").patch(members_path(tenant, pairs[i][1]), user=pairs[i][0],
                                                     body={"role": "member"}))
    assert sorted((r.status, r.body.get("code")) for r in replies) == [(200, None), (403, "forbidden")], \
        [r.body for r in replies]
    owners = owner_conn.execute("SELECT count(*) AS n FROM agency_members WHERE agency_id = %s AND role = 'owner'",
                                (tenant.agency_id,)).fetchone()["n"]
    assert owners == 1


def test_twin_additions_add_once(fn, tenant, make_user, owner_conn, parallel_pool):
    newcomer = make_user()
    replies = fire(2, lambda _: fn("agencies").post(members_path(tenant), user=tenant.owner,
                                                    body={"userId": str(newcomer), "role": "member"}))
    assert sorted(r.status for r in replies) == [200, 201], [r.body for r in replies]
    assert owner_conn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'member.added' AND target_id = %s",
                              (str(newcomer),)).fetchone()["n"] == 1


def test_an_admin_cannot_write_members_directly_and_the_last_owner_holds_in_sql(tenant):
    with db.user_unit(claims_for(tenant.admin)) as unit:
        changed = unit.execute("UPDATE public.agency_members SET role = 'owner' WHERE user_id = %s",
                               (tenant.admin,)).rowcount
    assert changed == 0
    with pytest.raises(psycopg.errors.CheckViolation), db.user_unit(claims_for(tenant.owner)) as unit:
        unit.execute("DELETE FROM public.agency_members WHERE user_id = %s AND agency_id = %s",
                     (tenant.owner, tenant.agency_id))


def test_deleting_an_agency_takes_its_last_owner_with_it(tenant, owner_conn):
    owner_conn.execute("DELETE FROM agencies WHERE id = %s", (tenant.agency_id,))
    assert owner_conn.execute("SELECT count(*) AS n FROM agency_members WHERE agency_id = %s",
                              (tenant.agency_id,)).fetchone()["n"] == 0


# -- client users: their client's sites, and of them only module data ------------------------------

@pytest.fixture
def crm(owner_conn, make_module, tenant, other_tenant, aws):
    return make_crm(owner_conn, make_module, tenant, other_tenant)


@pytest.fixture
def other_client_site(owner_conn, tenant, crm):
    """A site of another client of the same agency, with the CRM installed."""
    from dramac_dev import seed

    site = seed.create_site(owner_conn, tenant.agency_id, client_id=seed.create_client(owner_conn, tenant.agency_id))
    install_module(owner_conn, site_id=site, agency_id=tenant.agency_id, module_id=crm[0])
    return site


def contacts(site, module, row=None):
    return f"/api/sites/{site}/modules/{module}/data/contacts" + (f"/{row}" if row else "")


def add_contact(fn, tenant, module, email="c@example.test"):
    reply = fn("module_api").post(contacts(tenant.site_id, module), user=tenant.owner, body={"email": email})
    assert reply.status == 201, reply.body
    return reply.data


@pytest.mark.parametrize("role, read, write", [("owner", 200, 201), ("admin", 200, 201), ("member", 200, 201),
                                               ("client_user", 200, 403)])
def test_module_data_by_role(fn, tenant, crm, role, read, write):
    _, slug = crm
    add_contact(fn, tenant, slug)
    listed = fn("module_api").get(contacts(tenant.site_id, slug), user=user_of(tenant, role))
    created = fn("module_api").post(contacts(tenant.site_id, slug), user=user_of(tenant, role),
                                    body={"email": f"{role}@example.test"})
    assert (listed.status, created.status) == (read, write), (listed.body, created.body)
    if read == 200:
        assert listed.data[0]["email"] == "c@example.test"


def test_a_client_user_sees_only_its_clients_sites(fn, tenant, other_tenant, crm, other_client_site):
    _, slug = crm
    mine = fn("module_api").get(contacts(tenant.site_id, slug), user=tenant.client_user)
    sibling = fn("module_api").get(contacts(other_client_site, slug), user=tenant.client_user)
    foreign = fn("module_api").get(contacts(other_tenant.site_id, slug), user=tenant.client_user)
    assert (mine.status, sibling.status, foreign.status) == (200, 404, 404)
    with db.user_unit(claims_for(tenant.client_user)) as unit:
        sites = {r["id"] for r in unit.fetchall("SELECT id FROM public.sites")}
        clients = {r["id"] for r in unit.fetchall("SELECT id FROM public.clients")}
        members = unit.fetchall("SELECT user_id FROM public.agency_members")
    assert (sites, clients, members) == ({tenant.site_id}, {tenant.client_id}, [])


@pytest.mark.parametrize("route", [
    ("GET", "install", "/api/sites/{site}/modules"),
    ("POST", "install", "/api/sites/{site}/modules/{module}"),
    ("GET", "module_api", "/api/sites/{site}/api-keys"),
    ("POST", "module_api", "/api/sites/{site}/api-keys"),
    ("GET", "automation", "/api/sites/{site}/automation/workflows"),
    ("GET", "automation", "/api/sites/{site}/automation/executions"),
    ("GET", "automation", "/api/sites/{site}/automation/event-types"),
    ("POST", "automation", "/api/sites/{site}/automation/events"),
])
def test_a_client_user_gets_nothing_of_installs_keys_or_automation(fn, tenant, crm, route):
    method, function, path = route
    body = {"eventType": "crm.contact.created", "payload": {}} if path.endswith("/events") else {}
    reply = fn(function).request(method, path.format(site=tenant.site_id, module=crm[0]), user=tenant.client_user,
                                 body=None if method == "GET" else body)
    assert reply.status == 403, reply.body


def test_a_modules_client_access_decides_what_client_users_may_do(fn, owner_conn, make_module, tenant, aws):
    _, writable = make_crm(owner_conn, make_module, tenant, manifest={**CRM_MANIFEST, "clientAccess": "write"})
    _, hidden = make_crm(owner_conn, make_module, tenant, manifest={**CRM_MANIFEST, "clientAccess": "none"})
    created = fn("module_api").post(contacts(tenant.site_id, writable), user=tenant.client_user,
                                    body={"email": "client@example.test"})
    assert created.status == 201, created.body
    patched = fn("module_api").patch(contacts(tenant.site_id, writable, created.data["id"]), user=tenant.client_user,
                                     body={"first_name": "Kim"})
    assert patched.status == 200, patched.body
    add_contact(fn, tenant, hidden)
    not_there = fn("module_api").get(contacts(tenant.site_id, hidden), user=tenant.client_user)
    assert (not_there.status, not_there.body["code"]) == (404, "module_not_installed")
    with db.user_unit(claims_for(tenant.client_user)) as unit:
        schema = owner_conn.execute("SELECT r.schema_name FROM module_database_registry r JOIN modules_v2 m "
                                    "ON m.id = r.module_id WHERE m.slug = %s", (hidden,)).fetchone()["schema_name"]
        rows = unit.fetchall(psycopg.sql.SQL("SELECT id FROM {}.contacts").format(psycopg.sql.Identifier(schema)))
    assert rows == []


def test_a_client_user_cannot_write_a_read_only_module_directly(fn, tenant, crm, owner_conn):
    schema = owner_conn.execute("SELECT schema_name FROM module_database_registry WHERE module_id = %s",
                                (crm[0],)).fetchone()["schema_name"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_unit(claims_for(tenant.client_user)) as unit:
        unit.execute(psycopg.sql.SQL("INSERT INTO {}.contacts (site_id, email) VALUES (%s, 'x@example.test')").format(
            psycopg.sql.Identifier(schema)), (tenant.site_id,))


def test_client_access_is_validated_in_the_manifest():
    from dramac_common.provisioning.errors import ManifestError
    from dramac_common.provisioning.manifest import validate_manifest

    with pytest.raises(ManifestError, match="clientAccess"):
        validate_manifest({**CRM_MANIFEST, "clientAccess": "everything"})
    assert validate_manifest({**CRM_MANIFEST, "clientAccess": "write"})


# -- super admins read module data of every site, audited ------------------------------------------

def test_a_super_admin_reads_any_sites_module_data_and_the_read_is_audited(fn, tenant, crm, super_admin, owner_conn):
    _, slug = crm
    row = add_contact(fn, tenant, slug, email="support@example.test")
    listed = fn("module_api").get(contacts(tenant.site_id, slug), user=super_admin)
    one = fn("module_api").get(contacts(tenant.site_id, slug, row["id"]), user=super_admin)
    assert (listed.status, one.status) == (200, 200), (listed.body, one.body)
    assert [r["email"] for r in listed.data] == ["support@example.test"]
    audited = owner_conn.execute(
        "SELECT actor_user_id, actor_role, agency_id, site_id, target_id FROM audit_log "
        "WHERE action = 'module_data.read' AND site_id = %s ORDER BY id", (tenant.site_id,)).fetchall()
    assert audited == [{"actor_user_id": super_admin, "actor_role": "super_admin", "agency_id": tenant.agency_id,
                        "site_id": tenant.site_id, "target_id": str(crm[0])}] * 2
    # the agency's owners see who read their data
    with db.user_unit(claims_for(tenant.owner)) as unit:
        assert len(unit.fetchall("SELECT id FROM public.audit_log WHERE action = 'module_data.read' AND site_id = %s",
                                 (tenant.site_id,))) == 2


def test_a_super_admin_writes_no_module_data(fn, tenant, crm, super_admin, owner_conn):
    _, slug = crm
    reply = fn("module_api").post(contacts(tenant.site_id, slug), user=super_admin, body={"email": "sa@example.test"})
    assert reply.status == 403, reply.body


def test_an_agency_users_reads_are_not_audited(fn, tenant, crm, owner_conn):
    fn("module_api").get(contacts(tenant.site_id, crm[1]), user=tenant.member)
    assert owner_conn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'module_data.read' AND site_id = %s",
                              (tenant.site_id,)).fetchone()["n"] == 0


@pytest.mark.parametrize("access, read, write", [(None, 200, 403), ("write", 200, 200), ("none", 404, 404)])
def test_widget_storage_follows_client_access(fn, owner_conn, make_module, tenant, access, read, write):
    module_id = make_module(module_type="widget", manifest={"clientAccess": access} if access else {})
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=module_id)
    base = f"/api/sites/{tenant.site_id}/modules/{module_id}/storage"
    assert fn("module_api").request("PUT", f"{base}/title", user=tenant.owner, body={"value": "Hi"}).status == 200
    got = fn("module_api").get(f"{base}/title", user=tenant.client_user)
    put = fn("module_api").request("PUT", f"{base}/title", user=tenant.client_user, body={"value": "Client"})
    assert (got.status, put.status) == (read, write), (got.body, put.body)
    with db.user_unit(claims_for(tenant.client_user)) as unit:
        visible = unit.fetchall("SELECT value FROM public.module_data WHERE module_id = %s", (module_id,))
        changed = unit.execute("UPDATE public.module_data SET value = '\"sql\"' WHERE module_id = %s",
                               (module_id,)).rowcount
    assert (len(visible), changed) == ((0 if access == "none" else 1), (1 if access == "write" else 0))


def test_a_role_change_racing_a_removal_never_brings_the_person_back(fn, tenant, owner_conn, database_url):
    """The member is removed while the role change waits on the agency's lock (the removal holds it):
    the change answers 404 and the person stays out, instead of the upsert giving them a role again."""
    import threading
    import time

    replies: list = []
    with psycopg.connect(database_url) as remover:  # one transaction: the removal, held open
        remover.execute("SELECT 1 FROM agencies WHERE id = %s FOR UPDATE", (tenant.agency_id,))
        remover.execute("DELETE FROM agency_members WHERE agency_id = %s AND user_id = %s",
                        (tenant.agency_id, tenant.member))
        change = threading.Thread(target=lambda: replies.append(fn("agencies").patch(
            members_path(tenant, tenant.member), user=tenant.owner, body={"role": "admin"})))
        change.start()
        for _ in range(500):  # until the change waits on the removal's lock
            if owner_conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'").fetchone()["n"]:
                break
            time.sleep(0.01)
        remover.commit()
    change.join(30)
    [reply] = replies
    assert (reply.status, reply.body.get("code")) == (404, "member_not_found"), reply.body
    assert owner_conn.execute("SELECT count(*) AS n FROM agency_members WHERE agency_id = %s AND user_id = %s",
                              (tenant.agency_id, tenant.member)).fetchone()["n"] == 0
