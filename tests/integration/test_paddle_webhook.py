"""POST /api/webhooks/paddle: Paddle-Signature verification, the payment event store, status changes
and their ordering, through the real purchase handler on real PostgreSQL."""

# ruff: noqa: F811 - the fixtures imported from purchase_support reappear as test parameters

import time
import uuid

import pytest
from purchase_support import (  # noqa: F401 - fixtures
    SANDBOX_SECRET,
    WEBHOOK,
    api,
    emulated_queues,
    minutes_ago,
    paddle_event,
    sandbox_queues,
    signed,
)


@pytest.fixture(autouse=True)
def queues(sandbox_queues):
    return sandbox_queues


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
    reply = deliver(api, paddle_event("transaction.completed", subscription_id=pending))
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
    raw, headers = signed(paddle_event("transaction.completed", subscription_id=pending))
    reply = api.post(WEBHOOK, raw_body=raw, headers=headers, user=tenant.member)
    assert reply.status == 200


def test_subscription_canceled_cancels(api, pending, tenant, owner_conn):
    deliver(api, paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, paddle_event("subscription.canceled", subscription_id=pending))
    assert reply.data["outcome"] == "applied"
    assert status_of(owner_conn, pending) == "canceled"
    assert agency_event_types(owner_conn, tenant.agency_id)[-1] == "marketplace.subscription.canceled"


def test_subscription_past_due_marks_past_due(api, pending, owner_conn):
    deliver(api, paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, paddle_event("subscription.past_due", subscription_id=pending))
    assert reply.data["outcome"] == "applied"
    assert status_of(owner_conn, pending) == "past_due"


def test_subscription_events_find_the_subscription_by_paddles_subscription_id(api, pending, owner_conn):
    deliver(api, paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(5),
                              data={"subscription_id": "sub_01hv8x"}))
    event = paddle_event("subscription.canceled", data={"id": "sub_01hv8x"})
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
    event = paddle_event("transaction.completed", subscription_id=uuid.uuid4())
    reply = deliver(api, event)
    assert reply.status == 200
    assert reply.data["outcome"] == "unmatched"
    assert stored_events(owner_conn, event["event_id"]) == [{"outcome": "unmatched"}]


def test_event_naming_another_agency_does_not_match(api, pending, other_tenant, owner_conn):
    reply = deliver(api, paddle_event("transaction.completed", subscription_id=pending,
                                      agency_id=other_tenant.agency_id))
    assert reply.data["outcome"] == "unmatched"
    assert status_of(owner_conn, pending) == "pending"


# Duplicates and ordering ---------------------------------------------------------------------------

def test_duplicate_event_id_is_a_no_op(api, pending, tenant, owner_conn):
    event = paddle_event("transaction.completed", subscription_id=pending)
    first = deliver(api, event)
    second = deliver(api, event)
    assert (first.status, second.status) == (200, 200)
    assert second.data["outcome"] == "duplicate"
    assert len(stored_events(owner_conn, event["event_id"])) == 1
    assert agency_event_types(owner_conn, tenant.agency_id).count("marketplace.subscription.activated") == 1


def test_duplicate_of_a_cancel_after_reactivation_changes_nothing(api, pending, owner_conn):
    cancel = paddle_event("subscription.canceled", subscription_id=pending, occurred_at=minutes_ago(10))
    deliver(api, cancel)
    deliver(api, paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(5)))
    assert deliver(api, cancel).data["outcome"] == "duplicate"
    assert status_of(owner_conn, pending) == "active"


def test_older_completed_arriving_after_cancel_does_not_reactivate(api, pending, tenant, owner_conn):
    deliver(api, paddle_event("subscription.canceled", subscription_id=pending, occurred_at=minutes_ago(1)))
    late = paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(10))
    reply = deliver(api, late)
    assert reply.status == 200
    assert reply.data["outcome"] == "stale"
    assert status_of(owner_conn, pending) == "canceled"
    assert stored_events(owner_conn, late["event_id"]) == [{"outcome": "stale"}]
    assert "marketplace.subscription.activated" not in agency_event_types(owner_conn, tenant.agency_id)


def test_older_past_due_arriving_after_recovery_does_not_move_back(api, pending, owner_conn):
    deliver(api, paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(1)))
    reply = deliver(api, paddle_event("subscription.past_due", subscription_id=pending, occurred_at=minutes_ago(3)))
    assert reply.data["outcome"] == "stale"
    assert status_of(owner_conn, pending) == "active"


