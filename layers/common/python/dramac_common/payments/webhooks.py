"""Paddle webhook events: parse, record once, and move the subscription they name.

Handled: ``transaction.completed`` → active, ``subscription.past_due`` → past_due,
``subscription.canceled`` → canceled; any other type is recorded and ignored. Every accepted event is
stored in ``payment_events`` (unique ``event_id``: a redelivery is a no-op). An event whose
``occurred_at`` is not newer than the last event applied to the subscription is recorded as ``stale``
and changes nothing, so out-of-order delivery never moves a subscription backwards. No outbound call
is made here: the webhook answers in one transaction.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from .. import jsonbody, marketplace
from ..db import Unit
from ..errors import ValidationFailed

log = logging.getLogger(__name__)

TARGET_STATUS = {
    "transaction.completed": "active",
    "subscription.past_due": "past_due",
    "subscription.canceled": "canceled",
}
# automation event emitted when a provider event changes a subscription's status to ...
STATUS_EVENT = {"active": "activated", "canceled": "canceled", "past_due": "past_due"}
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class PaddleEvent:
    event_id: str
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]
    payload: dict[str, Any]

    @property
    def custom_data(self) -> dict[str, Any]:
        custom = self.data.get("custom_data")
        return custom if isinstance(custom, dict) else {}


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    event_type: str
    outcome: str  # applied | unchanged | stale | ignored | unmatched | duplicate
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
            status: str | None = None) -> WebhookOutcome:
    unit.execute("UPDATE public.payment_events SET outcome = %s, subscription_id = %s WHERE event_id = %s",
                 (outcome, sub["id"] if sub else None, event.event_id))
    return WebhookOutcome(event.event_id, event.event_type, outcome, sub["id"] if sub else None,
                          status or (sub["status"] if sub else None))


def _complete_checkout(unit: Unit, event: PaddleEvent, sub: dict[str, Any]) -> None:
    transaction_id, _ = _provider_refs(event)
    unit.execute(
        """
        UPDATE public.payment_checkouts SET status = 'completed', completed_at = %s
        WHERE subscription_id = %s AND status <> 'completed'
          AND (id = %s OR (provider_checkout_id IS NOT NULL AND provider_checkout_id = %s))
        """,
        (event.occurred_at, sub["id"], _uuid_or_none(event.custom_data.get("checkout_id")), transaction_id),
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
    if event.event_type == "transaction.completed":
        _complete_checkout(unit, event, sub)  # the payment happened, whatever its order
    last = sub["last_payment_event_at"]
    if last is not None and event.occurred_at <= last:
        return _finish(unit, event, "stale", sub)
    transaction_id, paddle_subscription = _provider_refs(event)
    previous = sub["status"]
    updated = unit.fetchone(
        """
        UPDATE public.agency_module_subscriptions SET
          status = %(status)s,
          last_payment_event_at = %(at)s,
          activated_at = CASE WHEN %(status)s = 'active' AND status <> 'active' THEN %(at)s ELSE activated_at END,
          canceled_at = CASE WHEN %(status)s = 'canceled' THEN %(at)s ELSE NULL END,
          past_due_at = CASE WHEN %(status)s = 'past_due' THEN coalesce(past_due_at, %(at)s) ELSE NULL END,
          provider_transaction_id = coalesce(%(transaction)s, provider_transaction_id),
          provider_subscription_id = coalesce(%(paddle_subscription)s, provider_subscription_id)
        WHERE id = %(id)s
        RETURNING *
        """,
        {"status": target, "at": event.occurred_at, "transaction": transaction_id,
         "paddle_subscription": paddle_subscription, "id": sub["id"]},
    )
    if previous == target:
        return _finish(unit, event, "unchanged", updated)
    marketplace.emit_subscription_event(unit, STATUS_EVENT[target], updated, module_slug=sub["module_slug"],
                            previous_status=previous)
    return _finish(unit, event, "applied", updated)
