"""Benchmark: pruning a month of the automation events log, batched DELETE (what functions/retention
does) against monthly range partitions (DETACH + DROP), and what partitioning costs the API's reads
and the writers.

Two copies of an ``automation_events_log``-shaped table in a scratch database, the same rows spread
evenly over 13 months and 1,000 sites:
  - ``plain``: as today (uuid primary key; indexes (site_id, created_at DESC) and (created_at));
  - ``parted``: ``PARTITION BY RANGE (created_at)``, one partition per month (the primary key must then
    include created_at: (id, created_at)), index (site_id, created_at DESC) on each partition.

Measured: pruning the oldest month (plain: DELETE ... LIMIT 5000 per transaction until none is left;
parted: DETACH PARTITION + DROP TABLE), the longest single transaction of each, the newest 50 events of
one site (the executions/events listing shape), and inserting 20,000 new events one statement each (pipelined).

    .venv/bin/python -m bench.retention [--rows 1000000] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from .common import scalar

MONTHS = 13
SITES = 1000
BATCH = 5000

_COLUMNS = """id uuid NOT NULL DEFAULT gen_random_uuid(), site_id uuid NOT NULL, event_type text NOT NULL,
  payload jsonb NOT NULL, created_at timestamptz NOT NULL, dispatched_at timestamptz"""


def _month(start: datetime, offset: int) -> datetime:
    year, month = divmod(start.month - 1 + offset, 12)
    return start.replace(year=start.year + year, month=month + 1)


def _setup(conn: Any, rows: int, start: datetime) -> None:
    from psycopg import sql

    conn.execute(f"CREATE TABLE plain ({_COLUMNS}, PRIMARY KEY (id))")
    conn.execute(f"CREATE TABLE parted ({_COLUMNS}, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)")
    for m in range(MONTHS + 1):
        conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF parted FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(f"parted_m{m:02d}"), sql.Literal(_month(start, m)), sql.Literal(_month(start, m + 1))))
    conn.execute("CREATE TABLE sites_b AS SELECT gen_random_uuid() AS id FROM generate_series(1, %s)", (SITES,))
    span = (_month(start, MONTHS) - start).total_seconds()
    load = """
        INSERT INTO {table} (site_id, event_type, payload, created_at, dispatched_at)
        SELECT s.id, 'crm.contact.created',
               jsonb_build_object('id', gen_random_uuid(), 'email', 'person' || g || '@example.com',
                                  'first_name', 'Ada', 'lead_score', g %% 100, 'status', 'active'),
               %(start)s::timestamptz + make_interval(secs => (g::float / %(rows)s) * %(span)s),
               %(start)s::timestamptz + make_interval(secs => (g::float / %(rows)s) * %(span)s + 1)
        FROM generate_series(0, %(rows)s - 1) g
        JOIN (SELECT id, row_number() OVER () - 1 AS n FROM sites_b) s ON s.n = g %% {sites}
    """
    for table in ("plain", "parted"):
        conn.execute(sql.SQL(load).format(table=sql.Identifier(table), sites=sql.Literal(SITES)),
                     {"start": start, "rows": rows, "span": span})
    conn.execute("CREATE INDEX plain_site_idx ON plain (site_id, created_at DESC)")
    conn.execute("CREATE INDEX plain_created_idx ON plain (created_at)")
    conn.execute("CREATE INDEX parted_site_idx ON parted (site_id, created_at DESC)")
    conn.execute("VACUUM ANALYZE plain")
    conn.execute("VACUUM ANALYZE parted")


def _read_times(conn: Any, table: str, site: Any, repeats: int) -> list[float]:
    from psycopg import sql

    query = sql.SQL("SELECT id, event_type, payload, created_at FROM {} WHERE site_id = %s "
                    "ORDER BY created_at DESC LIMIT 50").format(sql.Identifier(table))
    for _ in range(5):
        conn.execute(query, (site,)).fetchall()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        conn.execute(query, (site,)).fetchall()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def _insert_time(conn: Any, table: str, site: Any, n: int, at: datetime) -> float:
    from psycopg import sql

    statement = sql.SQL("INSERT INTO {} (site_id, event_type, payload, created_at) VALUES (%s, 'crm.contact.created', "
                        "'{{\"lead_score\": 1}}', %s)").format(sql.Identifier(table))
    t = time.perf_counter()
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(statement, [(site, at)] * n)  # pipelined: the server's insert cost, not round trips
    return time.perf_counter() - t


def measure(url: str, rows: int, repeats: int) -> dict[str, Any]:
    import psycopg

    start = datetime(2025, 1, 1, tzinfo=UTC)
    cutoff = _month(start, 1)
    out: dict[str, Any] = {"rows": rows}
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        _setup(conn, rows, start)
        out["load_s"] = time.perf_counter() - t
        site = scalar(conn.execute("SELECT id FROM sites_b LIMIT 1"))
        out["month_rows"] = scalar(conn.execute("SELECT count(*) FROM plain WHERE created_at < %s", (cutoff,)))
        out["read_plain"] = _read_times(conn, "plain", site, repeats)
        out["read_parted"] = _read_times(conn, "parted", site, repeats)
        recent = _month(start, MONTHS) - (_month(start, MONTHS) - _month(start, MONTHS - 1)) / 2
        out["insert_plain_s"] = _insert_time(conn, "plain", site, 20_000, recent)
        out["insert_parted_s"] = _insert_time(conn, "parted", site, 20_000, recent)

        batches, t = [], time.perf_counter()
        while True:
            b = time.perf_counter()
            deleted = conn.execute(
                "DELETE FROM plain WHERE id IN (SELECT id FROM plain WHERE created_at < %s ORDER BY created_at "
                "LIMIT %s FOR UPDATE SKIP LOCKED)", (cutoff, BATCH)).rowcount
            batches.append(time.perf_counter() - b)
            if deleted < BATCH:
                break
        out["delete_s"], out["delete_max_batch_s"], out["delete_batches"] = (
            time.perf_counter() - t, max(batches), len(batches))
        t = time.perf_counter()
        conn.execute("VACUUM plain")
        out["vacuum_s"] = time.perf_counter() - t

        t = time.perf_counter()
        conn.execute("ALTER TABLE parted DETACH PARTITION parted_m00")
        conn.execute("DROP TABLE parted_m00")
        out["drop_s"] = time.perf_counter() - t
        out["read_plain_after"] = _read_times(conn, "plain", site, repeats)
    return out


def run(env: dict[str, str], rows: int | None = None, repeats: int = 200) -> Any:
    import os

    from dramac_dev import localdb

    from .common import Section, percentile

    rows = rows or (200_000 if os.environ.get("BENCH_QUICK") == "1" else 1_000_000)
    server = localdb.server_url()
    name, url = localdb.create_database(server, prefix="dramac_bench_retention")
    try:
        r = measure(url, rows, repeats)
    finally:
        localdb.drop_database(server, name)
    section = Section("8. Retention: batched DELETE or monthly partitions",
                      f".venv/bin/python -m bench.retention --rows {rows}",
                      ["operation", "plain table (batched DELETE)", "monthly partitions"])

    def p(values: list[float]) -> str:
        return f"p50 {statistics.median(values):.2f} ms, p95 {percentile(values, 95):.2f} ms"

    section.rows += [
        [f"prune the oldest month ({r['month_rows']:,} rows)",
         f"{r['delete_s']:.2f} s in {r['delete_batches']} transactions of ≤ {BATCH:,}",
         f"{r['drop_s'] * 1000:.1f} ms (DETACH + DROP)"],
        ["longest transaction while pruning", f"{r['delete_max_batch_s'] * 1000:.0f} ms",
         f"{r['drop_s'] * 1000:.1f} ms (ACCESS EXCLUSIVE on the parent for DETACH)"],
        ["space of the deleted rows", f"reusable after VACUUM ({r['vacuum_s']:.2f} s); autovacuum does it",
         "returned to the OS at once"],
        ["newest 50 events of one site", p(r["read_plain"]), p(r["read_parted"])],
        ["20,000 single-row INSERT statements (pipelined, one transaction)", f"{r['insert_plain_s']:.2f} s", f"{r['insert_parted_s']:.2f} s"],
    ]
    section.notes += [
        f"{r['rows']:,} rows over {MONTHS} months and {SITES:,} sites, loaded in {r['load_s']:.0f} s; reads: "
        f"{repeats} runs on one connection; after the prune the plain table reads {p(r['read_plain_after'])}",
    ]
    return section


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(run(dict(os.environ), rows=args.rows, repeats=args.repeats).markdown())


if __name__ == "__main__":
    main()
