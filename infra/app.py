"""Entry point of the CDK app: ``cdk synth`` / ``cdk deploy`` run this through the project's venv.

Two stacks: ``<prefix>Backend`` (the API, functions, queues and database, in the account and region
of the CLI or of ``dramac:account`` / ``dramac:region``) and ``<prefix>Edge`` (CloudFront and the
domain router, always us-east-1; skipped until ``functions/domain_router/bundle.py`` exists).
cdk-nag's AWS Solutions checks run on both.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from . import catalog
from .backend_stack import BackendStack
from .config import DeployConfig
from .edge_stack import EDGE_REGION, EdgeStack, build_domain_router_bundle, router_overrides
from .nag import suppress_backend, suppress_edge


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None,
              functions_dir: Path = catalog.FUNCTIONS_DIR) -> cdk.App:
    app = cdk.App(context=context, outdir=outdir)
    config = DeployConfig.from_node(app.node)
    staging = Path(app.outdir) / ".dramac-staging"
    prefix = config.stack_prefix

    env = cdk.Environment(account=config.account, region=config.region)
    backend = BackendStack(app, f"{prefix}Backend", config=config, functions_dir=functions_dir,
                           staging_dir=staging, env=env,
                           description="DRAMAC backend: HTTP API, functions, queues, Aurora")
    suppress_backend(backend)

    bundler = catalog.domain_router_bundler(functions_dir)
    if bundler is not None:
        bundle_dir, has_keys = build_domain_router_bundle(bundler, staging / "domain_router",
                                                          router_overrides(config))
        edge = EdgeStack(app, f"{prefix}Edge", config=config, bundle_dir=bundle_dir, bundle_has_keys=has_keys,
                         env=cdk.Environment(account=config.account, region=EDGE_REGION),
                         description="DRAMAC edge: CloudFront and the domain router (Lambda@Edge)")
        suppress_edge(edge)
    else:
        print("dramac: functions/domain_router/bundle.py not found, the edge stack is skipped", file=sys.stderr)

    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
