"""Manifest validation: what a module developer may declare, and the errors they get otherwise."""

import copy
import uuid

import pytest
from dramac_common.provisioning import registry
from dramac_common.provisioning.column_types import ColumnTypeError, parse_column_type
from dramac_common.provisioning.errors import ManifestError
from dramac_common.provisioning.expressions import (
    Context,
    ExpressionError,
    _Parser,
    number_literal,
    parse_expression,
    sql_literal,
    text_literal,
)
from dramac_common.provisioning.manifest import object_name, parse_version, validate_manifest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from dramac_dev.seed import CRM_MANIFEST


def manifest_with(*tables, version="1.0.0"):
    return {"version": version, "database": {"tables": list(tables)}}


def table(name="contacts", columns=None, **extra):
    return {"name": name, "columns": columns if columns is not None else [{"name": "email", "type": "text"}],
            **extra}


def problems_of(raw) -> str:
    with pytest.raises(ManifestError) as info:
        validate_manifest(raw)
    return str(info.value)


def test_the_demo_crm_manifest_is_valid():
    _, definition = validate_manifest(CRM_MANIFEST)
    assert definition.version == "1.0.0"
    assert definition.table_names == ["companies", "contacts"]
    contacts = definition.table("contacts")
    assert contacts.entity == "contact"
    assert [c.name for c in contacts.columns] == ["email", "first_name", "last_name", "status", "lead_score",
                                                  "company_id"]


def test_entity_defaults_to_the_table_name_without_a_trailing_s():
    _, definition = validate_manifest(manifest_with(table("deals")))
    assert definition.table("deals").entity == "deal"


def test_manifest_without_tables_needs_no_version():
    manifest, definition = validate_manifest({"dependencies": ["crm"], "events": ["x.y"]})
    assert definition.tables == ()
    assert manifest.dependencies == ["crm"]


@pytest.mark.parametrize(
    "text, canonical",
    [("text", "text"), ("VARCHAR(255)", "character varying(255)"), ("character varying ( 40 )", "character varying(40)"),
     ("varchar", "character varying"), ("char", "character(1)"), ("int", "integer"), ("int8", "bigint"),
     ("numeric(10,2)", "numeric(10,2)"), ("decimal(12)", "numeric(12,0)"), ("numeric", "numeric"),
     ("timestamptz", "timestamp with time zone"), ("timestamp", "timestamp without time zone"),
     ("float", None), ("double precision", "double precision"), ("text[]", "text[]"), ("uuid [ ]", "uuid[]"),
     ("jsonb", "jsonb"), ("bool", "boolean")],
)
def test_allowed_column_types_have_their_catalog_names(text, canonical):
    if canonical is None:
        with pytest.raises(ColumnTypeError):
            parse_column_type(text)
    else:
        assert parse_column_type(text).name == canonical


@pytest.mark.parametrize(
    "text",
    ["serial", "money", "text; drop table x", "varchar(0)", "varchar(99999999)", "numeric(2,5)", "numeric(0)",
     "integer(4)", "text[][]", "int4range", "regclass", "pg_catalog.text", "", "x" * 100, "text -- x"],
)
def test_other_column_types_are_refused(text):
    with pytest.raises(ColumnTypeError):
        parse_column_type(text)


def test_error_names_table_column_and_the_problem_for_a_bad_type():
    message = problems_of(manifest_with(table(columns=[{"name": "price", "type": "money"}])))
    assert "table contacts, column price" in message
    assert "'money' is not allowed" in message


@pytest.mark.parametrize(
    "name, problem",
    [("Email", "invalid column name"), ("e-mail", "invalid column name"), ("x" * 64, "invalid column name"),
     ("select", "reserved SQL word"), ("user", "reserved SQL word"), ("xmin", "system column"),
     ("1st", "invalid column name"), ('a"b', "invalid column name")],
)
def test_bad_column_names_are_refused(name, problem):
    message = problems_of(manifest_with(table(columns=[{"name": name, "type": "text"}])))
    assert problem in message


