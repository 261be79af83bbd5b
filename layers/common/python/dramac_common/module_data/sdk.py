"""``ModuleDatabaseSDK``: one module's tables, scoped to one site, inside the caller's unit of work.

The scope is enforced twice. Every statement runs as ``authenticated`` with claims that let row-level
security see only permitted sites (a user's, a site API key's, or, for workers, a site scope the SDK
sets around each operation), and the SDK itself filters on ``site_id`` and sets it on every insert,
ignoring one the caller supplies. Table and column names are checked against the registry and the
catalog, then enter SQL only as ``psycopg.sql.Identifier``; values are always parameters.

Every create, update and delete writes its ``<slug>.<entity>.created|updated|deleted`` events to the
automation outbox in the same statement as the change (updates carry ``previous``), through the
``automation.outbox.events_for_rows`` (the statement-level ``log_automation_event``:
same validation, columns and after-commit dispatch).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql

from ..automation import outbox
from ..automation.registry import event_segment
from ..core.db import Unit
from ..core.errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    database_error,
)
from ..core.tenancy import Action
from .catalog import (
    READ_ONLY_COLUMNS,
    Column,
    ModuleSchema,
    Table,
    forget_module_schema,
    load_module_schema,
)
from .gate import ModuleTarget, require_enabled_module
from .query import (
    DEFAULT_LIMIT,
    FTS_OPERATORS,
    MAX_IN_VALUES,
    MAX_LIMIT,
    MAX_OFFSET,
    Condition,
    Embed,
    Field,
    Filter,
    Order,
    Query,
    filters_from_where,
    order_from,
)
from .values import InvalidValue, coerce_array_literal, coerce_scalar, coerce_text_pattern, fetch_exact

MAX_ROWS_PER_WRITE = 1000
MAX_BATCH_OPERATIONS = 100
MAX_LOGIC_DEPTH = 10  # and/or nesting
MAX_EMBED_DEPTH = 4  # embedded tables inside embedded tables
_PREVIOUS = "dramac$previous"
_EVENTS = "dramac$events"
_TOTAL = "dramac$total"
_INSERTED = "dramac$inserted"
_COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_CONTAINMENT = {"cs": "@>", "cd": "<@", "ov": "&&"}


def _event_ids(rows: list[dict[str, Any]]) -> list[Any]:
    """The ids of the events a write's statement wrote for the queue: the statement carries them on its first
    row only (on every row, a 1,000-row write would fetch and parse a million ids)."""
    return next((list(row[_EVENTS]) for row in rows if row.get(_EVENTS)), [])


def _invalid(column: str, message: str, code: str = "invalid_value") -> ValidationFailed:
    return ValidationFailed(f"{column}: {message}", code=code, details=[{"field": column, "message": message}])


def _fields_named_by(exc: psycopg.Error, table: Table, written: Sequence[str]) -> list[str]:
    """The caller's columns a database error is about: the column it names, else the columns of the
    constraint or index it names (those the statement wrote, when it wrote some of them)."""
    diag = exc.diag
    if diag.column_name and diag.column_name in table.columns:
        return [diag.column_name]
    columns = table.constrained.get(diag.constraint_name or "", ())
    return [c for c in columns if c in written] or list(columns)


@contextmanager
def _database_errors(table: Table, *, written: Sequence[str] = (), action: str | None = None) -> Iterator[None]:
    """Errors a caller's data can cause, in the caller's terms (the table and its columns), through the
    shared SQLSTATE mapping (``errors.DATABASE_ERRORS``); never PostgreSQL's own text or names."""
    try:
        yield
    except psycopg.Error as exc:
        state = exc.sqlstate or ""
        if state == "42P01":  # the table went away under a cached schema (an upgrade is running)
            forget_module_schema(None)
            raise ValidationFailed(f"Unknown table {table.name!r}", code="unknown_table") from exc
        if state == "42704":  # a name the request gave that the server does not know: a text search configuration
            raise ValidationFailed(f"{table.name}: unknown text search configuration", code="unknown_search_config",
                                   details=[{"field": "fts", "message": "not a text search configuration"}]) from exc
        if state in ("42883", "42804"):  # no such operator for the column's type: a filter the caller chose
            raise ValidationFailed(f"{table.name}: a filter or value does not fit its column's type",
                                   code="invalid_value") from exc
        if state == "23503" and action == "deleted":
            raise Conflict(f"{table.name}: the row is still referenced by other rows", code="still_referenced",
                           details=[{"field": "id", "message": "still referenced"}]) from exc
        fields = _fields_named_by(exc, table, written)
        error = database_error(exc, field=", ".join(fields) or None, where=table.name)
        if error is None or error.status >= 500:
            raise  # a defect, or an outage workers retry: the API factory maps it by the same table
        if len(fields) > 1:
            message = error.details[0]["message"] if error.details else str(error)
            error.details = [{"field": f, "message": message} for f in fields]
        raise error from exc


