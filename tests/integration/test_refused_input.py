"""Input PostgreSQL or Python refuses is a 4xx in the envelope, never a 5xx or 503: values too large for
an index, JSON strings PostgreSQL cannot store (lone surrogates, NUL), JSON nested thousands of levels
deep, absurd signature timestamps and malformed Host headers, through the real Lambda handlers."""

from __future__ import annotations

import json
import time

import pytest
from support.modules import make_crm

INDEXED_MANIFEST = {
    "version": "1.0.0",
    "database": {"tables": [
        {"name": "products", "entity": "product",
         "columns": [
             {"name": "sku", "type": "text", "nullable": False, "unique": True},
             {"name": "title", "type": "text"},
             {"name": "notes", "type": "text"},
             {"name": "stock", "type": "integer", "default": "0", "check": "stock >= 0"},
             {"name": "price", "type": "numeric(30,2)"},
             {"name": "ratio", "type": "numeric"},
             {"name": "big", "type": "bigint"},
             {"name": "released", "type": "date"},
             {"name": "seen_at", "type": "timestamptz"},
             {"name": "tags", "type": "text[]"},
             {"name": "attributes", "type": "jsonb"},
         ],
         "indexes": [{"columns": ["title"]}]},
    ]},
}

DEEP = 5000


def incompressible(length: int = 6000) -> str:
    """Random text: PostgreSQL's compression cannot shrink it under the btree entry limit (~2.7 kB)."""
    import base64
    import os

    return base64.b64encode(os.urandom(length)).decode()[:length]


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def module_api(function_client):
    return function_client("module_api")


@pytest.fixture
def shop(owner_conn, make_module, tenant, aws):
    _, slug = make_crm(owner_conn, make_module, tenant, manifest=INDEXED_MANIFEST)
    return slug


def products(tenant, slug, row_id=None):
    path = f"/api/sites/{tenant.site_id}/modules/{slug}/data/products"
    return f"{path}/{row_id}" if row_id else path


def assert_client_error(reply, status=400, code=None):
    assert reply.status == status, reply.body
    assert reply.body["success"] is False and isinstance(reply.body["code"], str)
    if code:
        assert reply.body["code"] == code, reply.body
    text = json.dumps(reply.body)
    # never a raw PostgreSQL message or an internal name
    for leak in ("mod_", "btree", "index row", "violates", "ERROR", "constraint", "psycopg", "Traceback"):
        assert leak not in text, text


def test_a_value_too_large_for_an_index_is_400_naming_the_column(module_api, shop, tenant, owner_conn):
    reply = module_api.post(products(tenant, shop), user=tenant.owner,
                            body={"sku": "a1", "title": incompressible()})
    assert_client_error(reply, code="value_too_large")
    assert reply.body["details"][0]["field"] == "title"


def test_a_value_too_large_for_a_unique_index_on_update_is_400(module_api, shop, tenant):
    row = module_api.post(products(tenant, shop), user=tenant.owner, body={"sku": "a2"}).data
    reply = module_api.patch(products(tenant, shop, row["id"]), user=tenant.owner,
                             body={"sku": incompressible()})
    assert_client_error(reply, code="value_too_large")
    assert reply.body["details"][0]["field"] == "sku"


def test_a_long_value_in_an_unindexed_column_is_stored(module_api, shop, tenant):
    notes = incompressible()
    reply = module_api.post(products(tenant, shop), user=tenant.owner, body={"sku": "a3", "notes": notes})
    assert reply.status == 201 and reply.data["notes"] == notes


@pytest.mark.parametrize("raw", [
    '{"sku": "x", "title": "\\ud800"}',
    '{"sku": "x", "title": "a\\u0000b"}',
    '{"sku": "x", "attributes": {"k": "\\udfff"}}',
    '{"sku": "x", "attributes": {"\\u0000": 1}}',
    '{"sku": "x", "tags": ["ok", "\\ud83d"]}',
])
def test_strings_postgresql_cannot_store_are_400(module_api, shop, tenant, raw):
    reply = module_api.post(products(tenant, shop), user=tenant.owner, raw_body=raw,
                            headers={"content-type": "application/json"})
    assert_client_error(reply)


def test_a_valid_surrogate_pair_is_stored(module_api, shop, tenant):
    reply = module_api.post(products(tenant, shop), user=tenant.owner, raw_body='{"sku": "\\ud83d\\ude00"}',
                            headers={"content-type": "application/json"})
    assert reply.status == 201 and reply.data["sku"] == "\U0001f600"


