"""Paid subscriptions: purchase (a pending subscription and a checkout), the agency's subscriptions
with their prices, and markup changes. SQL for the purchase path of ``agency_module_subscriptions``
and for ``payment_checkouts`` lives here; every function runs in the caller's unit of work, so
row-level security applies to what it reads and writes.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..core import audit
from ..core.db import Unit
from ..core.errors import BadRequest, Conflict, NotFound, ValidationFailed
from ..core.tenancy import Action, require_agency_access
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


def choose_billing_cycle(module: marketplace.Module, requested: str | None) -> str:
    """A module is sold on the cycle its pricing names; asking for another one is a 400."""
    if requested is None or requested == module.pricing_type:
        return module.pricing_type
    raise ValidationFailed(
        f"'{module.name}' is sold {module.pricing_type.replace('_', '-')}; billingCycle must be "
        f"'{module.pricing_type}' or omitted",
        code="unsupported_billing_cycle",
        details=[{"field": "billingCycle", "message": f"expected '{module.pricing_type}'"}],
    )


def _claim_pending_subscription(unit: Unit, agency_id: uuid.UUID, module: marketplace.Module, markup: Markup,
                                provider: str) -> tuple[dict[str, Any], str | None]:
    """Insert a pending subscription, or turn the existing one back into a pending purchase, through
    ``private.claim_pending_subscription`` (the database decides price and status). Returns the row
    and the status it had before (None: it is new)."""
    row = unit.call_write_path("claim_pending_subscription", agency_id, module.id, markup.type, markup.value, provider)
    previous = row.pop("previous_status")
    if previous == "active":
        raise Conflict(f"The agency already has an active subscription to '{module.name}'", code="already_active")
    if previous == "past_due":
        raise Conflict(
            f"The subscription to '{module.name}' is past due: update its payment method instead of buying again",
            code="subscription_past_due",
        )
    return row, previous


def _open_checkout(unit: Unit, request: CheckoutRequest, provider: PaymentProvider) -> Checkout:
    """Ask the provider for a checkout, then record it (``private.open_checkout``: the amount is the
    subscription's own wholesale price, and the subscription's open checkouts are superseded)."""
    opened = provider.create_checkout(request)
    row = unit.call_write_path("open_checkout", request.subscription_id, request.checkout_id, opened.provider,
                               opened.provider_checkout_id, opened.url)
    return Checkout.model_validate(row)


def purchase_module(unit: Unit, *, user_id: uuid.UUID, agency_id: uuid.UUID, module_id: uuid.UUID,
                    billing_cycle: str | None, markup: Markup, provider: PaymentProvider) -> Purchase:
    """Start buying a paid module for an agency: a pending subscription that snapshots the wholesale
    price and the markup, and a checkout from the payment provider for the wholesale price.

    Nothing is written when the provider fails (the provider is called before this transaction commits).
    Billing: the agency's owners only.
    """
    require_agency_access(unit, agency_id, action=Action.BILL)
    module = marketplace.get_published_module(unit, module_id)
    if module.is_free:
        raise BadRequest(f"'{module.name}' is free: use POST /api/modules/subscribe", code="use_subscribe")
    cycle = choose_billing_cycle(module, billing_cycle)
    retail_price_cents(module.wholesale_price_cents, markup)  # a 400 for a retail price out of range
    sub, previous = _claim_pending_subscription(unit, agency_id, module, markup, provider.name)
    checkout = _open_checkout(
        unit,
        CheckoutRequest(checkout_id=uuid.uuid4(), subscription_id=uuid.UUID(sub["id"]), agency_id=agency_id,
                        module_id=module.id, module_slug=module.slug, module_name=module.name,
                        amount_cents=sub["wholesale_price_cents"], currency=sub["currency"], billing_cycle=cycle),
        provider,
    )
    if previous in (None, "canceled"):
        marketplace.emit_subscription_event(unit, "created", sub, module_slug=module.slug, previous_status=previous)
    audit.record(unit, "subscription.purchase_started", agency_id=agency_id, target_type="subscription",
                 target_id=sub["id"], details={
                     "moduleId": str(module.id), "moduleSlug": module.slug, "billingCycle": cycle,
                     "wholesalePriceCents": sub["wholesale_price_cents"], "currency": sub["currency"],
                     "markupType": markup.type, "markupValue": markup.value, "checkoutId": str(checkout.id),
                     "previousStatus": previous})
    subscription = BilledSubscription.model_validate({**sub, "module_slug": module.slug, "module_name": module.name})
    return Purchase(subscription_id=sub["id"], status=sub["status"], checkout=checkout, subscription=subscription)


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
