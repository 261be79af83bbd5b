"""Writes the sample events of the automation, event_processor and relay functions.

Run from the repository root: ``.venv/bin/python events/automation/generate_samples.py``. Events are
built with ``dramac_dev.events`` (the shapes AWS sends) around the demo records of ``dramac_dev.seed``.
"""

from __future__ import annotations

import json
from pathlib import Path

from dramac_dev import seed
from dramac_dev.events import http_event, sqs_event, sqs_record

ROOT = Path(__file__).resolve().parents[1]
SITE = seed.DEMO_SITE_ID
BASE = f"/api/sites/{SITE}/automation"
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:dramac-events"
MISSING = "00000000-0000-4000-8000-00000000dead"


def claims(user) -> dict:
    return {"sub": str(user), "aud": "authenticated", "role": "authenticated", "iss": "dramac-local",
            "exp": 4102444800, "iat": 1700000000}


def http(name: str, method: str, path: str, *, user=seed.DEMO_USER_ID, **kwargs) -> tuple[str, dict]:
    event = http_event(method, path, claims=claims(user) if user else None, request_id=f"sample-{name}", **kwargs)
    event["requestContext"]["time"], event["requestContext"]["timeEpoch"] = "14/Nov/2023:22:13:20 +0000", 1700000000000
    return name, event


WORKFLOW = {
    "name": "Welcome hot leads",
    "triggerEventType": "crm.contact.created",
    "filter": {"lead_score": {"gte": 50}},
    "steps": [
        {"type": "condition", "config": {"field": "event.payload.status", "operator": "neq", "value": "archived"}},
        {"type": "http_request", "config": {"method": "POST", "url": "https://hooks.example.com/leads",
                                            "body": {"email": "{{event.payload.email}}",
                                                     "score": "{{event.payload.lead_score}}"}}},
        {"type": "set_variable", "config": {"name": "last_lead", "value": "{{event.payload.email}}"}},
    ],
}

AUTOMATION = [
    http("create_workflow", "POST", f"{BASE}/workflows", body=WORKFLOW),
    http("create_workflow_invalid_400", "POST", f"{BASE}/workflows",
         body={**WORKFLOW, "steps": [{"type": "teleport", "config": {}}]}),
    http("create_workflow_member_403", "POST", f"{BASE}/workflows", user=seed.DEMO_MEMBER_ID, body=WORKFLOW),
    http("list_workflows", "GET", f"{BASE}/workflows"),
    http("get_workflow_404", "GET", f"{BASE}/workflows/{MISSING}"),
    http("list_executions", "GET", f"{BASE}/executions", query={"limit": "20"}),
    http("get_execution_404", "GET", f"{BASE}/executions/{MISSING}"),
    http("emit_event", "POST", f"{BASE}/events",
         body={"eventType": "crm.contact.created",
               "payload": {"id": "6f1c1d7e-1111-4222-8333-444455556666", "email": "ada@example.test",
                           "lead_score": 72, "status": "active"}}),
    http("emit_event_unknown_400", "POST", f"{BASE}/events", body={"eventType": "crm.ufo.seen", "payload": {}}),
    http("list_event_types", "GET", f"{BASE}/event-types"),
    http("create_webhook", "POST", f"{BASE}/webhooks", body={"name": "Shop orders"}),
    http("list_webhooks", "GET", f"{BASE}/webhooks"),
    http("webhook_call_unknown_404", "POST", "/api/webhooks/automation/not-a-real-token", user=None,
         body={"order": 42}),
]

EVENT_PROCESSOR = {
    "event_message": sqs_event([sqs_record(json.dumps({"eventId": MISSING}), queue_arn=QUEUE_ARN,
                                           message_id="sample-event")]),
    "resume_message": sqs_event([sqs_record(json.dumps({"executionId": MISSING}), queue_arn=QUEUE_ARN,
                                            message_id="sample-resume")]),
    "partial_failure_batch": sqs_event([
        sqs_record(json.dumps({"eventId": MISSING}), queue_arn=QUEUE_ARN, message_id="sample-good"),
        sqs_record("not json", queue_arn=QUEUE_ARN, message_id="sample-malformed")]),
}

RELAY = {
    "scheduled": {"version": "0", "id": "sample-relay", "detail-type": "Scheduled Event", "source": "aws.events",
                  "account": "000000000000", "time": "2023-11-14T22:13:20Z", "region": "us-east-1",
                  "resources": ["arn:aws:events:us-east-1:000000000000:rule/dramac-relay"], "detail": {}},
}


def write(folder: str, name: str, event: dict) -> None:
    for record in event.get("Records", []):
        record["attributes"]["SentTimestamp"] = record["attributes"]["ApproximateFirstReceiveTimestamp"] = "1700000000000"
    path = ROOT / folder / f"{name}.json"
    path.write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    for name, event in AUTOMATION:
        write("automation", name, event)
    for name, event in EVENT_PROCESSOR.items():
        write("event_processor", name, event)
    for name, event in RELAY.items():
        write("relay", name, event)
    print(f"wrote {len(AUTOMATION) + len(EVENT_PROCESSOR) + len(RELAY)} sample events")
