"""Payment settings: the provider and Paddle's, from ``core.settings`` (``PAYMENT_PROVIDER``,
``PADDLE_WEBHOOK_SECRET``, ``PADDLE_API_URL``, ``PADDLE_API_KEY``, ``PADDLE_WEBHOOK_TOLERANCE_SECONDS``,
``PADDLE_TAX_CATEGORY``, ``PADDLE_API_TIMEOUT_SECONDS``, ``SANDBOX_WEBHOOK_URL``: where the sandbox
delivers its webhooks, from configuration only, never from a request; ``dramac dev`` sets it to its
own gateway).
"""

from __future__ import annotations

from typing import NamedTuple

from ..core.settings import SANDBOX_WEBHOOK_SECRET, get_settings

PROVIDERS = ("paddle", "sandbox")


class PaymentConfig(NamedTuple):
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
        webhook_tolerance_seconds=settings.paddle_webhook_tolerance_seconds,
        paddle_api_url=settings.paddle_api_url,
        paddle_api_key=settings.paddle_api_key,
        paddle_tax_category=settings.paddle_tax_category,
        paddle_timeout_seconds=settings.paddle_api_timeout_seconds,
        sandbox_webhook_url=settings.sandbox_webhook_url,
    )
