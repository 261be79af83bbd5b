"""Values checked against a column's type before they reach SQL, so a bad uuid, number or date is a
400 naming the column instead of a database error. Values are always bound as parameters; strings
for types not checked here go as PostgreSQL's ``unknown`` and are parsed by the server, whose
errors the SDK also turns into 400s.

Numbers never pass through a float on their way to a ``numeric`` column: the API parses JSON numbers
with a fraction as ``Decimal``, and they are checked against the column's precision and scale (and
PostgreSQL's own numeric limits) exactly as PostgreSQL will round and check them.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg.types.json import Jsonb

from ..core import jsonbody, pg_values
from ..core.db import Unit
from .catalog import Column

INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
FLOAT_TYPES = {"float4": "real", "float8": "double precision"}
_TYPMOD = re.compile(r"numeric\((\d+)(?:,(-?\d+))?\)")
TRUE_TEXT = {"true": True, "t": True, "1": True, "yes": True, "false": False, "f": False, "0": False, "no": False}


class InvalidValue(ValueError):
    """A value that does not fit its column; the message is for a person."""


def _integer(value: Any, type_name: str) -> int:
    if isinstance(value, bool):
        raise InvalidValue("expected a whole number, not a boolean")
    if isinstance(value, float | Decimal):
        if not value.is_finite() if isinstance(value, Decimal) else not value.is_integer():
            raise InvalidValue("expected a whole number")
        if isinstance(value, Decimal) and (value.adjusted() > 30 or value != value.to_integral_value()):
            raise InvalidValue("expected a whole number" if value.adjusted() <= 30 else f"out of range for {type_name}")
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError as exc:
            raise InvalidValue("expected a whole number") from exc
    elif not isinstance(value, int):
        raise InvalidValue("expected a whole number")
    bound = INT_RANGES[type_name]
    if not -bound <= value < bound:
        raise InvalidValue(f"out of range for {type_name}")
    return int(value)


def _number(value: Any, column: Column) -> Decimal | int | float:
    if isinstance(value, bool):
        raise InvalidValue("expected a number, not a boolean")
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation as exc:
            raise InvalidValue("expected a number") from exc
    if not isinstance(value, int | float | Decimal):
        raise InvalidValue("expected a number")
    exact = value if isinstance(value, Decimal) else Decimal(value)
    try:
        if column.type_name == "money":
            if not exact.is_finite():
                raise pg_values.ValueRefused("expected a finite number")
        elif column.type_name in FLOAT_TYPES:
            pg_values.check_float(exact, FLOAT_TYPES[column.type_name])
        else:
            typmod = _TYPMOD.fullmatch(column.data_type.replace(" ", ""))
            pg_values.check_numeric(exact, int(typmod.group(1)) if typmod else None,
                                    int(typmod.group(2) or 0) if typmod else None)
    except pg_values.ValueRefused as exc:
        raise InvalidValue(str(exc)) from None
    return exact if not exact.is_finite() else value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_TEXT:
        return TRUE_TEXT[value.strip().lower()]
    raise InvalidValue("expected true or false")


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidValue("expected a UUID") from exc


def _temporal(value: Any, type_name: str) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value
    if not isinstance(value, str):
        raise InvalidValue("expected an ISO 8601 string")
    text = value.strip()
    try:
        if type_name == "date":
            dt.date.fromisoformat(text)
        elif type_name in ("time", "timetz"):
            dt.time.fromisoformat(text)
        elif type_name in ("timestamp", "timestamptz"):
            dt.datetime.fromisoformat(text)
        else:  # interval and friends: the server parses them
            return text
    except ValueError as exc:
        raise InvalidValue("expected an ISO 8601 " + ("date" if type_name == "date" else "date-time")) from exc
    return text  # sent as text: the server applies the session time zone to zone-less values


def coerce_scalar(column: Column, value: Any, *, from_text: bool = False) -> Any:
    """One value for ``column``: a Python value psycopg binds with the right type, or ``InvalidValue``."""
    if value is None:
        return None
    if isinstance(value, str):
        problem = jsonbody.unstorable(value)
        if problem:
            raise InvalidValue(problem)
    type_name = column.type_name
    if type_name in INT_RANGES:
        return _integer(value, type_name)
    if type_name in ("numeric", "float4", "float8", "money"):
        return _number(value, column)
    if type_name == "bool":
        return _boolean(value)
    if type_name == "uuid":
        return _uuid(value)
    if column.category == "D":
        return _temporal(value, type_name)
    if type_name in ("json", "jsonb"):
        if from_text and isinstance(value, str):
            try:
                value = jsonbody.loads(value, exact_numbers=True)
            except jsonbody.JsonRefused as exc:
                if exc.code != "invalid_json":
                    raise InvalidValue(exc.message) from exc
                # not JSON: a bare string compared as a JSON string
        else:
            try:
                jsonbody.check_value(value)
            except jsonbody.JsonRefused as exc:
                raise InvalidValue(exc.message) from exc
        return Jsonb(value)
    if column.category == "A":
        if not isinstance(value, list):
            raise InvalidValue("expected a list")
        element = Column(column.name, column.data_type, column.element_type or "text", "S", None, False, False,
                         False, None)
        return [coerce_scalar(element, v) for v in value]
    if isinstance(value, str):
        return value
    if column.category == "S":
        raise InvalidValue("expected a string")
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    raise InvalidValue(f"not a valid {column.data_type}")


def coerce_array_literal(column: Column, value: Any) -> str:
    """An array or range literal from a query string (``{a,b}``, ``[1,5)``), sent as text for the
    server to parse as the column's type (a malformed one is the server's 22P02: a 400)."""
    if not isinstance(value, str):
        raise InvalidValue("expected an array or range literal such as {a,b} or [1,5)")
    problem = jsonbody.unstorable(value)
    if problem:
        raise InvalidValue(problem)
    return value


def coerce_text_pattern(column: Column, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue("like and ilike take a string pattern")
    problem = jsonbody.unstorable(value)
    if problem:
        raise InvalidValue(problem)
    return value


# json/jsonb numbers of module data load as Decimal: the digits PostgreSQL stored, not a float's
_exact_json_loads = functools.partial(json.loads, parse_float=Decimal)


def fetch_exact(unit: Unit, statement: Any, params: Any = None, *, commit: bool = False) -> list[dict[str, Any]]:
    """A statement's rows with json/jsonb numbers exact (``numeric`` columns load as Decimal anyway);
    ``commit``: the unit's last statement, its COMMIT sent with it."""
    return unit.execute(statement, params, json_loads=_exact_json_loads, commit=commit).fetchall()
