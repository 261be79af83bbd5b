"""A unit in pipeline mode (the event processor's batches): its opening travels with its first statements,
``queue_commit`` commits with its last ones, and a statement refused before that COMMIT leaves nothing
behind and runs no after-commit callback."""

from __future__ import annotations

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


def _insert(unit: db.Unit, table: sql.Identifier, n: int) -> None:
    unit.execute(sql.SQL("INSERT INTO public.{} VALUES (%s)").format(table), (n,))


def test_a_pipelined_unit_opens_with_its_first_statement_and_commits_with_its_last(owner_conn, scratch) -> None:
    sent: list[int] = []
    with db.service_unit() as unit:
        with unit.pipeline():
            setting = unit.execute("SELECT current_setting('statement_timeout') AS timeout, "
                                   "txid_current_if_assigned() AS xid, now() AS at")
            _insert(unit, scratch, 1)
            later = unit.execute("SELECT now() AS at")
            unit.after_commit(lambda: sent.append(1))
            unit.queue_commit()
            with pytest.raises(RuntimeError):
                unit.execute("SELECT 1")  # over: nothing may follow the COMMIT
        first = setting.fetchone()
        assert first["timeout"] != "0"  # the opening's setting (the server's default is 0: none)
        assert later.fetchone()["at"] == first["at"]  # one transaction: now() did not move
        assert sent == []  # not before the unit ends
    assert count_rows(owner_conn, scratch) == 1
    assert sent == [1]


def test_a_statement_refused_before_the_queued_commit_leaves_nothing_and_sends_nothing(owner_conn, scratch) -> None:
    sent: list[int] = []
    with pytest.raises(psycopg.errors.UniqueViolation), db.service_unit() as unit, unit.pipeline():
        _insert(unit, scratch, 1)
        _insert(unit, scratch, 1)
        _insert(unit, scratch, 2)
        unit.after_commit(lambda: sent.append(1))
        unit.queue_commit()
    assert count_rows(owner_conn, scratch) == 0 and sent == []
    with db.service_unit() as unit:  # the pool's connection is usable again, outside any transaction
        assert unit.fetchrow("SELECT 1 AS one")["one"] == 1


def test_a_body_failing_after_its_queued_commit_was_answered_still_sends_what_committed(owner_conn, scratch) -> None:
    sent: list[int] = []
    with pytest.raises(LookupError), db.service_unit() as unit:
        with unit.pipeline():
            _insert(unit, scratch, 1)
            unit.after_commit(lambda: sent.append(1))
            unit.queue_commit()
        raise LookupError("after the commit")
    assert count_rows(owner_conn, scratch) == 1 and sent == [1]


def test_queue_commit_outside_a_pipeline_is_refused(owner_conn, scratch) -> None:
    with db.service_unit() as unit:
        _insert(unit, scratch, 1)
        with pytest.raises(RuntimeError):
            unit.queue_commit()
    assert count_rows(owner_conn, scratch) == 1  # the unit still commits as usual
