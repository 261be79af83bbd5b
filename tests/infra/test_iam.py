"""Least privilege: no wildcard actions, data resources named by ARN, each function only its own."""

from __future__ import annotations

from infra import catalog

DATA_SERVICES = ("sqs:", "secretsmanager:", "rds:", "rds-db:", "ses:", "kms:", "s3:", "dynamodb:")
RESOURCE_LEVEL_LESS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _listify(value):
    return value if isinstance(value, list) else [value]


def _statements(synth, stack: str = "backend"):
    statements = [(logical_id, policy["Properties"], statement)
                  for logical_id, policy in synth.resources("AWS::IAM::Policy", stack).items()
                  for statement in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert statements, "no IAM statement synthesized: every check over them would pass vacuously"
    return statements


def test_no_iam_statement_grants_a_wildcard_action(any_synth):
    for logical_id, _, statement in _statements(any_synth):
        for action in _listify(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), (logical_id, action)


def test_statements_on_data_resources_name_their_resources(any_synth):
    for logical_id, _, statement in _statements(any_synth):
        actions = _listify(statement["Action"])
        if any(a.startswith(DATA_SERVICES) for a in actions):
            assert "*" not in _listify(statement["Resource"]), (logical_id, actions)


def test_only_xray_uses_a_wildcard_resource(any_synth):
    for logical_id, _, statement in _statements(any_synth):
        if "*" in _listify(statement["Resource"]):
            assert set(_listify(statement["Action"])) <= RESOURCE_LEVEL_LESS, logical_id


def _role_policies(synth):
    """Function name → the IAM statements attached to its role."""
    by_role: dict[str, list[dict]] = {}
    for _, props, statement in _statements(synth):
        for role in props["Roles"]:
            by_role.setdefault(role["Ref"], []).append(statement)
    result = {}
    for name, function in synth.backend.functions.items():
        role = synth.logical_id(function.role)
        result[name] = by_role.get(role, [])
    return result


def test_each_function_sends_only_to_its_own_queues(synth):
    queue_ids = {name: synth.logical_id(q) for name, q in synth.backend.queues.items()}
    for name, statements in _role_policies(synth).items():
        sent_to = {r["Fn::GetAtt"][0] for s in statements if "sqs:SendMessage" in _listify(s["Action"])
                   for r in _listify(s["Resource"])}
        assert sent_to == {queue_ids[q] for q in catalog.settings_for(name).sends_to}, name


def test_each_function_reads_only_the_database_secret(synth):
    attachment = synth.logical_id(
        synth.backend.cluster.node.find_child("Secret").node.find_child("Attachment"))
    for name, statements in _role_policies(synth).items():
        read = [r for s in statements if "secretsmanager:GetSecretValue" in _listify(s["Action"])
                for r in _listify(s["Resource"])]
        assert read == [{"Ref": attachment}], name


def test_only_the_event_processor_may_send_email_and_only_from_its_identity(synth):
    for name, statements in _role_policies(synth).items():
        ses = [s for s in statements if any(a.startswith("ses:") for a in _listify(s["Action"]))]
        if name == "event_processor":
            (statement,) = ses
            assert ":identity/dramac.app" in str(statement["Resource"])
        else:
            assert not ses, name


def test_automation_secrets_key_is_used_by_two_functions_one_action_each(synth):
    key = synth.logical_id(synth.backend.automation_key)
    expected = {"automation": "kms:GenerateDataKey", "event_processor": "kms:Decrypt"}
    for name, statements in _role_policies(synth).items():
        on_key = [s for s in statements if {"Fn::GetAtt": [key, "Arn"]} in _listify(s["Resource"])]
        if name in expected:
            (statement,) = on_key
            assert _listify(statement["Action"]) == [expected[name]], name
            assert statement["Condition"] == {
                "StringEquals": {"kms:EncryptionContext:dramac:purpose": "automation-secret"}}
        else:
            assert not on_key, name


def test_automation_secrets_key_rotates_and_is_kept(synth):
    key = synth.backend_template["Resources"][synth.logical_id(synth.backend.automation_key)]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
