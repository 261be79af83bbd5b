"""POST /api/modules/{moduleId}/purchase, GET and PATCH /api/agencies/{agencyId}/subscriptions
through the real purchase handler on real PostgreSQL (sandbox provider, emulated events queue)."""


import json
import uuid

import pytest
from support.automation import listen


@pytest.fixture(autouse=True)
def queues(sandbox_aws):
    return sandbox_aws


@pytest.fixture
def api(function_client):
    """The real purchase handler."""
    return function_client("purchase")


@pytest.fixture
def paid(make_module):
    def make(price=1999, pricing_type="monthly", **kw):
        return make_module(pricing_type=pricing_type, wholesale_price_cents=price, **kw)

    return make


def purchase_path(module_id):
    return f"/api/modules/{module_id}/purchase"


def subscription_rows(owner_conn, agency_id, module_id):
    return owner_conn.execute(
        """SELECT id, status, billing_cycle, wholesale_price_cents, markup_type, markup_value, retail_price_cents
           FROM agency_module_subscriptions WHERE agency_id = %s AND module_id = %s""",
        (agency_id, module_id),
    ).fetchall()


def agency_events(owner_conn, agency_id):
    return owner_conn.execute(
        "SELECT id, event_type, payload, site_id, dispatched_at FROM automation_events_log WHERE agency_id = %s ORDER BY created_at",
        (agency_id,),
    ).fetchall()


def test_owner_purchases_paid_module_and_gets_a_pending_subscription_with_checkout(api, tenant, paid, owner_conn):
    module = paid(price=1999)
    reply = api.post(purchase_path(module), user=tenant.owner,
                     body={"agencyId": str(tenant.agency_id), "markupType": "percentage", "markupValue": 25})
    assert reply.status == 201
    assert reply.data["status"] == "pending"
    checkout = reply.data["checkout"]
    assert checkout["provider"] == "sandbox"
    assert checkout["amountCents"] == 1999
    assert checkout["url"] == f"/api/sandbox/checkouts/{checkout['id']}/complete"
    [row] = subscription_rows(owner_conn, tenant.agency_id, module)
    assert str(row["id"]) == reply.data["subscriptionId"]
    assert (row["status"], row["billing_cycle"], row["wholesale_price_cents"]) == ("pending", "monthly", 1999)
    # 1999 × 25 / 100 = 499.75 → 500
    assert (row["markup_type"], row["markup_value"], row["retail_price_cents"]) == ("percentage", 25, 2499)
    assert reply.data["subscription"]["retailPriceCents"] == 2499


def test_purchase_snapshots_the_wholesale_price_at_purchase_time(api, tenant, paid, owner_conn):
    module = paid(price=1000)
    api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    owner_conn.execute("UPDATE modules_v2 SET wholesale_price_cents = 5000 WHERE id = %s", (module,))
    [row] = subscription_rows(owner_conn, tenant.agency_id, module)
    assert row["wholesale_price_cents"] == 1000
    assert row["retail_price_cents"] == 1000


def test_purchase_emits_subscription_created_for_the_agency(api, tenant, paid, owner_conn, queues):
    listen(owner_conn, tenant.site_id, "marketplace.subscription.created")
    module = paid()
    reply = api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    [event] = agency_events(owner_conn, tenant.agency_id)
    assert event["event_type"] == "marketplace.subscription.created"
    assert event["site_id"] is None
    assert event["payload"]["subscription_id"] == reply.data["subscriptionId"]
    assert event["payload"]["status"] == "pending"
    from dramac_common.core import queues as q

    messages = q.sqs_client().receive_message(QueueUrl=queues.urls["events"], MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["eventId"] for m in messages] == [str(event["id"])]


