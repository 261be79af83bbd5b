"""POST /api/webhooks/paddle: Paddle-Signature verification, the payment event store, status changes
and their ordering, through the real purchase handler on real PostgreSQL."""


import time
import uuid

import pytest
from support.purchase import (
    SANDBOX_SECRET,
    WEBHOOK,
    completed_event,
    latest_checkout,
    minutes_ago,
    paddle_event,
    renewal_event,
    signed,
)


@pytest.fixture(autouse=True)
def queues(sandbox_aws):
    return sandbox_aws


@pytest.fixture
def api(function_client):
    """The real purchase handler."""
    return function_client("purchase")


@pytest.fixture
def pending(api, tenant, make_module):
    """A pending subscription of the tenant to a paid module, from a real purchase."""
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)
    reply = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 201
    return uuid.UUID(reply.data["subscriptionId"])


def deliver(api, event, **sign_kw):
    raw, headers = signed(event, **sign_kw)
    return api.post(WEBHOOK, raw_body=raw, headers=headers)


def status_of(owner_conn, subscription_id):
    return owner_conn.execute("SELECT status FROM agency_module_subscriptions WHERE id = %s",
                              (subscription_id,)).fetchone()["status"]


def stored_events(owner_conn, event_id):
    return owner_conn.execute("SELECT outcome FROM payment_events WHERE event_id = %s", (event_id,)).fetchall()


def agency_event_types(owner_conn, agency_id):
    return [r["event_type"] for r in owner_conn.execute(
        "SELECT event_type FROM automation_events_log WHERE agency_id = %s ORDER BY created_at", (agency_id,))]


def test_transaction_completed_activates_the_subscription(api, pending, tenant, owner_conn):
    reply = deliver(api, completed_event(owner_conn, pending))
    assert reply.status == 200
    assert reply.data["outcome"] == "applied"
    assert reply.data["status"] == "active"
    assert status_of(owner_conn, pending) == "active"
    row = owner_conn.execute("SELECT activated_at, provider_transaction_id FROM agency_module_subscriptions "
                             "WHERE id = %s", (pending,)).fetchone()
    assert row["activated_at"] is not None and row["provider_transaction_id"].startswith("txn_")
    assert agency_event_types(owner_conn, tenant.agency_id) == [
        "marketplace.subscription.created", "marketplace.subscription.activated"]


def test_the_webhook_needs_no_bearer_token_and_ignores_one(api, pending, tenant, owner_conn):
    raw, headers = signed(completed_event(owner_conn, pending))
    reply = api.post(WEBHOOK, raw_body=raw, headers=headers, user=tenant.member)
    assert reply.status == 200


def test_subscription_canceled_cancels(api, pending, tenant, owner_conn):
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, paddle_event("subscription.canceled", subscription_id=pending))
    assert reply.data["outcome"] == "applied"
    assert status_of(owner_conn, pending) == "canceled"
    assert agency_event_types(owner_conn, tenant.agency_id)[-1] == "marketplace.subscription.canceled"


def test_subscription_past_due_marks_past_due(api, pending, owner_conn):
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, paddle_event("subscription.past_due", subscription_id=pending))
    assert reply.data["outcome"] == "applied"
    assert status_of(owner_conn, pending) == "past_due"


def test_subscription_events_find_the_subscription_by_paddles_subscription_id(api, pending, owner_conn):
    paddle_id = f"sub_{uuid.uuid4().hex[:12]}"  # unique in the run's database: other tests make Paddle subscriptions
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(5), paddle_subscription_id=paddle_id))
    event = paddle_event("subscription.canceled", data={"id": paddle_id})
    reply = deliver(api, event)
    assert reply.data["outcome"] == "applied"
    assert status_of(owner_conn, pending) == "canceled"