def test_newer_completed_after_past_due_reactivates(api, pending, tenant, owner_conn):
    deliver(api, paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(10)))
    deliver(api, paddle_event("subscription.past_due", subscription_id=pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(1)))
    assert reply.data["outcome"] == "applied"
    assert status_of(owner_conn, pending) == "active"
    assert agency_event_types(owner_conn, tenant.agency_id).count("marketplace.subscription.activated") == 2


def test_repeat_completed_for_an_active_subscription_is_unchanged(api, pending, owner_conn):
    deliver(api, paddle_event("transaction.completed", subscription_id=pending, occurred_at=minutes_ago(5)))
    reply = deliver(api, paddle_event("transaction.completed", subscription_id=pending))
    assert reply.data["outcome"] == "unchanged"
    assert status_of(owner_conn, pending) == "active"


# Signatures ------------------------------------------------------------------------------------

def test_wrong_secret_is_401_and_changes_nothing(api, pending, owner_conn):
    event = paddle_event("transaction.completed", subscription_id=pending)
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
    reply = deliver(api, paddle_event("transaction.completed", subscription_id=pending), ts=int(time.time()) + skew)
    assert reply.status == 401
    assert status_of(owner_conn, pending) == "pending"


def test_timestamp_inside_the_tolerance_is_accepted(api, pending):
    reply = deliver(api, paddle_event("transaction.completed", subscription_id=pending), ts=int(time.time()) - 250)
    assert reply.status == 200


def test_rotated_secrets_with_two_h1_are_accepted_when_one_matches(api, pending, owner_conn):
    from dramac_common.payments.signature import compute_h1

    event = paddle_event("transaction.completed", subscription_id=pending)
    ts = int(time.time())
    # during a rotation Paddle signs with the old and the new secret: one h1 each, ours second
    raw, headers = signed(event, ts=ts)
    old = compute_h1("the-old-secret", ts, raw)
    headers["paddle-signature"] = f"ts={ts};h1={old};h1={compute_h1(SANDBOX_SECRET, ts, raw)}"
    reply = api.post(WEBHOOK, raw_body=raw, headers=headers)
    assert reply.status == 200
    assert status_of(owner_conn, pending) == "active"


def test_two_h1_of_which_none_matches_is_401(api, pending, owner_conn):
    event = paddle_event("transaction.completed", subscription_id=pending)
    reply = deliver(api, event, secret="the-old-secret", extra_h1=["0" * 64])
    assert reply.status == 401
    assert status_of(owner_conn, pending) == "pending"


@pytest.mark.parametrize("header", [None, "", "garbage", "ts=abc;h1=00", "h1=00", "ts=1700000000", "ts=;h1="])
def test_missing_or_malformed_signature_is_401(api, pending, header):
    raw, _ = signed(paddle_event("transaction.completed", subscription_id=pending))
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["paddle-signature"] = header
    reply = api.post(WEBHOOK, raw_body=raw, headers=headers)
    assert reply.status == 401


def test_configured_secret_replaces_the_sandbox_default(api, pending, monkeypatch):
    from dramac_common.settings import reset_settings

    monkeypatch.setenv("PADDLE_WEBHOOK_SECRET", "pdl_ntfset_configured")
    reset_settings()
    try:
        event = paddle_event("transaction.completed", subscription_id=pending)
        assert deliver(api, event, secret=SANDBOX_SECRET).status == 401
        assert deliver(api, event, secret="pdl_ntfset_configured").status == 200
    finally:
        monkeypatch.delenv("PADDLE_WEBHOOK_SECRET")
        reset_settings()


def test_paddle_mode_without_a_secret_is_503_so_paddle_retries(api, pending, monkeypatch):
    from dramac_common.settings import reset_settings

    monkeypatch.setenv("PAYMENT_PROVIDER", "paddle")
    reset_settings()
    try:
        reply = deliver(api, paddle_event("transaction.completed", subscription_id=pending))
    finally:
        monkeypatch.setenv("PAYMENT_PROVIDER", "sandbox")
        reset_settings()
    assert reply.status == 503
    assert reply.body["code"] == "webhook_not_configured"


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"event_type": "transaction.completed"}',
                                 b'{"event_id": "evt_1", "event_type": "x.y", "occurred_at": "yesterday"}'])
def test_signed_but_malformed_event_is_400(api, raw):
    body, headers = signed(raw)
    reply = api.post(WEBHOOK, raw_body=body, headers=headers)
    assert reply.status == 400
