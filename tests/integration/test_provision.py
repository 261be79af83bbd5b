"""The provisioner on real PostgreSQL: the EM-11 verification checklist, idempotency, concurrency,
short-id collisions, failures and retries, upgrades, deprovisioning and purging one site's data."""

import copy
import json
import threading
import time
import uuid

import psycopg
import pytest
from dramac_common.core import db
from dramac_common.core.naming import get_module_schema_name
from dramac_common.provisioning import provisioner
from dramac_common.provisioning.errors import ManifestError, TransientProvisioningError
from support.handlers import claims_for

from dramac_dev.events import LocalContext, sqs_event, sqs_record
from dramac_dev.functions_loader import get_handler
from dramac_dev.seed import CRM_MANIFEST

QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:dramac-provision"


@pytest.fixture
def crm(make_module):
    """A CRM-like app module with a fresh id (so a fresh schema) per test."""
    def make(manifest=None, module_id=None, **kw):
        return make_module(module_id=module_id or uuid.uuid4(), module_type=kw.pop("module_type", "app"),
                           manifest=copy.deepcopy(manifest or CRM_MANIFEST), **kw)
    return make


def install_row(owner_conn, tenant, module_id, status="provisioning"):
    return owner_conn.execute(
        "INSERT INTO site_module_installations (site_id, module_id, agency_id, status) VALUES (%s, %s, %s, %s) "
        "RETURNING id", (tenant.site_id, module_id, tenant.agency_id, status)).fetchone()["id"]


def installation(owner_conn, tenant, module_id):
    return owner_conn.execute("SELECT status, error, is_enabled FROM site_module_installations "
                              "WHERE site_id = %s AND module_id = %s", (tenant.site_id, module_id)).fetchone()


def invoke(*bodies, receive_count=1):
    records = [sqs_record(json.dumps(b), queue_arn=QUEUE_ARN, receive_count=receive_count) for b in bodies]
    result = get_handler("provision")(sqs_event(records), LocalContext("provision"))
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    return [r["messageId"] in failed for r in records]


def schema_of(module_id):
    return get_module_schema_name(module_id)


def relations(owner_conn, schema):
    return {r["relname"]: r for r in owner_conn.execute(
        "SELECT c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s", (schema,)).fetchall()}


def as_user(user, query, params=()):
    with db.user_unit(claims_for(user)) as unit:
        cur = unit.execute(query, params)
        return cur.fetchall() if cur.description else cur.rowcount


# The EM-11 verification checklist ---------------------------------------------------------------

def test_provisioning_creates_schema_tables_indexes_rls_and_registry_and_activates(crm, tenant, owner_conn):
    module = crm()
    install_row(owner_conn, tenant, module)
    result = provisioner.provision_module(module)
    schema = schema_of(module)
    assert (result.action, result.activated, result.schema_name) == ("created", 1, schema)
    rels = relations(owner_conn, schema)
    assert {"companies", "contacts", "contacts_email_idx", "companies_domain_idx", "contacts_company_id_fk_idx",
            "contacts_site_id_id_key", "contacts_pkey"} <= set(rels)
    for table in ("companies", "contacts"):
        assert rels[table]["relrowsecurity"] and rels[table]["relforcerowsecurity"]
        assert rels[table]["owner"] == owner_conn.execute("SELECT current_user AS u").fetchone()["u"]
    columns = [r["column_name"] for r in owner_conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'contacts' "
        "ORDER BY ordinal_position", (schema,)).fetchall()]
    assert columns == ["id", "site_id", "email", "first_name", "last_name", "status", "lead_score", "company_id",
                       "created_at", "updated_at"]
    privileges = owner_conn.execute(
        "SELECT has_table_privilege('authenticated', %(t)s, 'SELECT,INSERT,UPDATE,DELETE') AS auth, "
        "has_table_privilege('anon', %(t)s, 'SELECT') AS anon, has_schema_privilege('anon', %(s)s, 'USAGE') AS anon_usage",
        {"t": f"{schema}.contacts", "s": schema}).fetchone()
    assert privileges == {"auth": True, "anon": False, "anon_usage": False}
    policies = {r["policyname"]: r["cmd"] for r in owner_conn.execute(
        "SELECT policyname, cmd FROM pg_policies WHERE schemaname = %s AND tablename = 'contacts'", (schema,))}
    assert policies == {"site_read": "SELECT", "site_insert": "INSERT", "site_update": "UPDATE",
                        "site_delete": "DELETE"}
    entry = owner_conn.execute("SELECT * FROM module_database_registry WHERE module_id = %s", (module,)).fetchone()
    assert (entry["schema_name"], entry["table_names"], entry["version"], entry["uses_schema"]) == (
        schema, ["companies", "contacts"], "1.0.0", True)
    assert installation(owner_conn, tenant, module) == {"status": "active", "error": None, "is_enabled": True}


