"""The module manifest (``modules_v2.manifest``) as pydantic models, and its validation.

``validate_manifest(raw)`` checks the structure (camelCase keys as in the contract), then every
identifier, column type, expression, index and foreign key, and returns a ``SchemaDefinition``:
the tables exactly as the DDL planner will create them, implicit columns and generated constraint
names included. Nothing is sent to the database before this succeeds. Problems are collected, each
naming the table, the column and what is wrong, and raised together as one ``ManifestError``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ..core.naming import SLUG_RE, NamingError, validate_identifier
from .column_types import ColumnType, ColumnTypeError, parse_column_type
from .errors import ManifestError
from .expressions import Context, ExpressionError, Node, parse_expression
from .typecheck import check_condition, check_default
from .versions import VERSION_RE, parse_version  # noqa: F401 - parse_version is still importable from here

MAX_TABLES = 64
MAX_COLUMNS = 200
MAX_INDEXES = 32
MAX_FOREIGN_KEYS = 32
MAX_INDEX_COLUMNS = 32  # PostgreSQL's INDEX_MAX_KEYS

# PostgreSQL's reserved key words (categories R and T of pg_get_keywords(); a test keeps this in step
# with the server) and the system column names a table cannot use.
RESERVED_WORDS = frozenset(["all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "binary", "both", "case", "cast", "check", "collate", "collation", "column", "concurrently", "constraint", "create", "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time", "current_timestamp", "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign", "freeze", "from", "full", "grant", "group", "having", "ilike", "in", "initially", "inner", "intersect", "into", "is", "isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime", "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or", "order", "outer", "overlaps", "placing", "primary", "references", "returning", "right", "select", "session_user", "similar", "some", "symmetric", "system_user", "table", "tablesample", "then", "to", "trailing", "true", "union", "unique", "user", "using", "variadic", "verbose", "when", "where", "window", "with"])
SYSTEM_COLUMNS = frozenset({"oid", "tableoid", "xmin", "xmax", "cmin", "cmax", "ctid"})

# The columns every module table has, whether or not the manifest lists them.
IMPLICIT_COLUMNS: dict[str, ColumnType] = {
    "id": ColumnType("uuid"),
    "site_id": ColumnType("uuid"),
    "created_at": ColumnType("timestamp with time zone"),
    "updated_at": ColumnType("timestamp with time zone"),
}
FK_ACTIONS = ("NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT")
INDEX_METHODS = ("btree", "gin", "gist", "hash")
_INDEX_SUPPORT = {"btree": "supports_btree", "gin": "supports_gin", "gist": "supports_gist", "hash": "supports_hash"}


# Structure ---------------------------------------------------------------------------------------

class _ManifestModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True,
                              frozen=True)


class ColumnSpec(_ManifestModel):
    name: str
    type: str
    nullable: bool = True
    unique: bool = False
    primary_key: bool = False
    default: str | bool | int | float | None = None
    check: str | None = None
    description: str | None = None
    label: str | None = None


class IndexSpec(_ManifestModel):
    name: str | None = None
    columns: list[str] = Field(min_length=1, max_length=MAX_INDEX_COLUMNS)
    unique: bool = False
    using: str = "btree"
    where: str | None = None


class ReferenceSpec(_ManifestModel):
    ref_schema: str | None = Field(default=None, alias="schema")
    table: str
    column: str = "id"


class ForeignKeySpec(_ManifestModel):
    column: str
    references: ReferenceSpec
    on_delete: str = "NO ACTION"
    on_update: str = "NO ACTION"


class TableSpec(_ManifestModel):
    name: str
    entity: str | None = None
    description: str | None = None
    label: str | None = None
    columns: list[ColumnSpec] = Field(default_factory=list, max_length=MAX_COLUMNS)
    indexes: list[IndexSpec] = Field(default_factory=list, max_length=MAX_INDEXES)
    foreign_keys: list[ForeignKeySpec] = Field(default_factory=list, max_length=MAX_FOREIGN_KEYS)


class DatabaseSpec(_ManifestModel):
    tables: list[TableSpec] = Field(default_factory=list, max_length=MAX_TABLES)


class Manifest(BaseModel):
    """The whole manifest; keys other than these (``events``, ``settings``...) are kept as they are."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)

    version: str | None = None
    dependencies: list[str] = Field(default_factory=list)
    permissions: list[Any] = Field(default_factory=list)
    database: DatabaseSpec | None = None
    # What client users of a site's client may do with the module's data (docs/roles.md); the
    # database's policies read the same key (private.module_client_access, migration 0120).
    client_access: Literal["none", "read", "write"] = "read"

    @property
    def tables(self) -> list[TableSpec]:
        return self.database.tables if self.database else []


