"""Every setting of the layer and the functions, read from the environment once per container.

``get_settings()`` is the one place an environment variable is read (the domain router, a
standard-library bundle without environment variables at the edge, has its own ``config.json``).
Settings are read on first use and cached; ``reset_settings()`` forgets them (tests and the local
stack change the environment). A ``NamedTuple`` rather than pydantic-settings: reading ~50
variables needs no parsing library, and the queue workers import nothing more at cold start. Not a
frozen dataclass either: making one of ~50 fields generates and compiles its methods at every cold
start (2% of a hello-world FastAPI's cold-start instructions); named tuples are as immutable and typed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

DEV_JWT_SECRET = "dramac-local-dev-secret-not-for-production"  # noqa: S105 - the documented local default, never used in AWS
DEV_JWT_ISSUER = "dramac-local"
JWT_AUDIENCE = "authenticated"
# Local default only: with PAYMENT_PROVIDER=sandbox and no PADDLE_WEBHOOK_SECRET, the sandbox signs
# and the webhook verifies with this documented value. With paddle, a secret must be configured.
SANDBOX_WEBHOOK_SECRET = "dramac-sandbox-paddle-webhook-secret"  # noqa: S105 - documented local default
PADDLE_SANDBOX_API_URL = "https://sandbox-api.paddle.com"
QUEUE_NAMES = ("provision", "events")  # logical names: core.queues sends to <prefix>-<name>


class PlanLimits(NamedTuple):
    """What one plan allows a site (docs/limits.md). Rates are token buckets: ``*_rate`` tokens per second
    refill a bucket of ``*_burst``; a request on the data and events routes takes one from its site's
    bucket and, with an API key, one from the key's."""

    site_rate: float
    site_burst: int
    key_rate: float
    key_burst: int
    max_running_executions: int  # workflow executions of one site running at once; more wait, queued
    max_executions_per_hour: int  # executions a site may start per rolling hour; more are not run


DEFAULT_PLAN_LIMITS: dict[str, PlanLimits] = {
    "free": PlanLimits(site_rate=5, site_burst=20, key_rate=2, key_burst=10, max_running_executions=2,
                       max_executions_per_hour=500),
    "standard": PlanLimits(site_rate=50, site_burst=200, key_rate=25, key_burst=100, max_running_executions=10,
                           max_executions_per_hour=10_000),
    "pro": PlanLimits(site_rate=200, site_burst=800, key_rate=100, key_burst=400, max_running_executions=50,
                      max_executions_per_hour=100_000),
}
_PLAN_FIELDS = {"siteRate": "site_rate", "siteBurst": "site_burst", "keyRate": "key_rate", "keyBurst": "key_burst",
                "maxRunningExecutions": "max_running_executions", "maxExecutionsPerHour": "max_executions_per_hour"}


def _plan_limits(raw: str | None) -> dict[str, PlanLimits]:
    """``DRAMAC_PLAN_LIMITS``: JSON ``{"<plan>": {"siteRate": 20, ...}}``; a plan's missing fields come from the
    built-in plan of that name (else ``standard``). Refused at start when malformed: limits never fail open."""
    import json

    plans = dict(DEFAULT_PLAN_LIMITS)
    if not raw:
        return plans
    given = json.loads(raw)
    if not isinstance(given, dict):
        raise ValueError("DRAMAC_PLAN_LIMITS must be a JSON object of plans")
    for name, fields in given.items():
        if not isinstance(fields, dict) or set(fields) - set(_PLAN_FIELDS):
            raise ValueError(f"DRAMAC_PLAN_LIMITS.{name}: an object of {', '.join(_PLAN_FIELDS)}")
        base = plans.get(name, DEFAULT_PLAN_LIMITS["standard"])
        values = {**base._asdict(), **{_PLAN_FIELDS[k]: v for k, v in fields.items()}}
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values.values()) \
                or values["site_burst"] < 1 or values["key_burst"] < 1:
            raise ValueError(f"DRAMAC_PLAN_LIMITS.{name}: every limit is a positive number, bursts at least 1")
        plans[name] = PlanLimits(**values)
    return plans


