"""What the CDK app deploys, read from the repository rather than listed twice.

- Functions: every ``functions/<name>/app.py``. ``FUNCTION_SETTINGS`` below holds the one table of
  per-function sizing and access; a folder without an entry still deploys, with the HTTP defaults.
- Routes: ``dramac_dev.routes.ROUTES`` (the local gateway routes by the same table), keeping the
  routes whose function exists on this branch.
- Queues: ``dramac_dev.sqs_local.QUEUE_CONSUMERS`` (the local SQS emulation creates the same queues
  with the same visibility timeouts and max receives).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dramac_dev.routes import ROUTES, Route
from dramac_dev.sqs_local import QUEUE_CONSUMERS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = PROJECT_ROOT / "functions"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
LAYER_SOURCE_DIR = PROJECT_ROOT / "layers" / "common"
LAYER_BUILD_DIR = PROJECT_ROOT / "build" / "layer"

# Functions with a deployment of their own: the edge router goes to CloudFront in us-east-1,
# the migration runs as a deploy-time Trigger, not as a regional function with its own routes.
EDGE_FUNCTION = "domain_router"
MIGRATE_FUNCTION = "migrate"

PROVISION_QUEUE = "provision"
EVENTS_QUEUE = "events"

PADDLE_WEBHOOK_SECRET = "paddle_webhook"  # noqa: S105 - a logical name, not a secret


@dataclass(frozen=True)
class FunctionSettings:
    """How one function is sized and what it may touch (least privilege: nothing else)."""

    timeout_s: int
    memory_mb: int
    why: str  # the reasoning behind timeout and memory, for the reader of this table
    # Reserved concurrency: the most copies that may run at once, and so also the most database
    # connections it may hold (DRAMAC_DB_POOL_MAX, 2, per copy, through the RDS Proxy). Every function
    # has one (tests/infra/test_catalog.py): a runaway caller throttles one function, not the account.
    reserved_concurrency: int
    concurrency_why: str  # the reasoning behind reserved_concurrency
    uses_database: bool = True
    sends_to: tuple[str, ...] = ()  # logical queue names: sqs:SendMessage + <NAME>_QUEUE_URL
    secrets: tuple[str, ...] = ()
    schedule_minutes: int | None = None  # run on an EventBridge schedule
    sends_email: bool = False
    # The automation secrets key: "seal" = kms:GenerateDataKey (store new secrets; the API), "open" =
    # kms:Decrypt (use them; the workflow worker). Nothing else may touch the key.
    automation_secrets: str | None = None
    writes_exports: bool = False  # s3:PutObject/GetObject on the exports bucket's exports/ + DRAMAC_EXPORTS_BUCKET


# HTTP functions: API Gateway's integration timeout is 30 s; 20 s lets the 15 s statement timeout
# (DRAMAC_STATEMENT_TIMEOUT_MS) fire first and still return the JSON error envelope. 512 MB buys the
# CPU share that keeps FastAPI + pydantic cold starts short; memory use itself is far lower.
_HTTP = {"timeout_s": 20, "memory_mb": 512}

# Reserved concurrency, sized against the API stage's throttle (dramac:throttleRateLimit 100 rps,
# burst 200) at the ~50-100 ms a warm request takes: the whole API at its burst needs about 20 copies.
# The sum below (114) times 2 pooled connections stays well inside the proxy's share of Aurora's
# max_connections at the default 4 ACUs, and leaves the 100 unreserved executions AWS requires in an
# account whose quota is 1000 (docs/deploy.md: new accounts must ask for it).
#
# Events from log_automation_event reach the events queue after commit, so every function that
# writes module data, installations or subscriptions may send to it.
FUNCTION_SETTINGS: dict[str, FunctionSettings] = {
    "subscribe": FunctionSettings(
        **_HTTP, why="HTTP: catalogue, free subscriptions, health",
        reserved_concurrency=20,
        concurrency_why="the dashboard's most frequent reads (catalogue, health): the stage's whole burst alone",
    ),
    "agencies": FunctionSettings(
        **_HTTP, why="HTTP: an agency's members and client users",
        reserved_concurrency=5,
        concurrency_why="member management is an owner's occasional action",
    ),
    "catalog": FunctionSettings(
        **_HTTP, why="HTTP: the catalogue's admin side; a dry run's DDL is rolled back",
        reserved_concurrency=5,
        concurrency_why="super admins only: a handful of people publishing modules",
    ),
    "purchase": FunctionSettings(
        **_HTTP, why="HTTP: checkout and the Paddle webhook (signature checked in-process)",
        sends_to=(EVENTS_QUEUE,), secrets=(PADDLE_WEBHOOK_SECRET,),
        reserved_concurrency=10,
        concurrency_why="checkouts are rare and Paddle retries a throttled webhook with backoff",
    ),
    "install": FunctionSettings(
        **_HTTP, why="HTTP: installs, upgrades, exports, purges; hands schema provisioning to the provision queue",
        sends_to=(PROVISION_QUEUE, EVENTS_QUEUE), writes_exports=True,
        reserved_concurrency=10,
        concurrency_why="installs are agency admin actions; the slow part (DDL) runs in provision",
    ),
    "module_api": FunctionSettings(
        **_HTTP, why="HTTP: module data CRUD and batches", sends_to=(EVENTS_QUEUE,),
        reserved_concurrency=40,
        concurrency_why="site visitors' traffic (API keys) on every agency's sites: the largest share",
    ),
    "automation": FunctionSettings(
        **_HTTP, why="HTTP: workflows, executions, event ingestion", sends_to=(EVENTS_QUEUE,),
        automation_secrets="seal",
        reserved_concurrency=20,
        concurrency_why="event ingestion from sites arrives in bursts; workflow edits are rare",
    ),
    # Queue consumers: 30 s is ample for one batch (DDL for a module schema takes well under a
    # second per table); the queue's 180 s visibility timeout is 6x this, as AWS recommends.
    "provision": FunctionSettings(
        timeout_s=30, memory_mb=512, sends_to=(EVENTS_QUEUE,),
        why="SQS: creates module schemas",
        reserved_concurrency=2,
        concurrency_why="DDL takes catalogue locks, so at most 2 run at once (the SQS pollers match it)",
    ),
    "event_processor": FunctionSettings(
        timeout_s=30, memory_mb=512, sends_to=(EVENTS_QUEUE,), sends_email=True, automation_secrets="open",
        why="SQS: runs workflow steps (HTTP calls with backoff, SES); delays re-enqueue themselves",
        reserved_concurrency=10,
        concurrency_why="workflow steps wait on outside HTTP and SES; 10 pollers drain bursts without "
                        "letting one agency's workflows take the database's connections",
    ),
    # The outbox relay: sends events whose after-commit dispatch failed. Small and frequent.
    "relay": FunctionSettings(
        timeout_s=60, memory_mb=256, sends_to=(EVENTS_QUEUE,), schedule_minutes=1,
        why="schedule: re-sends undispatched outbox rows once a minute",
        reserved_concurrency=1,
        concurrency_why="one scheduled run a minute; a second copy would only contend for the same rows",
    ),
    # Purges whose grace period is over: a few a run, each in its own transaction.
    "purger": FunctionSettings(
        timeout_s=300, memory_mb=256, sends_to=(EVENTS_QUEUE,), schedule_minutes=5,
        why="schedule: deletes site data of modules purged by their owners once the grace period ends",
        reserved_concurrency=1,
        concurrency_why="one scheduled run every 5 minutes; a second copy would only contend for the same rows",
    ),
    # Retention: deletes old executions, step logs and events in batches of 5000, once a day. 10 minutes
    # bounds a run (it stops 20 s before the end; the next run continues); little memory, one connection.
    "retention": FunctionSettings(
        timeout_s=600, memory_mb=256, schedule_minutes=24 * 60,
        why="schedule: prunes executions, step logs and events after their retention periods, daily",
        reserved_concurrency=1,
        concurrency_why="one daily run; a second copy would only delete the same rows in competing batches",
    ),
    # Migrations run once per deploy; a long DDL migration may take minutes.
    MIGRATE_FUNCTION: FunctionSettings(
        timeout_s=600, memory_mb=512, why="deploy trigger: applies migrations/",
        reserved_concurrency=1, concurrency_why="migrations apply in order, one run at a time",
    ),
}

# Deploys a function that has no entry yet (with a dramac:function-defaults warning at synth);
# tests/infra/test_catalog.py fails until the entry is written.
DEFAULT_SETTINGS = FunctionSettings(**_HTTP, why="no entry in FUNCTION_SETTINGS: HTTP defaults",
                                    reserved_concurrency=5,
                                    concurrency_why="no entry in FUNCTION_SETTINGS: a small default")


@dataclass(frozen=True)
class QueueSpec:
    name: str  # logical: dramac_common.core.queues names the same
    consumer: str
    batch_size: int
    visibility_timeout_s: int
    max_receives: int

    @property
    def url_env(self) -> str:
        return f"{self.name.upper()}_QUEUE_URL"


def available_functions(functions_dir: Path = FUNCTIONS_DIR) -> list[str]:
    return sorted(p.parent.name for p in functions_dir.glob("*/app.py"))


def regional_functions(functions_dir: Path = FUNCTIONS_DIR) -> list[str]:
    """The functions deployed as ordinary regional Lambdas."""
    return [n for n in available_functions(functions_dir) if n not in (EDGE_FUNCTION, MIGRATE_FUNCTION)]


def settings_for(name: str) -> FunctionSettings:
    return FUNCTION_SETTINGS.get(name, DEFAULT_SETTINGS)


def deployable_routes(functions: list[str]) -> list[Route]:
    """The contract routes whose function exists on this branch (others appear when it merges)."""
    present = set(functions)
    return [r for r in ROUTES if r.function in present]


def queues() -> list[QueueSpec]:
    return [QueueSpec(name, *values) for name, values in QUEUE_CONSUMERS.items()]


def domain_router_bundler(functions_dir: Path = FUNCTIONS_DIR) -> Path | None:
    path = functions_dir / EDGE_FUNCTION / "bundle.py"
    return path if path.is_file() else None
