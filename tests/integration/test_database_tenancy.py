"""Tenancy enforced by the database itself, through the request roles as a Supabase deployment exposes
them (``anon``; ``authenticated`` with a user's claims, or with the claims the shared layer gives a
site API key): what the HTTP layer also checks must hold without it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from dramac_common.core import db
from psycopg import sql
from support.handlers import claims_for
from support.modules import make_crm


@contextmanager
def as_role(database_url: str, role: str, claims: dict | None = None) -> Iterator[psycopg.Connection]:
    """A transaction as ``role`` (with ``claims`` as PostgREST would set them), rolled back at the end."""
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims or {}),))
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        try:
            yield conn
        finally:
            conn.rollback()


def key_claims(site_id: uuid.UUID, modules: list[str] | None) -> dict:
    """What ``core.auth.SiteApiKey.db_claims`` hands the database for a verified key."""
    return {"role": "site_api_key", "site_id": str(site_id), "sub": None, "key_id": str(uuid.uuid4()),
            "modules": modules, "created_by": None}


# The migration ledger and the service-only helpers -----------------------------------------------------

@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("statement", [
    "SELECT version FROM public.schema_migrations",
    "INSERT INTO public.schema_migrations (version, name, checksum) VALUES ('9999', '9999_x.sql', 'x')",
    "DELETE FROM public.schema_migrations",
])
def test_request_roles_neither_read_nor_write_the_migration_ledger(database_url, tenant, role, statement):
    with as_role(database_url, role, claims_for(tenant.owner)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_a_new_ledger_is_created_locked(server_url):
    """The runner creates its ledger with RLS on and no request-role grant, even where default
    privileges would hand new tables to anon and authenticated (as on Supabase)."""
    from dramac_common.core.migrate import _CREATE_LEDGER

    from dramac_dev import localdb

    name, url = localdb.create_database(server_url, prefix="dramac_ledger")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_CREATE_LEDGER)
            row = conn.execute(
                "SELECT c.relrowsecurity, has_table_privilege('anon', c.oid, 'SELECT') AS anon, "
                "has_table_privilege('authenticated', c.oid, 'SELECT') AS authenticated "
                "FROM pg_class c WHERE c.oid = 'public.schema_migrations'::regclass").fetchone()
        assert row == (True, False, False)
    finally:
        localdb.drop_database(server_url, name)


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_em11_helpers_are_the_service_roles_only(database_url, tenant, role):
    with as_role(database_url, role, claims_for(tenant.owner)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM public.get_module_tables('mod_00000000')")


@pytest.mark.parametrize("table", ["sites", "clients", "agency_members", "automation_events_log", "module_data",
                                   "automation_workflows", "workflow_steps", "modules_v2"])
def test_a_signed_in_user_cannot_truncate_past_row_level_security(tenant, table):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.user_unit(claims_for(tenant.owner)) as unit:
            unit.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.Identifier("public", table)))


# Rows of a workflow name the workflow's site ------------------------------------------------------------

@pytest.fixture
def their_workflow(owner_conn, tenant):
    return owner_conn.execute(
        "INSERT INTO automation_workflows (site_id, name) VALUES (%s, 'theirs') RETURNING id",
        (tenant.site_id,)).fetchone()["id"]


@pytest.mark.parametrize("statement", [
    "INSERT INTO public.workflow_steps (workflow_id, site_id, position, step_type, config) "
    "VALUES (%(wf)s, %(site)s, 99, 'http_request', '{\"url\": \"https://attacker.test/\"}')",
    "INSERT INTO public.automation_event_subscriptions (workflow_id, site_id, event_type) "
    "VALUES (%(wf)s, %(site)s, 'form.submitted')",
    "INSERT INTO public.workflow_variables (workflow_id, site_id, key, value) VALUES (%(wf)s, %(site)s, 'k', '1')",
    "INSERT INTO public.automation_webhooks (workflow_id, site_id, event_type, token_hash) "
    "VALUES (%(wf)s, %(site)s, 'automation.webhook.received', md5(random()::text))",
])
def test_a_manager_cannot_attach_rows_to_another_sites_workflow(their_workflow, other_tenant, statement, owner_conn):
    """Agency B's owner, on its own site, naming agency A's workflow by id: before, the step or trigger
    was stored, and the engine ran agency A's workflow with it (or on agency B's events)."""
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        with db.user_unit(claims_for(other_tenant.owner)) as unit:
            unit.execute(statement, {"wf": their_workflow, "site": other_tenant.site_id})
    assert owner_conn.execute("SELECT count(*) AS n FROM workflow_steps WHERE workflow_id = %s",
                              (their_workflow,)).fetchone()["n"] == 0


def test_executions_and_step_logs_are_the_engines_to_write(tenant, their_workflow):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.user_unit(claims_for(tenant.owner)) as unit:
            unit.execute("INSERT INTO public.workflow_executions (workflow_id, site_id, status) "
                         "VALUES (%s, %s, 'pending')", (their_workflow, tenant.site_id))


# A site API key's module scope, in the database ------------------------------------------------------

@pytest.fixture
def two_modules(owner_conn, make_module, tenant):
    """Modules "allowed" and "other" (each the demo CRM), installed on the tenant's site, a contact in each."""
    mods = {}
    for name in ("allowed", "other"):
        slug = f"{name}-{uuid.uuid4().hex[:6]}"
        module_id, _ = make_crm(owner_conn, make_module, tenant, slug=slug)
        schema = f"mod_{module_id.hex[:8]}"
        owner_conn.execute(sql.SQL("INSERT INTO {} (site_id, email) VALUES (%s, 'a@b.test')").format(
            sql.Identifier(schema, "contacts")), (tenant.site_id,))
        mods[name] = {"id": module_id, "slug": slug, "schema": schema, "prefix": slug.replace("-", "_")}
    return mods