def test_rls_isolates_sites_of_different_agencies(crm, tenant, other_tenant, owner_conn):
    module = crm()
    provisioner.provision_module(module)
    contacts = f"{schema_of(module)}.contacts"
    as_user(tenant.owner, f"INSERT INTO {contacts} (site_id, email) VALUES (%s, 'a@x.test')", (tenant.site_id,))
    as_user(other_tenant.owner, f"INSERT INTO {contacts} (site_id, email) VALUES (%s, 'b@x.test')",
            (other_tenant.site_id,))
    assert [r["email"] for r in as_user(tenant.member, f"SELECT email FROM {contacts}")] == ["a@x.test"]
    assert [r["email"] for r in as_user(other_tenant.owner, f"SELECT email FROM {contacts}")] == ["b@x.test"]
    # another agency's site cannot be written, and a client user reads a module (clientAccess "read",
    # the default) but does not write it (docs/roles.md)
    assert [r["email"] for r in as_user(tenant.client_user, f"SELECT email FROM {contacts}")] == ["a@x.test"]
    for user, site in ((other_tenant.owner, tenant.site_id), (tenant.client_user, tenant.site_id)):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_user(user, f"INSERT INTO {contacts} (site_id, email) VALUES (%s, 'c@x.test')", (site,))
    assert as_user(other_tenant.owner, f"UPDATE {contacts} SET email = 'hijack' WHERE site_id = %s",
                   (tenant.site_id,)) == 0
    assert as_user(tenant.client_user, f"DELETE FROM {contacts}") == 0
    # a site API key sees exactly its site
    with db.user_unit({"sub": str(uuid.uuid4()), "role": "site_api_key", "site_id": str(tenant.site_id)}) as unit:
        assert [r["email"] for r in unit.fetchall(f"SELECT email FROM {contacts}")] == ["a@x.test"]
    assert owner_conn.execute(f"SELECT count(*) AS n FROM {contacts}").fetchone()["n"] == 2


def test_foreign_keys_work_within_a_site_and_never_across_sites(crm, tenant, owner_conn, make_tenant):
    module = crm()
    install_row(owner_conn, tenant, module)
    provisioner.provision_module(module)
    schema = schema_of(module)
    company = owner_conn.execute(f"INSERT INTO {schema}.companies (site_id, name) VALUES (%s, 'Acme') RETURNING id",
                                 (tenant.site_id,)).fetchone()["id"]
    contact = owner_conn.execute(
        f"INSERT INTO {schema}.contacts (site_id, email, company_id) VALUES (%s, 'a@x.test', %s) RETURNING id",
        (tenant.site_id, company)).fetchone()["id"]
    second_site = make_tenant().site_id
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        owner_conn.execute(f"INSERT INTO {schema}.contacts (site_id, email, company_id) VALUES (%s, 'b', %s)",
                           (second_site, company))
    owner_conn.execute(f"DELETE FROM {schema}.companies WHERE id = %s", (company,))
    row = owner_conn.execute(f"SELECT site_id, company_id FROM {schema}.contacts WHERE id = %s", (contact,)).fetchone()
    assert row == {"site_id": tenant.site_id, "company_id": None}  # ON DELETE SET NULL (company_id) only
    with pytest.raises(psycopg.errors.CheckViolation):
        owner_conn.execute(f"INSERT INTO {schema}.contacts (site_id, email, lead_score) VALUES (%s, 'c', -1)",
                           (tenant.site_id,))
    owner_conn.execute("DELETE FROM sites WHERE id = %s", (tenant.site_id,))  # its installation's data goes with it
    assert owner_conn.execute(f"SELECT count(*) AS n FROM {schema}.contacts").fetchone()["n"] == 0


