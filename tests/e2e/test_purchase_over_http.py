"""End to end over the local stack: an owner buys a paid module with the sandbox provider, completes
the checkout with one request (which sends a signed Paddle webhook to the stack itself), and the
subscription is active, so the module may be installed on the agency's sites."""

import uuid

from dramac_dev import routes


def _install_route_exists(site_id, module_id) -> bool:
    return routes.match("POST", f"/api/sites/{site_id}/modules/{module_id}") is not None


def test_purchase_complete_sandbox_checkout_and_subscription_is_active(local_stack, tenant, make_module):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)
    body = {"agencyId": str(tenant.agency_id), "markupType": "percentage", "markupValue": 25}
    install = f"/api/sites/{tenant.site_id}/modules/{module}"
    with local_stack.client(tenant.owner) as http:
        if _install_route_exists(tenant.site_id, module):
            assert http.post(install, json={}).status_code == 402
        bought = http.post(f"/api/modules/{module}/purchase", json=body, headers={"Idempotency-Key": "e2e-1"})
        replay = http.post(f"/api/modules/{module}/purchase", json=body, headers={"Idempotency-Key": "e2e-1"})
        assert bought.status_code == 201, bought.text
        assert replay.json() == bought.json()
        checkout = bought.json()["data"]["checkout"]

        completed = http.post(checkout["url"])
        assert completed.status_code == 200, completed.text
        assert completed.json()["data"]["webhook"]["body"]["data"]["outcome"] == "applied"

        listed = http.get(f"/api/agencies/{tenant.agency_id}/subscriptions").json()["data"]
        [subscription] = [s for s in listed if s["moduleId"] == str(module)]
        assert subscription["status"] == "active"
        assert subscription["retailPriceCents"] == 1999 + 500
        again = http.post(f"/api/modules/{module}/purchase", json={"agencyId": str(tenant.agency_id)})
        assert again.status_code == 409
        assert again.json()["code"] == "already_active"
        if _install_route_exists(tenant.site_id, module):
            assert http.post(install, json={}).status_code in (201, 202)


def test_webhook_route_is_public_but_needs_a_valid_signature(local_stack):
    with local_stack.client() as http:
        reply = http.post("/api/webhooks/paddle", content=b'{"event_id":"evt_x"}',
                          headers={"paddle-signature": f"ts=1;h1={'0' * 64}", "content-type": "application/json"})
    assert reply.status_code == 401
    assert reply.json()["code"] == "invalid_signature"


def test_member_reads_but_cannot_change_markup_over_http(local_stack, tenant):
    with local_stack.client(tenant.member) as http:
        assert http.get(f"/api/agencies/{tenant.agency_id}/subscriptions").status_code == 200
        reply = http.patch(f"/api/agencies/{tenant.agency_id}/subscriptions/{uuid.uuid4()}",
                           json={"markupType": "fixed", "markupValue": 100})
    assert reply.status_code == 403
