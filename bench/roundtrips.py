"""Counts network round trips between a psycopg connection and PostgreSQL, honestly: libpq's own
protocol trace (``PQtrace``) logs every frontend (F) and backend (B) message in the order they
cross the wire; every change from client messages to server messages is one wait for the server,
i.e. one round trip, whether the client sent one statement, a multi-statement string or a pipeline
(only after a message that asks for answers: see ``_ASKS``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import psycopg
from psycopg import pq

# The messages after which a client may wait for the server: it has asked for everything so far to be
# answered (Sync, Flush) or sent a whole simple query. Until then the server answers only when its output
# buffer fills (a large result), and a client that reads such early output while it is still sending
# (psycopg's pipeline does) is not waiting for it: that is not a round trip.
_ASKS = frozenset({"Query", "Sync", "Flush", "CopyDone", "CopyFail", "FunctionCall"})


def count_turns(trace: str) -> int:
    """Round trips in a libpq trace: the F→B direction changes that follow a message asking for answers."""
    turns, last, asked = 0, "B", False
    for line in trace.splitlines():
        fields = line.split("\t")
        at = next((i for i, f in enumerate(fields[:2]) if f in ("F", "B")), None)
        if at is None:
            continue
        direction = fields[at]
        if direction == "F":
            name = fields[at + 2].strip() if len(fields) > at + 2 else ""
            asked = name in _ASKS
        elif last == "F" and asked:
            turns += 1
        last = direction
    return turns


class RoundTripCounter:
    """Counts the round trips of one connection during ``with counter.measure() as result``.

    libpq buffers its trace; ``PQuntrace`` flushes it, so each measurement traces afresh into one
    append-only file (one descriptor reused: libpq leaks a small FILE buffer per measurement).
    """

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn
        self._file = tempfile.NamedTemporaryFile("w+", prefix="pqtrace", delete=False)  # noqa: SIM115
        self._fd = os.open(self._file.name, os.O_WRONLY | os.O_APPEND)
        self._offset = 0

    @contextmanager
    def measure(self) -> Iterator[list[int]]:
        result: list[int] = []
        self.conn.pgconn.trace(self._fd)
        self.conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield result
        finally:
            self.conn.pgconn.untrace()
            with open(self._file.name, "rb") as f:
                f.seek(self._offset)
                data = f.read()
            self._offset += len(data)
            result.append(count_turns(data.decode("utf-8", "replace")))

    def close(self) -> None:
        os.close(self._fd)
        self._file.close()
        os.unlink(self._file.name)


@contextmanager
def traced_pool_connection() -> Iterator[RoundTripCounter]:
    """Trace the single connection of the shared layer's pool (the caller sets DRAMAC_DB_POOL_MAX=1)."""
    from dramac_common.core import db

    pool = db.get_pool()
    pool.wait()
    conn = pool.getconn()
    pool.putconn(conn)
    counter = RoundTripCounter(conn)
    try:
        yield counter
    finally:
        counter.close()


class Statement(NamedTuple):
    """One ``execute`` a connection sent: its text (or composed query), its parameters, and the pipeline it
    went in (``None``: sent on its own), so a replay sends the same messages in the same round trips."""

    query: Any
    params: Any
    options: dict[str, Any]  # execute's keywords (prepare, binary)
    pipeline: int | None
    cursor: psycopg.Cursor[Any]  # its answer, once the code that sent it has read it


class StatementRecorder:
    """Records every statement one connection executes during ``with recorder.record() as statements``.

    It wraps ``psycopg.Cursor.execute`` (``Connection.execute`` goes through it) and keeps the calls made on
    that connection only; statements queued in the same pipeline share its ``pipeline`` number. Other ways
    to send SQL (``executemany``, ``copy``, server-side cursors) fail the recording rather than go missing.
    """

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn
        self._pipelines: list[Any] = []  # kept alive, so that their ids stay distinct

    @contextmanager
    def record(self) -> Iterator[list[Statement]]:
        statements: list[Statement] = []
        conn, real_execute, real_many = self.conn, psycopg.Cursor.execute, psycopg.Cursor.executemany
        pipelines = self._pipelines

        def execute(cursor: psycopg.Cursor[Any], query: Any, params: Any = None, **kw: Any) -> Any:
            if cursor.connection is conn:
                if isinstance(cursor, psycopg.ServerCursor):
                    raise RuntimeError("cannot record a server-side cursor")
                pipeline = conn._pipeline
                if pipeline is not None and (not pipelines or pipelines[-1] is not pipeline):
                    pipelines.append(pipeline)
                statements.append(Statement(query, params, kw, None if pipeline is None else len(pipelines), cursor))
            return real_execute(cursor, query, params, **kw)

        def executemany(cursor: psycopg.Cursor[Any], *a: Any, **kw: Any) -> Any:
            if cursor.connection is conn:
                raise RuntimeError("cannot record executemany")
            return real_many(cursor, *a, **kw)

        psycopg.Cursor.execute, psycopg.Cursor.executemany = execute, executemany  # type: ignore[method-assign,assignment]
        try:
            yield statements
        finally:
            psycopg.Cursor.execute, psycopg.Cursor.executemany = real_execute, real_many  # type: ignore[method-assign]
            pipelines.clear()

