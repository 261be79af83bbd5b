"""POST /api/modules/subscribe and GET /api/modules through the real subscribe handler."""

import json
import uuid

import pytest
from support.automation import listen
from support.aws import emulated_aws

SUBSCRIBE = "/api/modules/subscribe"


@pytest.fixture
def queues():
    with emulated_aws() as emulated:
        yield emulated


@pytest.fixture
def api(function_client, queues):
    return function_client("subscribe")


def _subscription_rows(owner_conn, agency_id, module_id):
    return owner_conn.execute(
        "SELECT status, retail_price_cents FROM agency_module_subscriptions WHERE agency_id = %s AND module_id = %s",
        (agency_id, module_id),
    ).fetchall()


def test_owner_subscribes_agency_to_free_module(api, tenant, make_module, owner_conn):
    module = make_module()
    reply = api.post(SUBSCRIBE, user=tenant.owner, body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    assert reply.status == 201
    assert reply.body["success"] is True
    assert reply.data["status"] == "active"
    assert reply.data["agencyId"] == str(tenant.agency_id)
    assert reply.data["moduleId"] == str(module)
    assert _subscription_rows(owner_conn, tenant.agency_id, module) == [{"status": "active", "retail_price_cents": 0}]


def test_admin_may_not_subscribe_billing_is_the_owners(api, tenant, make_module, owner_conn):
    module = make_module()
    reply = api.post(SUBSCRIBE, user=tenant.admin, body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    assert (reply.status, reply.body["code"]) == (403, "forbidden")
    assert _subscription_rows(owner_conn, tenant.agency_id, module) == []


def test_subscribing_again_is_200_and_changes_nothing(api, tenant, make_module, owner_conn):
    module = make_module()
    body = {"agencyId": str(tenant.agency_id), "moduleId": str(module)}
    first = api.post(SUBSCRIBE, user=tenant.owner, body=body)
    second = api.post(SUBSCRIBE, user=tenant.owner, body=body)
    assert (first.status, second.status) == (201, 200)
    assert second.data["id"] == first.data["id"]
    assert second.data["activatedAt"] == first.data["activatedAt"]
    assert len(_subscription_rows(owner_conn, tenant.agency_id, module)) == 1


def test_canceled_subscription_is_reactivated(api, tenant, make_module, owner_conn):
    module = make_module()
    owner_conn.execute(
        "INSERT INTO agency_module_subscriptions (agency_id, module_id, status) VALUES (%s, %s, 'canceled')",
        (tenant.agency_id, module),
    )
    reply = api.post(SUBSCRIBE, user=tenant.owner, body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    assert reply.status == 201
    assert reply.data["status"] == "active"


def test_paid_module_is_402_payment_required(api, tenant, make_module, owner_conn):
    module = make_module(pricing_type="monthly", wholesale_price_cents=1500)
    reply = api.post(SUBSCRIBE, user=tenant.owner, body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    assert reply.status == 402
    assert reply.body["code"] == "payment_required"
    assert _subscription_rows(owner_conn, tenant.agency_id, module) == []


def test_member_cannot_subscribe(api, tenant, make_module, owner_conn):
    module = make_module()
    reply = api.post(SUBSCRIBE, user=tenant.member, body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    assert reply.status == 403
    assert reply.body["code"] == "forbidden"
    assert _subscription_rows(owner_conn, tenant.agency_id, module) == []


def test_another_agency_is_404(api, tenant, other_tenant, make_module, owner_conn):
    module = make_module()
    reply = api.post(SUBSCRIBE, user=tenant.owner,
                     body={"agencyId": str(other_tenant.agency_id), "moduleId": str(module)})
    assert reply.status == 404
    assert _subscription_rows(owner_conn, other_tenant.agency_id, module) == []


@pytest.mark.parametrize("status", ["draft", "deprecated"])
def test_unpublished_module_is_404(api, tenant, make_module, status):
    reply = api.post(SUBSCRIBE, user=tenant.owner,
                     body={"agencyId": str(tenant.agency_id), "moduleId": str(make_module(status=status))})
    assert reply.status == 404
    assert reply.body["code"] == "module_not_found"


def test_unknown_module_is_404(api, tenant):
    reply = api.post(SUBSCRIBE, user=tenant.owner,
                     body={"agencyId": str(tenant.agency_id), "moduleId": str(uuid.uuid4())})
    assert reply.status == 404


def test_unknown_agency_is_404(api, tenant, make_module):
    reply = api.post(SUBSCRIBE, user=tenant.owner, body={"agencyId": str(uuid.uuid4()), "moduleId": str(make_module())})
    assert reply.status == 404
    assert reply.body["code"] == "agency_not_found"


def test_super_admin_may_subscribe_any_agency(api, tenant, make_module, make_user):
    admin = make_user(super_admin=True)
    reply = api.post(SUBSCRIBE, user=admin, body={"agencyId": str(tenant.agency_id), "moduleId": str(make_module())})
    assert reply.status == 201


@pytest.mark.parametrize(
    "raw",
    ['{"agencyId": ', "not json", "[]", '"text"', "{}", '{"agencyId": "x", "moduleId": "y"}',
     '{"agencyId": null, "moduleId": null}', '{"agencyId": 5, "moduleId": true}'],
)
def test_malformed_or_invalid_body_is_400(api, tenant, raw):
    reply = api.post(SUBSCRIBE, user=tenant.owner, raw_body=raw, headers={"content-type": "application/json"})
    assert reply.status == 400
    assert reply.body["success"] is False
    assert reply.body["code"] in {"invalid_json", "validation_error"}


def test_missing_module_id_names_the_field(api, tenant):
    reply = api.post(SUBSCRIBE, user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 400
    assert any(d["field"] == "moduleId" for d in reply.body["details"])


def test_request_without_claims_is_401(api, tenant, make_module):
    reply = api.post(SUBSCRIBE, body={"agencyId": str(tenant.agency_id), "moduleId": str(make_module())})
    assert reply.status == 401
    assert reply.body["code"] == "unauthorized"


def test_user_id_in_body_is_ignored(api, tenant, other_tenant, make_module):
    # the caller is the token's sub: naming another user in the body grants nothing
    reply = api.post(SUBSCRIBE, user=tenant.member, body={
        "agencyId": str(tenant.agency_id), "moduleId": str(make_module()), "userId": str(tenant.owner)})
    assert reply.status == 403


def test_oversized_body_is_413(api, tenant):
    reply = api.post(SUBSCRIBE, user=tenant.owner, raw_body="x" * (1_048_576 + 1),
                     headers={"content-type": "application/json"})
    assert reply.status == 413
    assert reply.body["code"] == "payload_too_large"


def test_marketplace_lists_published_modules_only(api, tenant, make_module):
    published = make_module(pricing_type="yearly", wholesale_price_cents=9900)
    draft = make_module(status="draft")
    reply = api.get("/api/modules", user=tenant.member)
    assert reply.status == 200
    by_id = {m["id"]: m for m in reply.data}
    assert str(published) in by_id and str(draft) not in by_id
    assert by_id[str(published)]["pricingType"] == "yearly"
    assert by_id[str(published)]["wholesalePriceCents"] == 9900


def test_marketplace_needs_a_signed_in_user(api):
    assert api.get("/api/modules").status == 401


def test_health_reports_database_reachable(api):
    reply = api.get("/api/health")
    assert reply.status == 200
    assert reply.data == {"status": "ok", "database": "ok"}


def test_unknown_route_is_404_envelope(api, tenant):
    reply = api.get("/api/nothing-here", user=tenant.owner)
    assert reply.status == 404
    assert reply.body["success"] is False


def test_new_free_subscription_emits_created_and_activated_events(api, tenant, make_module, owner_conn, queues):
    listen(owner_conn, tenant.site_id, "marketplace.subscription.created", "marketplace.subscription.activated")
    module = make_module()
    reply = api.post(SUBSCRIBE, user=tenant.owner, body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    rows = owner_conn.execute(
        "SELECT id, event_type, agency_id, site_id, payload FROM automation_events_log "
        "WHERE agency_id = %s ORDER BY event_type", (tenant.agency_id,)).fetchall()
    assert [r["event_type"] for r in rows] == ["marketplace.subscription.activated", "marketplace.subscription.created"]
    assert all(r["site_id"] is None and r["payload"]["subscription_id"] == reply.data["id"] for r in rows)
    assert {m["eventId"] for m in queues.take("events")} == {str(r["id"]) for r in rows}


def test_subscribe_events_carry_the_payload_of_every_subscription_event(api, tenant, make_module, owner_conn):
    from dramac_common.marketplace import catalog

    module = make_module()
    slug = owner_conn.execute("SELECT slug FROM modules_v2 WHERE id = %s", (module,)).fetchone()["slug"]
    reply = api.post(SUBSCRIBE, user=tenant.owner, body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    row = owner_conn.execute("SELECT * FROM agency_module_subscriptions WHERE id = %s", (reply.data["id"],)).fetchone()
    payloads = [r["payload"] for r in owner_conn.execute(
        "SELECT payload FROM automation_events_log WHERE agency_id = %s", (tenant.agency_id,))]
    # written by the database (private.subscription_event_payload), the same as the webhook's and cancel's
    expected = json.loads(json.dumps(catalog.subscription_event_payload(row, slug, None), default=str))
    assert payloads == [expected, expected]
    audit = owner_conn.execute("SELECT action, actor_user_id, target_id, details FROM audit_log WHERE agency_id = %s",
                               (tenant.agency_id,)).fetchall()
    assert audit == [{"action": "subscription.subscribed", "actor_user_id": tenant.owner, "target_id": reply.data["id"],
                      "details": {"moduleId": str(module), "moduleSlug": slug}}]


def test_repeated_subscribe_emits_nothing_more(api, tenant, make_module, owner_conn):
    body = {"agencyId": str(tenant.agency_id), "moduleId": str(make_module())}
    api.post(SUBSCRIBE, user=tenant.owner, body=body)
    api.post(SUBSCRIBE, user=tenant.owner, body=body)
    count = owner_conn.execute("SELECT count(*) AS n FROM automation_events_log WHERE agency_id = %s",
                               (tenant.agency_id,)).fetchone()["n"]
    assert count == 2
