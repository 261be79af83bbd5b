"""Deleting a site takes the data of the modules installed on it, and only those (migration 0090): module
tables have no foreign key to public.sites, so the cost follows the site's installations, never the
platform's module count. Also: the provisioner's catalog query (through pg_depend) reads exactly what
a plain scan of pg_class by namespace reads."""

from __future__ import annotations

import copy

import psycopg
import pytest
from dramac_common.core import db
from dramac_common.core.naming import get_module_schema_name
from dramac_common.provisioning import ddl, provisioner
from dramac_common.provisioning.errors import ProvisioningRefused
from psycopg import sql
from support.handlers import claims_for

from dramac_dev.seed import CRM_MANIFEST

# The catalog read the provisioner used before 0090, by pg_class.relnamespace (a sequential scan of every
# relation of the database): the reference the pg_depend version must match exactly.
REFERENCE_CATALOG_QUERY = """
    WITH ns AS (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = %(schema)s)
    SELECT
      EXISTS (SELECT 1 FROM ns) AS schema_exists,
      (SELECT coalesce(jsonb_object_agg(c.relname, cols.columns), '{}'::jsonb)
         FROM pg_catalog.pg_class c
         CROSS JOIN LATERAL (
           SELECT coalesce(jsonb_object_agg(a.attname,
                    jsonb_build_array(pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull)),
                    '{}'::jsonb) AS columns
             FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) cols
        WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p')) AS tables,
      (SELECT coalesce(jsonb_agg(jsonb_build_array(c.relname, con.conname)), '[]'::jsonb)
         FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
        WHERE c.relnamespace = (SELECT oid FROM ns)) AS constraints,
      (SELECT coalesce(jsonb_agg(c.relname), '[]'::jsonb)
         FROM pg_catalog.pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)) AS relations
"""

# Two tables whose key is ON DELETE RESTRICT: a purge must still empty both for the site.
RESTRICTED = {"version": "1.0.0", "database": {"tables": [
    {"name": "lists", "columns": [{"name": "title", "type": "text", "nullable": False}]},
    {"name": "items", "columns": [{"name": "label", "type": "text"}, {"name": "list_id", "type": "uuid"}],
     "foreignKeys": [{"column": "list_id", "references": {"table": "lists"}, "onDelete": "RESTRICT"}]},
]}}


def _state(row):
    state = ddl.CatalogState.from_row(row)
    return (state.schema_exists, state.tables, state.constraints, state.relations)


@pytest.fixture
def provisioned(make_module):
    def make(manifest=None):
        module = make_module(module_type="app", manifest=copy.deepcopy(manifest or CRM_MANIFEST))
        provisioner.provision_module(module)
        return module, get_module_schema_name(module)
    return make


def install(owner_conn, tenant, module, status="active"):
    owner_conn.execute("INSERT INTO site_module_installations (site_id, module_id, agency_id, status) "
                       "VALUES (%s, %s, %s, %s)", (tenant.site_id, module, tenant.agency_id, status))


def add_contact(owner_conn, schema, site_id):
    company = owner_conn.execute(f"INSERT INTO {schema}.companies (site_id, name) VALUES (%s, 'Acme') RETURNING id",
                                 (site_id,)).fetchone()["id"]
    owner_conn.execute(f"INSERT INTO {schema}.contacts (site_id, email, company_id) VALUES (%s, 'a@x.test', %s)",
                       (site_id, company))


def rows_of(owner_conn, schema, site_id):
    return {table: owner_conn.execute(f"SELECT count(*) AS n FROM {schema}.{table} WHERE site_id = %s",
                                      (site_id,)).fetchone()["n"]
            for table in ("companies", "contacts")}


def test_the_catalog_query_reads_what_a_scan_of_pg_class_reads(provisioned, owner_conn):
    _module, schema = provisioned()
    _restricted, restricted_schema = provisioned(RESTRICTED)
    owner_conn.execute(f"CREATE SEQUENCE {schema}.probe_seq")  # relations of every kind count, not only tables
    owner_conn.execute(f"CREATE VIEW {schema}.probe_view AS SELECT 1 AS one")
    owner_conn.execute(f"ALTER TABLE {schema}.contacts DROP COLUMN last_name")  # dropped columns are not read
    for name in (schema, restricted_schema, "public", "mod_00000000"):
        reference = owner_conn.execute(REFERENCE_CATALOG_QUERY, {"schema": name}).fetchone()
        ours = owner_conn.execute(ddl.catalog_query(name)).fetchone()
        assert _state(ours) == _state(reference), name
    read = _state(owner_conn.execute(ddl.catalog_query(schema)).fetchone())
    assert read[0] and {"companies", "contacts"} == set(read[1]) and "last_name" not in read[1]["contacts"]
    assert {"contacts_pkey", "contacts_email_idx", "probe_seq", "probe_view"} <= read[3]
    assert _state(owner_conn.execute(ddl.catalog_query("mod_00000000")).fetchone()) == (False, {}, {}, set())