# What the planner builds -------------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnDef:
    name: str
    type: ColumnType
    nullable: bool
    default: Node | None = None


@dataclass(frozen=True)
class CheckDef:
    name: str
    column: str
    expression: Node


@dataclass(frozen=True)
class UniqueDef:
    name: str
    columns: tuple[str, ...]  # site_id first: unique within a site


@dataclass(frozen=True)
class IndexDef:
    name: str
    columns: tuple[str, ...]
    method: str = "btree"
    unique: bool = False
    where: Node | None = None
    opclasses: tuple[str | None, ...] = ()  # per column: an operator class to name, or None (the default)


@dataclass(frozen=True)
class ForeignKeyDef:
    name: str
    column: str
    target_table: str  # a table of the same manifest
    target_column: str
    on_delete: str
    on_update: str


@dataclass(frozen=True)
class TableDef:
    name: str
    entity: str
    columns: tuple[ColumnDef, ...]  # the manifest's own columns, implicit ones excluded
    checks: tuple[CheckDef, ...] = ()
    uniques: tuple[UniqueDef, ...] = ()
    indexes: tuple[IndexDef, ...] = ()
    foreign_keys: tuple[ForeignKeyDef, ...] = ()

    @property
    def site_key_name(self) -> str:
        """UNIQUE (site_id, id): the site_id index, and the target of tenant-safe foreign keys."""
        return object_name(self.name, "site_id_id", "key")

    def column(self, name: str) -> ColumnDef | None:
        return next((c for c in self.columns if c.name == name), None)

    def column_type(self, name: str) -> ColumnType | None:
        if name in IMPLICIT_COLUMNS:
            return IMPLICIT_COLUMNS[name]
        col = self.column(name)
        return col.type if col else None


@dataclass(frozen=True)
class SchemaDefinition:
    version: str
    tables: tuple[TableDef, ...] = field(default_factory=tuple)

    @property
    def table_names(self) -> list[str]:
        return [t.name for t in self.tables]

    def table(self, name: str) -> TableDef | None:
        return next((t for t in self.tables if t.name == name), None)


def object_name(*parts: str) -> str:
    """A constraint or index name from its parts, at most 63 bytes: long names keep a readable
    prefix and end with a hash of the full name, so they stay unique and deterministic."""
    full = "_".join(parts)
    if len(full) <= 63:
        return full
    *body, suffix = parts
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    keep = 63 - len(suffix) - len(digest) - 2
    return f"{'_'.join(body)[:keep].rstrip('_')}_{digest}_{suffix}"


# Validation --------------------------------------------------------------------------------------

_EXTRA_KEY_HINTS = {
    "rlsPolicies": "custom RLS policies are not supported: every table gets the site-isolation policy",
    "enableRLS": "row-level security is always enabled and forced on module tables",
    "enableRls": "row-level security is always enabled and forced on module tables",
}


def parse_manifest(raw: Any) -> Manifest:
    """The manifest's structure only; ``validate_manifest`` checks its meaning."""
    if not isinstance(raw, dict):
        raise ManifestError([f"the manifest must be a JSON object, got {type(raw).__name__}"])
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError([_describe_error(err, raw) for err in exc.errors()]) from None


def _describe_error(err: Mapping[str, Any], raw: Any) -> str:
    loc = list(err.get("loc", ()))
    where: list[str] = []
    node: Any = raw
    i = 0
    while i < len(loc):
        key = loc[i]
        if isinstance(node, dict):
            node = node.get(key) if isinstance(key, str) else None
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
            label = {"tables": "table", "columns": "column", "indexes": "index", "foreignKeys": "foreign key"}.get(
                str(loc[i - 1]) if i else "", "item"
            )
            name = node.get("name") or node.get("column") if isinstance(node, dict) else None
            where.append(f"{label} {name}" if isinstance(name, str) and name else f"{label} #{key + 1}")
            i += 1
            continue
        else:
            node = None
        if isinstance(key, str) and key not in ("database", "tables", "columns", "indexes", "foreignKeys"):
            where.append(f"field {key!r}")
        i += 1
    prefix = ", ".join(where) or "manifest"
    if err.get("type") == "extra_forbidden" and loc and str(loc[-1]) in _EXTRA_KEY_HINTS:
        return f"{', '.join(where[:-1]) or 'manifest'}: {_EXTRA_KEY_HINTS[str(loc[-1])]}"
    if err.get("type") == "extra_forbidden":
        return f"{prefix}: unknown key"
    return f"{prefix}: {err.get('msg', 'invalid')}"


