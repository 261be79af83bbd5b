"""Subscription filters and the comparison operators (shared with the ``condition`` step).

A filter is a JSON object over the event's payload; every entry must hold (AND):

    {"status": "active",                    equality (shorthand for {"eq": "active"})
     "lead_score": {"gte": 50, "lt": 90},   several operators on one field: all must hold
     "tags": {"contains": "vip"},           a list (or string) containing a value
     "source": {"in": ["web", "form"]},     one of
     "company.name": {"exists": true},      dotted paths reach nested payload fields
     "deal.stage": {"neq": "lost"}}

Operators: ``eq``, ``neq``, ``gt``, ``gte``, ``lt``, ``lte``, ``in``, ``nin``, ``contains``, ``exists``.
Comparisons between values of different kinds (a number and a string) are false, never an error;
numbers compare numerically (``50`` equals ``50.0``), booleans are not numbers. An empty filter
matches every event.
"""

from __future__ import annotations

from typing import Any

from .templates import resolve

OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "contains", "exists")
_MISSING = object()


class FilterError(ValueError):
    """A filter or condition that is not well formed."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_kind(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return True
    return type(a) is type(b)


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


def compare(actual: Any, operator: str, expected: Any) -> bool:
    """``actual <operator> expected``; ``actual`` is ``_MISSING``-aware through ``exists``."""
    present = actual is not _MISSING and actual is not None
    if operator == "exists":
        return present == bool(expected)
    if actual is _MISSING:
        actual = None
    if operator == "eq":
        return _equal(actual, expected)
    if operator == "neq":
        return not _equal(actual, expected)
    if operator in ("in", "nin"):
        found = isinstance(expected, list) and any(_equal(actual, e) for e in expected)
        return found if operator == "in" else not found
    if operator == "contains":
        if isinstance(actual, list):
            return any(_equal(item, expected) for item in actual)
        if isinstance(actual, str) and isinstance(expected, str):
            return expected in actual
        if isinstance(actual, dict) and isinstance(expected, str):
            return expected in actual
        return False
    if operator in ("gt", "gte", "lt", "lte"):
        comparable = (_is_number(actual) and _is_number(expected)) or (
            isinstance(actual, str) and isinstance(expected, str))
        if not comparable:
            return False
        result: bool = {"gt": actual > expected, "gte": actual >= expected,
                        "lt": actual < expected, "lte": actual <= expected}[operator]
        return result
    raise FilterError(f"unknown operator {operator!r}: use one of {', '.join(OPERATORS)}")


def _conditions(spec: Any) -> list[tuple[str, Any]]:
    """A field's spec as (operator, value) pairs: a plain value is equality."""
    if isinstance(spec, dict) and spec and all(isinstance(k, str) and k in OPERATORS for k in spec):
        return list(spec.items())
    return [("eq", spec)]


def validate_filter(filter_: Any) -> dict[str, Any]:
    """The filter if well formed, else ``FilterError`` naming the problem."""
    if filter_ is None:
        return {}
    if not isinstance(filter_, dict):
        raise FilterError("a filter is a JSON object of payload field → value or {operator: value}")
    for field, spec in filter_.items():
        if not isinstance(field, str) or not field or any(not p for p in field.split(".")):
            raise FilterError(f"invalid filter field {field!r}")
        if isinstance(spec, dict) and spec and any(k in OPERATORS for k in spec):
            unknown = [k for k in spec if k not in OPERATORS]
            if unknown:
                raise FilterError(f"unknown operator {unknown[0]!r} for {field!r}: use one of {', '.join(OPERATORS)}")
        for operator, value in _conditions(spec):
            validate_operand(operator, value, field)
    return filter_


def validate_operand(operator: str, value: Any, field: str) -> None:
    if operator not in OPERATORS:
        raise FilterError(f"unknown operator {operator!r} for {field!r}: use one of {', '.join(OPERATORS)}")
    if operator in ("in", "nin") and not isinstance(value, list):
        raise FilterError(f"'{operator}' on {field!r} takes a list")
    if operator in ("gt", "gte", "lt", "lte") and not (_is_number(value) or isinstance(value, str)):
        raise FilterError(f"'{operator}' on {field!r} takes a number or a string")
    if operator == "exists" and not isinstance(value, bool):
        raise FilterError(f"'exists' on {field!r} takes true or false")


def matches(filter_: dict[str, Any] | None, payload: dict[str, Any]) -> bool:
    """Whether an event payload satisfies a (validated) filter."""
    for field, spec in (filter_ or {}).items():
        actual = resolve(field, payload, _MISSING)
        for operator, expected in _conditions(spec):
            if not compare(actual, operator, expected):
                return False
    return True


def evaluate_condition(field: str, operator: str, expected: Any, context: dict[str, Any]) -> tuple[bool, Any]:
    """The ``condition`` step: (result, the value the field had)."""
    actual = resolve(field, context, _MISSING)
    return compare(actual, operator, expected), (None if actual is _MISSING else actual)
