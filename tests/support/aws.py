"""Emulated AWS for tests: moto's SQS with the project's queues (as ``dramac dev`` and the CDK app
create them) and SES with a verified sender. The one way the suites emulate AWS: the ``aws`` fixture
(tests/conftest.py) and ``emulated_aws()`` for a test that needs it inside a scope of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# moto registers its request stub among botocore's built-in handlers when it is imported, and a
# botocore session takes those handlers when it is created: imported here, at the start of every test
# run, it is in the one session the layer keeps (core.aws) whenever that session is made.
import moto  # noqa: F401

EMAIL_FROM = "automation@example.test"


class EmulatedAws:
    """moto's SQS (the project's queues) and SES: what the layer sent, and feeding it to the workers."""

    def __init__(self, sqs: Any, ses: Any, urls: dict[str, str], kms: Any = None, kms_key_id: str = ""):
        self.sqs = sqs
        self.ses = ses
        self.kms = kms
        self.kms_key_id = kms_key_id  # AUTOMATION_KMS_KEY_ID inside the emulation
        self.urls = urls
        self.events_url = urls["events"]
        self.queue_arn = self.arn("events")

    def arn(self, logical: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=self.urls[logical], AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    def take(self, logical: str) -> list[dict[str, Any]]:
        """Receive and delete every message now on the queue; returns their JSON bodies."""
        bodies = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.urls[logical], MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return bodies
            for message in batch:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.urls[logical], ReceiptHandle=message["ReceiptHandle"])

    def pending_messages(self, wait: int = 0) -> list[dict[str, Any]]:
        """Receive (and hide) what is visible on the events queue now."""
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.events_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                           AttributeNames=["All"]).get("Messages", [])
            if not got:
                return out
            out += got

    def purge(self) -> None:
        for m in self.pending_messages():
            self.sqs.delete_message(QueueUrl=self.events_url, ReceiptHandle=m["ReceiptHandle"])

    def drain(self, rounds: int = 500, batch_size: int = 10) -> list[dict[str, Any]]:
        """Feed visible events-queue messages to the event_processor handler until the queue is empty;
        returns the handler's results. Messages it reports failed are left on the queue.

        ``rounds`` only bounds a queue that never empties: a relay run with no grace sends, ahead of a
        test's own messages, every event an earlier test on the same worker sent into an emulated queue
        that was then thrown away (no processor received them, so none is marked), hundreds of them."""
        from dramac_dev.events import LocalContext, sqs_event, sqs_record
        from dramac_dev.functions_loader import get_handler

        handler = get_handler("event_processor")
        results = []
        for _ in range(rounds):
            got = self.sqs.receive_message(QueueUrl=self.events_url, MaxNumberOfMessages=batch_size,
                                           VisibilityTimeout=60).get("Messages", [])
            if not got:
                break
            records = [sqs_record(m["Body"], queue_arn=self.queue_arn, message_id=m["MessageId"],
                                  receipt_handle=m["ReceiptHandle"]) for m in got]
            result = handler(sqs_event(records), LocalContext("event_processor"))
            results.append(result)
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            for m in got:
                if m["MessageId"] not in failed:
                    self.sqs.delete_message(QueueUrl=self.events_url, ReceiptHandle=m["ReceiptHandle"])
        return results


@contextmanager
def emulated_aws() -> Iterator[EmulatedAws]:
    """Inside it, every queue send and e-mail of the layer lands in moto, never in AWS. The layer's
    clients are made anew inside and forgotten after (they belong to this emulation)."""
    import os

    from dramac_common.automation import outbound, steps, vault
    from dramac_common.core import aws, queues, storage
    from dramac_common.core.settings import get_settings, reset_settings
    from moto import mock_aws

    from dramac_dev.sqs_local import create_queues
    from dramac_dev.stack import create_automation_key

    def forget_clients() -> None:
        reset_settings()
        aws.reset_clients()
        outbound.reset_client()

    previous_key = os.environ.get("AUTOMATION_KMS_KEY_ID")
    with mock_aws():
        forget_clients()
        try:
            urls = create_queues(queues.sqs_client(), get_settings().queue_prefix)
            ses = steps.ses_client()
            ses.verify_email_identity(EmailAddress=EMAIL_FROM)
            storage.s3_client().create_bucket(Bucket=get_settings().exports_bucket)
            key_id = create_automation_key(vault.kms_client())
            os.environ["AUTOMATION_KMS_KEY_ID"] = key_id  # secrets sealed inside open inside only
            forget_clients()
            yield EmulatedAws(queues.sqs_client(), ses, urls, vault.kms_client(), key_id)
        finally:
            if previous_key is None:
                os.environ.pop("AUTOMATION_KMS_KEY_ID", None)
            else:
                os.environ["AUTOMATION_KMS_KEY_ID"] = previous_key
            forget_clients()
