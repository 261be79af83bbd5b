"""Platform records for the local stack and the tests: users, agencies, clients, sites, modules.

``seed_demo`` writes a fixed, documented set (the README's curl examples and every sample event in
``events/`` use these ids); the ``create_*`` helpers write one record each. They run as the table
owner, like an operator would.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

DEMO_USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEMO_MEMBER_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
DEMO_SUPER_ADMIN_ID = uuid.UUID("00000000-0000-4000-8000-0000000000ad")  # the platform's operator
DEMO_AGENCY_ID = uuid.UUID("00000000-0000-4000-8000-00000000a001")
DEMO_CLIENT_ID = uuid.UUID("00000000-0000-4000-8000-00000000c001")
DEMO_SITE_ID = uuid.UUID("00000000-0000-4000-8000-00000000e001")
DEMO_FREE_MODULE_ID = uuid.UUID("3f2a9c1e-0000-4000-8000-000000000f01")
DEMO_PAID_MODULE_ID = uuid.UUID("7b41d0aa-0000-4000-8000-000000000f02")
DEMO_WIDGET_MODULE_ID = uuid.UUID("c0ffee01-0000-4000-8000-000000000f03")
# What the sample events act on: crm installed (and provisioned) and contact-form installed on the demo
# site, one contact, a pending purchase of booking (the Paddle webhook sample completes it), a workflow,
# an incoming webhook, widget storage, and two site API keys.
DEMO_CONTACT_ID = uuid.UUID("00000000-0000-4000-8000-0000000c0001")
DEMO_PENDING_SUBSCRIPTION_ID = uuid.UUID("00000000-0000-4000-8000-0000000005b1")
DEMO_CHECKOUT_ID = uuid.UUID("00000000-0000-4000-8000-0000000005c1")
DEMO_TRANSACTION_ID = "txn_sample_0001"  # the Paddle transaction of the demo checkout
DEMO_WORKFLOW_ID = uuid.UUID("00000000-0000-4000-8000-0000000b0001")
DEMO_WEBHOOK_ID = uuid.UUID("00000000-0000-4000-8000-0000000b0002")
DEMO_API_KEY_ID = uuid.UUID("00000000-0000-4000-8000-0000000a0001")
DEMO_OLD_API_KEY_ID = uuid.UUID("00000000-0000-4000-8000-0000000a0002")  # the one revoke_api_key revokes
DEMO_WIDGET_STORAGE = {"title": "Contact us"}
# Documented credentials of the demo site. Anyone who reads this file knows them, so they are written
# only to a database on this machine (``is_local_database``); the deployed code never seeds.
DEMO_API_KEY = f"dk_live_{DEMO_API_KEY_ID.hex}_local-demo-key-for-dramac-dev-only-00000001"
DEMO_WEBHOOK_TOKEN = "local-demo-webhook-token-for-dramac-dev-only"  # noqa: S105 - documented local value

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


def create_user(conn: psycopg.Connection[Any], *, user_id: uuid.UUID | None = None, email: str | None = None,
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


def create_agency(conn: psycopg.Connection[Any], *, owner: uuid.UUID | None = None, name: str = "Agency",
                  agency_id: uuid.UUID | None = None) -> uuid.UUID:
    agency_id = agency_id or uuid.uuid4()
    conn.execute("INSERT INTO public.agencies (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                 (agency_id, name))
    if owner:
        add_member(conn, agency_id, owner, "owner")
    return agency_id


def add_member(conn: psycopg.Connection[Any], agency_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    conn.execute(
        """INSERT INTO public.agency_members (agency_id, user_id, role) VALUES (%s, %s, %s)
           ON CONFLICT (agency_id, user_id) DO UPDATE SET role = EXCLUDED.role""",
        (agency_id, user_id, role),
    )


def add_client_user(conn: psycopg.Connection[Any], agency_id: uuid.UUID, client_id: uuid.UUID,
                    user_id: uuid.UUID) -> None:
    """A client user of one client of the agency (docs/roles.md): it sees that client's sites only."""
    conn.execute(
        """INSERT INTO public.client_users (agency_id, client_id, user_id) VALUES (%s, %s, %s)
           ON CONFLICT (agency_id, user_id) DO UPDATE SET client_id = EXCLUDED.client_id""",
        (agency_id, client_id, user_id),
    )


