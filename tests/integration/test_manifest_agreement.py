"""What the manifest validator accepts, PostgreSQL provisions: generated manifests (every allowed column
type, defaults, checks, indexes incl. partial and unique, foreign keys) go through ``validate_manifest``
and the real provisioner on real PostgreSQL; near-valid ones (one plausible mistake planted) are either
refused by the validator or provision; and generated expressions the type checker accepts as a default,
a check or an index predicate are taken by the server, in the DDL the planner writes.

Example counts are sized for ``make test`` (``DRAMAC_RELIABILITY_PROFILE=deep`` multiplies them)."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from dramac_common.provisioning import provisioner
from dramac_common.provisioning.column_types import parse_column_type
from dramac_common.provisioning.errors import ManifestError, ProvisioningRefused
from dramac_common.provisioning.manifest import validate_manifest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.manifests import TYPES, near_valid_manifests, valid_manifests

DEEP = 10 if os.environ.get("DRAMAC_RELIABILITY_PROFILE") == "deep" else 1
SETTINGS = {"deadline": None, "database": None,
                "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much]}


def provision(make_module, manifest) -> provisioner.ProvisionResult:
    """Provision ``manifest`` as a new app module with the real provisioner, then drop its schema."""
    module = make_module(module_id=uuid.uuid4(), module_type="app", manifest=manifest)
    try:
        return provisioner.provision_module(module)
    finally:
        provisioner.deprovision_module(module)


@settings(max_examples=25 * DEEP, **SETTINGS)
@given(manifest=valid_manifests())
def test_every_valid_manifest_is_accepted_and_provisions(make_module, manifest):
    try:
        validate_manifest(manifest)
    except ManifestError as exc:
        pytest.fail(f"the validator refused a valid manifest: {exc.problems}\n{manifest}")
    result = provision(make_module, manifest)
    assert result.action == "created", result


@settings(max_examples=60 * DEEP, **SETTINGS)
@given(case=near_valid_manifests())
def test_the_validator_refuses_or_the_manifest_provisions(make_module, case):
    manifest, mistake = case
    try:
        validate_manifest(manifest)
    except ManifestError:
        event("refused by the validator")
        return
    event("accepted")
    try:
        result = provision(make_module, manifest)
    except ProvisioningRefused as exc:
        pytest.fail(f"the validator accepted what PostgreSQL refused ({mistake}): {exc}\n{manifest}")
    assert result.action == "created"


# Expressions, one at a time, against a table with a column of every type -----------------------------

COLUMNS = {"i": "integer", "s": "smallint", "b": "bigint", "n": "numeric(5,2)", "un": "numeric", "r": "real",
           "d": "double precision", "t": "text", "v": "varchar(3)", "ch": "char(2)", "bo": "boolean", "u": "uuid",
           "dt": "date", "ts": "timestamp", "tz": "timestamptz", "tm": "time", "iv": "interval", "jb": "jsonb",
           "js": "json", "by": "bytea", "ip": "inet", "tv": "tsvector", "ta": "text[]", "ja": "json[]",
           "ia": "integer[]", "created_at": "timestamptz", "id": "uuid"}
COLUMN_TYPES = {name: parse_column_type(text) for name, text in COLUMNS.items()}
LITERALS = ["0", "1", "-1", "2.5", "1e3", "2147483647", "2147483648", "32768", "9223372036854775808", "1e39",
            "1e400", "'a'", "'abc'", "''", "'1'", "'2.5'", "'t'", "'true'", "'2024-01-31'", "'2024-01-31 12:00'",
            "'12:30'", "'1 day'", "'{}'", "'{a,b}'", "'{1,2}'", "'[1]'", "'{\"a\": 1}'", "'10.0.0.1'",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'\\x01'", "'NaN'", "'infinity'", "NULL", "TRUE", "FALSE",
            "now()", "current_date", "current_timestamp", "gen_random_uuid()"]
CAST_TYPES = ["integer", "smallint", "bigint", "numeric", "numeric(3,1)", "real", "double precision", "text",
              "varchar(2)", "boolean", "uuid", "date", "timestamp", "timestamptz", "time", "interval", "jsonb",
              "json", "bytea", "inet", "text[]", "integer[]"]
# well-typed pieces of every type, so combinations of them are often well-typed too
TYPED_PIECES = ["(i + 1)", "(n * 2)", "lower(t)", "length(v)", "(dt + 1)", "(tz - ts)", "(iv * 2)", "(ts + iv)",
                "(tm + iv)", "(jb || '{}')", "(ta || ta)", "round(n, 1)", "abs(r)", "coalesce(i, 0)", "nullif(t, '')",
                "(t || i)", "(i)::text", "(jb)::text", "(by || by)", "(tv || tv)", "(u)::text", "(bo)::integer",
                "(dt - dt)", "(tz + iv)", "(dt + iv)", "(d / 2)", "(s % 2)", "(b - 1)", "(un + 1.5)", "(ch || v)",
                "(js)::jsonb", "(ia)::bigint[]", "(ip)::text", "upper(ch)", "btrim(v, 'x')", "char_length(t)"]
BINARY = ["=", "<>", "<", ">=", "+", "-", "*", "/", "%", "||", "AND", "OR", "LIKE", "ILIKE"]
FUNCTIONS = ["lower", "upper", "length", "char_length", "btrim", "abs", "round"]


def expressions(with_columns: bool) -> st.SearchStrategy[str]:
    atoms = st.sampled_from(LITERALS + (list(COLUMNS) * 3 + TYPED_PIECES * 2 if with_columns else []))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.builds(lambda a, op, b: f"({a} {op} {b})", inner, st.sampled_from(BINARY), inner),
            st.builds(lambda a: f"(- {a})", inner),
            st.builds(lambda a: f"(NOT {a})", inner),
            st.builds(lambda a, t: f"({a} IS {t})", inner, st.sampled_from(["NULL", "NOT NULL", "TRUE", "FALSE"])),
            st.builds(lambda a, b, c: f"({a} IN ({b}, {c}))", inner, inner, inner),
            st.builds(lambda a, b, c: f"({a} BETWEEN {b} AND {c})", inner, inner, inner),
            st.builds(lambda f, a: f"{f}({a})", st.sampled_from(FUNCTIONS), inner),
            st.builds(lambda a, b: f"round({a}, {b})", inner, inner),
            st.builds(lambda a, b: f"coalesce({a}, {b})", inner, inner),
            st.builds(lambda a, b: f"nullif({a}, {b})", inner, inner),
            st.builds(lambda a, t: f"({a})::{t}", inner, st.sampled_from(CAST_TYPES)),
        )

    return st.recursive(atoms, extend, max_leaves=6)


SCRATCH = "mod_agreement_scratch"


@pytest.fixture
def scratch(database_url):
    """A connection with a scratch table holding a column of every type (each test rolls back)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def server_takes(conn: psycopg.Connection, statement: str) -> str | None:
    """None when PostgreSQL runs the statement on the scratch table, else its error (rolled back)."""
    table = ", ".join(f'"{name}" {parse_column_type(text).name}' for name, text in COLUMNS.items())
    try:
        conn.execute("BEGIN")
        conn.execute(f'CREATE SCHEMA "{SCRATCH}"; CREATE TABLE "{SCRATCH}".t ({table})')
        conn.execute(statement)
        return None
    except psycopg.Error as exc:
        return f"{exc.sqlstate} {exc.diag.message_primary}"
    finally:
        conn.execute("ROLLBACK")


