"""What PostgreSQL accepts as a value of a type, decided without asking it.

The module data API (``module_data.values``) checks a caller's number against its column here, and
the manifest validator (``provisioning.typecheck``) checks a default's literal the same way, so
both refuse exactly what the server would (or, where the server's rules are too loose to mirror
safely, a little more), with a message that names the limit. Numbers are compared as ``Decimal``:
never through a float.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import re
from decimal import Decimal, InvalidOperation

INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
# (largest finite, below half the smallest subnormal: rounds to zero, which PostgreSQL refuses as underflow)
FLOAT_RANGES = {"real": (Decimal("3.4028235e38"), Decimal("7.006e-46")),
                "double precision": (Decimal("1.7976931348623157e308"), Decimal("2.4703282292062328e-324"))}
# PostgreSQL's numeric: at most 131072 digits before the decimal point and 16383 after it
NUMERIC_MAX_INTEGER_DIGITS = 131072
NUMERIC_MAX_SCALE = 16383
_EXACT = decimal.Context(prec=NUMERIC_MAX_INTEGER_DIGITS + NUMERIC_MAX_SCALE + 2, Emax=10**9, Emin=-(10**9))


class ValueRefused(ValueError):
    """The value does not fit the type; the message says why, for a person."""


def check_integer(value: int, type_name: str) -> int:
    bound = INT_RANGES[type_name]
    if not -bound <= value < bound:
        raise ValueRefused(f"out of range for {type_name}")
    return value


def check_float(value: Decimal, type_name: str) -> Decimal:
    largest, vanishing = FLOAT_RANGES[type_name]
    if value.is_finite() and (abs(value) > largest or (value != 0 and abs(value) < vanishing)):
        raise ValueRefused(f"out of range for {type_name}")
    return value


def check_numeric(value: Decimal, precision: int | None = None, scale: int | None = None) -> Decimal:
    """What PostgreSQL checks on the way into ``numeric`` / ``numeric(p, s)``: it rounds to the scale,
    then the digits before the point must fit. Compared exactly (no float, no context rounding)."""
    name = "numeric" if precision is None else f"numeric({precision},{scale or 0})"
    if not value.is_finite():
        if value.is_infinite() and precision is not None:
            raise ValueRefused(f"out of range for {name}")
        return value
    if precision is None:
        if value.adjusted() >= NUMERIC_MAX_INTEGER_DIGITS or -int(value.as_tuple().exponent) > NUMERIC_MAX_SCALE:
            raise ValueRefused("out of range for numeric")
        return value
    scale = scale or 0
    digits = precision - scale
    if value.adjusted() >= digits + 1:  # clearly too large: no need to round
        raise ValueRefused(f"out of range for {name} (at most {digits} digits before the point)")
    rounded = value.quantize(Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP, context=_EXACT)
    if rounded != 0 and rounded.adjusted() >= digits:
        raise ValueRefused(f"out of range for {name} (at most {digits} digits before the point)")
    return value


# Text input of types, as a string literal is read by the type's input function ------------------

_INTEGER_TEXT = re.compile(r"\s*[+-]?\d{1,40}\s*")
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,9})?\s*")
_SPECIAL_NUMBERS = {"nan": "NaN", "infinity": "Infinity", "+infinity": "Infinity", "-infinity": "-Infinity",
                    "inf": "Infinity", "+inf": "Infinity", "-inf": "-Infinity"}
BOOLEAN_TEXT = frozenset({"t", "true", "y", "yes", "on", "1", "f", "false", "n", "no", "off", "0"})
_UUID_TEXT = re.compile(r"\s*\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?\s*")
_DATE_TEXT = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})\s*")
_TIME = r"\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
_TIMESTAMP_TEXT = re.compile(rf"\s*(\d{{4}}-\d{{2}}-\d{{2}})(?:[ T]({_TIME}))?\s*")
_TIMESTAMPTZ_TEXT = re.compile(rf"\s*(\d{{4}}-\d{{2}}-\d{{2}})(?:[ T]({_TIME}))?(Z|[+-]\d{{2}}(?::?\d{{2}})?)?\s*")
_TIME_TEXT = re.compile(rf"\s*({_TIME})\s*")
_INTERVAL_UNITS = ("microseconds?|milliseconds?|seconds?|secs?|minutes?|mins?|hours?|days?|weeks?|months?|mons?"
                   "|years?")
_INTERVAL_TEXT = re.compile(
    rf"\s*(?:[+-]?\d{{1,6}}\s*(?:{_INTERVAL_UNITS})\s*)+(?:[+-]?\d{{1,6}}:\d{{2}}(?::\d{{2}})?)?\s*"
    rf"|\s*[+-]?\d{{1,6}}:\d{{2}}(?::\d{{2}})?\s*", re.IGNORECASE)
_BYTEA_TEXT = re.compile(r"\\x(?:[0-9a-fA-F]{2})*")
_INET_TEXT = re.compile(r"[0-9a-fA-F:.]+(?:/\d{1,3})?")
_TSVECTOR_TEXT = re.compile(r"[A-Za-z0-9_ ]*")
_ARRAY_ELEMENT = re.compile(r"[^{}\",\\\s]+")
MAX_JSON_DEPTH = 64


def _date_in_api_range(year: int) -> None:
    if not 1 <= year <= 9999:
        raise ValueRefused("dates outside the years 1 to 9999 cannot be read back by the module data API")


def check_text_input(text: str, type_name: str, *, length: int | None = None, scale: int | None = None,
                     element: bool = False) -> None:
    """Raise ``ValueRefused`` unless PostgreSQL reads ``text`` as a value of ``type_name`` (the
    canonical name, with ``length`` / ``scale`` its parameters). Stricter than the server where its
    syntax is too rich to mirror: only the forms a manifest needs are accepted."""
    if "\x00" in text:
        raise ValueRefused("contains a NUL character")
    if type_name.endswith("[]"):
        _check_array_text(text, type_name[:-2], length=length, scale=scale)
        return
    if type_name in ("text", "character varying", "character"):
        size = len(text.rstrip(" ")) if type_name == "character" else len(text)
        if length is not None and size > length:
            raise ValueRefused(f"is longer than {type_name}({length})")
        return
    if type_name in INT_RANGES:
        if not _INTEGER_TEXT.fullmatch(text):
            raise ValueRefused(f"is not a whole number ({type_name})")
        check_integer(int(text), type_name)
        return
    if type_name in ("numeric", *FLOAT_RANGES):
        number = _number_text(text)
        if number is None:
            raise ValueRefused(f"is not a number ({type_name})")
        if type_name == "numeric":
            check_numeric(number, length, scale)
        else:
            check_float(number, type_name)
        return
    if type_name == "boolean":
        if text.strip().lower() not in BOOLEAN_TEXT:
            raise ValueRefused("is not true or false (t, true, yes, on, 1 / f, false, no, off, 0)")
        return
    if type_name == "uuid":
        if not _UUID_TEXT.fullmatch(text):
            raise ValueRefused("is not a UUID")
        return
    if type_name == "date":
        _check_date(text)
        return
    if type_name in ("timestamp without time zone", "timestamp with time zone"):
        pattern = _TIMESTAMPTZ_TEXT if type_name.endswith("with time zone") else _TIMESTAMP_TEXT
        m = pattern.fullmatch(text)
        if not m:
            raise ValueRefused(f"is not an ISO 8601 {'timestamp' if 'without' in type_name else 'timestamp with zone'}"
                               " such as 2024-01-31 12:00:00")
        _check_date(m.group(1))
        if m.group(2):
            _check_time(m.group(2))
        return
    if type_name == "time without time zone":
        m = _TIME_TEXT.fullmatch(text)
        if not m:
            raise ValueRefused("is not a time such as 12:30:00")
        _check_time(m.group(1))
        return
    if type_name == "interval":
        if not _INTERVAL_TEXT.fullmatch(text):
            raise ValueRefused("is not an interval such as '1 day 2 hours' or '01:30:00'")
        return
    if type_name in ("jsonb", "json"):
        _check_json_text(text, binary=type_name == "jsonb")
        return
    if type_name == "bytea":
        if not _BYTEA_TEXT.fullmatch(text):
            raise ValueRefused("is not bytea in hex form such as \\x0102")
        return
    if type_name == "inet":
        _check_inet(text)
        return
    if type_name == "tsvector":
        if not _TSVECTOR_TEXT.fullmatch(text):
            raise ValueRefused("is not a simple tsvector (words of letters, digits and _)")
        return
    raise ValueRefused(f"a literal of type {type_name} cannot be checked")


def _number_text(text: str) -> Decimal | None:
    special = _SPECIAL_NUMBERS.get(text.strip().lower())
    if special:
        return Decimal(special)
    if not _NUMBER_TEXT.fullmatch(text):
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


def _check_date(text: str) -> None:
    m = _DATE_TEXT.fullmatch(text)
    if not m:
        raise ValueRefused("is not an ISO 8601 date such as 2024-01-31")
    _date_in_api_range(int(m.group(1)))
    try:
        dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as exc:
        raise ValueRefused(f"is not a valid date ({exc})") from None


def _check_time(text: str) -> None:
    try:
        dt.time.fromisoformat(text)
    except ValueError as exc:
        raise ValueRefused(f"is not a valid time ({exc})") from None


def _check_inet(text: str) -> None:
    if not _INET_TEXT.fullmatch(text):
        raise ValueRefused("is not an IP address such as 10.0.0.1 or 10.0.0.0/8")
    try:
        ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValueRefused(f"is not an IP address ({exc})") from None


def _check_json_text(text: str, *, binary: bool) -> None:
    def refuse_constant(name: str) -> None:
        raise ValueRefused(f"{name} is not JSON")

    try:
        value = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=refuse_constant)
    except RecursionError:
        raise ValueRefused(f"JSON nests more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise ValueRefused(f"is not valid JSON ({exc})") from None
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or not _utf8(item):
                raise ValueRefused("holds a string JSON cannot store (\\u0000 or a lone surrogate)")
        elif isinstance(item, Decimal):
            if binary:  # jsonb stores numbers as numeric
                check_numeric(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ValueRefused(f"JSON nests more than {MAX_JSON_DEPTH} levels deep")
            children = list(item.items()) if isinstance(item, dict) else [(None, v) for v in item]
            for key, child in children:
                if key is not None and ("\x00" in key or not _utf8(key)):
                    raise ValueRefused("holds a key JSON cannot store (\\u0000 or a lone surrogate)")
                stack.append((child, depth + 1))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_array_text(text: str, element_type: str, *, length: int | None, scale: int | None) -> None:
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ValueRefused("is not an array literal such as '{}' or '{a,b}'")
    inner = body[1:-1].strip()
    if not inner:
        return
    for item in inner.split(","):
        item = item.strip()
        if not _ARRAY_ELEMENT.fullmatch(item):
            raise ValueRefused("array literal elements must be plain values without quotes, braces or spaces")
        if item.upper() == "NULL":
            continue
        try:
            check_text_input(item, element_type, length=length, scale=scale, element=True)
        except ValueRefused as exc:
            raise ValueRefused(f"array element {item!r} {exc}") from None

