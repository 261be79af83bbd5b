"""Paid subscriptions: purchase (a pending subscription and a checkout), the agency's subscriptions
with their prices, and markup changes. SQL for the purchase path of ``agency_module_subscriptions``
and for ``payment_checkouts`` lives here; every function runs in the caller's unit of work, so
row-level security applies to what it reads and writes.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from ..automation.outbox import dispatch_after_commit
from ..core import audit
from ..core.db import Unit
from ..core.errors import BadRequest, Conflict, NotFound, ValidationFailed
from ..core.tenancy import Action, require_agency_access, require_agency_role, roles_allowed
from ..core.wire import CamelModel
from ..marketplace import catalog as marketplace
from .markup import Markup, retail_price_cents
from .providers import CheckoutRequest, PaymentProvider

SUBSCRIPTION_COLUMNS = marketplace.SUBSCRIPTION_COLUMNS + ", s.payment_provider"


class Checkout(CamelModel):
    id: uuid.UUID
    provider: str
    provider_checkout_id: str | None
    url: str | None
    status: str
    amount_cents: int
    currency: str
    billing_cycle: str


class BilledSubscription(marketplace.Subscription):
    """A subscription with its prices and the module it is for."""

    payment_provider: str | None = None
    module_slug: str | None = None
    module_name: str | None = None


class Purchase(CamelModel):
    subscription_id: uuid.UUID
    status: str
    checkout: Checkout
    subscription: BilledSubscription


def choose_billing_cycle(module_name: str, pricing_type: str, requested: str | None) -> str:
    """A module is sold on the cycle its pricing names; asking for another one is a 400."""
    if requested is None or requested == pricing_type:
        return pricing_type
    raise ValidationFailed(
        f"'{module_name}' is sold {pricing_type.replace('_', '-')}; billingCycle must be "
        f"'{pricing_type}' or omitted",
        code="unsupported_billing_cycle",
        details=[{"field": "billingCycle", "message": f"expected '{pricing_type}'"}],
    )


def _refuse_purchase(found: dict[str, Any], agency_id: uuid.UUID, billing_cycle: str | None, markup: Markup) -> str:
    """The answer to what ``private.start_purchase`` found, in the order it checked: 404/403 for the
    caller's role, 404 for no published module, 400 for a free one, another billing cycle or a retail
    price out of range. Returns the billing cycle when nothing is wrong."""
    require_agency_role(agency_id, found["role"], Action.BILL)
    module = found["module"]
    if module is None:
        raise NotFound("Module not found", code="module_not_found")
    if module["pricing_type"] == "free":
        raise BadRequest(f"'{module['name']}' is free: use POST /api/modules/subscribe", code="use_subscribe")
    cycle = choose_billing_cycle(module["name"], module["pricing_type"], billing_cycle)
    retail_price_cents(module["wholesale_price_cents"], markup)  # a 400 for a retail price out of range
    return cycle


def _require_purchasable(previous_status: str | None, module_name: str) -> None:
    """An active or past-due subscription is left as it was: buying it again is a 409."""
    if previous_status == "active":
        raise Conflict(f"The agency already has an active subscription to '{module_name}'", code="already_active")
    if previous_status == "past_due":
        raise Conflict(
            f"The subscription to '{module_name}' is past due: update its payment method instead of buying again",
            code="subscription_past_due",
        )


def purchase_module(unit: Unit, *, user_id: uuid.UUID, agency_id: uuid.UUID, module_id: uuid.UUID,
                    billing_cycle: str | None, markup: Markup, provider: PaymentProvider) -> Purchase:
    """Start buying a paid module for an agency: a pending subscription that snapshots the wholesale
    price and the markup, and a checkout from the payment provider for the wholesale price.

    Two statements around the provider's call (migration 0165): ``private.start_purchase`` checks the
    caller's role, the module, the cycle and the markup as this function answers them, then claims the
    pending subscription (``private.claim_pending_subscription``: inserted, or a pending/canceled one
    turned into a new purchase, the database deciding price and status); it writes nothing when a check
    refuses. ``private.open_purchase_checkout`` then records the provider's checkout (its amount the
    subscription's own wholesale price, earlier open checkouts superseded), the ``created`` event of a
    new or canceled subscription, and the audit row, and carries the unit's COMMIT: with the unit's
    opening pipelined into the first, the purchase is two round trips and the provider's call.

    Nothing is written when the provider fails (the provider is called before this transaction commits).
    Billing: the agency's owners only.
    """
    found = unit.call_write_path("start_purchase", agency_id, module_id, roles_allowed(Action.BILL), billing_cycle,
                                 markup.type, markup.value, provider.name)
    cycle = _refuse_purchase(found, agency_id, billing_cycle, markup)
    module, sub = found["module"], found["subscription"]
    previous = sub.pop("previous_status")
    _require_purchasable(previous, module["name"])
    checkout_id = uuid.uuid4()
    opened = provider.create_checkout(CheckoutRequest(
        checkout_id=checkout_id, subscription_id=uuid.UUID(sub["id"]), agency_id=agency_id, module_id=module_id,
        module_slug=module["slug"], module_name=module["name"], amount_cents=sub["wholesale_price_cents"],
        currency=sub["currency"], billing_cycle=cycle))
    event = marketplace.subscription_event_payload(sub, module["slug"], previous) \
        if previous in (None, "canceled") else None
    details = {"moduleId": str(module_id), "moduleSlug": module["slug"], "billingCycle": cycle,
               "wholesalePriceCents": sub["wholesale_price_cents"], "currency": sub["currency"],
               "markupType": markup.type, "markupValue": markup.value, "checkoutId": str(checkout_id),
               "previousStatus": previous}
    recorded = unit.call_write_path("open_purchase_checkout", sub["id"], checkout_id, opened.provider,
                                    opened.provider_checkout_id, opened.url,
                                    Jsonb(event) if event is not None else None, Jsonb(details), commit=True)
    if recorded["event_id"] is not None:
        dispatch_after_commit(unit, [uuid.UUID(recorded["event_id"])])
    subscription = BilledSubscription.model_validate({**sub, "module_slug": module["slug"], "module_name": module["name"]})
    return Purchase(subscription_id=sub["id"], status=sub["status"], checkout=Checkout.model_validate(recorded["checkout"]),
                    subscription=subscription)


def list_agency_subscriptions(unit: Unit, agency_id: uuid.UUID) -> list[BilledSubscription]:
    require_agency_access(unit, agency_id, action=Action.VIEW_SUBSCRIPTIONS)
    rows = unit.fetchall(
        f"""
        SELECT {SUBSCRIPTION_COLUMNS}, m.slug AS module_slug, m.name AS module_name
        FROM public.agency_module_subscriptions s
        LEFT JOIN public.modules_v2 m ON m.id = s.module_id
        WHERE s.agency_id = %s
        ORDER BY s.created_at, s.id
        """,
        (agency_id,),
    )
    return [BilledSubscription.model_validate(r) for r in rows]


def update_markup(unit: Unit, agency_id: uuid.UUID, subscription_id: uuid.UUID, markup: Markup) -> BilledSubscription:
    """Change the agency's markup (its owners only); the retail price is recomputed from the wholesale snapshot."""
    require_agency_access(unit, agency_id, action=Action.BILL)
    current = unit.fetchone(
        "SELECT wholesale_price_cents, markup_type, markup_value, retail_price_cents "
        "FROM public.agency_module_subscriptions WHERE id = %s AND agency_id = %s",
        (subscription_id, agency_id),
    )
    if current is None:
        raise NotFound("Subscription not found", code="subscription_not_found")
    retail_price_cents(current["wholesale_price_cents"], markup)  # a 400 for a retail price out of range
    row = unit.call_write_path("set_subscription_markup", agency_id, subscription_id, markup.type, markup.value)
    if row is None:
        raise NotFound("Subscription not found", code="subscription_not_found")
    audit.record(unit, "subscription.markup_changed", agency_id=agency_id, target_type="subscription",
                 target_id=subscription_id, details={
                     "before": {"markupType": current["markup_type"], "markupValue": current["markup_value"],
                                "retailPriceCents": current["retail_price_cents"]},
                     "after": {"markupType": row["markup_type"], "markupValue": row["markup_value"],
                               "retailPriceCents": row["retail_price_cents"]}})
    return BilledSubscription.model_validate(row)
