"""The database for local use: ``DATABASE_URL`` when set, else an embedded PostgreSQL under ``.dramac/``.

The embedded server comes from the ``pgserver`` package (a real PostgreSQL build shipped as a wheel);
several processes may share it, and it stops when the last of them exits.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

_server = None


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def state_dir() -> Path:
    path = Path(os.environ.get("DRAMAC_STATE_DIR") or project_root() / ".dramac")
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_server_url() -> str:
    """Start (or join) the embedded server and return its URL (a Unix socket under ``.dramac/``)."""
    global _server
    if _server is None:
        runtime = state_dir() / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
        import pgserver

        _server = pgserver.get_server(state_dir() / "pgdata", cleanup_mode="stop")
    return _server.get_uri()


def server_url() -> str:
    return os.environ.get("DATABASE_URL") or embedded_server_url()


def with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo("", **params)


# What a Supabase project's database hands the request roles before any migration runs: the roles,
# usage of public, and default privileges that give every table, function and sequence created in
# public to anon, authenticated and service_role -- ALL of it, TRUNCATE included. Local and test
# databases start the same way, so the migrations are tested against the privileges they meet there.
SUPABASE_ROLE_DEFAULTS = """
DO $$ BEGIN CREATE ROLE anon NOLOGIN NOINHERIT; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE authenticated NOLOGIN NOINHERIT; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
"""


def apply_supabase_role_defaults(url: str) -> None:
    """Give a new database Supabase's request roles and default privileges (``SUPABASE_ROLE_DEFAULTS``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SUPABASE_ROLE_DEFAULTS)


def create_database(server: str, prefix: str = "dramac_test") -> tuple[str, str]:
    """Create a fresh database on the server, privileged as on Supabase; returns (name, url)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(server, name)
    apply_supabase_role_defaults(url)
    return name, url


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def ensure_database(server: str, name: str) -> str:
    """The URL of database ``name`` on the server, created if missing (the local stack's ``dramac`` db)."""
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(server, name)
    if not exists:
        apply_supabase_role_defaults(url)
    return url


def local_database_url() -> str:
    """``DATABASE_URL`` as given, or the embedded server's ``dramac`` database."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return ensure_database(embedded_server_url(), "dramac")
