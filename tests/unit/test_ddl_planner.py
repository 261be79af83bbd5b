"""The DDL planner: the script for a new schema, additive upgrades, refused destructive changes, and
hostile manifests that never get their text into SQL."""

import re
import uuid

import pytest
from dramac_common.provisioning import ddl
from dramac_common.provisioning.errors import ManifestError, ProvisioningRefused
from dramac_common.provisioning.manifest import validate_manifest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dramac_dev.seed import CRM_MANIFEST

SCHEMA = "mod_3f2a9c1e"
MODULE_ID = uuid.UUID("3f2a9c1e-0000-4000-8000-000000000f01")


def definition_of(raw):
    return validate_manifest(raw)[1]


def script_of(plan) -> str:
    return plan.script().as_string()


def catalog_after(definition) -> ddl.CatalogState:
    """The catalog state a fresh plan of ``definition`` produces (as the integration tests verify)."""
    tables, constraints, relations = {}, {}, set()
    for t in definition.tables:
        cols = {name: ddl.CatalogColumn(t.column_type(name).name, True)
                for name in ("id", "site_id", "created_at", "updated_at")}
        cols.update({c.name: ddl.CatalogColumn(c.type.name, not c.nullable) for c in t.columns})
        tables[t.name] = cols
        constraints[t.name] = {c.name for c in t.checks} | {u.name for u in t.uniques} | {
            f.name for f in t.foreign_keys} | {f"{t.name}_pkey", t.site_key_name}
        relations |= {t.name, f"{t.name}_pkey", t.site_key_name} | {i.name for i in t.indexes} | {
            u.name for u in t.uniques}
    return ddl.CatalogState(True, tables, constraints, relations)


def test_new_schema_script_creates_everything_and_secures_each_table_by_the_one_database_function():
    plan = ddl.plan_schema(SCHEMA, definition_of(CRM_MANIFEST), ddl.CatalogState(), MODULE_ID)
    text = script_of(plan)
    assert text.startswith('CREATE SCHEMA "mod_3f2a9c1e"')
    assert plan.created_tables == ["companies", "contacts"]
    # RLS, privileges and policies: private.secure_module_table (migration 0073), named by module id
    for table in ("companies", "contacts"):
        assert f"SELECT private.secure_module_table('mod_3f2a9c1e', '{table}', '{MODULE_ID}')" in text
    assert text.count("TO authenticated") == 1  # the schema's usage; the tables' grants are the function's
    assert "anon" not in text and "POLICY" not in text
    assert "public.sites" not in text  # no key to sites: a site's rows go with its installations (0090)
    assert 'UNIQUE (site_id, id)' in text
    assert ('FOREIGN KEY (site_id, "company_id") REFERENCES "mod_3f2a9c1e"."companies" (site_id, "id") '
            'ON DELETE SET NULL ("company_id")') in text
    assert 'CREATE INDEX "contacts_email_idx" ON "mod_3f2a9c1e"."contacts" USING btree ("site_id", "email")' in text
    assert "EXECUTE FUNCTION private.set_updated_at()" in text


def test_plan_against_its_own_result_is_empty():
    definition = definition_of(CRM_MANIFEST)
    assert ddl.plan_schema(SCHEMA, definition, catalog_after(definition), MODULE_ID).is_empty


def test_upgrade_adds_tables_columns_and_indexes_only():
    old = definition_of(CRM_MANIFEST)
    newer = {**CRM_MANIFEST, "version": "1.1.0", "database": {"tables": [
        *CRM_MANIFEST["database"]["tables"][:1],
        {**CRM_MANIFEST["database"]["tables"][1],
         "columns": [*CRM_MANIFEST["database"]["tables"][1]["columns"],
                     {"name": "phone", "type": "varchar(32)"},
                     {"name": "score_band", "type": "text", "nullable": False, "default": "'cold'",
                      "check": "score_band IN ('cold', 'warm', 'hot')"}],
         "indexes": [*CRM_MANIFEST["database"]["tables"][1]["indexes"], {"columns": ["phone"]}]},
        {"name": "deals", "columns": [{"name": "contact_id", "type": "uuid"}],
         "foreignKeys": [{"column": "contact_id", "references": {"table": "contacts"}, "onDelete": "CASCADE"}]},
    ]}}
    plan = ddl.plan_schema(SCHEMA, definition_of(newer), catalog_after(old), MODULE_ID)
    text = script_of(plan)
    assert "CREATE SCHEMA" not in text
    assert plan.created_tables == ["deals"]
    assert plan.changed_tables == ["contacts"]
    assert 'ADD COLUMN "phone" character varying(32)' in text
    assert "ADD COLUMN \"score_band\" text NOT NULL DEFAULT 'cold'" in text
    assert 'ADD CONSTRAINT "contacts_score_band_check" CHECK' in text
    assert 'CREATE INDEX "contacts_phone_idx"' in text
    assert "DROP" not in text