def create_client(conn: psycopg.Connection[Any], agency_id: uuid.UUID, *, name: str = "Client",
                  client_id: uuid.UUID | None = None) -> uuid.UUID:
    client_id = client_id or uuid.uuid4()
    conn.execute("INSERT INTO public.clients (id, agency_id, name) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                 (client_id, agency_id, name))
    return client_id


def create_site(conn: psycopg.Connection[Any], agency_id: uuid.UUID, *, client_id: uuid.UUID | None = None,
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


def create_module(conn: psycopg.Connection[Any], *, module_id: uuid.UUID | None = None, slug: str | None = None,
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


def is_local_database(conninfo: str) -> bool:
    """True when every host of the connection string is this machine (a Unix socket or loopback)."""
    params = conninfo_to_dict(conninfo)
    hosts = [h for key in ("host", "hostaddr") for h in str(params.get(key) or "").split(",") if h]
    for host in hosts or [""]:
        if host.startswith(("/", "@")) or host in ("", "localhost"):
            continue
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            return False
    return True


def seed_demo(conninfo: str, *, documented_credentials: bool | None = None) -> dict[str, str]:
    """Idempotently write the demo records the README and the sample events use; returns their ids.

    It creates what is missing and leaves what exists as it is (a contact a sample deleted comes
    back; an installation a sample disabled stays disabled until installed again). The documented
    API key and webhook token are written only to a database on this machine (by default; an
    unguessable key and token take their place elsewhere)."""
    local = is_local_database(conninfo) if documented_credentials is None else documented_credentials
    with psycopg.connect(conninfo, autocommit=False, row_factory=dict_row) as conn:
        create_user(conn, user_id=DEMO_USER_ID, email="owner@demo.test", full_name="Demo Owner")
        create_user(conn, user_id=DEMO_MEMBER_ID, email="member@demo.test", full_name="Demo Member")
        create_user(conn, user_id=DEMO_SUPER_ADMIN_ID, email="admin@demo.test", full_name="Demo Super Admin",
                    super_admin=True)
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
        for module_id in (DEMO_FREE_MODULE_ID, DEMO_WIDGET_MODULE_ID):
            subscribe_free(conn, DEMO_AGENCY_ID, module_id)
            install(conn, DEMO_SITE_ID, module_id, agency_id=DEMO_AGENCY_ID, installed_by=DEMO_USER_ID)
        _pending_purchase(conn)
        _demo_automation(conn, local)
        _demo_api_keys(conn, local)
        conn.execute(
            """INSERT INTO public.module_data (module_id, site_id, key, value)
               SELECT %s, %s, key, value FROM jsonb_each(%s) ON CONFLICT (module_id, site_id, key) DO NOTHING""",
            (DEMO_WIDGET_MODULE_ID, DEMO_SITE_ID, Jsonb(DEMO_WIDGET_STORAGE)))
        conn.commit()
    # The provisioner itself creates the CRM's schema (or upgrades it to the seeded manifest) and
    # activates the installations waiting for it, exactly as the provision queue's consumer would.
    with _shared_layer_database(conninfo):
        from dramac_common.provisioning.provisioner import provision_module

        for module_id in (DEMO_FREE_MODULE_ID, DEMO_WIDGET_MODULE_ID):
            provision_module(module_id)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        _demo_contact(conn)
    ids = {
        "user": str(DEMO_USER_ID), "member": str(DEMO_MEMBER_ID), "super_admin": str(DEMO_SUPER_ADMIN_ID),
        "agency": str(DEMO_AGENCY_ID),
        "client": str(DEMO_CLIENT_ID), "site": str(DEMO_SITE_ID), "free_module": str(DEMO_FREE_MODULE_ID),
        "paid_module": str(DEMO_PAID_MODULE_ID), "widget_module": str(DEMO_WIDGET_MODULE_ID),
        "contact": str(DEMO_CONTACT_ID), "pending_subscription": str(DEMO_PENDING_SUBSCRIPTION_ID),
        "workflow": str(DEMO_WORKFLOW_ID), "webhook": str(DEMO_WEBHOOK_ID), "api_key_id": str(DEMO_API_KEY_ID),
    }
    if local:
        ids |= {"api_key": DEMO_API_KEY, "webhook_path": f"/api/webhooks/automation/{DEMO_WEBHOOK_TOKEN}"}
    return ids


def unseeded(conninfo: str) -> bool:
    """True unless the database holds the records ``seed_demo`` writes and no sample removes (the
    agency, its installations, subscriptions and API keys)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            """SELECT EXISTS (SELECT 1 FROM public.agencies WHERE id = %(agency)s)
                  AND (SELECT count(*) FROM public.site_module_installations
                       WHERE site_id = %(site)s AND module_id = ANY(%(installed)s)) = 2
                  AND EXISTS (SELECT 1 FROM public.agency_module_subscriptions
                              WHERE agency_id = %(agency)s AND module_id = %(paid)s)
                  AND EXISTS (SELECT 1 FROM public.site_api_keys WHERE id = %(old_key)s)""",
            {"agency": DEMO_AGENCY_ID, "site": DEMO_SITE_ID, "paid": DEMO_PAID_MODULE_ID,
             "installed": [DEMO_FREE_MODULE_ID, DEMO_WIDGET_MODULE_ID], "old_key": DEMO_OLD_API_KEY_ID},
        ).fetchone()
    return row is None or not row[0]


def reset_demo(conninfo: str) -> None:
    """Remove the demo agency and everything of it (sites, installations and their module rows,
    subscriptions, keys, workflows, events), and the Paddle events the samples sent for it, so that
    ``seed_demo`` writes the documented state again. Users and modules stay (they are re-used)."""
    with psycopg.connect(conninfo, autocommit=False) as conn:
        conn.execute(
            """DELETE FROM public.payment_events
               WHERE payload -> 'data' -> 'custom_data' ->> 'agency_id' = %(agency)s::text
                  OR subscription_id IN (SELECT id FROM public.agency_module_subscriptions WHERE agency_id = %(agency)s)""",
            {"agency": DEMO_AGENCY_ID})
        conn.execute("DELETE FROM public.agencies WHERE id = %s", (DEMO_AGENCY_ID,))
        conn.commit()


def subscribe_free(conn: psycopg.Connection[Any], agency_id: uuid.UUID, module_id: uuid.UUID) -> None:
    """An active free subscription (an operator's shortcut for POST /api/modules/subscribe)."""
    conn.execute(
        """INSERT INTO public.agency_module_subscriptions (agency_id, module_id, status, billing_cycle, activated_at)
           VALUES (%s, %s, 'active', 'free', now()) ON CONFLICT (agency_id, module_id) DO NOTHING""",
        (agency_id, module_id))


def install(conn: psycopg.Connection[Any], site_id: uuid.UUID, module_id: uuid.UUID, *, agency_id: uuid.UUID,
            installed_by: uuid.UUID | None = None) -> None:
    """An installation waiting for the provisioner (``provision_module`` activates it)."""
    conn.execute(
        """INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status, installed_by)
           VALUES (%s, %s, %s, 'provisioning', %s) ON CONFLICT (site_id, module_id) DO NOTHING""",
        (site_id, module_id, agency_id, installed_by))


def _pending_purchase(conn: psycopg.Connection[Any]) -> None:
    """Booking bought with a 20 % markup and not yet paid: what ``purchase_paid.json`` leaves behind,
    with the subscription, checkout and transaction the Paddle webhook sample names (the webhook
    activates only a payment that matches its checkout: transaction, amount and currency)."""
    conn.execute(
        """INSERT INTO public.agency_module_subscriptions (id, agency_id, module_id, status, billing_cycle,
             wholesale_price_cents, markup_type, markup_value, retail_price_cents, currency, payment_provider)
           VALUES (%s, %s, %s, 'pending', 'monthly', 1999, 'percentage', 20, 2399, 'USD', 'sandbox')
           ON CONFLICT DO NOTHING""",
        (DEMO_PENDING_SUBSCRIPTION_ID, DEMO_AGENCY_ID, DEMO_PAID_MODULE_ID))
    conn.execute(
        """INSERT INTO public.payment_checkouts (id, agency_id, subscription_id, module_id, provider,
             provider_checkout_id, amount_cents, currency, billing_cycle, created_by)
           SELECT %s, %s, %s, %s, 'sandbox', %s, 1999, 'USD', 'monthly', %s
           WHERE NOT EXISTS (SELECT 1 FROM public.payment_checkouts WHERE subscription_id = %s)
           ON CONFLICT DO NOTHING""",
        (DEMO_CHECKOUT_ID, DEMO_AGENCY_ID, DEMO_PENDING_SUBSCRIPTION_ID, DEMO_PAID_MODULE_ID, DEMO_TRANSACTION_ID,
         DEMO_USER_ID, DEMO_PENDING_SUBSCRIPTION_ID))


def _demo_automation(conn: psycopg.Connection[Any], local: bool) -> None:
    """A workflow qualifying hot leads, and an incoming webhook (its token is documented: local only)."""
    from dramac_common.automation import dal
    from dramac_common.automation.workflows import (
        WEBHOOK_EVENT,
        StepInput,
        hash_token,
        validated_steps,
    )
    from dramac_common.core.db import Unit

    unit = Unit(conn, None)
    if not dal.workflow_exists(unit, DEMO_SITE_ID, DEMO_WORKFLOW_ID):
        # the steps are validated as the demo owner would save them (the record step's module must be
        # installed on a site the owner can see), in this transaction only
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(DEMO_USER_ID)}),))
        steps = validated_steps(unit, DEMO_SITE_ID, [
            StepInput(type="condition", config={"field": "event.payload.lead_score", "operator": "gte",
                                                "value": 50}),
            StepInput(type="update_record", config={"module": "crm", "table": "contacts",
                                                    "id": "{{event.payload.id}}", "values": {"status": "qualified"}}),
        ])
        dal.insert_workflow(unit, site_id=DEMO_SITE_ID, name="Qualify hot leads",
                            description="Marks a new contact with lead_score >= 50 as qualified", is_active=True,
                            created_by=DEMO_USER_ID, event_type="crm.contact.created", filter_={}, steps=steps,
                            workflow_id=DEMO_WORKFLOW_ID)
    exists = conn.execute("SELECT 1 FROM public.automation_webhooks WHERE id = %s", (DEMO_WEBHOOK_ID,)).fetchone()
    if not exists:
        token = DEMO_WEBHOOK_TOKEN if local else secrets.token_urlsafe(32)
        dal.insert_webhook(unit, site_id=DEMO_SITE_ID, name="Demo shop orders", event_type=WEBHOOK_EVENT,
                           workflow_id=None, token_hash=hash_token(token), webhook_id=DEMO_WEBHOOK_ID)


