"""The DDL planner: a validated ``SchemaDefinition`` and the catalog's current state in, one
``psycopg.sql`` script out.

Against an empty catalog the plan creates the schema and every table; against an existing schema it
adds what is missing (tables, columns, constraints, indexes) and refuses anything destructive
(dropping a table or column, retyping a column, changing its nullability). A plan computed against
its own result is empty, which is what makes provisioning idempotent.

Every name enters SQL as ``sql.Identifier``, every value as ``sql.Literal``, every type and operator
from the validator's allow-lists; nothing of the manifest's text is passed through.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from psycopg import sql

from .errors import ProvisioningRefused
from .expressions import text_literal
from .manifest import IMPLICIT_COLUMNS, ColumnDef, ForeignKeyDef, IndexDef, SchemaDefinition, TableDef

# Row-level security, privileges and the four site-isolation policies of a module table come from one
# database function, private.secure_module_table (migration 0073), one statement per new table, which also brought tables provisioned before it in line: the
# policies read ``private.module_readable_site_ids(<module id>)`` / ``module_writable_site_ids``, the
# caller's site ids as one array evaluated once per statement (an initPlan; ``site_id = ANY(array)``
# uses the (site_id, ...) indexes), empty for a site API key limited to other modules. No ``OR
# is_super_admin()``: an OR with a per-statement boolean turns every query into a sequential scan
# (bench/rls_policy.py); operators reach module data through the provisioner's service path instead.


@dataclass(frozen=True)
class CatalogColumn:
    type: str  # format_type()
    not_null: bool


@dataclass
class CatalogState:
    """What exists in a module schema, read from pg_catalog in one query."""

    schema_exists: bool = False
    tables: dict[str, dict[str, CatalogColumn]] = field(default_factory=dict)
    constraints: dict[str, set[str]] = field(default_factory=dict)
    relations: set[str] = field(default_factory=set)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CatalogState:
        constraints: dict[str, set[str]] = {}
        for table, name in row["constraints"] or []:
            constraints.setdefault(table, set()).add(name)
        return cls(
            schema_exists=bool(row["schema_exists"]),
            tables={t: {c: CatalogColumn(v[0], bool(v[1])) for c, v in cols.items()}
                    for t, cols in (row["tables"] or {}).items()},
            constraints=constraints,
            relations=set(row["relations"] or []),
        )


def catalog_query(schema: str) -> sql.Composed:
    """The schema's catalog state in one row (``CatalogState.from_row``): private.module_catalog_state
    (migration 0177) finds the schema's relations through pg_depend and the rest through indexes, so its
    cost follows the size of this schema, not the database's 87,000 relations at 10,000 modules (a
    filter on pg_class.relnamespace scanned all of them: 40-45 ms, against about 1 ms); a function, so
    a session plans it once."""
    return sql.SQL("SELECT * FROM private.module_catalog_state({})").format(sql.Literal(schema))


@dataclass
class Plan:
    """Statements' text tagged with the table they concern (for error messages), in execution order."""

    schema: str
    module_id: uuid.UUID
    texts: list[tuple[str | None, str]] = field(default_factory=list)
    created_tables: list[str] = field(default_factory=list)
    changed_tables: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.texts

    def add(self, table: str | None, statement: str) -> None:
        """``statement``: text built by this module from ``_name``, ``text_literal``, the expressions' ``to_text`` and the
        validator's allow-lists only."""
        self.texts.append((table, statement))

    def script(self) -> sql.Composed:
        return sql.Composed([sql.SQL(";\n".join(text for _, text in self.texts))]) if self.texts else sql.Composed([])