class Settings(NamedTuple):
    # database
    database_url: str | None  # DATABASE_URL; else built from the secret below
    database_secret_arn: str | None  # DATABASE_SECRET_ARN: the Secrets Manager secret of the cluster
    database_proxy_host: str | None  # DATABASE_PROXY_HOST: connect through RDS Proxy instead of the secret's host
    database_name: str | None  # DATABASE_NAME
    database_sslmode: str  # DATABASE_SSLMODE (require)
    pool_max_size: int  # DRAMAC_DB_POOL_MAX (2)
    statement_timeout_ms: int  # DRAMAC_STATEMENT_TIMEOUT_MS (15,000)
    migrations_dir: Path | None  # DRAMAC_MIGRATIONS_DIR; else the repository's (or the bundled) migrations/
    # who is calling
    jwt_secret: str  # DRAMAC_JWT_SECRET, else the dev default
    jwt_secret_configured: bool  # whether DRAMAC_JWT_SECRET is set (in AWS the dev default is refused)
    jwt_audience: str  # DRAMAC_JWT_AUDIENCE (authenticated)
    jwt_issuer: str | None  # DRAMAC_JWT_ISSUER
    jwt_jwks_url: str | None  # DRAMAC_JWT_JWKS_URL: handler-verified bearers are RS256/ES256 from this set
    api_key_rotation_overlap_seconds: int  # DRAMAC_API_KEY_ROTATION_OVERLAP_SECONDS (24 h)
    # HTTP
    max_body_bytes: int  # DRAMAC_MAX_BODY_BYTES (1 MiB)
    idempotency_wait_ms: int  # DRAMAC_IDEMPOTENCY_WAIT_MS: how long a twin waits for the first request
    # AWS and the runtime
    aws_region: str  # AWS_REGION, AWS_DEFAULT_REGION (us-east-1)
    in_lambda: bool  # AWS_LAMBDA_FUNCTION_NAME is set
    tracing_disabled: bool  # POWERTOOLS_TRACE_DISABLED
    log_level: str  # LOG_LEVEL (INFO)
    sqs_endpoint_url: str | None  # SQS_ENDPOINT_URL (the local stack's moto)
    queue_prefix: str  # DRAMAC_QUEUE_PREFIX (dramac)
    queue_urls: Mapping[str, str]  # <NAME>_QUEUE_URL per logical queue; looked up by name when unset
    provision_max_receives: int  # PROVISION_MAX_RECEIVES (5): the provision queue's maxReceiveCount
    # payments
    payment_provider: str  # PAYMENT_PROVIDER: paddle | sandbox (sandbox)
    paddle_webhook_secret: str | None  # PADDLE_WEBHOOK_SECRET
    paddle_webhook_tolerance_seconds: int  # PADDLE_WEBHOOK_TOLERANCE_SECONDS (300)
    paddle_api_url: str  # PADDLE_API_URL (the Paddle sandbox API)
    paddle_api_key: str | None  # PADDLE_API_KEY
    paddle_tax_category: str  # PADDLE_TAX_CATEGORY (standard)
    paddle_api_timeout_seconds: float  # PADDLE_API_TIMEOUT_SECONDS (10)
    sandbox_webhook_url: str | None  # SANDBOX_WEBHOOK_URL: where a completed sandbox checkout delivers
    # automation
    automation_lease_seconds: float  # AUTOMATION_LEASE_SECONDS (120): a running execution's lease
    automation_relay_grace_seconds: float  # AUTOMATION_RELAY_GRACE_SECONDS (60)
    automation_max_relay_resumes: int  # AUTOMATION_MAX_RELAY_RESUMES (5): then a stalled execution fails
    automation_email_from: str | None  # AUTOMATION_EMAIL_FROM: the verified SES sender of send_email
    ses_endpoint_url: str | None  # SES_ENDPOINT_URL (the local stack's moto)
    automation_allow_private_http: bool  # AUTOMATION_ALLOW_PRIVATE_HTTP: http_request may call private addresses
    automation_http_backoff_base_s: float  # AUTOMATION_HTTP_BACKOFF_BASE_S (0.5)
    automation_kms_key_id: str | None  # AUTOMATION_KMS_KEY_ID: the KMS key wrapping connection data keys
    kms_endpoint_url: str | None  # KMS_ENDPOINT_URL (the local stack's moto)
    # a module's life on a site: exports and purges
    exports_bucket: str  # DRAMAC_EXPORTS_BUCKET (dramac-exports): where module data exports are stored
    s3_endpoint_url: str | None  # S3_ENDPOINT_URL (the local stack's moto)
    export_url_ttl_seconds: int  # DRAMAC_EXPORT_URL_TTL_SECONDS (3600): how long a download link works
    purge_grace_seconds: int  # DRAMAC_PURGE_GRACE_SECONDS (7 days): how long a purge can be undone
    # limits per plan (an agency's plan: private.agency_plans, else the default)
    plan_limits: Mapping[str, PlanLimits]  # DRAMAC_PLAN_LIMITS (JSON) over DEFAULT_PLAN_LIMITS
    default_plan: str  # DRAMAC_DEFAULT_PLAN (standard)
    automation_max_chain_depth: int  # AUTOMATION_MAX_CHAIN_DEPTH (5): events this many steps deep start nothing
    # retention (functions/retention)
    retention_executions_days: int  # RETENTION_EXECUTIONS_DAYS (30): finished executions, with their step logs
    retention_step_logs_days: int  # RETENTION_STEP_LOGS_DAYS (0: as executions); shorter keeps executions longer
    retention_events_days: int  # RETENTION_EVENTS_DAYS (30): the automation events log
    retention_batch_size: int  # RETENTION_BATCH_SIZE (5000): rows per delete transaction