def test_identifiers_of_63_bytes_are_accepted_and_64_are_refused():
    _, definition = validate_manifest(manifest_with(table(name="t" * 63, columns=[{"name": "c" * 63, "type": "text"}])))
    [accepted] = definition.tables
    assert (accepted.name, [c.name for c in accepted.columns]) == ("t" * 63, ["c" * 63])
    assert "invalid" in problems_of(manifest_with(table(name="t" * 64)))
    assert "invalid" in problems_of(manifest_with(table(columns=[{"name": "c" * 64, "type": "text"}])))


def test_duplicate_tables_and_columns_are_refused():
    assert "declared more than once" in problems_of(manifest_with(table(), table()))
    cols = [{"name": "email", "type": "text"}, {"name": "email", "type": "text"}]
    assert "column email: declared more than once" in problems_of(manifest_with(table(columns=cols)))


def test_implicit_columns_may_be_listed_with_their_own_type_only():
    ok = [{"name": "id", "type": "uuid", "primaryKey": True}, {"name": "created_at", "type": "timestamptz"}]
    _, definition = validate_manifest(manifest_with(table(columns=ok)))
    assert definition.table("contacts").columns == ()
    message = problems_of(manifest_with(table(columns=[{"name": "site_id", "type": "text"}])))
    assert "site_id is provided by the platform as uuid" in message


def test_unknown_keys_and_custom_rls_policies_are_refused():
    message = problems_of(manifest_with(table(rlsPolicies=[{"name": "open", "using": "true"}])))
    assert "table contacts: custom RLS policies are not supported" in message
    assert "unknown key" in problems_of(manifest_with(table(columns=[{"name": "a", "type": "text", "sql": "x"}])))


def test_structure_errors_name_where_they_are():
    message = problems_of(manifest_with(table(columns=[{"name": "a", "type": "text", "nullable": "yes"}])))
    assert "table contacts, column a, field 'nullable'" in message


def test_version_is_required_with_tables_and_must_be_semantic():
    assert "version is required" in problems_of({"database": {"tables": [table()]}})
    assert "MAJOR.MINOR.PATCH" in problems_of(manifest_with(table(), version="v1"))
    assert parse_version("1.10.0") > parse_version("1.9.3")


def test_dependencies_must_be_slugs():
    assert "is not a module slug" in problems_of({"dependencies": ["CRM; drop"]})


@given(st.text(max_size=40))
@settings(max_examples=500, deadline=None)
def test_text_literal_writes_a_value_as_psycopg_does(value):
    try:
        expected = sql.Literal(value).as_string()
    except Exception as exc:  # a NUL: Literal refuses it, and so does text_literal
        with pytest.raises(type(exc)):
            text_literal(value)
        return
    assert text_literal(value) == expected


@given(st.one_of(st.integers(), st.integers(min_value=-(10 ** 40), max_value=10 ** 40), st.decimals(),
                 st.decimals(allow_nan=False, allow_infinity=False, places=3)))
@settings(max_examples=500, deadline=None)
def test_number_literal_writes_a_number_as_psycopg_does(value):
    assert number_literal(value) == sql.Literal(value).as_string()


@given(st.one_of(st.none(), st.uuids(), st.text(alphabet="ab'\\ -", max_size=8), st.integers(), st.booleans()))
@settings(max_examples=200, deadline=None)
def test_sql_literal_writes_the_provisioners_values_as_psycopg_does(value):
    assert sql_literal(value) == sql.Literal(value).as_string()


def test_the_registry_upsert_writes_its_values_as_text():
    module_id = uuid.UUID("0f8e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b")
    for tables, array in ((["contacts", "deals"], "ARRAY['contacts', 'deals']"), ([], "ARRAY[]")):
        text = registry.upsert_text(module_id, "0f8e1a2b", "mod_0f8e1a2b", tables, "1.2.3")
        assert text.split(" VALUES (", 1)[1].split(") ON CONFLICT", 1)[0] == (
            f"'{module_id.hex}'::uuid, '0f8e1a2b', true, 'mod_0f8e1a2b', {array}::text[], 'active', '1.2.3'")


