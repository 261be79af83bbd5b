"""The regional stack: network, Aurora + RDS Proxy, queues, the shared layer, one Lambda per function,
the HTTP API built from the route table, the deploy-time migration, and alarms.

Everything is derived from the repository (see ``infra.catalog``): a new ``functions/<name>/app.py``,
route or queue appears here without an edit to this file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from aws_cdk import (
    Annotations,
    ArnFormat,
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    triggers,
)
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as sns_subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dramac_dev.routes import JWT, JWT_OR_API_KEY, ROUTES, Route
from dramac_dev.sqs_local import queue_url_output

from . import catalog
from .config import DeployConfig

RUNTIME = lambda_.Runtime.PYTHON_3_13  # keep in step with PYTHON_VERSION in layers/common/build.py
ARCHITECTURE = lambda_.Architecture.ARM_64
DATABASE_NAME = "dramac"
POSTGRES_PORT = 5432
METRICS_NAMESPACE = "Dramac"
# The newest Aurora PostgreSQL 16 minor the installed CDK names (16 is also the embedded PostgreSQL the
# suites run on). tests/infra/test_engine_version.py fails when the template names a version the
# installed CDK marks deprecated; cfn-lint (W3690) fails when RDS no longer creates clusters on it.
AURORA_ENGINE_VERSION = rds.AuroraPostgresEngineVersion.VER_16_13

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS, 5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS, 3653: logs.RetentionDays.TEN_YEARS,
}


RUNBOOKS = "docs/runbooks.md"  # one section per alarm, headed by the alarm's construct id

def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def retention(days: int) -> logs.RetentionDays:
    if int(days) not in _RETENTION:
        raise ValueError(f"dramac:logRetentionDays must be one of {sorted(_RETENTION)}, not {days}")
    return _RETENTION[int(days)]


def layer_asset_dir() -> tuple[Path, bool]:
    """The built layer (source + Lambda-platform wheels) if ``make layer`` ran, else the source only."""
    built = catalog.LAYER_BUILD_DIR
    if (built / "python" / "dramac_common").is_dir():
        return built, True
    return catalog.LAYER_SOURCE_DIR, False


class BackendStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig,
                 functions_dir: Path = catalog.FUNCTIONS_DIR, staging_dir: Path, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # S3 access logs are delivered under a bucket policy, not the legacy LogDeliveryWrite ACL (CDK's
        # current default for new projects; set on the stack so `cdk synth` and the tests agree)
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        self.config = config
        self.functions_dir = functions_dir
        self.staging_dir = staging_dir
        self.functions: dict[str, lambda_.Function] = {}
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        self.unauthenticated_routes: list[tuple[apigwv2.HttpRoute, Route]] = []

        self.data_key = self._data_key()
        self.alarm_topic = self._alarm_topic()
        self.vpc = self._network()
        self._database()
        self._secrets()
        self.automation_key = self._automation_key()
        self.layer = self._layer()
        self._queues()
        self.exports_bucket = self._exports_bucket()
        for name in catalog.regional_functions(functions_dir):
            self.functions[name] = self._function(name)
        self._consumers_and_schedules()
        self.api, self.stage = self._http_api()
        self.migration = self._migration()

    # --- encryption ----------------------------------------------------------------------------

    def _data_key(self) -> kms.Key:
        """One customer managed key for what the stack writes at rest besides Aurora: log groups, the
        functions' environment variables and the secrets (one key: $1 a month, docs/deploy.md)."""
        key = kms.Key(self, "DataKey", enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN,
                      description="Encrypts the DRAMAC log groups, function environments and secrets")
        # CloudWatch Logs encrypts with the key only for this account's and region's log groups.
        key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": self.format_arn(
                service="logs", resource="log-group", resource_name="*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME)}},
        ))
        return key

    # --- observability -------------------------------------------------------------------------

    def _alarm_topic(self) -> sns.Topic:
        # CloudWatch can only publish to a topic encrypted with a customer managed key it may use.
        key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True,
                      description="Encrypts the DRAMAC alarm topic", removal_policy=RemovalPolicy.DESTROY)
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True, display_name="DRAMAC alarms")
        if self.config.alarm_email:
            topic.add_subscription(sns_subscriptions.EmailSubscription(self.config.alarm_email))
        return topic

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, threshold: float, description: str) -> None:
        # Every alarm has its runbook section, headed by the construct id (tests/infra/test_runbooks.py).
        alarm = cloudwatch.Alarm(
            self, construct_id, metric=metric, threshold=threshold, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{description}. Runbook: {RUNBOOKS}#{construct_id.lower()}",
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))

    def _log_group(self, construct_id: str) -> logs.LogGroup:
        return logs.LogGroup(self, construct_id, retention=retention(self.config.log_retention_days),
                             encryption_key=self.data_key, removal_policy=RemovalPolicy.RETAIN)

    # --- network and data ----------------------------------------------------------------------

    def _network(self) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self, "Vpc", max_azs=2, nat_gateways=int(self.config.nat_gateways),
            # Nothing uses the default security group (every resource has its own), so it is left as is
            # rather than adding a custom resource to empty it.
            restrict_default_security_group=False,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                # Functions: outbound through NAT (AWS APIs, Paddle, workflow HTTP steps).
                ec2.SubnetConfiguration(name="App", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
                # Aurora and the proxy: no route out of the VPC at all.
                ec2.SubnetConfiguration(name="Data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
        )
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(
            self._log_group("FlowLogGroup")))
        return vpc

    def _database(self) -> None:
        data_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.database_security_group = ec2.SecurityGroup(
            self, "DatabaseSecurityGroup", vpc=self.vpc, allow_all_outbound=False,
            description="Aurora: reachable from the RDS Proxy and the migration function only")
        self.cluster = rds.DatabaseCluster(
            self, "Database",
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=AURORA_ENGINE_VERSION),
            writer=rds.ClusterInstance.serverless_v2("Writer", auto_minor_version_upgrade=True),
            serverless_v2_min_capacity=float(self.config.db_min_capacity),
            serverless_v2_max_capacity=float(self.config.db_max_capacity),
            vpc=self.vpc, vpc_subnets=data_subnets, security_groups=[self.database_security_group],
            credentials=rds.Credentials.from_generated_secret("dramac_admin", encryption_key=self.data_key),
            # Allowed, not required: functions log in through the RDS Proxy with the secret.
            iam_authentication=True,
            # OS metrics (CPU, memory, connections per process) every minute, beside CloudWatch's own.
            monitoring_interval=Duration.seconds(60),
            default_database_name=DATABASE_NAME,
            storage_encrypted=True,
            deletion_protection=bool(self.config.db_deletion_protection),
            backup=rds.BackupProps(retention=Duration.days(int(self.config.db_backup_retention_days))),
            cloudwatch_logs_exports=["postgresql"],
            removal_policy=RemovalPolicy.SNAPSHOT,
        )
        self.database_secret = self.cluster.secret
        self.proxy_security_group = ec2.SecurityGroup(
            self, "DatabaseProxySecurityGroup", vpc=self.vpc, allow_all_outbound=False,
            description="RDS Proxy: reachable from the functions, reaches Aurora")
        self.proxy = self.cluster.add_proxy(
            "DatabaseProxy", vpc=self.vpc, vpc_subnets=data_subnets, secrets=[self.database_secret],
            security_groups=[self.proxy_security_group], require_tls=True, iam_auth=False,
            # Lambda containers hold a small pool each (DRAMAC_DB_POOL_MAX); the proxy multiplexes them.
            max_connections_percent=90, idle_client_timeout=Duration.minutes(15),
        )
        self.cluster.connections.allow_default_port_from(self.proxy_security_group, "RDS Proxy to Aurora")
        self.proxy_security_group.add_egress_rule(
            self.database_security_group, ec2.Port.tcp(POSTGRES_PORT), "RDS Proxy to Aurora")

        self.function_security_group = ec2.SecurityGroup(
            self, "FunctionSecurityGroup", vpc=self.vpc, allow_all_outbound=True,
            description="Lambda functions: the RDS Proxy, AWS APIs and webhooks over NAT")
        self.proxy_security_group.add_ingress_rule(
            self.function_security_group, ec2.Port.tcp(POSTGRES_PORT), "Functions to RDS Proxy")

        CfnOutput(self, "DatabaseProxyEndpoint", value=self.proxy.endpoint)
        CfnOutput(self, "DatabaseSecretArn", value=self.database_secret.secret_arn)

    def _secrets(self) -> None:
        self.secrets: dict[str, secretsmanager.Secret] = {}
        wanted = {s for n in catalog.regional_functions(self.functions_dir) for s in catalog.settings_for(n).secrets}
        if catalog.PADDLE_WEBHOOK_SECRET in wanted:
            # Created with a random placeholder; set Paddle's notification secret after the first deploy
            # (docs/deploy.md) and deploy again so the purchase function picks it up.
            self.secrets[catalog.PADDLE_WEBHOOK_SECRET] = secretsmanager.Secret(
                self, "PaddleWebhookSecret", description="Paddle notification destination secret (h1 HMAC key)",
                generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True),
                encryption_key=self.data_key,
            )

    def _automation_key(self) -> kms.Key:
        """The key that wraps the data keys of automation secrets (connections, typed-in step headers):
        envelope encryption, docs/automation.md. Rotated yearly by KMS; old versions still open old data keys."""
        return kms.Key(self, "AutomationSecretsKey", enable_key_rotation=True,
                       description="Wraps the data keys of DRAMAC automation secrets",
                       removal_policy=RemovalPolicy.RETAIN)

    def _grant_automation_secrets(self, function: lambda_.Function, use: str) -> None:
        # Least privilege: one action each, on this key only, and only for automation-secret envelopes
        # (the encryption context every envelope carries).
        action = {"seal": "kms:GenerateDataKey", "open": "kms:Decrypt"}[use]
        function.add_to_role_policy(iam.PolicyStatement(
            actions=[action], resources=[self.automation_key.key_arn],
            conditions={"StringEquals": {"kms:EncryptionContext:dramac:purpose": "automation-secret"}},
        ))

    # --- code ----------------------------------------------------------------------------------

    def _layer(self) -> lambda_.LayerVersion:
        directory, built = layer_asset_dir()
        layer = lambda_.LayerVersion(
            self, "CommonLayer",
            # A built layer's __pycache__ is its Python 3.13 bytecode (build.py): shipped, since /opt is read-only
            # and a cold start would otherwise compile every module; the source tree's is the dev machine's.
            code=lambda_.Code.from_asset(str(directory), exclude=[] if built else ["**/__pycache__", "build.py"]),
            compatible_runtimes=[RUNTIME], compatible_architectures=[ARCHITECTURE],
            description="dramac_common and its third-party packages",
        )
        if not built:
            message = (f"the common layer has only dramac_common from {directory}: run `make layer` "
                       "before `cdk deploy` to add its packages for the Lambda platform")
            Annotations.of(layer).add_warning_v2("dramac:layer-not-built", message)
        return layer

    def _environment(self, name: str, settings: catalog.FunctionSettings) -> dict[str, str]:
        env = {
            "POWERTOOLS_SERVICE_NAME": name,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "LOG_LEVEL": str(self.config.log_level),
            "PAYMENT_PROVIDER": str(self.config.payment_provider),
        }
        if settings.uses_database:
            env.update({
                "DATABASE_SECRET_ARN": self.database_secret.secret_arn,
                "DATABASE_PROXY_HOST": self.proxy.endpoint,
                "DATABASE_NAME": DATABASE_NAME,
            })
        for queue in settings.sends_to:
            env[f"{queue.upper()}_QUEUE_URL"] = self.queues[queue].queue_url
        if any(r.function == name and r.auth == JWT_OR_API_KEY for r in ROUTES):
            # These routes have no authorizer (API keys must reach the handler), so the handler verifies
            # bearers itself against the JWT authorizer's issuer and audience (api_keys.principal_from_event).
            issuer = str(self.config.jwt_issuer).rstrip("/")
            env.update({"DRAMAC_JWT_ISSUER": issuer, "DRAMAC_JWT_AUDIENCE": str(next(iter(self.config.jwt_audience))),
                        "DRAMAC_JWT_JWKS_URL": f"{issuer}/.well-known/jwks.json"})
        if settings.automation_secrets:
            env["AUTOMATION_KMS_KEY_ID"] = self.automation_key.key_arn
        if settings.writes_exports:
            env["DRAMAC_EXPORTS_BUCKET"] = self.exports_bucket.bucket_name
        if catalog.PADDLE_WEBHOOK_SECRET in settings.secrets:
            # The contract's PADDLE_WEBHOOK_SECRET, resolved by CloudFormation at deploy time (a dynamic
            # reference: the value is not in the template); rotating it means a redeploy.
            secret = self.secrets[catalog.PADDLE_WEBHOOK_SECRET]
            env["PADDLE_WEBHOOK_SECRET"] = secret.secret_value.unsafe_unwrap()
        return env

    def _function(self, name: str) -> lambda_.Function:
        settings = catalog.settings_for(name)
        if name not in catalog.FUNCTION_SETTINGS:
            Annotations.of(self).add_warning_v2(
                "dramac:function-defaults", f"functions/{name} has no FUNCTION_SETTINGS entry: HTTP defaults, "
                "database access only")
        cid = camel(name)
        function = lambda_.Function(
            self, f"{cid}Function",
            description=f"DRAMAC {name}: {settings.why}",
            runtime=RUNTIME, architecture=ARCHITECTURE, handler="app.handler",
            code=lambda_.Code.from_asset(str(self.functions_dir / name), exclude=["**/__pycache__", "tests"]),
            layers=[self.layer],
            timeout=Duration.seconds(settings.timeout_s), memory_size=settings.memory_mb,
            reserved_concurrent_executions=settings.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            environment=self._environment(name, settings), environment_encryption=self.data_key,
            vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.function_security_group],
            log_group=self._log_group(f"{cid}LogGroup"),
        )
        if settings.uses_database:
            self.database_secret.grant_read(function)
        for queue in settings.sends_to:
            self.queues[queue].grant_send_messages(function)
        if settings.automation_secrets:
            self._grant_automation_secrets(function, settings.automation_secrets)
        if settings.writes_exports:
            function.add_to_role_policy(iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[self.exports_bucket.arn_for_objects("exports/*")],
            ))
        if settings.sends_email:
            function.add_to_role_policy(iam.PolicyStatement(
                actions=["ses:SendEmail", "ses:SendRawEmail"],
                resources=[self.format_arn(service="ses", resource="identity",
                                           resource_name=str(self.config.ses_identity))],
            ))
        self._alarm(f"{cid}ErrorsAlarm", function.metric_errors(period=Duration.minutes(5)), 1,
                    f"{name} raised errors")
        return function

    # --- exports -------------------------------------------------------------------------------

    def _exports_bucket(self) -> s3.Bucket:
        """Module data exports: private, encrypted, TLS only, deleted after 7 days (a download link
        lives an hour); its access log goes to a bucket of its own."""
        self.exports_log_bucket = s3.Bucket(
            self, "ExportsAccessLogBucket", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # the log delivery service is granted by a bucket policy, not the legacy LogDeliveryWrite ACL
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))], removal_policy=RemovalPolicy.RETAIN,
        )
        return s3.Bucket(
            self, "ExportsBucket", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            server_access_logs_bucket=self.exports_log_bucket, server_access_logs_prefix="exports-bucket/",
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(7))], removal_policy=RemovalPolicy.RETAIN,
        )

    # --- queues --------------------------------------------------------------------------------

    def _queues(self) -> None:
        for spec in catalog.queues():
            cid = camel(spec.name)
            dlq = sqs.Queue(self, f"{cid}DeadLetterQueue", retention_period=Duration.days(14),
                            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True)
            queue = sqs.Queue(
                self, f"{cid}Queue",
                visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
                retention_period=Duration.days(4),
                dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receives),
                encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            )
            self.queues[spec.name], self.dead_letter_queues[spec.name] = queue, dlq
            self._alarm(f"{cid}DeadLetterAlarm",
                        dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(1),
                                                                          statistic="Maximum"),
                        1, f"messages of the {spec.name} queue failed {spec.max_receives} times")
            self._alarm(f"{cid}QueueAgeAlarm",
                        queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(1),
                                                                       statistic="Maximum"),
                        int(self.config.queue_age_alarm_seconds), f"the {spec.name} queue is falling behind")
            CfnOutput(self, queue_url_output(spec.name), value=queue.queue_url)  # read by dramac dlq --stack

    def _consumers_and_schedules(self) -> None:
        for spec in catalog.queues():
            function = self.functions.get(spec.consumer)
            if function is None:
                continue  # the consumer is on another branch; the queue fills until it merges
            settings = catalog.settings_for(spec.consumer)
            if spec.visibility_timeout_s < 6 * settings.timeout_s:
                raise ValueError(
                    f"queue {spec.name}: visibility timeout {spec.visibility_timeout_s}s is less than 6x the "
                    f"{spec.consumer} timeout ({settings.timeout_s}s); raise it in QUEUE_CONSUMERS")
            # the consumer marks its work failed on the last receive, before SQS moves it to the DLQ
            function.add_environment(f"{spec.name.upper()}_MAX_RECEIVES", str(spec.max_receives))
            function.add_event_source(event_sources.SqsEventSource(
                self.queues[spec.name], batch_size=spec.batch_size, report_batch_item_failures=True,
                # Never more pollers than the function may run: throttled batches would burn receives.
                max_concurrency=max(2, settings.reserved_concurrency),
            ))
        for name, function in self.functions.items():
            minutes = catalog.settings_for(name).schedule_minutes
            if minutes:
                events.Rule(self, f"{camel(name)}Schedule", schedule=events.Schedule.rate(Duration.minutes(minutes)),
                            targets=[targets.LambdaFunction(function, retry_attempts=0)],
                            description=f"runs {name} every {minutes} minute(s)")

    # --- the HTTP API --------------------------------------------------------------------------

    def _http_api(self) -> tuple[apigwv2.HttpApi, apigwv2.HttpStage]:
        api = apigwv2.HttpApi(
            self, "HttpApi", api_name=f"{self.config.stack_prefix.lower()}-api", create_default_stage=False,
            description="DRAMAC HTTP API (routes from dramac_dev.routes)",
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=list(self.config.cors_allow_origins),
                allow_methods=[apigwv2.CorsHttpMethod.ANY],
                # apikey, prefer, range…: what supabase-js and postgrest-js send to the /rest surface
                allow_headers=["authorization", "content-type", "x-api-key", "apikey", "prefer", "range",
                               "range-unit", "accept-profile", "content-profile", "x-client-info"],
                expose_headers=["content-range", "preference-applied", "location"],
                max_age=Duration.hours(1),
            ),
        )
        stage = apigwv2.HttpStage(
            self, "DefaultStage", http_api=api, stage_name="$default", auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=int(self.config.throttle_rate_limit),
                                              burst_limit=int(self.config.throttle_burst_limit)),
        )
        access_logs = self._log_group("ApiAccessLogs")
        stage.node.default_child.access_log_settings = apigwv2.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn,
            format=json.dumps({
                "requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
                "requestTime": "$context.requestTime", "routeKey": "$context.routeKey",
                "status": "$context.status", "responseLength": "$context.responseLength",
                "latencyMs": "$context.responseLatency", "integrationError": "$context.integrationErrorMessage",
                "authorizerError": "$context.authorizer.error", "user": "$context.authorizer.claims.sub",
            }),
        )
        jwt = authorizers.HttpJwtAuthorizer(
            "JwtAuthorizer", jwt_issuer=str(self.config.jwt_issuer),
            jwt_audience=list(self.config.jwt_audience), identity_source=["$request.header.Authorization"],
        )
        lambda_integrations: dict[str, integrations.HttpLambdaIntegration] = {}
        for route in catalog.deployable_routes(list(self.functions)):
            integration = lambda_integrations.setdefault(route.function, integrations.HttpLambdaIntegration(
                f"{camel(route.function)}Integration", self.functions[route.function],
                payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
            ))
            (http_route,) = api.add_routes(
                path=route.path, methods=[apigwv2.HttpMethod[route.method]], integration=integration,
                authorizer=jwt if route.auth == JWT else apigwv2.HttpNoneAuthorizer(),
            )
            if route.auth != JWT:
                self.unauthenticated_routes.append((http_route, route))
        CfnOutput(self, "ApiUrl", value=api.api_endpoint)
        return api, stage

    # --- migrations ----------------------------------------------------------------------------

    def _migration(self) -> triggers.TriggerFunction | None:
        source = self.functions_dir / catalog.MIGRATE_FUNCTION
        if not (source / "app.py").is_file():
            return None
        settings = catalog.settings_for(catalog.MIGRATE_FUNCTION)
        security_group = ec2.SecurityGroup(self, "MigrateSecurityGroup", vpc=self.vpc, allow_all_outbound=True,
                                           description="The migration function: connects to the Aurora writer directly")
        self.cluster.connections.allow_default_port_from(security_group, "migrations to Aurora")
        environment = {
            "POWERTOOLS_SERVICE_NAME": catalog.MIGRATE_FUNCTION,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "LOG_LEVEL": str(self.config.log_level),
            "DATABASE_SECRET_ARN": self.database_secret.secret_arn,
            "DATABASE_NAME": DATABASE_NAME,
            "DRAMAC_MIGRATIONS_DIR": "/var/task/migrations",
        }
        if self.config.force_migrate:
            environment["DRAMAC_MIGRATION_RUN"] = str(self.config.force_migrate)
        function = triggers.TriggerFunction(
            self, "MigrateFunction",
            description=f"DRAMAC migrate: {settings.why}",
            runtime=RUNTIME, architecture=ARCHITECTURE, handler="app.handler",
            code=lambda_.Code.from_asset(str(stage_migrate_code(source, catalog.MIGRATIONS_DIR,
                                                                self.staging_dir / "migrate"))),
            layers=[self.layer],
            timeout=Duration.seconds(settings.timeout_s), memory_size=settings.memory_mb,
            reserved_concurrent_executions=settings.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE, environment=environment, environment_encryption=self.data_key,
            vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[security_group], log_group=self._log_group("MigrateLogGroup"),
            # The function's code holds the migrations, so a new migration is a new version, which
            # re-runs the trigger; dramac:forceMigrate re-runs it without one.
            execute_on_handler_change=True,
            execute_after=[self.cluster],
            # The API (routes, integrations, the stage) is created or updated only after migrating.
            execute_before=[self.api, self.stage],
        )
        self.database_secret.grant_read(function)
        return function


def stage_migrate_code(source: Path, migrations: Path, target: Path) -> Path:
    """The migrate function's code: its own folder plus a copy of ``migrations/`` (no Docker needed)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
    shutil.copytree(migrations, target / "migrations", ignore=shutil.ignore_patterns("*.md"))
    return target