def test_updated_at_is_maintained_by_the_trigger(crm, tenant, owner_conn):
    module = crm()
    provisioner.provision_module(module)
    schema = schema_of(module)
    with owner_conn.transaction():
        row = owner_conn.execute(f"INSERT INTO {schema}.companies (site_id, name) VALUES (%s, 'A') "
                                 "RETURNING id, updated_at", (tenant.site_id,)).fetchone()
    time.sleep(0.01)
    updated = owner_conn.execute(f"UPDATE {schema}.companies SET name = 'B' WHERE id = %s RETURNING updated_at",
                                 (row["id"],)).fetchone()["updated_at"]
    assert updated > row["updated_at"]


# Idempotency and concurrency --------------------------------------------------------------------

def test_second_run_is_a_no_op(crm, tenant, owner_conn):
    module = crm()
    provisioner.provision_module(module)
    before = relations(owner_conn, schema_of(module))
    again = provisioner.provision_module(module)
    assert (again.action, again.activated) == ("unchanged", 0)
    assert relations(owner_conn, schema_of(module)) == before


def test_duplicate_messages_in_one_batch_provision_once(crm, tenant, owner_conn):
    module = crm()
    install_row(owner_conn, tenant, module)
    body = {"action": "provision", "moduleId": str(module), "siteId": str(tenant.site_id)}
    assert invoke(body, body, body) == [False, False, False]
    assert installation(owner_conn, tenant, module)["status"] == "active"
    assert owner_conn.execute("SELECT count(*) AS n FROM module_database_registry WHERE module_id = %s",
                              (module,)).fetchone()["n"] == 1


def test_concurrent_jobs_for_one_module_serialise_on_the_advisory_lock(crm, make_tenant, owner_conn, monkeypatch, env):
    module = crm()
    tenants = [make_tenant() for _ in range(8)]
    for t in tenants:
        install_row(owner_conn, t, module)
    _bigger_pool(monkeypatch, env, 10)
    results, errors = [], []

    def job():
        try:
            results.append(provisioner.provision_module(module))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.action for r in results) == ["created"] + ["unchanged"] * 7
    assert sum(r.activated for r in results) == 8
    assert {installation(owner_conn, t, module)["status"] for t in tenants} == {"active"}


def _bigger_pool(monkeypatch, env, size):

    env.set("DRAMAC_DB_POOL_MAX", str(size))
    db.close_pool()
    monkeypatch.setattr(db, "_pool", None)


@pytest.fixture(autouse=True)
def _restore_pool():
    yield
    from dramac_common.core.settings import reset_settings

    reset_settings()
    db.close_pool()


# Failures ---------------------------------------------------------------------------------------

def test_short_id_collision_fails_clearly_and_never_shares_the_schema(crm, tenant, other_tenant, owner_conn):
    first = uuid.UUID("abcdef01-0000-4000-8000-" + uuid.uuid4().hex[:12])
    second = uuid.UUID("abcdef01-1111-4000-8000-" + uuid.uuid4().hex[:12])
    owner_conn.execute("DELETE FROM modules_v2 WHERE id::text LIKE 'abcdef01-%'")
    crm(module_id=first)
    crm(module_id=second)
    install_row(owner_conn, tenant, first)
    install_row(owner_conn, other_tenant, second)
    assert invoke({"moduleId": str(first)}, {"moduleId": str(second)}) == [False, False]
    assert installation(owner_conn, tenant, first)["status"] == "active"
    failed = installation(owner_conn, other_tenant, second)
    assert failed["status"] == "failed"
    assert "short id collision" in failed["error"] and str(first) in failed["error"]
    owners = owner_conn.execute("SELECT module_id FROM module_database_registry WHERE module_short_id = 'abcdef01'")
    assert [r["module_id"] for r in owners] == [first]
    owner_conn.execute("DELETE FROM site_module_installations WHERE module_id = %s", (first,))
    provisioner.deprovision_module(first)