def test_other_event_types_are_stored_and_ignored_with_200(api, pending, owner_conn):
    event = paddle_event("customer.updated", subscription_id=pending)
    reply = deliver(api, event)
    assert reply.status == 200
    assert reply.data["outcome"] == "ignored"
    assert stored_events(owner_conn, event["event_id"]) == [{"outcome": "ignored"}]
    assert status_of(owner_conn, pending) == "pending"


def test_unknown_subscription_is_stored_as_unmatched_with_200(api, owner_conn):
    event = paddle_event("transaction.completed", subscription_id=uuid.uuid4())  # no checkout either
    reply = deliver(api, event)
    assert reply.status == 200
    assert reply.data["outcome"] == "unmatched"
    assert stored_events(owner_conn, event["event_id"]) == [{"outcome": "unmatched"}]


def test_event_naming_another_agency_does_not_match(api, pending, other_tenant, owner_conn):
    reply = deliver(api, completed_event(owner_conn, pending,
                                      agency_id=other_tenant.agency_id))
    assert reply.data["outcome"] == "unmatched"
    assert status_of(owner_conn, pending) == "pending"


# Duplicates and ordering ---------------------------------------------------------------------------

def test_duplicate_event_id_is_a_no_op(api, pending, tenant, owner_conn):
    event = completed_event(owner_conn, pending)
    first = deliver(api, event)
    second = deliver(api, event)
    assert (first.status, second.status) == (200, 200)
    assert second.data["outcome"] == "duplicate"
    assert len(stored_events(owner_conn, event["event_id"])) == 1
    assert agency_event_types(owner_conn, tenant.agency_id).count("marketplace.subscription.activated") == 1


def test_duplicate_of_a_cancel_after_reactivation_changes_nothing(api, pending, owner_conn):
    cancel = paddle_event("subscription.canceled", subscription_id=pending, occurred_at=minutes_ago(10))
    deliver(api, cancel)
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(5)))
    assert deliver(api, cancel).data["outcome"] == "duplicate"
    assert status_of(owner_conn, pending) == "active"


def test_older_completed_arriving_after_cancel_does_not_reactivate(api, pending, tenant, owner_conn):
    deliver(api, paddle_event("subscription.canceled", subscription_id=pending, occurred_at=minutes_ago(1)))
    late = completed_event(owner_conn, pending, occurred_at=minutes_ago(10))
    reply = deliver(api, late)
    assert reply.status == 200
    assert reply.data["outcome"] == "stale"
    assert status_of(owner_conn, pending) == "canceled"
    assert stored_events(owner_conn, late["event_id"]) == [{"outcome": "stale"}]
    assert "marketplace.subscription.activated" not in agency_event_types(owner_conn, tenant.agency_id)


def test_older_past_due_arriving_after_recovery_does_not_move_back(api, pending, owner_conn):
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(1)))
    reply = deliver(api, paddle_event("subscription.past_due", subscription_id=pending, occurred_at=minutes_ago(3)))
    assert reply.data["outcome"] == "stale"
    assert status_of(owner_conn, pending) == "active"


def test_newer_completed_after_past_due_reactivates(api, pending, tenant, owner_conn):
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(10)))
    deliver(api, paddle_event("subscription.past_due", subscription_id=pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, renewal_event(owner_conn, pending, occurred_at=minutes_ago(1)))
    assert reply.data["outcome"] == "applied"
    assert status_of(owner_conn, pending) == "active"
    assert agency_event_types(owner_conn, tenant.agency_id).count("marketplace.subscription.activated") == 2


def test_renewal_of_an_active_subscription_is_unchanged(api, pending, owner_conn):
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, renewal_event(owner_conn, pending))
    assert reply.data["outcome"] == "unchanged"
    assert status_of(owner_conn, pending) == "active"


# Matching the checkout (transaction id, amount, currency) ---------------------------------------

def stored_event(owner_conn, event_id):
    return owner_conn.execute("SELECT outcome, subscription_id, checkout_id, detail FROM payment_events "
                              "WHERE event_id = %s", (event_id,)).fetchone()


