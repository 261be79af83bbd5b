"""Shared fixtures: a real PostgreSQL database per test run, tenants and modules, emulated AWS, the
environment, and the real handlers (their building blocks are the modules of ``tests/support``).

With ``DATABASE_URL`` unset the embedded server (pgserver, under ``.dramac/``) is used; either way
the run creates its own database, migrates it, and drops it at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from support.aws import EMAIL_FROM, EmulatedAws, emulated_aws
from support.handlers import FunctionClient
from support.stack import LocalStack, started_stack
from support.tenants import Tenant, create_tenant

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
# Never a developer's AWS account: fake credentials whatever the shell has, and no profile or
# credentials file that would take precedence over them (a test that sends without the emulation fails).
for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("PAYMENT_PROVIDER", "sandbox")


@pytest.fixture(autouse=True)
def fresh_settings() -> None:
    """Every test starts from the settings of the environment as it is (a previous test's changes undone)."""
    from dramac_common.core.settings import reset_settings

    reset_settings()


class SettingsEnv:
    """Environment variables set for one test; the layer reads its settings again after each change."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self._monkeypatch = monkeypatch

    def set(self, name: str, value: str) -> None:
        from dramac_common.core.settings import reset_settings

        self._monkeypatch.setenv(name, value)
        reset_settings()

    def unset(self, name: str) -> None:
        from dramac_common.core.settings import reset_settings

        self._monkeypatch.delenv(name, raising=False)
        reset_settings()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> SettingsEnv:
    """Change environment variables for one test (undone afterwards), settings included."""
    return SettingsEnv(monkeypatch)


@pytest.fixture(scope="session")
def server_url() -> str:
    from dramac_dev import localdb

    return os.environ.get("DATABASE_URL") or localdb.embedded_server_url()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this run (per xdist worker), dropped afterwards."""
    from dramac_common.core import db
    from dramac_common.core.migrate import apply_migrations
    from dramac_common.core.settings import reset_settings

    from dramac_dev import localdb

    name, url = localdb.create_database(server_url)
    previous = os.environ.get("DATABASE_URL")
    try:
        apply_migrations(url)
        os.environ["DATABASE_URL"] = url
        reset_settings()
        db.close_pool()
        yield url
    finally:
        db.close_pool()
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        reset_settings()
        localdb.drop_database(server_url, name)


@pytest.fixture
def owner_conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection as the table owner (RLS bypassed), autocommit: how an operator sees the data."""
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def make_tenant(owner_conn: psycopg.Connection) -> Callable[[], Tenant]:
    return lambda: create_tenant(owner_conn)


@pytest.fixture
def tenant(make_tenant) -> Tenant:
    return make_tenant()


@pytest.fixture
def other_tenant(make_tenant) -> Tenant:
    return make_tenant()


@pytest.fixture
def make_module(owner_conn: psycopg.Connection):
    from dramac_dev import seed

    def make(**kwargs: Any) -> uuid.UUID:
        return seed.create_module(owner_conn, **kwargs)

    return make


@pytest.fixture
def make_user(owner_conn: psycopg.Connection):
    from dramac_dev import seed

    def make(**kwargs: Any) -> uuid.UUID:
        return seed.create_user(owner_conn, **kwargs)

    return make


@pytest.fixture
def function_client(database_url: str):
    def make(name: str) -> FunctionClient:
        return FunctionClient(name)

    return make


@pytest.fixture
def aws(database_url: str, env: SettingsEnv) -> Iterator[EmulatedAws]:
    """moto SQS (the project's queues) and SES (a verified sender) for one test, with the automation
    settings the tests want: a verified sender, short backoff, loopback receivers allowed."""
    env.set("AUTOMATION_EMAIL_FROM", EMAIL_FROM)
    env.set("AUTOMATION_HTTP_BACKOFF_BASE_S", "0.01")
    env.set("AUTOMATION_ALLOW_PRIVATE_HTTP", "1")
    for name in ("SQS_ENDPOINT_URL", "SES_ENDPOINT_URL", "KMS_ENDPOINT_URL", "EVENTS_QUEUE_URL", "PROVISION_QUEUE_URL"):
        env.unset(name)
    with emulated_aws() as emulated:
        yield emulated


@pytest.fixture
def sandbox_aws(env: SettingsEnv) -> Iterator[EmulatedAws]:
    """The sandbox payment provider with its built-in webhook secret, and emulated AWS."""
    env.set("PAYMENT_PROVIDER", "sandbox")
    env.unset("PADDLE_WEBHOOK_SECRET")
    with emulated_aws() as emulated:
        yield emulated


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A loopback HTTP server recording what workflow steps send it."""
    from dramac_dev.receiver import Receiver

    with Receiver() as r:
        yield r


@pytest.fixture(scope="session")
def local_stack(database_url: str) -> Iterator[LocalStack]:
    """``dramac dev`` in a subprocess, once per session (the e2e tests and the load test share it)."""
    with started_stack(database_url) as stack:
        yield stack