def test_invalid_manifest_fails_the_installation_at_once_without_retry(crm, tenant, owner_conn):
    bad = copy.deepcopy(CRM_MANIFEST)
    bad["database"]["tables"][1]["columns"][4]["check"] = "lead_score >= 0); DROP TABLE public.sites; --"
    module = crm(manifest=bad)
    install_row(owner_conn, tenant, module)
    assert invoke({"moduleId": str(module)}) == [False]  # consumed: retrying cannot help
    failed = installation(owner_conn, tenant, module)
    assert failed["status"] == "failed"
    assert "table contacts, column lead_score: check:" in failed["error"]
    assert owner_conn.execute("SELECT to_regclass('public.sites') IS NOT NULL AS ok").fetchone()["ok"]
    assert not relations(owner_conn, schema_of(module))


def test_a_type_error_is_found_before_the_server_and_names_table_and_column(crm, tenant, owner_conn):
    bad = copy.deepcopy(CRM_MANIFEST)
    bad["database"]["tables"][1]["columns"][0]["check"] = "email >= 5"
    module = crm(manifest=bad)
    install_row(owner_conn, tenant, module)
    assert invoke({"moduleId": str(module)}) == [False]
    failed = installation(owner_conn, tenant, module)
    assert failed["status"] == "failed"
    assert "table contacts, column email: check: cannot compare text with integer" in failed["error"]
    assert not relations(owner_conn, schema_of(module))


@pytest.fixture
def registry_write_lock(database_url):
    """``hold(module)``: an open transaction that has inserted the module's registry row and not committed
    (a concurrent writer): the provisioner, its schema and tables created, must wait for it to register."""
    held = []

    def hold(module_id):
        conn = psycopg.connect(database_url)
        short_id = schema_of(module_id).removeprefix("mod_")
        conn.execute("INSERT INTO module_database_registry (module_id, module_short_id, uses_schema, schema_name) "
                     "VALUES (%s, %s, true, %s)", (module_id, short_id, schema_of(module_id)))
        held.append(conn)
        return conn

    yield hold
    for conn in held:
        conn.rollback()
        conn.close()


def test_transient_failure_is_retried_then_fails_the_installation_on_the_last_receive(
        crm, tenant, owner_conn, registry_write_lock, monkeypatch):
    monkeypatch.setattr(provisioner, "LOCK_TIMEOUT", "100ms")
    module = crm()
    install_row(owner_conn, tenant, module)
    registry_write_lock(module)
    assert invoke({"moduleId": str(module)}, receive_count=1) == [True]
    assert installation(owner_conn, tenant, module)["status"] == "provisioning"
    assert invoke({"moduleId": str(module)}, receive_count=5) == [True]  # to the dead-letter queue
    failed = installation(owner_conn, tenant, module)
    assert failed["status"] == "failed"
    assert failed["error"].startswith("Provisioning failed after 5 attempts: the database could not complete")
    assert "lock timeout" in failed["error"]
    assert not relations(owner_conn, schema_of(module))


def test_max_receives_is_configurable(crm, tenant, owner_conn, registry_write_lock, monkeypatch, env):
    monkeypatch.setattr(provisioner, "LOCK_TIMEOUT", "100ms")
    env.set("PROVISION_MAX_RECEIVES", "2")
    module = crm()
    install_row(owner_conn, tenant, module)
    registry_write_lock(module)
    assert invoke({"moduleId": str(module)}, receive_count=2) == [True]
    assert installation(owner_conn, tenant, module)["status"] == "failed"


def test_connection_killed_mid_job_leaves_no_partial_schema_and_a_retry_succeeds(
        crm, tenant, owner_conn, registry_write_lock):
    module = crm()
    install_row(owner_conn, tenant, module)
    writer = registry_write_lock(module)
    outcome = {}

    def job():
        try:
            provisioner.provision_module(module)
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=job)
    worker.start()
    pid = None
    for _ in range(200):  # the job has created the schema and its tables, and waits to register them
        # this run's database only: another worker's job may be waiting on a lock of its own
        row = owner_conn.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                 "AND datname = current_database() AND query LIKE '%%CREATE SCHEMA%%'").fetchone()
        if row:
            pid = row["pid"]
            break
        time.sleep(0.02)
    assert pid is not None
    owner_conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    worker.join(10)
    assert isinstance(outcome.get("error"), TransientProvisioningError)
    assert not relations(owner_conn, schema_of(module))
    assert owner_conn.execute("SELECT count(*) AS n FROM module_database_registry WHERE module_id = %s",
                              (module,)).fetchone()["n"] == 0
    assert installation(owner_conn, tenant, module)["status"] == "provisioning"
    writer.rollback()
    assert provisioner.provision_module(module).action == "created"
    assert installation(owner_conn, tenant, module)["status"] == "active"