@given(st.one_of(
    st.from_regex(r"\s*(\d{1,30}|'([^'\x00]|'')*')\s*", fullmatch=True),
    st.from_regex(r"\s*[-+(]?\s*(\d{1,5}|'[a-z{}]*')\s*[-+)a-z0-9:']*\s*", fullmatch=True),
    st.text(alphabet="0123456789' \t\n(){}abe-+.:", max_size=12)))
@settings(max_examples=400, deadline=None)
def test_a_lone_literal_parses_as_the_grammar_parses_it(text):
    """parse_expression answers a lone integer or string literal without the parser: the same node,
    or the same error, as the parser gives."""
    if "\x00" in text or not text.strip():
        return
    try:
        expected = _Parser(text, Context.DEFAULT, frozenset()).parse()
    except ExpressionError as exc:
        with pytest.raises(ExpressionError) as raised:
            parse_expression(text, Context.DEFAULT)
        assert str(raised.value) == str(exc)
        return
    assert parse_expression(text, Context.DEFAULT) == expected


@pytest.mark.parametrize(
    "expression, context, sql_text",
    [("lead_score >= 0", Context.CHECK, '("lead_score" >= 0)'),
     ("status IN ('lead', 'customer')", Context.CHECK, "(\"status\" IN ('lead', 'customer'))"),
     ("lower(email) <> ''", Context.CHECK, "(pg_catalog.lower(\"email\") <> '')"),
     ("lead_score BETWEEN 0 AND 100 OR lead_score IS NULL", Context.CHECK,
      '(("lead_score" BETWEEN 0 AND 100) OR ("lead_score" IS NULL))'),
     ("NOT email LIKE '%@spam.test'", Context.CHECK, "(NOT (\"email\" LIKE '%@spam.test'))"),
     ("'it''s'", Context.DEFAULT, "'it''s'"),
     ("now()", Context.DEFAULT, "pg_catalog.now()"),
     ("gen_random_uuid()", Context.DEFAULT, "pg_catalog.gen_random_uuid()"),
     ("'{}'::jsonb", Context.DEFAULT, "CAST('{}' AS jsonb)"),
     ("CAST('1.50' AS numeric(10,2))", Context.DEFAULT, "CAST('1.50' AS numeric(10,2))"),
     ("-1.5e3", Context.DEFAULT, "(- 1.5E+3)"),
     ("status = 'active'", Context.PREDICATE, "(\"status\" = 'active')"),
     ("deleted_at IS NULL", Context.PREDICATE, '("deleted_at" IS NULL)')],
)
def test_expressions_are_re_emitted_from_the_ast(expression, context, sql_text):
    columns = {"lead_score", "status", "email", "deleted_at"}
    assert parse_expression(expression, context, columns).to_sql().as_string() == sql_text


@pytest.mark.parametrize(
    "expression, context, problem",
    [("0; DROP TABLE public.sites", Context.DEFAULT, "unexpected character ';'"),
     ("0 -- comment", Context.DEFAULT, "comments are not allowed"),
     ("0 /* comment */", Context.DEFAULT, "comments are not allowed"),
     ("$$x$$", Context.DEFAULT, "unexpected character '$'"),
     ("$tag$x$tag$", Context.DEFAULT, "unexpected character '$'"),
     ("E'\\x27'", Context.DEFAULT, "prefixed string literals"),
     ("U&'\\0041'", Context.DEFAULT, "unexpected character '&'"),
     ("'unterminated", Context.DEFAULT, "unterminated string"),
     ("(SELECT 1)", Context.CHECK, "subqueries are not allowed"),
     ("email IN (SELECT email FROM auth.users)", Context.CHECK, "subqueries are not allowed"),
     ("EXISTS (SELECT 1)", Context.CHECK, "subqueries are not allowed"),
     ("pg_sleep(10) IS NULL", Context.CHECK, "function pg_sleep() is not allowed"),
     ("set_config('role', 'postgres', false)", Context.DEFAULT, "function set_config() is not allowed"),
     ("public.evil()", Context.DEFAULT, "unexpected character '.'"),
     ('"email" = 1', Context.CHECK, "unexpected character '\"'"),
     ("lead", Context.DEFAULT, "a default cannot refer to a column"),
     ("nope > 1", Context.CHECK, "unknown column 'nope'"),
     ("gen_random_uuid() IS NOT NULL", Context.CHECK, "volatile"),
     ("created_at < now()", Context.PREDICATE, "not immutable"),
     ("created_at < current_timestamp", Context.PREDICATE, "not immutable"),
     ("lower()", Context.DEFAULT, "takes 1 argument"),
     ("1 2", Context.DEFAULT, "unexpected '2'"),
     ("0x1F", Context.DEFAULT, "malformed number"),
     ("'a'::regclass", Context.DEFAULT, "type 'regclass' is not allowed"),
     ("email[1]", Context.CHECK, "unexpected '['"),
     ("", Context.DEFAULT, "empty"),
     ("(" * 40 + "1" + ")" * 40, Context.DEFAULT, "nested more than"),
     ("1" + " + 1" * 600, Context.DEFAULT, "longer than")],
)
def test_expressions_outside_the_grammar_are_refused(expression, context, problem):
    with pytest.raises(ExpressionError) as info:
        parse_expression(expression, context, {"email", "created_at"})
    assert problem in str(info.value)


