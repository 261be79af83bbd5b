"""``dramac dev``: the whole system on loopback in one process tree.

PostgreSQL (embedded unless ``DATABASE_URL``), migrations and demo records, moto's SQS server with
the project's queues, the gateway (uvicorn) that invokes the real handlers with API Gateway events,
and pollers that feed the queue-triggered handlers real SQS events.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from . import localdb, routes, stackfile
from .functions_loader import available_functions, get_handler
from .sqs_local import (
    QUEUE_CONSUMERS,
    QueuePoller,
    ScheduledInvoker,
    configure_local_aws_env,
    create_queues,
    start_moto_server,
)

log = logging.getLogger("dramac.dev")


def prepare_environment(seed: str = "always") -> str:
    """Database up and migrated; returns its URL (also exported as ``DATABASE_URL``). ``seed``:
    ``always`` writes the demo records that are missing, ``if_unseeded`` only into a database that
    has never been seeded (``dramac invoke``: what a sample changed stays changed), ``never``."""
    from dramac_common.core import db
    from dramac_common.core.migrate import apply_migrations
    from dramac_common.core.settings import reset_settings

    from .seed import seed_demo, unseeded

    url = localdb.local_database_url()
    os.environ["DATABASE_URL"] = url
    reset_settings()
    db.close_pool()  # a pool opened earlier in this process may point at another database
    applied = apply_migrations(url)
    if applied:
        print(f"migrations applied: {', '.join(applied)}", file=sys.stderr)
    if seed == "always" or (seed == "if_unseeded" and unseeded(url)):
        seed_demo(url)
    reset_settings()
    return url


def local_runtime_defaults() -> None:
    os.environ.setdefault("DRAMAC_DB_POOL_MAX", "10")
    os.environ.setdefault("DRAMAC_ROUTER_LOCAL", "1")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("PAYMENT_PROVIDER", "sandbox")
    # Automation: workflows may call receivers on this machine, e-mail goes to moto's SES, and the
    # relay (every DRAMAC_RELAY_INTERVAL_S) picks up what was not sent within 10 s.
    os.environ.setdefault("AUTOMATION_ALLOW_PRIVATE_HTTP", "1")
    os.environ.setdefault("AUTOMATION_EMAIL_FROM", "automation@dramac.local")
    os.environ.setdefault("AUTOMATION_RELAY_GRACE_SECONDS", "10")


def configure_local_ses(endpoint: str) -> None:
    """moto's server also speaks SES: point the send_email step at it, with the sender verified."""
    import boto3

    os.environ["SES_ENDPOINT_URL"] = endpoint
    ses = boto3.client("ses", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    ses.verify_email_identity(EmailAddress=os.environ["AUTOMATION_EMAIL_FROM"])


def configure_local_kms(endpoint: str) -> None:
    """moto's server also speaks KMS: the key that wraps the data keys of automation secrets."""
    import boto3

    os.environ["KMS_ENDPOINT_URL"] = endpoint
    kms = boto3.client("kms", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    os.environ["AUTOMATION_KMS_KEY_ID"] = create_automation_key(kms)


def create_automation_key(kms: object) -> str:
    """A symmetric key as the CDK app creates it (a customer managed key for automation secrets)."""
    key = kms.create_key(Description="DRAMAC automation secrets (local)",  # type: ignore[attr-defined]
                         KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT")
    return str(key["KeyMetadata"]["Arn"])


def configure_local_s3(endpoint: str) -> None:
    """moto's server also speaks S3: exports are stored there and their presigned URLs point at it,
    so the local stack serves the downloads."""
    import boto3
    from dramac_common.core import aws
    from dramac_common.core.settings import get_settings, reset_settings

    os.environ["S3_ENDPOINT_URL"] = endpoint
    reset_settings()
    aws.reset_clients()
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    s3.create_bucket(Bucket=get_settings().exports_bucket)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def run_dev(host: str, port: int) -> int:
    import boto3
    import uvicorn
    from dramac_common.core import aws
    from dramac_common.core.settings import reset_settings

    local_runtime_defaults()
    # The gateway's socket is bound first: with --port 0 the system picks a free port, which `ready`
    # announces, so a caller never races another process for a port it only guessed was free.
    listener = _bind(host, port)
    port = listener.getsockname()[1]
    # Completed sandbox checkouts deliver their webhook to this gateway: configured here, once, since a
    # handler never takes a delivery target from the request it serves.
    loopback = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - comparing, not binding
    os.environ.setdefault("SANDBOX_WEBHOOK_URL", f"http://{loopback}:{port}/api/webhooks/paddle")
    # The emulated AWS first: seeding records events (installs emit them) and sends them after commit,
    # so the queues must exist by then; the pollers started below pick them up.
    moto_server, endpoint = start_moto_server(host)
    configure_local_aws_env(endpoint)
    reset_settings()
    aws.reset_clients()
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    queue_urls = create_queues(sqs, os.environ.get("DRAMAC_QUEUE_PREFIX", "dramac"))
    for logical, url in queue_urls.items():
        os.environ[f"{logical.upper()}_QUEUE_URL"] = url
    configure_local_ses(endpoint)
    configure_local_kms(endpoint)
    configure_local_s3(endpoint)
    database_url = prepare_environment()

    present = set(available_functions())
    handlers = {name: get_handler(name) for name in routes.functions() if name in present}
    router = get_handler("domain_router") if "domain_router" in present else None

    stop = threading.Event()
    pollers: list[QueuePoller | ScheduledInvoker] = []
    for logical, (function, batch_size, _, _) in QUEUE_CONSUMERS.items():
        if function in present:
            queue_poller = QueuePoller(sqs, queue_urls[logical], function, get_handler(function), batch_size, stop)
            queue_poller.start()
            pollers.append(queue_poller)
    if "relay" in present:
        relay = ScheduledInvoker("relay", get_handler("relay"), float(os.environ.get("DRAMAC_RELAY_INTERVAL_S") or 10),
                                 stop)
        relay.start()
        pollers.append(relay)
    if "purger" in present:
        purger = ScheduledInvoker("purger", get_handler("purger"),
                                  float(os.environ.get("DRAMAC_PURGE_INTERVAL_S") or 10), stop)
        purger.start()
        pollers.append(purger)

    from .gateway import build_gateway

    config = uvicorn.Config(build_gateway(handlers, router), host=host, port=port, log_level="warning",
                            lifespan="off", access_log=False)
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started and not stop.is_set():
            time.sleep(0.05)
        if server.started:
            # before `ready`: whoever waits for it (dramac demo) finds the stack's database at once
            stackfile.write_state(port, f"http://{host}:{port}", database_url, sqs_endpoint=endpoint)
            print(f"ready http://{host}:{port}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM, then raises it again: make that an exit that
        # runs the cleanup below (the state file, the pollers) instead of the default instant death
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.run(sockets=[listener])
    finally:
        stop.set()
        stackfile.remove_state(port)
        for poller in pollers:
            poller.join(timeout=5)
        moto_server.stop()
        from dramac_common.core import db

        db.close_pool()
        print("stopped", file=sys.stderr, flush=True)
    return 0 if server.started else 1


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def describe(handlers: dict[str, Any]) -> str:
    return ", ".join(sorted(handlers))
