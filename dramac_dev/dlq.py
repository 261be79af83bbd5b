"""``dramac dlq list|show|redrive``: the dead-letter queues of the project's queues, with boto3, against
AWS or the local stack's moto server.

Which queues: the logical queues (``provision``, ``events``; ``dramac_dev.sqs_local.QUEUE_CONSUMERS``,
the same the CDK app creates). A queue's URL is ``<NAME>_QUEUE_URL`` when set, else the CloudFormation
output ``<Name>QueueUrl`` of ``--stack`` (``sqs_local.queue_url_output``) (the deployed stack, whose queue names CDK generates), else the
queue named ``<DRAMAC_QUEUE_PREFIX>-<name>`` (the local stack). Its dead-letter queue is the one its
``RedrivePolicy`` names, so nothing here guesses a DLQ's name.

Where: AWS with the usual credentials and region; the local stack with ``--port`` (its SQS endpoint,
from ``.dramac/stacks/PORT.json``) or ``--endpoint-url`` / ``SQS_ENDPOINT_URL``.

``show`` receives with a zero visibility timeout, so the messages stay where they are (each receive
counts in ``ApproximateReceiveCount``; SQS has no other way to read a message). ``redrive`` moves
messages back to their queue: each batch is sent to the queue first and deleted from the DLQ only
once SQS accepted it, so a crash in between delivers a message twice, never loses one; the consumers
are idempotent (one execution per event and workflow; a provision job re-checks what exists).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from .sqs_local import QUEUE_CONSUMERS, queue_url_output

SHOW_VISIBILITY_S = 0
REDRIVE_VISIBILITY_S = 60


class DlqError(Exception):
    """What the operator must fix (an unknown queue, a queue without a DLQ): printed, exit 2."""


@dataclass(frozen=True)
class QueuePair:
    name: str
    url: str
    dlq_url: str
    max_receives: int


def stack_outputs(stack: str, region: str | None) -> dict[str, str]:
    import boto3

    described = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def queue_url(sqs: Any, name: str, *, env: dict[str, str], outputs: dict[str, str] | None) -> str:
    if env.get(f"{name.upper()}_QUEUE_URL"):
        return env[f"{name.upper()}_QUEUE_URL"]
    if outputs is not None:
        key = queue_url_output(name)
        if key not in outputs:
            raise DlqError(f"the stack has no output {key}: is the {name} queue deployed?")
        return outputs[key]
    prefix = env.get("DRAMAC_QUEUE_PREFIX") or "dramac"
    try:
        return str(sqs.get_queue_url(QueueName=f"{prefix}-{name}")["QueueUrl"])
    except sqs.exceptions.QueueDoesNotExist as exc:
        raise DlqError(f"no queue {prefix}-{name} here: start the local stack (dramac dev), pass --port, "
                       "or --stack for a deployed one") from exc


def queue_pair(sqs: Any, name: str, *, env: dict[str, str], outputs: dict[str, str] | None) -> QueuePair:
    if name not in QUEUE_CONSUMERS:
        raise DlqError(f"unknown queue {name!r}; the queues are: {', '.join(QUEUE_CONSUMERS)}")
    url = queue_url(sqs, name, env=env, outputs=outputs)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
    if "RedrivePolicy" not in attributes:
        raise DlqError(f"the {name} queue has no dead-letter queue (no RedrivePolicy)")
    policy = json.loads(attributes["RedrivePolicy"])
    dlq_arn = policy["deadLetterTargetArn"]
    _, _, _, _, account, dlq_name = dlq_arn.split(":", 5)
    dlq_url = sqs.get_queue_url(QueueName=dlq_name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return QueuePair(name=name, url=url, dlq_url=str(dlq_url), max_receives=int(policy["maxReceiveCount"]))


def counts(sqs: Any, url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {"visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
            "inFlight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))}


def list_queues(sqs: Any, *, env: dict[str, str], outputs: dict[str, str] | None) -> list[dict[str, Any]]:
    rows = []
    for name in QUEUE_CONSUMERS:
        pair = queue_pair(sqs, name, env=env, outputs=outputs)
        rows.append({"queue": name, "url": pair.url, "deadLetterUrl": pair.dlq_url, "maxReceives": pair.max_receives,
                     "queued": counts(sqs, pair.url), "deadLettered": counts(sqs, pair.dlq_url)})
    return rows


def _message(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        body: Any = json.loads(raw["Body"])
    except ValueError:
        body = raw["Body"]
    attributes = raw.get("Attributes", {})
    return {"messageId": raw["MessageId"], "body": body,
            "receiveCount": int(attributes.get("ApproximateReceiveCount", 0)),
            "sentTimestamp": int(attributes.get("SentTimestamp", 0)) or None}


def show(sqs: Any, pair: QueuePair, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` dead-lettered messages, left on the DLQ (received with a zero visibility timeout)."""
    seen: dict[str, dict[str, Any]] = {}
    idle_rounds = 0
    while len(seen) < limit and idle_rounds < 3:
        got = sqs.receive_message(QueueUrl=pair.dlq_url, MaxNumberOfMessages=min(10, limit - len(seen)),
                                  VisibilityTimeout=SHOW_VISIBILITY_S, AttributeNames=["All"]).get("Messages", [])
        new = [m for m in got if m["MessageId"] not in seen]
        idle_rounds = 0 if new else idle_rounds + 1
        for message in new:
            seen[message["MessageId"]] = _message(message)
    return list(seen.values())[:limit]