def validate_manifest(raw: Any) -> tuple[Manifest, SchemaDefinition]:
    """Parse and validate a manifest; raises ``ManifestError`` listing every problem found."""
    manifest = parse_manifest(raw)
    problems: list[str] = []
    for dep in manifest.dependencies:
        if not isinstance(dep, str) or not SLUG_RE.match(dep):
            problems.append(f"dependencies: {dep!r} is not a module slug")
    if manifest.version is not None and not VERSION_RE.match(manifest.version):
        problems.append(f"version {manifest.version!r} must be MAJOR.MINOR.PATCH, e.g. '1.0.0'")
    if manifest.tables and manifest.version is None:
        problems.append("version is required when the manifest declares database tables")
    tables = _validate_tables(manifest.tables, problems)
    if problems:
        raise ManifestError(problems)
    return manifest, SchemaDefinition(version=manifest.version or "0.0.0", tables=tuple(tables))


def _identifier(name: str, what: str, problems: list[str], where: str) -> bool:
    try:
        validate_identifier(name, what)
    except NamingError as exc:
        problems.append(f"{where}: {exc}")
        return False
    if name in RESERVED_WORDS:
        problems.append(f"{where}: {what} {name!r} is a reserved SQL word; choose another name")
        return False
    return True


def _validate_tables(specs: list[TableSpec], problems: list[str]) -> list[TableDef]:
    names = [t.name for t in specs]
    valid_names = set()
    for spec in specs:
        if _identifier(spec.name, "table name", problems, f"table {spec.name!r}"):
            if spec.name in valid_names:
                problems.append(f"table {spec.name}: declared more than once")
            valid_names.add(spec.name)
    # First pass: columns, so foreign keys can check the tables they point at.
    columns_of: dict[str, dict[str, ColumnDef]] = {}
    unique_targets: dict[str, set[str]] = {}
    for spec in specs:
        cols, uniques_single = _validate_columns(spec, problems)
        columns_of[spec.name] = cols
        unique_targets[spec.name] = {"id"} | uniques_single
    tables = []
    # Tables, indexes and the indexes behind constraints share one namespace in the schema.
    relation_owner: dict[str, str] = {n: f"table {n}" for n in names}
    for spec in specs:
        table = _build_table(spec, columns_of, unique_targets, problems)
        owned = [f"{table.name}_pkey", table.site_key_name, *(u.name for u in table.uniques),
                 *(i.name for i in table.indexes)]
        for rel in owned:
            if rel in relation_owner:
                problems.append(f"table {table.name}: the name {rel!r} is already used by {relation_owner[rel]}")
            else:
                relation_owner[rel] = f"an index of table {table.name}"
        constraint_names = [c.name for c in table.checks] + [f.name for f in table.foreign_keys]
        if len(set(constraint_names)) != len(constraint_names):
            problems.append(f"table {table.name}: two constraints would share a generated name; rename a column")
        tables.append(table)
    return tables


def _validate_columns(spec: TableSpec, problems: list[str]) -> tuple[dict[str, ColumnDef], set[str]]:
    cols: dict[str, ColumnDef] = {}
    single_uniques: set[str] = set()
    for col in spec.columns:
        where = f"table {spec.name}, column {col.name}"
        if not _identifier(col.name, "column name", problems, where):
            continue
        if col.name in SYSTEM_COLUMNS:
            problems.append(f"{where}: {col.name!r} is a PostgreSQL system column name")
            continue
        try:
            ctype = parse_column_type(col.type)
        except ColumnTypeError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if col.name in IMPLICIT_COLUMNS:
            if ctype != IMPLICIT_COLUMNS[col.name]:
                problems.append(
                    f"{where}: {col.name} is provided by the platform as {IMPLICIT_COLUMNS[col.name].name}; "
                    f"remove it or declare it with that type"
                )
            continue
        if col.name in cols:
            problems.append(f"{where}: declared more than once")
            continue
        default = None
        if col.default is not None:
            try:
                default = parse_expression(col.default, Context.DEFAULT)
                check_default(default, ctype)
            except ExpressionError as exc:
                problems.append(f"{where}: default: {exc}")
                default = None
        cols[col.name] = ColumnDef(col.name, ctype, nullable=col.nullable and not col.primary_key, default=default)
        if col.unique:
            single_uniques.add(col.name)
    natural_key = [c.name for c in spec.columns if c.primary_key and c.name in cols]
    if len(natural_key) == 1:
        single_uniques.add(natural_key[0])
    return cols, single_uniques