def accepted(text: str, where: str, type_text: str | None = None):
    """The validator's verdict on ``text`` as a check, an index predicate or a default (of a column of
    ``type_text``) in a table with a column of every type: the parsed expression it would emit, or None."""
    declared = [{"name": name, "type": t} for name, t in COLUMNS.items() if name not in ("id", "created_at")]
    table: dict = {"name": "t", "columns": declared}
    if where == "check":
        declared[0] = {**declared[0], "check": text}
    elif where == "predicate":
        table["indexes"] = [{"name": "t_pred", "columns": ["i"], "where": text}]
    else:
        table["columns"] = [{"name": "x", "type": type_text, "default": text}]
    try:
        _, definition = validate_manifest({"version": "1.0.0", "database": {"tables": [table]}})
    except ManifestError:
        return None
    built = definition.table("t")
    if where == "check":
        return built.checks[0].expression
    if where == "predicate":
        return next(i.where for i in built.indexes if i.name == "t_pred")
    return built.columns[0].default


@settings(max_examples=300 * DEEP, **SETTINGS)
@given(text=expressions(with_columns=True), where=st.sampled_from(["check", "predicate"]))
def test_conditions_the_validator_accepts_postgresql_takes(scratch, text, where):
    node = accepted(text, where)
    event("accepted" if node is not None else "refused")
    if node is None:
        return
    sql_text = node.to_sql().as_string(scratch)
    statement = (f'ALTER TABLE "{SCRATCH}".t ADD CONSTRAINT c CHECK ({sql_text})' if where == "check"
                 else f'CREATE INDEX ON "{SCRATCH}".t (i) WHERE {sql_text}')
    problem = server_takes(scratch, statement)
    assert problem is None, f"{where} {text!r} accepted, but PostgreSQL says: {problem}"


@settings(max_examples=300 * DEEP, **SETTINGS)
@given(text=expressions(with_columns=False), type_text=st.sampled_from(list(TYPES)))
def test_defaults_the_validator_accepts_postgresql_stores_and_computes(scratch, text, type_text):
    column_type = parse_column_type(type_text)
    node = accepted(text, "default", type_text)
    event("accepted" if node is not None else "refused")
    if node is None:
        return
    statement = (f'ALTER TABLE "{SCRATCH}".t ADD COLUMN x {column_type.name} DEFAULT '
                 f'{node.to_sql().as_string(scratch)}; INSERT INTO "{SCRATCH}".t DEFAULT VALUES')
    problem = server_takes(scratch, statement)
    assert problem is None, f"default {text!r} for {type_text} accepted, but PostgreSQL says: {problem}"
