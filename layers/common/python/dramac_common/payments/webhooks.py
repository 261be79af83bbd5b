"""Paddle webhook events: parse, record once, and move the subscription they name.

Handled: ``transaction.completed`` → active, ``subscription.past_due`` → past_due,
``subscription.canceled`` → canceled; any other type is recorded and ignored. Every accepted event is
stored in ``payment_events`` (unique ``event_id``: a redelivery is a no-op) with its outcome.

A ``transaction.completed`` activates only a payment we asked for (``match_payment``): its transaction
(``data.id``) is the one a checkout of this subscription opened, and it charged that checkout's amount
in its currency; or it is a renewal of the Paddle subscription this one is already linked to, at the
subscription's price. Anything else is recorded as ``mismatch`` (with the reason) and changes nothing.

An event whose ``occurred_at`` is not newer than the last event applied to the subscription is
recorded as ``stale`` and changes nothing, so out-of-order delivery never moves a subscription
backwards. A checkout becomes ``completed`` in the same change that applies its payment (the
subscription is then active, or was already): a stale or mismatched completion leaves every checkout
as it was, so no checkout is completed while its purchase is still pending. No outbound call is made
here: the webhook answers in one transaction.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from typing import Any, NamedTuple

from psycopg.types.json import Jsonb

from ..core import audit, jsonbody
from ..core.db import Unit
from ..core.errors import ValidationFailed
from ..marketplace import catalog as marketplace
from .cancel import disable_installations

log = logging.getLogger(__name__)

TARGET_STATUS = {
    "transaction.completed": "active",
    "subscription.past_due": "past_due",
    "subscription.canceled": "canceled",
}
# automation event emitted when a provider event changes a subscription's status to ...
STATUS_EVENT = {"active": "activated", "canceled": "canceled", "past_due": "past_due"}
_FRACTION = re.compile(r"(\.\d{6})\d+")


class PaddleEvent(NamedTuple):
    event_id: str
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]
    payload: dict[str, Any]

    @property
    def custom_data(self) -> dict[str, Any]:
        custom = self.data.get("custom_data")
        return custom if isinstance(custom, dict) else {}


class WebhookOutcome(NamedTuple):
    event_id: str
    event_type: str
    outcome: str  # applied | unchanged | stale | mismatch | ignored | unmatched | duplicate
    subscription_id: uuid.UUID | None = None
    status: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "eventType": self.event_type, "outcome": self.outcome,
                "subscriptionId": str(self.subscription_id) if self.subscription_id else None,
                "status": self.status}


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_event")


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _invalid("occurred_at must be an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    except ValueError as exc:
        raise _invalid("occurred_at must be an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise _invalid("occurred_at must carry a time zone")
    return parsed


def parse_event(raw_body: bytes) -> PaddleEvent:
    """A Paddle notification from the verified raw body; 400 when it is not one."""
    payload = jsonbody.loads(raw_body, where="webhook body")  # 400 for what PostgreSQL could not store
    if not isinstance(payload, dict):
        raise _invalid("The webhook body must be a JSON object")
    event_id, event_type = payload.get("event_id"), payload.get("event_type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 200:
        raise _invalid("event_id is missing")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= 200:
        raise _invalid("event_type is missing")
    data = payload.get("data")
    return PaddleEvent(event_id, event_type, _timestamp(payload.get("occurred_at")),
                       data if isinstance(data, dict) else {}, payload)


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _provider_refs(event: PaddleEvent) -> tuple[str | None, str | None]:
    """(Paddle transaction id, Paddle subscription id) named by the event."""
    data_id = event.data.get("id") if isinstance(event.data.get("id"), str) else None
    if event.event_type.startswith("transaction."):
        sub = event.data.get("subscription_id")
        return data_id, sub if isinstance(sub, str) else None
    if event.event_type.startswith("subscription."):
        return None, data_id
    return None, None


def _locate_subscription(unit: Unit, event: PaddleEvent) -> dict[str, Any] | None:
    """The subscription named by ``custom_data.subscription_id`` (ours), else by Paddle's subscription id."""
    ours = _uuid_or_none(event.custom_data.get("subscription_id"))
    _, paddle_subscription = _provider_refs(event)
    if ours is None and paddle_subscription is None:
        return None
    row = unit.fetchone(
        """
        SELECT s.*, m.slug AS module_slug
        FROM public.agency_module_subscriptions s LEFT JOIN public.modules_v2 m ON m.id = s.module_id
        WHERE s.id = %s OR (%s::text IS NOT NULL AND s.provider_subscription_id = %s)
        ORDER BY (s.id = %s) IS TRUE DESC
        LIMIT 1
        FOR UPDATE OF s
        """,
        (ours, paddle_subscription, paddle_subscription, ours),
    )
    if row is None:
        return None
    agency = _uuid_or_none(event.custom_data.get("agency_id"))
    if agency is not None and agency != row["agency_id"]:
        log.warning("webhook names a subscription of another agency", extra={"event_id": event.event_id})
        return None
    return row


