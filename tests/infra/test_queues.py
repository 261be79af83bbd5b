"""Queues from QUEUE_CONSUMERS: dead-letter queues, consumers, visibility, alarms, the relay and retention schedules."""

from __future__ import annotations

import pytest

from dramac_dev.sqs_local import QUEUE_CONSUMERS, queue_url_output
from infra import catalog


def _queue(synth, name: str) -> dict:
    return synth.backend_template["Resources"][synth.logical_id(synth.backend.queues[name])]["Properties"]


@pytest.mark.parametrize("name", sorted(QUEUE_CONSUMERS))
def test_each_queue_has_a_dead_letter_queue_with_the_configured_max_receives(synth, name):
    _, _, visibility, max_receives = QUEUE_CONSUMERS[name]
    props = _queue(synth, name)
    dlq = synth.logical_id(synth.backend.dead_letter_queues[name])
    assert props["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                                      "maxReceiveCount": max_receives}
    assert props["VisibilityTimeout"] == visibility


@pytest.mark.parametrize("name", sorted(QUEUE_CONSUMERS))
def test_each_queue_url_is_the_output_dramac_dlq_reads(synth, name):
    output = synth.backend_template["Outputs"][queue_url_output(name)]
    assert output["Value"] == {"Ref": synth.logical_id(synth.backend.queues[name])}


@pytest.mark.parametrize("name", sorted(QUEUE_CONSUMERS))
def test_queue_visibility_is_at_least_six_times_the_consumer_timeout(synth, name):
    consumer = QUEUE_CONSUMERS[name][0]
    assert _queue(synth, name)["VisibilityTimeout"] >= 6 * synth.functions()[consumer]["Timeout"]


@pytest.mark.parametrize("name", sorted(QUEUE_CONSUMERS))
def test_consumer_reads_its_queue_reporting_batch_item_failures(synth, name):
    consumer, batch_size, _, _ = QUEUE_CONSUMERS[name]
    queue = synth.logical_id(synth.backend.queues[name])
    function = synth.logical_id(synth.backend.functions[consumer])
    (mapping,) = [m["Properties"] for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
                  if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}]
    assert mapping["FunctionName"] == {"Ref": function}
    assert mapping["BatchSize"] == batch_size
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_provision_pollers_never_exceed_the_provisioners_reserved_concurrency(synth):
    queue = synth.logical_id(synth.backend.queues[catalog.PROVISION_QUEUE])
    (mapping,) = [m["Properties"] for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
                  if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] <= max(
        2, synth.functions()["provision"]["ReservedConcurrentExecutions"])


def test_queues_without_a_merged_consumer_have_no_event_source_yet(synth):
    consumers = {c for c, *_ in QUEUE_CONSUMERS.values()}
    assert len(synth.resources("AWS::Lambda::EventSourceMapping")) == len(consumers & set(synth.backend.functions))


def test_visibility_shorter_than_six_timeouts_fails_synth(monkeypatch, tmp_path):
    import dataclasses

    import aws_cdk as cdk

    from infra.backend_stack import BackendStack
    from infra.config import DeployConfig

    real = catalog.queues()
    short = [dataclasses.replace(q, visibility_timeout_s=60) if q.name == "provision" else q for q in real]
    monkeypatch.setattr(catalog, "queues", lambda: short)
    app = cdk.App(outdir=str(tmp_path))
    with pytest.raises(ValueError, match="6x"):
        BackendStack(app, "Bad", config=DeployConfig.from_node(app.node), functions_dir=catalog.FUNCTIONS_DIR,
                     staging_dir=tmp_path / "staging")


def _alarm_metrics(synth) -> set[tuple[str, str]]:
    alarms = synth.resources("AWS::CloudWatch::Alarm").values()
    return {(a["Properties"]["MetricName"], a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0])
            for a in alarms if a["Properties"]["Namespace"] == "AWS/SQS"}


@pytest.mark.parametrize("name", sorted(QUEUE_CONSUMERS))
def test_dead_letter_depth_and_queue_age_raise_alarms(synth, name):
    metrics = _alarm_metrics(synth)
    assert ("ApproximateNumberOfMessagesVisible", synth.logical_id(synth.backend.dead_letter_queues[name])) in metrics
    assert ("ApproximateAgeOfOldestMessage", synth.logical_id(synth.backend.queues[name])) in metrics


def test_alarms_notify_the_alarm_topic(synth):
    topic = {"Ref": synth.logical_id(synth.backend.alarm_topic)}
    for logical_id, alarm in synth.resources("AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [topic], logical_id


def test_relay_runs_on_a_schedule(synth):
    relay = synth.logical_id(synth.backend.functions["relay"])
    rules = [r["Properties"] for r in synth.resources("AWS::Events::Rule").values()]
    (rule,) = [r for r in rules if r["Targets"][0]["Arn"] == {"Fn::GetAtt": [relay, "Arn"]}]
    assert rule["ScheduleExpression"] == "rate(1 minute)"


def test_queue_urls_reach_only_the_functions_that_send_to_them(synth):
    for name, props in synth.functions().items():
        env = props["Environment"]["Variables"]
        urls = {k for k in env if k.endswith("_QUEUE_URL")}
        assert urls == {f"{q.upper()}_QUEUE_URL" for q in catalog.settings_for(name).sends_to}, name


@pytest.mark.parametrize("name", sorted(QUEUE_CONSUMERS))
def test_queues_are_encrypted_and_refuse_plain_http(synth, name):
    assert _queue(synth, name)["SqsManagedSseEnabled"] is True
    policies = [p["Properties"] for p in synth.resources("AWS::SQS::QueuePolicy").values()]
    queue = {"Ref": synth.logical_id(synth.backend.queues[name])}
    assert any(queue in p["Queues"] and any(s["Effect"] == "Deny" and "aws:SecureTransport" in str(s["Condition"])
                                            for s in p["PolicyDocument"]["Statement"]) for p in policies)


@pytest.mark.parametrize("name", sorted(QUEUE_CONSUMERS))
def test_consumer_knows_its_queues_max_receives(synth, name):
    consumer, max_receives = QUEUE_CONSUMERS[name][0], QUEUE_CONSUMERS[name][3]
    env = synth.functions()[consumer]["Environment"]["Variables"]
    assert env[f"{name.upper()}_MAX_RECEIVES"] == str(max_receives)


def test_retention_runs_daily_on_a_schedule_with_one_instance_at_most(synth):
    retention = synth.logical_id(synth.backend.functions["retention"])
    rules = [r["Properties"] for r in synth.resources("AWS::Events::Rule").values()]
    (rule,) = [r for r in rules if r["Targets"][0]["Arn"] == {"Fn::GetAtt": [retention, "Arn"]}]
    assert rule["ScheduleExpression"] == "rate(1 day)"
    function = synth.functions()["retention"]
    assert function["ReservedConcurrentExecutions"] == 1 and function["Timeout"] == 600