def test_a_bad_check_is_reported_with_table_and_column():
    cols = [{"name": "lead_score", "type": "integer", "check": "lead_score >= 0; DROP TABLE x"}]
    message = problems_of(manifest_with(table(columns=cols)))
    assert message.startswith("Invalid module manifest: table contacts, column lead_score: check:")


def test_btree_indexes_lead_with_site_id_and_unique_means_unique_per_site():
    t = table(columns=[{"name": "email", "type": "text", "unique": True}, {"name": "tags", "type": "text[]"},
                       {"name": "status", "type": "text"}],
              indexes=[{"columns": ["status"], "where": "status <> 'archived'"},
                       {"columns": ["tags"], "using": "gin"},
                       {"name": "by_email", "columns": ["email"], "unique": True}])
    _, definition = validate_manifest(manifest_with(t))
    contacts = definition.table("contacts")
    assert [u.columns for u in contacts.uniques] == [("site_id", "email")]
    by_name = {i.name: i for i in contacts.indexes}
    assert by_name["contacts_status_idx"].columns == ("site_id", "status")
    assert by_name["contacts_status_idx"].where is not None
    assert by_name["contacts_tags_idx"].columns == ("tags",)
    assert by_name["by_email"].unique and by_name["by_email"].columns == ("site_id", "email")


@pytest.mark.parametrize(
    "index, problem",
    [({"columns": ["email"], "using": "gin"}, "cannot be indexed with gin"),
     ({"columns": ["email"], "using": "brin"}, "is not one of"),
     ({"columns": ["email"], "using": "gin", "unique": True}, "only btree indexes can be unique"),
     ({"columns": ["email", "id"], "using": "hash"}, "exactly one column"),
     ({"columns": ["nope"]}, "unknown column 'nope'"),
     ({"columns": ["email", "email"]}, "listed twice"),
     ({"columns": []}, "at least 1 item"),
     ({"columns": ["email"], "where": "email = (SELECT 'x')"}, "subqueries are not allowed"),
     ({"name": "contacts", "columns": ["email"]}, "already used by table contacts")],
)
def test_bad_indexes_are_refused(index, problem):
    assert problem in problems_of(manifest_with(table(indexes=[index])))


def test_foreign_keys_are_checked_against_the_manifest():
    companies = table("companies", columns=[{"name": "code", "type": "text", "unique": True}])

    def fk(**kw):
        base = {"column": "company_id", "references": {"table": "companies", "column": "id"}}
        return {**base, **kw}

    def contacts(*fks, column_type="uuid", nullable=True):
        return table(columns=[{"name": "company_id", "type": column_type, "nullable": nullable},
                              {"name": "company_code", "type": "text"}], foreignKeys=list(fks))

    validate_manifest(manifest_with(companies, contacts(fk(onDelete="set null"))))
    validate_manifest(manifest_with(companies, contacts(
        {"column": "company_code", "references": {"table": "companies", "column": "code"}})))
    cases = [
        (contacts(fk(references={"table": "nope", "column": "id"})), "references unknown table 'nope'"),
        (contacts(fk(), column_type="text"), "does not match companies.id (uuid)"),
        (contacts(fk(onDelete="SET NULL"), nullable=False), "onDelete SET NULL needs a nullable column"),
        (contacts(fk(onDelete="DROP")), "onDelete must be one of"),
        (contacts(fk(references={"schema": "auth", "table": "users", "column": "id"})),
         "a foreign key may reference this module's own tables only (other schemas are not the module's)"),
        (contacts({"column": "company_code", "references": {"table": "companies", "column": "created_at"}}),
         "neither id nor a unique column"),
        (contacts(fk(column="site_id")), "is provided by the platform"),
    ]
    for manifest_table, problem in cases:
        assert problem in problems_of(manifest_with(companies, manifest_table)), problem


