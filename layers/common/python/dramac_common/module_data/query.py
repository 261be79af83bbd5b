"""The typed query model of the module data API, and the PostgREST-style parser that fills it.

``?status=eq.active&lead_score=gte.50&email=ilike.*@example.com&id=in.(a,b)&deleted_at=is.null``
plus ``select=a,b``, ``order=created_at.desc,name.asc.nullslast``, ``limit``, ``offset`` and
``count=exact`` become a ``Query``. The parser is pure: it checks syntax only; column names and
values are checked against the table's catalog by the SDK, which binds every value as a parameter.
The SDK's ``where=`` mappings (EM-11 style: ``{"status": "active", "lead_score": {"gte": 50}}``)
become the same ``Filter`` objects through ``filters_from_where``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ValidationFailed

OPERATORS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is"})
# the PostgREST surface (``rest.py``) also takes these: regular expressions, IS DISTINCT FROM, full-text
# search (``fts(english).word``) and containment / overlap for arrays, ranges and jsonb
REST_OPERATORS = OPERATORS | frozenset({"match", "imatch", "isdistinct", "fts", "plfts", "phfts", "wfts",
                                        "cs", "cd", "ov"})
FTS_OPERATORS = frozenset({"fts", "plfts", "phfts", "wfts"})
IS_VALUES = {"null": None, "true": True, "false": False, "unknown": "unknown"}
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000
MAX_IN_VALUES = 1000
_COLUMN_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")


@dataclass(frozen=True)
class Filter:
    """One condition: ``column <op> value``; ``negate`` wraps it in NOT (PostgREST's ``not.``)."""

    column: str
    op: str
    value: Any
    negate: bool = False
    option: str | None = None  # full-text search: the text search configuration, ``fts(english)``


@dataclass(frozen=True)
class Logic:
    """``and(...)`` / ``or(...)`` of conditions (PostgREST's logical operators, nested at will)."""

    op: str  # "and" | "or"
    items: tuple[Filter | Logic, ...]
    negate: bool = False


Condition = Filter | Logic


@dataclass(frozen=True)
class Field:
    """A column of a select list, optionally renamed (PostgREST's ``alias:column``)."""

    column: str
    alias: str | None = None

    @property
    def name(self) -> str:
        return self.alias or self.column


@dataclass(frozen=True)
class Embed:
    """A related table in a select list (``companies(name)``, ``boss:people!manager_id(name)``),
    along a foreign key of the module in either direction; ``inner`` keeps only rows that have one."""

    relation: str
    fields: tuple[Field | Embed, ...] | None  # None: every column
    alias: str | None = None
    hint: str | None = None
    inner: bool = False

    @property
    def name(self) -> str:
        return self.alias or self.relation


@dataclass(frozen=True)
class Order:
    column: str
    descending: bool = False
    nulls: str | None = None  # "first" | "last" | None (PostgreSQL's default)


@dataclass(frozen=True)
class Query:
    filters: tuple[Filter | Logic, ...] = ()
    select: tuple[str, ...] | None = None  # None: every column (or ``fields``)
    order: tuple[Order, ...] = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    count: bool = False
    fields: tuple[Field | Embed, ...] | None = None  # the PostgREST surface's select list (aliases, embeds)


@dataclass
class _Problems:
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, param: str, message: str) -> None:
        self.items.append({"field": param, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise ValidationFailed(f"Invalid query parameter {first['field']}: {first['message']}",
                                   code="invalid_query", details=self.items)


def _column_name(name: str) -> bool:
    return bool(_COLUMN_RE.match(name))


def _split_list(text: str) -> list[str]:
    """Comma-separated values, where a value in double quotes may hold commas (``"a,b",c``)."""
    values, current, quoted, escaped, was_quoted = [], [], False, False, False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
            was_quoted = True
        elif ch == "," and not quoted:
            values.append("".join(current) if was_quoted else "".join(current).strip())
            current, was_quoted = [], False
        else:
            current.append(ch)
    if quoted:
        raise ValueError("unterminated quote")
    values.append("".join(current) if was_quoted else "".join(current).strip())
    return values


_FTS_OPTION = re.compile(r"^(p?l?|ph|w)fts\(([a-z_][a-z0-9_]{0,62})\)\Z")


def parse_filter(column: str, text: str, operators: frozenset[str] = OPERATORS) -> Filter:
    """``gte.50`` → Filter(column, "gte", "50"); raises ValueError with a message for a person."""
    negate = False
    op, dot, rest = text.partition(".")
    if op == "not":
        negate = True
        op, dot, rest = rest.partition(".")
    option = None
    fts = _FTS_OPTION.match(op)
    if fts and "fts" in operators:
        op, option = op[:op.index("(")], fts.group(2)
    if op not in operators:
        raise ValueError(f"unknown operator {op!r}; use one of {', '.join(sorted(operators))}, e.g. eq.value")
    if not dot:
        raise ValueError(f"operator {op!r} needs a value after a dot, e.g. {op}.value")
    if op == "in":
        if not (rest.startswith("(") and rest.endswith(")")):
            raise ValueError("in needs a parenthesised list, e.g. in.(a,b)")
        inner = rest[1:-1]
        values = _split_list(inner) if inner else []
        if len(values) > MAX_IN_VALUES:
            raise ValueError(f"in takes at most {MAX_IN_VALUES} values")
        return Filter(column, "in", tuple(values), negate)
    if op == "is":
        word = rest.lower()
        if word not in IS_VALUES or (word == "unknown" and operators is OPERATORS):
            raise ValueError("is takes null, true or false")
        return Filter(column, "is", IS_VALUES[word], negate)
    if op in ("like", "ilike"):
        rest = rest.replace("*", "%")  # PostgREST's URL-friendly wildcard
    return Filter(column, op, rest, negate, option)


def _parse_int(problems: _Problems, param: str, raw: str, low: int, high: int) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        problems.add(param, "must be a whole number")
        return None
    if not low <= value <= high:
        problems.add(param, f"must be between {low} and {high}")
        return None
    return value


def _parse_order(problems: _Problems, raw: str) -> tuple[Order, ...]:
    orders = []
    for term in (t.strip() for t in raw.split(",")):
        parts = term.split(".")
        column, modifiers = parts[0], parts[1:]
        if not _column_name(column):
            problems.add("order", f"{column!r} is not a column name")
            continue
        descending, nulls, ok = False, None, True
        for modifier in modifiers:
            if modifier in ("asc", "desc"):
                descending = modifier == "desc"
            elif modifier in ("nullsfirst", "nullslast"):
                nulls = modifier[5:]
            else:
                problems.add("order", f"unknown order modifier {modifier!r}; use asc, desc, nullsfirst or nullslast")
                ok = False
        if ok:
            orders.append(Order(column, descending, nulls))
    return tuple(orders)


def parse_query_params(params: Iterable[tuple[str, str]]) -> Query:
    """PostgREST-style query parameters (repeated keys allowed: ``a=gte.1&a=lte.9``) → ``Query``.
    Every problem is collected and reported at once as a 400 ``invalid_query`` with details."""
    problems = _Problems()
    filters: list[Filter] = []
    select: tuple[str, ...] | None = None
    order: tuple[Order, ...] = ()
    limit, offset, count = DEFAULT_LIMIT, 0, False
    for key, raw in params:
        if key == "select":
            names = tuple(n.strip() for n in raw.split(",") if n.strip())
            bad = [n for n in names if n != "*" and not _column_name(n)]
            if bad or not names:
                problems.add("select", f"not column names: {', '.join(bad) or '(empty)'}")
            elif "*" not in names:
                select = tuple(dict.fromkeys(names))
        elif key == "order":
            order = _parse_order(problems, raw)
        elif key == "limit":
            limit = _parse_int(problems, "limit", raw, 0, MAX_LIMIT) or 0 if raw else DEFAULT_LIMIT
        elif key == "offset":
            offset = _parse_int(problems, "offset", raw, 0, MAX_OFFSET) or 0
        elif key == "count":
            if raw != "exact":
                problems.add("count", "the only supported value is count=exact")
            count = True
        elif not _column_name(key):
            problems.add(key, "not a column name (filters look like column=op.value)")
        else:
            try:
                filters.append(parse_filter(key, raw))
            except ValueError as exc:
                problems.add(key, str(exc))
    problems.raise_if_any()
    return Query(tuple(filters), select, order, limit, offset, count)


def filters_from_where(where: Mapping[str, Any] | None) -> tuple[Filter, ...]:
    """The SDK's ``where=`` mapping → filters. A plain value means eq, ``None`` is null, a list or tuple
    means in, and a mapping of operators (``{"gte": 50, "lt": 90}``) ANDs each of them."""
    if not where:
        return ()
    if not isinstance(where, Mapping):
        raise ValidationFailed("where must be a mapping of column to value or operators", code="invalid_filter")
    filters = []
    for column, condition in where.items():
        if not isinstance(column, str) or not _column_name(column):
            raise ValidationFailed(f"{column!r} is not a column name", code="invalid_filter",
                                   details=[{"field": str(column), "message": "not a column name"}])
        if condition is None:
            filters.append(Filter(column, "is", None))
        elif isinstance(condition, list | tuple):
            filters.append(Filter(column, "in", tuple(condition)))
        elif isinstance(condition, Mapping):
            for op, value in condition.items():
                negate = False
                if isinstance(op, str) and op.startswith("not_"):
                    negate, op = True, op[4:]
                if op not in OPERATORS:
                    raise ValidationFailed(
                        f"unknown operator {op!r} for {column}; use one of {', '.join(sorted(OPERATORS))}",
                        code="invalid_filter", details=[{"field": column, "message": f"unknown operator {op!r}"}])
                if op == "in" and not isinstance(value, list | tuple):
                    raise ValidationFailed(f"in needs a list for {column}", code="invalid_filter",
                                           details=[{"field": column, "message": "in needs a list"}])
                if op == "is" and value not in (None, True, False):
                    raise ValidationFailed(f"is takes None, True or False for {column}", code="invalid_filter",
                                           details=[{"field": column, "message": "is takes None, True or False"}])
                filters.append(Filter(column, op, tuple(value) if op == "in" else value, negate))
        else:
            filters.append(Filter(column, "eq", condition))
    return tuple(filters)


def order_from(order_by: Any) -> tuple[Order, ...]:
    """The SDK's ``order_by=``: ``"created_at.desc,name"``, ``("name", "-created_at")`` or
    ``{"column": "name", "ascending": False}`` (EM-11's shape)."""
    if not order_by:
        return ()
    if isinstance(order_by, Mapping):
        return (Order(str(order_by.get("column")), not order_by.get("ascending", True)),)
    if isinstance(order_by, str):
        problems = _Problems()
        orders = _parse_order(problems, order_by)
        problems.raise_if_any()
        return orders
    listed: list[Order] = []
    for item in order_by:
        if isinstance(item, Order):
            listed.append(item)
        elif isinstance(item, str) and item.startswith("-"):
            listed.append(Order(item[1:], True))
        else:
            listed.extend(order_from(item))
    return tuple(listed)
