"""Process settings read from the environment once per container."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEV_JWT_SECRET = "dramac-local-dev-secret-not-for-production"  # noqa: S105 - the documented local default, never used in AWS
DEV_JWT_ISSUER = "dramac-local"
JWT_AUDIENCE = "authenticated"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    database_secret_arn: str | None
    jwt_secret: str
    paddle_webhook_secret: str | None
    payment_provider: str
    sqs_endpoint_url: str | None
    queue_prefix: str
    aws_region: str
    max_body_bytes: int
    pool_max_size: int
    statement_timeout_ms: int
    # how long a request waits for the first request with its Idempotency-Key to finish
    idempotency_wait_ms: int
    # where a completed sandbox checkout delivers its Paddle-format webhook (never a request's Host)
    sandbox_webhook_url: str | None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or None,
        database_secret_arn=os.environ.get("DATABASE_SECRET_ARN") or None,
        jwt_secret=os.environ.get("DRAMAC_JWT_SECRET") or DEV_JWT_SECRET,
        paddle_webhook_secret=os.environ.get("PADDLE_WEBHOOK_SECRET") or None,
        payment_provider=os.environ.get("PAYMENT_PROVIDER", "sandbox"),
        sqs_endpoint_url=os.environ.get("SQS_ENDPOINT_URL") or None,
        queue_prefix=os.environ.get("DRAMAC_QUEUE_PREFIX", "dramac"),
        aws_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        max_body_bytes=_int("DRAMAC_MAX_BODY_BYTES", 1_048_576),
        pool_max_size=_int("DRAMAC_DB_POOL_MAX", 2),
        statement_timeout_ms=_int("DRAMAC_STATEMENT_TIMEOUT_MS", 15_000),
        idempotency_wait_ms=_int("DRAMAC_IDEMPOTENCY_WAIT_MS", 10_000),
        sandbox_webhook_url=os.environ.get("SANDBOX_WEBHOOK_URL") or None,
    )


def reset_settings() -> None:
    """Forget cached settings (tests and the local stack change the environment)."""
    get_settings.cache_clear()