def test_a_foreign_key_to_public_sites_is_refused_a_row_belongs_to_its_own_site_only():
    t = table(columns=[{"name": "other_site", "type": "uuid"}],
              foreignKeys=[{"column": "other_site", "references": {"schema": "public", "table": "sites"}}])
    assert problems_of(manifest_with(t)) == (
        "Invalid module manifest: table contacts, column other_site: a foreign key may reference this module's "
        "own tables only (every row already belongs to its site (site_id), and a row may not name another site)")


def test_every_foreign_key_is_indexed_site_id_first():
    companies = table("companies", columns=[{"name": "name", "type": "text"}])
    t = table(columns=[{"name": "company_id", "type": "uuid"}],
              foreignKeys=[{"column": "company_id", "references": {"table": "companies"}}])
    _, definition = validate_manifest(manifest_with(companies, t))
    assert ("site_id", "company_id") in [i.columns for i in definition.table("contacts").indexes]


def test_generated_names_fit_in_63_bytes_and_are_deterministic():
    name = object_name("t" * 63, "c" * 63, "check")
    assert len(name) <= 63 and name.endswith("_check")
    assert name == object_name("t" * 63, "c" * 63, "check")
    assert name != object_name("t" * 63, "c" * 62 + "d", "check")


def test_every_problem_is_reported_at_once():
    bad = copy.deepcopy(CRM_MANIFEST)
    bad["database"]["tables"][0]["columns"].append({"name": "Bad", "type": "text"})
    bad["database"]["tables"][1]["columns"].append({"name": "price", "type": "money"})
    with pytest.raises(ManifestError) as info:
        validate_manifest(bad)
    assert len(info.value.problems) == 2


# What the validator accepts must provision: definitions PostgreSQL refuses at install are refused here,
# naming table, column and reason (the property tests in test_manifest_agreement.py hold it to that).

@pytest.mark.parametrize(
    "column, problem",
    [({"name": "doc", "type": "json", "primaryKey": True}, "cannot be part of a primary key"),
     ({"name": "doc", "type": "json", "unique": True}, "cannot be unique"),
     ({"name": "n", "type": "integer", "default": True}, "cannot be stored in a integer column"),
     ({"name": "n", "type": "integer", "default": "true"}, "cannot be stored in a integer column"),
     ({"name": "n", "type": "numeric", "default": "1e999999"}, "out of range for PostgreSQL's numeric"),
     ({"name": "n", "type": "integer", "default": "1e999999"}, "out of range for PostgreSQL's numeric"),
     ({"name": "n", "type": "integer", "default": "3000000000"}, "out of range for integer"),
     ({"name": "n", "type": "smallint", "default": "'40000'"}, "out of range for smallint"),
     ({"name": "n", "type": "numeric(3,1)", "default": "99.96"}, "at most 2 digits before the point"),
     ({"name": "u", "type": "uuid", "default": "'not-a-uuid'"}, "is not a UUID"),
     ({"name": "d", "type": "date", "default": "'2024-02-30'"}, "is not a valid date"),
     ({"name": "d", "type": "date", "default": "'infinity'"}, "is not an ISO 8601 date"),
     ({"name": "j", "type": "jsonb", "default": "'{oops}'"}, "is not valid JSON"),
     ({"name": "j", "type": "jsonb", "default": "'{\"a\": \"\\u0000\"}'"}, "cannot store"),
     ({"name": "s", "type": "varchar(3)", "default": "'abcd'"}, "longer than character varying(3)"),
     ({"name": "s", "type": "varchar(3)", "default": "now()"}, "may not fit a character varying(3) column"),
     ({"name": "b", "type": "boolean", "default": "1"}, "cannot be stored in a boolean column"),
     ({"name": "t", "type": "text[]", "default": "'x'"}, "is not an array literal"),
     ({"name": "n", "type": "integer", "check": "length(n) > 0"}, "length() takes text, not integer"),
     ({"name": "n", "type": "integer", "check": "n"}, "check needs a boolean, not integer"),
     ({"name": "n", "type": "integer", "check": "n > 1/0"}, "between two constants"),
     ({"name": "s", "type": "text", "check": "s >= 5"}, "cannot compare text with integer"),
     ({"name": "r", "type": "real", "check": "r % 2 = 0"}, "operator real % integer does not exist"),
     ({"name": "u", "type": "uuid", "check": "u = 'abc'"}, "is not a UUID"),
     ({"name": "j", "type": "json", "check": "j = j"}, "json has no comparison operators")],
)
def test_definitions_postgresql_refuses_are_refused_with_the_reason(column, problem):
    message = problems_of(manifest_with(table(columns=[column])))
    assert f"table contacts, column {column['name']}:" in message and problem in message, message