def _build_table(spec: TableSpec, columns_of: dict[str, dict[str, ColumnDef]],
                 unique_targets: dict[str, set[str]], problems: list[str]) -> TableDef:
    table = spec.name
    cols = columns_of[table]
    all_columns = frozenset(cols) | frozenset(IMPLICIT_COLUMNS)
    types = {**IMPLICIT_COLUMNS, **{c.name: c.type for c in cols.values()}}

    checks, uniques = [], []
    natural_key = []
    for col in spec.columns:
        if col.name not in cols:
            continue
        where = f"table {table}, column {col.name}"
        if col.check is not None:
            try:
                expr = parse_expression(col.check, Context.CHECK, all_columns)
                check_condition(expr, Context.CHECK, types)
                checks.append(CheckDef(object_name(table, col.name, "check"), col.name, expr))
            except ExpressionError as exc:
                problems.append(f"{where}: check: {exc}")
        if col.primary_key:
            if not cols[col.name].type.supports_btree:
                problems.append(f"{where}: a {cols[col.name].type.name} column cannot be part of a primary key "
                                "(it has no equality operator; use jsonb instead of json)")
            natural_key.append(col.name)
        elif col.unique:
            if not cols[col.name].type.supports_btree:
                problems.append(f"{where}: a {cols[col.name].type.name} column cannot be unique")
            uniques.append(UniqueDef(object_name(table, col.name, "key"), ("site_id", col.name)))
    if natural_key:
        # ``id`` stays the primary key; the manifest's key becomes unique within each site.
        uniques.append(UniqueDef(object_name(table, *natural_key, "key"), ("site_id", *natural_key)))

    indexes: list[IndexDef] = []
    for n, idx in enumerate(spec.indexes):
        built = _build_index(table, n, idx, types, all_columns, problems)
        if built:
            indexes.append(built)

    fks: list[ForeignKeyDef] = []
    fk_columns: set[str] = set()
    for fk in spec.foreign_keys:
        built_fk = _build_foreign_key(table, fk, cols, columns_of, unique_targets, problems)
        if built_fk is None:
            continue
        if built_fk.column in fk_columns:
            problems.append(f"table {table}, column {built_fk.column}: more than one foreign key")
            continue
        fk_columns.add(built_fk.column)
        fks.append(built_fk)
        # Every foreign key is indexed (site_id first), unless an index already leads with it.
        leading = ("site_id", built_fk.column)
        covered = any(i.columns[:2] == leading and i.method == "btree" and i.where is None for i in indexes) or any(
            u.columns[:2] == leading for u in uniques
        )
        if not covered:
            indexes.append(IndexDef(object_name(table, built_fk.column, "fk_idx"), leading))

    entity = spec.entity if spec.entity is not None else (table[:-1] if table.endswith("s") and len(table) > 1 else table)
    if spec.entity is not None:
        _identifier(spec.entity, "entity", problems, f"table {table}")
    names = [i.name for i in indexes]
    for dup in {n for n in names if names.count(n) > 1}:
        problems.append(f"table {table}: two indexes are named {dup!r}")
    return TableDef(
        name=table, entity=entity, columns=tuple(cols.values()), checks=tuple(checks), uniques=tuple(uniques),
        indexes=tuple(indexes), foreign_keys=tuple(fks),
    )