def _count(conn, schema, table):
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()[0]


def test_a_key_limited_to_one_module_reads_and_writes_that_module_only(database_url, tenant, two_modules):
    allowed, other = two_modules["allowed"], two_modules["other"]
    claims = key_claims(tenant.site_id, [allowed["slug"]])
    with as_role(database_url, "authenticated", claims) as conn:
        assert _count(conn, allowed["schema"], "contacts") == 1
        assert _count(conn, other["schema"], "contacts") == 0
        conn.execute(sql.SQL("INSERT INTO {} (site_id, name) VALUES (%s, 'ok')").format(
            sql.Identifier(allowed["schema"], "companies")), (tenant.site_id,))
    with as_role(database_url, "authenticated", claims) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("INSERT INTO {} (site_id, name) VALUES (%s, 'planted')").format(
                sql.Identifier(other["schema"], "companies")), (tenant.site_id,))
    with as_role(database_url, "authenticated", claims) as conn:
        changed = conn.execute(sql.SQL("UPDATE {} SET email = 'x@y.test'").format(
            sql.Identifier(other["schema"], "contacts"))).rowcount
        assert changed == 0


def test_a_keys_widget_storage_is_limited_to_its_modules(database_url, tenant, two_modules, owner_conn):
    allowed, other = two_modules["allowed"], two_modules["other"]
    owner_conn.execute("INSERT INTO module_data (module_id, site_id, key, value) VALUES (%s, %s, 'k', '1')",
                       (other["id"], tenant.site_id))
    claims = key_claims(tenant.site_id, [allowed["slug"]])
    with as_role(database_url, "authenticated", claims) as conn:
        assert conn.execute("SELECT count(*) FROM public.module_data").fetchone()[0] == 0
        conn.execute("INSERT INTO public.module_data (module_id, site_id, key) VALUES (%s, %s, 'k')",
                     (allowed["id"], tenant.site_id))
    with as_role(database_url, "authenticated", claims) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO public.module_data (module_id, site_id, key) VALUES (%s, %s, 'k2')",
                         (other["id"], tenant.site_id))


@pytest.mark.parametrize("modules, event_type, allowed", [
    (["allowed"], "{allowed}.contact.created", True),
    (["allowed"], "{other}.contact.created", False),
    (["allowed"], "crm.contact.created", False),  # documented, but crm is not one of the key's modules
    (["allowed"], "marketplace.module.installed", False),
    (None, "{other}.contact.created", True),  # a key for every module: every installed module's events
    (None, "form.submitted", False),  # no module "form" is installed on the site
    (None, "marketplace.subscription.activated", False),
    (None, "automation.webhook.received", False),
])
def test_a_key_writes_only_its_modules_events(database_url, tenant, two_modules, modules, event_type, allowed):
    slugs = {name: m["slug"] for name, m in two_modules.items()}
    prefixes = {name: m["prefix"] for name, m in two_modules.items()}
    claims = key_claims(tenant.site_id, [slugs[m] for m in modules] if modules is not None else None)
    with as_role(database_url, "authenticated", claims) as conn:
        insert = ("INSERT INTO public.automation_events_log (site_id, event_type, payload) VALUES (%s, %s, '{}') "
                  "RETURNING id")
        if allowed:
            conn.execute(insert, (tenant.site_id, event_type.format(**prefixes)))
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(insert, (tenant.site_id, event_type.format(**prefixes)))


@pytest.mark.parametrize("table", ["automation_workflows", "workflow_steps", "automation_event_subscriptions",
                                   "automation_webhooks", "workflow_variables", "automation_connections",
                                   "workflow_executions"])