def checkout_statuses(owner_conn, subscription_id):
    return [r["status"] for r in owner_conn.execute(
        "SELECT status FROM payment_checkouts WHERE subscription_id = %s ORDER BY created_at", (subscription_id,))]


def assert_mismatch(api, owner_conn, tenant, pending, event, reason):
    reply = deliver(api, event)
    assert reply.status == 200
    assert reply.data["outcome"] == "mismatch"
    assert status_of(owner_conn, pending) == "pending"
    stored = stored_event(owner_conn, event["event_id"])
    assert stored["outcome"] == "mismatch" and stored["subscription_id"] == pending
    assert reason in stored["detail"]
    assert checkout_statuses(owner_conn, pending) == ["open"]
    assert "marketplace.subscription.activated" not in agency_event_types(owner_conn, tenant.agency_id)


def test_completion_activates_and_completes_its_checkout(api, pending, owner_conn):
    event = completed_event(owner_conn, pending)
    assert deliver(api, event).data["outcome"] == "applied"
    assert checkout_statuses(owner_conn, pending) == ["completed"]
    assert stored_event(owner_conn, event["event_id"])["checkout_id"] == latest_checkout(owner_conn, pending)["id"]


def test_completion_of_a_transaction_no_checkout_opened_is_a_mismatch(api, pending, tenant, owner_conn):
    event = completed_event(owner_conn, pending, transaction_id="txn_01someoneelses")
    assert_mismatch(api, owner_conn, tenant, pending, event, "no checkout was opened for transaction txn_01someoneelses")


def test_completion_charging_less_than_the_checkout_is_a_mismatch(api, pending, tenant, owner_conn):
    assert_mismatch(api, owner_conn, tenant, pending, completed_event(owner_conn, pending, total=100), "expected 1999")


def test_completion_in_another_currency_is_a_mismatch(api, pending, tenant, owner_conn):
    assert_mismatch(api, owner_conn, tenant, pending, completed_event(owner_conn, pending, currency="EUR"),
                    "currency 'EUR'")


def test_completion_without_totals_is_a_mismatch(api, pending, tenant, owner_conn):
    event = completed_event(owner_conn, pending)
    del event["data"]["details"]
    assert_mismatch(api, owner_conn, tenant, pending, event, "no details.totals")


def test_completion_of_another_subscriptions_checkout_is_a_mismatch(api, pending, tenant, other_tenant, owner_conn,
                                                                    make_module):
    # the other agency's real, matching payment, with custom_data naming our subscription
    module = make_module(pricing_type="monthly", wholesale_price_cents=1999)
    theirs = api.post(f"/api/modules/{module}/purchase", user=other_tenant.owner,
                      body={"agencyId": str(other_tenant.agency_id)}).data
    event = completed_event(owner_conn, pending, checkout=latest_checkout(owner_conn, theirs["subscriptionId"]))
    event["data"]["custom_data"]["agency_id"] = str(tenant.agency_id)
    assert_mismatch(api, owner_conn, tenant, pending, event, "belongs to another subscription")


def test_completion_naming_another_checkout_of_ours_is_a_mismatch(api, pending, tenant, owner_conn):
    event = completed_event(owner_conn, pending)
    event["data"]["custom_data"]["checkout_id"] = str(uuid.uuid4())
    assert_mismatch(api, owner_conn, tenant, pending, event, "custom_data names checkout")


def test_completion_with_tax_added_on_top_matches(api, pending, owner_conn):
    reply = deliver(api, completed_event(owner_conn, pending, tax=380))  # total 2379 = 1999 + 380 tax
    assert reply.data["outcome"] == "applied"


def test_completion_with_tax_included_matches(api, pending, owner_conn):
    reply = deliver(api, completed_event(owner_conn, pending, total=1999, tax=333))
    assert reply.data["outcome"] == "applied"


