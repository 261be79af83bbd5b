"""Payment settings, read from the environment (cheap: a handful of lookups, never cached stale).

``PAYMENT_PROVIDER`` (``paddle`` | ``sandbox``), ``PADDLE_WEBHOOK_SECRET``, ``PADDLE_API_URL``
(default the Paddle sandbox API), ``PADDLE_API_KEY``, ``PADDLE_WEBHOOK_TOLERANCE_SECONDS`` (300),
``PADDLE_TAX_CATEGORY`` (``standard``), ``SANDBOX_WEBHOOK_URL`` (where the sandbox delivers its
webhooks: from configuration only, never from a request; ``dramac dev`` sets it to its own gateway).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..settings import get_settings
from .signature import DEFAULT_TOLERANCE_SECONDS

# Local default only: with PAYMENT_PROVIDER=sandbox and no PADDLE_WEBHOOK_SECRET, the sandbox signs
# and the webhook verifies with this documented value. With paddle, a secret must be configured.
SANDBOX_WEBHOOK_SECRET = "dramac-sandbox-paddle-webhook-secret"  # noqa: S105 - documented local default
PADDLE_SANDBOX_API_URL = "https://sandbox-api.paddle.com"
PROVIDERS = ("paddle", "sandbox")


@dataclass(frozen=True)
class PaymentConfig:
    provider: str
    webhook_secret: str | None
    webhook_tolerance_seconds: int
    paddle_api_url: str
    paddle_api_key: str | None
    paddle_tax_category: str
    paddle_timeout_seconds: float
    sandbox_webhook_url: str | None

    @property
    def is_sandbox(self) -> bool:
        return self.provider == "sandbox"


def get_payment_config() -> PaymentConfig:
    settings = get_settings()
    provider = settings.payment_provider
    if provider not in PROVIDERS:
        raise RuntimeError(f"PAYMENT_PROVIDER must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    secret = settings.paddle_webhook_secret or (SANDBOX_WEBHOOK_SECRET if provider == "sandbox" else None)
    return PaymentConfig(
        provider=provider,
        webhook_secret=secret,
        webhook_tolerance_seconds=int(os.environ.get("PADDLE_WEBHOOK_TOLERANCE_SECONDS") or DEFAULT_TOLERANCE_SECONDS),
        paddle_api_url=(os.environ.get("PADDLE_API_URL") or PADDLE_SANDBOX_API_URL).rstrip("/"),
        paddle_api_key=os.environ.get("PADDLE_API_KEY") or None,
        paddle_tax_category=os.environ.get("PADDLE_TAX_CATEGORY") or "standard",
        paddle_timeout_seconds=float(os.environ.get("PADDLE_API_TIMEOUT_SECONDS") or 10),
        sandbox_webhook_url=settings.sandbox_webhook_url,
    )
