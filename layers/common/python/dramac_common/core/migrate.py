"""Applies the numbered SQL files of ``migrations/`` in order, once each, recorded in ``schema_migrations``.

Safe to run concurrently (an advisory lock serialises runners) and repeatedly (applied files are
skipped). Each file runs in its own transaction: a failing file leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import psycopg

from .settings import get_settings

MIGRATION_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql\Z")
_LOCK_KEY = 0x4D494752  # "MIGR"

# The ledger lives in public (operators and tools look for it there), the schema PostgREST exposes: it
# is created with row-level security and without any grant to the request roles, whatever default
# privileges the server hands new tables (Supabase gives them to anon and authenticated). The roles
# may not exist yet on a fresh server (migration 0001 creates them); 0070 repeats the lockdown for
# databases whose ledger predates this.
_CREATE_LEDGER = """
DO $$
BEGIN
  IF to_regclass('public.schema_migrations') IS NULL THEN
    CREATE TABLE public.schema_migrations (
      version text PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    );
    ALTER TABLE public.schema_migrations ENABLE ROW LEVEL SECURITY;
    REVOKE ALL ON public.schema_migrations FROM PUBLIC;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
      REVOKE ALL ON public.schema_migrations FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
      REVOKE ALL ON public.schema_migrations FROM authenticated;
    END IF;
  END IF;
END
$$
"""


def default_migrations_dir() -> Path:
    configured = get_settings().migrations_dir
    if configured:
        return configured
    # layers/common/python/dramac_common/core/migrate.py → repository root
    return Path(__file__).resolve().parents[5] / "migrations"


def migration_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if MIGRATION_RE.match(p.name))
    versions = [p.name[:4] for p in files]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return files


def apply_migrations(conninfo: str, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; returns the names of the files applied by this call."""
    directory = directory or default_migrations_dir()
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_CREATE_LEDGER)
            done = {row[0] for row in conn.execute("SELECT version FROM public.schema_migrations")}
            for path in migration_files(directory):
                version = path.name[:4]
                if version in done:
                    continue
                text = path.read_text(encoding="utf-8")
                with conn.transaction():
                    conn.execute(text)
                    conn.execute(
                        "INSERT INTO public.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (version, path.name, hashlib.sha256(text.encode()).hexdigest()),
                    )
                applied_now.append(path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