# The plan's text is composed once per statement, as text: each name quoted by psycopg.sql.Identifier
# (remembered per name: a module's names recur in many statements, and across the modules a
# container provisions), each value by psycopg.sql.Literal, each check, default and index predicate
# rendered from the validator's expression tree by its own sql.Composable. Composing every statement
# through sql.SQL.format instead built some 400 objects per four-table module and rendered them one by
# one (about 1.2 ms of CPU against 0.2 ms; bench/provisioning.py measures the whole job). Without a
# connection, psycopg quotes as libpq does for the server's UTF-8 (standard_conforming_strings on,
# and a value with a backslash as E'...'), and the validator allows plain ASCII names only.
@lru_cache(maxsize=4096)
def _name(*parts: str) -> str:
    if len(parts) > 1:  # schema.table: each part remembered on its own (a new module brings a new schema)
        return ".".join(map(_name, parts))
    return sql.Identifier(*parts).as_string()


def plan_schema(schema: str, definition: SchemaDefinition, catalog: CatalogState, module_id: uuid.UUID) -> Plan:
    """The statements that bring ``schema`` from ``catalog`` to ``definition``; refuses destructive changes.
    ``module_id`` is the module the schema belongs to: its tables' policies name it."""
    _refuse_destructive_changes(definition, catalog)
    plan = Plan(schema, module_id)
    if not catalog.schema_exists:
        s = _name(schema)
        plan.add(None, "CREATE SCHEMA " + s)
        plan.add(None, "REVOKE ALL ON SCHEMA " + s + " FROM PUBLIC")
        plan.add(None, "GRANT USAGE ON SCHEMA " + s + " TO authenticated")
    for table in definition.tables:
        if table.name in catalog.tables:
            _plan_additions(plan, table, catalog)
        else:
            _plan_new_table(plan, table)
    # Foreign keys and indexes last: every table they mention exists by then.
    for table in definition.tables:
        existing = catalog.constraints.get(table.name, set())
        for fk in table.foreign_keys:
            if fk.name not in existing:
                plan.add(table.name, _add_foreign_key(schema, table.name, fk))
                _mark_changed(plan, table.name)
        for index in table.indexes:
            if index.name not in catalog.relations:
                plan.add(table.name, _create_index(schema, table.name, index))
                _mark_changed(plan, table.name)
    return plan


def _mark_changed(plan: Plan, table: str) -> None:
    if table not in plan.created_tables and table not in plan.changed_tables:
        plan.changed_tables.append(table)


def _refuse_destructive_changes(definition: SchemaDefinition, catalog: CatalogState) -> None:
    problems = []
    wanted = {t.name: t for t in definition.tables}
    for name, columns in catalog.tables.items():
        table = wanted.get(name)
        if table is None:
            problems.append(f"table {name}: dropping a table is not supported (it holds the sites' data)")
            continue
        for column, state in columns.items():
            if column in IMPLICIT_COLUMNS:
                continue
            spec = table.column(column)
            if spec is None:
                problems.append(f"table {name}, column {column}: dropping a column is not supported")
            elif spec.type.name != state.type:
                problems.append(
                    f"table {name}, column {column}: changing its type from {state.type} to {spec.type.name} "
                    "is not supported"
                )
            elif spec.nullable == state.not_null:
                wanted_null = "nullable" if spec.nullable else "NOT NULL"
                problems.append(f"table {name}, column {column}: changing it to {wanted_null} is not supported")
    for table in definition.tables:
        if table.name not in catalog.tables:
            continue
        for col in table.columns:
            if col.name not in catalog.tables[table.name] and not col.nullable and col.default is None:
                problems.append(
                    f"table {table.name}, column {col.name}: a NOT NULL column added to an existing table "
                    "needs a default"
                )
    if problems:
        raise ProvisioningRefused("Upgrade refused: " + "; ".join(problems))


def _column_sql(col: ColumnDef) -> str:
    text = _name(col.name) + " " + col.type.name  # the type's name comes from the allow-list (column_types)
    if not col.nullable:
        text += " NOT NULL"
    if col.default is not None:
        text += " DEFAULT " + col.default.to_text()
    return text


