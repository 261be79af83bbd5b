"""PostgREST's wire protocol over the module data SDK: ``/api/sites/{siteId}/modules/{moduleId}/rest/{table}``.

supabase-js, postgrest-js and postgrest-py (supabase-py) work against it unchanged, pointed at
``.../modules/{moduleId}/rest``. This module is the protocol only: it turns query parameters and headers
(``select``, filters, ``or``/``and``, ``order``, ``limit``/``offset``/``Range``, ``Prefer``, ``Accept``) into the
SDK's typed ``Query`` and write calls, and the SDK's results and refusals into PostgREST's answers (bare
JSON, ``Content-Range``, ``Preference-Applied``, ``{"code", "message", "details", "hint"}`` errors with
PostgREST's codes and statuses). Tenancy, roles, module scope, RLS and events are the SDK's and the
shared layer's, exactly as on the envelope API.

Behaviour follows PostgREST 12; where a deployment setting chooses, this surface behaves as a PostgREST
configured with ``db-max-rows = 1000`` (``MAX_LIMIT``), ``db-tx-end = commit-allow-override`` and the
``pg-safeupdate`` extension (a PATCH or DELETE without any filter is refused: ask for every row
explicitly, e.g. ``id=not.is.null``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..core import jsonbody
from ..core.auth import Principal
from ..core.errors import ApiError, NotFound, ValidationFailed
from ..core.tenancy import Action, site_unit
from .query import (
    MAX_LIMIT,
    MAX_OFFSET,
    REST_OPERATORS,
    Condition,
    Embed,
    Field,
    Filter,
    Logic,
    Order,
    Query,
    _parse_order,
    _Problems,
    _split_list,
    parse_filter,
)
from .sdk import ModuleDatabaseSDK

OBJECT_MEDIA_TYPE = "application/vnd.pgrst.object+json"
JSON_MEDIA_TYPES = frozenset({"application/json", "*/*", "application/*", ""})
PROFILES = frozenset({"public"})
LOGIC_KEYS = frozenset({"or", "and", "not.or", "not.and"})
MAX_SELECT_LENGTH = 4000
_NAME = r"[a-z_][a-z0-9_]{0,62}"
_SELECT_ITEM = re.compile(rf"^(?:({_NAME}):)?({_NAME}|\*)((?:!{_NAME})*)$")
_RANGE = re.compile(r"^\s*(\d{1,9})-(\d{0,9})\s*\Z")


class RestError(ApiError):
    """A refusal in PostgREST's own terms: its code (``PGRST…`` or a SQLSTATE), status, details, hint."""

    def __init__(self, status: int, code: str, message: str, *, details: str | None = None,
                 hint: str | None = None):
        super().__init__(message, code=code)
        self.status = status
        self.rest_details = details
        self.hint = hint


# -- the request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prefer:
    """The ``Prefer`` header(s): what the client asked for, and what this request applied."""

    return_: str | None = None  # minimal | headers-only | representation
    count: str | None = None  # exact | planned | estimated
    resolution: str | None = None  # merge-duplicates | ignore-duplicates
    missing: str | None = None  # default
    tx: str | None = None  # commit | rollback
    handling: str | None = None  # lenient | strict

    def applied(self, *names: str) -> str | None:
        values = {"return": self.return_, "count": self.count, "resolution": self.resolution,
                  "missing": self.missing, "tx": self.tx, "handling": self.handling}
        parts = [f"{n}={values[n]}" for n in names if values.get(n)]
        return ", ".join(parts) or None


_PREFER_VALUES = {
    "return": {"minimal", "headers-only", "representation"},
    "count": {"exact", "planned", "estimated"},
    "resolution": {"merge-duplicates", "ignore-duplicates"},
    "missing": {"default", "null"},
    "tx": {"commit", "rollback"},
    "handling": {"lenient", "strict"},
}


