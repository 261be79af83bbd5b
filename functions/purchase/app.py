"""Paid modules: purchase with agency markup, the Paddle webhook, and the agency's subscriptions.
Capability: ``dramac_common.payments``.

Routes:
  POST  /api/modules/{moduleId}/purchase                      start a purchase (owner; Idempotency-Key honoured)
  POST  /api/webhooks/paddle                                  Paddle notifications (signature, no JWT)
  GET   /api/agencies/{agencyId}/subscriptions                subscriptions with prices (read)
  PATCH /api/agencies/{agencyId}/subscriptions/{subscriptionId} change the markup (owner)
  POST  /api/sandbox/checkouts/{checkoutId}/complete          complete a sandbox checkout (owner; sandbox only)
"""

import uuid
from typing import Any, Literal

from dramac_common.core import db
from dramac_common.core.api import (
    AgencyId,
    CheckoutId,
    ModuleId,
    SubscriptionId,
    create_app,
    decode_body,
    envelope,
    lambda_handler,
)
from dramac_common.core.auth import CallerDep
from dramac_common.core.errors import NotFound, ServiceUnavailable, Unauthorized
from dramac_common.core.idempotency import IdempotencyKey, idempotent_response
from dramac_common.core.wire import CamelModel, Envelope
from dramac_common.payments import cancel, sandbox, subscriptions, webhooks
from dramac_common.payments.cancel import CanceledSubscription
from dramac_common.payments.config import get_payment_config
from dramac_common.payments.markup import validate_markup
from dramac_common.payments.providers import get_provider
from dramac_common.payments.signature import SignatureError, verify
from dramac_common.payments.subscriptions import BilledSubscription, Purchase
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import StrictInt

app = create_app("DRAMAC marketplace: purchase")

MarkupType = Literal["none", "percentage", "fixed"]


class PurchaseRequest(CamelModel):
    agency_id: uuid.UUID
    billing_cycle: Literal["one_time", "monthly", "yearly"] | None = None
    markup_type: MarkupType | None = None
    markup_value: StrictInt | None = None


class MarkupRequest(CamelModel):
    markup_type: MarkupType
    markup_value: StrictInt | None = None


class WebhookOutcome(CamelModel):
    event_id: str
    event_type: str
    outcome: str
    subscription_id: uuid.UUID | None
    status: str | None


class SandboxCompletion(CamelModel):
    checkout_id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: str
    event_type: str
    webhook: dict[str, Any]  # the delivery: url, status and the webhook's answer


@app.post("/api/modules/{moduleId}/purchase", response_model=Envelope[Purchase], status_code=201)
def purchase(module_id: ModuleId, body: PurchaseRequest, request: Request, caller: CallerDep,
             idempotency_key: IdempotencyKey = None) -> Response:
    markup = validate_markup(body.markup_type, body.markup_value)

    def act() -> tuple[int, Any]:
        with db.user_unit(caller.db_claims) as unit:
            result = subscriptions.purchase_module(
                unit, user_id=caller.user_id, agency_id=body.agency_id, module_id=module_id,
                billing_cycle=body.billing_cycle, markup=markup, provider=get_provider())
        return 201, result

    return idempotent_response(request, scope="purchase", principal=str(caller.user_id),
                               fingerprint={"moduleId": str(module_id), "body": body.model_dump(mode="json", by_alias=True)},
                               action=act)


@app.post("/api/webhooks/paddle", response_model=Envelope[WebhookOutcome])
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


@app.get("/api/agencies/{agencyId}/subscriptions", response_model=Envelope[list[BilledSubscription]])
def list_subscriptions(agency_id: AgencyId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(subscriptions.list_agency_subscriptions(unit, agency_id))


@app.patch("/api/agencies/{agencyId}/subscriptions/{subscriptionId}", response_model=Envelope[BilledSubscription])
def change_markup(agency_id: AgencyId, subscription_id: SubscriptionId, body: MarkupRequest,
                  caller: CallerDep) -> JSONResponse:
    markup = validate_markup(body.markup_type, body.markup_value)
    with db.user_unit(caller.db_claims) as unit:
        return envelope(subscriptions.update_markup(unit, agency_id, subscription_id, markup))


@app.post("/api/sandbox/checkouts/{checkoutId}/complete", response_model=Envelope[SandboxCompletion])
def complete_sandbox_checkout(checkout_id: CheckoutId, caller: CallerDep) -> JSONResponse:
    config = get_payment_config()
    if not config.is_sandbox:
        raise NotFound("No such route", code="route_not_found")
    return envelope(sandbox.complete_checkout(config, caller.db_claims, checkout_id))


@app.post("/api/agencies/{agencyId}/subscriptions/{subscriptionId}/cancel",
          response_model=Envelope[CanceledSubscription])
def cancel_subscription(agency_id: AgencyId, subscription_id: SubscriptionId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        canceled, status = cancel.cancel_subscription(unit, agency_id, subscription_id, provider=get_provider())
    return envelope(canceled, status_code=status)


@app.post("/api/sandbox/subscriptions/{subscriptionId}/end-period", response_model=Envelope[dict[str, Any]])
def end_sandbox_period(subscription_id: SubscriptionId, caller: CallerDep) -> JSONResponse:
    config = get_payment_config()
    if not config.is_sandbox:
        raise NotFound("No such route", code="route_not_found")
    return envelope(sandbox.end_period(config, caller.db_claims, subscription_id))


handler = lambda_handler(app, service="purchase")