@pytest.mark.parametrize(
    "column, index, problem",
    [({"name": "doc", "type": "json"}, {"columns": ["doc"]}, "cannot be indexed with btree"),
     ({"name": "doc", "type": "json[]"}, {"columns": ["doc"]}, "cannot be indexed with btree"),
     ({"name": "doc", "type": "json[]"}, {"columns": ["doc"], "using": "gin"}, "cannot be indexed with gin"),
     ({"name": "doc", "type": "json[]"}, {"columns": ["doc"], "using": "hash"}, "cannot be indexed with hash"),
     ({"name": "at", "type": "timestamptz"}, {"columns": ["at"], "where": "at > '2024-01-01'::date"},
      "must not depend on the session's time zone"),
     ({"name": "d", "type": "date"}, {"columns": ["d"], "where": "d::text > 'a'"}, "must not depend on the session"),
     ({"name": "n", "type": "integer"}, {"columns": ["n"], "where": "n"}, "needs a boolean")],
)
def test_indexes_postgresql_refuses_are_refused(column, index, problem):
    message = problems_of(manifest_with(table(columns=[column], indexes=[index])))
    assert problem in message, message


def test_a_gist_index_on_inet_names_its_operator_class():
    from dramac_common.provisioning import ddl

    _, definition = validate_manifest(manifest_with(table(columns=[{"name": "ip", "type": "inet"}],
                                                          indexes=[{"columns": ["ip"], "using": "gist"}])))
    script = ddl.plan_schema("mod_00000000", definition, ddl.CatalogState(), uuid.UUID(int=1)).script().as_string()
    assert 'USING gist ("ip" inet_ops)' in script


@pytest.mark.parametrize(
    "column",
    [{"name": "n", "type": "integer", "default": "2.5"}, {"name": "n", "type": "numeric(3,1)", "default": "99.94"},
     {"name": "b", "type": "boolean", "default": "'yes'"}, {"name": "d", "type": "date", "default": "now()"},
     {"name": "t", "type": "timestamptz", "default": "now() + '7 days'::interval"},
     {"name": "j", "type": "jsonb", "default": "'{}'::json"}, {"name": "s", "type": "text", "default": "12345"},
     {"name": "a", "type": "integer[]", "default": "'{1,2}'"},
     {"name": "s", "type": "text", "check": "s IN ('a', 'b') AND length(s) < 10"},
     {"name": "n", "type": "integer", "check": "n BETWEEN 0 AND 100 OR n IS NULL"}],
)
def test_definitions_postgresql_takes_are_accepted(column):
    _, definition = validate_manifest(manifest_with(table(columns=[column])))
    [accepted] = definition.tables[0].columns
    assert (accepted.name, accepted.type.name) == (column["name"], parse_column_type(column["type"]).name)
    assert (accepted.default is not None) == ("default" in column)
    assert len(definition.tables[0].checks) == ("check" in column)
