"""Shared fixtures: a real PostgreSQL database per test run, records, tokens and handler invocation.

With ``DATABASE_URL`` unset the embedded server (pgserver, under ``.dramac/``) is used; either way
the run creates its own database, migrates it, and drops it at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from helpers import FunctionClient, claims_for  # noqa: F401 - re-exported for tests

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
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


@dataclass
class Tenant:
    """An agency with an owner, an admin, a member, a client and a site."""

    agency_id: uuid.UUID
    owner: uuid.UUID
    admin: uuid.UUID
    member: uuid.UUID
    client_id: uuid.UUID
    site_id: uuid.UUID


@pytest.fixture
def make_tenant(owner_conn: psycopg.Connection):
    from dramac_dev import seed

    def make() -> Tenant:
        owner = seed.create_user(owner_conn)
        admin = seed.create_user(owner_conn)
        member = seed.create_user(owner_conn)
        agency = seed.create_agency(owner_conn, owner=owner)
        seed.add_member(owner_conn, agency, admin, "admin")
        seed.add_member(owner_conn, agency, member, "member")
        client = seed.create_client(owner_conn, agency)
        site = seed.create_site(owner_conn, agency, client_id=client)
        return Tenant(agency, owner, admin, member, client, site)

    return make


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
