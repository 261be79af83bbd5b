"""Test setup playing the provisioner's role (issue 4) for module data tests.

``provision_module_tables`` creates what the provisioner creates for a manifest — schema
``mod_<short id>``, each table with ``id``/``site_id``/``created_at``/``updated_at`` and the manifest's
columns, the ``updated_at`` trigger, RLS enabled and forced with the site-isolation policies, grants
to ``authenticated`` — and writes the registry row; ``install_module`` writes an installation.
Manifests here are the tests' own, trusted input: this is fixture DDL, not a DDL compiler. The SDK
under test depends only on the registry and the catalog, never on this file.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from dramac_common.naming import generate_module_short_id, get_module_schema_name
from psycopg import sql
from psycopg.types.json import Jsonb

CRM_MANIFEST: dict[str, Any] = {
    "version": "1.0.0",
    "database": {"tables": [
        {"name": "companies", "entity": "company",
         "columns": [{"name": "name", "type": "text", "nullable": False}, {"name": "domain", "type": "text"}]},
        {"name": "contacts", "entity": "contact",
         "columns": [
             {"name": "email", "type": "text", "nullable": False},
             {"name": "first_name", "type": "text"},
             {"name": "status", "type": "text", "default": "'lead'"},
             {"name": "lead_score", "type": "integer", "default": "0", "check": "lead_score >= 0"},
             {"name": "company_id", "type": "uuid"},
             {"name": "tags", "type": "text[]"},
             {"name": "profile", "type": "jsonb"},
             {"name": "birthday", "type": "date"},
             {"name": "vip", "type": "boolean", "default": "false"},
             {"name": "deleted_at", "type": "timestamptz"},
         ],
         "foreignKeys": [{"column": "company_id", "references": {"table": "companies", "column": "id"},
                          "onDelete": "SET NULL"}]},
        {"name": "deal_notes",  # no entity: events say "deal_note"
         "columns": [{"name": "body", "type": "text", "nullable": False}, {"name": "amount", "type": "numeric(12,2)"}]},
    ]},
}


def _column_sql(col: dict[str, Any]) -> sql.Composable:
    parts = [sql.Identifier(col["name"]), sql.SQL(col["type"])]
    if col.get("nullable") is False:
        parts.append(sql.SQL("NOT NULL"))
    if "default" in col:
        parts.append(sql.SQL("DEFAULT " + col["default"]))
    if "check" in col:
        parts.append(sql.SQL("CHECK (" + col["check"] + ")"))
    return sql.SQL(" ").join(parts)


def provision_module_tables(conn: psycopg.Connection, module_id: uuid.UUID, manifest: dict[str, Any]) -> str:
    schema = get_module_schema_name(module_id)
    s = sql.Identifier(schema)
    tables = manifest["database"]["tables"]
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO authenticated, service_role").format(s))
        for table in tables:
            t = sql.Identifier(schema, table["name"])
            columns = [sql.SQL("id uuid PRIMARY KEY DEFAULT gen_random_uuid()"),
                       sql.SQL("site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE"),
                       sql.SQL("created_at timestamptz NOT NULL DEFAULT now()"),
                       sql.SQL("updated_at timestamptz NOT NULL DEFAULT now()")]
            columns += [_column_sql(c) for c in table["columns"]]
            for fk in table.get("foreignKeys", []):
                columns.append(sql.SQL("FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE " + fk.get("onDelete", "NO ACTION"))
                               .format(sql.Identifier(fk["column"]),
                                       sql.Identifier(schema, fk["references"]["table"]),
                                       sql.Identifier(fk["references"]["column"])))
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(t, sql.SQL(", ").join(columns)))
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (site_id, created_at)").format(
                sql.Identifier(f"{table['name']}_site_idx"), t))
            conn.execute(sql.SQL("DROP TRIGGER IF EXISTS set_updated_at ON {}").format(t))
            conn.execute(sql.SQL("CREATE TRIGGER set_updated_at BEFORE UPDATE ON {} FOR EACH ROW "
                                 "EXECUTE FUNCTION private.set_updated_at()").format(t))
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(t))
            conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(t))
            conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO authenticated, service_role").format(t))
            conn.execute(sql.SQL("DROP POLICY IF EXISTS site_select ON {}").format(t))
            conn.execute(sql.SQL("CREATE POLICY site_select ON {} FOR SELECT TO authenticated "
                                 "USING (site_id = ANY ((SELECT private.readable_site_ids())::uuid[]))").format(t))
            for action in ("INSERT", "UPDATE", "DELETE"):
                name = sql.Identifier(f"site_{action.lower()}")
                conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(name, t))
                using = "" if action == "INSERT" else "USING (site_id = ANY ((SELECT private.writable_site_ids())::uuid[]))"
                check = "" if action == "DELETE" else "WITH CHECK (site_id = ANY ((SELECT private.writable_site_ids())::uuid[]))"
                conn.execute(sql.SQL("CREATE POLICY {} ON {} FOR " + action + " TO authenticated " + using + " " + check)
                             .format(name, t))
        conn.execute(
            """INSERT INTO public.module_database_registry
                 (module_id, module_short_id, uses_schema, schema_name, table_names, status, version)
               VALUES (%s, %s, true, %s, %s, 'active', %s)
               ON CONFLICT (module_id) DO UPDATE SET table_names = EXCLUDED.table_names, version = EXCLUDED.version""",
            (module_id, generate_module_short_id(module_id), schema, [t["name"] for t in tables],
             manifest.get("version", "1.0.0")))
    return schema


def install_module(conn: psycopg.Connection, *, site_id: uuid.UUID, agency_id: uuid.UUID, module_id: uuid.UUID,
                   status: str = "active", is_enabled: bool = True) -> None:
    conn.execute(
        """INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status, is_enabled, config)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (site_id, module_id) DO UPDATE SET status = EXCLUDED.status, is_enabled = EXCLUDED.is_enabled""",
        (site_id, module_id, agency_id, status, is_enabled, Jsonb({})))


def make_crm(conn: psycopg.Connection, make_module, *tenants, manifest: dict[str, Any] | None = None,
             slug: str | None = None) -> tuple[uuid.UUID, str]:
    """A CRM-like app module, provisioned and installed (active, enabled) on each tenant's site."""
    manifest = manifest or CRM_MANIFEST
    module_id = make_module(manifest=manifest, slug=slug, module_type="app")
    slug = conn.execute("SELECT slug FROM modules_v2 WHERE id = %s", (module_id,)).fetchone()["slug"]
    provision_module_tables(conn, module_id, manifest)
    for t in tenants:
        install_module(conn, site_id=t.site_id, agency_id=t.agency_id, module_id=module_id)
    return module_id, slug


@pytest.fixture(name="sqs_queues")
def sqs_queues_fixture():
    """moto's SQS with the project's queues; yields a reader of the events queue's messages."""
    import json

    from dramac_common import queues
    from moto import mock_aws

    with mock_aws():
        queues.reset_client()
        for logical in queues.QUEUES:
            queues.sqs_client().create_queue(QueueName=queues.queue_name(logical))

        def events() -> list[dict[str, Any]]:
            url = queues.queue_url(queues.EVENTS)
            got = []
            while True:
                batch = queues.sqs_client().receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                if not batch:
                    return got
                got += [json.loads(m["Body"]) for m in batch]

        yield events
        queues.reset_client()
