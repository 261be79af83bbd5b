"""Aurora PostgreSQL Serverless v2, the RDS Proxy, the credentials secret and the migration trigger."""

from __future__ import annotations

from pathlib import Path

from infra import catalog


def _one(synth, type_: str) -> tuple[str, dict]:
    (item,) = synth.resources(type_).items()
    return item[0], item[1]["Properties"]


def test_database_is_aurora_postgresql_serverless_v2(synth):
    _, cluster = _one(synth, "AWS::RDS::DBCluster")
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 0.5, "MaxCapacity": 4}
    assert cluster["StorageEncrypted"] is True
    assert cluster["DeletionProtection"] is True
    (instance,) = synth.resources("AWS::RDS::DBInstance").values()
    assert instance["Properties"]["DBInstanceClass"] == "db.serverless"


def test_database_credentials_live_in_secrets_manager(synth):
    _, cluster = _one(synth, "AWS::RDS::DBCluster")
    secrets = {k: v["Properties"] for k, v in synth.resources("AWS::SecretsManager::Secret").items()}
    (secret_id,) = [k for k in secrets if k in str(cluster["MasterUserPassword"])]
    assert secrets[secret_id]["GenerateSecretString"]["GenerateStringKey"] == "password"


def test_database_is_reachable_only_from_the_proxy_and_the_migration(synth):
    stack = synth.backend
    db_sg = synth.logical_id(stack.database_security_group)
    sources = {r["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
               for r in synth.resources("AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"]["GroupId"]["Fn::GetAtt"][0] == db_sg}
    assert synth.logical_id(stack.proxy_security_group) in sources
    assert len(sources) == 2  # the proxy and the migration function


def test_rds_proxy_requires_tls_and_logs_in_with_the_secret(synth):
    _, proxy = _one(synth, "AWS::RDS::DBProxy")
    assert proxy["EngineFamily"] == "POSTGRESQL"
    assert proxy["RequireTLS"] is True
    (auth,) = proxy["Auth"]
    attachment = synth.logical_id(synth.backend.cluster.node.find_child("Secret").node.find_child("Attachment"))
    assert auth["SecretArn"] == {"Ref": attachment}


def test_proxy_accepts_connections_from_the_functions(synth):
    stack = synth.backend
    ingress = [r["Properties"] for r in synth.resources("AWS::EC2::SecurityGroupIngress").values()]
    assert any(r["GroupId"]["Fn::GetAtt"][0] == synth.logical_id(stack.proxy_security_group)
               and r["SourceSecurityGroupId"]["Fn::GetAtt"][0] == synth.logical_id(stack.function_security_group)
               and r["FromPort"] == 5432 for r in ingress)


def test_database_and_proxy_sit_in_isolated_subnets(synth):
    isolated = sorted(synth.backend.get_logical_id(s.node.default_child) for s in synth.backend.vpc.isolated_subnets)
    (group,) = synth.resources("AWS::RDS::DBSubnetGroup").values()
    assert sorted(ref["Ref"] for ref in group["Properties"]["SubnetIds"]) == isolated
    _, proxy = _one(synth, "AWS::RDS::DBProxy")
    assert sorted(ref["Ref"] for ref in proxy["VpcSubnetIds"]) == isolated


def test_migration_trigger_runs_the_bundled_migrations_after_the_database(synth):
    stack = synth.backend
    _trigger_id, trigger = next((k, v) for k, v in synth.backend_template["Resources"].items()
                               if v["Type"] == "Custom::Trigger")
    migrate = synth.logical_id(stack.migration)
    # The trigger invokes the function's current version: new code (a new migration) re-runs it.
    version = trigger["Properties"]["HandlerArn"]["Ref"]
    assert synth.backend_template["Resources"][version]["Type"] == "AWS::Lambda::Version"
    assert synth.backend_template["Resources"][version]["Properties"]["FunctionName"] == {"Ref": migrate}
    assert synth.logical_id(stack.cluster) in trigger["DependsOn"]
    env = synth.backend_template["Resources"][migrate]["Properties"]["Environment"]["Variables"]
    assert env["DRAMAC_MIGRATIONS_DIR"] == "/var/task/migrations"
    assert "DATABASE_PROXY_HOST" not in env  # the writer endpoint from the secret: DDL wants one session
    staged = Path(synth.outdir) / ".dramac-staging" / "migrate"
    assert sorted(p.name for p in (staged / "migrations").glob("*.sql")) == \
        sorted(p.name for p in catalog.MIGRATIONS_DIR.glob("*.sql"))
    assert (staged / "app.py").is_file()