def parse_prefer(values: Iterable[str]) -> Prefer:
    """``Prefer: return=representation, count=exact`` (several headers allowed). Unknown preferences are
    ignored, as RFC 7240 and PostgREST's ``handling=lenient`` want; ``handling=strict`` refuses them."""
    found: dict[str, str] = {}
    unknown: list[str] = []
    for header in values:
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if not name:
                continue
            if value in _PREFER_VALUES.get(name, ()):
                found[name] = value
            else:
                unknown.append(item.strip())
    prefer = Prefer(return_=found.get("return"), count=found.get("count"), resolution=found.get("resolution"),
                    missing=found.get("missing"), tx=found.get("tx"), handling=found.get("handling"))
    if prefer.handling == "strict" and unknown:
        raise RestError(400, "PGRST122", "Invalid preferences given with handling=strict",
                        details=f"Invalid preferences: {', '.join(unknown)}")
    return prefer


@dataclass(frozen=True)
class RestRequest:
    """A PostgREST request's query string, parsed: the SDK's ``Query`` and the write options."""

    query: Query
    conditions: tuple[Condition, ...]
    limited: bool  # limit, offset or a Range was given
    columns: tuple[str, ...] | None = None
    on_conflict: tuple[str, ...] | None = None
    select_given: bool = False
    problems: list[dict[str, Any]] = field(default_factory=list)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced parentheses")
        elif not quoted and depth == 0 and ch == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if depth or quoted:
        raise ValueError("unbalanced parentheses or quotes")
    parts.append("".join(current))
    return parts


def parse_select(text: str, depth: int = 0) -> tuple[Field | Embed, ...]:
    """``id,mail:email,company:companies!company_id(name,contacts(email))`` → fields and embeds."""
    if len(text) > MAX_SELECT_LENGTH:
        raise ValueError(f"select is at most {MAX_SELECT_LENGTH} characters")
    items: list[Field | Embed] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            if depth:  # companies() : the embed with every column
                continue
            raise ValueError("an empty item")
        head, paren, rest = part.partition("(")
        head = head.strip()
        if head.startswith("..."):
            raise ValueError("spreading an embedded table (...) is not supported")
        if "::" in head or "->" in head:
            raise ValueError(f"{head!r}: casts and JSON paths are not supported in select")
        match = _SELECT_ITEM.match(head)
        if not match:
            raise ValueError(f"{head!r} is not a column, alias:column or table(columns)")
        alias, name, bangs = match.group(1), match.group(2), match.group(3)
        if paren:
            if not rest.endswith(")"):
                raise ValueError(f"{head}( is not closed")
            marks = [b for b in bangs.split("!") if b]
            inner = "inner" in marks
            hints = [b for b in marks if b not in ("inner", "left")]
            if len(hints) > 1:
                raise ValueError(f"{head}: at most one !hint")
            if name == "*":
                raise ValueError("* cannot be embedded")
            nested = parse_select(rest[:-1], depth + 1)
            items.append(Embed(name, nested or None, alias, hints[0] if hints else None, inner))
        else:
            if bangs:
                raise ValueError(f"{head}: !hint is for embedded tables, e.g. {name}!hint(columns)")
            if name == "*" and alias:
                raise ValueError("* cannot take an alias")
            items.append(Field(name, alias))
    return tuple(items)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_logic(key: str, value: str, depth: int = 0) -> Logic:
    """``or=(a.eq.1,and(b.gt.2,c.is.null))``: the logical tree of a ``or``/``and`` parameter."""
    negate = key.startswith("not.")
    op = key[4:] if negate else key
    if not (value.startswith("(") and value.endswith(")")):
        raise ValueError(f"{key} takes a parenthesised list, e.g. {op}=(a.eq.1,b.eq.2)")
    if depth > 10:
        raise ValueError("logical operators nest at most 10 levels deep")
    items: list[Condition] = []
    for raw in _split_top(value[1:-1]):
        part = raw.strip()
        inner_key, paren, _ = part.partition("(")
        if paren and inner_key in LOGIC_KEYS:
            items.append(parse_logic(inner_key, part[len(inner_key):], depth + 1))
            continue
        column, dot, condition = part.partition(".")
        if not dot or not re.fullmatch(_NAME, column):
            raise ValueError(f"{part!r} is not column.operator.value")
        op_text, _, operand = condition.partition(".")
        if op_text == "not":
            real_op, _, operand = operand.partition(".")
            op_text = f"not.{real_op}"
        operand = _unquote(operand) if not op_text.endswith("in") else operand
        items.append(parse_filter(column, f"{op_text}.{operand}", REST_OPERATORS))
    return Logic(op, tuple(items), negate)