def test_widget_modules_need_no_schema(make_module, tenant, owner_conn):
    module = make_module(module_type="widget", manifest=copy.deepcopy(CRM_MANIFEST))
    install_row(owner_conn, tenant, module)
    result = provisioner.provision_module(module)
    assert (result.action, result.activated) == ("no_schema", 1)
    assert not relations(owner_conn, schema_of(module))


# Upgrades, deprovisioning, purging --------------------------------------------------------------

def _set_manifest(owner_conn, module, manifest):
    owner_conn.execute("UPDATE modules_v2 SET manifest = %s WHERE id = %s", (json.dumps(manifest), module))


def test_a_newer_version_migrates_additively_and_keeps_the_data(crm, tenant, other_tenant, owner_conn):
    module = crm()
    provisioner.provision_module(module)
    schema = schema_of(module)
    owner_conn.execute(f"INSERT INTO {schema}.contacts (site_id, email) VALUES (%s, 'kept@x.test')", (tenant.site_id,))
    newer = copy.deepcopy(CRM_MANIFEST)
    newer["version"] = "1.1.0"
    newer["database"]["tables"][1]["columns"].append({"name": "phone", "type": "varchar(32)"})
    newer["database"]["tables"][1]["indexes"].append({"columns": ["phone"], "where": "phone IS NOT NULL"})
    newer["database"]["tables"].append({"name": "deals", "columns": [
        {"name": "contact_id", "type": "uuid"}, {"name": "amount_cents", "type": "bigint", "default": "0"}],
        "foreignKeys": [{"column": "contact_id", "references": {"table": "contacts"}, "onDelete": "CASCADE"}]})
    _set_manifest(owner_conn, module, newer)
    install_row(owner_conn, other_tenant, module)
    result = provisioner.provision_module(module)
    assert (result.action, result.version, result.activated) == ("upgraded", "1.1.0", 1)
    assert {"deals", "contacts_phone_idx"} <= set(relations(owner_conn, schema))
    entry = owner_conn.execute("SELECT version, table_names FROM module_database_registry WHERE module_id = %s",
                               (module,)).fetchone()
    assert entry == {"version": "1.1.0", "table_names": ["companies", "contacts", "deals"]}
    assert owner_conn.execute(f"SELECT email, phone FROM {schema}.contacts").fetchall() == [
        {"email": "kept@x.test", "phone": None}]


def test_destructive_upgrade_is_refused_with_a_clear_error(crm, tenant, owner_conn):
    module = crm()
    provisioner.provision_module(module)
    newer = copy.deepcopy(CRM_MANIFEST)
    newer["version"] = "2.0.0"
    newer["database"]["tables"][1]["columns"] = [
        c if c["name"] != "lead_score" else {**c, "type": "text", "check": None}
        for c in newer["database"]["tables"][1]["columns"] if c["name"] != "last_name"]
    _set_manifest(owner_conn, module, newer)
    install_row(owner_conn, tenant, module)
    assert invoke({"moduleId": str(module)}) == [False]
    failed = installation(owner_conn, tenant, module)
    assert failed["status"] == "failed"
    assert "table contacts, column last_name: dropping a column is not supported" in failed["error"]
    assert "column lead_score: changing its type from integer to text is not supported" in failed["error"]
    assert owner_conn.execute("SELECT version FROM module_database_registry WHERE module_id = %s",
                              (module,)).fetchone()["version"] == "1.0.0"


