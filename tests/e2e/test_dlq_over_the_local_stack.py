"""``dramac dlq --port`` against a running ``dramac dev``: it finds the stack's own moto SQS from the
stack's file (``.dramac/stacks/PORT.json``), lists both queues, shows a dead-lettered message and
redrives it to the queue, where the stack's event processor takes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import urlparse

import boto3

from dramac_dev import stackfile


def dlq(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SQS_ENDPOINT_URL" and not k.endswith("_QUEUE_URL")}
    env.pop("DRAMAC_QUEUE_PREFIX", None)
    return subprocess.run([sys.executable, "-m", "dramac_dev.cli", "dlq", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_dlq_commands_work_against_the_local_stack(local_stack) -> None:
    port = str(urlparse(local_stack.url).port)
    listed = dlq("list", "--port", port, "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = {r["queue"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"provision", "events"}

    # a message SQS dead-lettered (put straight onto the stack's events DLQ): an event that no longer exists
    state = stackfile.read_state(int(port))
    assert state is not None and state.sqs_endpoint
    sqs = boto3.client("sqs", endpoint_url=state.sqs_endpoint, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    body = {"eventId": "00000000-0000-4000-8000-00000000dead"}
    sqs.send_message(QueueUrl=rows["events"]["deadLetterUrl"], MessageBody=json.dumps(body))

    shown = dlq("show", "events", "--port", port)
    assert shown.returncode == 0 and [m["body"] for m in json.loads(shown.stdout)] == [body]
    redriven = dlq("redrive", "events", "--port", port)
    assert redriven.returncode == 0 and json.loads(redriven.stdout)["redriven"] == 1

    deadline = time.monotonic() + 30  # the stack's poller takes it from the queue and acknowledges it
    while time.monotonic() < deadline:
        counts = {r["queue"]: r for r in json.loads(dlq("list", "--port", port, "--json").stdout)}["events"]
        if counts["queued"] == {"visible": 0, "inFlight": 0} and counts["deadLettered"]["visible"] == 0:
            break
        time.sleep(0.5)
    assert counts["queued"] == {"visible": 0, "inFlight": 0} and counts["deadLettered"]["visible"] == 0


def test_a_port_without_a_stack_is_one_sentence(local_stack) -> None:
    done = dlq("list", "--port", "1")
    assert done.returncode == 2 and "no local stack of this checkout serves on port 1" in done.stderr
    assert "Traceback" not in done.stderr
