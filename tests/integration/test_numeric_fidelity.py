"""Numbers round-trip exactly through the module data API and SDK: ``numeric`` values keep every digit
(JSON number literals, as PostgREST writes them, never through a float), bigint and numeric limits are
checked against the column, and what a column cannot hold is a 400 naming it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from support.modules import install_module, make_crm

LEDGER_MANIFEST = {
    "version": "1.0.0",
    "database": {"tables": [
        {"name": "entries", "entity": "entry",
         "columns": [
             {"name": "amount", "type": "numeric(30,2)"},
             {"name": "ratio", "type": "numeric"},
             {"name": "tiny", "type": "numeric(3,2)"},
             {"name": "big", "type": "bigint"},
             {"name": "small", "type": "smallint"},
             {"name": "measure", "type": "double precision"},
             {"name": "approx", "type": "real"},
             {"name": "meta", "type": "jsonb"},
             {"name": "amounts", "type": "numeric[]"},
         ]},
    ]},
}


@pytest.fixture
def api(function_client):
    return function_client("module_api")


@pytest.fixture
def ledger(owner_conn, make_module, tenant, aws):
    _, slug = make_crm(owner_conn, make_module, tenant, manifest=LEDGER_MANIFEST)
    return slug


def entries(tenant, slug, row_id=None):
    path = f"/api/sites/{tenant.site_id}/modules/{slug}/data/entries"
    return f"{path}/{row_id}" if row_id else path


def post_raw(api, tenant, slug, raw: str):
    """POST a body exactly as written (json.dumps would have turned the numbers into floats already)."""
    return api.post(entries(tenant, slug), user=tenant.owner, raw_body=raw, headers={"content-type": "application/json"})


def exact(reply_body_text: str) -> dict:
    return json.loads(reply_body_text, parse_float=Decimal)


def raw_reply(api, method, path, user, raw=None, query=None):
    """(status, body text) of a request: the text, because parsing it with json.loads would lose digits."""
    from support.handlers import claims_for

    from dramac_dev.events import LocalContext, http_event

    headers = {"content-type": "application/json"} if raw is not None else None
    event = http_event(method, path, raw_body=raw, headers=headers, query=query, claims=claims_for(user))
    result = api.handler(event, LocalContext("module_api"))
    return int(result["statusCode"]), result["body"]


def test_numeric_values_round_trip_with_every_digit(api, ledger, tenant, owner_conn):
    body = ('{"amount": 12345678901234567.89, "ratio": 0.1000000000000000055511151231257827, '
            '"big": 9223372036854775807, "meta": {"price": 12345678901234567.89, "n": [1.10, 2e-7]}, '
            '"amounts": [1.10, 99999999999999999999.99]}')
    status, text = raw_reply(api, "POST", entries(tenant, ledger), tenant.owner, body)
    assert status == 201, text
    assert '"amount": 12345678901234567.89' in text
    created = exact(text)["data"]
    assert created["amount"] == Decimal("12345678901234567.89")
    assert created["ratio"] == Decimal("0.1000000000000000055511151231257827")
    assert created["big"] == 9223372036854775807
    assert created["meta"] == {"price": Decimal("12345678901234567.89"), "n": [Decimal("1.10"), Decimal("2E-7")]}
    assert created["amounts"] == [Decimal("1.10"), Decimal("99999999999999999999.99")]
    stored = owner_conn.execute(f'SELECT amount::text, ratio::text, meta::text FROM "{schema(owner_conn, ledger)}".entries '
                                "WHERE id = %s", (created["id"],)).fetchone()
    assert stored["amount"] == "12345678901234567.89"
    assert stored["ratio"] == "0.1000000000000000055511151231257827"
    assert "12345678901234567.89" in stored["meta"]
    status, text = raw_reply(api, "GET", entries(tenant, ledger, created["id"]), tenant.member)
    assert status == 200 and exact(text)["data"]["amount"] == Decimal("12345678901234567.89")
    assert exact(text)["data"]["meta"]["price"] == Decimal("12345678901234567.89")


def schema(owner_conn, slug):
    return owner_conn.execute("SELECT r.schema_name FROM module_database_registry r JOIN modules_v2 m "
                              "ON m.id = r.module_id WHERE m.slug = %s", (slug,)).fetchone()["schema_name"]


def test_numeric_filters_compare_exactly(api, ledger, tenant):
    for amount in ("10000000000000000.01", "10000000000000000.02"):
        assert post_raw(api, tenant, ledger, '{"amount": ' + amount + "}").status == 201
    status, text = raw_reply(api, "GET", entries(tenant, ledger), tenant.member,
                             query="amount=gt.10000000000000000.01")
    assert status == 200
    assert [row["amount"] for row in exact(text)["data"]] == [Decimal("10000000000000000.02")]


@pytest.mark.parametrize("raw, field", [
    ('{"big": 9223372036854775808}', "big"),
    ('{"big": -9223372036854775809}', "big"),
    ('{"big": 1e400}', "big"),
    ('{"big": 1.5}', "big"),
    ('{"small": 32768}', "small"),
    ('{"amount": 1e28}', "amount"),
    ('{"amount": 9999999999999999999999999999.995}', "amount"),
    ('{"amount": 1e999999}', "amount"),
    ('{"ratio": 1e200000}', "ratio"),
    ('{"ratio": 1e-20000}', "ratio"),
    ('{"tiny": 9.995}', "tiny"),
    ('{"measure": 1e309}', "measure"),
    ('{"measure": 1e-400}', "measure"),
    ('{"approx": 1e39}', "approx"),
    ('{"amount": "Infinity"}', "amount"),
])
def test_numbers_a_column_cannot_hold_are_400_naming_it(api, ledger, tenant, raw, field):
    reply = post_raw(api, tenant, ledger, raw)
    assert reply.status == 400, reply.body
    assert reply.body["details"][0]["field"] == field, reply.body


@pytest.mark.parametrize("raw, column, expected", [
    ('{"amount": 9999999999999999999999999999.994}', "amount", Decimal("9999999999999999999999999999.99")),
    ('{"amount": 0.005}', "amount", Decimal("0.01")),
    ('{"tiny": 9.99499999}', "tiny", Decimal("9.99")),
    ('{"big": -9223372036854775808}', "big", -9223372036854775808),
    ('{"big": 1.0e3}', "big", 1000),
    ('{"ratio": "NaN"}', "ratio", "NaN"),
    ('{"ratio": "-Infinity"}', "ratio", "-Infinity"),
    ('{"measure": "Infinity"}', "measure", "Infinity"),
    ('{"approx": 3.4e38}', "approx", Decimal("3.4e38")),
])
def test_numbers_at_the_limits_are_stored_as_postgresql_rounds_them(api, ledger, tenant, raw, column, expected):
    status, text = raw_reply(api, "POST", entries(tenant, ledger), tenant.owner, raw)
    assert status == 201, text
    got = exact(text)["data"][column]
    assert got == expected or (isinstance(got, Decimal) and abs(got - expected) / expected < Decimal("1e-6"))


def test_sdk_returns_decimal_for_numeric_and_jsonb_numbers(owner_conn, make_module, tenant, aws, database_url):
    from dramac_common.core import db
    from dramac_common.module_data import ModuleDatabaseSDK

    _, slug = make_crm(owner_conn, make_module, tenant, manifest=LEDGER_MANIFEST)
    with db.service_unit() as unit:
        sdk = ModuleDatabaseSDK.for_service(unit, module_slug=slug, site_id=tenant.site_id)
        row = sdk.create_one("entries", {"amount": Decimal("12345678901234567.89"),
                                         "meta": {"x": Decimal("0.30000000000000000001")}})
        again = sdk.find_by_id("entries", row["id"])
    assert row["amount"] == again["amount"] == Decimal("12345678901234567.89")
    assert again["meta"] == {"x": Decimal("0.30000000000000000001")}


def test_widget_storage_keeps_numbers_exact(api, owner_conn, make_module, tenant):
    widget = make_module(module_type="widget")
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=widget)
    path = f"/api/sites/{tenant.site_id}/modules/{widget}/storage/total"
    status, _ = raw_reply(api, "PUT", path, tenant.owner, '{"value": {"total": 12345678901234567.89}}')
    assert status == 200
    status, text = raw_reply(api, "GET", path, tenant.member)
    assert status == 200 and exact(text)["data"]["value"] == {"total": Decimal("12345678901234567.89")}