def parse_range(header: str | None) -> tuple[int, int | None] | None:
    """``Range: 0-9`` (``Range-Unit: items``) → (offset, limit); ``10-`` → (10, None)."""
    if not header:
        return None
    match = _RANGE.match(header)
    if not match:
        return None  # PostgREST ignores a Range it cannot parse
    start = int(match.group(1))
    if not match.group(2):
        return start, None
    end = int(match.group(2))
    if end < start:
        raise RestError(416, "PGRST103", "Requested range not satisfiable",
                        details="The lower boundary must be lower than or equal to the upper boundary")
    return start, end - start + 1


def parse_request(params: Sequence[tuple[str, str]], *, range_header: str | None = None) -> RestRequest:
    """The query string of a ``/rest`` request (repeated keys AND together) → ``RestRequest``; every
    syntax problem at once as a 400 ``PGRST100``."""
    problems = _Problems()
    conditions: list[Condition] = []
    fields: tuple[Field | Embed, ...] | None = None
    order: tuple[Order, ...] = ()
    limit: int | None = None
    offset = 0
    columns: tuple[str, ...] | None = None
    on_conflict: tuple[str, ...] | None = None
    select_given = False
    for key, raw in params:
        try:
            if key == "select":
                select_given = True
                parsed = parse_select(raw.strip()) if raw.strip() else (Field("*"),)
                fields = None if parsed == (Field("*"),) else parsed
            elif key == "order":
                order = _parse_order(problems, raw)
            elif key == "limit":
                limit = int(raw)
                if limit < 0:
                    raise ValueError("limit must be 0 or more")
            elif key == "offset":
                offset = int(raw)
                if not 0 <= offset <= MAX_OFFSET:
                    raise ValueError(f"offset must be between 0 and {MAX_OFFSET}")
            elif key == "columns":
                names = tuple(_split_list(raw))
                if not names or any(not re.fullmatch(_NAME, n) for n in names):
                    raise ValueError("columns takes column names, e.g. columns=email,lead_score")
                columns = names
            elif key == "on_conflict":
                names = tuple(n.strip() for n in raw.split(","))
                if not names or any(not re.fullmatch(_NAME, n) for n in names):
                    raise ValueError("on_conflict takes column names, e.g. on_conflict=email")
                on_conflict = names
            elif key in LOGIC_KEYS:
                conditions.append(parse_logic(key, raw))
            elif re.fullmatch(_NAME, key):
                conditions.append(parse_filter(key, raw, REST_OPERATORS))
            elif "." in key:
                raise ValueError("filters, order and limits on embedded tables are not supported")
            else:
                raise ValueError("not a column name (filters look like column=op.value)")
        except ValueError as exc:
            problems.add(key, str(exc) if "invalid literal" not in str(exc) else "must be a whole number")
    ranged = parse_range(range_header)
    limited = limit is not None or offset > 0 or ranged is not None
    if ranged is not None and limit is None and offset == 0:
        offset, limit = ranged
    if problems.items:
        first = problems.items[0]
        raise RestError(400, "PGRST100", f'"failed to parse {first["field"]}" ({first["message"]})',
                        details="; ".join(f"{p['field']}: {p['message']}" for p in problems.items))
    # this surface's db-max-rows: a request for more rows (or for all of them) gets at most MAX_LIMIT
    capped = MAX_LIMIT if limit is None else min(limit, MAX_LIMIT)
    query = Query(tuple(conditions), None, order, capped, offset, False, fields)
    return RestRequest(query, tuple(conditions), limited, columns, on_conflict, select_given)


