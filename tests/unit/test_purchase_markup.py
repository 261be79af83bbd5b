"""The markup rule in integer cents, and Paddle-Signature parsing and verification (pure logic)."""

from fractions import Fraction

import pytest
from dramac_common.core.errors import ValidationFailed
from dramac_common.payments.markup import Markup, retail_price_cents, validate_markup
from dramac_common.payments.signature import SignatureError, compute_h1, parse_header, sign, verify
from hypothesis import given
from hypothesis import strategies as st


def contract_retail(wholesale: int, markup: Markup) -> int:
    """The contract's formula with exact rationals: wholesale + round_half_up(wholesale × pct / 100)."""
    if markup.type == "percentage":
        exact = Fraction(wholesale * markup.value, 100)
        return wholesale + int(exact + Fraction(1, 2)) if exact >= 0 else wholesale
    if markup.type == "fixed":
        return wholesale + markup.value
    return wholesale


@pytest.mark.parametrize(("wholesale", "pct", "retail"), [
    (1001, 50, 1001 + 501),   # 500.5 → 501: half rounds up
    (1999, 25, 1999 + 500),   # 499.75 → 500
    (1, 50, 2),               # 0.5 → 1
    (1, 49, 1),               # 0.49 → 0
    (3, 50, 5),               # 1.5 → 2
    (5, 10, 6),               # 0.5 → 1
    (15, 10, 17),             # 1.5 → 2
    (2500, 10, 2750),         # exact
    (1999, 0, 1999),
    (1999, 1000, 1999 * 11),
    (0, 1000, 0),
])
def test_percentage_markup_rounds_half_up(wholesale, pct, retail):
    assert retail_price_cents(wholesale, Markup("percentage", pct)) == retail


def test_fixed_and_no_markup():
    assert retail_price_cents(1999, Markup("fixed", 501)) == 2500
    assert retail_price_cents(1999, Markup()) == 1999


@given(st.integers(min_value=0, max_value=10_000_000), st.integers(min_value=0, max_value=1000))
def test_percentage_markup_matches_the_contract_formula(wholesale, pct):
    markup = Markup("percentage", pct)
    assert retail_price_cents(wholesale, markup) == contract_retail(wholesale, markup)


@pytest.mark.parametrize(("kind", "value"), [
    ("percentage", 1001), ("percentage", -1), ("fixed", -1), ("none", 1), ("percentage", None), ("fixed", None),
    ("percentage", 10.0), ("fixed", True), ("fixed", "5"), ("other", 1),
])
def test_invalid_markups_are_rejected(kind, value):
    with pytest.raises(ValidationFailed) as err:
        validate_markup(kind, value)
    assert err.value.code == "invalid_markup"


@pytest.mark.parametrize(("kind", "value", "expected"), [
    (None, None, Markup()), ("none", 0, Markup()), ("none", None, Markup()),
    ("percentage", 0, Markup("percentage", 0)), ("percentage", 1000, Markup("percentage", 1000)),
    ("fixed", 0, Markup("fixed", 0)),
])
def test_valid_markups_at_the_bounds(kind, value, expected):
    assert validate_markup(kind, value) == expected


def test_retail_beyond_the_integer_column_is_rejected():
    with pytest.raises(ValidationFailed):
        retail_price_cents(2_000_000_000, Markup("percentage", 1000))


# Paddle-Signature -------------------------------------------------------------------------------

SECRET = "pdl_ntfset_01_test"
BODY = b'{"event_id":"evt_1","event_type":"transaction.completed"}'


def test_h1_is_hmac_sha256_of_ts_colon_body():
    import hashlib
    import hmac

    assert compute_h1(SECRET, 1700000000, BODY) == hmac.new(
        SECRET.encode(), b"1700000000:" + BODY, hashlib.sha256).hexdigest()


def test_signed_body_verifies():
    assert verify(sign(SECRET, BODY, ts=1700000000), BODY, SECRET, now=1700000010) == 1700000000


def test_any_of_several_h1_may_match():
    header = f"ts=1700000000;h1={'a' * 64};h1={compute_h1(SECRET, 1700000000, BODY)}"
    assert verify(header, BODY, SECRET, now=1700000000) == 1700000000


@pytest.mark.parametrize(("header", "secret", "body", "now"), [
    (sign(SECRET, BODY, ts=1700000000), "other", BODY, 1700000000),            # wrong secret
    (sign(SECRET, BODY, ts=1700000000), SECRET, BODY + b" ", 1700000000),      # tampered body
    (sign(SECRET, BODY, ts=1700000000), SECRET, BODY, 1700000301),             # stale
    (sign(SECRET, BODY, ts=1700000000), SECRET, BODY, 1699999699),             # from the future
    ("ts=1700000000;h1=é", SECRET, BODY, 1700000000),                          # not hex, not ASCII
])
def test_bad_signatures_are_refused(header, secret, body, now):
    with pytest.raises(SignatureError):
        verify(header, body, secret, now=now)


def test_tolerance_is_inclusive_at_300_seconds():
    assert verify(sign(SECRET, BODY, ts=1700000000), BODY, SECRET, now=1700000300)


@pytest.mark.parametrize("header", [None, "", "ts=1", "h1=ab", "ts=x;h1=ab", "ts=1;h1", "nonsense"])
def test_malformed_headers_are_refused(header):
    with pytest.raises(SignatureError):
        parse_header(header)