def test_module_tables_have_no_foreign_key_to_sites(provisioned, owner_conn):
    _, schema = provisioned()
    keys = owner_conn.execute(
        "SELECT con.conname, con.confrelid::regclass::text AS target FROM pg_constraint con "
        "JOIN pg_class c ON c.oid = con.conrelid WHERE con.contype = 'f' AND c.relnamespace = %s::regnamespace",
        (schema,)).fetchall()
    assert keys and all(k["target"].startswith(f"{schema}.") for k in keys)  # only keys between its own tables


def test_deleting_a_site_purges_the_modules_it_had_installed_and_nothing_else(
        provisioned, tenant, other_tenant, owner_conn):
    active, active_schema = provisioned()
    disabled, disabled_schema = provisioned()
    _never, never_schema = provisioned()
    install(owner_conn, tenant, active)
    install(owner_conn, tenant, disabled, status="disabled")  # uninstalled: its data was kept, and now goes
    install(owner_conn, other_tenant, active)
    for schema in (active_schema, disabled_schema, never_schema):
        add_contact(owner_conn, schema, tenant.site_id)
        add_contact(owner_conn, schema, other_tenant.site_id)

    owner_conn.execute("DELETE FROM sites WHERE id = %s", (tenant.site_id,))

    assert rows_of(owner_conn, active_schema, tenant.site_id) == {"companies": 0, "contacts": 0}
    assert rows_of(owner_conn, disabled_schema, tenant.site_id) == {"companies": 0, "contacts": 0}
    for schema in (active_schema, disabled_schema, never_schema):  # other sites keep everything
        assert rows_of(owner_conn, schema, other_tenant.site_id) == {"companies": 1, "contacts": 1}
    # A module never installed on the site held rows written around the installation check (as the owner):
    # nothing purges them, and no user can see them, the site being nobody's now.
    assert rows_of(owner_conn, never_schema, tenant.site_id) == {"companies": 1, "contacts": 1}
    with db.user_unit(claims_for(tenant.owner)) as unit:
        assert unit.fetchall(f"SELECT id FROM {never_schema}.contacts") == []
    with db.user_unit(claims_for(other_tenant.owner)) as unit:
        assert [r["site_id"] for r in unit.fetchall(f"SELECT site_id FROM {never_schema}.contacts")] == [
            other_tenant.site_id]


def test_deleting_an_agency_purges_its_sites_module_data(provisioned, tenant, other_tenant, owner_conn):
    module, schema = provisioned()
    install(owner_conn, tenant, module)
    install(owner_conn, other_tenant, module)
    add_contact(owner_conn, schema, tenant.site_id)
    add_contact(owner_conn, schema, other_tenant.site_id)
    owner_conn.execute("DELETE FROM agencies WHERE id = %s", (tenant.agency_id,))
    assert rows_of(owner_conn, schema, tenant.site_id) == {"companies": 0, "contacts": 0}
    assert rows_of(owner_conn, schema, other_tenant.site_id) == {"companies": 1, "contacts": 1}


def test_a_restrict_key_between_module_tables_does_not_block_the_purge(provisioned, tenant, owner_conn):
    module, schema = provisioned(RESTRICTED)
    install(owner_conn, tenant, module)
    listed = owner_conn.execute(f"INSERT INTO {schema}.lists (site_id, title) VALUES (%s, 'todo') RETURNING id",
                                (tenant.site_id,)).fetchone()["id"]
    owner_conn.execute(f"INSERT INTO {schema}.items (site_id, label, list_id) VALUES (%s, 'milk', %s)",
                       (tenant.site_id, listed))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # the key itself still holds
        owner_conn.execute(f"DELETE FROM {schema}.lists WHERE id = %s", (listed,))
    owner_conn.execute("DELETE FROM sites WHERE id = %s", (tenant.site_id,))
    for table in ("lists", "items"):
        assert owner_conn.execute(f"SELECT count(*) AS n FROM {schema}.{table}").fetchone()["n"] == 0


def test_a_site_deleted_by_its_owner_through_rls_takes_its_module_data(provisioned, tenant, owner_conn):
    module, schema = provisioned()
    install(owner_conn, tenant, module)
    add_contact(owner_conn, schema, tenant.site_id)
    with db.user_unit(claims_for(tenant.owner)) as unit:
        assert unit.execute("DELETE FROM public.sites WHERE id = %s", (tenant.site_id,)).rowcount == 1
    assert rows_of(owner_conn, schema, tenant.site_id) == {"companies": 0, "contacts": 0}


def test_a_deprovisioned_module_does_not_stop_a_site_being_deleted(provisioned, tenant, owner_conn):
    module, schema = provisioned()
    install(owner_conn, tenant, module)
    # the operator path refuses while a site has the module (issue 16); a schema dropped by hand anyway
    # must still not stop the site's deletion
    with pytest.raises(ProvisioningRefused):
        provisioner.deprovision_module(module)
    owner_conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    owner_conn.execute("DELETE FROM sites WHERE id = %s", (tenant.site_id,))
    assert owner_conn.execute("SELECT count(*) AS n FROM site_module_installations WHERE site_id = %s",
                              (tenant.site_id,)).fetchone()["n"] == 0
    assert owner_conn.execute("SELECT to_regnamespace(%s) IS NULL AS gone", (schema,)).fetchone()["gone"]