def wants_object(accept: str | None) -> bool:
    """``Accept: application/vnd.pgrst.object+json`` (``single()``) or JSON; anything else is 406."""
    media = [m.split(";")[0].strip().lower() for m in (accept or "").split(",")]
    if OBJECT_MEDIA_TYPE in media:
        return True
    if any(m in JSON_MEDIA_TYPES for m in media):
        return False
    raise RestError(406, "PGRST107", "None of these media types are available: " + (accept or ""),
                    details="this surface answers application/json and " + OBJECT_MEDIA_TYPE)


def check_profile(value: str | None, header: str) -> None:
    """``Accept-Profile`` / ``Content-Profile``: the clients send ``public``; that is the only schema."""
    if value and value.strip() not in PROFILES:
        raise RestError(406, "PGRST106", "The schema must be one of the following: public",
                        details=f"{header}: {value.strip()}")


def require_one(rows: Sequence[Any]) -> None:
    if len(rows) != 1:
        raise RestError(406, "PGRST116", "JSON object requested, multiple (or no) rows returned",
                        details=f"The result contains {len(rows)} rows")


def content_range(offset: int, returned: int, total: int | None) -> str:
    shown = "*" if total is None else str(total)
    if returned == 0:
        return f"*/{shown}"
    return f"{offset}-{offset + returned - 1}/{shown}"


def range_status(offset: int, returned: int, total: int | None) -> int:
    """PostgREST's status for a read: 416 past the end, 206 for part of a known total, else 200."""
    if total is None:
        return 200
    if offset > total:
        raise RestError(416, "PGRST103", "Requested range not satisfiable",
                        details=f"An offset of {offset} was requested, but there are only {total} rows.")
    return 206 if returned < total else 200


def project(rows: list[dict[str, Any]], fields: Sequence[Field | Embed] | None) -> list[dict[str, Any]]:
    """A write's returned rows cut to its ``select`` (columns and aliases)."""
    if not fields:
        return rows
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for f in fields:
            if isinstance(f, Field) and f.column == "*":
                item.update(row)
            elif isinstance(f, Field):
                if f.column not in row:
                    raise ValidationFailed(f"Unknown column {f.column!r}", code="unknown_column",
                                           details=[{"field": f.column, "message": "not a column"}])
                item[f.name] = row[f.column]
        out.append(item)
    return out


# -- errors --------------------------------------------------------------------------------------

# the SDK's and the shared layer's codes → (PostgREST status, PostgREST code or SQLSTATE)
_CODES: dict[str, tuple[int, str]] = {
    "invalid_query": (400, "PGRST100"),
    "invalid_filter": (400, "PGRST100"),
    "unknown_table": (404, "PGRST205"),
    "unknown_column": (400, "42703"),
    "invalid_value": (400, "22P02"),
    "value_too_long": (400, "22001"),
    "invalid_character": (400, "22021"),
    "value_too_large": (400, "54000"),
    "missing_value": (400, "23502"),
    "check_violation": (400, "23514"),
    "invalid_reference": (409, "23503"),
    "still_referenced": (409, "23503"),
    "unique_violation": (409, "23505"),
    "conflict": (409, "23000"),
    "conflict_retry": (409, "40001"),
    "read_only_column": (400, "428C9"),
    "no_unique_index": (400, "42P10"),
    "unknown_search_config": (400, "42704"),
    "duplicate_in_request": (400, "21000"),
    "unknown_relationship": (400, "PGRST200"),
    "ambiguous_relationship": (300, "PGRST201"),
    "invalid_json": (400, "PGRST102"),
    "invalid_body": (400, "PGRST102"),
    "json_too_deep": (400, "PGRST102"),
    "empty_update": (400, "PGRST102"),
    "unauthorized": (401, "PGRST302"),
    "invalid_token": (401, "PGRST301"),
    "invalid_api_key": (401, "PGRST301"),
    "forbidden": (403, "42501"),
    "api_key_scope": (403, "42501"),
    "database_unavailable": (503, "PGRST001"),
    "database_timeout": (504, "57014"),
}