def test_deprovision_is_refused_while_a_site_has_the_module_then_drops_schema_and_registry(crm, tenant, owner_conn):
    module = crm()
    install_row(owner_conn, tenant, module)
    provisioner.provision_module(module)
    owner_conn.execute("UPDATE site_module_installations SET status = 'disabled', is_enabled = false "
                       "WHERE module_id = %s", (module,))
    outcome = provisioner.run_job("deprovision", module)
    assert outcome.status == "failed" and "1 site(s) still have the module installed" in outcome.detail["error"]
    assert relations(owner_conn, schema_of(module))  # a disabled site's data is still there
    owner_conn.execute("DELETE FROM site_module_installations WHERE module_id = %s", (module,))  # purged
    assert invoke({"action": "deprovision", "moduleId": str(module)}) == [False]
    assert not relations(owner_conn, schema_of(module))
    assert owner_conn.execute("SELECT count(*) AS n FROM module_database_registry WHERE module_id = %s",
                              (module,)).fetchone()["n"] == 0
    assert provisioner.deprovision_module(module) is False


def test_purging_a_site_deletes_only_that_sites_rows(crm, tenant, other_tenant, owner_conn):
    module = crm()
    provisioner.provision_module(module)
    schema = schema_of(module)
    for t in (tenant, other_tenant):
        company = owner_conn.execute(f"INSERT INTO {schema}.companies (site_id, name) VALUES (%s, 'A') RETURNING id",
                                     (t.site_id,)).fetchone()["id"]
        owner_conn.execute(f"INSERT INTO {schema}.contacts (site_id, email, company_id) VALUES (%s, 'e', %s)",
                           (t.site_id, company))
    assert invoke({"action": "purge_site", "moduleId": str(module), "siteId": str(tenant.site_id)}) == [False]
    remaining = owner_conn.execute(
        f"SELECT (SELECT array_agg(DISTINCT site_id) FROM {schema}.contacts) AS contacts, "
        f"(SELECT array_agg(DISTINCT site_id) FROM {schema}.companies) AS companies").fetchone()
    assert remaining == {"contacts": [other_tenant.site_id], "companies": [other_tenant.site_id]}
    assert provisioner.purge_site_data(module, tenant.site_id) == {"contacts": 0, "companies": 0}


def test_malformed_messages_are_dropped_without_retry():
    assert invoke({"moduleId": "not-a-uuid"}, {"action": "drop_everything", "moduleId": str(uuid.uuid4())}) == [
        False, False]


def test_reserved_word_list_covers_the_servers_reserved_keywords(owner_conn):
    from dramac_common.provisioning.manifest import RESERVED_WORDS

    server = {r["word"] for r in owner_conn.execute("SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')")}
    assert server <= RESERVED_WORDS


def test_a_version_validated_once_is_not_validated_again_in_the_container(crm, tenant, owner_conn, monkeypatch):
    calls = []
    validate = provisioner.validate_manifest
    monkeypatch.setattr(provisioner, "validate_manifest", lambda raw: calls.append(raw) or validate(raw))
    module = crm()
    provisioner.provision_module(module)
    again = provisioner.provision_module(module)
    assert again.action == "unchanged" and len(calls) == 1


def test_a_manifest_edited_under_the_same_version_is_validated_afresh(crm, tenant, owner_conn):
    module = crm()
    provisioner.provision_module(module)
    edited = copy.deepcopy(CRM_MANIFEST)
    edited["database"]["tables"][1]["columns"][4]["check"] = "lead_score >= 0); DROP TABLE public.sites; --"
    _set_manifest(owner_conn, module, edited)
    with pytest.raises(ManifestError, match="table contacts, column lead_score: check:"):
        provisioner.provision_module(module)


def test_a_provisioning_job_takes_two_round_trips(crm, tenant, owner_conn, env):
    from bench.roundtrips import traced_pool_connection

    env.set("DRAMAC_DB_POOL_MAX", "1")  # one pooled connection: the one traced
    db.close_pool()
    module = crm()
    install_row(owner_conn, tenant, module)
    try:
        with traced_pool_connection() as counter, counter.measure() as trips:
            result = provisioner.provision_module(module)
    finally:
        db.close_pool()
    assert (result.action, result.activated) == ("created", 1)
    assert trips == [2]  # BEGIN with the lock and the state read; the DDL script with COMMIT
    assert installation(owner_conn, tenant, module)["status"] == "active"
