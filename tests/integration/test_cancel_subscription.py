"""Canceling subscriptions through the real purchase handler: free ones at once, paid ones at the end
of the billing period through the sandbox (its end-period route delivers the signed
subscription.canceled to our webhook) or Paddle (a stub of its API on loopback); installations of a
canceled module are disabled, never deleted."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from support.automation import listen
from support.modules import install_module
from support.purchase import forward_to_function, loopback_server


@pytest.fixture(autouse=True)
def queues(sandbox_aws):
    return sandbox_aws


@pytest.fixture
def api(function_client):
    return function_client("purchase")


@pytest.fixture
def webhook_gateway(env):
    with loopback_server(forward_to_function("purchase")) as (url, recorded):
        env.set("SANDBOX_WEBHOOK_URL", f"{url}/api/webhooks/paddle")
        yield recorded


def cancel_path(tenant, subscription_id):
    return f"/api/agencies/{tenant.agency_id}/subscriptions/{subscription_id}/cancel"


def installation(owner_conn, tenant, module):
    return owner_conn.execute("SELECT status, is_enabled FROM site_module_installations WHERE site_id = %s "
                              "AND module_id = %s", (tenant.site_id, module)).fetchone()


def events(owner_conn, tenant, kind):
    return owner_conn.execute(
        "SELECT payload FROM automation_events_log WHERE event_type = %s AND (agency_id = %s OR site_id = %s) "
        "ORDER BY created_at", (kind, tenant.agency_id, tenant.site_id)).fetchall()


def test_a_free_subscription_is_canceled_at_once_and_its_installations_disabled(
        api, function_client, tenant, make_module, owner_conn):
    module = make_module(module_type="widget")
    subscribed = function_client("subscribe").post("/api/modules/subscribe", user=tenant.owner,
                                                   body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=module)
    owner_conn.execute("INSERT INTO module_data (module_id, site_id, key, value) VALUES (%s, %s, 'k', '1')",
                       (module, tenant.site_id))
    assert api.post(cancel_path(tenant, subscribed.data["id"]), user=tenant.admin).body["code"] == "forbidden"
    canceled = api.post(cancel_path(tenant, subscribed.data["id"]), user=tenant.owner)
    assert (canceled.status, canceled.data["status"]) == (200, "canceled")
    assert installation(owner_conn, tenant, module) == {"status": "disabled", "is_enabled": False}
    assert owner_conn.execute("SELECT count(*) AS n FROM module_data WHERE module_id = %s",
                              (module,)).fetchone()["n"] == 1  # kept
    [disabled] = events(owner_conn, tenant, "marketplace.module.disabled")
    assert (disabled["payload"]["reason"], disabled["payload"]["actor_id"]) == ("subscription_canceled",
                                                                              str(tenant.owner))
    assert len(events(owner_conn, tenant, "marketplace.subscription.canceled")) == 1
    again = api.post(cancel_path(tenant, subscribed.data["id"]), user=tenant.owner)
    assert (again.status, again.data["status"]) == (200, "canceled")
    assert len(events(owner_conn, tenant, "marketplace.subscription.canceled")) == 1


def test_canceling_disables_the_module_on_every_site_each_with_its_event(
        api, function_client, tenant, make_module, owner_conn, queues):
    from dramac_common.installations.lifecycle import PAYLOAD_KEYS

    from dramac_dev import seed

    module = make_module(module_type="widget")
    subscribed = function_client("subscribe").post("/api/modules/subscribe", user=tenant.owner,
                                                   body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    sites = [tenant.site_id, *(seed.create_site(owner_conn, tenant.agency_id, client_id=tenant.client_id)
                               for _ in range(2))]
    for site in sites:
        install_module(owner_conn, site_id=site, agency_id=tenant.agency_id, module_id=module)
        listen(owner_conn, site, "marketplace.module.disabled")
    queues.drain()
    assert api.post(cancel_path(tenant, subscribed.data["id"]), user=tenant.owner).status == 200
    sent = {m["eventId"] for m in queues.take("events")}
    disabled = owner_conn.execute(
        "SELECT id, site_id, payload FROM automation_events_log "
        "WHERE event_type = 'marketplace.module.disabled' AND payload ->> 'module_id' = %s", (str(module),)).fetchall()
    assert sorted(e["site_id"] for e in disabled) == sorted(sites)
    for event in disabled:
        assert set(event["payload"]) == PAYLOAD_KEYS | {"reason"}
        assert (event["payload"]["site_id"], event["payload"]["previous_status"], event["payload"]["status"]) == (
            str(event["site_id"]), "active", "disabled")
        assert str(event["id"]) in sent  # sent after commit, with the subscription's own event


def test_a_paid_sandbox_subscription_is_canceled_at_the_end_of_the_period_by_the_webhook(
        api, tenant, make_module, owner_conn, webhook_gateway):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)
    bought = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert api.post(bought.data["checkout"]["url"], user=tenant.owner).status == 200
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=module)
    subscription = bought.data["subscriptionId"]
    early = api.post(f"/api/sandbox/subscriptions/{subscription}/end-period", user=tenant.owner)
    assert (early.status, early.body["code"]) == (409, "no_cancel_scheduled")
    scheduled = api.post(cancel_path(tenant, subscription), user=tenant.owner)
    assert (scheduled.status, scheduled.data["status"]) == (202, "active")
    assert scheduled.data["cancelEffectiveAt"] is not None
    assert installation(owner_conn, tenant, module)["status"] == "active"  # paid until the period ends
    assert api.post(cancel_path(tenant, subscription), user=tenant.owner).status == 202  # repeat: unchanged
    ended = api.post(f"/api/sandbox/subscriptions/{subscription}/end-period", user=tenant.owner)
    assert ended.status == 200
    assert ended.data["webhook"]["body"]["data"]["outcome"] == "applied"
    listed = api.get(f"/api/agencies/{tenant.agency_id}/subscriptions", user=tenant.member).data
    assert [s["status"] for s in listed] == ["canceled"]
    assert installation(owner_conn, tenant, module) == {"status": "disabled", "is_enabled": False}
    [disabled] = events(owner_conn, tenant, "marketplace.module.disabled")
    assert disabled["payload"]["actor_id"] is None  # the provider's webhook
    actions = [r["action"] for r in owner_conn.execute(
        "SELECT action FROM audit_log WHERE agency_id = %s AND action LIKE 'subscription.cancel%%' ORDER BY id",
        (tenant.agency_id,)).fetchall()]
    assert actions == ["subscription.cancel_scheduled", "subscription.canceled"]


def paddle_subscription(owner_conn, tenant, module, cycle: str, cents: int) -> tuple[uuid.UUID, str]:
    """An active recurring subscription billed through Paddle: (our id, Paddle's id, unique in the run)."""
    subscription, paddle_id = uuid.uuid4(), f"sub_{uuid.uuid4().hex[:12]}"
    owner_conn.execute(
        "INSERT INTO agency_module_subscriptions (id, agency_id, module_id, status, billing_cycle, "
        "wholesale_price_cents, retail_price_cents, provider_subscription_id, activated_at) "
        "VALUES (%s, %s, %s, 'active', %s, %s, %s, %s, now())",
        (subscription, tenant.agency_id, module, cycle, cents, cents, paddle_id))
    return subscription, paddle_id


@contextmanager
def paddle_api(env, answer):
    """Paddle's API on loopback, answering ``answer(method, path, headers, body)``; yields its record."""
    from dramac_common.payments.providers import reset_http_client

    with loopback_server(answer) as (url, calls):
        env.set("PAYMENT_PROVIDER", "paddle")
        env.set("PADDLE_API_URL", url)
        env.set("PADDLE_API_KEY", "pdl_test_key")
        reset_http_client()
        try:
            yield calls
        finally:
            env.set("PAYMENT_PROVIDER", "sandbox")
            reset_http_client()


def scheduled_cancel(paddle_id: str, effective_at: str) -> dict:
    return {"data": {"id": paddle_id, "status": "active", "scheduled_change": {
        "action": "cancel", "effective_at": effective_at, "resume_at": None}}}


def test_paddle_is_asked_to_cancel_at_the_next_billing_period(api, tenant, make_module, owner_conn, env):
    module = make_module(pricing_type="yearly", wholesale_price_cents=9900)
    subscription, paddle_id = paddle_subscription(owner_conn, tenant, module, "yearly", 9900)
    with paddle_api(env, lambda *_: (200, scheduled_cancel(paddle_id, "2027-11-29T00:00:00Z"))) as calls:
        reply = api.post(cancel_path(tenant, subscription), user=tenant.owner)
    assert (reply.status, reply.data["cancelEffectiveAt"]) == (202, "2027-11-29T00:00:00Z")
    [call] = calls.requests
    assert (call["method"], call["path"]) == ("POST", f"/subscriptions/{paddle_id}/cancel")
    assert json.loads(call["body"]) == {"effective_from": "next_billing_period"}
    assert call["headers"]["authorization"] == "Bearer pdl_test_key"


def test_twin_cancels_ask_paddle_once(api, tenant, make_module, owner_conn, env):
    """Two cancels of the same subscription at the same moment (a double click): Paddle is asked once,
    both answer 202 with the same end of the period."""
    module = make_module(pricing_type="monthly", wholesale_price_cents=1900)
    subscription, paddle_id = paddle_subscription(owner_conn, tenant, module, "monthly", 1900)

    def slow_paddle(*_):
        time.sleep(0.3)  # the first cancel is still waiting on Paddle when the second arrives
        return 200, scheduled_cancel(paddle_id, "2026-12-29T00:00:00Z")

    with paddle_api(env, slow_paddle) as calls, ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: api.post(cancel_path(tenant, subscription), user=tenant.owner), range(2)))
    assert [(r.status, r.data["cancelEffectiveAt"]) for r in replies] == [(202, "2026-12-29T00:00:00Z")] * 2
    assert len(calls.requests) == 1


def test_cancel_refusals(api, tenant, other_tenant, make_module, owner_conn):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)
    pending = api.post(f"/api/modules/{module}/purchase", user=tenant.owner,
                       body={"agencyId": str(tenant.agency_id)}).data["subscriptionId"]
    refused = api.post(cancel_path(tenant, pending), user=tenant.owner)
    assert (refused.status, refused.body["code"]) == (409, "subscription_not_active")
    assert api.post(cancel_path(tenant, pending), user=tenant.member).status == 403
    assert api.post(cancel_path(tenant, uuid.uuid4()), user=tenant.owner).body["code"] == "subscription_not_found"
    other = api.post(f"/api/agencies/{tenant.agency_id}/subscriptions/{pending}/cancel", user=other_tenant.owner)
    assert (other.status, other.body["code"]) == (404, "agency_not_found")
