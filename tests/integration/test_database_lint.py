"""Lint-clean by Supabase's database linter's rules (splinter), checked from the catalog on a database
privileged as a Supabase project is (``localdb.SUPABASE_ROLE_DEFAULTS``) with several modules the real
provisioner created: the platform schema and every module schema. ``catalog_lint`` holds the rules.

Set ``DRAMAC_SPLINTER_SQL`` to a copy of splinter's ``splinter.sql`` to also run the linter itself
over the same database (it is not vendored here; see docs/provisioning.md for how it was run)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from dramac_common.provisioning import provisioner
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from support.catalog_lint import ALL_RULES, findings, per_row_calls

from dramac_dev import seed

# Three modules unlike each other: the demo CRM, one with unique columns, a natural key, partial, GIN,
# GiST and hash indexes and keys between its tables, and one with a single bare table.
MANIFESTS = [
    seed.CRM_MANIFEST,
    {"version": "2.1.0", "database": {"tables": [
        {"name": "catalogs", "columns": [{"name": "code", "type": "varchar(20)", "primaryKey": True},
                                         {"name": "title", "type": "text", "nullable": False}]},
        {"name": "items", "entity": "item",
         "columns": [{"name": "sku", "type": "text", "unique": True},
                     {"name": "catalog_code", "type": "varchar(20)"},
                     {"name": "tags", "type": "text[]"}, {"name": "search", "type": "tsvector"},
                     {"name": "origin", "type": "inet"}, {"name": "price", "type": "numeric(12,2)", "check": "price >= 0"},
                     {"name": "archived", "type": "boolean", "default": "false"}],
         "indexes": [{"columns": ["tags"], "using": "gin"}, {"columns": ["search"], "using": "gist"},
                     {"columns": ["sku"], "using": "hash"}, {"columns": ["price"], "where": "archived = false"}],
         "foreignKeys": [{"column": "catalog_code", "references": {"table": "catalogs", "column": "code"},
                          "onDelete": "CASCADE"}]},
        {"name": "item_links", "columns": [{"name": "item_id", "type": "uuid", "nullable": False},
                                           {"name": "related_id", "type": "uuid"}],
         "foreignKeys": [{"column": "item_id", "references": {"table": "items"}, "onDelete": "CASCADE"},
                         {"column": "related_id", "references": {"table": "items"}, "onDelete": "SET NULL"}]},
    ]}},
    {"version": "0.1.0", "database": {"tables": [{"name": "notes", "columns": [{"name": "body", "type": "text"}]}]}},
]


@pytest.fixture(scope="module")
def linted_db(database_url):
    """The run's database with the three modules installed on a site and provisioned."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        owner = seed.create_user(conn)
        agency = seed.create_agency(conn, owner=owner)
        site = seed.create_site(conn, agency, client_id=seed.create_client(conn, agency))
        for manifest in MANIFESTS:
            module = seed.create_module(conn, module_id=uuid.uuid4(), manifest=manifest, module_type="app")
            conn.execute("INSERT INTO site_module_installations (site_id, module_id, agency_id, status, config) "
                         "VALUES (%s, %s, %s, 'provisioning', %s)", (site, module, agency, Jsonb({})))
            assert provisioner.provision_module(module).action == "created"
        schemas = [r["nspname"] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ '^mod_[a-f0-9]{8}$'")]
        assert len(schemas) >= len(MANIFESTS)
        yield conn


@pytest.mark.parametrize("rule", ALL_RULES)
def test_the_platform_and_every_module_schema_keep_the_linters_rule(linted_db, rule):
    assert findings(linted_db, rule) == []


def test_the_rules_catch_what_the_linter_reports(linted_db):
    """Each rule finds its offence when one is planted (in a transaction that is rolled back)."""
    planted = {
        "rls_enabled_on_exposed_tables": "CREATE TABLE public.lint_probe (id int PRIMARY KEY)",
        "one_permissive_policy_per_role_and_command":
            "CREATE POLICY lint_probe ON public.clients FOR ALL TO authenticated USING (false)",
        "no_user_metadata_or_always_true_write_policies":
            "CREATE POLICY lint_probe ON public.clients AS RESTRICTIVE FOR UPDATE TO authenticated "
            "USING ((auth.jwt() -> 'user_metadata') IS NOT NULL)",
        "functions_have_a_fixed_search_path": "CREATE FUNCTION private.lint_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "definer_functions_are_not_exposed":
            "CREATE FUNCTION public.lint_probe() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = '' "
            "AS 'SELECT 1'; GRANT EXECUTE ON FUNCTION public.lint_probe() TO authenticated",
        "request_roles_hold_only_rls_governed_privileges": "GRANT TRUNCATE ON public.sites TO authenticated",
        "no_exposed_relation_bypasses_rls": "CREATE VIEW public.lint_probe AS SELECT id FROM public.sites; "
                                            "GRANT SELECT ON public.lint_probe TO authenticated",
        "no_extension_in_public_no_key_to_auth_uniques_no_reg_columns":
            "CREATE TABLE private.lint_probe (id int PRIMARY KEY, f regproc)",
        "keys_indexed_indexes_distinct_tables_keyed": "CREATE INDEX lint_probe_a ON public.clients (name); "
                                                      "CREATE INDEX lint_probe_b ON public.clients (name)",
        "module_foreign_keys_stay_in_their_site": None,
        "policy_helpers_run_once_per_statement":
            "CREATE POLICY lint_probe ON public.clients AS RESTRICTIVE FOR SELECT TO authenticated "
            "USING (agency_id = ANY (private.member_agency_ids()))",
    }
    schema = linted_db.execute("SELECT min(nspname) AS s FROM pg_namespace WHERE nspname ~ '^mod_'").fetchone()["s"]
    table = linted_db.execute("SELECT min(relname) AS t FROM pg_class WHERE relnamespace = %s::regnamespace "
                              "AND relkind = 'r'", (schema,)).fetchone()["t"]
    planted["module_foreign_keys_stay_in_their_site"] = (
        f'ALTER TABLE "{schema}"."{table}" ADD COLUMN lint_probe uuid REFERENCES public.sites (id); '
        f'CREATE INDEX lint_probe ON "{schema}"."{table}" (lint_probe)')
    assert set(planted) == set(ALL_RULES)
    for rule, statement in planted.items():
        with pytest.raises(_RolledBack):
            with linted_db.transaction():
                linted_db.execute(statement)
                assert findings(linted_db, rule), rule
                raise _RolledBack


class _RolledBack(Exception):
    pass


@pytest.mark.parametrize("expression, calls", [
    ("(site_id = ANY (( SELECT private.readable_site_ids() AS readable_site_ids)))", []),
    ("(id = ( SELECT auth.uid() AS uid))", []),
    ("(id = auth.uid())", ["auth.uid"]),
    ("(( SELECT coalesce(auth.uid(), NULL::uuid) AS uid) = id)", ["auth.uid"]),
    ("((current_setting('x'::text, true))::uuid = id)", ["current_setting"]),
])
def test_per_row_helper_calls_are_recognised(expression, calls):
    assert per_row_calls(expression) == calls


@pytest.mark.skipif(not os.environ.get("DRAMAC_SPLINTER_SQL"), reason="DRAMAC_SPLINTER_SQL names no splinter.sql")
def test_splinter_itself_reports_no_error_or_warning(linted_db):
    schemas = [r["nspname"] for r in linted_db.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = 'public' OR nspname ~ '^mod_[a-f0-9]{8}$'")]
    with linted_db.transaction():
        linted_db.execute("SELECT set_config('pgrst.db_schemas', %s, true)", (",".join(schemas),))
        cur = linted_db.execute(Path(os.environ["DRAMAC_SPLINTER_SQL"]).read_text())
        while cur.description is None and cur.nextset():
            pass
        reported = [f"{r['level']} {r['name']}: {r['detail']}" for r in cur.fetchall()
                    if r["level"] != "INFO"]
    assert reported == []
