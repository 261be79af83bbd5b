"""Sending to the project's SQS queues, with an endpoint override for the local stack (moto).

Queues are named ``<prefix>-<logical name>`` (``dramac-provision``, ``dramac-events``); a function
in AWS gets each queue's URL from ``<NAME>_QUEUE_URL`` and never looks it up.
"""

from __future__ import annotations

import json
from typing import Any

from . import aws
from .settings import get_settings

PROVISION = "provision"
EVENTS = "events"
QUEUES = (PROVISION, EVENTS)

_urls: dict[str, str] = {}

sqs_client = aws.LazyClient("sqs", lambda: {"endpoint_url": get_settings().sqs_endpoint_url,
                                            "region_name": get_settings().aws_region}, on_reset=_urls.clear)
reset_client = sqs_client.reset


def queue_name(logical: str) -> str:
    return f"{get_settings().queue_prefix}-{logical}"


def queue_url(logical: str) -> str:
    url = get_settings().queue_urls.get(logical) or _urls.get(logical)
    if not url:
        url = str(sqs_client().get_queue_url(QueueName=queue_name(logical))["QueueUrl"])
        _urls[logical] = url
    return url


def send_message(logical: str, body: dict[str, Any], *, delay_seconds: int = 0) -> str:
    """Send one JSON message; returns its message id."""
    response = sqs_client().send_message(
        QueueUrl=queue_url(logical),
        MessageBody=json.dumps(body, default=str, separators=(",", ":")),
        DelaySeconds=max(0, min(900, int(delay_seconds))),
    )
    return str(response["MessageId"])


def send_messages(logical: str, bodies: list[dict[str, Any]]) -> None:
    """Send many JSON messages, ten per request (SQS's batch limit); raises if any was refused. One message
    goes as a SendMessage (a write's one event: a smaller request and answer than a batch of one)."""
    client, url = sqs_client(), queue_url(logical)
    if len(bodies) == 1:
        client.send_message(QueueUrl=url, MessageBody=json.dumps(bodies[0], default=str, separators=(",", ":")))
        return
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        response = client.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": json.dumps(b, default=str, separators=(",", ":"))}
                for i, b in enumerate(chunk)
            ],
        )
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused {len(response['Failed'])} message(s): {response['Failed'][0]}")