def _text(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name) or None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return int(raw) if raw else default


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return float(raw) if raw else default


def _flag(env: Mapping[str, str], name: str, true: tuple[str, ...] = ("1", "true")) -> bool:
    return env.get(name, "").strip().lower() in true


def read_settings(env: Mapping[str, str]) -> Settings:
    """Settings from an environment mapping (``os.environ`` in ``get_settings``)."""
    migrations = _text(env, "DRAMAC_MIGRATIONS_DIR")
    return Settings(
        database_url=_text(env, "DATABASE_URL"),
        database_secret_arn=_text(env, "DATABASE_SECRET_ARN"),
        database_proxy_host=_text(env, "DATABASE_PROXY_HOST"),
        database_name=_text(env, "DATABASE_NAME"),
        database_sslmode=env.get("DATABASE_SSLMODE", "require"),
        pool_max_size=_int(env, "DRAMAC_DB_POOL_MAX", 2),
        statement_timeout_ms=_int(env, "DRAMAC_STATEMENT_TIMEOUT_MS", 15_000),
        migrations_dir=Path(migrations) if migrations else None,
        jwt_secret=env.get("DRAMAC_JWT_SECRET") or DEV_JWT_SECRET,
        jwt_secret_configured=bool(env.get("DRAMAC_JWT_SECRET")),
        jwt_audience=env.get("DRAMAC_JWT_AUDIENCE") or JWT_AUDIENCE,
        jwt_issuer=_text(env, "DRAMAC_JWT_ISSUER"),
        jwt_jwks_url=_text(env, "DRAMAC_JWT_JWKS_URL"),
        api_key_rotation_overlap_seconds=_int(env, "DRAMAC_API_KEY_ROTATION_OVERLAP_SECONDS", 24 * 3600),
        max_body_bytes=_int(env, "DRAMAC_MAX_BODY_BYTES", 1_048_576),
        idempotency_wait_ms=_int(env, "DRAMAC_IDEMPOTENCY_WAIT_MS", 10_000),
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        in_lambda=bool(env.get("AWS_LAMBDA_FUNCTION_NAME")),
        tracing_disabled=_flag(env, "POWERTOOLS_TRACE_DISABLED"),
        log_level=env.get("LOG_LEVEL", "INFO"),
        sqs_endpoint_url=_text(env, "SQS_ENDPOINT_URL"),
        queue_prefix=env.get("DRAMAC_QUEUE_PREFIX", "dramac"),
        queue_urls={name: url for name in QUEUE_NAMES if (url := env.get(f"{name.upper()}_QUEUE_URL"))},
        provision_max_receives=_int(env, "PROVISION_MAX_RECEIVES", 5),
        payment_provider=env.get("PAYMENT_PROVIDER", "sandbox"),
        paddle_webhook_secret=_text(env, "PADDLE_WEBHOOK_SECRET"),
        paddle_webhook_tolerance_seconds=_int(env, "PADDLE_WEBHOOK_TOLERANCE_SECONDS", 300),
        paddle_api_url=(env.get("PADDLE_API_URL") or PADDLE_SANDBOX_API_URL).rstrip("/"),
        paddle_api_key=_text(env, "PADDLE_API_KEY"),
        paddle_tax_category=env.get("PADDLE_TAX_CATEGORY") or "standard",
        paddle_api_timeout_seconds=_float(env, "PADDLE_API_TIMEOUT_SECONDS", 10),
        sandbox_webhook_url=_text(env, "SANDBOX_WEBHOOK_URL"),
        automation_lease_seconds=_float(env, "AUTOMATION_LEASE_SECONDS", 120),
        automation_relay_grace_seconds=_float(env, "AUTOMATION_RELAY_GRACE_SECONDS", 60),
        automation_max_relay_resumes=_int(env, "AUTOMATION_MAX_RELAY_RESUMES", 5),
        automation_email_from=_text(env, "AUTOMATION_EMAIL_FROM"),
        ses_endpoint_url=_text(env, "SES_ENDPOINT_URL"),
        automation_allow_private_http=_flag(env, "AUTOMATION_ALLOW_PRIVATE_HTTP", ("1", "true", "yes")),
        automation_http_backoff_base_s=_float(env, "AUTOMATION_HTTP_BACKOFF_BASE_S", 0.5),
        automation_kms_key_id=_text(env, "AUTOMATION_KMS_KEY_ID"),
        kms_endpoint_url=_text(env, "KMS_ENDPOINT_URL"),
        exports_bucket=env.get("DRAMAC_EXPORTS_BUCKET") or "dramac-exports",
        s3_endpoint_url=_text(env, "S3_ENDPOINT_URL"),
        export_url_ttl_seconds=_int(env, "DRAMAC_EXPORT_URL_TTL_SECONDS", 3600),
        purge_grace_seconds=_int(env, "DRAMAC_PURGE_GRACE_SECONDS", 7 * 24 * 3600),
        plan_limits=_plan_limits(_text(env, "DRAMAC_PLAN_LIMITS")),
        default_plan=env.get("DRAMAC_DEFAULT_PLAN") or "standard",
        automation_max_chain_depth=_int(env, "AUTOMATION_MAX_CHAIN_DEPTH", 5),
        retention_executions_days=_int(env, "RETENTION_EXECUTIONS_DAYS", 30),
        retention_step_logs_days=_int(env, "RETENTION_STEP_LOGS_DAYS", 0),
        retention_events_days=_int(env, "RETENTION_EVENTS_DAYS", 30),
        retention_batch_size=_int(env, "RETENTION_BATCH_SIZE", 5000),
    )


def plan_limits(plan: str | None) -> PlanLimits:
    """The limits of ``plan`` (the default plan's when it is unknown or None)."""
    settings = get_settings()
    return settings.plan_limits.get(plan or settings.default_plan) or settings.plan_limits.get(
        settings.default_plan, DEFAULT_PLAN_LIMITS["standard"])


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return read_settings(os.environ)


def reset_settings() -> None:
    """Forget cached settings (tests and the local stack change the environment)."""
    get_settings.cache_clear()