def _demo_api_keys(conn: psycopg.Connection[Any], local: bool) -> None:
    """The documented key (local databases only) and a second key for the revoke sample."""
    from dramac_common.core.auth import hash_key, key_prefix, new_key

    keys = [(DEMO_OLD_API_KEY_ID, "Old integration", new_key(DEMO_OLD_API_KEY_ID))]
    if local:
        keys.append((DEMO_API_KEY_ID, "Website form (demo key)", DEMO_API_KEY))
    for key_id, name, key in keys:
        conn.execute(
            """INSERT INTO public.site_api_keys (id, site_id, agency_id, name, key_prefix, secret_hash, created_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
            (key_id, DEMO_SITE_ID, DEMO_AGENCY_ID, name, key_prefix(key_id), hash_key(key), DEMO_USER_ID))


def _demo_contact(conn: psycopg.Connection[Any]) -> None:
    from dramac_common.core.naming import module_table_identifier

    conn.execute(
        sql.SQL("""INSERT INTO {} (id, site_id, email, first_name, last_name, lead_score)
                   VALUES (%s, %s, 'ada@example.com', 'Ada', 'Lovelace', 70) ON CONFLICT (id) DO NOTHING""")
        .format(module_table_identifier(DEMO_FREE_MODULE_ID, "contacts")),
        (DEMO_CONTACT_ID, DEMO_SITE_ID))


@contextmanager
def _shared_layer_database(conninfo: str) -> Iterator[None]:
    """The shared layer's pool on ``conninfo`` for the duration (it reads ``DATABASE_URL``)."""
    from dramac_common.core import db
    from dramac_common.core.settings import reset_settings

    previous = os.environ.get("DATABASE_URL")
    if previous == conninfo:
        yield
        return
    db.close_pool()
    os.environ["DATABASE_URL"] = conninfo
    reset_settings()
    try:
        yield
    finally:
        db.close_pool()
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        reset_settings()
