"""The local SQS: moto's server on loopback with the same queues as in AWS, and pollers that hand
received messages to the queue-triggered handlers as real SQS events (partial batch failures honoured)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from .events import LocalContext, call_handler, sqs_event, sqs_record

log = logging.getLogger("dramac.sqs")

# Queue → (function that consumes it, batch size, visibility timeout s, max receives before the DLQ)
QUEUE_CONSUMERS: dict[str, tuple[str, int, int, int]] = {
    "provision": ("provision", 5, 180, 5),
    "events": ("event_processor", 10, 180, 5),
}


def queue_url_output(name: str) -> str:
    """The CloudFormation output holding a queue's URL in the deployed stack (the CDK app defines it,
    ``dramac dlq --stack`` reads it): ``EventsQueueUrl``."""
    return "".join(part.capitalize() for part in name.split("_")) + "QueueUrl"


def start_moto_server(host: str = "127.0.0.1", port: int = 0) -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per SQS poll

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    real_port = server._server.server_port if server._server else port  # the port the OS gave when 0 was asked
    return server, f"http://{host}:{real_port}"


def configure_local_aws_env(endpoint: str) -> None:
    os.environ["SQS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_REGION", "us-east-1")


def create_queues(client: Any, prefix: str) -> dict[str, str]:
    """Create each queue with its dead-letter queue, as the CDK app does; returns logical → URL."""
    urls = {}
    for logical, (_, _, visibility, max_receives) in QUEUE_CONSUMERS.items():
        dlq_url = client.create_queue(QueueName=f"{prefix}-{logical}-dlq")["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        urls[logical] = client.create_queue(
            QueueName=f"{prefix}-{logical}",
            Attributes={
                "VisibilityTimeout": str(visibility),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
            },
        )["QueueUrl"]
        # The consumer must know the queue's maxReceiveCount to record a failure before the DLQ takes over.
        os.environ.setdefault(f"{logical.upper()}_MAX_RECEIVES", str(max_receives))
    return urls


class QueuePoller(threading.Thread):
    """Long-polls one queue and invokes its handler with SQS events, like Lambda's event source mapping."""

    def __init__(self, client: Any, queue_url: str, function: str, handler: Callable[..., Any], batch_size: int,
                 stop: threading.Event):
        super().__init__(name=f"poller-{function}", daemon=True)
        self.client, self.queue_url, self.function = client, queue_url, function
        self.handler, self.batch_size, self.stop = handler, batch_size, stop
        self.queue_arn = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:  # a poller must survive a failing handler, as Lambda's does
                log.exception("poller %s failed", self.function)
                self.stop.wait(1)

    def poll_once(self, wait_seconds: int = 0) -> int:
        response = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        records = [
            sqs_record(m["Body"], queue_arn=self.queue_arn, message_id=m["MessageId"],
                       receipt_handle=m["ReceiptHandle"],
                       receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")))
            for m in messages
        ]
        try:
            result = call_handler(self.handler, sqs_event(records), LocalContext(self.function, timeout_s=30))
        except Exception:  # the whole batch returns to the queue, as in AWS
            log.exception("%s raised; %d message(s) will be redelivered", self.function, len(records))
            return len(records)
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:start + 10])],
            )
        return len(records)


class ScheduledInvoker(threading.Thread):
    """Invokes a scheduled function every ``interval_s`` seconds, like an EventBridge schedule
    (the outbox relay: undispatched events and lost resume messages)."""

    def __init__(self, function: str, handler: Callable[..., Any], interval_s: float, stop: threading.Event):
        super().__init__(name=f"schedule-{function}", daemon=True)
        self.function, self.handler, self.interval_s, self.stop = function, handler, interval_s, stop

    def run(self) -> None:
        event = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
        while not self.stop.wait(self.interval_s):
            try:
                call_handler(self.handler, event, LocalContext(self.function, timeout_s=60))
            except Exception:  # the next tick tries again, as a schedule would
                log.exception("scheduled %s failed", self.function)
