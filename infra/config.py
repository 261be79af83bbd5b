"""Deployment settings from CDK context (``cdk deploy -c dramac:jwtIssuer=...`` or cdk.json), with the
documented defaults of docs/deploy.md. Nothing here asks AWS: synth stays offline.

``DeployConfig`` is a typed, frozen dataclass: a field per setting, snake_case in Python. Its context
key is ``dramac:`` + the field's name in camelCase (``jwt_issuer`` → ``dramac:jwtIssuer``), the names
docs/deploy.md documents.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from constructs import Node
from pydantic.alias_generators import to_camel

PREFIX = "dramac:"


@dataclass(frozen=True)
class DeployConfig:
    account: str | None = None  # AWS account id; unset = environment-agnostic main stack
    region: str | None = None  # region of the main stack; unset = the CLI's region (environment-agnostic)
    stack_prefix: str = "Dramac"  # stack names: <prefix>Backend, <prefix>Edge
    # The JWT authorizer: Supabase Auth's issuer and the "authenticated" audience of its tokens.
    jwt_issuer: str = "https://YOUR-PROJECT-REF.supabase.co/auth/v1"
    jwt_audience: list[str] = field(default_factory=lambda: ["authenticated"])
    cors_allow_origins: list[str] = field(default_factory=lambda: ["https://app.dramac.app", "https://dramac.app"])
    throttle_rate_limit: int = 100  # steady requests per second across the API (stage default)
    throttle_burst_limit: int = 200
    log_level: str = "INFO"
    log_retention_days: int = 30
    payment_provider: str = "paddle"
    nat_gateways: int = 1  # 2 for AZ-redundant egress (Paddle, webhooks from workflow steps)
    db_min_capacity: float = 0.5  # Aurora Serverless v2 ACUs
    db_max_capacity: float = 4
    db_deletion_protection: bool = True
    db_backup_retention_days: int = 7
    alarm_email: str = ""  # subscribed to the alarm topic when set
    ses_identity: str = "dramac.app"  # the verified SES identity send_email steps send from
    queue_age_alarm_seconds: int = 300  # the oldest message waiting longer than this raises an alarm
    force_migrate: str = ""  # any new value re-runs the migration trigger even if migrations are unchanged
    # Edge (us-east-1): CloudFront in front of the dashboard with the domain router.
    dashboard_origin_domain: str = "dashboard-origin.dramac.app"
    # Alternate domain names: with them, a certificate (edge_certificate_arn, or one the stack requests
    # from ACM with DNS validation) and TLSv1.2_2021 as the minimum viewer protocol.
    edge_domain_names: list[str] = field(default_factory=list)
    edge_certificate_arn: str = ""  # an ACM certificate in us-east-1 covering every edge_domain_names entry
    # AWS WAF on the distribution: requests one IP may make in 5 minutes before it is blocked.
    waf_rate_limit: int = 2000
    domain_router_config: dict[str, Any] = field(default_factory=dict)  # config_overrides for bundle.py (snake_case)
    domain_router_jwks_file: str = ""  # the issuer's public JWK set (jwks.json) the router verifies sessions with

    @staticmethod
    def context_key(name: str) -> str:
        """``jwt_issuer`` → ``dramac:jwtIssuer``."""
        return PREFIX + to_camel(name)

    @classmethod
    def from_node(cls, node: Node) -> DeployConfig:
        values: dict[str, Any] = {}
        defaults = cls()
        for item in dataclasses.fields(cls):
            raw = node.try_get_context(cls.context_key(item.name))
            if raw is not None:
                values[item.name] = _decode(raw, getattr(defaults, item.name))
        return cls(**values)


def _decode(value: Any, default: Any) -> Any:
    """``-c key=value`` arrives as a string; lists, numbers and booleans are given as JSON."""
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return [v.strip() for v in value.split(",") if v.strip()] if isinstance(default, list) else value
    return value
