"""The error envelope and how the API factory maps failures to it."""

import datetime
import decimal
import enum
import uuid
from typing import Any, Literal

from dramac_common.core.api import create_app, envelope
from dramac_common.core.errors import Conflict, NotFound, PaymentRequired, error_envelope, success_envelope
from dramac_common.core.wire import CamelModel
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel


def test_success_envelope_wraps_data():
    assert success_envelope({"a": 1}) == {"success": True, "data": {"a": 1}}


def test_error_envelope_has_message_and_code_and_optional_details():
    assert error_envelope("Nope", "not_found") == {"success": False, "error": "Nope", "code": "not_found"}
    assert error_envelope("Bad", "validation_error", [{"field": "x"}])["details"] == [{"field": "x"}]


def test_api_errors_carry_status_and_default_codes():
    assert (NotFound("x").status, NotFound("x").code) == (404, "not_found")
    assert PaymentRequired("x").status == 402
    assert Conflict("x", code="already_active").envelope()["code"] == "already_active"


class Body(BaseModel):
    count: int


def _client() -> TestClient:
    app = create_app("test")

    @app.post("/things")
    def make_thing(body: Body):
        if body.count < 0:
            raise Conflict("Negative things conflict", code="negative")
        return envelope({"count": body.count}, status_code=201)

    @app.get("/boom")
    def boom():
        raise RuntimeError("bug")

    return TestClient(app, raise_server_exceptions=False)


def test_api_error_becomes_its_status_and_envelope():
    reply = _client().post("/things", json={"count": -1})
    assert reply.status_code == 409
    assert reply.json() == {"success": False, "error": "Negative things conflict", "code": "negative"}


def test_malformed_json_is_400_invalid_json():
    reply = _client().post("/things", content=b'{"count": ', headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalid_json"


def test_invalid_field_is_400_with_details_naming_the_field():
    reply = _client().post("/things", json={"count": "many"})
    assert reply.status_code == 400
    body = reply.json()
    assert body["code"] == "validation_error"
    assert body["details"][0]["field"] == "count"
    assert "count" in body["error"]


def test_unknown_route_is_404_in_the_envelope():
    reply = _client().get("/nowhere")
    assert reply.status_code == 404
    assert reply.json()["success"] is False


def test_unexpected_error_is_500_envelope_without_internals():
    reply = _client().get("/boom")
    assert reply.status_code == 500
    assert reply.json() == {"success": False, "error": "Internal error", "code": "internal_error"}


def test_success_response_uses_the_envelope():
    reply = _client().post("/things", json={"count": 2})
    assert reply.status_code == 201
    assert reply.json() == {"success": True, "data": {"count": 2}}


def test_value_the_database_refuses_is_400_invalid_value():
    import psycopg

    app = create_app("test")

    @app.get("/range")
    def out_of_range():
        raise psycopg.errors.NumericValueOutOfRange("bigint out of range")

    reply = TestClient(app, raise_server_exceptions=False).get("/range")
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalid_value"


class _Tier(enum.StrEnum):
    GOLD = "gold"


class _Line(BaseModel):
    sku_id: uuid.UUID
    amount: decimal.Decimal
    note: str | None = None


class _Order(CamelModel):
    order_id: uuid.UUID
    placed_at: datetime.datetime
    due_on: datetime.date | None
    tier: _Tier
    state: Literal["open", "closed"]
    lines: list[_Line]
    tags: dict[str, int]
    name: str


class _Measured(CamelModel):
    ratio: float
    extra: dict[str, Any]


def _json_response_body(data) -> bytes:
    """What envelope answered before it wrote models with pydantic-core."""
    if isinstance(data, list):
        data = [d.model_dump(mode="json", by_alias=True) for d in data]
    else:
        data = data.model_dump(mode="json", by_alias=True)
    return JSONResponse({"success": True, "data": data}).body


def test_envelope_of_models_is_byte_identical_to_json_dumps_of_their_dump():
    order = _Order(order_id=uuid.uuid4(), placed_at=datetime.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=datetime.UTC),
                   due_on=None, tier=_Tier.GOLD, state="open", name='Zoë "the" \\ café\u2028\x1f/',
                   lines=[_Line(sku_id=uuid.uuid4(), amount=decimal.Decimal("1.50")),
                          _Line(sku_id=uuid.uuid4(), amount=decimal.Decimal("1E+2"), note="ü")],
                   tags={"a": 1, "ß": -2})
    measured = _Measured(ratio=1e-07, extra={"x": 2.5e-9, "y": [1, "z"]})  # floats: json.dumps spells them
    for data in (order, [order, order], measured, [measured]):
        reply = envelope(data, status_code=201)
        assert reply.body == _json_response_body(data)
        assert (reply.status_code, reply.headers["content-type"]) == (201, "application/json")
