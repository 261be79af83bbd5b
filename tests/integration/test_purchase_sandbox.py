"""The sandbox provider end to end inside one process: purchase, then
POST /api/sandbox/checkouts/{checkoutId}/complete sends a signed Paddle-format webhook to our own
webhook route (served here by a loopback gateway in front of the real handler)."""


import json
import uuid

import pytest
from support.purchase import forward_to_function, loopback_server


@pytest.fixture(autouse=True)
def queues(sandbox_aws):
    return sandbox_aws


@pytest.fixture
def api(function_client):
    """The real purchase handler."""
    return function_client("purchase")


def configure_webhook_url(env, url):
    if url is None:
        env.unset("SANDBOX_WEBHOOK_URL")
    else:
        env.set("SANDBOX_WEBHOOK_URL", url)


@pytest.fixture
def webhook_gateway(env):
    """Our webhook route on 127.0.0.1, as the local stack serves it; SANDBOX_WEBHOOK_URL points at it."""
    with loopback_server(forward_to_function("purchase")) as (url, recorded):
        configure_webhook_url(env, f"{url}/api/webhooks/paddle")
        yield recorded


@pytest.fixture
def purchase(api, tenant, make_module):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)
    reply = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 201
    return reply.data


def test_completing_a_sandbox_checkout_activates_the_subscription(api, tenant, purchase, webhook_gateway,
                                                                  owner_conn):
    reply = api.post(purchase["checkout"]["url"], user=tenant.owner)
    assert reply.status == 200
    assert reply.data["webhook"]["status"] == 200
    assert reply.data["webhook"]["body"]["data"]["outcome"] == "applied"
    [delivered] = webhook_gateway.requests
    assert delivered["headers"]["paddle-signature"].startswith("ts=")
    subscriptions = api.get(f"/api/agencies/{tenant.agency_id}/subscriptions", user=tenant.member).data
    assert [s["status"] for s in subscriptions] == ["active"]
    checkout = owner_conn.execute("SELECT status FROM payment_checkouts WHERE id = %s",
                                  (purchase["checkout"]["id"],)).fetchone()
    assert checkout["status"] == "completed"


def test_completing_twice_is_409(api, tenant, purchase, webhook_gateway):
    api.post(purchase["checkout"]["url"], user=tenant.owner)
    again = api.post(purchase["checkout"]["url"], user=tenant.owner)
    assert again.status == 409
    assert again.body["code"] == "checkout_completed"


def test_superseded_checkout_cannot_be_completed(api, tenant, purchase, webhook_gateway, owner_conn):
    module = purchase["subscription"]["moduleId"]
    api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    reply = api.post(purchase["checkout"]["url"], user=tenant.owner)
    assert reply.status == 409
    assert reply.body["code"] == "checkout_superseded"
    assert webhook_gateway.requests == []


def test_member_cannot_complete_a_checkout(api, tenant, purchase, webhook_gateway):
    reply = api.post(purchase["checkout"]["url"], user=tenant.member)
    assert reply.status == 403
    assert webhook_gateway.requests == []


def test_another_agency_cannot_complete_a_checkout(api, other_tenant, purchase, webhook_gateway):
    assert api.post(purchase["checkout"]["url"], user=other_tenant.owner).status == 404
    assert api.post(f"/api/sandbox/checkouts/{uuid.uuid4()}/complete", user=other_tenant.owner).status == 404


def test_without_a_configured_webhook_url_completion_is_503_and_posts_nowhere(api, tenant, purchase, env):
    # the request names a loopback host where a webhook route really listens: it is never used
    with loopback_server(forward_to_function("purchase")) as (host_url, host_side):
        configure_webhook_url(env, None)
        reply = api.post(purchase["checkout"]["url"], user=tenant.owner,
                         headers={"host": host_url.removeprefix("http://")})
    assert reply.status == 503
    assert reply.body["code"] == "sandbox_webhook_url_unset"
    assert host_side.requests == []


def test_the_webhook_goes_to_the_configured_url_never_to_the_hosts(api, tenant, purchase, webhook_gateway):
    with loopback_server(lambda *_: (200, {"success": True, "data": {"outcome": "applied"}})) as (other, other_side):
        reply = api.post(purchase["checkout"]["url"], user=tenant.owner,
                         headers={"host": other.removeprefix("http://")})
    assert reply.status == 200
    assert other_side.requests == []
    assert len(webhook_gateway.requests) == 1


def test_the_sandbox_notification_matches_its_checkout(api, tenant, purchase, webhook_gateway, owner_conn):
    api.post(purchase["checkout"]["url"], user=tenant.owner)
    [delivered] = webhook_gateway.requests
    event = json.loads(delivered["body"])
    assert event["event_id"] == f"evt_sandbox_{uuid.UUID(purchase['checkout']['id']).hex}"
    assert event["data"]["id"] == purchase["checkout"]["providerCheckoutId"]
    assert event["data"]["details"]["totals"]["total"] == str(purchase["checkout"]["amountCents"])
    outcome = owner_conn.execute("SELECT outcome, checkout_id FROM payment_events WHERE event_id = %s",
                                 (event["event_id"],)).fetchone()
    assert outcome == {"outcome": "applied", "checkout_id": uuid.UUID(purchase["checkout"]["id"])}


def test_a_completion_that_applied_nothing_is_not_sent_twice(api, tenant, purchase, webhook_gateway, owner_conn):
    from datetime import UTC, datetime, timedelta

    from support.purchase import WEBHOOK, paddle_event, signed

    # a cancellation stamped after now: the sandbox's completion is older, so it is stale
    later = paddle_event("subscription.canceled", subscription_id=uuid.UUID(purchase["subscriptionId"]),
                         occurred_at=datetime.now(UTC) + timedelta(hours=1))
    raw, headers = signed(later)
    assert api.post(WEBHOOK, raw_body=raw, headers=headers).data["outcome"] == "applied"
    first = api.post(purchase["checkout"]["url"], user=tenant.owner)
    assert (first.status, first.data["webhook"]["body"]["data"]["outcome"]) == (200, "stale")
    assert owner_conn.execute("SELECT status FROM payment_checkouts WHERE id = %s",
                              (purchase["checkout"]["id"],)).fetchone()["status"] == "open"
    again = api.post(purchase["checkout"]["url"], user=tenant.owner)
    assert (again.status, again.body["code"]) == (409, "checkout_already_submitted")
