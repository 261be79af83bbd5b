"""The CDK app synthesized once per test session (synth takes seconds; assertions take milliseconds).

Two syntheses:
- ``synth``: the repository as it is on this branch, with context values set the way an operator
  would (issuer, audience, CORS origin), so the tests see context reach the template.
- ``configured_synth``: the same app with the domain router's settings given inline as context
  (``dramac:domainRouterConfig``) rather than as a JWKS file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the CDK app (infra) is importable: pyproject's pytest pythonpath
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

CONTEXT = {
    "dramac:jwtIssuer": "https://issuer.example.test/auth/v1",
    "dramac:jwtAudience": ["authenticated"],
    "dramac:corsAllowOrigins": ["https://app.example.test"],
    # What the CDK CLI sets: each asset's path in the resource's Metadata (SAM builds from it)
    "aws:cdk:enable-asset-metadata": True,
}

@dataclass
class Synth:
    app: Any
    backend: Any
    edge: Any | None
    outdir: Path
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def backend_template(self) -> dict[str, Any]:
        return self.templates[self.backend.stack_name]

    @property
    def edge_template(self) -> dict[str, Any]:
        return self.templates[self.edge.stack_name]

    def logical_id(self, construct: Any) -> str:
        from aws_cdk import Stack

        resource = construct.node.default_child or construct
        return Stack.of(construct).get_logical_id(resource)

    def functions(self) -> dict[str, dict[str, Any]]:
        """Function name → its AWS::Lambda::Function properties (regional functions only)."""
        resources = self.backend_template["Resources"]
        functions = {name: resources[self.logical_id(fn)]["Properties"] for name, fn in self.backend.functions.items()}
        assert functions, "the app synthesized no function: every per-function check would pass vacuously"
        return functions

    def resources(self, type_: str, stack: str = "backend") -> dict[str, dict[str, Any]]:
        template = self.backend_template if stack == "backend" else self.edge_template
        return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def synthesize(outdir: Path, functions_dir: Path, context: dict[str, Any]) -> Synth:
    from infra.app import build_app

    app = build_app(context=context, outdir=str(outdir), functions_dir=functions_dir)
    prefix = "Dramac"
    try:
        assembly = app.synth()
    except RuntimeError as error:  # cdk-nag or CloudFormation validation failed: show the report
        report = outdir / "validation-report.json"
        detail = report.read_text() if report.exists() else ""
        pytest.fail(f"cdk synth failed: {error}\n{detail[:5000]}")
    backend = app.node.find_child(f"{prefix}Backend")
    edge = app.node.try_find_child(f"{prefix}Edge")
    synth = Synth(app, backend, edge, outdir)
    for stack in assembly.stacks:
        synth.templates[stack.stack_name] = stack.template
    return synth


def public_jwks() -> dict[str, Any]:
    """A JWK set with one freshly generated P-256 public key, as an issuer's jwks.json would hold."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import ec

    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    return {"keys": [{"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y),
                      "kid": "test-key", "alg": "ES256", "use": "sig"}]}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from infra import catalog

    jwks_file = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks_file.write_text(json.dumps(public_jwks()))
    context = {**CONTEXT, "dramac:domainRouterJwksFile": str(jwks_file)}
    return synthesize(tmp_path_factory.mktemp("cdk-out"), catalog.FUNCTIONS_DIR, context)


@pytest.fixture(scope="session")
def configured_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The same app with the router's settings given inline as context instead of a JWKS file."""
    from infra import catalog

    router = {"app_domains": ["app.example.test"], "jwks": public_jwks()}
    context = {**CONTEXT, "dramac:domainRouterConfig": json.dumps(router)}
    return synthesize(tmp_path_factory.mktemp("cdk-out-configured"), catalog.FUNCTIONS_DIR, context)


@pytest.fixture(scope="session", params=["jwks-file", "inline-config"])
def any_synth(request: pytest.FixtureRequest) -> Synth:
    """Both syntheses: rules that must hold however the operator configures the app."""
    return request.getfixturevalue("synth" if request.param == "jwks-file" else "configured_synth")


@pytest.fixture(scope="session")
def real_edge(synth: Synth) -> Synth:
    assert synth.edge is not None, "the edge stack was not synthesized"
    return synth


DOMAIN_NAMES = ["app.example.test", "*.sites.example.test"]


def edge_only(outdir: Path, context: dict[str, Any]) -> Synth:
    """The edge stack alone (with cdk-nag), as infra.app builds it: for edge settings the backend ignores."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from infra import catalog
    from infra.config import DeployConfig
    from infra.edge_stack import EDGE_REGION, EdgeStack, build_domain_router_bundle, router_overrides
    from infra.nag import suppress_edge

    bundler = catalog.domain_router_bundler()
    assert bundler is not None, "functions/domain_router/bundle.py is missing"
    app = cdk.App(context=context, outdir=str(outdir))
    config = DeployConfig.from_node(app.node)
    bundle_dir, has_keys = build_domain_router_bundle(bundler, outdir / ".dramac-staging" / "domain_router",
                                                      router_overrides(config))
    edge = EdgeStack(app, "DramacEdge", config=config, bundle_dir=bundle_dir, bundle_has_keys=has_keys,
                     env=cdk.Environment(region=EDGE_REGION))
    suppress_edge(edge)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    assembly = app.synth()
    synth = Synth(app, None, edge, outdir)
    for stack in assembly.stacks:
        synth.templates[stack.stack_name] = stack.template
    return synth


@pytest.fixture(scope="session")
def domain_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The edge stack with alternate domain names and no certificate ARN: the stack requests one."""
    router = {"jwks": public_jwks()}
    context = {**CONTEXT, "dramac:domainRouterConfig": json.dumps(router),
               "dramac:edgeDomainNames": DOMAIN_NAMES}
    return edge_only(tmp_path_factory.mktemp("cdk-out-domain"), context)
