"""Database access: one connection pool per container, and units of work.

A unit of work is one transaction. ``user_unit`` runs it as the ``authenticated`` role with the
caller's JWT claims set transaction-locally (as PostgREST does on Supabase), so row-level security
is enforced by the database itself; ``service_unit`` runs it as the login role, for workers.
The transaction's opening statements travel in one round trip, and callbacks registered with
``Unit.after_commit`` (queue sends) run only once the transaction has committed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps
from psycopg_pool import ConnectionPool

from . import aws, jsonbody
from .ratelimit import RateLimit
from .settings import get_settings

# jsonb parameters keep Decimal numbers exact (the module data API parses numbers as Decimal)
set_json_dumps(jsonbody.dumps)

Row = dict[str, Any]  # rows come as dicts (psycopg's dict_row)
Query = str | bytes | sql.SQL | sql.Composed  # a statement: text, or names composed with psycopg.sql
Params = Sequence[Any] | Mapping[str, Any] | None

# The role that may execute the write paths (the API's login role is granted it; requests never are).
WRITE_ROLE = "dramac_backend"

_pool: ConnectionPool[Any] | None = None  # connections with dict rows (Row)
_pool_lock = threading.Lock()


def database_url() -> str:
    """``DATABASE_URL``, or a URL built from the Secrets Manager secret named by ``DATABASE_SECRET_ARN``."""
    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    if settings.database_secret_arn:
        return _url_from_secret(settings.database_secret_arn)
    raise RuntimeError("DATABASE_URL (or DATABASE_SECRET_ARN) is not set")


def _url_from_secret(secret_arn: str) -> str:
    from psycopg.conninfo import make_conninfo

    settings = get_settings()
    secret = json.loads(
        aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    )
    return make_conninfo(
        host=settings.database_proxy_host or secret["host"],
        port=secret.get("port", 5432),
        user=secret["username"],
        password=secret["password"],
        dbname=settings.database_name or secret.get("dbname", "postgres"),
        sslmode=settings.database_sslmode,
    )


def get_pool() -> ConnectionPool[Any]:
    """The container's pool, created on first use (not at import: cold start stays cheap)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                settings = get_settings()
                _pool = ConnectionPool(
                    conninfo=database_url(),
                    min_size=1,
                    max_size=max(1, settings.pool_max_size),
                    kwargs={"autocommit": True, "row_factory": dict_row},
                    timeout=10,
                    name="dramac",
                    open=True,
                )
    return _pool


def close_pool() -> None:
    """Close the pool (tests, the local stack's shutdown, or a changed DATABASE_URL)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


class Unit:
    """One transaction on one connection, with callbacks to run after it commits."""

    def __init__(self, conn: psycopg.Connection[Row], claims: Mapping[str, Any] | None):
        self.conn = conn
        self.claims = dict(claims) if claims is not None else None
        self._after_commit: list[Callable[[], None]] = []

    def execute(self, query: Query, params: Params = None) -> psycopg.Cursor[Row]:
        return self.conn.execute(query, params)

    def fetchone(self, query: Query, params: Params = None) -> Row | None:
        return self.conn.execute(query, params).fetchone()

    def fetchrow(self, query: Query, params: Params = None) -> Row:
        """The one row of a statement that always returns one (``INSERT ... RETURNING``, an aggregate)."""
        row = self.conn.execute(query, params).fetchone()
        if row is None:
            raise LookupError("the statement returned no row")
        return row

    def fetchall(self, query: Query, params: Params = None) -> list[Row]:
        return self.conn.execute(query, params).fetchall()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def call_write_path(self, function: str, *args: Any) -> Any:
        """The result of ``private.<function>(*args)``, one of the write paths of payment state, prices
        and installation status (migration 0051). Only the role ``dramac_backend`` may execute them:
        a user unit switches to it for this one statement and back to ``authenticated``, pipelined into
        one round trip; the request's claims stay set, and the function checks the caller from them."""
        call = sql.SQL("SELECT {}({}) AS result").format(
            sql.Identifier("private", function), sql.SQL(", ").join(sql.Placeholder() * len(args)))
        if self.claims is None:
            return self.fetchrow(call, args)["result"]
        with self.conn.pipeline():
            self.conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(WRITE_ROLE)))
            cursor = self.conn.execute(call, args)
            self.conn.execute("SET LOCAL ROLE authenticated")
        row = cursor.fetchone()
        if row is None:
            raise LookupError("the write path returned no row")
        return row["result"]


def _opening_statement(claims: Mapping[str, Any] | None, timeout_ms: int,
                       rate_limit: RateLimit | None = None) -> sql.Composed:
    # A rate limit's token is taken first, in the same message, and committed on its own (ratelimit.py).
    # Its commit need not wait for a WAL flush: a bucket lost in a crash starts full again.
    parts = [rate_limit.statement() + sql.SQL("; SET LOCAL synchronous_commit = off; COMMIT")] \
        if rate_limit is not None else []
    parts.append(sql.SQL("BEGIN; SET LOCAL statement_timeout = {}").format(sql.Literal(timeout_ms)))
    if claims is not None:
        parts.append(
            sql.SQL(
                "SELECT set_config('request.jwt.claims', {}, true), set_config('role', 'authenticated', true)"
            ).format(sql.Literal(json.dumps(dict(claims), default=str)))
        )
    return sql.SQL("; ").join(parts)


def _begin(pool: ConnectionPool[Any], opening: sql.Composed) -> tuple[psycopg.Connection[Row], Row | None]:
    """Check out a connection and open the transaction; a connection that died while idle
    in the pool (server restart, proxy idle timeout) is replaced once, since nothing ran on it.
    Returns the connection and the first row the opening statements answered (a rate limit's)."""
    for attempt in range(2):
        conn: psycopg.Connection[Row] = pool.getconn()  # the pool's row_factory is dict_row
        try:
            cursor = conn.execute(opening)
            return conn, cursor.fetchone() if cursor.description else None
        except psycopg.OperationalError:
            pool.putconn(conn)
            if attempt:
                raise
    raise AssertionError("unreachable")


@contextmanager
def _unit(claims: Mapping[str, Any] | None, rate_limit: RateLimit | None = None) -> Iterator[Unit]:
    pool = get_pool()
    conn, first = _begin(pool, _opening_statement(claims, get_settings().statement_timeout_ms, rate_limit))
    if rate_limit is not None and first is not None and first["wait"] > 0:
        with suppress(psycopg.Error):
            conn.execute("ROLLBACK")
        pool.putconn(conn)
        raise rate_limit.refuse(first["wait"])
    unit = Unit(conn, claims)
    try:
        yield unit
        conn.execute("COMMIT")
    except BaseException:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.UNKNOWN:
            with suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        raise
    finally:
        pool.putconn(conn)
    for callback in unit._after_commit:
        callback()


def user_unit(claims: Mapping[str, Any], rate_limit: RateLimit | None = None) -> Any:
    """A transaction as ``authenticated`` with these JWT claims (``sub`` is the user id); with
    ``rate_limit``, a request over its limits is refused (429) before the transaction begins."""
    return _unit(claims, rate_limit)


def service_unit() -> Any:
    """A transaction as the login role, for queue workers and trusted maintenance."""
    return _unit(None)
