"""A Lambda container serves one request at a time: its units share one connection kept open between
them, without psycopg_pool, and a unit that needs a connection while that one is lent gets its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from dramac_common.core import db

IN_LAMBDA = """
import atexit, json, sys
from dramac_common.core import db

atexit.register(lambda: print(json.dumps({"closed": db._pool is None})))  # runs last: registered first
pids = []
for _ in range(3):
    with db.service_unit() as unit:
        pids.append(unit.fetchrow("SELECT pg_backend_pid() AS pid")["pid"])
print(json.dumps({"pids": pids, "source": type(db.get_pool()).__name__, "pool_loaded": "psycopg_pool" in sys.modules}))
"""


def test_a_lambda_container_runs_its_units_on_one_connection_without_a_pool(database_url: str) -> None:
    done = subprocess.run([sys.executable, "-c", IN_LAMBDA], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "DATABASE_URL": database_url, "AWS_LAMBDA_FUNCTION_NAME": "test"})
    assert done.returncode == 0, done.stderr
    used, exit_state = (json.loads(line) for line in done.stdout.strip().splitlines())
    assert len(set(used["pids"])) == 1
    assert (used["source"], used["pool_loaded"]) == ("SingleConnection", False)
    assert exit_state == {"closed": True}


@pytest.fixture
def in_lambda(database_url: str, env) -> Iterator[None]:  # type: ignore[no-untyped-def]
    env.set("AWS_LAMBDA_FUNCTION_NAME", "test")
    db.close_pool()
    yield
    db.close_pool()


def _pid(unit: db.Unit) -> int:
    return int(unit.fetchrow("SELECT pg_backend_pid() AS pid")["pid"])


def test_a_unit_opened_while_the_connection_is_lent_gets_its_own(in_lambda: None) -> None:
    with db.service_unit() as outer:
        outer_pid = _pid(outer)
        with db.service_unit() as inner:
            inner_pid = _pid(inner)
    with db.service_unit() as after:
        after_pid = _pid(after)
    assert inner_pid != outer_pid
    assert after_pid == inner_pid  # the first given back is kept, the other closed


def test_a_connection_dropped_between_requests_is_replaced(in_lambda: None, owner_conn: psycopg.Connection) -> None:
    with db.service_unit() as first:
        dropped = _pid(first)
    owner_conn.execute("SELECT pg_terminate_backend(%s)", (dropped,))
    with db.service_unit() as second:
        replaced = _pid(second)
    assert replaced != dropped


def test_a_connection_given_back_inside_a_transaction_is_not_kept(in_lambda: None) -> None:
    source = db.get_pool()
    conn = source.getconn()
    conn.execute("BEGIN")
    source.putconn(conn)
    assert conn.closed
    with db.service_unit() as unit:
        assert unit.fetchrow("SELECT 1 AS one")["one"] == 1