@pytest.mark.parametrize(
    "change, problem",
    [(lambda cols: [cols[0], *cols[2:]], "column first_name: dropping a column is not supported"),
     (lambda cols: [{**cols[0], "type": "varchar(100)"}, *cols[1:]],
      "column email: changing its type from text to character varying(100) is not supported"),
     (lambda cols: [{**cols[0], "nullable": True}, *cols[1:]], "column email: changing it to nullable"),
     (lambda cols: [*cols, {"name": "required", "type": "text", "nullable": False}],
      "column required: a NOT NULL column added to an existing table needs a default")],
)
def test_destructive_upgrades_are_refused(change, problem):
    old = definition_of(CRM_MANIFEST)
    tables = CRM_MANIFEST["database"]["tables"]
    newer = {**CRM_MANIFEST, "version": "2.0.0", "database": {"tables": [
        tables[0], {**tables[1], "columns": change(tables[1]["columns"])}]}}
    with pytest.raises(ProvisioningRefused) as info:
        ddl.plan_schema(SCHEMA, definition_of(newer), catalog_after(old), MODULE_ID)
    assert f"table contacts, {problem}" in str(info.value)


def test_dropping_a_table_is_refused():
    old = definition_of(CRM_MANIFEST)
    newer = {**CRM_MANIFEST, "version": "2.0.0",
             "database": {"tables": CRM_MANIFEST["database"]["tables"][:1]}}
    with pytest.raises(ProvisioningRefused, match="table contacts: dropping a table is not supported"):
        ddl.plan_schema(SCHEMA, definition_of(newer), catalog_after(old), MODULE_ID)


# Hostile manifests ------------------------------------------------------------------------------

HOSTILE_FRAGMENTS = [
    "'", "''", ";", "--", "/*", "*/", "$$", "$x$", "\\", '"', "E'", "U&'", "\x00", "(SELECT 1)", "DROP TABLE public.sites",
    "pg_sleep(5)", "set_config('role','postgres',false)", "public.sites", "current_user", ")", "(", ",",
    "lead_score", "0", "now()", "'x'", "IN", "OR 1=1", "::regclass", "COPY", "\n", "auth.users", "ʼ", "%s", "{}",
]


def _strip_literals(text: str) -> str:
    """SQL text with string literals and quoted identifiers removed."""
    return re.sub(r"E?'(?:[^'\\]|''|\\.)*'|\"(?:[^\"]|\"\")*\"", "", text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    default=st.lists(st.sampled_from(HOSTILE_FRAGMENTS), max_size=6).map(" ".join),
    check=st.lists(st.sampled_from(HOSTILE_FRAGMENTS), max_size=6).map(" ".join),
    predicate=st.lists(st.sampled_from(HOSTILE_FRAGMENTS), max_size=6).map(" ".join),
    name=st.one_of(st.sampled_from(["lead_score", "x; drop", 'a"b', "ok_name", "ümlaut", "sites", "select"]),
                   st.text(max_size=70)),
    type_text=st.one_of(st.sampled_from(["integer", "text", "integer; drop table x", "int4range", "text[]"]),
                        st.text(max_size=20)),
)
def test_hostile_table_definitions_never_reach_sql_as_text(default, check, predicate, name, type_text):
    manifest = {"version": "1.0.0", "database": {"tables": [{
        "name": name, "columns": [{"name": "lead_score", "type": type_text, "default": default, "check": check}],
        "indexes": [{"columns": ["lead_score"], "where": predicate}]}]}}
    try:
        definition = definition_of(manifest)
    except ManifestError:
        return
    text = _strip_literals(script_of(ddl.plan_schema(SCHEMA, definition, ddl.CatalogState(), MODULE_ID)))
    statements = list(text.split(";\n"))
    assert all(";" not in s for s in statements)
    for forbidden in ("--", "/*", "$", "SELECT 1", "pg_sleep", "set_config", "regclass", "COPY", "auth.users"):
        assert forbidden not in text
