"""Shared pieces of the automation tests: moto SQS/SES with the project's queues, a queue drainer
that feeds the real event_processor handler, and small record helpers."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

EMAIL_FROM = "automation@example.test"


@dataclass
class LocalAws:
    sqs: Any
    ses: Any
    events_url: str
    queue_arn: str

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

    def drain(self, rounds: int = 20, batch_size: int = 10) -> list[dict[str, Any]]:
        """Feed visible messages to the event_processor handler until the queue is empty;
        returns the handler's results. Messages it reports failed are left on the queue."""
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


@pytest.fixture
def aws(database_url, env):
    """moto SQS (the project's queues) and SES (a verified sender) for one test."""
    from dramac_common.automation import outbound, steps
    from dramac_common.core import queues
    from dramac_common.core.settings import reset_settings
    from moto import mock_aws

    from dramac_dev.sqs_local import create_queues

    env.set("AUTOMATION_EMAIL_FROM", EMAIL_FROM)
    env.set("AUTOMATION_HTTP_BACKOFF_BASE_S", "0.01")
    env.set("AUTOMATION_ALLOW_PRIVATE_HTTP", "1")
    for name in ("SQS_ENDPOINT_URL", "SES_ENDPOINT_URL", "EVENTS_QUEUE_URL", "PROVISION_QUEUE_URL"):
        env.unset(name)
    with mock_aws():
        reset_settings()
        queues.reset_client()
        steps.reset_clients()
        outbound._client = None
        urls = create_queues(queues.sqs_client(), os.environ.get("DRAMAC_QUEUE_PREFIX", "dramac"))
        ses = steps.ses_client()
        ses.verify_email_identity(EmailAddress=EMAIL_FROM)
        sqs = queues.sqs_client()
        arn = sqs.get_queue_attributes(QueueUrl=urls["events"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield LocalAws(sqs, ses, urls["events"], arn)
        queues.reset_client()
        steps.reset_clients()


@pytest.fixture
def receiver():
    from dramac_dev.receiver import Receiver

    with Receiver() as r:
        yield r


def claims_for(user: uuid.UUID) -> dict[str, Any]:
    return {"sub": str(user), "aud": "authenticated", "role": "authenticated", "iss": "dramac-local",
            "exp": 4102444800, "iat": 1700000000}


def emit(site_id: uuid.UUID, event_type: str, payload: dict[str, Any]) -> uuid.UUID:
    """An event written the way modules write them: log_automation_event in a transaction."""
    from dramac_common.automation.outbox import log_automation_event
    from dramac_common.core import db

    with db.service_unit() as unit:
        return log_automation_event(unit, site_id, event_type, payload, source_module="test")


def create_workflow(api, tenant, steps: list[dict[str, Any]], *, trigger: str = "crm.contact.created",
                    filter_: dict[str, Any] | None = None, name: str = "Workflow") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "triggerEventType": trigger, "steps": steps}
    if filter_ is not None:
        body["filter"] = filter_
    reply = api.post(f"/api/sites/{tenant.site_id}/automation/workflows", user=tenant.owner, body=body)
    assert reply.status == 201, reply.body
    return reply.data


def executions(owner_conn, workflow_id) -> list[dict[str, Any]]:
    return owner_conn.execute(
        "SELECT id, status, error, next_position FROM workflow_executions WHERE workflow_id = %s ORDER BY created_at",
        (workflow_id,),
    ).fetchall()


def step_logs(owner_conn, execution_id) -> list[dict[str, Any]]:
    return owner_conn.execute(
        "SELECT position, step_type, status, input, output, error, attempts, duration_ms "
        "FROM step_execution_logs WHERE execution_id = %s ORDER BY position",
        (execution_id,),
    ).fetchall()


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
