"""The module data API's JSON: the fast walk writes exactly what the former one did (every value through
``jsonable_encoder`` with exact numbers, then simplejson), for every column type a module may declare."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import uuid
from decimal import Decimal

from dramac_common.core import jsonbody
from fastapi.encoders import jsonable_encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from dramac_dev.functions_loader import load_function

app = load_function("module_api")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
column_values = (
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text() | st.uuids()
    | st.decimals(allow_nan=True, allow_infinity=True) | st.floats()
    | st.dates() | st.datetimes(timezones=st.just(dt.UTC) | st.none()) | st.times()
    | st.timedeltas() | st.builds(ipaddress.ip_address, st.integers(0, 2**32 - 1))
    | st.lists(st.integers(), max_size=3) | st.lists(st.floats(), max_size=3) | json_values
)
rows = st.lists(st.dictionaries(st.sampled_from(["id", "email", "score", "at", "tags", "profile"]),
                                column_values, max_size=7), max_size=5)


def former(data: object) -> str:
    return jsonbody.dumps(jsonable_encoder(data, custom_encoder=app._EXACT_NUMBERS))


@settings(max_examples=300, deadline=None)
@given(rows)
def test_the_fast_walk_writes_what_the_former_one_did(data) -> None:
    assert app.exact_json(data) == former(data)


def test_non_finite_numbers_are_the_strings_postgresql_writes() -> None:
    row = {"n": Decimal("NaN"), "f": float("-inf"), "exact": Decimal("1.50"), "id": uuid.UUID(int=1)}
    assert json.loads(app.exact_json(row)) == {"n": "NaN", "f": "-Infinity", "exact": 1.5,
                                               "id": "00000000-0000-0000-0000-000000000001"}
    assert '"exact": 1.50' in app.exact_json(row)