def test_renewal_of_another_paddle_subscription_is_a_mismatch(api, pending, owner_conn):
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(10)))
    deliver(api, paddle_event("subscription.past_due", subscription_id=pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, renewal_event(owner_conn, pending, paddle_subscription_id="sub_01notours"))
    assert reply.data["outcome"] == "mismatch"
    assert status_of(owner_conn, pending) == "past_due"


def test_renewal_for_less_than_the_price_is_a_mismatch(api, pending, owner_conn):
    deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(10)))
    deliver(api, paddle_event("subscription.past_due", subscription_id=pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, renewal_event(owner_conn, pending, total=1))
    assert reply.data["outcome"] == "mismatch"
    assert status_of(owner_conn, pending) == "past_due"


# The checkout's state follows the outcome --------------------------------------------------------

def test_stale_completion_of_an_old_checkout_completes_nothing_while_the_new_purchase_is_pending(
        api, pending, tenant, owner_conn):
    first_checkout = latest_checkout(owner_conn, pending)
    module = owner_conn.execute("SELECT module_id FROM agency_module_subscriptions WHERE id = %s",
                                (pending,)).fetchone()["module_id"]
    deliver(api, paddle_event("subscription.canceled", subscription_id=pending, occurred_at=minutes_ago(2)))
    again = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert again.status == 201 and again.data["status"] == "pending"
    # the first checkout's payment, made before the cancellation, is delivered only now
    late = completed_event(owner_conn, pending, checkout=first_checkout, occurred_at=minutes_ago(5))
    reply = deliver(api, late)
    assert reply.data["outcome"] == "stale"
    assert status_of(owner_conn, pending) == "pending"
    assert checkout_statuses(owner_conn, pending) == ["superseded", "open"]
    assert stored_event(owner_conn, late["event_id"])["checkout_id"] == first_checkout["id"]
    completed_while_pending = owner_conn.execute(
        "SELECT count(*) AS n FROM payment_checkouts c JOIN agency_module_subscriptions s ON s.id = c.subscription_id "
        "WHERE c.status = 'completed' AND s.status = 'pending'").fetchone()["n"]
    assert completed_while_pending == 0


def test_stale_completion_after_a_cancel_leaves_the_checkout_open(api, pending, owner_conn):
    deliver(api, paddle_event("subscription.canceled", subscription_id=pending, occurred_at=minutes_ago(1)))
    assert deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(10))).data["outcome"] == "stale"
    assert checkout_statuses(owner_conn, pending) == ["open"]


def test_mismatched_completion_leaves_the_checkout_open_and_the_right_one_still_activates(api, pending, owner_conn):
    deliver(api, completed_event(owner_conn, pending, total=1, occurred_at=minutes_ago(3)))
    reply = deliver(api, completed_event(owner_conn, pending, occurred_at=minutes_ago(1)))
    assert reply.data["outcome"] == "applied"
    assert checkout_statuses(owner_conn, pending) == ["completed"]


def test_payment_of_a_superseded_checkout_activates_and_supersedes_the_open_one(api, pending, tenant, owner_conn):
    first_checkout = latest_checkout(owner_conn, pending)
    module = owner_conn.execute("SELECT module_id FROM agency_module_subscriptions WHERE id = %s",
                                (pending,)).fetchone()["module_id"]
    api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    reply = deliver(api, completed_event(owner_conn, pending, checkout=first_checkout))
    assert reply.data["outcome"] == "applied"
    assert checkout_statuses(owner_conn, pending) == ["completed", "superseded"]


# Signatures ------------------------------------------------------------------------------------

def test_wrong_secret_is_401_and_changes_nothing(api, pending, owner_conn):
    event = completed_event(owner_conn, pending)
    reply = deliver(api, event, secret="not-the-secret")
    assert reply.status == 401
    assert reply.body["code"] == "invalid_signature"
    assert status_of(owner_conn, pending) == "pending"
    assert stored_events(owner_conn, event["event_id"]) == []


