"""JSON from outside, parsed into what PostgreSQL and Python can hold, and JSON out without floats.

Every JSON document a caller sends (request bodies, webhooks, filter values) is parsed here, so what
PostgreSQL would refuse later, or Python cannot process, is a 400 at the door naming where it is:

- not UTF-8, not JSON, or ``NaN``/``Infinity`` (not JSON, though Python's parser takes them);
- nested deeper than ``MAX_DEPTH`` (Python's parser and PostgreSQL's jsonb both give up somewhere
  in the thousands, as a RecursionError or a "stack depth" error);
- strings (values or keys) with NUL (``\\u0000``) or a lone UTF-16 surrogate (``"\\ud800"``): neither
  ``text`` nor ``jsonb`` can store them, and a surrogate cannot even be encoded to UTF-8;
- numbers too large for a double, when numbers are parsed as floats.

``exact_numbers=True`` parses numbers with a fraction or exponent as ``Decimal`` (the module data API:
``numeric`` columns keep every digit). ``dumps`` writes ``Decimal`` as a JSON number with its exact
digits (simplejson; the standard library can only write floats), and non-finite numbers as the
strings PostgreSQL's own ``to_json`` writes ("NaN", "Infinity", "-Infinity"), through ``finite``.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from .errors import BadRequest

MAX_DEPTH = 64


class JsonRefused(BadRequest):
    """A JSON document this service cannot accept; the message says what and where."""


def _location(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _refuse(message: str, code: str, path: tuple[Any, ...] = (), where: str | None = None) -> JsonRefused:
    field = _location(path) if path else None
    prefix = f"{where}: " if where else ""
    at = f" (at {field})" if field else ""
    return JsonRefused(f"{prefix}{message}{at}", code=code,
                       details=[{"field": field, "message": message}] if field else None)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]}… is too large")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store this string (``None`` when it can)."""
    if "\x00" in text:
        return "contains the NUL character (\\u0000), which text cannot hold"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate, which is not a character"
    return None


def check_value(value: Any, *, where: str | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` itself when every string in it can be stored and it nests at most ``max_depth`` deep;
    otherwise a 400 naming the first offending place. Walks iteratively: no recursion to exhaust."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 0, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            problem = unstorable(item)
            if problem:
                raise _refuse(f"a string {problem}", "invalid_character", path, where)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise _refuse(f"JSON nests more than {max_depth} levels deep", "json_too_deep", path, where)
            if isinstance(item, dict):
                for key, child in item.items():
                    problem = unstorable(key) if isinstance(key, str) else None
                    if problem:
                        raise _refuse(f"a key {problem}", "invalid_character", path, where)
                    stack.append((child, depth + 1, (*path, key)))
            else:
                stack.extend((child, depth + 1, (*path, i)) for i, child in enumerate(item))
    return value


def loads(raw: bytes | str, *, exact_numbers: bool = False, where: str | None = None) -> Any:
    """Parse a JSON document from outside (see the module docstring for what is refused, with 400)."""
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _refuse(f"the body is not UTF-8 (byte {exc.start})", "invalid_json", where=where) from exc
    try:
        value = json.loads(raw, parse_float=Decimal if exact_numbers else _finite_float,
                           parse_constant=_no_constants)
    except RecursionError as exc:
        raise _refuse(f"JSON nests more than {MAX_DEPTH} levels deep", "json_too_deep", where=where) from exc
    except json.JSONDecodeError as exc:
        raise _refuse(f"not valid JSON: {exc.msg} at character {exc.pos}", "invalid_json", where=where) from exc
    except ValueError as exc:  # a number Python will not convert, NaN or Infinity
        reason = str(exc).split(";")[0]
        raise _refuse(f"a number in the JSON is not acceptable: {reason}", "invalid_json", where=where) from exc
    return check_value(value, where=where)


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON text with ``Decimal`` written as an exact number (the jsonb adapter and API responses)."""
    import simplejson  # loaded by the first jsonb value written, not at every cold start (0.7% of one)

    text: str = simplejson.dumps(value, use_decimal=True, allow_nan=False, ensure_ascii=False,
                            namedtuple_as_object=False, **kwargs)
    return text


def finite(value: Any) -> Any:
    """A value from PostgreSQL (a scalar, an array, or a row's dict of them) with non-finite numbers
    (numeric or float ``NaN``, ``Infinity``) as the strings ``to_json`` gives them: JSON has no such
    numbers. jsonb cannot hold them, so a row's nested JSON is left as it is."""
    if isinstance(value, dict):
        return {k: finite(v) if isinstance(v, float | Decimal | list) else v for k, v in value.items()}
    if isinstance(value, float):
        return value if math.isfinite(value) else ("NaN" if math.isnan(value) else
                                                   ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, Decimal):
        return value if value.is_finite() else ("NaN" if value.is_nan() else
                                                ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
