"""Module data test setup: a CRM-like module created, installed and provisioned by the product itself.

``make_crm`` writes the module, an installation per tenant waiting for provisioning (as the install
function does), and runs the real provisioner (``provisioning.provisioner.provision_module``, what the
provision queue's worker runs), which creates the schema and activates the installations. So every
module data test runs against the schema, policies and registry row the product creates.
``install_module`` writes an installation in a given state (the gate tests need disabled and
provisioning ones).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from dramac_common.provisioning import provisioner
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
         "indexes": [{"columns": ["created_at"]}],
         "foreignKeys": [{"column": "company_id", "references": {"table": "companies", "column": "id"},
                          "onDelete": "SET NULL"}]},
        {"name": "deal_notes",  # no entity: events say "deal_note"
         "columns": [{"name": "body", "type": "text", "nullable": False}, {"name": "amount", "type": "numeric(12,2)"}]},
    ]},
}


def install_module(conn: psycopg.Connection, *, site_id: uuid.UUID, agency_id: uuid.UUID, module_id: uuid.UUID,
                   status: str = "active", is_enabled: bool = True) -> None:
    conn.execute(
        """INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status, is_enabled, config)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (site_id, module_id) DO UPDATE SET status = EXCLUDED.status, is_enabled = EXCLUDED.is_enabled""",
        (site_id, module_id, agency_id, status, is_enabled, Jsonb({})))


def make_crm(conn: psycopg.Connection, make_module, *tenants, manifest: dict[str, Any] | None = None,
             slug: str | None = None) -> tuple[uuid.UUID, str]:
    """A CRM-like app module, installed on each tenant's site and provisioned by the real provisioner;
    the installations are active and enabled when it returns."""
    manifest = manifest or CRM_MANIFEST
    module_id = make_module(module_id=uuid.uuid4(), manifest=manifest, slug=slug, module_type="app")
    slug = conn.execute("SELECT slug FROM modules_v2 WHERE id = %s", (module_id,)).fetchone()["slug"]
    for t in tenants:
        install_module(conn, site_id=t.site_id, agency_id=t.agency_id, module_id=module_id, status="provisioning")
    result = provisioner.provision_module(module_id)
    assert (result.action, result.activated) == ("created", len(tenants)), result
    return module_id, slug
