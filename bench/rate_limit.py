"""What the rate limit costs a request of the data and events routes: the unit of work's opening message
with and without the token bucket in front (``core.ratelimit``), timed and its round trips counted
(libpq's protocol trace), on one site and on many sites at once.

    .venv/bin/python -m bench.rate_limit --requests 2000
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import psycopg

from .common import median, percentile
from .roundtrips import RoundTripCounter


def open_unit(conn: Any, claims: dict[str, Any], limit: Any) -> None:
    """A unit of work's opening (db._Opening: the token take with its own commit, BEGIN, timeout and
    claims), pipelined into one round trip as a unit sends it ahead of its first statement."""
    from dramac_common.core import db

    with conn.pipeline():
        db._Opening(claims, 15000, limit).send(conn)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()

    import os

    from dramac_common.core.migrate import apply_migrations
    from dramac_common.core.ratelimit import RateLimit
    from dramac_common.core.settings import reset_settings

    from dramac_dev import localdb, seed

    server = localdb.server_url()
    name, url = localdb.create_database(server, prefix="dramac_bench")
    os.environ["DATABASE_URL"] = url
    os.environ["DRAMAC_PLAN_LIMITS"] = '{"standard": {"siteRate": 1000000, "siteBurst": 1000000}}'
    reset_settings()
    try:
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True) as conn:
            user = seed.create_user(conn)
            agency = seed.create_agency(conn, owner=user)
            client = seed.create_client(conn, agency)
            sites = [seed.create_site(conn, agency, client_id=client) for _ in range(50)]
            claims = {"sub": str(user), "role": "authenticated", "aud": "authenticated"}
            variants = {
                "no rate limit (before)": lambda _: None,
                "site bucket, one site": lambda _: RateLimit(sites[0], user_id=user),
                "site + key buckets, one site": lambda _: RateLimit(sites[0], key_id=sites[1]),
                "site bucket, 50 sites round robin": lambda i: RateLimit(sites[i % len(sites)], user_id=user),
            }
            print(f"opening statements of a unit of work + COMMIT, {args.requests} times each, the variants "
                  "interleaved so the machine's noise falls on all alike (ms)")
            print(f"{'variant':36} {'p50':>8} {'p99':>8} {'round trips':>12}")
            timings: dict[str, list[float]] = {label: [] for label in variants}
            for i in range(args.requests):
                for label, limit_for in variants.items():
                    started = time.perf_counter()
                    open_unit(conn, claims, limit_for(i))
                    conn.execute("COMMIT")
                    timings[label].append((time.perf_counter() - started) * 1000)
            for label, limit_for in variants.items():
                counter = RoundTripCounter(conn)
                with counter.measure() as turns:
                    open_unit(conn, claims, limit_for(0))
                conn.execute("COMMIT")
                counter.close()
                print(f"{label:36} {median(timings[label]):8.3f} {percentile(timings[label], 99):8.3f} {turns[0]:12d}")
    finally:
        localdb.drop_database(server, name)


if __name__ == "__main__":
    main()