def _table_constraints(table: TableDef, existing: set[str]) -> list[str]:
    out = []
    for check in table.checks:
        if check.name not in existing:
            out.append("CONSTRAINT " + _name(check.name) + " CHECK (" + check.expression.to_text() + ")")
    for unique in table.uniques:
        if unique.name not in existing:
            out.append("CONSTRAINT " + _name(unique.name) + " UNIQUE (" + ", ".join(map(_name, unique.columns)) + ")")
    return out


def _plan_new_table(plan: Plan, table: TableDef) -> None:
    # No foreign key to public.sites: it made deleting any site lock and scan every table of every module
    # ever provisioned. A site's rows go with its installations (migration 0090,
    # private.purge_installation_data), and the policies hide the rows of any site the caller has not.
    qualified = _name(plan.schema, table.name)
    definitions = [
        "id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid()",
        "site_id uuid NOT NULL",
        *(_column_sql(c) for c in table.columns),
        "created_at timestamp with time zone NOT NULL DEFAULT pg_catalog.now()",
        "updated_at timestamp with time zone NOT NULL DEFAULT pg_catalog.now()",
        "CONSTRAINT " + _name(f"{table.name}_pkey") + " PRIMARY KEY (id)",
        "CONSTRAINT " + _name(table.site_key_name) + " UNIQUE (site_id, id)",
        *_table_constraints(table, set()),
    ]
    plan.add(table.name, "CREATE TABLE " + qualified + " (\n  " + ",\n  ".join(definitions) + "\n)")
    plan.add(table.name, "CREATE TRIGGER set_updated_at BEFORE UPDATE ON " + qualified
             + " FOR EACH ROW EXECUTE FUNCTION private.set_updated_at()")
    plan.add(table.name, "SELECT private.secure_module_table(" + text_literal(plan.schema) + ", "
             + text_literal(table.name) + ", " + text_literal(str(plan.module_id)) + ")")
    plan.created_tables.append(table.name)


def _plan_additions(plan: Plan, table: TableDef, catalog: CatalogState) -> None:
    present = catalog.tables[table.name]
    actions = ["ADD COLUMN " + _column_sql(c) for c in table.columns if c.name not in present]
    actions += ["ADD " + c for c in _table_constraints(table, catalog.constraints.get(table.name, set()))]
    if actions:
        plan.add(table.name, "ALTER TABLE " + _name(plan.schema, table.name) + "\n  " + ",\n  ".join(actions))
        _mark_changed(plan, table.name)


def _add_foreign_key(schema: str, table: str, fk: ForeignKeyDef) -> str:
    # (site_id, column) → (site_id, key): a row can only point at a row of its own site.
    # The actions come from the validator's allow-list (manifest._normalise_action), never from the manifest.
    on_delete = fk.on_delete
    if fk.on_delete in ("SET NULL", "SET DEFAULT"):
        # PostgreSQL 15+: only the referencing column is reset, never site_id.
        on_delete += " (" + _name(fk.column) + ")"
    return ("ALTER TABLE " + _name(schema, table) + " ADD CONSTRAINT " + _name(fk.name) + " FOREIGN KEY (site_id, "
            + _name(fk.column) + ") REFERENCES " + _name(schema, fk.target_table) + " (site_id, "
            + _name(fk.target_column) + ") ON DELETE " + on_delete + " ON UPDATE " + fk.on_update)


def _create_index(schema: str, table: str, index: IndexDef) -> str:
    opclasses = index.opclasses or (None,) * len(index.columns)
    # the method and operator classes come from allow-lists (INDEX_METHODS, ColumnType.opclass), never
    # from the manifest
    keys = [_name(c) + " " + o if o else _name(c) for c, o in zip(index.columns, opclasses, strict=True)]
    statement = ("CREATE " + ("UNIQUE " if index.unique else "") + "INDEX " + _name(index.name) + " ON "
                 + _name(schema, table) + " USING " + index.method + " (" + ", ".join(keys) + ")")
    if index.where is not None:
        statement += " WHERE " + index.where.to_text()
    return statement
