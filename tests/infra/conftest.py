"""The CDK app synthesized once per test session (synth takes seconds; assertions take milliseconds).

Two syntheses:
- ``synth``: the repository as it is on this branch, with context values set the way an operator
  would (issuer, audience, CORS origin), so the tests see context reach the template.
- ``future_synth``: the same app over a copy of ``functions/`` completed with stub handlers for the
  functions other branches are building (and a stub domain router bundle if the real one is absent),
  so queue consumers, the relay schedule, the provisioner's concurrency and the edge stack are checked
  now and keep working when those branches merge.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

CONTEXT = {
    "dramac:jwtIssuer": "https://issuer.example.test/auth/v1",
    "dramac:jwtAudience": ["authenticated"],
    "dramac:corsAllowOrigins": ["https://app.example.test"],
}

PLANNED_FUNCTIONS = ("purchase", "install", "provision", "module_api", "automation", "event_processor", "relay")

STUB_BUNDLE = '''
import json, pathlib

def build_bundle(out_dir, mode="production", config_overrides=None):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "app.py").write_text("def handler(event, context):\\n    return event['Records'][0]['cf']['request']\\n")
    (out / "config.json").write_text(json.dumps({"mode": mode, **(config_overrides or {})}))
    return out
'''


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
        return {name: resources[self.logical_id(fn)]["Properties"] for name, fn in self.backend.functions.items()}

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
def future_functions_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra import catalog

    target = tmp_path_factory.mktemp("functions") / "functions"
    shutil.copytree(catalog.FUNCTIONS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name in PLANNED_FUNCTIONS:
        app_py = target / name / "app.py"
        if not app_py.exists():
            app_py.parent.mkdir(parents=True, exist_ok=True)
            app_py.write_text(f'"""stub {name}"""\n\ndef handler(event, context):\n    return {{}}\n')
    router = target / catalog.EDGE_FUNCTION
    if not (router / "bundle.py").exists():
        router.mkdir(exist_ok=True)
        (router / "app.py").write_text("def handler(event, context):\n    return None\n")
        (router / "bundle.py").write_text(STUB_BUNDLE)
    return target


@pytest.fixture(scope="session")
def future_synth(tmp_path_factory: pytest.TempPathFactory, future_functions_dir: Path) -> Synth:
    router = {"app_domains": ["app.example.test"], "jwks": public_jwks()}
    context = {**CONTEXT, "dramac:domainRouterConfig": json.dumps(router)}
    return synthesize(tmp_path_factory.mktemp("cdk-out-future"), future_functions_dir, context)


@pytest.fixture(scope="session", params=["branch", "future"])
def any_synth(request: pytest.FixtureRequest) -> Synth:
    """Both syntheses: rules that must hold now and after the other branches merge."""
    return request.getfixturevalue("synth" if request.param == "branch" else "future_synth")


@pytest.fixture(scope="session")
def real_edge(synth: Synth) -> Synth:
    if synth.edge is None:
        pytest.skip("functions/domain_router/bundle.py is not on this branch yet, so the app skips the edge "
                    "stack; the stub-bundle edge tests cover its wiring")
    return synth
