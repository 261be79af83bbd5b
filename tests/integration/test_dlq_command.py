"""``dramac dlq list|show|redrive``: against moto's SQS server (the local stack's, over HTTP) and against
queues named as CDK names them in AWS (found by URL, their DLQ by RedrivePolicy)."""

from __future__ import annotations

import json
import os
import uuid

import boto3
import pytest

from dramac_dev.cli import main
from dramac_dev.sqs_local import QUEUE_CONSUMERS, create_queues, start_moto_server


@pytest.fixture(scope="module")
def moto_endpoint():
    server, endpoint = start_moto_server()
    yield endpoint
    server.stop()


@pytest.fixture
def local_queues(moto_endpoint, monkeypatch):
    """The project's queues (with their DLQs, as ``dramac dev`` creates them) under a fresh prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    for name in QUEUE_CONSUMERS:
        monkeypatch.delenv(f"{name.upper()}_QUEUE_URL", raising=False)
    monkeypatch.setenv("DRAMAC_QUEUE_PREFIX", prefix)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    return sqs, create_queues(sqs, prefix)


def dead_letter(sqs, url: str, bodies: list[dict]) -> None:
    """Messages that failed maxReceiveCount times: received and never deleted, until SQS moves them."""
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    for _ in range(QUEUE_CONSUMERS["events"][3] + 1):
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)


def dlq(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["dlq", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_show_and_redrive_against_the_local_stacks_sqs(local_queues, moto_endpoint, capsys):
    sqs, urls = local_queues
    bodies = [{"eventId": str(uuid.uuid4())} for _ in range(3)]
    dead_letter(sqs, urls["events"], bodies)

    code, out, _ = dlq(capsys, "list", "--endpoint-url", moto_endpoint, "--json")
    assert code == 0
    listed = {row["queue"]: row for row in json.loads(out)}
    assert listed["events"]["deadLettered"]["visible"] == 3 and listed["events"]["queued"]["visible"] == 0
    assert listed["events"]["deadLetterUrl"].endswith("-events-dlq")
    assert listed["provision"]["deadLettered"]["visible"] == 0

    code, out, _ = dlq(capsys, "show", "events", "--endpoint-url", moto_endpoint)
    shown = json.loads(out)
    assert code == 0 and sorted(m["body"]["eventId"] for m in shown) == sorted(b["eventId"] for b in bodies)
    assert all(m["receiveCount"] >= 1 for m in shown)

    code, out, _ = dlq(capsys, "redrive", "events", "--endpoint-url", moto_endpoint, "--limit", "2")
    assert code == 0 and json.loads(out)["redriven"] == 2
    code, out, _ = dlq(capsys, "redrive", "events", "--endpoint-url", moto_endpoint)
    assert code == 0 and json.loads(out)["redriven"] == 1

    back = []
    while got := sqs.receive_message(QueueUrl=urls["events"], MaxNumberOfMessages=10).get("Messages", []):
        back += [json.loads(m["Body"]) for m in got]
        sqs.delete_message_batch(QueueUrl=urls["events"],
                                 Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    assert sorted(b["eventId"] for b in back) == sorted(b["eventId"] for b in bodies)
    code, out, _ = dlq(capsys, "list", "--endpoint-url", moto_endpoint, "--json")
    assert {r["queue"]: r for r in json.loads(out)}["events"]["deadLettered"] == {"visible": 0, "inFlight": 0}


def test_redrive_moves_a_message_that_fails_again_only_once(local_queues):
    """A poison message redriven while its consumer still fails lands on the DLQ again during the run:
    the run leaves it there instead of moving it round and round."""
    from dramac_dev.dlq import queue_pair, redrive

    sqs, urls = local_queues
    dead_letter(sqs, urls["events"], [{"eventId": str(uuid.uuid4())}])
    pair = queue_pair(sqs, "events", env=dict(os.environ), outputs=None)

    class FailingConsumer:
        """The SQS client, with a consumer that fails each message as soon as it is redriven."""

        def __getattr__(self, name):
            return getattr(sqs, name)

        def send_message_batch(self, **kwargs):
            sent = sqs.send_message_batch(**kwargs)
            for _ in range(pair.max_receives + 1):
                sqs.receive_message(QueueUrl=pair.url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            return sent

    assert redrive(FailingConsumer(), pair, limit=20) == 1
    left = sqs.get_queue_attributes(QueueUrl=pair.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert left["Attributes"]["ApproximateNumberOfMessages"] == "1"


def test_the_table_names_every_queue(local_queues, moto_endpoint, capsys):
    code, out, _ = dlq(capsys, "list", "--endpoint-url", moto_endpoint)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == list(QUEUE_CONSUMERS)


@pytest.mark.parametrize("args, message", [
    (["show", "nope"], "unknown queue 'nope'"),
    (["redrive"], "needs a QUEUE"),
])
def test_operator_mistakes_are_one_line_and_exit_2(local_queues, moto_endpoint, capsys, args, message):
    code, _, err = dlq(capsys, *args, "--endpoint-url", moto_endpoint)
    assert code == 2 and message in err


def generated_queues(sqs) -> dict[str, str]:
    """Queues named as CDK names them (``DramacBackend-EventsQueue1A2B3C-…``), each with its DLQ."""
    urls = {}
    for name in QUEUE_CONSUMERS:
        suffix = uuid.uuid4().hex[:12].upper()
        dlq_url = sqs.create_queue(QueueName=f"DramacBackend-{name.capitalize()}DeadLetterQueue-{suffix}")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        urls[name] = sqs.create_queue(
            QueueName=f"DramacBackend-{name.capitalize()}Queue-{suffix}",
            Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})},
        )["QueueUrl"]
    return urls


def test_deployed_queues_are_found_by_url_and_their_dlq_by_redrive_policy(monkeypatch, capsys):
    """In AWS the queue names are generated: the URL comes from ``<NAME>_QUEUE_URL`` (or the stack's
    outputs) and the DLQ from the queue's RedrivePolicy, never from a guessed name."""
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        urls = generated_queues(sqs)
        for name, url in urls.items():
            monkeypatch.setenv(f"{name.upper()}_QUEUE_URL", url)
        dead_letter(sqs, urls["events"], [{"executionId": str(uuid.uuid4())}])
        code, out, _ = dlq(capsys, "list", "--json")
        listed = {r["queue"]: r for r in json.loads(out)}
        assert code == 0 and listed["events"]["deadLettered"]["visible"] == 1
        assert "EventsDeadLetterQueue" in listed["events"]["deadLetterUrl"]
        code, out, _ = dlq(capsys, "redrive", "events")
        assert code == 0 and json.loads(out)["redriven"] == 1
        assert len(sqs.receive_message(QueueUrl=urls["events"]).get("Messages", [])) == 1


def test_stack_outputs_name_the_queue_urls(monkeypatch):
    """``--stack``: the URLs are the CloudFormation outputs ``<Name>QueueUrl`` the CDK app defines
    (infra/backend_stack.py); botocore's own Stubber answers DescribeStacks (moto's CloudFormation
    needs 25 more packages)."""
    from botocore.stub import Stubber

    from dramac_dev import dlq as dlq_module

    client = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_response("describe_stacks", {"Stacks": [{
        "StackName": "DramacBackend", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": "EventsQueueUrl", "OutputValue": "https://sqs.example/1/DramacBackend-EventsQ"}]}]},
        {"StackName": "DramacBackend"})
    monkeypatch.setattr(boto3, "client", lambda service, **kw: client)
    with stubber:
        outputs = dlq_module.stack_outputs("DramacBackend", "us-east-1")
    assert dlq_module.queue_url(None, "events", env={}, outputs=outputs) == "https://sqs.example/1/DramacBackend-EventsQ"
    with pytest.raises(dlq_module.DlqError, match="no output ProvisionQueueUrl"):
        dlq_module.queue_url(None, "provision", env={}, outputs=outputs)
