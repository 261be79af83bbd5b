"""A unit's text of several statements (the provisioner's scripts) runs inside the unit's transaction:
the opening's settings and claims apply to it, ``commit=True`` commits it with its last statement, and
a failing statement leaves nothing of the text behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from dramac_common.core import db
from psycopg import sql
from support.scratch import count_rows, scratch_table


@pytest.fixture
def scratch(owner_conn: psycopg.Connection) -> Iterator[sql.Identifier]:
    with scratch_table(owner_conn) as table:
        yield table


def test_a_script_with_commit_runs_in_the_units_transaction_and_commits(owner_conn, scratch) -> None:
    with db.service_unit() as unit:
        cur = unit.execute(sql.SQL("INSERT INTO public.{t} VALUES (1); INSERT INTO public.{t} VALUES (2); "
                                   "SELECT current_setting('statement_timeout') AS timeout").format(t=scratch),
                           commit=True)
        assert cur.rowcount == 1  # the cursor starts on the text's first statement, not the opening's
        cur.nextset()
        cur.nextset()
        row = cur.fetchone()
        assert row["timeout"] != "0"  # the opening's setting (the server's default is 0: none)
        with pytest.raises(RuntimeError):
            unit.execute("SELECT 1")  # committed: nothing may follow
    assert count_rows(owner_conn, scratch) == 2


def test_a_script_in_a_user_unit_runs_with_the_callers_claims(database_url) -> None:
    user = uuid.uuid4()
    claims = {"sub": str(user), "role": "authenticated", "aud": "authenticated", "note": "it's; here"}
    with db.user_unit(claims) as unit:
        cur = unit.execute("SELECT current_user AS who; SELECT auth.uid() AS uid")
        assert cur.fetchone()["who"] == "authenticated"
        cur.nextset()
        assert cur.fetchone()["uid"] == user


def test_a_failing_statement_leaves_nothing_of_the_script(owner_conn, scratch) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation), db.service_unit() as unit:
        unit.execute(sql.SQL("INSERT INTO public.{t} VALUES (1); INSERT INTO public.{t} VALUES (1)").format(
            t=scratch), commit=True)
    assert count_rows(owner_conn, scratch) == 0
    with db.service_unit() as unit:  # the pool's connection is usable again
        assert unit.fetchrow("SELECT 1 AS one")["one"] == 1


def test_a_user_unit_runs_its_write_paths_as_the_write_role_and_every_other_statement_as_the_caller(
        database_url) -> None:
    claims = {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated"}
    with db.user_unit(claims) as unit:
        assert unit.write_path_row("SELECT current_user AS who")["who"] == db.WRITE_ROLE  # the unit's first
        assert unit.write_path_row("SELECT current_user AS who")["who"] == db.WRITE_ROLE  # one after another
        assert unit.fetchrow("SELECT current_user AS who")["who"] == "authenticated"
        assert unit.write_path_row("SELECT current_user AS who")["who"] == db.WRITE_ROLE
        cur = unit.execute("SELECT current_user AS who; SELECT auth.uid() AS uid")  # a script after a write path
        assert cur.fetchone()["who"] == "authenticated"
        unit.write_path_row("SELECT 1 AS one")
        assert unit.conn.execute("SELECT current_user AS who").fetchone()["who"] == "authenticated"  # the bare connection
        unit.write_path_row("SELECT 1 AS one")
    with db.user_unit(claims) as unit:  # a committed write role ends with its transaction
        assert unit.write_path_row("SELECT current_user AS who", commit=True)["who"] == db.WRITE_ROLE
    with db.user_unit(claims) as unit:
        assert unit.fetchrow("SELECT current_user AS who")["who"] == "authenticated"
