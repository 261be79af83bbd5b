"""Canceling an agency's subscription to a module (owners only: billing is theirs).

- Free and one-time subscriptions (and any without a provider subscription) are canceled at once.
- Recurring paid ones are canceled at the end of the billing period through the payment provider
  (Paddle, or the local sandbox): the request records the scheduled cancel (``cancelEffectiveAt``) and
  answers 202; the provider's ``subscription.canceled`` webhook finishes it (``webhooks.apply_event``).

Whenever a subscription becomes canceled, the module's installations on the agency's sites are
disabled, not deleted (their data stays; subscribing again and installing re-enables them), with a
``marketplace.module.disabled`` event each, in the transaction that cancels.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ..core import audit
from ..core.db import Unit
from ..core.errors import Conflict, NotFound
from ..core.tenancy import Action, require_agency_access
from ..installations import lifecycle
from ..marketplace import catalog as marketplace
from .providers import PaymentProvider
from .subscriptions import SUBSCRIPTION_COLUMNS, BilledSubscription

PERIODS = {"monthly": timedelta(days=30), "yearly": timedelta(days=365)}


class CanceledSubscription(BilledSubscription):
    cancel_requested_at: datetime | None = None
    cancel_effective_at: datetime | None = None


def _load(unit: Unit, agency_id: uuid.UUID, subscription_id: uuid.UUID) -> dict[str, Any]:
    row = unit.fetchone(
        f"SELECT {SUBSCRIPTION_COLUMNS}, s.provider_subscription_id, s.cancel_requested_at, s.cancel_effective_at, "
        "m.slug AS module_slug, m.name AS module_name FROM public.agency_module_subscriptions s "
        "LEFT JOIN public.modules_v2 m ON m.id = s.module_id WHERE s.id = %s AND s.agency_id = %s",
        (subscription_id, agency_id))
    if row is None:
        raise NotFound("Subscription not found", code="subscription_not_found")
    return row


def period_end(sub: dict[str, Any], now: datetime | None = None) -> datetime:
    """The end of the subscription's current billing period, counted from its activation."""
    now = now or datetime.now(UTC)
    period = PERIODS[sub["billing_cycle"]]
    start = sub["activated_at"] or sub["created_at"]
    periods = max(1, math.ceil((now - start) / period))
    end: datetime = start + periods * period
    return end if end > now else end + period


def cancel_subscription(unit: Unit, agency_id: uuid.UUID, subscription_id: uuid.UUID, *,
                        provider: PaymentProvider) -> tuple[CanceledSubscription, int]:
    """200 canceled now (or already), 202 scheduled for the end of the billing period."""
    access = require_agency_access(unit, agency_id, action=Action.BILL)
    # Twin cancels (a double click) queue here, so the provider is asked once: the second reads the
    # subscription as the first committed it (its own statement, so its snapshot is taken after the lock).
    unit.execute("SELECT pg_advisory_xact_lock(hashtextextended('subscription-cancel:' || %s, 0))",
                 (str(subscription_id),))
    sub = _load(unit, agency_id, subscription_id)
    if sub["status"] == "canceled":
        return CanceledSubscription.model_validate(sub), 200
    if sub["status"] not in ("active", "past_due"):
        raise Conflict(f"A {sub['status']} subscription cannot be canceled", code="subscription_not_active")
    recurring = sub["billing_cycle"] in PERIODS and sub["provider_subscription_id"] and sub["wholesale_price_cents"]
    effective_at = None
    if recurring:
        if sub["cancel_requested_at"] is not None:  # already scheduled: nothing to ask the provider again
            return CanceledSubscription.model_validate(sub), 202
        effective_at = provider.cancel_subscription(sub["provider_subscription_id"], period_end=period_end(sub))
    row = unit.call_write_path("cancel_subscription", agency_id, subscription_id, effective_at)
    if row is None:
        raise NotFound("Subscription not found", code="subscription_not_found")
    if "refused" in row:
        raise Conflict(f"A {row['status']} subscription cannot be canceled", code="subscription_not_active")
    previous, changed = row.pop("previous_status"), row.pop("changed")
    canceled = CanceledSubscription.model_validate({**sub, **row})
    if changed:
        audit.record(unit, "subscription.canceled" if effective_at is None else "subscription.cancel_scheduled",
                     agency_id=access.agency_id, target_type="subscription", target_id=subscription_id,
                     details={"module_id": str(sub["module_id"]), "module_slug": sub["module_slug"],
                              "previous_status": previous,
                              "effective_at": effective_at.isoformat() if effective_at else None})
    if effective_at is not None:
        return canceled, 202
    if changed:
        marketplace.emit_subscription_event(unit, "canceled", row, module_slug=sub["module_slug"],
                                            previous_status=previous)
        disable_installations(unit, agency_id, sub["module_id"], sub["module_slug"])
    return canceled, 200


def disable_installations(unit: Unit, agency_id: uuid.UUID, module_id: uuid.UUID, module_slug: str | None) -> int:
    """Disable the module's installations on the agency's sites (a canceled subscription), each with its
    ``marketplace.module.disabled`` event; the actor is the caller (none for the provider's webhook)."""
    rows = unit.call_write_path("disable_canceled_installations", agency_id, module_id) or []
    actor = uuid.UUID(unit.claims["sub"]) if unit.claims and unit.claims.get("sub") else None
    lifecycle.emit_each(unit, "disabled", rows, module_slug=module_slug, actor_id=actor,
                        extra={"reason": "subscription_canceled"})  # one statement for every site
    return len(rows)
