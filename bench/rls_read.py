"""Benchmark 4: a site-scoped read of 50 rows from a 1,000,000-row module table spread over 1,000
sites, through row-level security, against the table owner with an explicit ``WHERE site_id``.

Compared, on the same rows and the same statement:
  - the owner (no RLS) with an explicit ``WHERE site_id = ...``: the baseline;
  - ``authenticated`` under the provisioner's policy (``site_id = ANY(readable site ids)``);
  - ``authenticated`` under EM-11's join policy (sites ⋈ clients ⋈ agencies ⋈ agency_members on
    auth.uid()), on a copy of the table;
  - the whole module data API path (``ModuleDatabaseSDK``: gate, catalog, query) for a user and a site key.

    .venv/bin/python -m bench.rls_read [--rows 1000000] [--sites 1000] [--repeats 300]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

MANIFEST = {"version": "1.0.0", "database": {"tables": [{
    "name": "contacts", "entity": "contact",
    "columns": [{"name": "email", "type": "text", "nullable": False}, {"name": "lead_score", "type": "integer"},
                {"name": "status", "type": "text"}]}]}}

EM11_POLICY = """site_id IN (
    SELECT s.id FROM public.sites s
    JOIN public.clients c ON s.client_id = c.id
    JOIN public.agencies a ON c.agency_id = a.id
    JOIN public.agency_members am ON a.id = am.agency_id
    WHERE am.user_id = auth.uid())"""


def _fetch_all(conn: Any, query: Any, target: Any) -> list[Any]:
    return conn.execute(query, (target,)).fetchall()


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    for _ in range(5):
        fn()  # warm up (plan cache, buffers)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def measure(server: str, rows: int, sites: int, sites_per_agency: int, repeats: int) -> dict[str, Any]:
    import psycopg
    from dramac_common.core import db
    from dramac_common.core.migrate import apply_migrations
    from dramac_common.core.settings import reset_settings
    from dramac_common.module_data import ModuleDatabaseSDK
    from dramac_common.module_data.query import Query
    from dramac_common.provisioning import provisioner
    from psycopg import sql
    from psycopg.rows import dict_row

    from dramac_dev import localdb, seed

    saved = os.environ.get("DATABASE_URL")
    name, url = localdb.create_database(server, prefix="dramac_bench")
    os.environ["DATABASE_URL"] = url
    reset_settings()
    db.close_pool()
    out: dict[str, Any] = {}
    try:
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            user = seed.create_user(conn)
            site_ids: list[tuple[uuid.UUID, uuid.UUID]] = []
            for i in range(sites):
                if i % sites_per_agency == 0:  # the first site makes the first agency
                    agency = seed.create_agency(conn, owner=user if i == 0 else None)
                    client = seed.create_client(conn, agency)
                site_ids.append((seed.create_site(conn, agency, client_id=client), agency))
            module_id = seed.create_module(conn, manifest=MANIFEST)
            schema = provisioner.provision_module(module_id).schema_name
            assert schema is not None
            conn.execute(sql.SQL(
                """INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status, is_enabled,
                     config) SELECT s.id, {m}, s.agency_id, 'active', true, '{{}}' FROM public.sites s"""
            ).format(m=sql.Literal(module_id)))
            table = sql.Identifier(schema, "contacts")
            em11 = sql.Identifier(schema, "contacts_em11")
            t0 = time.perf_counter()
            conn.execute(sql.SQL(
                """INSERT INTO {t} (site_id, email, lead_score, status, created_at)
                   SELECT s.ids[1 + (g % {n})], 'user' || g || '@example.com', g % 100,
                          CASE WHEN g % 3 = 0 THEN 'active' ELSE 'lead' END, now() - make_interval(secs => g)
                   FROM generate_series(1, {rows}) g,
                        (SELECT array_agg(id ORDER BY id) AS ids FROM public.sites) s""").format(
                t=table, n=sql.Literal(sites), rows=sql.Literal(rows)))
            # EM-11's policy on an identical copy (same rows, same indexes)
            conn.execute(sql.SQL(
                "CREATE TABLE {c} (LIKE {t} INCLUDING ALL); INSERT INTO {c} SELECT * FROM {t};"
                "ALTER TABLE {c} ENABLE ROW LEVEL SECURITY;"
                "CREATE POLICY em11_select ON {c} FOR SELECT TO authenticated USING ({using});"
                "GRANT SELECT ON {c} TO authenticated; ANALYZE {t}; ANALYZE {c}").format(
                c=em11, t=table, using=sql.SQL(EM11_POLICY)))
            out["load_s"] = time.perf_counter() - t0
            target = site_ids[0][0]
            statement = ("SELECT * FROM {} WHERE site_id = %s ORDER BY created_at ASC, id ASC LIMIT 50")
            owner_sql = sql.SQL(statement).format(table)
            out["owner"] = timed(lambda: conn.execute(owner_sql, (target,)).fetchall(), repeats)
            out["plans"] = {"owner": _plan(conn, owner_sql, target)}
            claims = json.dumps({"sub": str(user), "role": "authenticated", "aud": "authenticated"})
            for key, t in (("ours", table), ("em11", em11)):
                q = sql.SQL(statement).format(t)
                with conn.transaction():
                    conn.execute("SELECT set_config('request.jwt.claims', %s, true), "
                                 "set_config('role', 'authenticated', true)", (claims,))
                    got = conn.execute(q, (target,)).fetchall()
                    assert len(got) == 50 and all(r["site_id"] == target for r in got), key
                    out[key] = timed(functools.partial(_fetch_all, conn, q, target), repeats)
                    out["plans"][key] = _plan(conn, q, target)
            user_claims = {"sub": str(user), "role": "authenticated", "aud": "authenticated"}
            key_claims = {"role": "site_api_key", "site_id": str(target), "sub": None}
            for key, unit_claims in (("sdk_user", user_claims), ("sdk_key", key_claims)):
                def request(c: dict[str, Any] = unit_claims) -> None:
                    with db.user_unit(c, site_id=target) as unit:  # as tenancy.site_unit opens a route's unit
                        sdk = ModuleDatabaseSDK.for_request(unit, site_id=target, module=module_id)
                        assert len(sdk.query("contacts", Query(limit=50))[0]) == 50
                out[key] = timed(request, repeats)
            role = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
            out["owner_role"] = role
        return out
    finally:
        db.close_pool()
        localdb.drop_database(server, name)
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved
        reset_settings()


def _plan(conn: Any, query: Any, target: Any) -> str:
    from psycopg import sql

    rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) ") + query, (target,)).fetchall()
    lines = [r["QUERY PLAN"].strip().removeprefix("->  ") for r in rows]
    return " / ".join(line for line in lines if "Scan" in line or line.startswith("Execution Time"))


def run(env: dict[str, str]) -> Any:
    from .common import Section, percentile, ratio

    quick = os.environ.get("BENCH_QUICK") == "1"
    rows, sites = (100_000, 100) if quick else (1_000_000, 1000)
    repeats = 300
    result = measure(env["DATABASE_URL"], rows, sites, 10, repeats)
    owner = statistics.median(result["owner"])
    section = Section("4. RLS", "make bench (bench/rls_read.py)", ["read of 50 rows of one site", "p50", "p95",
                                                                   "vs owner"])
    for key, label in (("owner", "*owner (no RLS), explicit WHERE site_id: baseline*"),
                       ("ours", "authenticated, our policy (site_id = ANY(readable sites))"),
                       ("em11", "authenticated, EM-11 join policy"),
                       ("sdk_user", "module data SDK as a user (transaction, gate, catalog, query)"),
                       ("sdk_key", "module data SDK with site API key claims")):
        values = result[key]
        section.rows.append([label, f"{statistics.median(values):.3f} ms", f"{percentile(values, 95):.3f} ms",
                             ratio(statistics.median(values), owner)])
    section.notes += [
        f"{rows:,} rows over {sites:,} sites ({rows // sites:,} per site), 10 sites per agency; the user belongs to one "
        f"agency; median of {repeats} runs of the same statement on one connection (loaded in {result['load_s']:.0f} s)",
        f"owner: superuser={result['owner_role']['rolsuper']}, bypassrls={result['owner_role']['rolbypassrls']}",
    ] + [f"plan ({k}): {v}" for k, v in result["plans"].items()] + [
        "the SDK rows are a whole unit of work (BEGIN with claims and the request's site, module gate, query, "
        "COMMIT), not one statement",
        "the target: RLS within 1.5× of the owner's explicit filter",
    ]
    return section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--sites-per-agency", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    from dramac_dev import localdb

    result = measure(localdb.server_url(), args.rows, args.sites, args.sites_per_agency, args.repeats)
    for key in ("owner", "ours", "em11", "sdk_user", "sdk_key"):
        print(f"{key:10} median {statistics.median(result[key]):.3f} ms")
    for key, plan in result["plans"].items():
        print(f"plan {key}: {plan}")


if __name__ == "__main__":
    main()