def rest_error_body(error: ApiError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, extra headers) of a refusal in PostgREST's shape. Codes PostgREST has no word for
    (``module_not_installed``, ``site_not_found``…) keep this API's own code and status."""
    headers: dict[str, str] = {}
    if isinstance(error, RestError):
        status, code, details, hint = error.status, error.code, error.rest_details, error.hint
    else:
        status, code = _CODES.get(error.code, (error.status, error.code))
        details = "; ".join(
            f"{d.get('field')}: {d.get('message')}" if isinstance(d, Mapping) and d.get("field") else
            str(d.get("message", d)) if isinstance(d, Mapping) else str(d)
            for d in error.details) if error.details else None
        hint = None
        if error.code == "filter_required":
            status, code = 400, "21000"
            hint = "Add a filter; to change every row ask for it explicitly, e.g. id=not.is.null"
        elif error.code == "unknown_table":
            details = error.message
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if code == "PGRST301" else "Bearer"
    body = {"code": code, "details": details, "hint": hint, "message": _message(error)}
    return status, body, headers


def _message(error: ApiError) -> str:
    if error.code == "filter_required":
        return "UPDATE requires a WHERE clause" if error.message.startswith("update") else \
            "DELETE requires a WHERE clause"
    return error.message


# -- serving a request -----------------------------------------------------------------------------


@dataclass
class RestResponse:
    status: int
    body: Any = None  # rows, one row, or None for no body
    headers: dict[str, str] = field(default_factory=dict)
    single: bool = False  # the body is one object (Accept: application/vnd.pgrst.object+json)


class _Rollback(Exception):
    def __init__(self, response: RestResponse):
        super().__init__("rolled back")
        self.response = response


def _site_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound("Site not found", code="site_not_found") from None


def _json_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    return jsonbody.loads(raw, exact_numbers=True, where="body")


def _returned(sdk: ModuleDatabaseSDK, table: str, rows: list[dict[str, Any]], request: RestRequest,
              method: str) -> list[dict[str, Any]]:
    """A write's rows as its ``select`` asks: columns and aliases, and embeds read back by id."""
    fields = request.query.fields
    if not fields or not any(isinstance(f, Embed) for f in fields):
        return project(rows, fields)
    if method == "DELETE":
        raise RestError(400, "PGRST100", "Embedding in the response of a DELETE is not supported",
                        details="select only columns of the deleted rows")
    ids = [r["id"] for r in rows]
    if not ids:
        return []
    found, _ = sdk.query(table, Query((Filter("id", "in", tuple(ids)),), None, (), MAX_LIMIT, 0, False,
                                      (Field("id", "dramac$id"), *fields)))
    by_id = {r.pop("dramac$id"): r for r in found}
    plain = project(rows, [f for f in fields if isinstance(f, Field)])
    out = []
    for row, cut in zip(rows, plain, strict=True):
        read = by_id.get(row["id"], {})
        out.append({**cut, **{f.name: read.get(f.name) for f in fields if isinstance(f, Embed)}})
    return out


def _count(sdk: ModuleDatabaseSDK, table: str, query: Query, mode: str | None, exact: int | None) -> int | None:
    if mode == "exact" or mode is None:
        return exact
    planned = sdk.estimate(table, query)
    if mode == "estimated" and planned <= MAX_LIMIT:  # small: the exact count is cheap
        return sdk.count_matching(table, query)
    return planned


