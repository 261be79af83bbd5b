"""The reliability suite's shared pieces: hypothesis settings sized for ``make test``, and a "world"
of two agencies, each with real resources of every kind the HTTP API serves (sites, subscriptions, a
sandbox checkout, installations, module rows, workflows, executions, incoming webhooks, site API keys).

Profiles: ``DRAMAC_RELIABILITY_PROFILE`` = ``ci`` (default, a few minutes for the whole suite on two
cores) or ``deep`` (ten times the examples, for a night run). Deadlines are off: a handler's latency
is the benchmark suite's business, not a property.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings

_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
           HealthCheck.filter_too_much]
settings.register_profile("reliability-ci", max_examples=60, deadline=None, suppress_health_check=_HEALTH,
                          database=None, derandomize=False)
settings.register_profile("reliability-deep", max_examples=600, deadline=None, suppress_health_check=_HEALTH,
                          database=None)


def reliability_settings(scale: float = 1.0) -> settings:
    """Settings for one property: the selected profile, its example count scaled for this property."""
    profile = settings.get_profile("reliability-" + os.environ.get("DRAMAC_RELIABILITY_PROFILE", "ci"))
    return settings(profile, max_examples=max(1, int(profile.max_examples * scale)))


@dataclass
class Agency:
    """One tenant of the world and the ids of everything it owns."""

    agency_id: uuid.UUID
    owner: uuid.UUID
    admin: uuid.UUID
    member: uuid.UUID
    site_id: uuid.UUID
    client_user: uuid.UUID  # a client user of the site's client (docs/roles.md)
    ids: dict[str, list[uuid.UUID]] = field(default_factory=dict)  # path parameter name -> real ids
    secrets: list[str] = field(default_factory=list)  # values only this agency's data holds

    @property
    def users(self) -> list[uuid.UUID]:
        return [self.owner, self.admin, self.member, self.client_user]

    def all_ids(self) -> set[str]:
        found = {str(self.agency_id), str(self.site_id), *map(str, self.users)}
        for name, values in self.ids.items():
            if name != "moduleId":  # the catalogue is shared by every agency
                found.update(str(v) for v in values)
        return found


@dataclass
class World:
    a: Agency
    b: Agency
    crm_module: uuid.UUID
    crm_slug: str
    free_module: uuid.UUID
    paid_module: uuid.UUID


def _build_agency(tenant: Any, owner_conn: Any, world_modules: dict[str, Any], label: str,
                  receiver_url: str) -> Agency:
    from support.handlers import FunctionClient

    agency = Agency(tenant.agency_id, tenant.owner, tenant.admin, tenant.member, tenant.site_id, tenant.client_user)
    site, owner = tenant.site_id, tenant.owner
    secret = f"secret-{label}-{uuid.uuid4().hex[:10]}"
    agency.secrets.append(secret)

    subscribe, purchase = FunctionClient("subscribe"), FunctionClient("purchase")
    install, module_api, automation = FunctionClient("install"), FunctionClient("module_api"), FunctionClient("automation")

    sub = subscribe.post("/api/modules/subscribe", user=owner,
                         body={"agencyId": str(tenant.agency_id), "moduleId": str(world_modules["free"])})
    assert sub.status in (200, 201), sub.body
    bought = purchase.post(f"/api/modules/{world_modules['paid']}/purchase", user=owner,
                           body={"agencyId": str(tenant.agency_id), "billingCycle": "monthly"})
    assert bought.status == 201, bought.body
    installed = install.post(f"/api/sites/{site}/modules/{world_modules['free']}", user=owner, body={})
    assert installed.status in (200, 201, 202), installed.body

    workflow = automation.post(f"/api/sites/{site}/automation/workflows", user=owner, body={
        "name": secret, "triggerEventType": f"{world_modules['crm_slug']}.contact.created",
        "steps": [{"type": "set_variable", "config": {"name": "seen", "value": "{{event.payload.email}}"}}]})
    assert workflow.status == 201, workflow.body
    rows = module_api.post(f"/api/sites/{site}/modules/{world_modules['crm_slug']}/data/contacts", user=owner,
                           body=[{"email": f"{secret}-{i}@example.test", "first_name": secret} for i in range(3)])
    assert rows.status == 201, rows.body
    key = module_api.post(f"/api/sites/{site}/api-keys", user=owner, body={"name": secret})
    assert key.status == 201, key.body
    agency.secrets.append(key.data["key"])

    webhook = automation.post(f"/api/sites/{site}/automation/webhooks", user=owner, body={"name": secret})
    assert webhook.status == 201, webhook.body

    subscription_ids = [r["id"] for r in owner_conn.execute(
        "SELECT id FROM agency_module_subscriptions WHERE agency_id = %s", (tenant.agency_id,)).fetchall()]
    checkout_ids = [r["id"] for r in owner_conn.execute(
        "SELECT id FROM payment_checkouts WHERE agency_id = %s", (tenant.agency_id,)).fetchall()]
    agency.secrets += [str(webhook.data[k]) for k in ("token", "url") if webhook.data.get(k)]
    agency.ids = {
        "agencyId": [tenant.agency_id],
        "siteId": [site],
        "moduleId": [world_modules["free"], world_modules["paid"], world_modules["crm"]],
        "subscriptionId": subscription_ids,
        "checkoutId": checkout_ids,
        "workflowId": [uuid.UUID(workflow.data["id"])],
        "webhookId": [uuid.UUID(webhook.data["id"])],
        "keyId": [uuid.UUID(key.data["id"])],
        "id": [uuid.UUID(r["id"]) for r in rows.data],
        "executionId": [],
    }
    return agency


def build_world(owner_conn: Any, make_module: Any, make_tenant: Any, aws: Any, receiver: Any) -> World:
    """Two agencies A and B on a shared catalogue, each with one of every resource; the execution ids
    come from real events (the contact rows' ``created`` events) run through the event processor."""
    import copy

    from support.modules import CRM_MANIFEST, make_crm

    free = make_module(pricing_type="free")
    paid = make_module(pricing_type="monthly", wholesale_price_cents=1500)
    ta, tb = make_tenant(), make_tenant()
    # text columns under indexes: a value too large for an index entry is a case to fuzz
    manifest = copy.deepcopy(CRM_MANIFEST)
    manifest["database"]["tables"][1]["indexes"] += [{"columns": ["email"]}, {"columns": ["first_name", "status"]}]
    crm, slug = make_crm(owner_conn, make_module, ta, tb, manifest=manifest)
    modules = {"free": free, "paid": paid, "crm": crm, "crm_slug": slug}
    a = _build_agency(ta, owner_conn, modules, "a", receiver.url)
    b = _build_agency(tb, owner_conn, modules, "b", receiver.url)
    aws.drain()
    for agency in (a, b):
        agency.ids["executionId"] = [r["id"] for r in owner_conn.execute(
            "SELECT id FROM workflow_executions WHERE site_id = %s", (agency.site_id,)).fetchall()]
        assert agency.ids["executionId"], "the world's contact rows should have started the workflow"
    return World(a, b, crm, slug, free, paid)


TENANT_TABLES = {
    # table -> the column naming its tenant (agency or site)
    "agencies": ("id", "agency"),
    "agency_members": ("agency_id", "agency"),
    "client_users": ("agency_id", "agency"),
    "clients": ("agency_id", "agency"),
    "sites": ("agency_id", "agency"),
    "agency_module_subscriptions": ("agency_id", "agency"),
    "payment_checkouts": ("agency_id", "agency"),
    "site_module_installations": ("site_id", "site"),
    "automation_events_log": ("site_id", "site"),
    "automation_workflows": ("site_id", "site"),
    "workflow_executions": ("site_id", "site"),
    "automation_webhooks": ("site_id", "site"),
    "site_api_keys": ("site_id", "site"),
    "module_data": ("site_id", "site"),
}


def tenant_snapshot(owner_conn: Any, agency: Agency, crm_module: uuid.UUID) -> dict[str, str]:
    """A digest of every row the agency owns, per table (module rows included)."""
    from dramac_common.core.naming import get_module_schema_name
    from psycopg import sql

    parts = []
    for table, (column, kind) in TENANT_TABLES.items():
        value = agency.agency_id if kind == "agency" else agency.site_id
        parts.append(sql.SQL("SELECT {} AS t, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS d "
                             "FROM public.{} x WHERE {} = {}").format(
            sql.Literal(table), sql.Identifier(table), sql.Identifier(column), sql.Literal(str(value))))
    for table in ("contacts", "companies", "deal_notes"):
        parts.append(sql.SQL("SELECT {} AS t, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS d "
                             "FROM {} x WHERE site_id = {}").format(
            sql.Literal(table), sql.Identifier(get_module_schema_name(crm_module), table),
            sql.Literal(str(agency.site_id))))
    rows = owner_conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
    return {r["t"]: r["d"] for r in rows}


def schema_shape(owner_conn: Any, schema: str) -> dict[str, list[Any]]:
    """What a module schema consists of, with its name and its module's id (which the policies name)
    factored out: relations, columns, indexes, policies, triggers and grants. Two provisioning runs of
    one manifest must give equal shapes."""
    module_id = re.compile(schema.removeprefix("mod_") + r"-[0-9a-f-]{27}")

    def rows(query: str) -> list[Any]:
        return sorted(tuple(module_id.sub("<module>", str(v).replace(schema, "<schema>")) for v in r.values())
                      for r in owner_conn.execute(query, (schema,)).fetchall())

    return {
        "relations": rows("SELECT c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
                          "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"),
        "columns": rows("SELECT table_name, column_name, data_type, is_nullable, column_default "
                        "FROM information_schema.columns WHERE table_schema = %s"),
        "indexes": rows("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s"),
        "policies": rows("SELECT tablename, policyname, cmd, qual, with_check FROM pg_policies WHERE schemaname = %s"),
        "triggers": rows("SELECT event_object_table, trigger_name, event_manipulation FROM information_schema.triggers "
                         "WHERE trigger_schema = %s"),
        "grants": rows("SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants "
                       "WHERE table_schema = %s"),
    }
