"""The paddle provider: purchase creates a Paddle Billing transaction, against a stub of Paddle's API
on 127.0.0.1 (no test reaches the internet)."""

import json
import uuid

import pytest
from support.aws import emulated_aws
from support.purchase import loopback_server


@pytest.fixture(autouse=True)
def queues():
    with emulated_aws() as urls:
        yield urls


@pytest.fixture
def paddle_mode(env):
    from dramac_common.payments.providers import reset_http_client

    def configure(url, key="pdl_test_key"):
        env.set("PAYMENT_PROVIDER", "paddle")
        env.set("PADDLE_API_URL", url)
        env.set("PADDLE_WEBHOOK_SECRET", "pdl_ntfset_test")
        env.set("PADDLE_API_TIMEOUT_SECONDS", "2")
        if key:
            env.set("PADDLE_API_KEY", key)
        else:
            env.unset("PADDLE_API_KEY")
        reset_http_client()

    yield configure
    env.set("PAYMENT_PROVIDER", "sandbox")
    reset_http_client()


@pytest.fixture
def api(function_client):
    return function_client("purchase")


def created_transaction(txn_id=None):
    def respond(method, path, headers, body):
        nonlocal txn_id
        txn_id = txn_id or f"txn_{uuid.uuid4().hex[:26]}"
        return 201, {"data": {"id": txn_id, "status": "ready",
                              "checkout": {"url": f"https://pay.example.test/?_ptxn={txn_id}"}},
                     "meta": {"request_id": "req_1"}}

    return respond


def test_purchase_creates_a_paddle_transaction_with_our_ids(api, tenant, make_module, paddle_mode, owner_conn):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999, name="Booking")
    with loopback_server(created_transaction("txn_01hv8wptq8987qeep44cyrewp9")) as (url, paddle):
        paddle_mode(url)
        reply = api.post(f"/api/modules/{module}/purchase", user=tenant.owner,
                         body={"agencyId": str(tenant.agency_id), "markupType": "percentage", "markupValue": 50})
    assert reply.status == 201
    checkout = reply.data["checkout"]
    assert checkout["provider"] == "paddle"
    assert checkout["providerCheckoutId"] == "txn_01hv8wptq8987qeep44cyrewp9"
    assert checkout["url"].startswith("https://pay.example.test/")
    [request] = paddle.requests
    assert request["path"] == "/transactions"
    assert request["headers"]["authorization"] == "Bearer pdl_test_key"
    sent = json.loads(request["body"])
    assert sent["custom_data"]["subscription_id"] == reply.data["subscriptionId"]
    assert sent["custom_data"]["agency_id"] == str(tenant.agency_id)
    assert sent["custom_data"]["checkout_id"] == checkout["id"]
    price = sent["items"][0]["price"]
    # the agency pays the wholesale price; its markup is what it charges its clients
    assert price["unit_price"] == {"amount": "1999", "currency_code": "USD"}
    assert price["billing_cycle"] == {"interval": "month", "frequency": 1}
    stored = owner_conn.execute("SELECT provider_checkout_id, provider FROM payment_checkouts WHERE id = %s",
                                (checkout["id"],)).fetchone()
    assert stored == {"provider_checkout_id": "txn_01hv8wptq8987qeep44cyrewp9", "provider": "paddle"}


def test_one_time_module_has_no_billing_cycle_at_paddle(api, tenant, make_module, paddle_mode):
    module = make_module(pricing_type="one_time", wholesale_price_cents=4900)
    with loopback_server(created_transaction()) as (url, paddle):
        paddle_mode(url)
        reply = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 201
    assert json.loads(paddle.requests[0]["body"])["items"][0]["price"]["billing_cycle"] is None


@pytest.mark.parametrize("status", [400, 401, 500, 503])
def test_paddle_refusal_is_502_and_creates_nothing(api, tenant, make_module, paddle_mode, owner_conn, status):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)

    def refuse(method, path, headers, body):
        return status, {"error": {"type": "request_error", "code": "bad_request", "detail": "nope"}}

    with loopback_server(refuse) as (url, _):
        paddle_mode(url)
        reply = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 502
    assert reply.body["code"] == "payment_provider_error"
    assert owner_conn.execute("SELECT count(*) AS n FROM agency_module_subscriptions WHERE module_id = %s",
                              (module,)).fetchone()["n"] == 0
    assert owner_conn.execute("SELECT count(*) AS n FROM automation_events_log WHERE agency_id = %s",
                              (tenant.agency_id,)).fetchone()["n"] == 0


def test_paddle_unreachable_is_502(api, tenant, make_module, paddle_mode):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)
    with loopback_server(created_transaction()) as (url, _):
        pass  # the server is gone: connections are refused
    paddle_mode(url)
    reply = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 502


def test_missing_api_key_is_502_without_calling_paddle(api, tenant, make_module, paddle_mode):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)
    with loopback_server(created_transaction()) as (url, paddle):
        paddle_mode(url, key=None)
        reply = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 502
    assert paddle.requests == []


def test_sandbox_completion_route_is_404_with_paddle(api, tenant, paddle_mode):
    paddle_mode("http://127.0.0.1:9")
    reply = api.post(f"/api/sandbox/checkouts/{uuid.uuid4()}/complete", user=tenant.owner)
    assert reply.status == 404
