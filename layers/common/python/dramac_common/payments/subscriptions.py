"""Paid subscriptions: purchase (a pending subscription and a checkout), the agency's subscriptions
with their prices, and markup changes. SQL for the purchase path of ``agency_module_subscriptions``
and for ``payment_checkouts`` lives here; every function runs in the caller's unit of work, so
row-level security applies to what it reads and writes.
"""

from __future__ import annotations

import uuid
from typing import Any

from .. import marketplace
from ..api import CamelModel
from ..db import Unit
from ..errors import BadRequest, Conflict, NotFound, ValidationFailed
from ..tenancy import require_agency_access
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


def _claim_pending_subscription(unit: Unit, agency_id: uuid.UUID, module: marketplace.Module, billing_cycle: str,
                                markup: Markup, retail: int, provider: str) -> tuple[dict[str, Any], str | None]:
    """Insert a pending subscription, or turn the existing one back into a pending purchase.
    Returns the row and the status it had before (None: it is new)."""
    values = {"agency": agency_id, "module": module.id, "cycle": billing_cycle,
              "wholesale": module.wholesale_price_cents, "markup_type": markup.type, "markup_value": markup.value,
              "retail": retail, "currency": module.currency, "provider": provider}
    row = unit.fetchone(
        f"""
        INSERT INTO public.agency_module_subscriptions AS s
          (agency_id, module_id, status, billing_cycle, wholesale_price_cents, markup_type, markup_value,
           retail_price_cents, currency, payment_provider)
        VALUES (%(agency)s, %(module)s, 'pending', %(cycle)s, %(wholesale)s, %(markup_type)s, %(markup_value)s,
                %(retail)s, %(currency)s, %(provider)s)
        ON CONFLICT (agency_id, module_id) DO NOTHING
        RETURNING {SUBSCRIPTION_COLUMNS}
        """,
        values,
    )
    if row is not None:
        return row, None
    current = unit.fetchone(
        "SELECT id, status FROM public.agency_module_subscriptions WHERE agency_id = %s AND module_id = %s FOR UPDATE",
        (agency_id, module.id),
    )
    if current is None:  # deleted between the two statements: the caller may simply retry
        raise Conflict("The subscription changed while purchasing; try again", code="conflict")
    if current["status"] == "active":
        raise Conflict(f"The agency already has an active subscription to '{module.name}'", code="already_active")
    if current["status"] == "past_due":
        raise Conflict(
            f"The subscription to '{module.name}' is past due: update its payment method instead of buying again",
            code="subscription_past_due",
        )
    # pending (a new checkout replaces the open one) or canceled (bought again): the price is
    # snapshotted anew, as of this purchase
    row = unit.fetchone(
        f"""
        UPDATE public.agency_module_subscriptions AS s
        SET status = 'pending', billing_cycle = %(cycle)s, wholesale_price_cents = %(wholesale)s,
            markup_type = %(markup_type)s, markup_value = %(markup_value)s, retail_price_cents = %(retail)s,
            currency = %(currency)s, payment_provider = %(provider)s, canceled_at = NULL, past_due_at = NULL
        WHERE s.id = %(id)s
        RETURNING {SUBSCRIPTION_COLUMNS}
        """,
        {**values, "id": current["id"]},
    )
    return row, current["status"]


def _open_checkout(unit: Unit, request: CheckoutRequest, provider: PaymentProvider, created_by: uuid.UUID) -> Checkout:
    opened = provider.create_checkout(request)
    row = unit.fetchone(
        """
        WITH superseded AS (
          UPDATE public.payment_checkouts SET status = 'superseded'
          WHERE subscription_id = %(subscription)s AND status = 'open'
        )
        INSERT INTO public.payment_checkouts
          (id, agency_id, subscription_id, module_id, provider, provider_checkout_id, amount_cents, currency,
           billing_cycle, checkout_url, created_by)
        VALUES (%(id)s, %(agency)s, %(subscription)s, %(module)s, %(provider)s, %(provider_checkout_id)s,
                %(amount)s, %(currency)s, %(cycle)s, %(url)s, %(created_by)s)
        RETURNING id, provider, provider_checkout_id, checkout_url AS url, status, amount_cents, currency,
                  billing_cycle
        """,
        {"id": request.checkout_id, "agency": request.agency_id, "subscription": request.subscription_id,
         "module": request.module_id, "provider": opened.provider, "provider_checkout_id": opened.provider_checkout_id,
         "amount": request.amount_cents, "currency": request.currency, "cycle": request.billing_cycle,
         "url": opened.url, "created_by": created_by},
    )
    return Checkout.model_validate(row)


def purchase_module(unit: Unit, *, user_id: uuid.UUID, agency_id: uuid.UUID, module_id: uuid.UUID,
                    billing_cycle: str | None, markup: Markup, provider: PaymentProvider) -> Purchase:
    """Start buying a paid module for an agency: a pending subscription that snapshots the wholesale
    price and the markup, and a checkout from the payment provider for the wholesale price.

    Nothing is written when the provider fails (the provider is called before this transaction commits).
    """
    require_agency_access(unit, agency_id, manage=True)
    module = marketplace.get_published_module(unit, module_id)
    if module.is_free:
        raise BadRequest(f"'{module.name}' is free: use POST /api/modules/subscribe", code="use_subscribe")
    cycle = choose_billing_cycle(module, billing_cycle)
    retail = retail_price_cents(module.wholesale_price_cents, markup)
    sub, previous = _claim_pending_subscription(unit, agency_id, module, cycle, markup, retail, provider.name)
    checkout = _open_checkout(
        unit,
        CheckoutRequest(checkout_id=uuid.uuid4(), subscription_id=sub["id"], agency_id=agency_id, module_id=module.id,
                        module_slug=module.slug, module_name=module.name, amount_cents=module.wholesale_price_cents,
                        currency=module.currency, billing_cycle=cycle),
        provider, user_id,
    )
    if previous in (None, "canceled"):
        marketplace.emit_subscription_event(unit, "created", sub, module_slug=module.slug, previous_status=previous)
    subscription = BilledSubscription.model_validate({**sub, "module_slug": module.slug, "module_name": module.name})
    return Purchase(subscription_id=sub["id"], status=sub["status"], checkout=checkout, subscription=subscription)


def list_agency_subscriptions(unit: Unit, agency_id: uuid.UUID) -> list[BilledSubscription]:
    require_agency_access(unit, agency_id)
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
    """Change the agency's markup; the retail price is recomputed from the wholesale snapshot."""
    require_agency_access(unit, agency_id, manage=True)
    current = unit.fetchone(
        """SELECT wholesale_price_cents FROM public.agency_module_subscriptions
           WHERE id = %s AND agency_id = %s FOR UPDATE""",
        (subscription_id, agency_id),
    )
    if current is None:
        raise NotFound("Subscription not found", code="subscription_not_found")
    retail = retail_price_cents(current["wholesale_price_cents"], markup)
    row = unit.fetchone(
        f"""
        WITH updated AS (
          UPDATE public.agency_module_subscriptions
          SET markup_type = %s, markup_value = %s, retail_price_cents = %s
          WHERE id = %s
          RETURNING *
        )
        SELECT {SUBSCRIPTION_COLUMNS}, m.slug AS module_slug, m.name AS module_name
        FROM updated s LEFT JOIN public.modules_v2 m ON m.id = s.module_id
        """,
        (markup.type, markup.value, retail, subscription_id),
    )
    return BilledSubscription.model_validate(row)
