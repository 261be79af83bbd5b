"""Deployment settings from CDK context (``cdk deploy -c dramac:jwtIssuer=...`` or cdk.json), with the
documented defaults of the README's Deploy section. Nothing here asks AWS: synth stays offline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from constructs import Node

PREFIX = "dramac:"

# Every context key the app reads, its default, and what it is for (the README's Deploy section lists the same).
DEFAULTS: dict[str, Any] = {
    "account": None,  # AWS account id; unset = environment-agnostic main stack
    "region": None,  # region of the main stack; unset = the CLI's region (environment-agnostic)
    "stackPrefix": "Dramac",  # stack names: <prefix>Backend, <prefix>Edge
    # The JWT authorizer: Supabase Auth's issuer and the "authenticated" audience of its tokens.
    "jwtIssuer": "https://YOUR-PROJECT-REF.supabase.co/auth/v1",
    "jwtAudience": ["authenticated"],
    "corsAllowOrigins": ["https://app.dramac.app", "https://dramac.app"],
    "throttleRateLimit": 100,  # steady requests per second across the API (stage default)
    "throttleBurstLimit": 200,
    "logLevel": "INFO",
    "logRetentionDays": 30,
    "paymentProvider": "paddle",
    "natGateways": 1,  # 2 for AZ-redundant egress (Paddle, webhooks from workflow steps)
    "dbMinCapacity": 0.5,  # Aurora Serverless v2 ACUs
    "dbMaxCapacity": 4,
    "dbDeletionProtection": True,
    "dbBackupRetentionDays": 7,
    "alarmEmail": "",  # subscribed to the alarm topic when set
    "sesIdentity": "dramac.app",  # the verified SES identity send_email steps send from
    "queueAgeAlarmSeconds": 300,  # the oldest message waiting longer than this raises an alarm
    "forceMigrate": "",  # any new value re-runs the migration trigger even if migrations are unchanged
    # Edge (us-east-1): CloudFront in front of the dashboard with the domain router.
    "dashboardOriginDomain": "dashboard-origin.dramac.app",
    "edgeDomainNames": [],  # alternate domain names (need edgeCertificateArn, in us-east-1)
    "edgeCertificateArn": "",
    "domainRouterConfig": {},  # config_overrides for functions/domain_router/bundle.py (snake_case keys)
    "domainRouterJwksFile": "",  # the issuer's public JWK set (jwks.json) the router verifies sessions with
}


def _decode(value: Any, default: Any) -> Any:
    """``-c key=value`` arrives as a string; lists, numbers and booleans are given as JSON."""
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return [v.strip() for v in value.split(",") if v.strip()] if isinstance(default, list) else value
    return value


@dataclass(frozen=True)
class DeployConfig:
    values: dict[str, Any]

    @classmethod
    def from_node(cls, node: Node) -> DeployConfig:
        values = {}
        for key, default in DEFAULTS.items():
            raw = node.try_get_context(PREFIX + key)
            values[key] = default if raw is None else _decode(raw, default)
        return cls(values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None
