"""cdk-nag (AwsSolutions) acknowledgments: each names the finding it accepts, where, and why.

cdk-nag v3 runs as a CDK policy-validation plugin; an acknowledged rule is recorded in the cloud
assembly's validation report instead of failing ``cdk synth``. Acknowledgments are scoped to the
construct the finding is about, never to a whole stack, so a new resource is checked afresh.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

from . import catalog
from .backend_stack import BackendStack
from .edge_stack import EdgeStack

BASIC_EXECUTION = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
VPC_EXECUTION = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def suppress_backend(stack: BackendStack) -> None:
    acknowledge(stack.cluster.node.find_child("Secret"), "AwsSolutions-SMG4",
                "Functions cache a connection pool per container built from this secret; rotating it under "
                "them breaks new proxy logins until containers recycle. Rotate deliberately (docs/deploy.md).")
    for secret in stack.secrets.values():
        acknowledge(secret, "AwsSolutions-SMG4",
                    "Issued by Paddle for the notification destination; Paddle cannot rotate it through "
                    "Secrets Manager. Rotate in Paddle, update the secret, redeploy (docs/deploy.md).")
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


def suppress_edge(stack: EdgeStack) -> None:
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
    acknowledge(stack.distribution, "AwsSolutions-CFR2",
                "The router rejects invalid hosts and unauthenticated app paths; a WAF web ACL (its id via "
                "cdk context) is an account-level choice documented in docs/deploy.md.")
    if not stack.has_custom_certificate:
        acknowledge(stack.distribution, "AwsSolutions-CFR4",
                    "Without dramac:edgeCertificateArn the distribution uses *.cloudfront.net, whose default "
                    "certificate CloudFront pins to TLSv1; with a certificate, TLSv1.2_2021 is enforced.")