def test_a_key_sees_none_of_the_sites_automation_configuration(database_url, tenant, their_workflow, table,
                                                              owner_conn):
    owner_conn.execute("INSERT INTO workflow_steps (workflow_id, site_id, position, step_type) "
                       "VALUES (%s, %s, 1, 'delay')", (their_workflow, tenant.site_id))
    with as_role(database_url, "authenticated", key_claims(tenant.site_id, None)) as conn:
        assert _count(conn, "public", table) == 0


def test_a_key_cannot_create_a_workflow(database_url, tenant):
    with as_role(database_url, "authenticated", key_claims(tenant.site_id, None)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO public.automation_workflows (site_id, name) VALUES (%s, 'key made')",
                         (tenant.site_id,))


# Manifest keys to public.sites --------------------------------------------------------------------------

def test_a_manifest_key_to_public_sites_is_refused_before_any_sql(owner_conn, make_module, tenant):
    from dramac_common.provisioning import provisioner

    manifest = {"version": "1.0.0", "database": {"tables": [{
        "name": "referrals", "columns": [{"name": "partner_site", "type": "uuid"}],
        "foreignKeys": [{"column": "partner_site", "references": {"schema": "public", "table": "sites"}}]}]}}
    module = make_module(module_id=uuid.uuid4(), manifest=manifest, module_type="app")
    owner_conn.execute("INSERT INTO site_module_installations (site_id, module_id, agency_id, status) "
                       "VALUES (%s, %s, %s, 'provisioning')", (tenant.site_id, module, tenant.agency_id))
    outcome = provisioner.run_job("provision", module)
    assert outcome.status == "failed"
    assert "a foreign key may reference this module's own tables only" in outcome.detail["error"]
    assert owner_conn.execute("SELECT to_regnamespace(%s) IS NULL AS gone",
                              (f"mod_{module.hex[:8]}",)).fetchone()["gone"]



# Platform events: written only by the backend -------------------------------------------------------

@pytest.mark.parametrize(("site_event", "event_type"), [
    (False, "marketplace.subscription.activated"),
    (True, "marketplace.module.installed"),
    (True, "automation.webhook.received"),
])
def test_a_manager_cannot_insert_a_platform_event(database_url, tenant, site_event, event_type):
    """A forged ``marketplace.subscription.activated`` would run the agency's workflows on a payment that
    never happened: only the backend's write role records platform events."""
    site, agency = (tenant.site_id, None) if site_event else (None, tenant.agency_id)
    with as_role(database_url, "authenticated", claims_for(tenant.owner)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO public.automation_events_log (site_id, agency_id, event_type) "
                         "VALUES (%s, %s, %s)", (site, agency, event_type))


