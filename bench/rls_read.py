"""Benchmark: a site-scoped read of 50 rows from a 1,000,000-row module table spread over 1,000 sites,
through row-level security (as ``authenticated``, via ModuleDatabaseSDK.find) against the same query
as the table owner with an explicit ``WHERE site_id = ...``.

    .venv/bin/python bench/rls_read.py [--rows 1000000] [--sites 1000] [--repeats 300]

Uses DATABASE_URL's server (or the embedded one), in a scratch database it creates and drops.
Prints the median and p95 of the client-observed time per query, and each plan.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MANIFEST = {"version": "1.0.0", "database": {"tables": [{
    "name": "contacts", "entity": "contact",
    "columns": [{"name": "email", "type": "text", "nullable": False}, {"name": "lead_score", "type": "integer"},
                {"name": "status", "type": "text"}],
    "indexes": [{"columns": ["created_at"]}]}]}}


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm up (plan cache, buffers)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"median {statistics.median(ordered):.3f} ms, p95 {ordered[int(len(ordered) * 0.95) - 1]:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--sites-per-agency", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    import psycopg
    from dramac_common import db
    from dramac_common.migrate import apply_migrations
    from dramac_common.naming import get_module_schema_name
    from dramac_common.provisioning import provisioner
    from dramac_common.settings import reset_settings
    from psycopg.rows import dict_row

    from dramac_dev import localdb, seed

    server = localdb.server_url()
    name, url = localdb.create_database(server)
    os.environ["DATABASE_URL"] = url
    reset_settings()
    try:
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            user = seed.create_user(conn)
            sites = []
            agency = None
            for i in range(args.sites):
                if i % args.sites_per_agency == 0:
                    agency = seed.create_agency(conn, owner=user if i == 0 else None)
                sites.append((seed.create_site(conn, agency), agency))
            module_id = seed.create_module(conn, manifest=MANIFEST)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status) "
                    "VALUES (%s, %s, %s, 'provisioning')", [(s, module_id, a) for s, a in sites])
            provisioner.provision_module(module_id)  # the product's own schema, policies and indexes
            schema = get_module_schema_name(module_id)
            t0 = time.perf_counter()
            conn.execute(
                f"""INSERT INTO {schema}.contacts (site_id, email, lead_score, status, created_at)
                    SELECT s.ids[1 + (g %% %s)], 'user' || g || '@example.com', g %% 100,
                           CASE WHEN g %% 3 = 0 THEN 'active' ELSE 'lead' END,
                           now() - make_interval(secs => g)
                    FROM generate_series(1, %s) g, (SELECT array_agg(id ORDER BY id) AS ids FROM public.sites) s""",
                (args.sites, args.rows))
            conn.execute(f"ANALYZE {schema}.contacts")
            print(f"loaded {args.rows} rows over {args.sites} sites in {time.perf_counter() - t0:.1f} s")
            role = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()

            target = sites[0][0]
            from dramac_common.module_data import ModuleDatabaseSDK
            from dramac_common.module_data.query import Query

            claims = {"sub": str(user), "role": "authenticated", "aud": "authenticated"}
            with db.user_unit(claims) as unit:
                sdk = ModuleDatabaseSDK.for_request(unit, site_id=target, module=module_id)
                rls = timed(lambda: sdk.query("contacts", Query(limit=50)), args.repeats)
                rows = sdk.query("contacts", Query(limit=50))[0]
                # the SDK's own statement, for the plan
                plan_rls = unit.fetchall(
                    f"EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM {schema}.contacts WHERE site_id = %s "
                    "ORDER BY created_at ASC, id ASC LIMIT 50 OFFSET 0", (target,))
            key_claims = {"role": "site_api_key", "site_id": str(target), "sub": None}
            with db.user_unit(key_claims) as unit:
                sdk = ModuleDatabaseSDK.for_request(unit, site_id=target, module=module_id)
                rls_key = timed(lambda: sdk.query("contacts", Query(limit=50)), args.repeats)
            owner_sql = (f"SELECT * FROM {schema}.contacts WHERE site_id = %s "
                         "ORDER BY created_at ASC, id ASC LIMIT %s OFFSET %s")
            owner = timed(lambda: conn.execute(owner_sql, (target, 50, 0)).fetchall(), args.repeats)
            plan_owner = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + owner_sql, (target, 50, 0)).fetchall()
            assert len(rows) == 50 and all(r["site_id"] == target for r in rows)
        print(f"table owner (superuser={role['rolsuper']}, bypassrls={role['rolbypassrls']}), explicit WHERE site_id: "
              f"{summary(owner)}")
        print(f"authenticated user of an agency with {args.sites_per_agency} sites, through RLS via the SDK: "
              f"{summary(rls)}")
        print(f"site API key claims (one site), through RLS via the SDK: {summary(rls_key)}")
        print("\nplan through RLS:\n  " + "\n  ".join(r["QUERY PLAN"] for r in plan_rls))
        print("\nplan as owner:\n  " + "\n  ".join(r["QUERY PLAN"] for r in plan_owner))
    finally:
        db.close_pool()
        localdb.drop_database(server, name)


if __name__ == "__main__":

    main()