def test_json_nested_thousands_deep_is_400_for_module_data(module_api, shop, tenant):
    raw = '{"sku": "x", "attributes": ' + deep_json() + "}"
    reply = module_api.post(products(tenant, shop), user=tenant.owner, raw_body=raw,
                            headers={"content-type": "application/json"})
    assert_client_error(reply, code="json_too_deep")


def test_json_nested_deeper_than_postgresql_takes_is_400_for_module_data(module_api, shop, tenant):
    raw = '{"sku": "x", "attributes": ' + deep_json(900) + "}"
    reply = module_api.post(products(tenant, shop), user=tenant.owner, raw_body=raw,
                            headers={"content-type": "application/json"})
    assert_client_error(reply, code="json_too_deep")


def test_widget_storage_refuses_nul_and_deep_values(function_client, owner_conn, make_module, tenant):
    from support.modules import install_module

    api = function_client("module_api")
    widget = make_module(module_type="widget")
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=widget)
    path = f"/api/sites/{tenant.site_id}/modules/{widget}/storage/k"
    for raw in ('{"value": "a\\u0000"}', '{"value": "\\ud800"}', '{"value": ' + deep_json() + "}"):
        assert_client_error(api.request("PUT", path, user=tenant.owner, raw_body=raw,
                                        headers={"content-type": "application/json"}))


@pytest.mark.parametrize("value", ["\\ud800", "a\\u0000b"])
def test_workflow_configs_and_events_refuse_unstorable_strings(function_client, tenant, aws, value):
    api = function_client("automation")
    base = f"/api/sites/{tenant.site_id}/automation"
    workflow = ('{"name": "w", "triggerEventType": "crm.contact.created", "steps": [{"type": "set_variable", '
                '"config": {"name": "v", "value": "' + value + '"}}]}')
    assert_client_error(api.post(f"{base}/workflows", user=tenant.owner, raw_body=workflow,
                                 headers={"content-type": "application/json"}))
    event = '{"eventType": "crm.contact.created", "payload": {"x": "' + value + '"}}'
    assert_client_error(api.post(f"{base}/events", user=tenant.owner, raw_body=event,
                                 headers={"content-type": "application/json"}))


def test_deep_json_in_any_fastapi_body_is_400(function_client, tenant, aws):
    api = function_client("automation")
    raw = '{"eventType": "crm.contact.created", "payload": ' + deep_json() + "}"
    assert_client_error(api.post(f"/api/sites/{tenant.site_id}/automation/events", user=tenant.owner,
                                 raw_body=raw, headers={"content-type": "application/json"}),
                        code="json_too_deep")


@pytest.mark.parametrize("raw", [deep_json(), '{"a": "\\ud800"}', '{"a": "\\u0000"}', deep_json(900)])
def test_incoming_automation_webhook_refuses_what_it_cannot_store(function_client, tenant, aws, raw):
    api = function_client("automation")
    hook = api.post(f"/api/sites/{tenant.site_id}/automation/webhooks", user=tenant.owner, body={"name": "h"})
    assert hook.status == 201
    assert_client_error(api.post(hook.data["path"], raw_body=raw, headers={"content-type": "application/json"}))


@pytest.fixture
def purchase_api(function_client, env):
    env.set("PADDLE_WEBHOOK_SECRET", "refused-input-secret")
    return function_client("purchase")


def paddle_headers(raw: bytes, secret: str) -> dict[str, str]:
    from dramac_common.payments.signature import sign

    return {"content-type": "application/json", "paddle-signature": sign(secret, raw)}


@pytest.mark.parametrize("raw", [
    b'{"event_id": "evt_1", "event_type": "transaction.completed", "data": ' + deep_json().encode() + b"}",
    b'{"event_id": "evt_1", "event_type": "transaction.completed", "data": {"x": "\\ud800"}}',
    b'{"event_id": "evt_\\u0000", "event_type": "transaction.completed", "data": {}}',
])
def test_paddle_webhook_with_a_valid_signature_refuses_unstorable_json(purchase_api, raw):
    from dramac_common.payments.config import get_payment_config

    secret = get_payment_config().webhook_secret
    reply = purchase_api.post("/api/webhooks/paddle", raw_body=raw, headers=paddle_headers(raw, secret))
    assert_client_error(reply)


@pytest.mark.parametrize("ts", ["9" * 400, "1" * 5000, "0" * 300 + str(int(time.time()))])
def test_paddle_signature_with_an_absurd_timestamp_is_401(purchase_api, ts):
    reply = purchase_api.post("/api/webhooks/paddle", raw_body=b"{}",
                              headers={"content-type": "application/json", "paddle-signature": f"ts={ts};h1=00"})
    assert_client_error(reply, status=401, code="invalid_signature")


