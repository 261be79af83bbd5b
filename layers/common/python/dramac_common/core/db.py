"""Database access: the container's connections, and units of work.

Connections come from one source per process, created on first use. A Lambda container serves one
request at a time, so it keeps one connection open between requests (``SingleConnection``: psycopg_pool
and its threads are never loaded there, 1% of an HTTP function's cold-start instructions and 3-4% of its
CPU time); a process that
serves requests at once (``dramac dev``, the tests, the benchmarks) gets a ``psycopg_pool`` pool of
``DRAMAC_DB_POOL_MAX`` connections.

A unit of work is one transaction. ``user_unit`` runs it as the ``authenticated`` role with the
caller's JWT claims set transaction-locally (as PostgREST does on Supabase), so row-level security
is enforced by the database itself; ``service_unit`` runs it as the login role, for workers.
The transaction's opening statements travel with its first statement, its last statement may carry
the ``COMMIT``, and callbacks registered with ``Unit.after_commit`` (queue sends) run only once the
transaction has committed.
"""

from __future__ import annotations

import atexit
import functools
import json
import select
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads

from . import aws, jsonbody
from .ratelimit import RateLimit
from .settings import get_settings

if TYPE_CHECKING:
    import uuid

    from psycopg_pool import ConnectionPool

# jsonb parameters keep Decimal numbers exact (the module data API parses numbers as Decimal)
set_json_dumps(jsonbody.dumps)

Row = dict[str, Any]  # rows come as dicts (psycopg's dict_row)
Query = str | bytes | sql.SQL | sql.Composed  # a statement: text, or names composed with psycopg.sql
Params = Sequence[Any] | Mapping[str, Any] | None
JsonLoads = Callable[[str | bytes], Any]  # how a statement's json/jsonb values load

# The role that may execute the write paths (the API's login role is granted it; requests never are).
WRITE_ROLE = "dramac_backend"



class ConnectionLost(psycopg.OperationalError):
    """A unit's connection was found dead as its transaction began in a pipeline (``Unit.pipeline``; closed by
    the server while idle in the pool, or a proxy's idle timeout): no COMMIT was sent, so nothing of the unit
    ran. Its work may run again in a new unit, which gets a new connection."""


class Connections(Protocol):
    """Where units get their connection (autocommit, dict rows) and give it back."""

    def getconn(self) -> psycopg.Connection[Row]: ...

    def putconn(self, conn: psycopg.Connection[Row]) -> None: ...

    def close(self) -> None: ...


_pool: Connections | None = None  # the process's connections: a SingleConnection or a ConnectionPool
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


class SingleConnection:
    """One connection kept open between units, for a process that serves one request at a time (a Lambda
    container). It is opened by the first unit that needs it and reopened when found dead (``_dead_while_idle``). A
    unit that asks while it is lent (a nested unit, a worker's thread) gets a connection of its own; of
    those given back, the first is kept and the others closed. A connection given back inside a
    transaction is closed rather than kept (its state is unknown)."""

    def __init__(self, conninfo: str):
        self._conninfo = conninfo
        self._idle: psycopg.Connection[Row] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def getconn(self) -> psycopg.Connection[Row]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the connections are closed")
            conn, self._idle = self._idle, None
        if conn is not None:
            if not _dead_while_idle(conn):
                return conn
            conn.close()
        return psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row, connect_timeout=10)

    def putconn(self, conn: psycopg.Connection[Row]) -> None:
        if not conn.closed and not conn.broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            with self._lock:
                if self._idle is None and not self._closed:
                    self._idle = conn
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conn, self._idle, self._closed = self._idle, None, True
        if conn is not None:
            conn.close()


