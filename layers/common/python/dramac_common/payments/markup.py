"""The agency markup rule of the contract, in integer cents.

``retail = wholesale + round_half_up(wholesale × pct / 100)`` for ``percentage`` (0–1000),
``retail = wholesale + fixed`` for ``fixed`` (cents, ≥ 0), ``retail = wholesale`` for ``none``.
No floats anywhere: half-up rounding of ``w·p/100`` is ``(2·w·p + 100) // 200`` for w, p ≥ 0.
"""

from __future__ import annotations

from typing import NamedTuple

from ..core.errors import ValidationFailed

MARKUP_TYPES = ("none", "percentage", "fixed")
MAX_PERCENTAGE = 1000
MAX_PRICE_CENTS = 2_147_483_647  # the price columns are PostgreSQL integers


class Markup(NamedTuple):
    type: str = "none"
    value: int = 0


def _invalid(message: str, field: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_markup", details=[{"field": field, "message": message}])


def validate_markup(markup_type: str | None, markup_value: object) -> Markup:
    """The markup a request asked for, or a 400 that says what is wrong with it."""
    markup_type = "none" if markup_type is None else markup_type
    if markup_type not in MARKUP_TYPES:
        raise _invalid(f"markupType must be one of {', '.join(MARKUP_TYPES)}", "markupType")
    if markup_value is None:
        if markup_type != "none":
            raise _invalid(f"markupValue is required for a {markup_type} markup", "markupValue")
        return Markup()
    # bool is an int in Python; a price is never true or false
    if isinstance(markup_value, bool) or not isinstance(markup_value, int):
        raise _invalid("markupValue must be a whole number (percent, or cents for a fixed markup)", "markupValue")
    if markup_type == "none":
        if markup_value != 0:
            raise _invalid("markupValue must be 0 (or omitted) when markupType is none", "markupValue")
        return Markup()
    if markup_type == "percentage" and not 0 <= markup_value <= MAX_PERCENTAGE:
        raise _invalid(f"a percentage markup must be between 0 and {MAX_PERCENTAGE}", "markupValue")
    if markup_type == "fixed" and not 0 <= markup_value <= MAX_PRICE_CENTS:
        raise _invalid("a fixed markup must be a whole number of cents, 0 or more", "markupValue")
    return Markup(markup_type, markup_value)


def markup_cents(wholesale_price_cents: int, markup: Markup) -> int:
    if markup.type == "percentage":
        return (2 * wholesale_price_cents * markup.value + 100) // 200
    if markup.type == "fixed":
        return markup.value
    return 0


def retail_price_cents(wholesale_price_cents: int, markup: Markup) -> int:
    """The price the agency charges its clients; 400 when it would not fit the price columns."""
    if wholesale_price_cents < 0:
        raise ValueError("a wholesale price is never negative")
    retail = wholesale_price_cents + markup_cents(wholesale_price_cents, markup)
    if retail > MAX_PRICE_CENTS:
        raise _invalid(f"the retail price would exceed {MAX_PRICE_CENTS} cents", "markupValue")
    return retail
