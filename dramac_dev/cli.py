"""The ``dramac`` command: migrate, token, invoke, seed, dev and demo (see the README)."""

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
    """In-process moto for ``invoke``: queue sends land in emulated queues, never in AWS; secrets are
    sealed with a key of this emulation."""
    from dramac_common.automation import vault
    from dramac_common.core import queues
    from dramac_common.core.settings import reset_settings
    from moto import mock_aws

    from .sqs_local import create_queues
    from .stack import create_automation_key

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        reset_settings()
        queues.reset_client()
        vault.reset_client()
        previous_key = os.environ.get("AUTOMATION_KMS_KEY_ID")
        try:
            create_queues(queues.sqs_client(), os.environ.get("DRAMAC_QUEUE_PREFIX", "dramac"))
            # a key of this emulation (one from outside it would not exist in it), forgotten afterwards
            os.environ["AUTOMATION_KMS_KEY_ID"] = create_automation_key(vault.kms_client())
            reset_settings()
            yield
        finally:
            if previous_key is None:
                os.environ.pop("AUTOMATION_KMS_KEY_ID", None)
            else:
                os.environ["AUTOMATION_KMS_KEY_ID"] = previous_key
            queues.reset_client()  # the client belongs to this mock; nothing may use it after
            vault.reset_client()
            reset_settings()


def _cmd_dev(args: argparse.Namespace) -> int:
    from .stack import run_dev

    return run_dev(args.host, args.port)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as run_demo

    return run_demo(args.url, database_url=args.database_url, timeout_s=args.timeout)


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

    p = sub.add_parser("demo", help="walk the whole story (install, workflow, contact, execution) over HTTP")
    p.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT') or 3000}",
                   help="the local stack (started here if none answers)")
    p.add_argument("--database-url", default=None,
                   help="the stack's database, for the operator's records (default: the one the stack recorded "
                        "in .dramac/stacks/PORT.json when it started, else DATABASE_URL)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for provisioning and the execution")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
