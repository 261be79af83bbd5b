"""What a module's tables look like: the registry's table list joined with the PostgreSQL catalog.

The provisioner records each module's schema and tables in ``module_database_registry``;
the columns and their types come from ``pg_attribute``, so validation always matches the real table.
The result is cached per container, keyed by the registry row's version and ``updated_at``: an
upgrade that changes the registry is picked up by the next request, without a query per request
beyond the gate lookup that reads the registry row anyway.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, NamedTuple

from ..automation.registry import event_segment
from ..core.db import Unit

IMPLICIT_COLUMNS = ("id", "site_id", "created_at", "updated_at")
READ_ONLY_COLUMNS = frozenset({"id", "created_at", "updated_at"})  # site_id is set by the SDK itself


class Column(NamedTuple):
    name: str
    data_type: str  # format_type(): "integer", "character varying(80)", "timestamp with time zone"
    type_name: str  # pg_type.typname: int4, varchar, timestamptz, uuid, jsonb, _text (arrays)
    category: str  # pg_type.typcategory: N numeric, S string, B boolean, D date/time, U user, A array, E enum
    element_type: str | None  # typname of an array's elements
    not_null: bool
    has_default: bool
    generated: bool
    references: str | None  # a table of the same module this column is a single-column foreign key to
    # (table, column) of the module this column's foreign key points at, single-column or, as the provisioner
    # makes them, (site_id, column): what the PostgREST surface embeds along
    foreign_key: tuple[str, str] | None = None

    @property
    def required(self) -> bool:
        return self.not_null and not self.has_default and not self.generated


class Table(NamedTuple):
    name: str
    entity: str
    columns: dict[str, Column]
    # constraint and index names -> their columns: a database error names a constraint or an index,
    # the caller hears about the column
    constrained: dict[str, tuple[str, ...]]
    # the column sets of its unique indexes (whole-table, on plain columns): what an upsert may conflict on
    uniques: tuple[frozenset[str], ...] = ()

    @property
    def writable(self) -> frozenset[str]:
        return frozenset(n for n, c in self.columns.items()
                         if n not in READ_ONLY_COLUMNS and n != "site_id" and not c.generated)


class ModuleSchema(NamedTuple):
    module_id: uuid.UUID
    schema_name: str
    version: str
    tables: dict[str, Table]


_cache: dict[tuple[Any, ...], ModuleSchema] = {}
_cache_lock = threading.Lock()

_CATALOG_SQL = """
SELECT c.relname AS table_name, a.attname AS column_name,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS data_type,
       t.typname AS type_name, t.typcategory AS category, et.typname AS element_type,
       a.attnotnull AS not_null, (a.atthasdef OR a.attidentity <> '') AS has_default,
       a.attgenerated <> '' AS generated,
       (SELECT rc.relname FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class rc ON rc.oid = k.confrelid
         WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.conkey = ARRAY[a.attnum]
           AND rc.relnamespace = c.relnamespace
         LIMIT 1) AS references_table,
       (SELECT ARRAY[rc.relname::text, ra.attname::text] FROM pg_catalog.pg_constraint k
          JOIN pg_catalog.pg_class rc ON rc.oid = k.confrelid
          JOIN pg_catalog.pg_attribute ra ON ra.attrelid = k.confrelid
               AND ra.attnum = k.confkey[array_position(k.conkey, a.attnum)]
         WHERE k.conrelid = c.oid AND k.contype = 'f' AND rc.relnamespace = c.relnamespace
           AND a.attname <> 'site_id' AND a.attnum = ANY (k.conkey)
           AND cardinality(k.conkey) = 1 + (SELECT count(*) FROM pg_catalog.pg_attribute s
                                             WHERE s.attrelid = c.oid AND s.attname = 'site_id'
                                               AND s.attnum = ANY (k.conkey))::int
         ORDER BY k.conname LIMIT 1) AS foreign_key
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum
"""


_CONSTRAINTS_SQL = """
SELECT c.relname AS table_name, i.relname AS name,
       array(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord) AS columns,
       x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL AS upsert_target
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_class c ON c.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
UNION ALL
SELECT c.relname, k.conname,
       array(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum ORDER BY u.ord),
       false
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
"""


def entity_name(table: str, manifest: dict[str, Any] | None) -> str:
    """The manifest table's ``entity``, else the table name without a trailing ``s``; always a valid
    event-type segment (lower case letters, digits and underscores, starting with a letter)."""
    entity = None
    for spec in ((manifest or {}).get("database") or {}).get("tables") or []:
        if isinstance(spec, dict) and spec.get("name") == table and isinstance(spec.get("entity"), str):
            entity = spec["entity"]
    if not entity:
        entity = table[:-1] if table.endswith("s") and len(table) > 1 else table
    return event_segment(entity)


def load_module_schema(unit: Unit, *, module_id: uuid.UUID, schema_name: str | None, table_names: list[str],
                       version: str, updated_at: Any, manifest: dict[str, Any] | None) -> ModuleSchema:
    """The module's tables and columns; from the container's cache when the registry row is unchanged."""
    names = tuple(sorted(table_names or ()))
    key = (module_id, schema_name, version, str(updated_at), names)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    tables: dict[str, dict[str, Column]] = {}
    constrained: dict[str, dict[str, tuple[str, ...]]] = {}
    uniques: dict[str, set[frozenset[str]]] = {}
    if schema_name and names:
        for row in unit.fetchall(_CATALOG_SQL, (schema_name, list(names))):
            tables.setdefault(row["table_name"], {})[row["column_name"]] = Column(
                name=row["column_name"], data_type=row["data_type"], type_name=row["type_name"],
                category=row["category"], element_type=row["element_type"], not_null=row["not_null"],
                has_default=row["has_default"], generated=row["generated"], references=row["references_table"],
                foreign_key=(row["foreign_key"][0], row["foreign_key"][1]) if row["foreign_key"] else None)
        for row in unit.fetchall(_CONSTRAINTS_SQL, {"schema": schema_name, "tables": list(names)}):
            constrained.setdefault(row["table_name"], {})[row["name"]] = tuple(row["columns"])
            if row["upsert_target"]:
                uniques.setdefault(row["table_name"], set()).add(frozenset(row["columns"]))
    schema = ModuleSchema(
        module_id=module_id, schema_name=schema_name or "", version=version,
        tables={name: Table(name, entity_name(name, manifest), cols, constrained.get(name, {}),
                            tuple(sorted(uniques.get(name, ()), key=sorted)))
                for name, cols in tables.items()
                # a table the SDK cannot scope to a site is never exposed
                if "site_id" in cols and "id" in cols},
    )
    with _cache_lock:
        for stale in [k for k in _cache if k[0] == module_id]:
            del _cache[stale]
        _cache[key] = schema
    return schema


def forget_module_schema(module_id: uuid.UUID | None = None) -> None:
    """Drop cached schemas (a table vanished under us, or tests reshaped a module)."""
    with _cache_lock:
        if module_id is None:
            _cache.clear()
        else:
            for stale in [k for k in _cache if k[0] == module_id]:
                del _cache[stale]
