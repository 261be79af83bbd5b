"""Payment providers behind one small interface: ``create_checkout(CheckoutRequest) -> ProviderCheckout``.

- ``paddle``: Paddle Billing. ``POST {PADDLE_API_URL}/transactions`` with a non-catalog price for the
  module (the agency pays the wholesale price; the markup is what it charges its clients) and our
  ids in ``custom_data``, so ``transaction.completed`` names the subscription it pays for.
- ``sandbox``: no network at all. The checkout names the request that completes it
  (``POST /api/sandbox/checkouts/{checkoutId}/complete``), which sends us a signed Paddle-format
  ``transaction.completed`` webhook (see ``sandbox.py``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from ..core.errors import ApiError
from .config import PaymentConfig, get_payment_config

log = logging.getLogger(__name__)

PADDLE_BILLING_CYCLES: dict[str, dict[str, Any] | None] = {
    "monthly": {"interval": "month", "frequency": 1},
    "yearly": {"interval": "year", "frequency": 1},
    "one_time": None,
}


class PaymentProviderError(ApiError):
    """The provider could not open a checkout (down, misconfigured, refused): nothing was created."""

    status = 502
    code = "payment_provider_error"


class CheckoutRequest(NamedTuple):
    checkout_id: uuid.UUID
    subscription_id: uuid.UUID
    agency_id: uuid.UUID
    module_id: uuid.UUID
    module_slug: str
    module_name: str
    amount_cents: int
    currency: str
    billing_cycle: str

    @property
    def custom_data(self) -> dict[str, str]:
        """Our ids, echoed back by every webhook about this checkout."""
        return {
            "subscription_id": str(self.subscription_id),
            "agency_id": str(self.agency_id),
            "module_id": str(self.module_id),
            "checkout_id": str(self.checkout_id),
        }


class ProviderCheckout(NamedTuple):
    provider: str
    provider_checkout_id: str
    url: str | None


class PaymentProvider(Protocol):
    name: str

    def create_checkout(self, request: CheckoutRequest) -> ProviderCheckout: ...

    def cancel_subscription(self, provider_subscription_id: str, *, period_end: datetime) -> datetime:
        """Schedule the provider's subscription to cancel at the end of its billing period; returns when."""
        ...


def sandbox_complete_path(checkout_id: uuid.UUID) -> str:
    return f"/api/sandbox/checkouts/{checkout_id}/complete"


class SandboxProvider:
    """Local checkouts: completing one is a request to our own API, never a payment."""

    name = "sandbox"

    def create_checkout(self, request: CheckoutRequest) -> ProviderCheckout:
        return ProviderCheckout(
            provider=self.name,
            provider_checkout_id=f"txn_sandbox_{request.checkout_id.hex}",
            url=sandbox_complete_path(request.checkout_id),
        )

    def cancel_subscription(self, provider_subscription_id: str, *, period_end: datetime) -> datetime:
        """The sandbox's period ends when ``POST /api/sandbox/subscriptions/{id}/end-period`` says so;
        until then the cancel is scheduled for the period's end as the subscription's dates give it."""
        return period_end


_http_client: Any = None
_http_lock = threading.Lock()


def _paddle_http(config: PaymentConfig) -> Any:
    """One httpx client per container (connection reuse), created on first use: httpx is imported
    only by functions that talk to Paddle."""
    global _http_client
    if _http_client is None:
        with _http_lock:
            if _http_client is None:
                import httpx

                _http_client = httpx.Client(
                    timeout=httpx.Timeout(config.paddle_timeout_seconds, connect=3.0),
                    # retries apply to failed connections only: a POST that reached Paddle is not repeated
                    transport=httpx.HTTPTransport(retries=2),
                    headers={"user-agent": "dramac-backend/1", "accept": "application/json"},
                )
    return _http_client


def reset_http_client() -> None:
    global _http_client
    with _http_lock:
        if _http_client is not None:
            _http_client.close()
        _http_client = None


class PaddleProvider:
    """Paddle Billing's transactions API."""

    name = "paddle"

    def __init__(self, config: PaymentConfig):
        self.config = config

    def transaction_body(self, request: CheckoutRequest) -> dict[str, Any]:
        return {
            "items": [{
                "quantity": 1,
                "price": {
                    "description": f"{request.module_name} ({request.billing_cycle})",
                    "name": request.module_name,
                    "unit_price": {"amount": str(request.amount_cents), "currency_code": request.currency},
                    "billing_cycle": PADDLE_BILLING_CYCLES[request.billing_cycle],
                    "quantity": {"minimum": 1, "maximum": 1},
                    "product": {"name": request.module_name, "tax_category": self.config.paddle_tax_category,
                                "custom_data": {"module_slug": request.module_slug}},
                },
            }],
            "currency_code": request.currency,
            "collection_mode": "automatic",
            "custom_data": request.custom_data,
        }

    def _post(self, path: str, body: dict[str, Any], refused: str) -> Any:
        """``POST {paddle_api_url}{path}`` with the API key; Paddle's ``data``. A missing key, an
        unreachable API, a refusal (``refused``: what to tell the caller) or an answer without ``data``
        is a ``PaymentProviderError`` (503)."""
        import httpx

        if not self.config.paddle_api_key:
            log.error("PADDLE_API_KEY is not set")
            raise PaymentProviderError("Payments are not configured; try again later")
        try:
            response = _paddle_http(self.config).post(
                f"{self.config.paddle_api_url}{path}", json=body,
                headers={"authorization": f"Bearer {self.config.paddle_api_key}"})
        except httpx.HTTPError as exc:
            log.warning("Paddle unreachable: %s", type(exc).__name__)
            raise PaymentProviderError("The payment provider is unavailable; try again shortly") from exc
        if response.status_code >= 300:
            log.warning("Paddle refused %s", path.split("/", 2)[1],
                        extra={"status": response.status_code, "paddle_error": _paddle_error(response)})
            raise PaymentProviderError(refused)
        try:
            return response.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PaymentProviderError("The payment provider answered unexpectedly; try again later") from exc

    def create_checkout(self, request: CheckoutRequest) -> ProviderCheckout:
        data = self._post("/transactions", self.transaction_body(request),
                          "The payment provider refused the checkout; try again later")
        transaction_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(transaction_id, str) or not transaction_id:
            raise PaymentProviderError("The payment provider answered unexpectedly; try again later")
        url = (data.get("checkout") or {}).get("url")
        return ProviderCheckout(provider=self.name, provider_checkout_id=transaction_id, url=url)

    def cancel_subscription(self, provider_subscription_id: str, *, period_end: datetime) -> datetime:
        """Paddle Billing: ``POST /subscriptions/{id}/cancel`` with ``effective_from: next_billing_period``;
        Paddle answers the scheduled change and sends ``subscription.canceled`` when it takes effect."""
        from urllib.parse import quote

        data = self._post(f"/subscriptions/{quote(provider_subscription_id, safe='')}/cancel",
                          {"effective_from": "next_billing_period"},
                          "The payment provider refused to cancel; try again later")
        try:
            change = data.get("scheduled_change") or {}
            when = change.get("effective_at") or data.get("current_billing_period", {}).get("ends_at")
            return datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else period_end
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PaymentProviderError("The payment provider answered unexpectedly; try again later") from exc


def _paddle_error(response: Any) -> Any:
    try:
        return response.json().get("error")
    except ValueError:
        return response.text[:500]


def get_provider(config: PaymentConfig | None = None) -> PaymentProvider:
    config = config or get_payment_config()
    return PaddleProvider(config) if config.provider == "paddle" else SandboxProvider()
