"""What the template checkers may accept, each at the resource with its reason.

- cdk-nag (AwsSolutions): cdk-nag v3 runs as a CDK policy-validation plugin; an acknowledged rule is
  recorded in the cloud assembly's validation report instead of failing ``cdk synth``.
- checkov (tests/infra/test_template_linters.py): a ``Metadata.checkov.skip`` entry with a comment.
- cfn-lint (same test): a ``Metadata.cfn-lint.config.ignore_checks`` entry, its reason beside it in
  ``Metadata.cfn-lint.reasons``; only for what CDK itself generates.

All are scoped to the resource the finding is about, never to a whole stack, so a new resource is
checked afresh; functions are covered by kind (HTTP, queue consumer, schedule), so a new function
under functions/ gets the skips its kind earns and nothing more.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

from . import catalog
from .backend_stack import BackendStack
from .edge_stack import EdgeStack

BASIC_EXECUTION = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
VPC_EXECUTION = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def _cfn(construct: IConstruct) -> CfnResource:
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    return resource


def skip_checkov(construct: IConstruct, check: str, reason: str) -> None:
    """A checkov skip at the resource (``Metadata.checkov.skip``), with the reason as its comment."""
    resource = _cfn(construct)
    entry: dict[str, Any] = resource.get_metadata("checkov") or {"skip": []}
    entry["skip"] = [*entry.get("skip", []), {"id": check, "comment": reason}]
    resource.add_metadata("checkov", entry)


def ignore_cfn_lint(construct: IConstruct, rule: str, reason: str) -> None:
    """A cfn-lint rule ignored at the resource, the reason recorded beside it."""
    resource = _cfn(construct)
    entry: dict[str, Any] = resource.get_metadata("cfn-lint") or {"config": {"ignore_checks": []}, "reasons": {}}
    entry["config"]["ignore_checks"] = [*entry["config"]["ignore_checks"], rule]
    entry["reasons"] = {**entry.get("reasons", {}), rule: reason}
    resource.add_metadata("cfn-lint", entry)


REDUNDANT_DEPENDS_ON = (
    "CDK adds DependsOn on the function's role and its default policy so the policy exists before the "
    "first invocation; the role half is also implied by the Role GetAtt, which is all W3005 reports.")


def lambda_functions(stack: Stack) -> list[CfnResource]:
    """Every AWS::Lambda::Function of the stack, ours and the ones CDK generates (custom resources)."""
    return [c for c in stack.node.find_all() if isinstance(c, CfnResource)
            and c.cfn_resource_type == "AWS::Lambda::Function"]


def _generated_by_cdk(stack: Stack, ours: list[CfnResource]) -> list[CfnResource]:
    return [f for f in lambda_functions(stack) if f not in ours]


def _invocation_kind(name: str) -> str:
    if any(spec.consumer == name for spec in catalog.queues()):
        return "sqs"
    if catalog.settings_for(name).schedule_minutes:
        return "schedule"
    return "http"


NO_FUNCTION_DLQ = {
    "http": "Invoked synchronously by API Gateway: the caller gets the error; a function DLQ only ever "
            "receives failed asynchronous invocations.",
    "sqs": "Invoked by an SQS event source: a failed message returns to its queue and, after max "
           "receives, moves to that queue's own dead-letter queue (alarmed), never to a function DLQ.",
    "schedule": "Invoked every minute by EventBridge; its work is the outbox table, so a failed run's rows "
                "are simply picked up by the next run.",
}


def suppress_backend(stack: BackendStack) -> None:
    acknowledge(stack.cluster.node.find_child("Secret"), "AwsSolutions-SMG4",
                "Functions cache a connection pool per container built from this secret; rotating it under "
                "them breaks new proxy logins until containers recycle. Rotate deliberately (docs/deploy.md).")
    for secret in stack.secrets.values():
        acknowledge(secret, "AwsSolutions-SMG4",
                    "Issued by Paddle for the notification destination; Paddle cannot rotate it through "
                    "Secrets Manager. Rotate in Paddle, update the secret, redeploy (docs/deploy.md).")
    acknowledge(stack.cluster.node.find_child("MonitoringRole"), "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]",
                "The AWS managed role policy RDS enhanced monitoring is documented to use; it only writes "
                "the RDSOSMetrics log streams.")
    acknowledge(stack.cluster, "AwsSolutions-RDS6",
                "Clients never reach Aurora directly except the migration function; functions log in to the "
                "RDS Proxy (TLS required) with the Secrets Manager credentials, and the proxy to Aurora.")
    functions = list(stack.functions.values()) + ([stack.migration] if stack.migration else [])
    for function in functions:
        acknowledge(function, BASIC_EXECUTION,
                    "The AWS managed policy for writing the function's own CloudWatch logs.")
        acknowledge(function, VPC_EXECUTION,
                    "Lambda needs ec2 network-interface actions to run in the VPC; they have no "
                    "resource-level permissions, so the managed policy is as narrow as a custom one.")
        acknowledge(function, "AwsSolutions-IAM5[Resource::*]",
                    "Only xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) use '*': X-Ray "
                    "has no resource-level permissions. Data resources are named by ARN (tests/infra check).")
        acknowledge(function, "AwsSolutions-L1",
                    "Python 3.13 is the runtime the layer's binary wheels (psycopg-binary, pydantic-core) are "
                    "built for (layers/common/build.py); moving to 3.14 is a deliberate, tested upgrade.")
    ours = [_cfn(f) for f in functions]
    for name, function in stack.functions.items():
        skip_checkov(function, "CKV_AWS_116", NO_FUNCTION_DLQ[_invocation_kind(name)])
    if stack.migration is not None:
        skip_checkov(stack.migration, "CKV_AWS_116",
                     "Invoked synchronously by the deploy trigger: a failed migration fails the deploy.")
    for resource in lambda_functions(stack):
        ignore_cfn_lint(resource, "W3005", REDUNDANT_DEPENDS_ON)
    for resource in _generated_by_cdk(stack, ours):
        _skip_generated_function(resource, "a custom resource provider (the triggers provider, which starts "
                                           "the migration function), invoked by CloudFormation during a deploy")
    for queue in [*stack.queues.values(), *stack.dead_letter_queues.values()]:
        skip_checkov(queue, "CKV_AWS_27",
                     "Encrypted with SQS-managed keys (SqsManagedSseEnabled: true); the check only "
                     "recognises KmsMasterKeyId.")
    proxy_targets = stack.proxy.node.find_child("ProxyTargetGroup")
    ignore_cfn_lint(proxy_targets, "W3005",
                    "CDK lists the cluster and its writer instance in the target group's DependsOn, so the "
                    "proxy registers the cluster only once an instance exists; the cluster half is also "
                    "implied by the Ref, which is all W3005 reports.")
    skip_checkov(stack.exports_log_bucket, "CKV_AWS_18", "This is the exports bucket's access-log bucket itself; "
                 "logging it would log the logs.")
    skip_checkov(stack.exports_log_bucket, "CKV_AWS_21", "S3 writes each access-log object once under a unique key "
                 "and the bucket expires them after 90 days: there is no version to keep.")
    skip_checkov(stack.exports_bucket, "CKV_AWS_21", "Each export is written once under a new key and expires "
                 "after 7 days: nothing is overwritten, so versioning would only keep copies of deleted exports.")
    acknowledge(stack.exports_log_bucket, "AwsSolutions-S1",
                "This is the exports bucket's access-log bucket itself; logging it would log the logs.")
    bucket_id = stack.resolve(stack.get_logical_id(stack.exports_bucket.node.default_child))
    for name, function in stack.functions.items():
        if catalog.settings_for(name).writes_exports:
            acknowledge(function, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/exports/*]",
                        "Each export is a new object (exports/<agency>/<site>/<module>/<export id>.zip): the "
                        "function writes and presigns objects under that prefix of its one bucket, nothing else.")
    for http_route, route in stack.unauthenticated_routes:
        acknowledge(http_route, "AwsSolutions-APIG4",
                    f"{route.route_key} has no authorizer by contract ({route.summary or 'public'}); "
                    "the handler is public or verifies a signature of its own.")


def _skip_generated_function(resource: CfnResource, what: str) -> None:
    skip_checkov(resource, "CKV_AWS_115", f"Generated by CDK: {what}; it never runs twice at once.")
    skip_checkov(resource, "CKV_AWS_116", f"Generated by CDK: {what}, synchronously.")
    skip_checkov(resource, "CKV_AWS_117", f"Generated by CDK: {what}; it calls only the Lambda API, "
                                          "never the database, so it runs outside the VPC.")


def suppress_edge(stack: EdgeStack) -> None:
    router = _cfn(stack.router)
    ignore_cfn_lint(router, "W3005", REDUNDANT_DEPENDS_ON)
    skip_checkov(router, "CKV_AWS_115", "Lambda@Edge functions cannot have reserved concurrency; CloudFront "
                                        "scales them per edge location, and the WAF rate rule limits callers.")
    skip_checkov(router, "CKV_AWS_116", "Lambda@Edge viewer requests are synchronous; CloudFront does not "
                                        "support dead-letter queues for them.")
    skip_checkov(router, "CKV_AWS_117", "Lambda@Edge functions cannot run in a VPC; the router only reads its "
                                        "bundled configuration and the request.")
    skip_checkov(router, "CKV_AWS_173", "No environment variables: Lambda@Edge has none (configuration is "
                                        "bundled), so there is nothing to encrypt.")
    skip_checkov(stack.log_bucket, "CKV_AWS_18", "This is the CloudFront access-log bucket itself; logging "
                                                 "it would log the logs.")
    skip_checkov(stack.log_bucket, "CKV_AWS_21", "CloudFront writes each log object once under a unique key "
                                                 "and nothing overwrites it; objects expire after 90 days.")
    acknowledge(stack.router_role, BASIC_EXECUTION,
                "Lambda@Edge replicas log to /aws/lambda/us-east-1.<name> in every region that serves "
                "a request; the managed policy covers those regional log groups.")
    acknowledge(stack.router, "AwsSolutions-L1",
                "The router stays on the Python the rest of the project targets (3.13), so its bundle is "
                "tested on the interpreter it runs on.")
    acknowledge(stack.log_bucket, "AwsSolutions-S1",
                "This is the CloudFront access-log bucket itself; logging it would log the logs.")
    acknowledge(stack.distribution, "AwsSolutions-CFR1",
                "The dashboard and agency sites serve customers worldwide: no country is blocked.")
    certificate = stack.requested_certificate
    if certificate is not None and any(name.startswith("*.") for name in stack.domain_names):
        skip_checkov(certificate, "CKV2_AWS_71",
                     "Agencies' sites are subdomains of the sites domain, created at run time by the domain "
                     "router's tenancy, so one wildcard name covers them (as dramac:edgeDomainNames asks).")
    if not stack.has_custom_certificate:
        acknowledge(stack.distribution, "AwsSolutions-CFR4",
                    "Without dramac:edgeCertificateArn the distribution uses *.cloudfront.net, whose default "
                    "certificate CloudFront pins to TLSv1; with a certificate, TLSv1.2_2021 is enforced.")
        skip_checkov(stack.distribution, "CKV_AWS_174",
                     "No dramac:edgeDomainNames: the default *.cloudfront.net certificate, which CloudFront "
                     "pins to TLSv1; with a domain, TLSv1.2_2021 is enforced (tests/infra/test_edge.py).")
