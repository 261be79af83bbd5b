"""A Lambda container serves one request at a time: its units share one connection kept open between
them, without psycopg_pool, and a unit that needs a connection while that one is lent gets its own."""

from __future__ import annotations

import json
import os
import select
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


def _terminate(owner_conn: psycopg.Connection, conn: psycopg.Connection) -> None:
    """End ``conn``'s backend as a server restart would, and wait until its farewell reaches ``conn``'s socket."""
    owner_conn.execute("SELECT pg_terminate_backend(%s, 5000)", (conn.info.backend_pid,))
    readable, _, _ = select.select([conn.fileno()], [], [], 5)
    assert readable


def test_a_connection_that_died_while_idle_is_replaced_before_a_write_that_commits_is_sent(
        in_lambda: None, owner_conn: psycopg.Connection) -> None:
    owner_conn.execute("CREATE TABLE public.db_once_probe (id int PRIMARY KEY)")
    try:
        with db.service_unit() as first:
            _pid(first)
        idle = db.get_pool()._idle
        assert idle is not None
        _terminate(owner_conn, idle)
        # one round trip with COMMIT aboard: it may not be retried, so the dead connection must be found first
        with db.service_unit() as unit:
            unit.execute("INSERT INTO public.db_once_probe VALUES (1)", commit=True)
        assert owner_conn.execute("SELECT count(*) AS n FROM public.db_once_probe").fetchone()["n"] == 1
    finally:
        owner_conn.execute("DROP TABLE public.db_once_probe")


def test_a_round_trip_that_carried_commit_is_not_sent_again_when_its_connection_dies(
        in_lambda: None, owner_conn: psycopg.Connection) -> None:
    owner_conn.execute("CREATE SEQUENCE public.db_once_sends")
    try:
        with pytest.raises(psycopg.OperationalError), db.service_unit() as unit:  # the caller gets a 503
            unit.execute("SELECT nextval('public.db_once_sends'), pg_terminate_backend(pg_backend_pid())", commit=True)
        # a second send would have drawn the sequence again (nextval does not roll back)
        assert owner_conn.execute("SELECT last_value FROM public.db_once_sends").fetchone()["last_value"] == 1
    finally:
        owner_conn.execute("DROP SEQUENCE public.db_once_sends")


def test_the_pool_lends_no_connection_that_died_while_idle(database_url: str, owner_conn: psycopg.Connection) -> None:
    pool = db._new_pool(1)  # as dramac dev and the tests get it: one connection, so the dead one is the one lent
    try:
        conn = pool.getconn()
        dead_pid = conn.info.backend_pid
        pool.putconn(conn)
        _terminate(owner_conn, conn)
        lent = pool.getconn()
        try:
            assert lent.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"] != dead_pid
        finally:
            pool.putconn(lent)
    finally:
        pool.close()