def get_pool() -> Any:
    """The process's connections (``Connections``), created on first use (not at import: cold start stays
    cheap): a ``SingleConnection`` in Lambda, a ``psycopg_pool.ConnectionPool`` anywhere else."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                settings = get_settings()
                _pool = SingleConnection(database_url()) if settings.in_lambda else _new_pool(settings.pool_max_size)
                # A process that ends (a dramac command, a benchmark's probe) closes it first: on Python
                # 3.13 an open pool's worker threads hold the interpreter's exit for 5 s each (20 s).
                atexit.register(close_pool)
    return _pool


def _new_pool(max_size: int) -> ConnectionPool[Any]:
    from psycopg_pool import ConnectionPool

    return ConnectionPool(
        conninfo=database_url(),
        min_size=1,
        max_size=max(1, max_size),
        kwargs={"autocommit": True, "row_factory": dict_row},
        timeout=10,
        name="dramac",
        check=_check_idle,
        open=True,
    )


def _dead_while_idle(conn: psycopg.Connection[Any]) -> bool:
    """Whether a connection that sat idle has died meanwhile (a server restart, a proxy's idle timeout), found
    without a round trip: an idle connection is sent nothing unless the server ended it, so anything waiting on
    its socket (the server's farewell, or the end of the stream) means it is gone. Found before a unit sends,
    the unit takes another connection; found only by a failed send, a round trip that carried ``COMMIT`` could
    not be retried (``Unit._retry``)."""
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _check_idle(conn: psycopg.Connection[Any]) -> None:
    """psycopg_pool's ``check`` on lending a connection: a dead one is discarded and another lent. It is closed
    first: the pool replaces a refused connection only when libpq knows it is gone, and libpq has not read the
    server's farewell yet (the pool would take it back, and lend it again until its timeout)."""
    if _dead_while_idle(conn):
        conn.close()
        raise psycopg.OperationalError("the connection died while idle in the pool")


def close_pool() -> None:
    """Close the process's connections (tests, the local stack's shutdown, or a changed DATABASE_URL)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


class Unit:
    """One transaction on one connection, with callbacks to run after it commits.

    A unit made by ``user_unit``/``service_unit`` opens its transaction lazily: the opening (a rate
    limit's token, ``BEGIN``, the statement timeout, the caller's claims) is pipelined with the unit's
    first statement, so both cost one round trip. ``commit=True`` on a statement pipelines ``COMMIT``
    after it: the unit is then over, and any further statement is refused (it would run outside the
    transaction, without the caller's claims). A text of several statements cannot join a pipeline: it
    travels as one simple query, the opening's text ahead of it and ``COMMIT`` after it, still one round
    trip (an opening with a rate limit goes first, on its own). Reaching ``conn`` directly opens the
    transaction first; ``pipeline`` queues the opening ahead of its block's statements instead, and
    ``queue_commit`` sends ``COMMIT`` with the block's last ones (the event processor's batches).
    """

    def __init__(self, conn: psycopg.Connection[Row], claims: Mapping[str, Any] | None, *,
                 opening: _Opening | None = None, pool: Connections | None = None):
        self._conn = conn
        self.claims = dict(claims) if claims is not None else None
        self._after_commit: list[Callable[[], None]] = []
        self._opening = opening  # None once the transaction is open (or the caller opened it)
        self._pool = pool  # to replace a connection found dead when the opening first uses it
        self._over = False  # committed (or its transaction failed to open): no statement may follow
        self._committed = False
        self._elevated = False  # the role is the write role since a write path: restored before another statement
        self._queued_commit: psycopg.Cursor[Row] | None = None  # ``queue_commit``'s, its answer read with the pipeline's

    @property
    def conn(self) -> psycopg.Connection[Row]:
        """The unit's connection, its transaction open and its role the caller's (for savepoints, cursors,
        ``as_string``)."""
        self._require_open()
        if self._opening is not None or self._elevated:
            self._run([])
        return self._conn

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Pipeline mode for the block's statements, the due opening queued ahead of them: the first answer the
        block reads costs one round trip for both (``conn.pipeline()`` opens the transaction first, a round trip
        of its own). A connection that died while idle in the pool is not replaced here, as the unit's first
        statement would replace it (the block cannot be sent again): ``ConnectionLost`` goes up, and the
        connection is dropped when given back."""
        self._require_open()
        self._take_token_apart()
        opening, self._opening = self._opening, None
        conn = self._conn
        try:
            with conn.pipeline():
                if opening is not None:
                    opening.send(conn)
                yield
        except psycopg.OperationalError as exc:
            if opening is not None and self._queued_commit is None and (conn.closed or conn.broken):
                self._over = True  # no transaction to roll back; the connection is dropped when given back
                raise ConnectionLost(f"the connection was found dead as the transaction began: {exc}") from exc
            raise

    def queue_commit(self) -> None:
        """In a pipeline (``pipeline``): queue ``COMMIT`` after the statements queued so far, to travel in their
        round trip, for statements whose guards are checked in SQL (read nothing in between to decide). A
        statement refused before it makes the server skip it, and the unit rolls back. The unit is over: no
        statement may follow. Whether it committed is known once the pipeline's answers are read."""
        self._require_open()
        if self._opening is not None or not self._conn.pgconn.pipeline_status:
            raise RuntimeError("queue_commit is for a unit's open transaction in pipeline mode")
        self._queued_commit = self._conn.execute("COMMIT")
        self._over = True

    def execute(self, query: Query, params: Params = None, *, commit: bool = False,
                json_loads: JsonLoads | None = None) -> psycopg.Cursor[Row]:
        """Run one statement; ``commit``: and commit the unit in the same round trip (its last statement);
        ``json_loads``: how this statement's json/jsonb values load."""
        self._require_open()
        due = self._opening is not None or self._elevated  # statements to send ahead of this one
        if (due or commit) and params is None and _may_hold_several(query, self._conn):
            # several statements in one text cannot join a pipeline: they travel as one simple query
            return self._run_script(query, commit=commit, json_loads=json_loads)
        if not due and not commit:
            return _cursor(self._conn, json_loads).execute(query, params)
        return self._run([(query, params, json_loads)], commit=commit)[0]

    def fetchone(self, query: Query, params: Params = None, *, commit: bool = False) -> Row | None:
        return self.execute(query, params, commit=commit).fetchone()

    def fetchrow(self, query: Query, params: Params = None, *, commit: bool = False) -> Row:
        """The one row of a statement that always returns one (``INSERT ... RETURNING``, an aggregate)."""
        row = self.execute(query, params, commit=commit).fetchone()
        if row is None:
            raise LookupError("the statement returned no row")
        return row

    def fetchall(self, query: Query, params: Params = None, *, commit: bool = False) -> list[Row]:
        return self.execute(query, params, commit=commit).fetchall()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def call_write_path(self, function: str, *args: Any, commit: bool = False) -> Any:
        """The result of ``private.<function>(*args)``, one of the write paths of payment state, prices
        and installation status (migration 0051). Only the role ``dramac_backend`` may execute them:
        a user unit switches to it for its write paths and back to ``authenticated`` ahead of any other
        statement, each switch pipelined with the statement it precedes (one round trip, with the unit's
        opening and ``commit`` when they are due); the request's claims stay set, and the function checks
        the caller from them."""
        return self.write_path_row(_write_path_call(function, len(args)), args, commit=commit)["result"]

    def write_path_row(self, query: Query, params: Params = None, *, commit: bool = False) -> Row:
        """The one row of a statement that calls write paths (``private.<function>``, several in one
        statement if need be), run as ``call_write_path`` runs one: as ``dramac_backend``, in one round trip."""
        self._require_open()
        if self.claims is None:
            return self.fetchrow(query, params, commit=commit)
        # No statement of its own for the switch when the write path opens the unit (the opening sets the
        # role) or follows another one (the role is still the write role); the way back is sent with the
        # next other statement (``_run``), and a COMMIT ends the role with the transaction.
        statements: list[tuple[Query, Params, JsonLoads | None]] = [(query, params, None)]
        if self._opening is not None:
            self._opening.role = WRITE_ROLE
        elif not self._elevated:
            statements.insert(0, (_SET_WRITE_ROLE, None, None))
        row = self._run(statements, commit=commit, as_write_role=True)[-1].fetchone()
        if row is None:
            raise LookupError("the write path returned no row")
        return row

    # -- the transaction ---------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._over:
            raise RuntimeError("the unit of work has committed: no statement may follow its last")

    def _run(self, statements: list[tuple[Query, Params, JsonLoads | None]], *,
             commit: bool = False, as_write_role: bool = False) -> list[psycopg.Cursor[Row]]:
        """Send the due opening, ``statements`` and (``commit``) ``COMMIT`` in one pipeline: one round trip.
        An error raises the first failing statement's exception, as a lone statement would; the statements
        after it are skipped and the transaction is left for the unit to roll back. Statements run as
        ``authenticated`` unless ``as_write_role`` (``write_path_row``): a write role left by a write path
        is switched back first, in the same pipeline."""
        opening, self._opening = self._opening, None
        restore = self._elevated and not as_write_role
        self._elevated = as_write_role and not commit
        for attempt in range(2):
            conn = self._conn
            rate: psycopg.Cursor[Row] | None = None
            cursors = [_cursor(conn, json_loads) for _, _, json_loads in statements]
            try:
                with conn.pipeline():
                    if opening is not None:
                        rate = opening.send(conn)
                    if restore:
                        conn.execute("SET LOCAL ROLE authenticated")
                    for cursor, (query, params, _) in zip(cursors, statements, strict=True):
                        cursor.execute(query, params)
                    if commit:
                        conn.execute("COMMIT")
            except psycopg.Error:
                if self._retry(conn, opening, attempt, commit):
                    continue
                if opening is not None:
                    opening.check(rate)  # a refused request answers 429, whatever its statement did
                if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    self._over = True  # the opening or the COMMIT failed: there is no transaction to go on in
                raise
            if opening is not None:
                opening.check(rate)
            self._over = self._committed = commit
            return cursors
        raise AssertionError("unreachable")

    def _run_script(self, query: Query, *, commit: bool, json_loads: JsonLoads | None) -> psycopg.Cursor[Row]:
        """Run a text of several statements as one simple query, with the due opening before it and
        ``COMMIT`` after it: one round trip. The cursor is left on the text's first result; a ``COMMIT``
        adds one result (no rows) after its last. An opening with a rate limit goes on its own first (its
        token commits apart, in a pipeline)."""
        text = query if isinstance(query, str | bytes) else query.as_string(self._conn)
        if isinstance(text, bytes):
            text = text.decode()
        self._take_token_apart()
        opening, self._opening = self._opening, None
        restore, self._elevated = self._elevated, False
        for attempt in range(2):
            conn = self._conn
            prefix = opening.script() if opening is not None else []
            if restore:
                prefix.append("SET LOCAL ROLE authenticated")
            script = ";\n".join([*prefix, text, *(["COMMIT"] if commit else [])])
            cursor = _cursor(conn, json_loads)
            try:
                cursor.execute(script)
            except psycopg.Error:
                if self._retry(conn, opening, attempt, commit):
                    continue
                if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    self._over = True  # the opening or the COMMIT failed: there is no transaction to go on in
                raise
            for _ in prefix:
                cursor.nextset()
            self._over = self._committed = commit
            return cursor
        raise AssertionError("unreachable")

    def _take_token_apart(self) -> None:
        """A due opening with a rate limit goes on its own, first: its token commits apart, in a pipeline, which a
        text of several statements cannot join and a caller's pipeline block would read only at its end."""
        if self._opening is not None and self._opening.rate_limit is not None:
            self._run([])

    def _retry(self, conn: psycopg.Connection[Row], opening: _Opening | None, attempt: int, commit: bool) -> bool:
        """After the unit's first round trip failed: whether to send it again, on a new connection. Only when
        the connection is gone (it died between the check on lending and the send) and the round trip did not
        carry ``COMMIT``: the transaction it opened died with the connection, so nothing of it stays. With
        ``COMMIT`` aboard, the server may have committed before the connection went: sending again could do
        the work twice, so the error stands (503; the caller's retry meets the idempotency guards)."""
        if opening is None or attempt > 0 or commit or self._pool is None or not (conn.closed or conn.broken):
            return False
        self._pool.putconn(conn)
        self._conn = self._pool.getconn()
        return True

    def _commit_queued_ran(self) -> bool:
        """Whether ``queue_commit``'s ``COMMIT`` committed (its answer read without error, and not a rollback)."""
        cursor = self._queued_commit
        return cursor is not None and cursor.pgresult is not None and cursor.statusmessage == "COMMIT"

    def _finish(self) -> None:
        """Commit, unless the last statement did (a unit that ran nothing still takes its rate-limit token)."""
        if self._queued_commit is not None:
            if not self._commit_queued_ran():
                raise psycopg.OperationalError("the unit's queued COMMIT was not answered: its pipeline was left unread")
        elif self._opening is not None:
            if self._opening.rate_limit is None:
                self._opening = None  # nothing ran: there is no transaction to commit
                self._over = self._committed = True
                return
            self._run([], commit=True)
        elif not self._over:
            self._conn.execute("COMMIT")
        self._over = self._committed = True

    def _abort(self) -> None:
        """Roll back after an error; a unit whose body failed before any statement still answers 429
        when its rate limit refuses (as when the token was taken before the body ran)."""
        if self._opening is not None:
            if self._opening.rate_limit is not None:
                with suppress(psycopg.Error):  # only its 429 may replace the body's error
                    self._run([], commit=True)
            self._opening, self._committed = None, False  # the body's work never ran
            return
        conn = self._conn
        if self._queued_commit is not None:
            if self._commit_queued_ran():
                self._committed = True  # the body failed after its COMMIT was answered: what committed must be sent
                return
            self._over = False  # a statement before the queued COMMIT was refused: roll back below
        if not self._over and not conn.closed \
                and conn.info.transaction_status != psycopg.pq.TransactionStatus.UNKNOWN:
            with suppress(psycopg.Error):
                conn.execute("ROLLBACK")


@functools.cache
def _write_path_call(function: str, arity: int) -> str:
    """``SELECT private.<function>(%s, ...) AS result``, composed once per write path: a statement composed
    with psycopg.sql is composed again and turned into bytes on every execute (25 us), a text only once."""
    return sql.SQL("SELECT {}({}) AS result").format(
        sql.Identifier("private", function), sql.SQL(", ").join(sql.Placeholder() * arity)).as_string()


_SET_WRITE_ROLE = sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(WRITE_ROLE)).as_string()


def _cursor(conn: psycopg.Connection[Row], json_loads: JsonLoads | None) -> psycopg.Cursor[Row]:
    cursor = conn.cursor()
    if json_loads is not None:
        set_json_loads(json_loads, cursor)
    return cursor


def _may_hold_several(query: Query, conn: psycopg.Connection[Row]) -> bool:
    """Whether a statement without parameters may be several (``a; b``), which a pipeline refuses."""
    text = query if isinstance(query, str | bytes) else query.as_string(conn)
    return (b";" if isinstance(text, bytes) else ";") in text  # type: ignore[operator]


class _Opening:
    """A unit's opening statements, pipelined ahead of its first statement."""

    def __init__(self, claims: Mapping[str, Any] | None, timeout_ms: int, rate_limit: RateLimit | None,
                 site_id: uuid.UUID | None = None):
        self.claims = claims
        self.timeout_ms = timeout_ms
        self.rate_limit = rate_limit
        self.site_id = site_id
        self.role = "authenticated"  # the role a user unit's transaction begins in (WRITE_ROLE: a write path first)

    def send(self, conn: psycopg.Connection[Row]) -> psycopg.Cursor[Row] | None:
        """Queue the opening in ``conn``'s pipeline; returns the rate limit's cursor (its row says ``wait``)."""
        rate = None
        if self.rate_limit is not None:
            # the token is taken first and committed on its own (ratelimit.py), without waiting for a WAL
            # flush: a bucket lost in a crash starts full again. (Its own BEGIN: a COMMIT of a pipeline's
            # implicit transaction would warn, and the server flushes a warning at once, mid-pipeline.)
            conn.execute("BEGIN")
            rate = conn.execute(sql.SQL("SELECT t.wait, set_config('synchronous_commit', 'off', true) FROM ({}) AS t")
                                .format(self.rate_limit.statement()))
            conn.execute("COMMIT")
        conn.execute("BEGIN")
        values = self._values()
        conn.execute(_set_config(len(values)), values)
        return rate

    def _values(self) -> tuple[str, ...]:
        """The transaction's settings (``_SETTINGS``, in order): a service unit's statement timeout alone."""
        if self.claims is None:
            return (str(self.timeout_ms),)
        return (str(self.timeout_ms), json.dumps(dict(self.claims), default=str),
                "" if self.site_id is None else str(self.site_id), self.role)

    def script(self) -> list[str]:
        """The opening (without a rate limit) as statements' text, to go ahead of a simple query's."""
        if self.claims is None:
            return ["BEGIN", _service_settings(self.timeout_ms)]
        return ["BEGIN", _set_config_text(self._values())]

    def check(self, rate: psycopg.Cursor[Row] | None) -> None:
        """Raise the rate limit's 429 if it refused this request."""
        if self.rate_limit is None or rate is None:
            return
        with suppress(psycopg.Error):
            row = rate.fetchone()
            if row is not None and row["wait"] > 0:
                raise self.rate_limit.refuse(row["wait"])


# What a unit's opening sets, transaction-locally: a service unit the first, a user unit all four.
_SETTINGS = ("statement_timeout", "request.jwt.claims", "dramac.site_id", "role")


@functools.cache
def _set_config(count: int, placeholder: str = "%s") -> str:
    """``SELECT set_config(<setting>, %s, true), ...`` for the first ``count`` of ``_SETTINGS``."""
    return "SELECT " + ", ".join(f"set_config('{name}', {placeholder}, true)" for name in _SETTINGS[:count])


def _set_config_text(values: tuple[str, ...]) -> str:
    """``_set_config`` with its values written in (``psycopg.sql.Literal``), for a simple query's text."""
    return sql.SQL(_set_config(len(values), "{}")).format(*map(sql.Literal, values)).as_string()


@lru_cache(maxsize=8)
def _service_settings(timeout_ms: int) -> str:
    """A service unit's settings as text: the same for every unit of the process (a queue worker's)."""
    return _set_config_text((str(timeout_ms),))


@contextmanager
def _unit(claims: Mapping[str, Any] | None, rate_limit: RateLimit | None = None,
          site_id: uuid.UUID | None = None) -> Iterator[Unit]:
    pool: Connections = get_pool()
    conn = pool.getconn()  # autocommit, dict rows
    opening = _Opening(claims, get_settings().statement_timeout_ms, rate_limit, site_id)
    unit = Unit(conn, claims, opening=opening, pool=pool)
    try:
        try:
            yield unit
            unit._finish()
        except BaseException:
            unit._abort()
            raise
        finally:
            pool.putconn(unit._conn)
    finally:
        # once the connection is back (a callback may need one): also when the body failed after its
        # last statement committed, since what committed must reach the queues
        if unit._committed:
            for callback in unit._after_commit:
                callback()


def user_unit(claims: Mapping[str, Any], rate_limit: RateLimit | None = None, *,
              site_id: uuid.UUID | None = None) -> Any:
    """A transaction as ``authenticated`` with these JWT claims (``sub`` is the user id); with
    ``rate_limit``, a request over its limits is refused (429) before the transaction begins.

    ``site_id``: the transaction is about this one site (``tenancy.site_unit``). It is set as
    ``dramac.site_id`` beside the claims, and a module table's policies then prove that one site readable
    (or writable) instead of building the array of every site the caller reaches, whose cost grows with
    its memberships (migration 0200). It only narrows: rows of another site are not visible in the unit."""
    return _unit(claims, rate_limit, site_id)


def service_unit() -> Any:
    """A transaction as the login role, for queue workers and trusted maintenance."""
    return _unit(None)
