"""Platform records for the local stack and the tests: users, agencies, clients, sites, modules.

``seed_demo`` writes a fixed, documented set (the README's curl examples use these ids); the
``create_*`` helpers write one record each. They run as the table owner, like an operator would.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

DEMO_USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEMO_MEMBER_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
DEMO_AGENCY_ID = uuid.UUID("00000000-0000-4000-8000-00000000a001")
DEMO_CLIENT_ID = uuid.UUID("00000000-0000-4000-8000-00000000c001")
DEMO_SITE_ID = uuid.UUID("00000000-0000-4000-8000-00000000e001")
DEMO_FREE_MODULE_ID = uuid.UUID("3f2a9c1e-0000-4000-8000-000000000f01")
DEMO_PAID_MODULE_ID = uuid.UUID("7b41d0aa-0000-4000-8000-000000000f02")
DEMO_WIDGET_MODULE_ID = uuid.UUID("c0ffee01-0000-4000-8000-000000000f03")

CRM_MANIFEST: dict[str, Any] = {
    "version": "1.0.0",
    "dependencies": [],
    "permissions": [],
    "events": ["contact.created", "contact.updated", "contact.deleted"],
    "database": {
        "tables": [
            {
                "name": "companies",
                "entity": "company",
                "columns": [
                    {"name": "name", "type": "text", "nullable": False},
                    {"name": "domain", "type": "text"},
                ],
                "indexes": [{"columns": ["domain"], "unique": False}],
            },
            {
                "name": "contacts",
                "entity": "contact",
                "columns": [
                    {"name": "email", "type": "text", "nullable": False},
                    {"name": "first_name", "type": "text"},
                    {"name": "last_name", "type": "text"},
                    {"name": "status", "type": "text", "default": "'lead'"},
                    {"name": "lead_score", "type": "integer", "default": "0", "check": "lead_score >= 0"},
                    {"name": "company_id", "type": "uuid"},
                ],
                "indexes": [{"columns": ["email"], "unique": False}],
                "foreignKeys": [
                    {"column": "company_id", "references": {"table": "companies", "column": "id"},
                     "onDelete": "SET NULL"}
                ],
            },
        ]
    },
}


def create_user(conn: psycopg.Connection, *, user_id: uuid.UUID | None = None, email: str | None = None,
                full_name: str | None = None, super_admin: bool = False) -> uuid.UUID:
    user_id = user_id or uuid.uuid4()
    email = email or f"{user_id.hex[:12]}@example.test"
    conn.execute("INSERT INTO auth.users (id, email) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING", (user_id, email))
    conn.execute(
        """INSERT INTO public.profiles (id, email, full_name, is_super_admin) VALUES (%s, %s, %s, %s)
           ON CONFLICT (id) DO NOTHING""",
        (user_id, email, full_name or email.split("@")[0], super_admin),
    )
    return user_id


def create_agency(conn: psycopg.Connection, *, owner: uuid.UUID | None = None, name: str = "Agency",
                  agency_id: uuid.UUID | None = None) -> uuid.UUID:
    agency_id = agency_id or uuid.uuid4()
    conn.execute("INSERT INTO public.agencies (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                 (agency_id, name))
    if owner:
        add_member(conn, agency_id, owner, "owner")
    return agency_id


def add_member(conn: psycopg.Connection, agency_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    conn.execute(
        """INSERT INTO public.agency_members (agency_id, user_id, role) VALUES (%s, %s, %s)
           ON CONFLICT (agency_id, user_id) DO UPDATE SET role = EXCLUDED.role""",
        (agency_id, user_id, role),
    )


def create_client(conn: psycopg.Connection, agency_id: uuid.UUID, *, name: str = "Client",
                  client_id: uuid.UUID | None = None) -> uuid.UUID:
    client_id = client_id or uuid.uuid4()
    conn.execute("INSERT INTO public.clients (id, agency_id, name) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                 (client_id, agency_id, name))
    return client_id


def create_site(conn: psycopg.Connection, agency_id: uuid.UUID, *, client_id: uuid.UUID | None = None,
                name: str = "Site", subdomain: str | None = None, custom_domain: str | None = None,
                site_id: uuid.UUID | None = None) -> uuid.UUID:
    site_id = site_id or uuid.uuid4()
    client_id = client_id or create_client(conn, agency_id)
    conn.execute(
        """INSERT INTO public.sites (id, agency_id, client_id, name, subdomain, custom_domain)
           VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
        (site_id, agency_id, client_id, name, subdomain or f"s{site_id.hex[:12]}", custom_domain),
    )
    return site_id


def create_module(conn: psycopg.Connection, *, module_id: uuid.UUID | None = None, slug: str | None = None,
                  name: str | None = None, module_type: str = "app", status: str = "published",
                  pricing_type: str = "free", wholesale_price_cents: int = 0, currency: str = "USD",
                  manifest: dict[str, Any] | None = None, description: str = "") -> uuid.UUID:
    module_id = module_id or uuid.uuid4()
    slug = slug or f"m{module_id.hex[:12]}"
    conn.execute(
        """INSERT INTO public.modules_v2 (id, slug, name, description, module_type, status, pricing_type,
                                          wholesale_price_cents, currency, manifest)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (id) DO UPDATE SET manifest = EXCLUDED.manifest, status = EXCLUDED.status""",
        (module_id, slug, name or slug, description, module_type, status, pricing_type, wholesale_price_cents,
         currency, json.dumps(manifest or {"version": "1.0.0"})),
    )
    return module_id


def seed_demo(conninfo: str) -> dict[str, str]:
    """Idempotently write the demo records the README uses; returns their ids."""
    with psycopg.connect(conninfo, autocommit=False) as conn:
        create_user(conn, user_id=DEMO_USER_ID, email="owner@demo.test", full_name="Demo Owner")
        create_user(conn, user_id=DEMO_MEMBER_ID, email="member@demo.test", full_name="Demo Member")
        create_agency(conn, agency_id=DEMO_AGENCY_ID, name="Demo Agency", owner=DEMO_USER_ID)
        add_member(conn, DEMO_AGENCY_ID, DEMO_MEMBER_ID, "member")
        create_client(conn, DEMO_AGENCY_ID, client_id=DEMO_CLIENT_ID, name="Demo Client")
        create_site(conn, DEMO_AGENCY_ID, client_id=DEMO_CLIENT_ID, site_id=DEMO_SITE_ID, name="Demo Site",
                    subdomain="demo")
        create_module(conn, module_id=DEMO_FREE_MODULE_ID, slug="crm", name="CRM", module_type="app",
                      description="Contacts, companies and deals", manifest=CRM_MANIFEST)
        create_module(conn, module_id=DEMO_PAID_MODULE_ID, slug="booking", name="Booking", module_type="app",
                      pricing_type="monthly", wholesale_price_cents=1999,
                      description="Appointments and calendars",
                      manifest={"version": "1.0.0", "dependencies": [], "permissions": []})
        create_module(conn, module_id=DEMO_WIDGET_MODULE_ID, slug="contact-form", name="Contact form",
                      module_type="widget", description="A contact form widget",
                      manifest={"version": "1.0.0", "dependencies": [], "permissions": []})
        conn.commit()
    return {
        "user": str(DEMO_USER_ID), "member": str(DEMO_MEMBER_ID), "agency": str(DEMO_AGENCY_ID),
        "client": str(DEMO_CLIENT_ID), "site": str(DEMO_SITE_ID), "free_module": str(DEMO_FREE_MODULE_ID),
        "paid_module": str(DEMO_PAID_MODULE_ID), "widget_module": str(DEMO_WIDGET_MODULE_ID),
    }
