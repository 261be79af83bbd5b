"""Paid modules: purchase with agency markup, the Paddle webhook, and the agency's subscriptions.

Routes:
  POST  /api/modules/{moduleId}/purchase                       start a purchase (manage; Idempotency-Key honoured)
  POST  /api/webhooks/paddle                                   Paddle notifications (signature, no JWT)
  GET   /api/agencies/{agencyId}/subscriptions                 subscriptions with prices (read)
  PATCH /api/agencies/{agencyId}/subscriptions/{subscriptionId} change the markup (manage)
  POST  /api/sandbox/checkouts/{checkoutId}/complete           complete a sandbox checkout (manage; sandbox only)
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from dramac_common.core import db
from dramac_common.core.api import Envelope, create_app, decode_body, envelope, lambda_handler
from dramac_common.core.auth import Caller, current_caller
from dramac_common.core.errors import NotFound, ServiceUnavailable, Unauthorized
from dramac_common.core.idempotency import IdempotencyKey, idempotent_response
from dramac_common.payments import sandbox, subscriptions, webhooks
from dramac_common.payments.config import get_payment_config
from dramac_common.payments.markup import validate_markup
from dramac_common.payments.providers import get_provider
from dramac_common.payments.signature import SignatureError, verify
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictInt

app = create_app("DRAMAC marketplace: purchase")

MarkupType = Literal["none", "percentage", "fixed"]


class PurchaseRequest(BaseModel):
    agencyId: uuid.UUID  # noqa: N815 - the contract's field names
    billingCycle: Literal["one_time", "monthly", "yearly"] | None = None  # noqa: N815
    markupType: MarkupType | None = None  # noqa: N815
    markupValue: StrictInt | None = None  # noqa: N815


class MarkupRequest(BaseModel):
    markupType: MarkupType  # noqa: N815
    markupValue: StrictInt | None = None  # noqa: N815


@app.post("/api/modules/{module_id}/purchase", response_model=Envelope[subscriptions.Purchase], status_code=201)
def purchase(module_id: uuid.UUID, body: PurchaseRequest, request: Request,
             caller: Caller = Depends(current_caller), idempotency_key: IdempotencyKey = None) -> JSONResponse:
    markup = validate_markup(body.markupType, body.markupValue)

    def act() -> tuple[int, Any]:
        with db.user_unit(caller.db_claims) as unit:
            result = subscriptions.purchase_module(
                unit, user_id=caller.user_id, agency_id=body.agencyId, module_id=module_id,
                billing_cycle=body.billingCycle, markup=markup, provider=get_provider())
        return 201, result

    return idempotent_response(request, scope="purchase", principal=str(caller.user_id),
                               fingerprint={"moduleId": str(module_id), "body": body.model_dump(mode="json")},
                               action=act)


@app.post("/api/webhooks/paddle")
def paddle_webhook(request: Request) -> JSONResponse:
    config = get_payment_config()
    if not config.webhook_secret:
        # Paddle retries non-2xx answers: a missing secret is an outage, not a bad request
        raise ServiceUnavailable("Webhooks are not configured", code="webhook_not_configured")
    event_in = request.scope["aws.event"]
    raw = decode_body(event_in)
    headers = {k.lower(): v for k, v in (event_in.get("headers") or {}).items()}
    try:
        verify(headers.get("paddle-signature"), raw, config.webhook_secret,
               tolerance=config.webhook_tolerance_seconds)
    except SignatureError as exc:
        raise Unauthorized("Invalid webhook signature", code="invalid_signature") from exc
    event = webhooks.parse_event(raw)
    with db.service_unit() as unit:
        outcome = webhooks.apply_event(unit, event)
    return envelope(outcome.as_dict())


@app.get("/api/agencies/{agency_id}/subscriptions",
         response_model=Envelope[list[subscriptions.BilledSubscription]])
def list_subscriptions(agency_id: uuid.UUID, caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(subscriptions.list_agency_subscriptions(unit, agency_id))


@app.patch("/api/agencies/{agency_id}/subscriptions/{subscription_id}",
           response_model=Envelope[subscriptions.BilledSubscription])
def change_markup(agency_id: uuid.UUID, subscription_id: uuid.UUID, body: MarkupRequest,
                  caller: Caller = Depends(current_caller)) -> JSONResponse:
    markup = validate_markup(body.markupType, body.markupValue)
    with db.user_unit(caller.db_claims) as unit:
        return envelope(subscriptions.update_markup(unit, agency_id, subscription_id, markup))


@app.post("/api/sandbox/checkouts/{checkout_id}/complete")
def complete_sandbox_checkout(checkout_id: uuid.UUID, caller: Caller = Depends(current_caller)) -> JSONResponse:
    config = get_payment_config()
    if not config.is_sandbox:
        raise NotFound("No such route", code="route_not_found")
    return envelope(sandbox.complete_checkout(config, caller.db_claims, checkout_id))


handler = lambda_handler(app, service="purchase")
