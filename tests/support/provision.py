"""The moto provision queue as the install tests see it: what the handlers sent, and running those
jobs through the real provision handler."""

from __future__ import annotations

import threading


class ProvisionQueue:
    """The moto provision queue: what the install handler sent, and running it through the worker."""

    def __init__(self, client, url, arn):
        self.client, self.url, self.arn = client, url, arn

    def receive(self):
        messages = []
        while True:
            batch = self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                AttributeNames=["All"]).get("Messages", [])
            if not batch:
                return messages
            messages += batch

    def drain(self, concurrent=False):
        """Run every queued job through the provision handler (one record per invocation)."""
        from dramac_dev.events import LocalContext, call_handler, sqs_event, sqs_record
        from dramac_dev.functions_loader import get_handler

        handler = get_handler("provision")
        messages = self.receive()
        results = []

        def run(m):
            record = sqs_record(m["Body"], queue_arn=self.arn, message_id=m["MessageId"], receipt_handle=m["ReceiptHandle"])
            results.append(call_handler(handler, sqs_event([record]), LocalContext("provision")))

        if concurrent:
            threads = [threading.Thread(target=run, args=(m,)) for m in messages]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for m in messages:
                run(m)
        assert all(r["batchItemFailures"] == [] for r in results)
        return len(messages)
