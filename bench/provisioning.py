"""Provisioning time of a four-table CRM-like module: the provisioner end to end against the same
DDL run raw in one transaction (and, for reference, EM-11's way: one round trip per statement,
autocommit).

    .venv/bin/python bench/provisioning.py [--runs 30]

Uses a scratch database on the embedded server (or ``DATABASE_URL``'s server). Each run provisions a
fresh module id, so every measurement creates a whole schema; schemas are dropped between runs,
outside the timings. Prints the median and the interquartile range in milliseconds.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import uuid

import psycopg
from psycopg import sql

CRM4 = {
    "version": "1.0.0",
    "database": {"tables": [
        {"name": "companies", "columns": [
            {"name": "name", "type": "text", "nullable": False}, {"name": "domain", "type": "varchar(255)"},
            {"name": "industry", "type": "text"}, {"name": "employee_count", "type": "integer", "check": "employee_count >= 0"}],
         "indexes": [{"columns": ["domain"], "unique": True}, {"columns": ["name"]}]},
        {"name": "contacts", "columns": [
            {"name": "email", "type": "text", "nullable": False}, {"name": "first_name", "type": "text"},
            {"name": "last_name", "type": "text"}, {"name": "status", "type": "text", "default": "'lead'",
                                                     "check": "status IN ('lead', 'customer', 'churned')"},
            {"name": "lead_score", "type": "integer", "default": "0", "check": "lead_score BETWEEN 0 AND 100"},
            {"name": "tags", "type": "text[]", "default": "'{}'"}, {"name": "company_id", "type": "uuid"}],
         "indexes": [{"columns": ["email"], "unique": True}, {"columns": ["tags"], "using": "gin"},
                     {"columns": ["lead_score"], "where": "status = 'lead'"}],
         "foreignKeys": [{"column": "company_id", "references": {"table": "companies"}, "onDelete": "SET NULL"}]},
        {"name": "deals", "columns": [
            {"name": "title", "type": "text", "nullable": False}, {"name": "amount", "type": "numeric(12,2)",
                                                                    "default": "0"},
            {"name": "stage", "type": "text", "default": "'new'"}, {"name": "contact_id", "type": "uuid"},
            {"name": "company_id", "type": "uuid"}, {"name": "closes_on", "type": "date"}],
         "indexes": [{"columns": ["stage"]}],
         "foreignKeys": [{"column": "contact_id", "references": {"table": "contacts"}, "onDelete": "CASCADE"},
                         {"column": "company_id", "references": {"table": "companies"}, "onDelete": "SET NULL"}]},
        {"name": "activities", "columns": [
            {"name": "kind", "type": "text", "nullable": False}, {"name": "body", "type": "text"},
            {"name": "payload", "type": "jsonb", "default": "'{}'::jsonb"}, {"name": "contact_id", "type": "uuid"},
            {"name": "due_at", "type": "timestamptz"}],
         "indexes": [{"columns": ["payload"], "using": "gin"}, {"columns": ["due_at"], "where": "due_at IS NOT NULL"}],
         "foreignKeys": [{"column": "contact_id", "references": {"table": "contacts"}, "onDelete": "CASCADE"}]},
    ]},
}


def summary(times: list[float]) -> str:
    q = statistics.quantiles(times, n=4)
    return f"median {statistics.median(times):7.2f} ms   IQR {q[0]:6.2f}–{q[2]:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    from dramac_common import db
    from dramac_common.migrate import apply_migrations
    from dramac_common.naming import get_module_schema_name
    from dramac_common.provisioning import ddl, provisioner
    from dramac_common.provisioning.manifest import validate_manifest
    from dramac_common.settings import reset_settings

    from dramac_dev import localdb, seed

    server = localdb.server_url()
    name, url = localdb.create_database(server, prefix="dramac_bench")
    os.environ["DATABASE_URL"] = url
    reset_settings()
    db.close_pool()
    try:
        apply_migrations(url)
        _, definition = validate_manifest(CRM4)
        timings: dict[str, list[float]] = {"provisioner (validate, lock, plan, DDL + registry, commit)": [],
                                           "same DDL raw, one transaction, one round trip": [],
                                           "same DDL, one round trip per statement, autocommit (EM-11)": []}
        labels = list(timings)
        with psycopg.connect(url, autocommit=True) as conn:
            statements_count = len(ddl.plan_schema("mod_00000000", definition, ddl.CatalogState()).statements)
            for run in range(args.runs + 2):  # the first two runs warm caches and are not counted
                module = uuid.uuid4()
                seed.create_module(conn, module_id=module, module_type="app", manifest=copy.deepcopy(CRM4))
                start = time.perf_counter()
                provisioner.provision_module(module)
                elapsed = [(time.perf_counter() - start) * 1000]

                raw_schema = get_module_schema_name(uuid.uuid4())
                plan = ddl.plan_schema(raw_schema, definition, ddl.CatalogState())
                script = plan.script().as_string(conn)
                start = time.perf_counter()
                conn.execute("BEGIN;\n" + script + ";\nCOMMIT")
                elapsed.append((time.perf_counter() - start) * 1000)

                split_schema = get_module_schema_name(uuid.uuid4())
                statements = [s.as_string(conn) for _, s in ddl.plan_schema(split_schema, definition,
                                                                             ddl.CatalogState()).statements]
                start = time.perf_counter()
                for statement in statements:
                    conn.execute(statement)
                elapsed.append((time.perf_counter() - start) * 1000)

                if run >= 2:
                    for label, ms in zip(labels, elapsed, strict=True):
                        timings[label].append(ms)
                provisioner.deprovision_module(module)
                for schema in (raw_schema, split_schema):
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"4 tables, {statements_count} DDL statements; PostgreSQL {version}; {args.runs} runs")
        for label, times in timings.items():
            print(f"{label:62} {summary(times)}")
    finally:
        db.close_pool()
        localdb.drop_database(server, name)


if __name__ == "__main__":
    main()