def _record(unit: Unit, event: PaddleEvent) -> bool:
    """Store the event; False when this event_id was received before."""
    row = unit.fetchone(
        """
        INSERT INTO public.payment_events (provider, event_id, event_type, occurred_at, payload)
        VALUES ('paddle', %s, %s, %s, %s)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id
        """,
        (event.event_id, event.event_type, event.occurred_at, Jsonb(event.payload)),
    )
    return row is not None


def _finish(unit: Unit, event: PaddleEvent, outcome: str, sub: dict[str, Any] | None,
            status: str | None = None, *, checkout_id: uuid.UUID | None = None,
            detail: str | None = None) -> WebhookOutcome:
    unit.execute(
        "UPDATE public.payment_events SET outcome = %s, subscription_id = %s, checkout_id = %s, detail = %s "
        "WHERE event_id = %s",
        (outcome, sub["id"] if sub else None, checkout_id, detail, event.event_id))
    return WebhookOutcome(event.event_id, event.event_type, outcome, sub["id"] if sub else None,
                          status or (sub["status"] if sub else None))


class PaymentMatch(NamedTuple):
    """What a ``transaction.completed`` pays for: a checkout of the subscription (None for a renewal
    of its linked Paddle subscription), or why it pays for nothing we asked for."""

    checkout_id: uuid.UUID | None = None
    problem: str | None = None


def _cents(value: Any) -> int | None:
    """A Paddle amount: a string of an integer in the currency's minor unit."""
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit() and len(value) <= 18:
        return int(value)
    return None


def _amount_problem(event: PaddleEvent, expected_cents: int, expected_currency: str) -> str | None:
    """Whether the transaction charged ``expected_cents`` in ``expected_currency``. Paddle's
    ``details.totals`` carry the amounts (strings, minor units): ``total`` is after discount and
    tax. Our price is the checkout amount, and the account decides whether tax is added on top
    (then total − tax is the price) or included (then total is), so either equality is a match; a
    discount or a cheaper item matches neither. ``grand_total`` is not used: it is after credits
    (the customer's own balance), so it can be lower for a payment in full."""
    currency = event.data.get("currency_code")
    details = event.data.get("details")
    totals = details.get("totals") if isinstance(details, dict) else None
    if not isinstance(totals, dict):
        return "the transaction carries no details.totals"
    if not isinstance(currency, str) or currency.upper() != expected_currency.upper():
        return f"currency {currency!r}, expected {expected_currency}"
    total, tax = _cents(totals.get("total")), _cents(totals.get("tax", "0"))
    if total is None or tax is None:
        return "details.totals.total or tax is not an amount"
    if expected_cents not in (total, total - tax):
        return f"charged {total} (tax {tax}) {currency}, expected {expected_cents} {expected_currency}"
    return None


def match_payment(unit: Unit, event: PaddleEvent, sub: dict[str, Any]) -> PaymentMatch:
    """The checkout a completed transaction pays for, checked against what that checkout asked for."""
    transaction_id, paddle_subscription = _provider_refs(event)
    if transaction_id is None:
        return PaymentMatch(problem="the transaction has no id")
    checkout = unit.fetchone(
        "SELECT id, subscription_id, amount_cents, currency FROM public.payment_checkouts "
        "WHERE provider_checkout_id = %s ORDER BY (subscription_id = %s) DESC LIMIT 1",
        (transaction_id, sub["id"]),
    )
    named = _uuid_or_none(event.custom_data.get("checkout_id"))
    if checkout is not None:
        if checkout["subscription_id"] != sub["id"]:
            return PaymentMatch(problem=f"transaction {transaction_id} belongs to another subscription's checkout")
        if named is not None and named != checkout["id"]:
            return PaymentMatch(checkout["id"], f"custom_data names checkout {named}, the transaction is {checkout['id']}'s")
        problem = _amount_problem(event, checkout["amount_cents"], checkout["currency"])
        return PaymentMatch(checkout["id"], problem)
    # A renewal: a new transaction of the Paddle subscription the first payment linked to this one.
    linked = sub.get("provider_subscription_id")
    if linked is not None and paddle_subscription == linked:
        return PaymentMatch(None, _amount_problem(event, sub["wholesale_price_cents"], sub["currency"]))
    return PaymentMatch(problem=f"no checkout was opened for transaction {transaction_id}")