def _build_index(table: str, n: int, idx: IndexSpec, types: dict[str, ColumnType], all_columns: frozenset[str],
                 problems: list[str]) -> IndexDef | None:
    where = f"table {table}, index {idx.name or '#' + str(n + 1)}"
    ok = True
    if idx.name is not None and not _identifier(idx.name, "index name", problems, where):
        ok = False
    method = idx.using.lower() if isinstance(idx.using, str) else ""
    if method not in INDEX_METHODS:
        problems.append(f"{where}: using {idx.using!r} is not one of {', '.join(INDEX_METHODS)}")
        return None
    for col in idx.columns:
        if col not in all_columns:
            problems.append(f"{where}: unknown column {col!r}")
            ok = False
    if len(set(idx.columns)) != len(idx.columns):
        problems.append(f"{where}: a column is listed twice")
        ok = False
    if not ok:
        return None
    if idx.unique and method != "btree":
        problems.append(f"{where}: only btree indexes can be unique")
        return None
    if method == "hash" and len(idx.columns) != 1:
        problems.append(f"{where}: a hash index has exactly one column")
        return None
    support = _INDEX_SUPPORT[method]
    for col in idx.columns:
        if not getattr(types[col], support):
            problems.append(f"{where}: column {col} ({types[col].name}) cannot be indexed with {method}")
            return None
    predicate = None
    if idx.where is not None:
        try:
            predicate = parse_expression(idx.where, Context.PREDICATE, all_columns)
            check_condition(predicate, Context.PREDICATE, types)
        except ExpressionError as exc:
            problems.append(f"{where}: where: {exc}")
            return None
    columns = tuple(idx.columns)
    if method == "btree" and columns[0] != "site_id":
        # Every query of a module table is scoped to a site: lead with site_id (and be unique per site).
        columns = ("site_id", *columns)
    if len(columns) > MAX_INDEX_COLUMNS:
        problems.append(f"{where}: more than {MAX_INDEX_COLUMNS - 1} columns")
        return None
    name = idx.name or object_name(table, *idx.columns, "uidx" if idx.unique else "idx")
    opclasses = tuple(types[c].opclass(method) for c in columns)
    return IndexDef(name, columns, method, idx.unique, predicate, opclasses if any(opclasses) else ())


def _normalise_action(value: str) -> str:
    if value in FK_ACTIONS:  # already as written here (upper case, single spaces): the commonest case
        return value
    return re.sub(r"[\s_]+", " ", value.strip().upper()) if isinstance(value, str) else ""


def _build_foreign_key(table: str, fk: ForeignKeySpec, cols: dict[str, ColumnDef],
                       columns_of: dict[str, dict[str, ColumnDef]], unique_targets: dict[str, set[str]],
                       problems: list[str]) -> ForeignKeyDef | None:
    where = f"table {table}, column {fk.column}"
    column = cols.get(fk.column)
    if column is None:
        reason = "is provided by the platform" if fk.column in IMPLICIT_COLUMNS else "is not a column of the table"
        problems.append(f"{where}: foreign key column {fk.column!r} {reason}")
        return None
    on_delete, on_update = _normalise_action(fk.on_delete), _normalise_action(fk.on_update)
    for label, action in (("onDelete", on_delete), ("onUpdate", on_update)):
        if action not in FK_ACTIONS:
            problems.append(f"{where}: {label} must be one of {', '.join(FK_ACTIONS)}")
            return None
    if on_delete == "SET NULL" and not column.nullable:
        problems.append(f"{where}: onDelete SET NULL needs a nullable column")
        return None
    ref = fk.references
    name = object_name(table, fk.column, "fkey")
    if ref.ref_schema not in (None, "module"):
        # Every row already belongs to its site through site_id. A key to public.sites on another
        # column let a tenant store a row naming someone else's site (proof it exists) and then
        # kept that site from being deleted; keys to other schemas reach other tenants' data too.
        reason = ("every row already belongs to its site (site_id), and a row may not name another site"
                  if (ref.ref_schema, ref.table) == ("public", "sites") else "other schemas are not the module's")
        problems.append(f"{where}: a foreign key may reference this module's own tables only ({reason})")
        return None
    if ref.table not in columns_of:
        problems.append(f"{where}: references unknown table {ref.table!r} (not declared in this manifest)")
        return None
    if ref.column not in unique_targets[ref.table]:
        problems.append(
            f"{where}: references {ref.table}.{ref.column}, which is neither id nor a unique column of {ref.table}"
        )
        return None
    target_type = IMPLICIT_COLUMNS["id"] if ref.column == "id" else columns_of[ref.table][ref.column].type
    if column.type != target_type:
        problems.append(
            f"{where}: type {column.type.name} does not match {ref.table}.{ref.column} ({target_type.name})"
        )
        return None
    if on_update in ("SET NULL", "SET DEFAULT"):
        # The key is (site_id, column): SET NULL on update would null the site too.
        problems.append(f"{where}: onUpdate {on_update} is not supported for module tables")
        return None
    return ForeignKeyDef(name, fk.column, ref.table, ref.column, on_delete, on_update)
