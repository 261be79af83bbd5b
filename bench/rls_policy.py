"""Site-isolation policy of module tables: the provisioner's ``site_id = ANY(helper array)`` policy
against EM-11's join policy, queried as ``authenticated`` under RLS.

    .venv/bin/python -m bench.rls_policy [--sites 200] [--rows-per-site 1000] [--repeat 25]

Creates a scratch database on the embedded server (or ``DATABASE_URL``'s server), loads one table per
policy with identical rows, and prints the median time of each query per policy plus its plan shape.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import psycopg
from psycopg import sql

from .common import scalar

POLICIES = {
    "any_array": "site_id = ANY ((SELECT private.readable_site_ids())::uuid[])",
    "any_array_or_super_admin": (
        "site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) OR (SELECT private.is_super_admin())"
    ),
    # a module table's site_read (0073's policy; 0120's helper: agency users, its clients' users as its
    # clientAccess says, a key in scope, every site for a super admin)
    "module_site_read": "site_id = ANY ((SELECT private.module_readable_site_ids('{module}'::uuid))::uuid[])",
    "em11_join": """site_id IN (
        SELECT s.id FROM public.sites s
        JOIN public.clients c ON s.client_id = c.id
        JOIN public.agencies a ON c.agency_id = a.id
        JOIN public.agency_members am ON a.id = am.agency_id
        WHERE am.user_id = auth.uid())""",
}
QUERIES = {
    "count(*) of all visible rows": "SELECT count(*) FROM bench.{t}",
    "50 newest rows of one site": "SELECT * FROM bench.{t} WHERE site_id = %(site)s ORDER BY id DESC LIMIT 50",
    "one row by id": "SELECT * FROM bench.{t} WHERE id = %(row)s",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--rows-per-site", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()

    from dramac_common.core.migrate import apply_migrations

    from dramac_dev import localdb, seed

    server = localdb.server_url()
    name, url = localdb.create_database(server, prefix="dramac_bench")
    try:
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True) as conn:
            user = seed.create_user(conn)
            sites = []
            for i in range(args.sites // 2):
                agency = seed.create_agency(conn, owner=user if i == 0 else seed.create_user(conn))
                client = seed.create_client(conn, agency)
                sites += [seed.create_site(conn, agency, client_id=client) for _ in range(2)]
            mine = sites[0]
            module = seed.create_module(conn)
            conn.execute("CREATE SCHEMA bench; GRANT USAGE ON SCHEMA bench TO authenticated")
            for policy, using in POLICIES.items():
                t = sql.Identifier("bench", policy)
                conn.execute(sql.SQL(
                    "CREATE TABLE {t} (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), site_id uuid NOT NULL, "
                    "payload text, UNIQUE (site_id, id));"
                    "INSERT INTO {t} (site_id, payload) SELECT s, md5(g::text) "
                    "FROM unnest({sites}::uuid[]) s, generate_series(1, {n}) g;"
                    "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;"
                    "CREATE POLICY p ON {t} FOR SELECT TO authenticated USING ({using});"
                    "GRANT SELECT ON {t} TO authenticated; ANALYZE {t}"
                ).format(t=t, sites=sql.Literal(sites), n=sql.Literal(args.rows_per_site),
                         using=sql.SQL(using.replace("{module}", str(module)))))
            row = scalar(conn.execute(sql.SQL("SELECT id FROM bench.any_array WHERE site_id = %s LIMIT 1"), (mine,)))
            claims = json.dumps({"sub": str(user), "role": "authenticated"})
            print(f"{args.sites} sites x {args.rows_per_site} rows per table; the user reads 2 sites; "
                  f"median of {args.repeat} runs (ms)")
            print(f"{'query':32} " + " ".join(f"{p:>26}" for p in POLICIES))
            for label, query in QUERIES.items():
                cells = []
                for policy in POLICIES:
                    q = sql.SQL(query.replace("{t}", "{}")).format(sql.Identifier(policy))
                    times = []
                    with conn.transaction():
                        conn.execute("SELECT set_config('request.jwt.claims', %s, true), "
                                     "set_config('role', 'authenticated', true)", (claims,))
                        params = {"site": mine, "row": row}
                        conn.execute(q, params).fetchall()  # warm
                        for _ in range(args.repeat):
                            start = time.perf_counter()
                            conn.execute(q, params).fetchall()
                            times.append((time.perf_counter() - start) * 1000)
                        plan = scalar(conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + q, params))
                    node = plan[0]["Plan"]
                    while node["Node Type"] in ("Aggregate", "Limit", "Result", "Sort", "Gather"):
                        children = [p for p in node.get("Plans", []) if p.get("Parent Relationship") != "InitPlan"]
                        if not children:
                            break
                        node = children[0]
                    cells.append(f"{statistics.median(times):8.3f} {node['Node Type'][:17]:>17}")
                print(f"{label:32} " + " ".join(f"{c:>26}" for c in cells))
    finally:
        localdb.drop_database(server, name)


if __name__ == "__main__":
    main()
