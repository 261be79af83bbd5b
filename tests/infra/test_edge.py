"""The edge stack: the domain router as Lambda@Edge on CloudFront, in us-east-1.

``real_edge`` bundles the router from a JWKS file; ``configured_synth`` from inline context settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session", params=["inline-config", "jwks-file"])
def edge(request):
    return request.getfixturevalue("configured_synth" if request.param == "inline-config" else "real_edge")


def test_edge_stack_is_in_us_east_1(edge):
    assert edge.edge.region == "us-east-1"


def test_domain_router_runs_on_viewer_requests_of_the_distribution(edge):
    (distribution,) = edge.resources("AWS::CloudFront::Distribution", "edge").values()
    behavior = distribution["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    (association,) = behavior["LambdaFunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    version = association["LambdaFunctionARN"]["Ref"]
    router = edge.logical_id(edge.edge.router)
    assert edge.edge_template["Resources"][version]["Properties"]["FunctionName"] == {"Ref": router}
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"


def test_distribution_fronts_the_dashboard_origin(edge):
    (distribution,) = edge.resources("AWS::CloudFront::Distribution", "edge").values()
    (origin,) = distribution["Properties"]["DistributionConfig"]["Origins"]
    assert origin["DomainName"] == "dashboard-origin.dramac.app"
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"


def test_edge_function_fits_lambda_edge_limits(edge):
    props = edge.edge_template["Resources"][edge.logical_id(edge.edge.router)]["Properties"]
    assert props["Architectures"] == ["x86_64"]  # Lambda@Edge runs x86_64 only
    assert props["MemorySize"] <= 128 and props["Timeout"] <= 5
    assert "Environment" not in props and "Layers" not in props
    assert props["Runtime"].startswith("python3.1")


def test_edge_role_can_be_assumed_by_lambda_at_edge(edge):
    role = edge.edge_template["Resources"][edge.logical_id(edge.edge.router_role)]["Properties"]
    services = {p for s in role["AssumeRolePolicyDocument"]["Statement"] for p in
                (s["Principal"]["Service"] if isinstance(s["Principal"]["Service"], list) else [s["Principal"]["Service"]])}
    assert {"lambda.amazonaws.com", "edgelambda.amazonaws.com"} <= services


def _bundled_config(synth) -> dict:
    return json.loads((Path(synth.outdir) / ".dramac-staging" / "domain_router" / "config.json").read_text())


def test_domain_router_bundle_carries_its_config_json(edge):
    config = _bundled_config(edge)
    assert config["mode"] == "production"
    assert config["issuer"] == "https://issuer.example.test/auth/v1"  # the API's issuer, from context


def test_router_verifies_sessions_with_the_public_keys_from_the_jwks_file(real_edge):
    (key,) = _bundled_config(real_edge)["jwks"]["keys"]
    assert key["kty"] == "EC" and "d" not in key


def test_router_config_overrides_come_from_context(configured_synth):
    assert _bundled_config(configured_synth)["app_domains"] == ["app.example.test"]


def test_distribution_writes_access_logs(edge):
    (distribution,) = edge.resources("AWS::CloudFront::Distribution", "edge").values()
    assert distribution["Properties"]["DistributionConfig"]["Logging"]["Bucket"]


def test_app_without_a_router_bundle_skips_the_edge_stack(synth, tmp_path):
    from infra import catalog

    (tmp_path / "subscribe").mkdir()
    (tmp_path / "subscribe" / "app.py").write_text("def handler(event, context): ...\n")
    assert catalog.domain_router_bundler(tmp_path) is None  # app.py builds no edge stack then
    assert (synth.edge is None) == (catalog.domain_router_bundler() is None)


def _behaviours(edge) -> tuple[dict, list[dict]]:
    (distribution,) = edge.resources("AWS::CloudFront::Distribution", "edge").values()
    config = distribution["Properties"]["DistributionConfig"]
    return config["DefaultCacheBehavior"], config.get("CacheBehaviors", [])


CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # AWS managed policy "CachingDisabled"


def test_the_router_runs_before_every_behaviour_cached_or_not(edge):
    default, others = _behaviours(edge)
    router_version = default["LambdaFunctionAssociations"][0]["LambdaFunctionARN"]
    for behaviour in others:
        (association,) = behaviour["LambdaFunctionAssociations"]
        assert association["EventType"] == "viewer-request"
        assert association["LambdaFunctionARN"] == router_version


def test_only_public_asset_prefixes_are_cached_never_a_path_ending(edge):
    """A behaviour like `*.js` would match `/dashboard;.js`: a private page cached as an asset."""
    default, others = _behaviours(edge)
    assert default["CachePolicyId"] == CACHING_DISABLED
    public = [p.rstrip("/") for p in _bundled_config(edge)["public_prefixes"]]
    cached = [b for b in others if b["CachePolicyId"] != CACHING_DISABLED]
    assert cached, "build assets should be cached at the edge"
    for behaviour in cached:
        pattern = behaviour["PathPattern"]
        assert pattern.startswith("/") and pattern.endswith("/*") and "*" not in pattern[:-1], pattern
        prefix = pattern[:-2]
        assert any(prefix == p or prefix.startswith(p + "/") for p in public), pattern
        assert behaviour["AllowedMethods"] == ["GET", "HEAD"]


def test_a_cached_prefix_the_router_keeps_private_refuses_to_synthesize(tmp_path):
    from infra.edge_stack import EdgeConfigError, check_cached_prefixes_are_public

    (tmp_path / "config.json").write_text(json.dumps({"public_prefixes": ["/login", "/_next/static"]}))
    check_cached_prefixes_are_public(tmp_path, ("/_next/static/",))
    for prefix in ("/dashboard/", "*.js", "/_next/"):
        with pytest.raises(EdgeConfigError):
            check_cached_prefixes_are_public(tmp_path, (prefix,))


def _distribution_config(synth) -> dict:
    (distribution,) = synth.resources("AWS::CloudFront::Distribution", "edge").values()
    return distribution["Properties"]["DistributionConfig"]


def test_waf_guards_the_distribution(edge):
    (acl_id, acl), = edge.resources("AWS::WAFv2::WebACL", "edge").items()
    props = acl["Properties"]
    assert props["Scope"] == "CLOUDFRONT" and props["DefaultAction"] == {"Allow": {}}
    assert _distribution_config(edge)["WebACLId"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    rules = {r["Name"]: r for r in props["Rules"]}
    for group in ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"):
        statement = rules[group]["Statement"]["ManagedRuleGroupStatement"]
        assert statement["VendorName"] == "AWS" and statement["Name"] == group
        assert rules[group]["OverrideAction"] == {"None": {}}  # the group's own actions: block
    rate = rules["RatePerIp"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {"Limit": 2000, "AggregateKeyType": "IP",
                                                       "EvaluationWindowSec": 300}
    assert len({r["Priority"] for r in props["Rules"]}) == len(props["Rules"])


def test_without_a_domain_the_default_certificate_is_documented(edge):
    viewer = _distribution_config(edge).get("ViewerCertificate", {"CloudFrontDefaultCertificate": True})
    assert viewer.get("CloudFrontDefaultCertificate", True) is True
    assert not edge.resources("AWS::CertificateManager::Certificate", "edge")


DOMAIN_NAMES = ["app.example.test", "*.sites.example.test"]  # tests/infra/conftest.py domain_synth


def test_a_configured_domain_gets_an_acm_certificate_and_tls_1_2(domain_synth):
    config = _distribution_config(domain_synth)
    assert config["Aliases"] == DOMAIN_NAMES
    (cert_id, cert), = domain_synth.resources("AWS::CertificateManager::Certificate", "edge").items()
    assert cert["Properties"]["DomainName"] == DOMAIN_NAMES[0]
    assert cert["Properties"]["SubjectAlternativeNames"] == DOMAIN_NAMES[1:]
    assert cert["Properties"]["ValidationMethod"] == "DNS"
    viewer = config["ViewerCertificate"]
    assert viewer["AcmCertificateArn"] == {"Ref": cert_id}
    assert viewer["MinimumProtocolVersion"] == "TLSv1.2_2021"
    assert viewer["SslSupportMethod"] == "sni-only"


def test_a_certificate_without_a_domain_name_refuses_to_synthesize(tmp_path):
    import aws_cdk as cdk

    from infra.config import DeployConfig
    from infra.edge_stack import EdgeConfigError, EdgeStack

    (tmp_path / "config.json").write_text(json.dumps({"public_prefixes": ["/_next/static"]}))
    (tmp_path / "app.py").write_text("def handler(event, context): ...\n")
    config = DeployConfig(edge_certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc")
    with pytest.raises(EdgeConfigError, match="edgeDomainNames"):
        EdgeStack(cdk.App(), "Edge", config=config, bundle_dir=tmp_path)
