"""The ``dramac`` command: migrate, token, invoke, seed, dev, demo, retention and dlq (see the README)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any


def _cmd_migrate(_: argparse.Namespace) -> int:
    from dramac_common.core.migrate import apply_migrations

    from . import localdb

    applied = apply_migrations(localdb.local_database_url())
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else " (up to date)"))
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from .tokens import issue_token

    try:
        user = uuid.UUID(args.user)
    except ValueError:
        print(f"--user must be a UUID, got {args.user!r}", file=sys.stderr)
        return 2
    print(issue_token(user, ttl=args.ttl))
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from .stack import local_runtime_defaults, prepare_environment

    local_runtime_defaults()
    with contextlib.redirect_stdout(sys.stderr):
        url = prepare_environment(seed="never")
    from .seed import reset_demo, seed_demo

    if args.reset:
        reset_demo(url)
    print(json.dumps(seed_demo(url), indent=2))
    return 0


# What a sample may ask of `dramac invoke` under its "dramacInvoke" key (not part of any AWS event).
INVOKE_DIRECTIVES = {"signPaddleWebhook"}


def prepare_sample(function: str, event: Any) -> Any:
    """The event ``dramac invoke`` hands the handler: without its ``dramacInvoke`` directives, and
    with what they ask done. Raises ValueError for a directive it does not know or cannot honour."""
    from .events import sign_paddle_webhook

    if not isinstance(event, dict) or "dramacInvoke" not in event:
        return event
    event = dict(event)
    directives = event.pop("dramacInvoke")
    unknown = sorted(set(directives) - INVOKE_DIRECTIVES) if isinstance(directives, dict) else ["(not an object)"]
    if unknown:
        raise ValueError(f"unknown dramacInvoke directive(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(INVOKE_DIRECTIVES))}")
    if directives.get("signPaddleWebhook"):
        event = sign_paddle_webhook(function, event)
    return event


def _cmd_invoke(args: argparse.Namespace) -> int:
    from .events import LocalContext
    from .functions_loader import available_functions, get_handler

    if args.function not in available_functions():
        print(f"unknown function {args.function!r}; known: {', '.join(available_functions())}", file=sys.stderr)
        return 2
    try:
        event = json.loads(Path(args.event).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read event {args.event}: {exc}", file=sys.stderr)
        return 2
    real_stdout = sys.stdout
    # Everything but the result goes to stderr: Powertools logs, migrations, moto.
    with contextlib.redirect_stdout(sys.stderr):
        from .stack import local_runtime_defaults, prepare_environment

        local_runtime_defaults()
        if args.function != "domain_router":
            prepare_environment(seed="if_unseeded")
        try:
            event = prepare_sample(args.function, event)
        except ValueError as exc:
            print(f"{args.event}: {exc}", file=sys.stderr)
            return 2
        with local_aws():
            result = get_handler(args.function)(event, LocalContext(args.function))
    real_stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


@contextlib.contextmanager
def local_aws():
    """In-process moto for ``invoke``: queue sends land in emulated queues and exports in an emulated
    bucket, never in AWS; secrets are sealed with a key of this emulation."""
    from dramac_common.automation import vault
    from dramac_common.core import aws, queues, storage
    from dramac_common.core.settings import get_settings, reset_settings
    from moto import mock_aws

    from .sqs_local import create_queues
    from .stack import create_automation_key

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        aws.reset_session()  # one made before moto was imported would not be stubbed
        reset_settings()
        aws.reset_clients()
        previous_key = os.environ.get("AUTOMATION_KMS_KEY_ID")
        try:
            create_queues(queues.sqs_client(), os.environ.get("DRAMAC_QUEUE_PREFIX", "dramac"))
            storage.s3_client().create_bucket(Bucket=get_settings().exports_bucket)
            # a key of this emulation (one from outside it would not exist in it), forgotten afterwards
            os.environ["AUTOMATION_KMS_KEY_ID"] = create_automation_key(vault.kms_client())
            reset_settings()
            yield
        finally:
            if previous_key is None:
                os.environ.pop("AUTOMATION_KMS_KEY_ID", None)
            else:
                os.environ["AUTOMATION_KMS_KEY_ID"] = previous_key
            aws.reset_clients()  # the clients belong to this mock; nothing may use them after
            reset_settings()


def _cmd_dev(args: argparse.Namespace) -> int:
    from .stack import run_dev

    return run_dev(args.host, args.port)


def _cmd_openapi(args: argparse.Namespace) -> int:
    from .localdb import project_root
    from .openapi import DOCUMENT, merged_document, render

    out = Path(args.out) if args.out else project_root() / DOCUMENT
    out.write_text(render(merged_document()), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as run_demo

    return run_demo(args.url, database_url=args.database_url, timeout_s=args.timeout)


def _cmd_retention(args: argparse.Namespace) -> int:
    from dramac_common.automation import retention
    from dramac_common.core import db
    from dramac_common.core.settings import reset_settings

    from . import localdb

    os.environ["DATABASE_URL"] = localdb.local_database_url()
    for name, value in (("RETENTION_EXECUTIONS_DAYS", args.executions_days),
                        ("RETENTION_STEP_LOGS_DAYS", args.step_logs_days), ("RETENTION_EVENTS_DAYS", args.events_days)):
        if value is not None:
            os.environ[name] = str(value)
    reset_settings()
    try:
        print(json.dumps(retention.run_retention()))
    finally:
        db.close_pool()
    return 0


def _cmd_dlq(args: argparse.Namespace) -> int:
    from . import dlq, stackfile

    endpoint = args.endpoint_url or os.environ.get("SQS_ENDPOINT_URL") or None
    if args.port is not None:
        state = stackfile.read_state(args.port)
        if state is None or not state.sqs_endpoint:
            print(f"no local stack of this checkout serves on port {args.port} (is dramac dev running?)",
                  file=sys.stderr)
            return 2
        endpoint = state.sqs_endpoint
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        return dlq.run(args.action, args.queue, endpoint_url=endpoint, region=region, stack=args.stack,
                       limit=args.limit, as_json=args.json, env=dict(os.environ))
    except dlq.DlqError as exc:
        print(f"dramac dlq: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dramac", description="DRAMAC backend developer tool")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply pending migrations to DATABASE_URL (or the embedded server)")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser("token", help="print a dev JWT for a user, accepted by the local stack")
    p.add_argument("--user", required=True, help="the user's UUID (the token's sub)")
    p.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    p.set_defaults(func=_cmd_token)

    p = sub.add_parser("invoke", help="run a function's real Lambda handler on a sample event")
    p.add_argument("function")
    p.add_argument("event", help="path to the event JSON, e.g. events/subscribe/subscribe.json")
    p.set_defaults(func=_cmd_invoke)

    p = sub.add_parser("seed", help="write the demo records that are missing (idempotent) and print their ids")
    p.add_argument("--reset", action="store_true",
                   help="first remove the demo agency and all of it, so every sample answers as documented again")
    p.set_defaults(func=_cmd_seed)

    p = sub.add_parser("dev", help="run the local stack")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000))
    p.set_defaults(func=_cmd_dev)

    p = sub.add_parser("openapi", help="write the merged OpenAPI 3.1 document of every HTTP function")
    p.add_argument("--out", default=None, help="where to write it (default docs/openapi.json)")
    p.set_defaults(func=_cmd_openapi)

    p = sub.add_parser("demo", help="walk the whole story (install, workflow, contact, execution) over HTTP")
    p.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT') or 3000}",
                   help="the local stack (started here if none answers)")
    p.add_argument("--database-url", default=None,
                   help="the stack's database, for the operator's records (default: the one the stack recorded "
                        "in .dramac/stacks/PORT.json when it started, else DATABASE_URL)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for provisioning and the execution")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("retention", help="delete executions, step logs and events past their retention periods")
    p.add_argument("--executions-days", type=int, default=None, help="default RETENTION_EXECUTIONS_DAYS (30)")
    p.add_argument("--step-logs-days", type=int, default=None, help="default RETENTION_STEP_LOGS_DAYS (as executions)")
    p.add_argument("--events-days", type=int, default=None, help="default RETENTION_EVENTS_DAYS (30)")
    p.set_defaults(func=_cmd_retention)

    p = sub.add_parser("dlq", help="dead-letter queues: list them, show their messages, redrive them (boto3)")
    p.add_argument("action", choices=("list", "show", "redrive"))
    p.add_argument("queue", nargs="?", help="the logical queue: provision or events (show and redrive)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=None, help="the local stack on this port (its moto SQS)")
    where.add_argument("--endpoint-url", default=None, help="an SQS endpoint (default: SQS_ENDPOINT_URL, else AWS)")
    p.add_argument("--stack", default=None,
                   help="a deployed stack: queue URLs from its CloudFormation outputs (<Name>QueueUrl)")
    p.add_argument("--region", default=None, help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1)")
    p.add_argument("--limit", type=int, default=None, help="show: at most N (10); redrive: at most N (all)")
    p.add_argument("--json", action="store_true", help="list: JSON instead of a table")
    p.set_defaults(func=_cmd_dlq)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