@pytest.mark.parametrize("headers", [
    {"host": "a:b:c"}, {"host": "example.com:port"}, {"host": "example.com:99999999999999999999"},
    {"host": "exa mple.com"}, {"host": ":80"},
])
@pytest.mark.parametrize("function", ["subscribe", "module_api", "purchase", "automation", "install"])
def test_a_malformed_host_header_is_400_on_every_function(function_client, function, headers):
    reply = function_client(function).get("/api/health" if function == "subscribe" else "/api/nothing-here",
                                          headers=headers)
    assert_client_error(reply, code="invalid_host")


@pytest.mark.parametrize("headers", [
    {"host": "api.example.com", "x-forwarded-port": "https"},
    {"host": "api.example.com", "x-forwarded-port": "1,2"},
    {"host": "[::1]:3000"},
    {"host": "[2001:db8::1]"},
    {"host": "127.0.0.1:3000", "x-forwarded-port": ""},
])
def test_health_answers_with_odd_but_harmless_host_headers(function_client, headers):
    reply = function_client("subscribe").get("/api/health", headers=headers)
    assert reply.status == 200, reply.body


def test_path_and_query_values_postgresql_cannot_compare_are_4xx_in_the_callers_terms(module_api, shop, tenant,
                                                                                    owner_conn, make_module):
    from support.modules import install_module

    base = f"/api/sites/{tenant.site_id}/modules"
    assert_client_error(module_api.get(f"{base}/a\x00b/data/products", user=tenant.owner), 404,
                        "module_not_installed")
    filtered = module_api.get(products(tenant, shop), user=tenant.owner, query={"title": "eq.a\x00b"})
    assert_client_error(filtered, code="invalid_value")
    assert filtered.body["details"][0]["field"] == "title"
    widget = make_module(module_type="widget")
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=widget)
    assert_client_error(module_api.get(f"{base}/{widget}/storage/a\x00b", user=tenant.owner), code="invalid_key")
    assert_client_error(module_api.get(f"{base}/{widget}/storage", user=tenant.owner, query={"prefix": "\x00"}))


def test_a_workflow_step_writing_a_value_too_large_for_an_index_fails_the_step_once(function_client, owner_conn,
                                                                                   make_module, tenant, aws):
    """The worker's side of the class: the database's refusal fails the step with a readable error, and is
    not mistaken for an outage (which would redeliver the event forever)."""
    _, slug = make_crm(owner_conn, make_module, tenant, manifest=INDEXED_MANIFEST)
    automation = function_client("automation")
    base = f"/api/sites/{tenant.site_id}/automation"
    created = automation.post(f"{base}/workflows", user=tenant.owner, body={
        "name": "copy", "triggerEventType": "automation.webhook.received",
        "steps": [{"type": "create_record", "config": {"module": slug, "table": "products",
                                                       "values": {"sku": "{{event.payload.body.sku}}",
                                                                  "title": "{{event.payload.body.title}}"}}}]})
    assert created.status == 201, created.body
    hook = automation.post(f"{base}/webhooks", user=tenant.owner, body={"name": "h"})
    delivered = automation.post(hook.data["path"], body={"sku": "s1", "title": incompressible()})
    assert delivered.status == 202, delivered.body
    aws.drain()
    assert aws.pending_messages() == []
    execution = owner_conn.execute("SELECT status, error FROM workflow_executions WHERE workflow_id = %s",
                                   (created.data["id"],)).fetchone()
    assert execution["status"] == "failed"
    assert "title" in execution["error"] and "index" in execution["error"], execution["error"]
    assert "btree" not in execution["error"] and "mod_" not in execution["error"]


@pytest.mark.parametrize("raw, code", [
    (b'{"sku": "\xff\xfe"}', "invalid_json"),
    (b'{"sku": "\xed\xa0\x80"}', "invalid_json"),  # a surrogate encoded as UTF-8 bytes: not UTF-8
    (b'\xef\xbb\xbf{"sku": "x"}', "invalid_json"),
    (b'{"sku": "x", "stock": NaN}', "invalid_json"),
    (b'{"sku": "x", "stock": ' + b"1" * 5000 + b"}", "invalid_json"),
])
def test_bodies_that_are_not_utf8_json_are_400(module_api, shop, tenant, raw, code):
    reply = module_api.post(products(tenant, shop), user=tenant.owner, raw_body=raw,
                            headers={"content-type": "application/json"})
    assert_client_error(reply, code=code)