class ModuleDatabaseSDK:
    """A module's tables for one site. Create it with ``for_request`` (a user's or a site API key's
    unit) or ``for_service`` (a worker's service unit); each call runs in that unit's transaction."""

    def __init__(self, unit: Unit, target: ModuleTarget, schema: ModuleSchema, site_id: uuid.UUID, *,
                 service_scope: bool = False):
        self.unit = unit
        self.target = target
        self.schema = schema
        self.site_id = site_id
        self._service_scope = service_scope
        self._depth = 0

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def for_request(cls, unit: Unit, *, site_id: uuid.UUID, module: uuid.UUID | str,
                    write: bool = False, action: Action | None = None) -> ModuleDatabaseSDK:
        """Inside a unit that already runs as ``authenticated`` with the caller's (or API key's) claims;
        ``write``: the request changes data (the module's ``clientAccess`` decides for client users);
        ``action``: the gate checks the caller's role on the site for it (``site_unit(gated=True)``)."""
        if unit.claims is None:
            raise RuntimeError("for_request needs a user unit; workers use ModuleDatabaseSDK.for_service")
        target = require_enabled_module(unit, site_id, module, write=write, action=action)
        return cls(unit, target, cls._schema(unit, target), site_id)

    @classmethod
    def for_service(cls, unit: Unit, *, module_slug: str, site_id: uuid.UUID | str) -> ModuleDatabaseSDK:
        """Inside a worker's service unit: each operation switches to ``authenticated`` with a scope of
        this one site (in a savepoint, so a failed operation leaves the worker's transaction usable)."""
        if unit.claims is not None:
            raise RuntimeError("for_service needs a service unit")
        site = site_id if isinstance(site_id, uuid.UUID) else uuid.UUID(str(site_id))
        probe = cls(unit, None, None, site, service_scope=True)  # type: ignore[arg-type]
        with probe._scope():
            target = require_enabled_module(unit, site, module_slug)
            schema = cls._schema(unit, target)
        return cls(unit, target, schema, site, service_scope=True)

    @staticmethod
    def _schema(unit: Unit, target: ModuleTarget) -> ModuleSchema:
        return load_module_schema(unit, module_id=target.module_id, schema_name=target.schema_name,
                                  table_names=target.table_names, version=target.registry_version or "",
                                  updated_at=target.registry_updated_at, manifest=target.manifest)

    @property
    def module_slug(self) -> str:
        return self.target.slug

    def table_names(self) -> list[str]:
        return sorted(self.schema.tables)

    # -- reads -------------------------------------------------------------------------------

    def find(self, table: str, where: Mapping[str, Any] | None = None, *, select: Sequence[str] | None = None,
             order_by: Any = None, limit: int | None = DEFAULT_LIMIT, offset: int = 0) -> list[dict[str, Any]]:
        query = Query(filters_from_where(where), tuple(select) if select else None, order_from(order_by),
                      DEFAULT_LIMIT if limit is None else limit, offset)
        return self.query(table, query)[0]

    def find_one(self, table: str, where: Mapping[str, Any] | None = None, *,
                 select: Sequence[str] | None = None) -> dict[str, Any] | None:
        rows = self.find(table, where, select=select, limit=1)
        return rows[0] if rows else None

    def find_by_id(self, table: str, id: uuid.UUID | str, *, select: Sequence[str] | None = None
                   ) -> dict[str, Any] | None:
        return self.find_one(table, {"id": self._id(id)}, select=select) if self._id(id) else None

    def count(self, table: str, where: Mapping[str, Any] | None = None) -> int:
        t = self._table(table)
        condition, params = self._where(t, filters_from_where(where))
        with self._scope(), _database_errors(t):
            row = self.unit.fetchrow(sql.SQL("SELECT count(*) AS n FROM {} WHERE {}").format(self._ident(t), condition),
                                     params)
        return int(row["n"])

    def exists(self, table: str, where: Mapping[str, Any] | None = None) -> bool:
        t = self._table(table)
        condition, params = self._where(t, filters_from_where(where))
        with self._scope(), _database_errors(t):
            row = self.unit.fetchrow(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {}) AS found").format(self._ident(t), condition), params)
        return bool(row["found"])

    def query(self, table: str, query: Query, *, last: bool = False) -> tuple[list[dict[str, Any]], int | None]:
        """A ``Query`` (from the HTTP parser or ``find``) → (rows, total matching rows when ``query.count``).
        ``last``: nothing follows in the request's unit, so its COMMIT travels with the read (a request's
        read, not a worker's, and without ``count``, which may need a second statement)."""
        t = self._table(table)
        if not 0 <= query.limit <= MAX_LIMIT:
            raise _invalid("limit", f"must be between 0 and {MAX_LIMIT}")
        if not 0 <= query.offset <= MAX_OFFSET:
            raise _invalid("offset", f"must be between 0 and {MAX_OFFSET}")
        condition, params = self._where(t, query.filters)
        if query.fields is not None:
            columns, inner = self._fields_sql(t, query.fields, 0)
            if inner:
                condition = sql.SQL(" AND ").join([condition, *inner])
        else:
            columns = self._select_list(t, query.select)
        total = sql.SQL(", count(*) OVER () AS {}").format(sql.Identifier(_TOTAL)) if query.count else sql.SQL("")
        statement = sql.SQL("SELECT {}{} FROM {} AS {} WHERE {} ORDER BY {} LIMIT %s OFFSET %s").format(
            columns, total, self._ident(t), sql.Identifier("t0"), condition, self._order(t, query.order, "t0"))
        with self._scope(), _database_errors(t):
            rows = self._fetch_rows(statement, [*params, query.limit, query.offset],
                                    commit=last and not query.count and not self._service_scope)
            count = None
            if query.count:
                if rows:
                    count = int(rows[0][_TOTAL])
                else:  # past the end (or limit 0): the window saw no rows, so count them directly
                    count = int(self.unit.fetchrow(
                        sql.SQL("SELECT count(*) AS n FROM {} AS {} WHERE {}").format(
                            self._ident(t), sql.Identifier("t0"), condition), params)["n"])
        for row in rows:
            row.pop(_TOTAL, None)
        return rows, count

    def count_matching(self, table: str, query: Query) -> int:
        """``count(*)`` of the rows a ``Query`` matches (its filters; limit and offset ignored)."""
        t = self._table(table)
        condition, params = self._where(t, query.filters)
        with self._scope(), _database_errors(t):
            row = self.unit.fetchrow(sql.SQL("SELECT count(*) AS n FROM {} AS {} WHERE {}").format(
                self._ident(t), sql.Identifier("t0"), condition), params)
        return int(row["n"])

    def estimate(self, table: str, query: Query) -> int:
        """The planner's estimate of the rows a ``Query`` matches (PostgREST's ``count=planned``): no scan,
        under the same row-level security as the query itself."""
        t = self._table(table)
        condition, params = self._where(t, query.filters)
        with self._scope(), _database_errors(t):
            row = self.unit.fetchrow(sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} AS {} WHERE {}").format(
                self._ident(t), sql.Identifier("t0"), condition), params)
        plan = next(iter(row.values()))
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    # -- writes ------------------------------------------------------------------------------

    def create(self, table: str, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Insert one row or many (one statement); returns the rows as stored."""
        return self.insert(table, values)

    def insert(self, table: str, values: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
               columns: Sequence[str] | None = None, missing_default: bool = True,
               on_conflict: Sequence[str] | None = None, resolution: str | None = None) -> list[dict[str, Any]]:
        """Insert one row or many in one statement (PostgREST's POST); returns the rows as stored.

        ``columns``: only these keys of each record are used (others are ignored, as PostgREST does).
        ``missing_default``: a column some records leave out takes its default (else NULL).
        ``resolution``: ``"merge"`` updates the row a record collides with on ``on_conflict`` (default
        ``id``), ``"ignore"`` skips it; the columns must be a unique index of the table within the site.
        Inserted rows emit ``created`` events, merged ones ``updated`` (with ``previous``)."""
        t = self._table(table)
        records = [values] if isinstance(values, Mapping) else list(values)
        if not records:
            return []
        if len(records) > MAX_ROWS_PER_WRITE:
            raise PayloadTooLarge(f"At most {MAX_ROWS_PER_WRITE} rows per request", code="too_many_rows")
        if columns is not None:
            for c in columns:
                if c != "site_id":
                    self._column(t, c)
            records = [{k: v for k, v in r.items() if k in columns} if isinstance(r, Mapping) else r for r in records]
        target = self._conflict_target(t, on_conflict) if resolution else None
        allow_id = target is not None and "id" in target
        clean = [self._writable_values(t, r, index=i if len(records) > 1 else None, creating=True,
                                       allow_id=allow_id) for i, r in enumerate(records)]
        chosen = set(columns) if columns is not None else set()
        written = [c for c in t.columns if c != "site_id" and (c in chosen or any(c in r for r in clean))]
        self._check_references(t, clean)
        rows_sql: list[sql.Composable] = []
        params: list[Any] = []
        for record in clean:
            cells: list[sql.Composable] = [sql.Placeholder()]
            params.append(self.site_id)
            for c in written:
                if c in record or not missing_default:
                    cells.append(sql.Placeholder())
                    params.append(record.get(c))
                else:
                    cells.append(sql.SQL("DEFAULT"))
            rows_sql.append(sql.SQL("({})").format(sql.SQL(", ").join(cells)))
        insert = sql.SQL("INSERT INTO {} AS t ({}) VALUES {}").format(
            self._ident(t), sql.SQL(", ").join(sql.Identifier(c) for c in ["site_id", *written]),
            sql.SQL(", ").join(rows_sql))
        if target is None:
            return self._write(t, "created", sql.SQL("{} RETURNING *").format(insert), params, written=written)
        conflict = sql.SQL(", ").join(sql.Identifier(c) for c in target)
        if resolution == "ignore":
            change = sql.SQL("{} ON CONFLICT ({}) DO NOTHING RETURNING *").format(insert, conflict)
            return self._write(t, "created", change, params, written=written)
        return self._merge(t, insert, params, target, clean, written)

    def _merge_locks(self, table: Table, keys: list[str], key_rows: list[dict[str, Any]]) -> sql.Composed:
        """Before a merge, in one round trip: a transaction lock per key (sorted, so two merges never wait
        on each other in a cycle), then the rows those keys already name, ``FOR UPDATE``. Two statements,
        so the second takes its snapshot once the first holds its locks, and the merge after them sees the
        row as the last writer committed it: its ``previous`` is the row it really replaces, and of two
        merges of a new key the second updates the row the first created (instead of an update of nothing)."""
        scope = f"module-merge:{self.schema.schema_name}.{table.name}:{self.site_id}:"
        names = sorted({scope + json.dumps([str(r[k]) for k in keys]) for r in key_rows})
        existing = sql.SQL("({}) IN (VALUES {})").format(
            sql.SQL(", ").join(sql.Identifier("o", k) for k in keys),
            sql.SQL(", ").join(sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(r[k]) for k in keys))
                               for r in key_rows))
        return sql.SQL(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
            "FROM (SELECT k FROM unnest({names}::text[]) AS u(k) ORDER BY k) AS s; "
            "SELECT 1 FROM {t} AS o WHERE o.site_id = {site} AND {existing} FOR UPDATE"
        ).format(names=sql.Literal(names), t=self._ident(table), site=sql.Literal(self.site_id), existing=existing)

    def _conflict_target(self, table: Table, on_conflict: Sequence[str] | None) -> tuple[str, ...]:
        """``site_id`` and the caller's columns, when they are a unique index of the table: rows only
        ever collide with rows of the same site."""
        names = [c for c in (on_conflict or ("id",)) if c != "site_id"]
        for c in names:
            self._column(table, c)
        target = ("site_id", *dict.fromkeys(names))
        if frozenset(target) not in table.uniques:
            known = ["(" + ",".join(sorted(u - {"site_id"})) + ")" for u in table.uniques if "site_id" in u]
            raise ValidationFailed(
                f"on_conflict: ({', '.join(names)}) is not a unique index of {table.name}",
                code="no_unique_index",
                details=[{"field": "on_conflict", "message": f"unique within a site: {', '.join(known) or 'none'}"}])
        return target

    def _merge(self, table: Table, insert: sql.Composable, params: list[Any], target: tuple[str, ...],
               clean: list[dict[str, Any]], written: list[str]) -> list[dict[str, Any]]:
        """INSERT ... ON CONFLICT DO UPDATE with one event per row: ``created`` for a new row, ``updated``
        (with ``previous``, the row before) for a merged one; all in one statement."""
        keys = [c for c in target if c != "site_id"]
        updates = [c for c in written if c not in target] or keys
        assignments = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates)
        key_rows = [r for r in clean if all(r.get(k) is not None for k in keys)]
        key_params = [r[k] for r in key_rows for k in keys]
        old_condition: sql.Composable
        if key_rows:
            tuple_sql = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(keys)))
            old_condition = sql.SQL("({}) IN (VALUES {})").format(
                sql.SQL(", ").join(sql.Identifier("o", k) for k in keys),
                sql.SQL(", ").join([tuple_sql] * len(key_rows)))
        else:
            old_condition = sql.SQL("false")
        inserted, previous = sql.Identifier(_INSERTED), sql.Identifier(_PREVIOUS)
        plain = sql.SQL("to_jsonb(r) - {} - {}").format(sql.Literal(_INSERTED), sql.Literal(_PREVIOUS))
        slug = event_segment(self.target.slug)
        events = []
        for action, source in (("created", "dramac$created"), ("updated", "dramac$updated")):
            payload = (sql.SQL("({}) || jsonb_build_object('previous', r.{})").format(plain, previous)
                       if action == "updated" else plain)
            events.append(outbox.events_for_rows(
                self.unit, self.site_id, f"{slug}.{table.entity}.{action}", rows=source, payload=payload,
                source_module=self.target.slug, source_entity_type=table.entity,
                source_entity_id=sql.SQL("r.id::text"), source_manifest=self.target.manifest))
        statement = sql.SQL("""
            WITH old AS (SELECT o.id, to_jsonb(o) AS previous FROM {t} AS o WHERE o.site_id = %s AND {old_condition}),
            changed AS ({insert} ON CONFLICT ({conflict}) DO UPDATE SET {assignments}
                        RETURNING t.*, (t.xmax = 0) AS {inserted}),
            marked AS (SELECT c.*, old.previous AS {previous} FROM changed c LEFT JOIN old ON old.id = c.id),
            {created} AS (SELECT * FROM marked WHERE {inserted}),
            {updated} AS (SELECT * FROM marked WHERE NOT {inserted}),
            created_events AS ({created_events}), updated_events AS ({updated_events})
            SELECT m.*, CASE WHEN row_number() OVER () = 1 THEN (
                          SELECT array_agg(e.id) FROM (SELECT id FROM created_events WHERE to_send UNION ALL
                                                       SELECT id FROM updated_events WHERE to_send) e) END AS {event_ids}
            FROM marked m
        """).format(t=self._ident(table), old_condition=old_condition, insert=insert,
                    conflict=sql.SQL(", ").join(sql.Identifier(c) for c in target), assignments=assignments,
                    inserted=inserted, previous=previous, created=sql.Identifier("dramac$created"),
                    updated=sql.Identifier("dramac$updated"), created_events=events[0][0],
                    updated_events=events[1][0], event_ids=sql.Identifier(_EVENTS))
        all_params = [self.site_id, *key_params, *params, *events[0][1], *events[1][1]]
        with self._scope(), _database_errors(table, written=written, action="updated"):
            if key_rows:
                self.unit.execute(self._merge_locks(table, keys, key_rows))
            rows = self._fetch_rows(statement, all_params)
        event_ids = _event_ids(rows)
        for row in rows:
            for extra in (_EVENTS, _PREVIOUS, _INSERTED):
                row.pop(extra, None)
        outbox.dispatch_after_commit(self.unit, event_ids)
        return rows

    def update_matching(self, table: str, conditions: Sequence[Condition], values: Mapping[str, Any]
                        ) -> list[dict[str, Any]]:
        """PostgREST's PATCH: update every row of the site matching the conditions (at least one)."""
        t = self._table(table)
        if not conditions:
            raise ValidationFailed("update needs a filter", code="filter_required")
        return self._update(t, conditions, values)

    def delete_matching(self, table: str, conditions: Sequence[Condition]) -> list[dict[str, Any]]:
        """PostgREST's DELETE: delete every row of the site matching the conditions (at least one)."""
        t = self._table(table)
        if not conditions:
            raise ValidationFailed("delete needs a filter", code="filter_required")
        return self._delete(t, conditions)

    def create_one(self, table: str, values: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(values, Mapping):
            raise BadRequest("create_one takes one object", code="invalid_body")
        return self.create(table, values)[0]

    def update(self, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Update every matching row of the site (a filter is required); returns the updated rows."""
        t = self._table(table)
        filters = filters_from_where(where)
        if not filters:
            raise ValidationFailed("update needs a filter; pass {'id': ...} or another condition",
                                   code="filter_required")
        return self._update(t, filters, values)

    def update_by_id(self, table: str, id: uuid.UUID | str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        t = self._table(table)
        row_id = self._id(id)
        if row_id is None:
            return None
        rows = self._update(t, (Filter("id", "eq", row_id),), values)
        return rows[0] if rows else None

    def delete(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete every matching row of the site (a filter is required); returns how many."""
        t = self._table(table)
        filters = filters_from_where(where)
        if not filters:
            raise ValidationFailed("delete needs a filter; pass {'id': ...} or another condition",
                                   code="filter_required")
        return len(self._delete(t, filters))

    def delete_by_id(self, table: str, id: uuid.UUID | str) -> dict[str, Any] | None:
        """The deleted row, or None when the site has no such row."""
        t = self._table(table)
        row_id = self._id(id)
        if row_id is None:
            return None
        rows = self._delete(t, (Filter("id", "eq", row_id),))
        return rows[0] if rows else None

    def batch(self, operations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Several operations in one database transaction: all or none. Each operation is
        ``{"op": "create", "table", "values"}``, ``{"op": "update", "table", "id" | "where", "values"}`` or
        ``{"op": "delete", "table", "id" | "where"}``; every one is checked before any runs, and an
        update or delete by ``id`` that finds no row fails the whole batch (404)."""
        if not isinstance(operations, Sequence) or isinstance(operations, str | bytes):
            raise BadRequest("operations must be a list", code="invalid_batch")
        if len(operations) > MAX_BATCH_OPERATIONS:
            raise PayloadTooLarge(f"At most {MAX_BATCH_OPERATIONS} operations per batch", code="too_many_operations")
        planned = [self._plan(i, op) for i, op in enumerate(operations)]
        results: list[dict[str, Any]] = []
        with self._scope():
            self.unit.execute("SAVEPOINT dramac_batch")
            try:
                for index, (kind, table, op) in enumerate(planned):
                    try:
                        results.append(self._run(kind, table, op))
                    except ApiError as exc:
                        exc.details = [{"operation": index, **d} for d in (exc.details or [{}])]
                        exc.message = f"Operation {index} ({kind} {table}): {exc.message}"
                        raise
            except BaseException:
                self._rollback_to("dramac_batch")
                raise
            self.unit.execute("RELEASE SAVEPOINT dramac_batch")
        return results

    # -- internals: validation -------------------------------------------------------------

    def _table(self, name: object) -> Table:
        table = self.schema.tables.get(name) if isinstance(name, str) else None
        if table is None:
            known = ", ".join(sorted(self.schema.tables)) or "none"
            raise ValidationFailed(f"Unknown table {name!r} for module {self.target.slug} (tables: {known})",
                                   code="unknown_table", details=[{"field": "table", "message": f"known: {known}"}])
        return table

    def _column(self, table: Table, name: str) -> Column:
        column = table.columns.get(name)
        if column is None:
            raise ValidationFailed(f"Unknown column {name!r} in {table.name}", code="unknown_column",
                                   details=[{"field": name, "message": f"not a column of {table.name}",
                                             "columns": list(table.columns)}])
        return column

    @staticmethod
    def _id(value: Any) -> uuid.UUID | None:
        """An id from a path or a payload; anything that is not a UUID names no row (404, not 400)."""
        if isinstance(value, uuid.UUID):
            return value
        try:
            return uuid.UUID(str(value))
        except ValueError:
            return None

    def _writable_values(self, table: Table, record: Any, *, index: int | None, creating: bool,
                         allow_id: bool = False) -> dict[str, Any]:
        where = f"[{index}]." if index is not None else ""
        if not isinstance(record, Mapping):
            raise BadRequest(f"{where or 'the body'} must be an object of column values", code="invalid_body")
        clean: dict[str, Any] = {}
        problems: list[dict[str, Any]] = []
        for name, value in record.items():
            if name == "site_id":
                # the SDK decides the site: this site's own id may be echoed back, any other is refused
                # (never silently moved to this site: the caller meant another one)
                if str(value) != str(self.site_id):
                    problems.append({"field": f"{where}site_id", "message": "must be this site's id, or omitted",
                                     "code": "site_mismatch"})
                continue
            column = table.columns.get(name)
            if column is None:
                problems.append({"field": f"{where}{name}", "message": f"not a column of {table.name}",
                                 "code": "unknown_column"})
            elif (name in READ_ONLY_COLUMNS and not (allow_id and name == "id")) or column.generated:
                problems.append({"field": f"{where}{name}", "message": "is set by the database",
                                 "code": "read_only_column"})
            else:
                try:
                    clean[name] = coerce_scalar(column, value)
                except InvalidValue as exc:
                    problems.append({"field": f"{where}{name}", "message": str(exc), "code": "invalid_value"})
        if creating:
            for name, column in table.columns.items():
                if column.required and name not in record and name not in READ_ONLY_COLUMNS and name != "site_id":
                    problems.append({"field": f"{where}{name}", "message": "is required", "code": "missing_value"})
        elif not clean and not problems:
            raise BadRequest("Nothing to update: give at least one column value", code="empty_update")
        if problems:
            first = problems[0]
            codes = {p["code"] for p in problems}
            raise ValidationFailed(f"{first['field']}: {first['message']}",
                                   code=codes.pop() if len(codes) == 1 else "validation_error", details=problems)
        return clean

    def _check_references(self, table: Table, records: list[dict[str, Any]]) -> None:
        """A foreign key to another table of the module must name a row of the same site: the database's
        own foreign key check would accept another site's id, which would tie two tenants together."""
        for name, column in table.columns.items():
            if not column.references or column.references not in self.schema.tables:
                continue
            ids = {r[name] for r in records if r.get(name) is not None}
            if not ids:
                continue
            target = self.schema.tables[column.references]
            with self._scope():
                row = self.unit.fetchrow(
                    sql.SQL("SELECT count(*) AS n FROM {} WHERE site_id = %s AND id = ANY(%s)").format(
                        self._ident(target)), (self.site_id, list(ids)))
            if int(row["n"]) != len(ids):
                raise _invalid(name, f"no such {target.name} row on this site", "invalid_reference")

    def _plan(self, index: int, op: Any) -> tuple[str, str, Mapping[str, Any]]:
        if not isinstance(op, Mapping):
            raise BadRequest(f"Operation {index} must be an object", code="invalid_batch",
                             details=[{"operation": index}])
        kind = op.get("op") or op.get("type")
        table = op.get("table")
        try:
            if kind not in ("create", "update", "delete"):
                raise BadRequest("op must be create, update or delete", code="invalid_batch")
            t = self._table(table)
            if kind == "create":
                values = op.get("values", op.get("data"))
                records = [values] if isinstance(values, Mapping) else values
                if not isinstance(records, list) or not records:
                    raise BadRequest("create needs values: an object or a list of objects", code="invalid_batch")
                for i, r in enumerate(records):
                    self._writable_values(t, r, index=i if len(records) > 1 else None, creating=True)
            else:
                if op.get("id") is None and not op.get("where"):
                    raise ValidationFailed(f"{kind} needs an id or a where filter", code="filter_required")
                for f in filters_from_where(op.get("where")):
                    self._filter_sql(t, f)
                if kind == "update":
                    self._writable_values(t, op.get("values", op.get("data")), index=None, creating=False)
        except ApiError as exc:
            exc.details = [{"operation": index, **d} for d in (exc.details or [{}])]
            exc.message = f"Operation {index}: {exc.message}"
            raise
        return str(kind), str(table), op

    def _run(self, kind: str, table: str, op: Mapping[str, Any]) -> dict[str, Any]:
        values = op.get("values", op.get("data"))
        if kind == "create":
            rows = self.create(table, values)
            return {"op": kind, "table": table, "data": rows if not isinstance(values, Mapping) else rows[0]}
        if op.get("id") is not None:
            row = (self.update_by_id(table, op["id"], values) if kind == "update"
                   else self.delete_by_id(table, op["id"]))
            if row is None:
                raise NotFound(f"No {table} row {op['id']} on this site", code="row_not_found")
            return {"op": kind, "table": table, "data": row}
        if kind == "update":
            return {"op": kind, "table": table, "data": self.update(table, op["where"], values)}
        t = self._table(table)
        rows = self._delete(t, filters_from_where(op["where"]))
        return {"op": kind, "table": table, "data": rows, "count": len(rows)}

    # -- internals: SQL ------------------------------------------------------------------------

    def _fetch_rows(self, statement: sql.Composable, params: list[Any], *, commit: bool = False
                    ) -> list[dict[str, Any]]:
        return fetch_exact(self.unit, statement, params, commit=commit)

    def _ident(self, table: Table) -> sql.Identifier:
        return sql.Identifier(self.schema.schema_name, table.name)

    def _select_list(self, table: Table, select: Sequence[str] | None) -> sql.Composable:
        if not select:
            return sql.SQL("*")
        return sql.SQL(", ").join(sql.Identifier(self._column(table, c).name) for c in select)

    def _fields_sql(self, table: Table, fields: Sequence[Field | Embed], depth: int
                    ) -> tuple[sql.Composable, list[sql.Composable]]:
        """A PostgREST select list over ``table`` (alias ``t<depth>``): columns (renamed when aliased) and
        embedded tables as correlated subqueries, a JSON object (to-one) or array (to-many) each, always
        of this site; and the conditions ``!inner`` embeds add to the query."""
        alias = sql.Identifier(f"t{depth}")
        items: list[sql.Composable] = []
        inner: list[sql.Composable] = []
        names: set[str] = set()
        if not fields:
            fields = ()
            items.append(sql.SQL("{}.*").format(alias))
            names.update(table.columns)
        for item in fields:
            if item.name in names:
                raise _invalid(item.name, "is selected twice; give one of them an alias (alias:column)",
                               "invalid_query")
            names.add(item.name)
            if isinstance(item, Field):
                if item.column == "*":
                    items.append(sql.SQL("{}.*").format(alias))
                    names.update(table.columns)
                    continue
                self._column(table, item.column)
                items.append(sql.SQL("{}.{} AS {}").format(alias, sql.Identifier(item.column),
                                                           sql.Identifier(item.name)))
                continue
            if depth + 1 > MAX_EMBED_DEPTH:
                raise _invalid(item.name, f"embedding nests at most {MAX_EMBED_DEPTH} levels deep", "invalid_query")
            target, many, join = self._relation(table, item, depth)
            nested, nested_inner = self._fields_sql(target, item.fields or (), depth + 1)
            source = sql.SQL("FROM {} AS {} WHERE {}").format(
                self._ident(target), sql.Identifier(f"t{depth + 1}"), sql.SQL(" AND ").join([join, *nested_inner]))
            if many:
                items.append(sql.SQL(
                    "(SELECT coalesce(json_agg(x), '[]') FROM (SELECT {} {} ORDER BY {}) x) AS {}").format(
                    nested, source, self._order(target, (), qualifier=f"t{depth + 1}"), sql.Identifier(item.name)))
            else:
                items.append(sql.SQL("(SELECT row_to_json(x) FROM (SELECT {} {}) x) AS {}").format(
                    nested, source, sql.Identifier(item.name)))
            if item.inner:
                inner.append(sql.SQL("EXISTS (SELECT 1 {})").format(source))
        return sql.SQL(", ").join(items), inner

    def _relation(self, table: Table, embed: Embed, depth: int) -> tuple[Table, bool, sql.Composable]:
        """The table an embed names and how it joins: (target, to-many?, join condition). A foreign key
        of the module in either direction; ``!hint`` (the foreign key's column) picks one of several."""
        parent, child = f"t{depth}", f"t{depth + 1}"
        tables = self.schema.tables
        # (target, to-many, the referencing column, the referenced column)
        candidates: list[tuple[Table, bool, str, str]] = []
        column = table.columns.get(embed.relation)
        if column is not None and column.foreign_key and column.foreign_key[0] in tables:  # by the fk column
            candidates.append((tables[column.foreign_key[0]], False, column.name, column.foreign_key[1]))
        target = tables.get(embed.relation)
        if target is not None:
            candidates += [(target, False, c.name, c.foreign_key[1]) for c in table.columns.values()
                           if c.foreign_key and c.foreign_key[0] == target.name]
            candidates += [(target, True, c.name, c.foreign_key[1]) for c in target.columns.values()
                           if c.foreign_key and c.foreign_key[0] == table.name]
        if embed.hint:
            candidates = [c for c in candidates if embed.hint in (c[2], c[0].name)]
        unique = list({(c[0].name, c[1], c[2], c[3]): c for c in candidates}.values())
        if not unique:
            raise ApiError(f"Could not find a relationship between {table.name!r} and {embed.relation!r}",
                           code="unknown_relationship",
                           details=[{"field": embed.relation,
                                     "message": "no foreign key of the module joins these tables"}])
        if len(unique) > 1:
            raise ApiError(f"More than one relationship was found for {table.name!r} and {embed.relation!r}",
                           code="ambiguous_relationship",
                           details=[{"field": embed.relation, "message": f"pick one with {embed.relation}!{c[2]}",
                                     "column": c[2]} for c in unique])
        found, many, via, key = unique[0]
        same_site = sql.SQL("{}.site_id = {}.site_id").format(sql.Identifier(child), sql.Identifier(parent))
        if many:  # the embedded rows point at this row
            join = sql.SQL("{} AND {}.{} = {}.{}").format(same_site, sql.Identifier(child), sql.Identifier(via),
                                                         sql.Identifier(parent), sql.Identifier(key))
        else:  # this row points at the embedded one
            join = sql.SQL("{} AND {}.{} = {}.{}").format(same_site, sql.Identifier(child), sql.Identifier(key),
                                                         sql.Identifier(parent), sql.Identifier(via))
        return found, many, join

    def _order(self, table: Table, order: Sequence[Order], qualifier: str | None = None) -> sql.Composable:
        def name(column: str) -> sql.Identifier:
            return sql.Identifier(qualifier, column) if qualifier else sql.Identifier(column)

        terms = []
        for o in order:
            self._column(table, o.column)
            term = sql.SQL("{} {}").format(name(o.column), sql.SQL("DESC" if o.descending else "ASC"))
            if o.nulls:
                term = sql.SQL("{} {}").format(term, sql.SQL("NULLS FIRST" if o.nulls == "first" else "NULLS LAST"))
            terms.append(term)
        if not terms and "created_at" in table.columns:
            terms.append(sql.SQL("{} ASC").format(name("created_at")))
        if not any(o.column == "id" for o in order):
            terms.append(sql.SQL("{} ASC").format(name("id")))  # a stable order for paging
        return sql.SQL(", ").join(terms)

    def _filter_sql(self, table: Table, f: Filter) -> tuple[sql.Composable, list[Any]]:
        column = self._column(table, f.column)
        ident = sql.Identifier(column.name)
        clause: sql.Composable
        try:
            if f.op in _COMPARISONS:
                if f.value is None:
                    raise InvalidValue(f"{f.op} needs a value; use is.null to match missing values")
                text = isinstance(f.value, str)
                clause = sql.SQL("{} " + _COMPARISONS[f.op] + " %s").format(ident)
                params = [coerce_scalar(column, f.value, from_text=text)]
            elif f.op in ("like", "ilike"):
                clause = sql.SQL("{}::text " + ("LIKE" if f.op == "like" else "ILIKE") + " %s").format(ident)
                params = [coerce_text_pattern(column, f.value)]
            elif f.op == "in":
                values = list(f.value)
                if len(values) > MAX_IN_VALUES:
                    raise InvalidValue(f"in takes at most {MAX_IN_VALUES} values")
                if not values:
                    clause, params = sql.SQL("false"), []
                else:
                    params = [coerce_scalar(column, v, from_text=isinstance(v, str)) for v in values]
                    clause = sql.SQL("{} IN ({})").format(ident, sql.SQL(", ").join(sql.Placeholder() * len(values)))
            elif f.op == "is":
                word = {None: "NULL", True: "TRUE", False: "FALSE", "unknown": "UNKNOWN"}[f.value]
                clause, params = sql.SQL("{} IS " + word).format(ident), []
            elif f.op == "isdistinct":
                clause = sql.SQL("{} IS DISTINCT FROM %s").format(ident)
                params = [coerce_scalar(column, f.value, from_text=isinstance(f.value, str))]
                if params[0] is None:
                    raise InvalidValue("isdistinct needs a value; use not.is.null")
            elif f.op in ("match", "imatch"):
                clause = sql.SQL("{}::text " + ("~" if f.op == "match" else "~*") + " %s").format(ident)
                params = [coerce_text_pattern(column, f.value)]
            elif f.op in FTS_OPERATORS:
                function = sql.SQL({"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery",
                                    "wfts": "websearch_to_tsquery"}[f.op])
                # a text column is searched as to_tsvector(config, text), with the query's configuration;
                # a configuration name is bound as a value and cast by the server (an unknown one: 400)
                vector = sql.SQL("{}").format(ident) if column.type_name == "tsvector" else (
                    sql.SQL("to_tsvector(%s::regconfig, {}::text)" if f.option else "to_tsvector({}::text)")
                    .format(ident))
                config = sql.SQL("%s::regconfig, " if f.option else "")
                clause = sql.SQL("{} @@ {}({}%s)").format(vector, function, config)
                params = [*([f.option] * (1 if column.type_name == "tsvector" else 2) if f.option else []),
                          coerce_text_pattern(column, f.value)]
            elif f.op in _CONTAINMENT:
                if column.type_name in ("json", "jsonb") and f.op != "ov":
                    value = coerce_scalar(column, f.value, from_text=isinstance(f.value, str))
                elif column.category in ("A", "R") or column.type_name in ("json", "jsonb"):
                    # an array or range literal ({a,b}, [1,5)): parsed by the server as the column's type
                    value = coerce_array_literal(column, f.value)
                else:
                    raise InvalidValue(f"{f.op} applies to array, range and json columns")
                clause, params = sql.SQL("{} " + _CONTAINMENT[f.op] + " %s").format(ident), [value]
            else:
                raise InvalidValue(f"unknown operator {f.op!r}")
        except InvalidValue as exc:
            raise _invalid(f.column, str(exc)) from exc
        if any(p is None for p in params):
            raise _invalid(f.column, "null is matched with is.null, not a comparison")
        if f.negate:
            clause = sql.SQL("NOT ({})").format(clause)
        return clause, params

    def _condition_sql(self, table: Table, condition: Condition, depth: int = 0) -> tuple[sql.Composable, list[Any]]:
        if isinstance(condition, Filter):
            return self._filter_sql(table, condition)
        if depth >= MAX_LOGIC_DEPTH:
            raise _invalid(condition.op, f"logical operators nest at most {MAX_LOGIC_DEPTH} levels deep",
                           "invalid_query")
        parts: list[sql.Composable] = []
        params: list[Any] = []
        for item in condition.items:
            clause, values = self._condition_sql(table, item, depth + 1)
            parts.append(sql.SQL("({})").format(clause))
            params.extend(values)
        if not parts:
            joined: sql.Composable = sql.SQL("true" if condition.op == "and" else "false")
        else:
            joined = sql.SQL(" AND " if condition.op == "and" else " OR ").join(parts)
        if condition.negate:
            joined = sql.SQL("NOT ({})").format(joined)
        return joined, params

    def _where(self, table: Table, filters: Sequence[Condition]) -> tuple[sql.Composable, list[Any]]:
        clauses: list[sql.Composable] = [sql.SQL("{} = %s").format(sql.Identifier("site_id"))]
        params: list[Any] = [self.site_id]
        for f in filters:
            clause, values = self._condition_sql(table, f)
            clauses.append(clause if isinstance(f, Filter) else sql.SQL("({})").format(clause))
            params.extend(values)
        return sql.SQL(" AND ").join(clauses), params

    def _write(self, table: Table, action: str, change: sql.Composable, params: list[Any],
               written: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Run a data-changing statement and write one outbox event per changed row, in one statement."""
        payload = (sql.SQL("(to_jsonb(r) - {}) || jsonb_build_object('previous', r.{})").format(
                       sql.Literal(_PREVIOUS), sql.Identifier(_PREVIOUS))
                   if action == "updated" else sql.SQL("to_jsonb(r)"))
        events, event_params = outbox.events_for_rows(
            self.unit, self.site_id, f"{event_segment(self.target.slug)}.{table.entity}.{action}", rows="changed",
            payload=payload, source_module=self.target.slug, source_entity_type=table.entity,
            source_entity_id=sql.SQL("r.id::text"), source_manifest=self.target.manifest)
        statement = sql.SQL("""
            WITH changed AS ({change}), events AS ({events})
            SELECT c.*, CASE WHEN row_number() OVER () = 1 THEN (SELECT array_agg(e.id) FROM events e WHERE e.to_send)
                        END AS {event_ids}
            FROM changed c
        """).format(change=change, events=events, event_ids=sql.Identifier(_EVENTS))
        with self._scope(), _database_errors(table, written=written, action=action):
            rows = self._fetch_rows(statement, [*params, *event_params])
        event_ids = _event_ids(rows)
        for row in rows:
            row.pop(_EVENTS, None)
            row.pop(_PREVIOUS, None)
        outbox.dispatch_after_commit(self.unit, event_ids)
        return rows

    def _update(self, table: Table, filters: Sequence[Condition], values: Mapping[str, Any]) -> list[dict[str, Any]]:
        clean = self._writable_values(table, values, index=None, creating=False)
        self._check_references(table, [clean])
        condition, where_params = self._where(table, filters)
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in clean)
        change = sql.SQL("""
            UPDATE {t} AS t SET {assignments}
            FROM (SELECT * FROM {t} WHERE {condition} FOR UPDATE) AS target
            WHERE t.id = target.id
            RETURNING t.*, to_jsonb(target) AS {previous}
        """).format(t=self._ident(table), assignments=assignments, condition=condition,
                    previous=sql.Identifier(_PREVIOUS))
        return self._write(table, "updated", change, [*clean.values(), *where_params], written=list(clean))

    def _delete(self, table: Table, filters: Sequence[Condition]) -> list[dict[str, Any]]:
        condition, params = self._where(table, filters)
        change = sql.SQL("DELETE FROM {} WHERE {} RETURNING *").format(self._ident(table), condition)
        return self._write(table, "deleted", change, params)

    # -- internals: the worker scope ----------------------------------------------------------

    @contextmanager
    def _scope(self) -> Iterator[None]:
        """For ``for_service``: run the enclosed statements as ``authenticated`` scoped to this site,
        so row-level security bounds a worker exactly as it bounds a site API key."""
        if not self._service_scope or self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        # a worker acts for one module (once it is known): the database scopes it like a key for that module
        modules = [self.target.slug] if self.target is not None else None
        claims = {"role": "site_api_key", "site_id": str(self.site_id), "sub": None, "scope": "worker",
                  "modules": modules}
        self.unit.execute(sql.SQL(
            "SAVEPOINT dramac_sdk; SELECT set_config('request.jwt.claims', {}, true), "
            "set_config('role', 'authenticated', true)").format(sql.Literal(json.dumps(claims))))
        self._depth += 1
        try:
            yield
        except BaseException:
            self._rollback_to("dramac_sdk")
            raise
        else:
            self.unit.execute("SELECT set_config('role', 'none', true), set_config('request.jwt.claims', '', true); "
                              "RELEASE SAVEPOINT dramac_sdk")
        finally:
            self._depth -= 1

    def _rollback_to(self, savepoint: str) -> None:
        conn = self.unit.conn
        if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.UNKNOWN:
            return
        with suppress(psycopg.Error):
            conn.execute(sql.SQL("ROLLBACK TO SAVEPOINT {0}; RELEASE SAVEPOINT {0}").format(sql.Identifier(savepoint)))


def forget_cached_schemas() -> None:
    forget_module_schema(None)
