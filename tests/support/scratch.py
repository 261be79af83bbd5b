"""A scratch table of one integer column, for tests of how units run statements (tests/integration/test_unit_*)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql


@contextmanager
def scratch_table(owner_conn: psycopg.Connection) -> Iterator[sql.Identifier]:
    """``public.scratch_<random>`` (n integer PRIMARY KEY), dropped afterwards."""
    table = sql.Identifier(f"scratch_{uuid.uuid4().hex[:12]}")
    owner_conn.execute(sql.SQL("CREATE TABLE public.{} (n integer PRIMARY KEY)").format(table))
    try:
        yield table
    finally:
        owner_conn.execute(sql.SQL("DROP TABLE public.{}").format(table))


def count_rows(owner_conn: psycopg.Connection, table: sql.Identifier) -> int:
    return int(owner_conn.execute(sql.SQL("SELECT count(*) AS n FROM public.{}").format(table)).fetchone()["n"])
