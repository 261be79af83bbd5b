"""The edge stack (us-east-1, where Lambda@Edge functions must live): CloudFront in front of the
dashboard origin, with the domain router on viewer requests.

The router's code is the stdlib-only bundle ``functions/domain_router/bundle.py`` writes (its
``config.json`` included), built at synth time in pure Python: Lambda@Edge has no environment
variables and no layers, so configuration travels inside the bundle.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from .config import DeployConfig

EDGE_REGION = "us-east-1"
# Lambda@Edge runs x86_64 only, with at most 128 MB and 5 s on viewer requests.
EDGE_RUNTIME = lambda_.Runtime.PYTHON_3_13
EDGE_ARCHITECTURE = lambda_.Architecture.X86_64
# Cached at the edge: the framework's immutable build assets, matched by path PREFIX only. A suffix
# pattern (``*.js``) would also match ``/dashboard;.js`` or ``/dashboard/settings/billing.css``, which an
# origin that ignores ``;...`` (or serves the page for any sub-path) answers with the private page, and
# that page would then sit in the shared cache. Each prefix must be public in the router's configuration.
CACHED_ASSET_PREFIXES = ("/_next/static/",)


class EdgeConfigError(ValueError):
    """The edge stack's behaviours and the router's configuration disagree."""


# AWS managed rule groups on every request the distribution serves, in this order (WAF rule priority).
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")
# The common rule set blocks request bodies over 8 KB; the dashboard's forms (site pages, module
# settings) post more than that, so that one rule only counts. Its other rules stay blocking.
COUNTED_MANAGED_RULES = {"AWSManagedRulesCommonRuleSet": ("SizeRestrictions_BODY",)}


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True)


def web_acl_rules(rate_limit: int) -> list[wafv2.CfnWebACL.RuleProperty]:
    rules = [
        wafv2.CfnWebACL.RuleProperty(
            name=group, priority=priority, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS", name=group,
                    rule_action_overrides=[
                        wafv2.CfnWebACL.RuleActionOverrideProperty(
                            name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}))
                        for rule in COUNTED_MANAGED_RULES.get(group, ())
                    ] or None)),
            visibility_config=_visibility(group),
        )
        for priority, group in enumerate(MANAGED_RULE_GROUPS)
    ]
    rules.append(wafv2.CfnWebACL.RuleProperty(
        name="RatePerIp", priority=len(rules), action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
            limit=int(rate_limit), aggregate_key_type="IP", evaluation_window_sec=300)),
        visibility_config=_visibility("RatePerIp"),
    ))
    return rules


def check_cached_prefixes_are_public(bundle_dir: Path, prefixes: tuple[str, ...] = CACHED_ASSET_PREFIXES) -> None:
    """Refuse to synthesize a cache behaviour for a path the bundled router would not serve publicly."""
    settings = json.loads((bundle_dir / "config.json").read_text(encoding="utf-8"))
    public = [p.rstrip("/") for p in settings.get("public_prefixes", [])]
    for prefix in prefixes:
        if not prefix.startswith("/") or "*" in prefix or not any(
                prefix.rstrip("/") == p or prefix.startswith(p + "/") for p in public):
            raise EdgeConfigError(f"cached path prefix {prefix!r} is not under a public prefix of the domain "
                                  "router: a private page could be cached for everyone")


def router_overrides(config: DeployConfig) -> dict[str, Any]:
    """The router's config overrides: ``dramac:domainRouterConfig``, the API's issuer and audience unless
    given there, and the public keys from ``dramac:domainRouterJwksFile`` (the issuer's jwks.json)."""
    overrides = dict(config.domain_router_config or {})
    overrides.setdefault("issuer", str(config.jwt_issuer))
    overrides.setdefault("audience", next(iter(config.jwt_audience)))
    if config.domain_router_jwks_file and "jwks" not in overrides:
        overrides["jwks"] = json.loads(Path(config.domain_router_jwks_file).read_text(encoding="utf-8"))
    return overrides


def build_domain_router_bundle(bundler: Path, out_dir: Path, overrides: dict[str, Any]) -> tuple[Path, bool]:
    """Run the router's ``build_bundle(out_dir, mode="production", config_overrides=...)`` (pure Python).

    Returns the bundle directory and whether it holds signing keys. Without keys the router can verify
    no session (every protected path redirects to the login page): allowed for synth, warned about.
    """
    spec = importlib.util.spec_from_file_location("dramac_domain_router_bundle", bundler)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    has_keys = bool((overrides.get("jwks") or {}).get("keys"))
    kwargs: dict[str, Any] = {"mode": "production", "config_overrides": overrides or None}
    if not has_keys and "allow_no_keys" in inspect.signature(module.build_bundle).parameters:
        kwargs["allow_no_keys"] = True
    result = module.build_bundle(out_dir, **kwargs)
    return (Path(result) if isinstance(result, (str, Path)) else out_dir), has_keys


class EdgeStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig, bundle_dir: Path,
                 bundle_has_keys: bool = True, handler: str = "app.handler", **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.router_role = role = iam.Role(
            self, "DomainRouterRole",
            assumed_by=iam.CompositePrincipal(iam.ServicePrincipal("lambda.amazonaws.com"),
                                              iam.ServicePrincipal("edgelambda.amazonaws.com")),
            # Replicas log to /aws/lambda/us-east-1.<name> in whichever region serves the request.
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                "service-role/AWSLambdaBasicExecutionRole")],
        )
        self.router = lambda_.Function(
            self, "DomainRouterFunction",
            description="DRAMAC domain router (Lambda@Edge, viewer request)",
            runtime=EDGE_RUNTIME, architecture=EDGE_ARCHITECTURE, handler=handler,
            code=lambda_.Code.from_asset(str(bundle_dir)),
            memory_size=128, timeout=Duration.seconds(5), role=role,
        )
        if not bundle_has_keys:
            Annotations.of(self.router).add_warning_v2(
                "dramac:router-without-keys",
                "the domain router bundle has no public JWKs, so no session is valid: set "
                "dramac:domainRouterJwksFile (the issuer's jwks.json) before deploying")
        self.log_bucket = log_bucket = s3.Bucket(
            self, "AccessLogBucket", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # CloudFront standard logging writes with ACLs.
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.domain_names = domain_names = [str(name) for name in config.edge_domain_names]
        if config.edge_certificate_arn and not domain_names:
            raise EdgeConfigError("dramac:edgeCertificateArn is set without dramac:edgeDomainNames: CloudFront "
                                  "serves a certificate only for alternate domain names")
        certificate: acm.ICertificate | None = None
        self.requested_certificate: acm.Certificate | None = None
        if config.edge_certificate_arn:
            certificate = acm.Certificate.from_certificate_arn(self, "Certificate", config.edge_certificate_arn)
        elif domain_names:
            # Requested here (us-east-1, where CloudFront reads certificates), validated by DNS: the deploy
            # waits until the CNAME records ACM shows are published (docs/deploy.md).
            certificate = self.requested_certificate = acm.Certificate(
                self, "Certificate", domain_name=domain_names[0], subject_alternative_names=domain_names[1:] or None,
                validation=acm.CertificateValidation.from_dns())
        self.has_custom_certificate = certificate is not None
        self.web_acl = wafv2.CfnWebACL(
            self, "WebAcl", scope="CLOUDFRONT", default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            description="DRAMAC edge: AWS managed common and known-bad-inputs rules, a rate limit per IP",
            visibility_config=_visibility("DramacEdge"), rules=web_acl_rules(config.waf_rate_limit),
        )
        check_cached_prefixes_are_public(bundle_dir)
        origin = origins.HttpOrigin(str(config.dashboard_origin_domain),
                                    protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
                                    origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2])
        # The router runs on viewer requests of every behaviour: before the cache lookup, so nothing
        # cached is served without its checks, and a site's rewritten uri (/site/<host>/...) is the key.
        router_on_viewer_requests = [cloudfront.EdgeLambda(
            function_version=self.router.current_version,
            event_type=cloudfront.LambdaEdgeEventType.VIEWER_REQUEST,
        )]
        self.distribution = cloudfront.Distribution(
            self, "Distribution",
            comment="DRAMAC dashboard and sites, routed by host",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                # Pages depend on the session cookie and the host: nothing is cached at the edge by default.
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                edge_lambdas=router_on_viewer_requests,
            ),
            additional_behaviors={
                f"{prefix}*": cloudfront.BehaviorOptions(
                    origin=origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                    # content-hashed build files: the same bytes for every viewer, cached without cookies
                    cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                    edge_lambdas=router_on_viewer_requests,
                )
                for prefix in CACHED_ASSET_PREFIXES
            },
            domain_names=domain_names or None,
            certificate=certificate,
            web_acl_id=self.web_acl.attr_arn,
            # Only a custom certificate lets CloudFront enforce TLS 1.2 (the default one is fixed at TLSv1).
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if certificate else None,
            enable_logging=True, log_bucket=log_bucket, log_file_prefix="cloudfront/",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        CfnOutput(self, "DistributionDomainName", value=self.distribution.distribution_domain_name)