def test_a_manager_cannot_call_the_platform_event_path(database_url, tenant):
    with as_role(database_url, "authenticated", claims_for(tenant.owner)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT private.log_platform_event(NULL, %s, 'marketplace.subscription.activated', "
                         "'{}', 'marketplace', 'subscription', NULL)", (tenant.agency_id,))


def test_the_backend_records_platform_events_and_only_those(database_url, tenant):
    with db.user_unit(claims_for(tenant.owner)) as unit:
        event_id = unit.call_write_path("log_platform_event", None, tenant.agency_id,
                                        "marketplace.subscription.activated", None, "marketplace", None, None)
        assert unit.fetchone("SELECT event_type FROM public.automation_events_log WHERE id = %s",
                             (event_id,))["event_type"] == "marketplace.subscription.activated"
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        with db.user_unit(claims_for(tenant.owner)) as unit:
            unit.call_write_path("log_platform_event", tenant.site_id, None, "crm.contact.created", None, "crm",
                                 None, None)


# A request's one site (dramac.site_id, migration 0200) only narrows ----------------------------------------

@pytest.fixture
def two_sites_of_a_module(owner_conn, make_module, make_user, tenant, other_tenant):
    """The CRM on two agencies' sites with a contact, a widget storage value, an event and a workflow on
    each; a user in both agencies and a super admin."""
    module_id, slug = make_crm(owner_conn, make_module, tenant, other_tenant)
    schema = f"mod_{module_id.hex[:8]}"
    for t in (tenant, other_tenant):
        owner_conn.execute(sql.SQL("INSERT INTO {} (site_id, email) VALUES (%s, 'a@b.test')").format(
            sql.Identifier(schema, "contacts")), (t.site_id,))
        owner_conn.execute("INSERT INTO module_data (module_id, site_id, key, value) VALUES (%s, %s, 'k', '1')",
                           (module_id, t.site_id))
        owner_conn.execute("INSERT INTO automation_events_log (site_id, event_type, dispatched_at) "
                           "VALUES (%s, %s, now())", (t.site_id, f"{slug.replace('-', '_')}.contact.created"))
        owner_conn.execute("INSERT INTO automation_workflows (site_id, name) VALUES (%s, 'w')", (t.site_id,))
    both = make_user()
    for t in (tenant, other_tenant):
        owner_conn.execute("INSERT INTO agency_members (agency_id, user_id, role) VALUES (%s, %s, 'member')",
                           (t.agency_id, both))
    callers = {"owner": claims_for(tenant.owner), "client user": claims_for(tenant.client_user),
               "member of both": claims_for(both), "super admin": claims_for(make_user(super_admin=True)),
               "other agency's owner": claims_for(other_tenant.owner),
               "site API key": key_claims(tenant.site_id, None)}
    return schema, callers


def _sites_seen(database_url, claims, site_setting, statement):
    with as_role(database_url, "authenticated", claims) as conn:
        if site_setting is not None:  # set by the caller itself, as the authenticated role reached directly may
            conn.execute("SELECT set_config('dramac.site_id', %s, true)", (site_setting,))
        rows = conn.execute(statement).fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize(("statement", "through_site_arrays"), [
    ("SELECT site_id FROM {module}.contacts", True),
    ("UPDATE {module}.contacts SET email = email RETURNING site_id", True),
    ("DELETE FROM {module}.contacts RETURNING site_id", True),
    ("SELECT site_id FROM public.module_data", True),
    ("UPDATE public.module_data SET value = '2' RETURNING site_id", True),
    ("DELETE FROM public.module_data RETURNING site_id", True),
    ("SELECT site_id FROM public.automation_events_log", True),
    ("SELECT site_id FROM public.automation_workflows", False),  # policies by role and agency: not narrowed
    ("SELECT id FROM public.sites", False),
])
def test_naming_the_requests_site_narrows_what_a_caller_reaches_and_never_widens_it(
        database_url, tenant, other_tenant, two_sites_of_a_module, statement, through_site_arrays):
    """Whoever sets ``dramac.site_id`` (the shared layer for a site's request, or a caller itself), a site's
    rows are shown and changed as they were without it on that one site, and no other site's; a table
    whose policies prove sites through the site arrays shows no other site's at all."""
    schema, callers = two_sites_of_a_module
    query = sql.SQL(statement.replace("{module}", "{}")).format(sql.Identifier(schema)) \
        if "{module}" in statement else statement
    ours = {tenant.site_id, other_tenant.site_id}
    for caller, claims in callers.items():
        # exactly that site's share, except where no site array decides: a key (bound to its site already),
        # a super admin on platform tables ("OR is_super_admin()"), tables whose policies go by role or agency
        narrows = through_site_arrays and caller != "site API key" and (
            "{module}" in statement or caller != "super admin")
        without = _sites_seen(database_url, claims, None, query) & ours
        for named in (tenant.site_id, other_tenant.site_id, uuid.uuid4()):
            seen = _sites_seen(database_url, claims, str(named), query) & ours
            assert seen <= without, (caller, named)
            if narrows:
                assert seen == without & {named}, (caller, named)
        assert _sites_seen(database_url, claims, "not a uuid", query) & ours == without, caller


def test_a_site_unit_reads_its_site_for_a_user_in_many_agencies(owner_conn, make_module, make_user, tenant):
    """The unit of one site proves that site alone: a user in many agencies reads its rows, and only its."""
    module_id, _ = make_crm(owner_conn, make_module, tenant)
    schema = sql.Identifier(f"mod_{module_id.hex[:8]}", "contacts")
    crowded = make_user()
    owner_conn.execute("INSERT INTO agency_members (agency_id, user_id, role) VALUES (%s, %s, 'member')",
                       (tenant.agency_id, crowded))
    others = owner_conn.execute(
        "WITH a AS (INSERT INTO agencies (name) SELECT 'many ' || g FROM generate_series(1, 50) g RETURNING id) "
        "INSERT INTO agency_members (agency_id, user_id, role) SELECT id, %s, 'owner' FROM a RETURNING agency_id",
        (crowded,)).fetchall()
    from dramac_dev import seed

    elsewhere = seed.create_site(owner_conn, others[0]["agency_id"])
    owner_conn.execute(sql.SQL("INSERT INTO {} (site_id, email) VALUES (%s, 'mine@b.test'), (%s, 'there@b.test')")
                       .format(schema), (tenant.site_id, elsewhere))
    with db.user_unit(claims_for(crowded), site_id=tenant.site_id) as unit:
        assert [r["email"] for r in unit.fetchall(sql.SQL("SELECT email FROM {}").format(schema))] == ["mine@b.test"]
    with db.user_unit(claims_for(crowded)) as unit:
        assert {r["email"] for r in unit.fetchall(sql.SQL("SELECT email FROM {}").format(schema))} == {
            "mine@b.test", "there@b.test"}
