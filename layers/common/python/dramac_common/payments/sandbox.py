"""The sandbox provider's completion: ``POST /api/sandbox/checkouts/{checkoutId}/complete``.

Completing a sandbox checkout builds the ``transaction.completed`` notification Paddle would send
(same shape, our ids in ``custom_data``), signs it with ``PADDLE_WEBHOOK_SECRET`` exactly as Paddle
does, and POSTs it to our own webhook route, so the whole purchase flow (signature, event store,
activation, automation events) runs locally. It is served only when ``PAYMENT_PROVIDER=sandbox``.

The webhook URL is ``SANDBOX_WEBHOOK_URL`` (settings), never anything the request carries: a Host
header is the caller's to choose, and a server that posts to it can be aimed at any port. Like a
Paddle transaction, a checkout completes once: its notification's ``event_id`` is derived from the
checkout, so completions racing each other are one event (the webhook answers ``duplicate`` to the
others) and every completion but the first answers 409 ``checkout_completed``, as a repeat does.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from ..core import db
from ..core.db import Unit
from ..core.errors import ApiError, Conflict, NotFound
from ..core.tenancy import Action, require_agency_access
from .config import PaymentConfig
from .signature import sign

WEBHOOK_PATH = "/api/webhooks/paddle"


class SandboxWebhookFailed(ApiError):
    status = 502
    code = "sandbox_webhook_failed"


class SandboxNotConfigured(ApiError):
    """The server's configuration lacks the webhook target: an operator's fix, not the caller's."""

    status = 503
    code = "sandbox_webhook_url_unset"


def load_checkout(unit: Unit, checkout_id: uuid.UUID) -> dict[str, Any]:
    """The caller's sandbox checkout, with what the notification needs; the agency's owners only."""
    row = unit.fetchone(
        """
        SELECT c.id, c.agency_id, c.subscription_id, c.module_id, c.provider, c.provider_checkout_id, c.status,
               c.amount_cents, c.currency, c.billing_cycle, m.slug AS module_slug
        FROM public.payment_checkouts c LEFT JOIN public.modules_v2 m ON m.id = c.module_id
        WHERE c.id = %s
        """,
        (checkout_id,),
    )
    if row is None or row["provider"] != "sandbox":
        raise NotFound("Checkout not found", code="checkout_not_found")
    require_agency_access(unit, row["agency_id"], action=Action.BILL)
    if row["status"] == "completed":
        raise Conflict("This checkout is already completed", code="checkout_completed")
    if row["status"] == "superseded":
        raise Conflict("A newer checkout replaced this one: complete the latest purchase's checkout",
                       code="checkout_superseded")
    return row


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def transaction_completed_event(checkout: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """A Paddle Billing ``transaction.completed`` notification for a sandbox checkout."""
    now = now or datetime.now(UTC)
    recurring = checkout["billing_cycle"] in ("monthly", "yearly")
    amount = str(checkout["amount_cents"])
    return {
        "event_id": completion_event_id(checkout["id"]),
        "event_type": "transaction.completed",
        "occurred_at": _rfc3339(now),
        "notification_id": f"ntf_sandbox_{uuid.uuid4().hex}",
        "data": {
            "id": checkout["provider_checkout_id"],
            "status": "completed",
            "origin": "web",
            "collection_mode": "automatic",
            "currency_code": checkout["currency"],
            "subscription_id": f"sub_sandbox_{checkout['subscription_id'].hex}" if recurring else None,
            "billed_at": _rfc3339(now),
            "custom_data": {
                "subscription_id": str(checkout["subscription_id"]),
                "agency_id": str(checkout["agency_id"]),
                "module_id": str(checkout["module_id"]),
                "checkout_id": str(checkout["id"]),
            },
            "items": [{"quantity": 1, "price": {"name": checkout["module_slug"],
                                                "unit_price": {"amount": amount,
                                                               "currency_code": checkout["currency"]}}}],
            "details": {"totals": {"subtotal": amount, "discount": "0", "tax": "0", "total": amount,
                                   "credit": "0", "balance": "0", "grand_total": amount,
                                   "currency_code": checkout["currency"]}},
        },
    }


def completion_event_id(checkout_id: uuid.UUID) -> str:
    """One notification per checkout: a transaction completes once."""
    return f"evt_sandbox_{checkout_id.hex}"


def webhook_url(config: PaymentConfig) -> str:
    """Where to deliver: ``SANDBOX_WEBHOOK_URL``; without it the sandbox cannot complete checkouts."""
    if not config.sandbox_webhook_url:
        raise SandboxNotConfigured("Set SANDBOX_WEBHOOK_URL to the webhook route sandbox checkouts complete through",
                                   code="sandbox_webhook_url_unset")
    return config.sandbox_webhook_url


def deliver(config: PaymentConfig, url: str, event: dict[str, Any]) -> dict[str, Any]:
    """POST the signed notification, as Paddle would; returns the webhook's status and body."""
    import httpx

    raw = json.dumps(event, separators=(",", ":")).encode("utf-8")
    headers = {"content-type": "application/json", "paddle-signature": sign(config.webhook_secret or "", raw)}
    try:
        response = httpx.post(url, content=raw, headers=headers, timeout=httpx.Timeout(10.0, connect=3.0))
    except httpx.HTTPError as exc:
        raise SandboxWebhookFailed(f"Could not deliver the sandbox webhook to {url}") from exc
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:1000]
    if response.status_code >= 300:
        raise SandboxWebhookFailed(f"The webhook at {url} answered {response.status_code}",
                                   details=[{"status": response.status_code, "body": body}])
    return {"url": url, "status": response.status_code, "body": body}