def _complete_checkout(unit: Unit, event: PaddleEvent, sub: dict[str, Any], checkout_id: uuid.UUID) -> None:
    """The paid checkout is completed; any other open checkout of the subscription is superseded
    (it is paid for now: opening it again would charge twice)."""
    unit.execute(
        """
        UPDATE public.payment_checkouts
        SET status = CASE WHEN id = %(checkout)s THEN 'completed' ELSE 'superseded' END,
            completed_at = CASE WHEN id = %(checkout)s THEN %(at)s ELSE completed_at END
        WHERE subscription_id = %(subscription)s AND (id = %(checkout)s OR status = 'open') AND status <> 'completed'
        """,
        {"checkout": checkout_id, "at": event.occurred_at, "subscription": sub["id"]},
    )


def apply_event(unit: Unit, event: PaddleEvent) -> WebhookOutcome:
    """Record the event and apply it; runs as the service (the webhook has no user)."""
    if not _record(unit, event):
        return WebhookOutcome(event.event_id, event.event_type, "duplicate")
    target = TARGET_STATUS.get(event.event_type)
    if target is None:
        return _finish(unit, event, "ignored", None)
    sub = _locate_subscription(unit, event)
    if sub is None:
        log.warning("webhook for an unknown subscription", extra={"event_id": event.event_id,
                                                                   "event_type": event.event_type})
        return _finish(unit, event, "unmatched", None)
    paid = None
    if event.event_type == "transaction.completed":
        paid = match_payment(unit, event, sub)
        if paid.problem is not None:
            log.warning("completed transaction does not match its checkout",
                        extra={"event_id": event.event_id, "problem": paid.problem})
            return _finish(unit, event, "mismatch", sub, checkout_id=paid.checkout_id, detail=paid.problem)
    last = sub["last_payment_event_at"]
    if last is not None and event.occurred_at <= last:
        # a newer event already decided the subscription's state; the payment is on record here
        return _finish(unit, event, "stale", sub, checkout_id=paid.checkout_id if paid else None,
                       detail=f"an event of {last.isoformat()} was applied already")
    transaction_id, paddle_subscription = _provider_refs(event)
    previous = sub["status"]
    updated = unit.fetchrow(
        """
        UPDATE public.agency_module_subscriptions SET
          status = %(status)s,
          last_payment_event_at = %(at)s,
          activated_at = CASE WHEN %(status)s = 'active' AND status <> 'active' THEN %(at)s ELSE activated_at END,
          canceled_at = CASE WHEN %(status)s = 'canceled' THEN %(at)s ELSE NULL END,
          past_due_at = CASE WHEN %(status)s = 'past_due' THEN coalesce(past_due_at, %(at)s) ELSE NULL END,
          provider_transaction_id = coalesce(%(transaction)s, provider_transaction_id),
          provider_subscription_id = coalesce(%(link)s, provider_subscription_id, %(paddle_subscription)s)
        WHERE id = %(id)s
        RETURNING *
        """,
        # Only a payment of one of our checkouts re-links the subscription to a Paddle subscription
        # (a purchase after a cancel starts a new one); any other event links it only when unlinked.
        {"status": target, "at": event.occurred_at, "transaction": transaction_id,
         "link": paddle_subscription if paid is not None and paid.checkout_id is not None else None,
         "paddle_subscription": paddle_subscription, "id": sub["id"]},
    )
    checkout_id = paid.checkout_id if paid else None
    if checkout_id is not None:
        _complete_checkout(unit, event, sub, checkout_id)
    if previous == target:
        return _finish(unit, event, "unchanged", updated, checkout_id=checkout_id)
    marketplace.emit_subscription_event(unit, STATUS_EVENT[target], updated, module_slug=sub["module_slug"],
                                        previous_status=previous)
    if target == "canceled":
        # the end of the billing period (or a cancel in Paddle): the module's installations are disabled
        disabled = disable_installations(unit, updated["agency_id"], updated["module_id"], sub["module_slug"])
        audit.record(unit, "subscription.canceled", agency_id=updated["agency_id"], target_type="subscription",
                     target_id=updated["id"], details={"module_id": str(updated["module_id"]),
                                                       "previous_status": previous, "event_id": event.event_id,
                                                       "installations_disabled": disabled})
    return _finish(unit, event, "applied", updated, checkout_id=checkout_id)