def serve(principal_of: Callable[[], Principal], method: str, site_ref: str, module: str, table: str,
          params: Sequence[tuple[str, str]], headers: Mapping[str, str], body: bytes) -> RestResponse:
    """One request of the PostgREST surface (``headers`` with lower-case names). Refusals are raised
    (``ApiError``, ``RestError``); ``rest_error_body`` renders them."""
    single = wants_object(headers.get("accept"))
    check_profile(headers.get("accept-profile"), "Accept-Profile")
    check_profile(headers.get("content-profile"), "Content-Profile")
    prefer = parse_prefer([headers.get("prefer") or ""])
    reading = method in ("GET", "HEAD")
    request = parse_request(params, range_header=headers.get("range") if reading else None)
    site_id = _site_id(site_ref)
    principal = principal_of()
    if reading:
        return _read(principal, site_id, module, table, request, prefer, single)
    data = _json_body(body)
    try:
        with site_unit(principal, site_id, action=Action.WRITE_MODULE_DATA, gated=True) as unit:
            sdk = ModuleDatabaseSDK.for_request(unit, site_id=site_id, module=module, write=True)
            response = _write(sdk, method, table, request, prefer, single, data)
            if prefer.tx == "rollback":
                raise _Rollback(response)
            return response
    except _Rollback as rolled_back:
        return rolled_back.response


def _read(principal: Principal, site_id: uuid.UUID, module: str, table: str, request: RestRequest,
          prefer: Prefer, single: bool) -> RestResponse:
    query = replace(request.query, count=prefer.count == "exact")
    with site_unit(principal, site_id, action=Action.READ_MODULE_DATA, gated=True) as unit:
        sdk = ModuleDatabaseSDK.for_request(unit, site_id=site_id, module=module, action=Action.READ_MODULE_DATA)
        rows, exact = sdk.query(table, query, last=prefer.count is None)
        total = _count(sdk, table, query, prefer.count, exact)
    headers = {"Content-Range": content_range(query.offset, len(rows), total)}
    applied = prefer.applied("count")
    if applied:
        headers["Preference-Applied"] = applied
    if single:
        require_one(rows)
        return RestResponse(200, rows[0], headers, single=True)
    return RestResponse(range_status(query.offset, len(rows), total), rows, headers)


def _write(sdk: ModuleDatabaseSDK, method: str, table: str, request: RestRequest, prefer: Prefer, single: bool,
           data: Any) -> RestResponse:
    if method == "POST":
        if not isinstance(data, dict | list) or (isinstance(data, list) and
                                                  not all(isinstance(r, dict) for r in data)):
            raise RestError(400, "PGRST102", "Empty or invalid json",
                            details="the body is an object of column values, or an array of them")
        resolution = {"merge-duplicates": "merge", "ignore-duplicates": "ignore"}.get(prefer.resolution or "")
        rows = sdk.insert(table, data, columns=request.columns, missing_default=prefer.missing == "default",
                          on_conflict=request.on_conflict, resolution=resolution)
    elif method == "PATCH":
        if not isinstance(data, dict):
            raise RestError(400, "PGRST102", "Empty or invalid json", details="the body is an object of column values")
        if request.columns is not None:
            data = {k: v for k, v in data.items() if k in request.columns}
        rows = sdk.update_matching(table, request.conditions, data)
    else:  # DELETE
        rows = sdk.delete_matching(table, request.conditions)
    returning = prefer.return_ or "minimal"
    if single:
        require_one(rows)  # raised inside the unit: the change is rolled back, as PostgREST does
    headers = {"Content-Range": content_range(0, len(rows), len(rows) if prefer.count else None)
               if method != "POST" else f"*/{len(rows) if prefer.count else '*'}"}
    applied = prefer.applied("return", "count", "resolution", "missing", "tx")
    if applied:
        headers["Preference-Applied"] = applied
    status = 201 if method == "POST" else (200 if returning == "representation" else 204)
    if returning == "headers-only" and method == "POST" and len(rows) == 1:
        headers["Location"] = f"/{table}?id=eq.{rows[0]['id']}"
    if returning != "representation":
        return RestResponse(status, None, headers)
    shaped = _returned(sdk, table, rows, request, method)
    return RestResponse(status, shaped[0] if single else shaped, headers, single=single)