def complete_checkout(config: PaymentConfig, claims: dict[str, Any], checkout_id: uuid.UUID) -> dict[str, Any]:
    """Complete the caller's sandbox checkout: its notification, signed and delivered to our webhook.
    A completion that raced a twin (the webhook answered ``duplicate``) answers what a repeat answers."""
    with db.user_unit(claims) as unit:
        checkout = load_checkout(unit, checkout_id)
    # delivered after the read transaction: no connection is held while our own webhook runs
    url = webhook_url(config)
    event = transaction_completed_event(checkout)
    delivery = deliver(config, url, event)
    if _outcome(delivery) == "duplicate":
        with db.user_unit(claims) as unit:
            load_checkout(unit, checkout_id)  # 409 checkout_completed (or superseded), as a repeat
        raise Conflict("This checkout's payment was already submitted; it changed nothing now",
                       code="checkout_already_submitted")
    return {"checkoutId": str(checkout_id), "subscriptionId": str(checkout["subscription_id"]),
            "eventId": event["event_id"], "eventType": event["event_type"], "webhook": delivery}


def _outcome(delivery: dict[str, Any]) -> str | None:
    body = delivery.get("body")
    data = body.get("data") if isinstance(body, dict) else None
    return data.get("outcome") if isinstance(data, dict) else None


def subscription_canceled_event(sub: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """A Paddle Billing ``subscription.canceled`` notification: the sandbox subscription's period ended."""
    now = now or datetime.now(UTC)
    return {
        "event_id": f"evt_sandbox_cancel_{sub['id'].hex}",
        "event_type": "subscription.canceled",
        "occurred_at": _rfc3339(now),
        "notification_id": f"ntf_sandbox_{uuid.uuid4().hex}",
        "data": {
            "id": sub["provider_subscription_id"],
            "status": "canceled",
            "canceled_at": _rfc3339(now),
            "scheduled_change": None,
            "custom_data": {"subscription_id": str(sub["id"]), "agency_id": str(sub["agency_id"]),
                            "module_id": str(sub["module_id"])},
        },
    }


def end_period(config: PaymentConfig, claims: dict[str, Any], subscription_id: uuid.UUID) -> dict[str, Any]:
    """The sandbox's stand-in for a billing period ending: a subscription whose cancel is scheduled gets
    Paddle's ``subscription.canceled``, signed and delivered to our webhook (owners of its agency)."""
    with db.user_unit(claims) as unit:
        sub = unit.fetchone(
            "SELECT s.id, s.agency_id, s.module_id, s.provider_subscription_id, s.cancel_requested_at, s.status "
            "FROM public.agency_module_subscriptions s WHERE s.id = %s", (subscription_id,))
        if sub is None:
            raise NotFound("Subscription not found", code="subscription_not_found")
        require_agency_access(unit, sub["agency_id"], action=Action.BILL)
    if sub["cancel_requested_at"] is None or sub["status"] == "canceled":
        raise Conflict("No cancel is scheduled for this subscription", code="no_cancel_scheduled")
    event = subscription_canceled_event(sub)
    delivery = deliver(config, webhook_url(config), event)
    return {"subscriptionId": str(subscription_id), "eventId": event["event_id"], "eventType": event["event_type"],
            "webhook": delivery}