def test_tampered_body_is_401(api, pending, owner_conn):
    event = paddle_event("customer.updated", subscription_id=pending)
    raw, headers = signed(event)
    tampered = raw.replace(b"customer.updated", b"transaction.completed")
    reply = api.post(WEBHOOK, raw_body=tampered, headers=headers)
    assert reply.status == 401
    assert status_of(owner_conn, pending) == "pending"


# A future timestamp comes closer to "now" while the request runs: +310, not +301, keeps it outside.
@pytest.mark.parametrize("skew", [-301, 310, -3600])
def test_timestamp_outside_the_300_second_tolerance_is_401(api, pending, owner_conn, skew):
    reply = deliver(api, completed_event(owner_conn, pending), ts=int(time.time()) + skew)
    assert reply.status == 401
    assert status_of(owner_conn, pending) == "pending"


def test_timestamp_inside_the_tolerance_is_accepted(api, pending, owner_conn):
    reply = deliver(api, completed_event(owner_conn, pending), ts=int(time.time()) - 250)
    assert reply.status == 200


def test_rotated_secrets_with_two_h1_are_accepted_when_one_matches(api, pending, owner_conn):
    from dramac_common.payments.signature import compute_h1

    event = completed_event(owner_conn, pending)
    ts = int(time.time())
    # during a rotation Paddle signs with the old and the new secret: one h1 each, ours second
    raw, headers = signed(event, ts=ts)
    old = compute_h1("the-old-secret", ts, raw)
    headers["paddle-signature"] = f"ts={ts};h1={old};h1={compute_h1(SANDBOX_SECRET, ts, raw)}"
    reply = api.post(WEBHOOK, raw_body=raw, headers=headers)
    assert reply.status == 200
    assert status_of(owner_conn, pending) == "active"


def test_two_h1_of_which_none_matches_is_401(api, pending, owner_conn):
    event = completed_event(owner_conn, pending)
    reply = deliver(api, event, secret="the-old-secret", extra_h1=["0" * 64])
    assert reply.status == 401
    assert status_of(owner_conn, pending) == "pending"


@pytest.mark.parametrize("header", [None, "", "garbage", "ts=abc;h1=00", "h1=00", "ts=1700000000", "ts=;h1="])
def test_missing_or_malformed_signature_is_401(api, pending, header, owner_conn):
    raw, _ = signed(completed_event(owner_conn, pending))
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["paddle-signature"] = header
    reply = api.post(WEBHOOK, raw_body=raw, headers=headers)
    assert reply.status == 401


def test_configured_secret_replaces_the_sandbox_default(api, pending, env, owner_conn):

    env.set("PADDLE_WEBHOOK_SECRET", "pdl_ntfset_configured")
    try:
        event = completed_event(owner_conn, pending)
        assert deliver(api, event, secret=SANDBOX_SECRET).status == 401
        assert deliver(api, event, secret="pdl_ntfset_configured").status == 200
    finally:
        env.unset("PADDLE_WEBHOOK_SECRET")


def test_paddle_mode_without_a_secret_is_503_so_paddle_retries(api, pending, env, owner_conn):

    env.set("PAYMENT_PROVIDER", "paddle")
    try:
        reply = deliver(api, completed_event(owner_conn, pending))
    finally:
        env.set("PAYMENT_PROVIDER", "sandbox")
    assert reply.status == 503
    assert reply.body["code"] == "webhook_not_configured"


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"event_type": "transaction.completed"}',
                                 b'{"event_id": "evt_1", "event_type": "x.y", "occurred_at": "yesterday"}'])
def test_signed_but_malformed_event_is_400(api, raw):
    body, headers = signed(raw)
    reply = api.post(WEBHOOK, raw_body=body, headers=headers)
    assert reply.status == 400
