"""Writes every sample event in ``events/<function>/`` (run from the repository root:
``.venv/bin/python events/generate.py``; ``--check`` only reports samples that differ from what it
would write).

Events are built with ``dramac_dev.events`` (the shapes AWS sends: API Gateway HTTP API payload v2,
SQS, EventBridge, CloudFront viewer-request) around the demo records ``dramac seed`` writes
(``dramac_dev/seed.py``), with fixed request ids and times so the files do not change between runs.
How a sample's name says what it must answer is in ``events/README.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dramac_common.core.settings import SANDBOX_WEBHOOK_SECRET
from dramac_common.payments.signature import sign

from dramac_dev import seed
from dramac_dev.edge import viewer_request_event
from dramac_dev.events import http_event, sqs_event, sqs_record

ROOT = Path(__file__).resolve().parent
FIXED_EPOCH = 1700000000  # 2023-11-14T22:13:20Z
OWNER, MEMBER, SUPER_ADMIN = seed.DEMO_USER_ID, seed.DEMO_MEMBER_ID, seed.DEMO_SUPER_ADMIN_ID
AGENCY, SITE = seed.DEMO_AGENCY_ID, seed.DEMO_SITE_ID
CRM, BOOKING, WIDGET = seed.DEMO_FREE_MODULE_ID, seed.DEMO_PAID_MODULE_ID, seed.DEMO_WIDGET_MODULE_ID
MISSING = "00000000-0000-4000-8000-00000000dead"  # an id nothing has
SITE_API = f"/api/sites/{SITE}"
AUTOMATION = f"{SITE_API}/automation"
CONTACTS = f"{SITE_API}/modules/crm/data/contacts"
STORAGE = f"{SITE_API}/modules/contact-form/storage"


def claims(user) -> dict[str, Any]:
    return {"sub": str(user), "aud": "authenticated", "iss": "dramac-local", "role": "authenticated",
            "iat": FIXED_EPOCH, "exp": 4102444800}


def http(name: str, method: str, path: str, *, user=OWNER, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """An API Gateway v2 event as the JWT authorizer passes it on (``user=None``: no bearer)."""
    event = http_event(method, path, claims=claims(user) if user else None, request_id=f"sample-{name}", **kwargs)
    event["requestContext"]["time"] = "14/Nov/2023:22:13:20 +0000"
    event["requestContext"]["timeEpoch"] = FIXED_EPOCH * 1000
    return name, event


def sqs(queue: str, *messages: tuple[str, str], receive_count: int = 1) -> dict[str, Any]:
    """An SQS event of (message id, body) records from ``dramac-<queue>``."""
    records = []
    for message_id, body in messages:
        record = sqs_record(body, queue_arn=f"arn:aws:sqs:us-east-1:000000000000:dramac-{queue}",
                            message_id=message_id, receive_count=receive_count)
        record["attributes"]["SentTimestamp"] = str(FIXED_EPOCH * 1000)
        record["attributes"]["ApproximateFirstReceiveTimestamp"] = str(FIXED_EPOCH * 1000)
        records.append(record)
    return sqs_event(records)


def paddle_webhook(name: str, *, signature: str | None = None, resign: bool = False) -> tuple[str, dict[str, Any]]:
    """Paddle's ``transaction.completed`` for the demo's pending booking purchase, signed with the local
    sandbox secret at the fixed time (so it is reproducible and, as Paddle's own, expires after 300 s)."""
    body = json.dumps({
        "event_id": "evt_sample_0001", "event_type": "transaction.completed",
        "occurred_at": "2023-11-14T22:13:20.000000Z", "notification_id": "ntf_sample_0001",
        "data": {"id": seed.DEMO_TRANSACTION_ID, "status": "completed", "currency_code": "USD",
                 "subscription_id": "sub_sample_0001",
                 "details": {"totals": {"subtotal": "1999", "tax": "0", "discount": "0", "total": "1999",
                                        "grand_total": "1999"}},
                 "custom_data": {"subscription_id": str(seed.DEMO_PENDING_SUBSCRIPTION_ID), "agency_id": str(AGENCY),
                                 "module_id": str(BOOKING), "checkout_id": str(seed.DEMO_CHECKOUT_ID)}},
    }, separators=(",", ":"))
    header = signature or sign(SANDBOX_WEBHOOK_SECRET, body.encode("utf-8"), ts=FIXED_EPOCH)
    _, event = http(name, "POST", "/api/webhooks/paddle", user=None, raw_body=body,
                    headers={"content-type": "application/json", "paddle-signature": header})
    if resign:
        # not part of what AWS sends: `dramac invoke` signs the body again with the local secret at
        # the current time (Paddle's 300 s tolerance would refuse this fixed 2023 signature)
        event["dramacInvoke"] = {"signPaddleWebhook": True}
    return name, event


SUBSCRIBE = [
    http("health", "GET", "/api/health", user=None),
    http("list_modules", "GET", "/api/modules"),
    http("subscribe_free", "POST", "/api/modules/subscribe", body={"agencyId": str(AGENCY), "moduleId": str(CRM)}),
    http("subscribe_member_403", "POST", "/api/modules/subscribe", user=MEMBER,
         body={"agencyId": str(AGENCY), "moduleId": str(CRM)}),
    http("subscribe_paid_402", "POST", "/api/modules/subscribe", body={"agencyId": str(AGENCY), "moduleId": str(BOOKING)}),
    http("subscribe_malformed_400", "POST", "/api/modules/subscribe", raw_body='{"agencyId": ',
         headers={"content-type": "application/json"}),
    http("audit_log", "GET", f"/api/agencies/{AGENCY}/audit-log", query={"action": "workflow.*", "limit": "20"}),
    http("audit_log_member_403", "GET", f"/api/agencies/{AGENCY}/audit-log", user=MEMBER),
]

MEMBERS = f"/api/agencies/{AGENCY}/members"
AGENCIES = [
    http("list_members", "GET", MEMBERS, user=MEMBER),
    http("add_member_again", "POST", MEMBERS, body={"userId": str(MEMBER), "role": "member"}),
    http("add_member_by_member_403", "POST", MEMBERS, user=MEMBER, body={"userId": str(MEMBER), "role": "admin"}),
    http("change_role", "PATCH", f"{MEMBERS}/{MEMBER}", body={"role": "admin"}),
    http("change_role_last_owner_409", "PATCH", f"{MEMBERS}/{OWNER}", body={"role": "admin"}),
    http("remove_member", "DELETE", f"{MEMBERS}/{MEMBER}"),
    http("remove_last_owner_409", "DELETE", f"{MEMBERS}/{OWNER}"),
]

PURCHASE = [
    http("purchase_paid", "POST", f"/api/modules/{BOOKING}/purchase",
         body={"agencyId": str(AGENCY), "markupType": "percentage", "markupValue": 20}),
    http("purchase_idempotent", "POST", f"/api/modules/{BOOKING}/purchase",
         headers={"idempotency-key": "sample-purchase-booking-1"},
         body={"agencyId": str(AGENCY), "billingCycle": "monthly", "markupType": "fixed", "markupValue": 500}),
    http("purchase_free_400", "POST", f"/api/modules/{CRM}/purchase", body={"agencyId": str(AGENCY)}),
    http("purchase_invalid_markup_400", "POST", f"/api/modules/{BOOKING}/purchase",
         body={"agencyId": str(AGENCY), "markupType": "percentage", "markupValue": 1500}),
    http("purchase_member_403", "POST", f"/api/modules/{BOOKING}/purchase", user=MEMBER,
         body={"agencyId": str(AGENCY)}),
    http("list_subscriptions", "GET", f"/api/agencies/{AGENCY}/subscriptions", user=MEMBER),
    http("update_markup", "PATCH", f"/api/agencies/{AGENCY}/subscriptions/{seed.DEMO_PENDING_SUBSCRIPTION_ID}",
         body={"markupType": "fixed", "markupValue": 500}),
    http("update_markup_unknown_404", "PATCH", f"/api/agencies/{AGENCY}/subscriptions/{MISSING}",
         body={"markupType": "percentage", "markupValue": 30}),
    http("sandbox_complete_unknown_404", "POST", f"/api/sandbox/checkouts/{MISSING}/complete"),
    http("cancel_pending_subscription_409", "POST",
         f"/api/agencies/{AGENCY}/subscriptions/{seed.DEMO_PENDING_SUBSCRIPTION_ID}/cancel"),
    http("cancel_subscription_member_403", "POST",
         f"/api/agencies/{AGENCY}/subscriptions/{seed.DEMO_PENDING_SUBSCRIPTION_ID}/cancel", user=MEMBER),
    http("sandbox_end_period_nothing_scheduled_409", "POST",
         f"/api/sandbox/subscriptions/{seed.DEMO_PENDING_SUBSCRIPTION_ID}/end-period"),
    paddle_webhook("webhook_transaction_completed", resign=True),
    paddle_webhook("webhook_bad_signature_401", signature=f"ts={FIXED_EPOCH};h1={'0' * 64}"),
]

INSTALL = [
    http("list_site_modules", "GET", f"{SITE_API}/modules", user=MEMBER),
    http("get_crm", "GET", f"{SITE_API}/modules/{CRM}", user=MEMBER),
    http("install_crm", "POST", f"{SITE_API}/modules/{CRM}", body={"config": {"pipeline": "sales"}}),
    http("install_member_403", "POST", f"{SITE_API}/modules/{CRM}", user=MEMBER),
    http("install_unsubscribed_402", "POST", f"{SITE_API}/modules/{BOOKING}"),
    http("install_bad_site_400", "POST", f"/api/sites/not-a-uuid/modules/{CRM}"),
    http("disable_crm", "DELETE", f"{SITE_API}/modules/{CRM}"),
    http("preview_upgrade_crm", "GET", f"{SITE_API}/modules/{CRM}/upgrade"),
    http("upgrade_crm_current_409", "POST", f"{SITE_API}/modules/{CRM}/upgrade"),
    http("upgrade_crm_member_403", "POST", f"{SITE_API}/modules/{CRM}/upgrade", user=MEMBER,
         body={"toVersion": "1.1.0"}),
    http("export_crm", "POST", f"{SITE_API}/modules/{CRM}/export"),
    http("purge_crm", "POST", f"{SITE_API}/modules/{CRM}/purge", body={"confirm": "crm"}),
    http("purge_crm_unconfirmed_400", "POST", f"{SITE_API}/modules/{CRM}/purge", body={"confirm": "yes"}),
    http("cancel_purge_none_pending_409", "DELETE", f"{SITE_API}/modules/{CRM}/purge"),
]

ADMIN_MODULES = "/api/admin/modules"
CRM_1_1 = {**seed.CRM_MANIFEST, "version": "1.1.0", "database": {"tables": [
    *seed.CRM_MANIFEST["database"]["tables"][:-1],
    {**seed.CRM_MANIFEST["database"]["tables"][-1],
     "columns": [*seed.CRM_MANIFEST["database"]["tables"][-1]["columns"], {"name": "source", "type": "text"}]}]}}
CATALOG = [
    http("create_module", "POST", ADMIN_MODULES, user=SUPER_ADMIN,
         body={"slug": "newsletter", "name": "Newsletter", "moduleType": "app", "pricingType": "free"}),
    http("create_module_owner_403", "POST", ADMIN_MODULES, body={"slug": "x", "name": "X", "moduleType": "widget"}),
    http("list_admin_modules", "GET", ADMIN_MODULES, user=SUPER_ADMIN),
    http("get_admin_module", "GET", f"{ADMIN_MODULES}/{CRM}", user=SUPER_ADMIN),
    http("add_version", "POST", f"{ADMIN_MODULES}/{CRM}/versions", user=SUPER_ADMIN,
         body={"manifest": CRM_1_1, "changelog": "contacts get a source"}),
    http("add_version_invalid_400", "POST", f"{ADMIN_MODULES}/{CRM}/versions", user=SUPER_ADMIN,
         body={"manifest": {"version": "1.2.0", "database": {"tables": [{"name": "bad name", "columns": []}]}}}),
    http("get_version", "GET", f"{ADMIN_MODULES}/{CRM}/versions/1.0.0", user=SUPER_ADMIN),
    http("dry_run_version", "POST", f"{ADMIN_MODULES}/{CRM}/versions/1.0.0/dry-run", user=SUPER_ADMIN),
    http("publish_version", "POST", f"{ADMIN_MODULES}/{CRM}/versions/1.0.0/publish", user=SUPER_ADMIN),
    http("deprecate_version", "POST", f"{ADMIN_MODULES}/{WIDGET}/versions/1.0.0/deprecate", user=SUPER_ADMIN),
    http("unpublish_unknown_version_404", "POST", f"{ADMIN_MODULES}/{CRM}/versions/9.9.9/unpublish",
         user=SUPER_ADMIN),
]

REST = f"{SITE_API}/modules/crm/rest"  # the PostgREST surface (docs/module_data_rest.md)
KEY_AS_SUPABASE = {"apikey": seed.DEMO_API_KEY, "authorization": f"Bearer {seed.DEMO_API_KEY}"}
CONTACT_FILTER = {"id": f"eq.{seed.DEMO_CONTACT_ID}"}

MODULE_API_REST = [
    http("rest_list_contacts", "GET", f"{REST}/contacts", user=MEMBER,
         query={"select": "email,score:lead_score", "lead_score": "gte.50", "order": "lead_score.desc"},
         headers={"prefer": "count=exact"}),
    http("rest_count_contacts", "HEAD", f"{REST}/contacts", user=MEMBER, headers={"prefer": "count=exact"}),
    http("rest_create_contact", "POST", f"{REST}/contacts", body={"email": "ada@example.com", "lead_score": 70},
         headers={"prefer": "return=representation"}),
    http("rest_update_contact", "PATCH", f"{REST}/contacts", query=CONTACT_FILTER, body={"status": "qualified"},
         headers={"prefer": "return=representation"}),
    http("rest_delete_contact", "DELETE", f"{REST}/contacts", query=CONTACT_FILTER),
    http("rest_v1_list_contacts_api_key", "GET", f"{REST}/v1/contacts", user=None, headers=KEY_AS_SUPABASE,
         query={"select": "email,companies(name)"}),
    http("rest_v1_count_contacts_api_key", "HEAD", f"{REST}/v1/contacts", user=None,
         headers={**KEY_AS_SUPABASE, "prefer": "count=exact"}),
    http("rest_v1_upsert_contact_api_key", "POST", f"{REST}/v1/contacts", user=None, query={"on_conflict": "id"},
         body={"id": str(seed.DEMO_CONTACT_ID), "email": "ada@example.com"},
         headers={**KEY_AS_SUPABASE, "prefer": "resolution=merge-duplicates,return=representation"}),
    http("rest_v1_update_contact_api_key", "PATCH", f"{REST}/v1/contacts", user=None, query=CONTACT_FILTER,
         body={"lead_score": 90}, headers=KEY_AS_SUPABASE),
    http("rest_v1_delete_contact_api_key", "DELETE", f"{REST}/v1/contacts", user=None, query=CONTACT_FILTER,
         headers=KEY_AS_SUPABASE),
]

MODULE_API = [
    http("list_contacts", "GET", CONTACTS, user=MEMBER,
         query={"status": "eq.lead", "lead_score": "gte.50", "order": "created_at.desc", "limit": "20",
                "count": "exact"}),
    http("list_contacts_api_key", "GET", CONTACTS, user=None, query={"email": "ilike.*@example.com"},
         headers={"x-api-key": seed.DEMO_API_KEY}),
    http("get_contact", "GET", f"{CONTACTS}/{seed.DEMO_CONTACT_ID}", user=MEMBER),
    http("create_contact", "POST", CONTACTS, body={"email": "ada@example.com", "first_name": "Ada", "lead_score": 70}),
    http("create_contacts_bulk", "POST", CONTACTS, body=[{"email": "a@example.com"}, {"email": "b@example.com"}]),
    http("update_contact", "PATCH", f"{CONTACTS}/{seed.DEMO_CONTACT_ID}", body={"status": "qualified"}),
    http("delete_contact", "DELETE", f"{CONTACTS}/{seed.DEMO_CONTACT_ID}"),
    http("batch", "POST", f"{SITE_API}/modules/crm/data/_batch", body={"operations": [
        {"op": "create", "table": "companies", "values": {"name": "Acme", "domain": "acme.test"}},
        {"op": "update", "table": "contacts", "where": {"email": "ada@example.com"}, "values": {"status": "customer"}},
        {"op": "delete", "table": "contacts", "id": str(seed.DEMO_CONTACT_ID)}]}),
    http("get_contact_unknown_404", "GET", f"{CONTACTS}/{MISSING}", user=MEMBER),
    http("malformed_query_400", "GET", CONTACTS, user=MEMBER, query={"lead_score": "between.1"}),
    http("member_create_contact", "POST", CONTACTS, user=MEMBER, body={"email": "m@example.com"}),
    http("no_credentials_401", "GET", CONTACTS, user=None),
    http("widget_storage_list", "GET", STORAGE, user=MEMBER),
    http("widget_storage_get", "GET", f"{STORAGE}/title", user=MEMBER),
    http("widget_storage_set", "PUT", f"{STORAGE}/title", body={"value": "Contact us"}),
    http("widget_storage_delete", "DELETE", f"{STORAGE}/title"),
    http("create_api_key", "POST", f"{SITE_API}/api-keys", body={"name": "Website form", "modules": ["crm"]}),
    http("list_api_keys", "GET", f"{SITE_API}/api-keys"),
    http("revoke_api_key", "DELETE", f"{SITE_API}/api-keys/{seed.DEMO_OLD_API_KEY_ID}"),
]

WORKFLOW = {
    "name": "Welcome hot leads",
    "triggerEventType": "crm.contact.created",
    "filter": {"lead_score": {"gte": 50}},
    "steps": [
        {"type": "condition", "config": {"field": "event.payload.status", "operator": "neq", "value": "archived"}},
        {"type": "http_request", "config": {"method": "POST", "url": "https://hooks.example.com/leads",
                                            "body": {"email": "{{event.payload.email}}",
                                                     "score": "{{event.payload.lead_score}}"}}},
        {"type": "set_variable", "config": {"name": "last_lead", "value": "{{event.payload.email}}"}},
    ],
}

AUTOMATION_SAMPLES = [
    http("create_workflow", "POST", f"{AUTOMATION}/workflows", body=WORKFLOW),
    http("create_workflow_invalid_400", "POST", f"{AUTOMATION}/workflows",
         body={**WORKFLOW, "steps": [{"type": "teleport", "config": {}}]}),
    http("create_workflow_member_403", "POST", f"{AUTOMATION}/workflows", user=MEMBER, body=WORKFLOW),
    http("list_workflows", "GET", f"{AUTOMATION}/workflows"),
    http("get_workflow", "GET", f"{AUTOMATION}/workflows/{seed.DEMO_WORKFLOW_ID}", user=MEMBER),
    http("get_workflow_404", "GET", f"{AUTOMATION}/workflows/{MISSING}"),
    http("update_workflow", "PATCH", f"{AUTOMATION}/workflows/{seed.DEMO_WORKFLOW_ID}",
         body={"isActive": False, "description": "Paused while the sales team is away"}),
    http("delete_workflow", "DELETE", f"{AUTOMATION}/workflows/{seed.DEMO_WORKFLOW_ID}"),
    http("list_executions", "GET", f"{AUTOMATION}/executions", query={"limit": "20"}),
    http("get_execution_404", "GET", f"{AUTOMATION}/executions/{MISSING}"),
    http("cancel_execution_404", "POST", f"{AUTOMATION}/executions/{MISSING}/cancel"),
    http("rerun_execution_404", "POST", f"{AUTOMATION}/executions/{MISSING}/rerun", body={"from": "start"}),
    http("emit_event", "POST", f"{AUTOMATION}/events",
         body={"eventType": "crm.contact.created",
               "payload": {"id": str(seed.DEMO_CONTACT_ID), "email": "ada@example.com", "lead_score": 72,
                           "status": "active"}}),
    http("emit_event_api_key", "POST", f"{AUTOMATION}/events", user=None, headers={"x-api-key": seed.DEMO_API_KEY},
         body={"eventType": "crm.contact.created",
               "payload": {"id": str(seed.DEMO_CONTACT_ID), "email": "ada@example.com", "lead_score": 72}}),
    http("emit_event_unknown_400", "POST", f"{AUTOMATION}/events", body={"eventType": "crm.ufo.seen", "payload": {}}),
    http("list_event_types", "GET", f"{AUTOMATION}/event-types"),
    http("create_webhook", "POST", f"{AUTOMATION}/webhooks", body={"name": "Shop orders"}),
    http("list_webhooks", "GET", f"{AUTOMATION}/webhooks"),
    http("delete_webhook", "DELETE", f"{AUTOMATION}/webhooks/{seed.DEMO_WEBHOOK_ID}"),
    http("create_connection", "POST", f"{AUTOMATION}/connections",
         body={"name": "crm_api", "type": "bearer", "credentials": {"token": "sample-token-shown-never"}}),
    http("list_connections", "GET", f"{AUTOMATION}/connections", user=MEMBER),
    http("get_connection_404", "GET", f"{AUTOMATION}/connections/{MISSING}"),
    http("rotate_connection_member_403", "POST", f"{AUTOMATION}/connections/{MISSING}/rotate", user=MEMBER,
         body={"credentials": {"token": "another-sample-token"}}),
    http("delete_connection_404", "DELETE", f"{AUTOMATION}/connections/{MISSING}"),
    http("webhook_call", "POST", f"/api/webhooks/automation/{seed.DEMO_WEBHOOK_TOKEN}", user=None,
         body={"order": 42, "total": "19.99"}),
    http("webhook_call_unknown_404", "POST", "/api/webhooks/automation/not-a-real-token", user=None,
         body={"order": 42}),
]

PROVISION = {
    "provision_crm": sqs("provision", ("sample-provision_crm", json.dumps(
        {"action": "provision", "moduleId": str(CRM), "siteId": str(SITE)}))),
    "provision_crm_last_receive": sqs("provision", ("sample-provision_crm_last_receive", json.dumps(
        {"action": "provision", "moduleId": str(CRM)})), receive_count=5),
    "purge_demo_site_crm": sqs("provision", ("sample-purge_demo_site_crm", json.dumps(
        {"action": "purge_site", "moduleId": str(CRM), "siteId": str(SITE)}))),
    "deprovision_crm": sqs("provision", ("sample-deprovision_crm", json.dumps(
        {"action": "deprovision", "moduleId": str(CRM)}))),
    "malformed_dropped": sqs("provision", ("sample-malformed_dropped", json.dumps({"moduleId": "not-a-uuid"}))),
}

EVENT_PROCESSOR = {
    "event_message": sqs("events", ("sample-event", json.dumps({"eventId": MISSING}))),
    "resume_message": sqs("events", ("sample-resume", json.dumps({"executionId": MISSING}))),
    # a message id ending in -retried names a record the function must hand back to SQS
    "partial_failure_batch": sqs("events", ("sample-good", json.dumps({"eventId": MISSING})),
                                 ("sample-malformed-retried", "not json")),
}

RELAY = {
    "scheduled": {"version": "0", "id": "sample-relay", "detail-type": "Scheduled Event", "source": "aws.events",
                  "account": "000000000000", "time": "2023-11-14T22:13:20Z", "region": "us-east-1",
                  "resources": ["arn:aws:events:us-east-1:000000000000:rule/dramac-relay"], "detail": {}},
}


PURGER = {
    "scheduled": {"version": "0", "id": "sample-purger", "detail-type": "Scheduled Event", "source": "aws.events",
                  "account": "000000000000", "time": "2023-11-14T22:13:20Z", "region": "us-east-1",
                  "resources": ["arn:aws:events:us-east-1:000000000000:rule/dramac-purger"], "detail": {}},
}


RETENTION = {
    "scheduled": {"version": "0", "id": "sample-retention", "detail-type": "Scheduled Event", "source": "aws.events",
                  "account": "000000000000", "time": "2023-11-14T22:13:20Z", "region": "us-east-1",
                  "resources": ["arn:aws:events:us-east-1:000000000000:rule/dramac-retention"], "detail": {}},
}


# A CDK Trigger invokes the function with no payload, which Lambda hands over as an empty object.
MIGRATE = {"deploy_trigger": {}}


def _router(n: int, host: str, uri: str, querystring: str = "") -> dict[str, Any]:
    """A browser's GET as CloudFront hands it to a viewer-request function."""
    event = viewer_request_event("GET", host, uri, querystring, {
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        "Accept": "text/html,application/xhtml+xml"}, "203.0.113.178")
    event["Records"][0]["cf"]["config"] |= {
        "distributionDomainName": "d111111abcdef8.cloudfront.net", "distributionId": "EDFDVBD6EXAMPLE",
        "requestId": f"4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSE{n:02d}=="}
    return event


DOMAIN_ROUTER = {
    "platform_subdomain_site": _router(0, "acme.sites.dramacagency.com", "/about/team", "utm_source=newsletter"),
    "custom_domain_site": _router(1, "www.acme-bakery.com", "/menu"),
    "nested_subdomain_404": _router(2, "shop.acme.sites.dramacagency.com", "/"),
    "reserved_label_404": _router(3, "admin.sites.dramacagency.com", "/"),
    "invalid_host_400": _router(4, "bad_host..example.com", "/"),
    "app_public_path": _router(5, "app.dramac.app", "/login", "redirectTo=%2Fdashboard"),
    "app_protected_path_no_cookie_302": _router(6, "app.dramac.app", "/dashboard/sites", "tab=modules"),
    "path_traversal_400": _router(7, "acme.sites.dramacagency.com", "/assets/%2e%2e/%2e%2e/admin"),
}


def samples() -> dict[Path, dict[str, Any]]:
    """Every sample: its path and its event."""
    out: dict[Path, dict[str, Any]] = {}
    for folder, items in (("subscribe", SUBSCRIBE), ("agencies", AGENCIES), ("purchase", PURCHASE), ("install", INSTALL), ("catalog", CATALOG),
                          ("module_api", MODULE_API + MODULE_API_REST), ("automation", AUTOMATION_SAMPLES)):
        for name, event in items:
            out[ROOT / folder / f"{name}.json"] = event
    for folder, named in (("provision", PROVISION), ("event_processor", EVENT_PROCESSOR), ("relay", RELAY), ("purger", PURGER), ("retention", RETENTION),
                          ("migrate", MIGRATE), ("domain_router", DOMAIN_ROUTER)):
        for name, event in named.items():
            out[ROOT / folder / f"{name}.json"] = event
    return out


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    wanted = samples()
    stale = sorted(str(p.relative_to(ROOT)) for p, e in wanted.items()
                   if not p.exists() or p.read_text(encoding="utf-8") != render(e))
    extra = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("*/*.json") if p not in wanted)
    if check:
        for name in stale:
            print(f"differs from the generator: {name}")
        for name in extra:
            print(f"not written by the generator: {name}")
        return 1 if stale or extra else 0
    for path, event in wanted.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(render(event), encoding="utf-8")
    for name in extra:
        (ROOT / name).unlink()
    print(f"wrote {len(wanted)} sample events" + (f", removed {len(extra)}" if extra else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