def test_a_purchase_event_no_workflow_listens_to_is_recorded_but_not_sent(api, tenant, paid, owner_conn, queues):
    reply = api.post(purchase_path(paid()), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 201
    [event] = agency_events(owner_conn, tenant.agency_id)
    assert event["dispatched_at"] is not None  # marked received at insert
    assert queues.take("events") == []


@pytest.mark.parametrize("role, status", [("owner", 201), ("admin", 403)])
def test_owners_purchase_admins_may_not(api, tenant, paid, role, status):
    reply = api.post(purchase_path(paid()), user=getattr(tenant, role), body={"agencyId": str(tenant.agency_id)})
    assert reply.status == status


def test_super_admin_may_purchase_for_any_agency(api, tenant, paid, make_user):
    reply = api.post(purchase_path(paid()), user=make_user(super_admin=True), body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 201


def test_member_cannot_purchase(api, tenant, paid, owner_conn):
    module = paid()
    reply = api.post(purchase_path(module), user=tenant.member, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 403
    assert reply.body["code"] == "forbidden"
    assert subscription_rows(owner_conn, tenant.agency_id, module) == []


def test_purchase_for_another_agency_is_404(api, tenant, other_tenant, paid, owner_conn):
    module = paid()
    reply = api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(other_tenant.agency_id)})
    assert reply.status == 404
    assert reply.body["code"] == "agency_not_found"
    assert subscription_rows(owner_conn, other_tenant.agency_id, module) == []


def test_free_module_is_400_use_subscribe(api, tenant, make_module, owner_conn):
    module = make_module()
    reply = api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 400
    assert reply.body["code"] == "use_subscribe"
    assert subscription_rows(owner_conn, tenant.agency_id, module) == []


@pytest.mark.parametrize("status", ["draft", "deprecated"])
def test_unpublished_or_unknown_module_is_404(api, tenant, paid, status):
    for module in (paid(status=status), uuid.uuid4()):
        reply = api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
        assert reply.status == 404
        assert reply.body["code"] == "module_not_found"


def test_active_subscription_is_409_already_active(api, tenant, paid, owner_conn):
    module = paid()
    owner_conn.execute("""INSERT INTO agency_module_subscriptions (agency_id, module_id, status, billing_cycle)
                          VALUES (%s, %s, 'active', 'monthly')""", (tenant.agency_id, module))
    reply = api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 409
    assert reply.body["code"] == "already_active"


def test_past_due_subscription_is_409(api, tenant, paid, owner_conn):
    module = paid()
    owner_conn.execute("""INSERT INTO agency_module_subscriptions (agency_id, module_id, status, billing_cycle)
                          VALUES (%s, %s, 'past_due', 'monthly')""", (tenant.agency_id, module))
    reply = api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 409
    assert reply.body["code"] == "subscription_past_due"


def test_purchasing_again_while_pending_reuses_the_subscription_and_replaces_the_checkout(api, tenant, paid,
                                                                                          owner_conn):
    module = paid()
    first = api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    second = api.post(purchase_path(module), user=tenant.owner,
                      body={"agencyId": str(tenant.agency_id), "markupType": "fixed", "markupValue": 500})
    assert (first.status, second.status) == (201, 201)
    assert second.data["subscriptionId"] == first.data["subscriptionId"]
    assert second.data["checkout"]["id"] != first.data["checkout"]["id"]
    [row] = subscription_rows(owner_conn, tenant.agency_id, module)
    assert row["retail_price_cents"] == 1999 + 500
    statuses = {str(r["id"]): r["status"] for r in owner_conn.execute(
        "SELECT id, status FROM payment_checkouts WHERE subscription_id = %s", (row["id"],))}
    assert statuses == {first.data["checkout"]["id"]: "superseded", second.data["checkout"]["id"]: "open"}
    assert [e["event_type"] for e in agency_events(owner_conn, tenant.agency_id)] == [
        "marketplace.subscription.created"]


def test_canceled_subscription_can_be_purchased_again(api, tenant, paid, owner_conn):
    module = paid()
    owner_conn.execute("""INSERT INTO agency_module_subscriptions (agency_id, module_id, status, billing_cycle,
                          canceled_at) VALUES (%s, %s, 'canceled', 'monthly', now())""", (tenant.agency_id, module))
    reply = api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 201
    assert reply.data["subscription"]["canceledAt"] is None
    assert [r["status"] for r in subscription_rows(owner_conn, tenant.agency_id, module)] == ["pending"]


def test_billing_cycle_other_than_the_modules_is_400(api, tenant, paid):
    reply = api.post(purchase_path(paid(pricing_type="monthly")), user=tenant.owner,
                     body={"agencyId": str(tenant.agency_id), "billingCycle": "yearly"})
    assert reply.status == 400
    assert reply.body["code"] == "unsupported_billing_cycle"


def test_billing_cycle_matching_the_module_is_accepted(api, tenant, paid):
    reply = api.post(purchase_path(paid(pricing_type="yearly")), user=tenant.owner,
                     body={"agencyId": str(tenant.agency_id), "billingCycle": "yearly"})
    assert reply.status == 201
    assert reply.data["subscription"]["billingCycle"] == "yearly"


@pytest.mark.parametrize(("markup_type", "value", "code"), [
    ("percentage", 1001, "invalid_markup"),
    ("percentage", -1, "invalid_markup"),
    ("fixed", -1, "invalid_markup"),
    ("percentage", None, "invalid_markup"),
    ("none", 5, "invalid_markup"),
    ("percentage", 12.5, "validation_error"),
    ("fixed", "100", "validation_error"),
    ("fixed", True, "validation_error"),
    ("bogus", 1, "validation_error"),
    ("fixed", 2_147_483_647, "invalid_markup"),
])
def test_invalid_markup_is_400_and_creates_nothing(api, tenant, paid, owner_conn, markup_type, value, code):
    module = paid()
    body = {"agencyId": str(tenant.agency_id), "markupType": markup_type}
    if value is not None:
        body["markupValue"] = value
    reply = api.post(purchase_path(module), user=tenant.owner, body=body)
    assert reply.status == 400
    assert reply.body["code"] == code
    assert reply.body["details"]
    assert subscription_rows(owner_conn, tenant.agency_id, module) == []


@pytest.mark.parametrize(("markup_type", "value", "retail"), [
    ("percentage", 0, 1999), ("percentage", 1000, 1999 * 11), ("fixed", 0, 1999), ("none", 0, 1999),
])
def test_markup_bounds_are_accepted(api, tenant, paid, markup_type, value, retail):
    reply = api.post(purchase_path(paid()), user=tenant.owner,
                     body={"agencyId": str(tenant.agency_id), "markupType": markup_type, "markupValue": value})
    assert reply.status == 201
    assert reply.data["subscription"]["retailPriceCents"] == retail


@pytest.mark.parametrize("raw", ['{"agencyId": ', "[]", "{}", '{"agencyId": "x"}'])
def test_malformed_purchase_body_is_400(api, tenant, paid, raw):
    reply = api.post(purchase_path(paid()), user=tenant.owner, raw_body=raw, headers={"content-type": "application/json"})
    assert reply.status == 400
    assert reply.body["code"] in {"invalid_json", "validation_error"}


def test_purchase_without_token_is_401(api, tenant, paid):
    assert api.post(purchase_path(paid()), body={"agencyId": str(tenant.agency_id)}).status == 401


# Idempotency-Key ---------------------------------------------------------------------------------

def test_same_idempotency_key_returns_the_first_answer_and_creates_nothing(api, tenant, paid, owner_conn):
    module = paid()
    body = {"agencyId": str(tenant.agency_id), "markupType": "percentage", "markupValue": 10}
    headers = {"idempotency-key": "purchase-123"}
    first = api.post(purchase_path(module), user=tenant.owner, body=body, headers=headers)
    second = api.post(purchase_path(module), user=tenant.owner, body=body, headers=headers)
    assert (first.status, second.status) == (201, 201)
    assert second.body == first.body
    assert second.headers.get("idempotent-replayed") == "true"
    [row] = subscription_rows(owner_conn, tenant.agency_id, module)
    assert owner_conn.execute("SELECT count(*) AS n FROM payment_checkouts WHERE subscription_id = %s",
                              (row["id"],)).fetchone()["n"] == 1
    assert len(agency_events(owner_conn, tenant.agency_id)) == 1


def test_same_idempotency_key_with_another_body_is_422(api, tenant, paid):
    module = paid()
    headers = {"idempotency-key": "k-1"}
    api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id)}, headers=headers)
    reply = api.post(purchase_path(module), user=tenant.owner, headers=headers,
                     body={"agencyId": str(tenant.agency_id), "markupType": "fixed", "markupValue": 1})
    assert reply.status == 422
    assert reply.body["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_caller(api, tenant, paid, owner_conn):
    owner_conn.execute("UPDATE agency_members SET role = 'owner' WHERE agency_id = %s AND user_id = %s",
                       (tenant.agency_id, tenant.admin))  # a second owner
    module = paid()
    headers = {"idempotency-key": "shared-key"}
    body = {"agencyId": str(tenant.agency_id)}
    owner = api.post(purchase_path(module), user=tenant.owner, body=body, headers=headers)
    admin = api.post(purchase_path(module), user=tenant.admin, body=body, headers=headers)
    assert (owner.status, admin.status) == (201, 201)
    assert admin.headers.get("idempotent-replayed") is None
    assert admin.data["checkout"]["id"] != owner.data["checkout"]["id"]


def test_failed_request_is_not_stored_under_its_key(api, tenant, paid, owner_conn):
    module = paid()
    headers = {"idempotency-key": "retry-after-fix"}
    body = {"agencyId": str(tenant.agency_id)}
    denied = api.post(purchase_path(module), user=tenant.member, body=body, headers=headers)
    owner_conn.execute("UPDATE agency_members SET role = 'owner' WHERE agency_id = %s AND user_id = %s",
                       (tenant.agency_id, tenant.member))
    retried = api.post(purchase_path(module), user=tenant.member, body=body, headers=headers)
    assert (denied.status, retried.status) == (403, 201)


def test_key_of_a_request_still_running_past_the_wait_is_409(api, tenant, paid, owner_conn, env, request):
    from dramac_common.core.settings import reset_settings

    env.set("DRAMAC_IDEMPOTENCY_WAIT_MS", "300")  # a repeat waits this long for the first
    reset_settings()
    request.addfinalizer(reset_settings)
    module = paid()
    body = {"agencyId": str(tenant.agency_id)}
    api.post(purchase_path(module), user=tenant.owner, body=body, headers={"idempotency-key": "busy"})
    # as if the first request were still running: its record is in progress, not completed
    owner_conn.execute("""UPDATE idempotency_records SET status = 'INPROGRESS', response_data = NULL,
                          in_progress_expiry_timestamp = (extract(epoch FROM now()) * 1000 + 60000)::bigint""")
    reply = api.post(purchase_path(module), user=tenant.owner, body=body, headers={"idempotency-key": "busy"})
    assert reply.status == 409
    assert reply.body["code"] == "idempotency_in_progress"


def test_key_of_a_request_that_timed_out_runs_again(api, tenant, paid, owner_conn):
    module = paid()
    body = {"agencyId": str(tenant.agency_id)}
    first = api.post(purchase_path(module), user=tenant.owner, body=body, headers={"idempotency-key": "crashed"})
    owner_conn.execute("""UPDATE idempotency_records SET status = 'INPROGRESS', response_data = NULL,
                          in_progress_expiry_timestamp = 1""")
    again = api.post(purchase_path(module), user=tenant.owner, body=body, headers={"idempotency-key": "crashed"})
    assert again.status == 201
    assert again.headers.get("idempotent-replayed") is None
    assert again.data["subscriptionId"] == first.data["subscriptionId"]


def test_invalid_idempotency_key_is_400(api, tenant, paid):
    reply = api.post(purchase_path(paid()), user=tenant.owner, body={"agencyId": str(tenant.agency_id)},
                     headers={"idempotency-key": "x" * 300})
    assert reply.status == 400
    assert reply.body["code"] == "invalid_idempotency_key"


# Listing and markup management -------------------------------------------------------------------

def _purchase(api, tenant, module, **markup):
    return api.post(purchase_path(module), user=tenant.owner, body={"agencyId": str(tenant.agency_id), **markup})


def test_member_lists_subscriptions_with_wholesale_markup_and_retail(api, tenant, paid):
    module = paid(price=1000)
    _purchase(api, tenant, module, markupType="fixed", markupValue=250)
    reply = api.get(f"/api/agencies/{tenant.agency_id}/subscriptions", user=tenant.member)
    assert reply.status == 200
    [sub] = reply.data
    assert sub["moduleId"] == str(module)
    assert (sub["wholesalePriceCents"], sub["markupType"], sub["markupValue"], sub["retailPriceCents"]) == (
        1000, "fixed", 250, 1250)
    assert sub["moduleSlug"]


def test_another_agency_cannot_list_subscriptions(api, tenant, other_tenant, paid):
    _purchase(api, tenant, paid())
    reply = api.get(f"/api/agencies/{tenant.agency_id}/subscriptions", user=other_tenant.owner)
    assert reply.status == 404


def test_owner_changes_markup_and_retail_is_recomputed(api, tenant, paid, owner_conn):
    module = paid(price=1001)
    sub_id = _purchase(api, tenant, module).data["subscriptionId"]
    reply = api.patch(f"/api/agencies/{tenant.agency_id}/subscriptions/{sub_id}", user=tenant.owner,
                      body={"markupType": "percentage", "markupValue": 50})
    assert reply.status == 200
    # 1001 × 50 / 100 = 500.5 → 501 (half up)
    assert reply.data["retailPriceCents"] == 1502
    assert subscription_rows(owner_conn, tenant.agency_id, module)[0]["retail_price_cents"] == 1502


def test_member_cannot_change_markup(api, tenant, paid, owner_conn):
    module = paid()
    sub_id = _purchase(api, tenant, module).data["subscriptionId"]
    reply = api.patch(f"/api/agencies/{tenant.agency_id}/subscriptions/{sub_id}", user=tenant.member,
                      body={"markupType": "fixed", "markupValue": 1})
    assert reply.status == 403
    assert subscription_rows(owner_conn, tenant.agency_id, module)[0]["markup_type"] == "none"


def test_changing_markup_of_another_agencys_subscription_is_404(api, tenant, other_tenant, paid):
    sub_id = _purchase(api, tenant, paid()).data["subscriptionId"]
    as_other = api.patch(f"/api/agencies/{other_tenant.agency_id}/subscriptions/{sub_id}", user=other_tenant.owner,
                         body={"markupType": "fixed", "markupValue": 1})
    wrong_agency = api.patch(f"/api/agencies/{tenant.agency_id}/subscriptions/{uuid.uuid4()}", user=tenant.owner,
                             body={"markupType": "fixed", "markupValue": 1})
    assert (as_other.status, wrong_agency.status) == (404, 404)
    assert wrong_agency.body["code"] == "subscription_not_found"


def test_invalid_markup_change_is_400(api, tenant, paid):
    sub_id = _purchase(api, tenant, paid()).data["subscriptionId"]
    reply = api.patch(f"/api/agencies/{tenant.agency_id}/subscriptions/{sub_id}", user=tenant.owner,
                      body={"markupType": "percentage", "markupValue": 5000})
    assert reply.status == 400
    assert reply.body["code"] == "invalid_markup"
