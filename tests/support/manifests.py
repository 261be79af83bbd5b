"""Hypothesis strategies for module manifests: valid ones (every allowed column type, defaults, checks,
indexes incl. partial and unique, foreign keys), near-valid ones (one plausible mistake planted), and
typed expressions over a table with a column of every type (for the expression agreement test)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

# manifest type text -> (defaults PostgreSQL takes for it, checks "{c}" stands for the column)
TYPES: dict[str, tuple[list[str], list[str]]] = {
    "text": (["'lead'", "''", "'it''s'", "12345", "true"], ["length({c}) > 0", "{c} <> ''", "{c} IN ('a', 'b')",
                                                             "lower({c}) = {c}", "{c} LIKE '%@%'"]),
    "varchar(20)": (["'x'", "'twenty characters...'"], ["char_length({c}) <= 20", "{c} ILIKE 'a%'"]),
    "varchar": (["'free'"], ["btrim({c}) = {c}"]),
    "char(2)": (["'ab'", "'a '"], ["{c} <> 'zz'"]),
    "smallint": (["0", "-32768", "32767", "'7'"], ["{c} >= 0", "{c} BETWEEN -5 AND 5", "{c} % 2 = 0"]),
    "integer": (["0", "42", "-2147483648", "2.5", "'12'"], ["{c} >= 0", "{c} <> 13", "abs({c}) < 1000000"]),
    "bigint": (["9223372036854775807", "0"], ["{c} > -1", "{c} IN (1, 2, 3)"]),
    "numeric": (["0", "1.5", "1e20", "'NaN'", "'-Infinity'"], ["{c} >= 0", "round({c}, 2) = {c}"]),
    "numeric(10,2)": (["0", "99999999.994", "'12.5'"], ["{c} > 0.01", "{c} * 2 < 1000"]),
    "real": (["1.5", "'inf'", "3.4e38"], ["{c} > 0", "round({c}) >= 0"]),
    "double precision": (["0.1", "1e300", "'NaN'"], ["{c} <> 'Infinity'", "{c} * 2 > {c}"]),
    "boolean": (["false", "true", "'yes'", "'f'"], ["{c} IS NOT NULL", "{c} OR NOT {c}", "{c} IS TRUE"]),
    "uuid": (["gen_random_uuid()", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"], ["{c} IS NOT NULL", "{c} <> id"]),
    "date": (["current_date", "now()", "'2024-01-31'"], ["{c} > '2000-01-01'", "{c} <= current_date + 3650"]),
    "timestamptz": (["now()", "current_timestamp", "'2024-01-31 12:00:00+02'", "now() + '7 days'::interval"],
                    ["{c} > '2000-01-01'", "{c} >= created_at"]),
    "timestamp": (["'2024-01-31T12:00:00'", "now()"], ["{c} > '2000-01-01'::date"]),
    "time": (["'12:30'", "now()"], ["{c} < '23:00'", "{c} + '1 hour'::interval > {c}"]),
    "interval": (["'1 day'", "'01:30:00'", "'02:00'::time"], ["{c} > '0 seconds'", "{c} * 2 >= {c}"]),
    "jsonb": (["'{}'", "'{\"a\": [1, 2.5]}'::jsonb", "'[]'::json"], ["{c} <> 'null'", "{c} || '{}' = {c}"]),
    "json": (["'{}'", "'[1]'::jsonb"], ["{c}::jsonb <> '[]'"]),
    "bytea": (["'\\x0102'"], ["length({c}) < 100"]),
    "inet": (["'10.0.0.1'", "'10.0.0.0/8'"], ["{c} <> '127.0.0.1'"]),
    "tsvector": (["''", "'a b'"], ["length({c}) < 100"]),
    "text[]": (["'{}'", "'{a,b}'"], ["{c} <> '{}'"]),
    "integer[]": (["'{1,2}'", "'{}'::bigint[]"], ["{c} = '{}' OR {c} IS NULL"]),
    "uuid[]": (["'{}'"], ["{c} IS NOT NULL"]),
    "jsonb[]": (["'{}'"], ["{c} IS NULL OR {c} <> '{}'"]),
}
INDEX_METHODS = {  # manifest type -> methods PostgreSQL has an operator class for
    "json": [], "jsonb": ["btree", "hash", "gin"], "tsvector": ["btree", "gin", "gist"],
    "inet": ["btree", "hash", "gist"],
}
PREDICATES = {  # predicates of an index on a table with a column "{c}" of this type
    "text": ["{c} IS NOT NULL", "{c} <> 'archived'", "lower({c}) = 'x'", "{c} || 'x' <> 'y'"],
    "integer": ["{c} > 0", "{c} IN (1, 2)", "{c}::text <> ''"],
    "boolean": ["{c}", "NOT {c}", "{c} IS TRUE"],
    "date": ["{c} > '2020-01-01'", "{c} IS NULL"],
    "timestamptz": ["{c} > '2020-01-01'", "{c} IS NOT NULL"],
    "jsonb": ["{c} <> '{}'"],
}
# plausible mistakes: defaults, checks and predicates PostgreSQL may refuse for some column types
HOSTILE_DEFAULTS = ["1e999999", "true", "false", "1", "'abc'", "now()", "'2024-13-01'", "3000000000", "2.5",
                    "'{\"a\": 1e999999}'", "gen_random_uuid()", "current_date", "'x'::integer", "-2147483649",
                    "'1 day'", "''", "'{}'", "'t'", "'10.0.0.1'", "1e39", "'{\"a\": \"\\u0000\"}'",
                    "'12:00'::time", "now()::date", "'2024-01-01'::timestamptz", "'abcdefghijklmnopqrstuvwxyz'",
                    "null", "'0001-01-01'", "'99999-01-01'", "'infinity'", "99999999999.5", "0.1::real"]
HOSTILE_CONDITIONS = ["{c} >= 0", "length({c}) > 0", "lower({c}) = 'a'", "{c}", "NOT {c}", "{c} IS TRUE",
                      "{c} = 'x'", "{c} > '2020-01-01'::date", "{c} || {c} = {c}", "{c} + 1 > 0", "{c} % 2 = 0",
                      "round({c}, 2) > 0", "abs({c}) > 0", "{c} LIKE 'a%'", "{c} IN (1, 'a')", "{c} = 1.5",
                      "{c}::text > 'a'", "{c}::date > '2020-01-01'", "{c} + '1 day'::interval > now()",
                      "coalesce({c}, 0) > 0", "nullif({c}, 'x') IS NULL", "{c} = {c}", "{c} > now()",
                      "{c}::integer > 0", "{c} BETWEEN 1 AND 'x'", "{c} - {c} > 0", "{c} * 1.5 > 0",
                      "{c}::timestamptz > '2020-01-01'", "{c} = '{}'", "{c} || '{}' = {c}"]


def type_names() -> list[str]:
    return list(TYPES)


def methods_for(type_text: str) -> list[str]:
    if type_text in INDEX_METHODS:
        return INDEX_METHODS[type_text]
    if type_text.endswith("[]"):
        return [] if type_text.startswith("json[") else ["btree", "hash", "gin"]
    return ["btree", "hash"]


@st.composite
def columns(draw, prefix: str, count: tuple[int, int] = (1, 6)) -> list[dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(type_names()), min_size=count[0], max_size=count[1]))
    out = []
    for i, type_text in enumerate(chosen):
        defaults, checks = TYPES[type_text]
        name = f"{prefix}{i}"
        col: dict[str, Any] = {"name": name, "type": type_text, "nullable": draw(st.booleans())}
        if draw(st.integers(0, 9)) < 6:
            col["default"] = draw(st.sampled_from(defaults))
        if checks and draw(st.integers(0, 9)) < 3:
            col["check"] = draw(st.sampled_from(checks)).replace("{c}", name)
        if "btree" in methods_for(type_text) and draw(st.integers(0, 9)) < 2:
            col["unique"] = True
        out.append(col)
    return out


@st.composite
def indexes(draw, cols: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for k in range(draw(st.integers(0, 3))):
        col = draw(st.sampled_from(cols))
        methods = methods_for(col["type"])
        if not methods:
            continue
        method = draw(st.sampled_from(methods))
        index: dict[str, Any] = {"name": f"{col['name']}_i{k}", "columns": [col["name"]], "using": method}
        if method == "btree" and draw(st.booleans()):
            others = [c["name"] for c in cols if c is not col and "btree" in methods_for(c["type"])]
            if others:
                index["columns"].append(draw(st.sampled_from(others)))
        if method == "btree" and draw(st.integers(0, 3)) == 0:
            index["unique"] = True
        predicate_cols = [c for c in cols if c["type"] in PREDICATES]
        if predicate_cols and draw(st.integers(0, 2)) == 0:
            pcol = draw(st.sampled_from(predicate_cols))
            index["where"] = draw(st.sampled_from(PREDICATES[pcol["type"]])).replace("{c}", pcol["name"])
        out.append(index)
    return out


@st.composite
def valid_manifests(draw) -> dict[str, Any]:
    tables = []
    for t in range(draw(st.integers(1, 3))):
        cols = draw(columns(f"c{t}_"))
        table: dict[str, Any] = {"name": f"t{t}", "columns": cols, "indexes": draw(indexes(cols))}
        if t and draw(st.booleans()):
            ref = {"name": f"ref{t}", "type": "uuid", "nullable": True}
            cols.append(ref)
            action = draw(st.sampled_from(["CASCADE", "SET NULL", "RESTRICT", "NO ACTION"]))
            target = draw(st.integers(0, t - 1))
            table["foreignKeys"] = [{"column": "ref" + str(t), "references": {"table": f"t{target}"},
                                     "onDelete": action}]
        if draw(st.integers(0, 5)) == 0:
            keyable = [c for c in cols if "btree" in methods_for(c["type"]) and not c.get("unique")
                       and not c["name"].startswith("ref")]  # a key is never NULL: no ON DELETE SET NULL
            if keyable:
                draw(st.sampled_from(keyable))["primaryKey"] = True
        tables.append(table)
    return {"version": "1.0.0", "database": {"tables": tables}}


@st.composite
def near_valid_manifests(draw) -> tuple[dict[str, Any], str]:
    """A valid manifest with one plausible mistake; returns it and a description of the mistake."""
    manifest = copy.deepcopy(draw(valid_manifests()))
    table = draw(st.sampled_from(manifest["database"]["tables"]))
    col = draw(st.sampled_from(table["columns"]))
    kind = draw(st.sampled_from(["default", "check", "type", "index", "unique", "primary_key", "where",
                                 "foreign_key"]))
    if kind == "default":
        col["default"] = draw(st.sampled_from(HOSTILE_DEFAULTS + [d for ds, _ in TYPES.values() for d in ds]))
    elif kind == "check":
        col["check"] = draw(st.sampled_from(HOSTILE_CONDITIONS)).replace("{c}", col["name"])
    elif kind == "type":
        col["type"] = draw(st.sampled_from(type_names()))
    elif kind == "index":
        table.setdefault("indexes", []).append({
            "columns": [col["name"]], "using": draw(st.sampled_from(["btree", "hash", "gin", "gist"])),
            "unique": draw(st.booleans())})
    elif kind == "unique":
        col["unique"] = True
    elif kind == "primary_key":
        col["primaryKey"] = True
    elif kind == "where":
        table.setdefault("indexes", []).append({
            "columns": ["created_at"], "where": draw(st.sampled_from(HOSTILE_CONDITIONS)).replace("{c}", col["name"])})
    else:
        other = draw(st.sampled_from(manifest["database"]["tables"]))
        table.setdefault("foreignKeys", []).append({
            "column": col["name"], "references": {"table": other["name"]},
            "onDelete": draw(st.sampled_from(["SET NULL", "SET DEFAULT", "CASCADE"]))})
    return manifest, f"{kind} on {table['name']}.{col['name']} ({col['type']})"