def redrive(sqs: Any, pair: QueuePair, limit: int | None) -> int:
    """Move dead-lettered messages back to their queue (send, then delete); returns how many moved.

    Each message is moved once per run: one that fails again while the run lasts comes back to the
    DLQ under the id its redriven copy got, and is left there (a poison message would otherwise
    bounce between the queues for as long as the run goes on)."""
    moved = 0
    redriven: set[str] = set()  # ids SQS gave the copies this run sent
    while limit is None or moved < limit:
        want = 10 if limit is None else min(10, limit - moved)
        got = sqs.receive_message(QueueUrl=pair.dlq_url, MaxNumberOfMessages=want,
                                  VisibilityTimeout=REDRIVE_VISIBILITY_S, MessageAttributeNames=["All"]
                                  ).get("Messages", [])
        returned = [m for m in got if m["MessageId"] in redriven]
        if returned:  # visible again for the operator's next look; nothing older is left behind them
            sqs.change_message_visibility_batch(QueueUrl=pair.dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(returned)])
        got = [m for m in got if m["MessageId"] not in redriven]
        if not got:
            return moved
        entries = []
        for index, message in enumerate(got):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        sent = sqs.send_message_batch(QueueUrl=pair.url, Entries=entries)
        accepted = {s["Id"]: s["MessageId"] for s in sent.get("Successful", [])}
        redriven.update(accepted.values())
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got) if str(i) in accepted]
        if done:
            sqs.delete_message_batch(QueueUrl=pair.dlq_url, Entries=done)
        moved += len(done)
        if sent.get("Failed"):
            failure = sent["Failed"][0]
            raise DlqError(f"SQS refused {len(sent['Failed'])} message(s) ({failure.get('Code')}: "
                           f"{failure.get('Message')}); they stay on the dead-letter queue")
    return moved


def sqs_client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)


def run(action: str, queue: str | None, *, endpoint_url: str | None, region: str | None, stack: str | None,
        limit: int | None, as_json: bool, env: dict[str, str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    sqs = sqs_client(endpoint_url, region)
    outputs = stack_outputs(stack, region) if stack else None
    if action == "list":
        rows = list_queues(sqs, env=env, outputs=outputs)
        if as_json:
            out.write(json.dumps(rows, indent=2) + "\n")
        else:
            out.write(f"{'queue':<12} {'queued':>7} {'in flight':>10} {'dead-lettered':>14}  dead-letter queue\n")
            for r in rows:
                out.write(f"{r['queue']:<12} {r['queued']['visible']:>7} {r['queued']['inFlight']:>10} "
                          f"{r['deadLettered']['visible'] + r['deadLettered']['inFlight']:>14}  {r['deadLetterUrl']}\n")
        return 0
    if queue is None:
        raise DlqError(f"dramac dlq {action} needs a QUEUE ({', '.join(QUEUE_CONSUMERS)})")
    pair = queue_pair(sqs, queue, env=env, outputs=outputs)
    if action == "show":
        messages = show(sqs, pair, limit or 10)
        out.write(json.dumps(messages, indent=2, default=str) + "\n")
        return 0
    moved = redrive(sqs, pair, limit)
    out.write(json.dumps({"queue": queue, "redriven": moved, "deadLettered": counts(sqs, pair.dlq_url)}) + "\n")
    return 0
