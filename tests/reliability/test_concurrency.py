"""Identical requests at the same moment end as one request would: every write route is fired
``BURST`` times in parallel (threads released by one barrier) against the real Lambda handlers and
PostgreSQL. Each reply is what a sequential repeat would answer (one 201 and the rest 200, one 200 and
the rest 404 for a delete, the first answer replayed for a repeated Idempotency-Key), none is a 5xx,
nothing deadlocks, and the rows left behind are those of one request.

Routes that create something new on every call (workflows, webhooks, API keys, events, module rows)
are identical only with the same ``Idempotency-Key``; without one, N requests are N creations (as N
sequential requests are), and still never a 5xx.
"""



from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from support.aws import emulated_aws
from support.concurrency import BURST, fire, no_server_errors, statuses
from support.handlers import FunctionClient
from support.modules import install_module, make_crm
from support.purchase import completed_event, forward_to_function, latest_checkout, loopback_server, signed

WEBHOOK = "/api/webhooks/paddle"


@pytest.fixture
def parallel_pool(database_url, monkeypatch, env):
    """A pool as large as the burst: N overlapping transactions, as N Lambda containers would run them."""
    from dramac_common.core import db
    from dramac_common.core.settings import reset_settings

    env.set("DRAMAC_DB_POOL_MAX", str(2 * BURST + 4))
    env.set("PAYMENT_PROVIDER", "sandbox")
    env.unset("PADDLE_WEBHOOK_SECRET")
    db.close_pool()
    yield
    db.close_pool()
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def queues(parallel_pool):
    with emulated_aws() as emulated:
        yield emulated


@pytest.fixture
def fn(queues):
    # Handlers are loaded before any request, as Lambda loads a function before invoking it: importing
    # a handler module from N threads at once is a race of the test, not of the product.
    clients = {name: FunctionClient(name) for name in ("subscribe", "purchase", "install", "module_api", "automation")}
    return clients.__getitem__


def count(owner_conn, query: str, *params) -> int:
    return owner_conn.execute(f"SELECT count(*) AS n FROM ({query}) q", params).fetchone()["n"]


def agency_events(owner_conn, agency_id, event_type: str) -> int:
    return count(owner_conn, "SELECT 1 FROM automation_events_log WHERE agency_id = %s AND event_type = %s",
                 agency_id, event_type)


# Marketplace: subscribe, purchase, markup ----------------------------------------------------------

def test_parallel_subscribes_to_a_new_free_module_answer_one_201_and_the_rest_200(fn, tenant, make_module,
                                                                                   owner_conn):
    module = make_module(pricing_type="free")
    body = {"agencyId": str(tenant.agency_id), "moduleId": str(module)}
    replies = fire(BURST, lambda _: fn("subscribe").post("/api/modules/subscribe", user=tenant.owner, body=body))
    no_server_errors(replies)
    assert statuses(replies) == {201: 1, 200: BURST - 1}
    assert len({r.data["id"] for r in replies}) == 1
    rows = owner_conn.execute("SELECT status FROM agency_module_subscriptions WHERE agency_id = %s AND module_id = %s",
                              (tenant.agency_id, module)).fetchall()
    assert rows == [{"status": "active"}]
    assert agency_events(owner_conn, tenant.agency_id, "marketplace.subscription.created") == 1
    assert agency_events(owner_conn, tenant.agency_id, "marketplace.subscription.activated") == 1


def test_parallel_resubscribes_of_a_canceled_subscription_reactivate_it_once(fn, tenant, make_module, owner_conn):
    module = make_module(pricing_type="free")
    owner_conn.execute("INSERT INTO agency_module_subscriptions (agency_id, module_id, status) VALUES (%s, %s, "
                       "'canceled')", (tenant.agency_id, module))
    body = {"agencyId": str(tenant.agency_id), "moduleId": str(module)}
    replies = fire(BURST, lambda _: fn("subscribe").post("/api/modules/subscribe", user=tenant.owner, body=body))
    no_server_errors(replies)
    assert statuses(replies) == {201: 1, 200: BURST - 1}
    assert agency_events(owner_conn, tenant.agency_id, "marketplace.subscription.activated") == 1


@pytest.fixture
def paid(make_module):
    return make_module(pricing_type="monthly", wholesale_price_cents=1999)


def test_parallel_purchases_leave_one_pending_subscription_and_one_open_checkout(fn, tenant, paid, owner_conn):
    body = {"agencyId": str(tenant.agency_id), "markupType": "percentage", "markupValue": 25}
    replies = fire(BURST, lambda _: fn("purchase").post(f"/api/modules/{paid}/purchase", user=tenant.owner,
                                                        body=body))
    no_server_errors(replies)
    assert statuses(replies) == {201: BURST}  # a purchase of a pending subscription opens a new checkout
    [sub] = owner_conn.execute("SELECT id, status, retail_price_cents FROM agency_module_subscriptions "
                               "WHERE agency_id = %s AND module_id = %s", (tenant.agency_id, paid)).fetchall()
    assert (sub["status"], sub["retail_price_cents"]) == ("pending", 2499)
    checkouts = Counter(r["status"] for r in owner_conn.execute(
        "SELECT status FROM payment_checkouts WHERE subscription_id = %s", (sub["id"],)))
    assert checkouts == {"open": 1, "superseded": BURST - 1}
    assert agency_events(owner_conn, tenant.agency_id, "marketplace.subscription.created") == 1


def test_parallel_purchases_with_one_idempotency_key_run_once(fn, tenant, paid, owner_conn):
    body = {"agencyId": str(tenant.agency_id)}
    replies = fire(BURST, lambda _: fn("purchase").post(f"/api/modules/{paid}/purchase", user=tenant.owner, body=body,
                                                        headers={"idempotency-key": "double-click"}))
    no_server_errors(replies)
    assert statuses(replies) == {201: BURST}
    assert sum(1 for r in replies if r.headers.get("idempotent-replayed") == "true") == BURST - 1
    assert len({json.dumps(r.body, sort_keys=True) for r in replies}) == 1  # the same answer
    assert count(owner_conn, "SELECT 1 FROM payment_checkouts WHERE agency_id = %s", tenant.agency_id) == 1


def test_parallel_markup_changes_all_answer_the_same_price(fn, tenant, paid, owner_conn):
    sub = fn("purchase").post(f"/api/modules/{paid}/purchase", user=tenant.owner,
                              body={"agencyId": str(tenant.agency_id)}).data["subscriptionId"]
    path = f"/api/agencies/{tenant.agency_id}/subscriptions/{sub}"
    replies = fire(BURST, lambda _: fn("purchase").patch(path, user=tenant.owner,
                                                         body={"markupType": "fixed", "markupValue": 500}))
    no_server_errors(replies)
    assert statuses(replies) == {200: BURST}
    assert {r.data["retailPriceCents"] for r in replies} == {2499}


# Payments: the Paddle webhook and the sandbox checkout --------------------------------------------

def test_parallel_deliveries_of_one_paddle_event_apply_it_once(fn, tenant, paid, owner_conn):
    sub = uuid.UUID(fn("purchase").post(f"/api/modules/{paid}/purchase", user=tenant.owner,
                                        body={"agencyId": str(tenant.agency_id)}).data["subscriptionId"])
    raw, headers = signed(completed_event(owner_conn, sub))
    replies = fire(BURST, lambda _: fn("purchase").post(WEBHOOK, raw_body=raw, headers=headers))
    no_server_errors(replies)
    assert statuses(replies) == {200: BURST}
    assert Counter(r.data["outcome"] for r in replies) == {"applied": 1, "duplicate": BURST - 1}
    assert latest_checkout(owner_conn, sub)["status"] == "completed"
    assert agency_events(owner_conn, tenant.agency_id, "marketplace.subscription.activated") == 1


def test_parallel_distinct_completions_of_one_transaction_activate_once(fn, tenant, paid, owner_conn):
    sub = uuid.UUID(fn("purchase").post(f"/api/modules/{paid}/purchase", user=tenant.owner,
                                        body={"agencyId": str(tenant.agency_id)}).data["subscriptionId"])
    at = datetime.now(UTC)  # notifications of one moment: the first applied makes the others not newer
    deliveries = [signed(completed_event(owner_conn, sub, occurred_at=at)) for _ in range(BURST)]
    replies = fire(BURST, lambda i: fn("purchase").post(WEBHOOK, raw_body=deliveries[i][0], headers=deliveries[i][1]))
    no_server_errors(replies)
    assert Counter(r.data["outcome"] for r in replies) == {"applied": 1, "stale": BURST - 1}
    assert agency_events(owner_conn, tenant.agency_id, "marketplace.subscription.activated") == 1


@pytest.fixture
def webhook_gateway(parallel_pool, env, request):
    """Our webhook route on a loopback server (threaded, as a gateway is); the sandbox delivers there."""
    from dramac_common.core.settings import reset_settings

    with loopback_server(forward_to_function("purchase")) as (url, recorded):
        env.set("SANDBOX_WEBHOOK_URL", f"{url}{WEBHOOK}")
        request.addfinalizer(reset_settings)
        yield recorded


def test_parallel_completions_of_a_sandbox_checkout_complete_it_once(fn, tenant, paid, owner_conn,
                                                                     webhook_gateway):
    bought = fn("purchase").post(f"/api/modules/{paid}/purchase", user=tenant.owner,
                                 body={"agencyId": str(tenant.agency_id)}).data
    replies = fire(BURST, lambda _: fn("purchase").post(bought["checkout"]["url"], user=tenant.owner))
    no_server_errors(replies)
    assert statuses(replies) == {200: 1, 409: BURST - 1}
    assert {r.body["code"] for r in replies if r.status == 409} == {"checkout_completed"}
    assert latest_checkout(owner_conn, uuid.UUID(bought["subscriptionId"]))["status"] == "completed"
    assert agency_events(owner_conn, tenant.agency_id, "marketplace.subscription.activated") == 1


# Installations -------------------------------------------------------------------------------------

@pytest.fixture
def subscribed_free(fn, tenant, make_module):
    module = make_module(pricing_type="free")
    assert fn("subscribe").post("/api/modules/subscribe", user=tenant.owner,
                                body={"agencyId": str(tenant.agency_id), "moduleId": str(module)}).status == 201
    return module


def installation_rows(owner_conn, tenant, module):
    return owner_conn.execute("SELECT status, is_enabled FROM site_module_installations WHERE site_id = %s "
                              "AND module_id = %s", (tenant.site_id, module)).fetchall()


def test_parallel_installs_answer_one_201_and_the_rest_200(fn, tenant, subscribed_free, owner_conn):
    path = f"/api/sites/{tenant.site_id}/modules/{subscribed_free}"
    replies = fire(BURST, lambda _: fn("install").post(path, user=tenant.owner, body={}))
    no_server_errors(replies)
    assert statuses(replies) == {201: 1, 200: BURST - 1}
    assert installation_rows(owner_conn, tenant, subscribed_free) == [{"status": "active", "is_enabled": True}]


def test_parallel_re_enables_answer_one_201_and_the_rest_200(fn, tenant, subscribed_free, owner_conn):
    path = f"/api/sites/{tenant.site_id}/modules/{subscribed_free}"
    fn("install").post(path, user=tenant.owner, body={})
    assert fn("install").delete(path, user=tenant.owner).status == 200
    replies = fire(BURST, lambda _: fn("install").post(path, user=tenant.owner, body={"config": {"theme": "dark"}}))
    no_server_errors(replies)
    assert statuses(replies) == {201: 1, 200: BURST - 1}
    assert installation_rows(owner_conn, tenant, subscribed_free) == [{"status": "active", "is_enabled": True}]


def test_parallel_installs_of_a_module_to_provision_all_answer_202_with_one_row(fn, tenant, make_module, owner_conn,
                                                                                queues):
    from support.modules import CRM_MANIFEST

    module = make_module(pricing_type="free", manifest=CRM_MANIFEST)
    fn("subscribe").post("/api/modules/subscribe", user=tenant.owner,
                         body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    path = f"/api/sites/{tenant.site_id}/modules/{module}"
    replies = fire(BURST, lambda _: fn("install").post(path, user=tenant.owner, body={}))
    no_server_errors(replies)
    assert statuses(replies) == {202: BURST}
    assert installation_rows(owner_conn, tenant, module) == [{"status": "provisioning", "is_enabled": True}]


def test_parallel_disables_all_answer_200(fn, tenant, subscribed_free, owner_conn):
    path = f"/api/sites/{tenant.site_id}/modules/{subscribed_free}"
    fn("install").post(path, user=tenant.owner, body={})
    replies = fire(BURST, lambda _: fn("install").delete(path, user=tenant.owner))
    no_server_errors(replies)
    assert statuses(replies) == {200: BURST}
    assert installation_rows(owner_conn, tenant, subscribed_free) == [{"status": "disabled", "is_enabled": False}]


# Site API keys -----------------------------------------------------------------------------------

def keys_path(tenant) -> str:
    return f"/api/sites/{tenant.site_id}/api-keys"


def test_twenty_parallel_rotations_of_one_key_yield_one_successor(fn, tenant, owner_conn):
    old = fn("module_api").post(keys_path(tenant), user=tenant.owner, body={"name": "sync"}).data
    replies = fire(20, lambda _: fn("module_api").post(keys_path(tenant), user=tenant.owner,
                                                       body={"rotatesKeyId": old["id"], "overlapSeconds": 3600}))
    no_server_errors(replies)
    assert statuses(replies) == {201: 1, 409: 19}
    [winner] = [r for r in replies if r.status == 201]
    assert {r.body["code"] for r in replies if r.status == 409} == {"api_key_already_rotated"}
    assert {r.body["details"][0]["successorId"] for r in replies if r.status == 409} == {winner.data["id"]}
    successors = owner_conn.execute("SELECT id FROM site_api_keys WHERE rotated_from = %s", (old["id"],)).fetchall()
    assert [str(r["id"]) for r in successors] == [winner.data["id"]]
    # and a rotation after the race answers what the losers answered
    again = fn("module_api").post(keys_path(tenant), user=tenant.owner, body={"rotatesKeyId": old["id"]})
    assert (again.status, again.body["code"]) == (409, "api_key_already_rotated")


def test_parallel_key_creations_with_one_idempotency_key_create_one_key(fn, tenant, owner_conn):
    replies = fire(BURST, lambda _: fn("module_api").post(keys_path(tenant), user=tenant.owner, body={"name": "form"},
                                                          headers={"idempotency-key": "create-form-key"}))
    no_server_errors(replies)
    assert statuses(replies) == {201: BURST}
    assert len({r.data["id"] for r in replies}) == 1
    fresh = [r for r in replies if r.headers.get("idempotent-replayed") != "true"]
    assert len(fresh) == 1 and fresh[0].data["key"].startswith("dk_live_")
    # the secret is shown once: replays carry the key's id and prefix, never the key
    assert all("key" not in r.data for r in replies if r.headers.get("idempotent-replayed") == "true")
    assert count(owner_conn, "SELECT 1 FROM site_api_keys WHERE site_id = %s", tenant.site_id) == 1
    stored = owner_conn.execute("SELECT response_data FROM idempotency_records").fetchall()
    assert not any(fresh[0].data["key"] in (r["response_data"] or "") for r in stored)


def test_parallel_key_creations_without_a_key_are_separate_creations(fn, tenant, owner_conn):
    replies = fire(BURST, lambda _: fn("module_api").post(keys_path(tenant), user=tenant.owner, body={"name": "n"}))
    no_server_errors(replies)
    assert statuses(replies) == {201: BURST}
    assert count(owner_conn, "SELECT 1 FROM site_api_keys WHERE site_id = %s", tenant.site_id) == BURST


def test_parallel_revocations_all_answer_the_same_revoked_key(fn, tenant):
    key = fn("module_api").post(keys_path(tenant), user=tenant.owner, body={}).data
    replies = fire(BURST, lambda _: fn("module_api").delete(f"{keys_path(tenant)}/{key['id']}", user=tenant.owner))
    no_server_errors(replies)
    assert statuses(replies) == {200: BURST}
    assert len({r.data["revokedAt"] for r in replies}) == 1


# Automation ----------------------------------------------------------------------------------------

def workflows_path(tenant) -> str:
    return f"/api/sites/{tenant.site_id}/automation/workflows"


WORKFLOW = {"name": "On contact", "triggerEventType": "crm.contact.created",
            "steps": [{"type": "set_variable", "config": {"name": "last", "value": "{{event.payload.email}}"}}]}


def test_parallel_workflow_creations_with_one_idempotency_key_create_one_workflow(fn, tenant, owner_conn):
    replies = fire(BURST, lambda _: fn("automation").post(workflows_path(tenant), user=tenant.owner, body=WORKFLOW,
                                                          headers={"idempotency-key": "wf-1"}))
    no_server_errors(replies)
    assert statuses(replies) == {201: BURST}
    assert len({r.data["id"] for r in replies}) == 1
    assert count(owner_conn, "SELECT 1 FROM automation_workflows WHERE site_id = %s", tenant.site_id) == 1
    assert count(owner_conn, "SELECT 1 FROM automation_event_subscriptions WHERE site_id = %s", tenant.site_id) == 1


def test_parallel_workflow_creations_without_a_key_are_separate_creations(fn, tenant, owner_conn):
    replies = fire(BURST, lambda _: fn("automation").post(workflows_path(tenant), user=tenant.owner, body=WORKFLOW))
    no_server_errors(replies)
    assert statuses(replies) == {201: BURST}
    assert count(owner_conn, "SELECT 1 FROM automation_workflows WHERE site_id = %s", tenant.site_id) == BURST


def test_parallel_identical_workflow_updates_leave_one_set_of_steps(fn, tenant, owner_conn):
    workflow = fn("automation").post(workflows_path(tenant), user=tenant.owner, body=WORKFLOW).data
    change = {"name": "Renamed", "steps": [{"type": "delay", "config": {"seconds": 5}},
                                           {"type": "set_variable", "config": {"name": "x", "value": 1}}]}
    replies = fire(BURST, lambda _: fn("automation").patch(f"{workflows_path(tenant)}/{workflow['id']}",
                                                           user=tenant.owner, body=change))
    no_server_errors(replies)
    assert statuses(replies) == {200: BURST}
    steps = owner_conn.execute("SELECT position, step_type FROM workflow_steps WHERE workflow_id = %s ORDER BY "
                               "position", (workflow["id"],)).fetchall()
    assert steps == [{"position": 1, "step_type": "delay"}, {"position": 2, "step_type": "set_variable"}]


def test_parallel_workflow_deletes_answer_one_200_and_the_rest_404(fn, tenant, owner_conn):
    workflow = fn("automation").post(workflows_path(tenant), user=tenant.owner, body=WORKFLOW).data
    replies = fire(BURST, lambda _: fn("automation").delete(f"{workflows_path(tenant)}/{workflow['id']}",
                                                            user=tenant.owner))
    no_server_errors(replies)
    assert statuses(replies) == {200: 1, 404: BURST - 1}
    assert count(owner_conn, "SELECT 1 FROM automation_workflows WHERE id = %s", workflow["id"]) == 0


def test_parallel_events_with_one_idempotency_key_are_one_event(fn, tenant, owner_conn):
    body = {"eventType": "crm.contact.created", "payload": {"email": "ada@example.test"}}
    replies = fire(BURST, lambda _: fn("automation").post(f"/api/sites/{tenant.site_id}/automation/events",
                                                          user=tenant.owner, body=body,
                                                          headers={"idempotency-key": "evt-42"}))
    no_server_errors(replies)
    assert statuses(replies) == {202: BURST}
    assert len({r.data["eventId"] for r in replies}) == 1
    assert count(owner_conn, "SELECT 1 FROM automation_events_log WHERE site_id = %s", tenant.site_id) == 1


def test_parallel_webhook_creations_with_one_key_create_one_webhook_and_show_its_token_once(fn, tenant, owner_conn):
    path = f"/api/sites/{tenant.site_id}/automation/webhooks"
    replies = fire(BURST, lambda _: fn("automation").post(path, user=tenant.owner, body={"name": "forms"},
                                                          headers={"idempotency-key": "hook-1"}))
    no_server_errors(replies)
    assert statuses(replies) == {201: BURST}
    assert count(owner_conn, "SELECT 1 FROM automation_webhooks WHERE site_id = %s", tenant.site_id) == 1
    assert sum(1 for r in replies if "token" in r.data) == 1


def test_parallel_webhook_deletes_answer_one_200_and_the_rest_404(fn, tenant):
    path = f"/api/sites/{tenant.site_id}/automation/webhooks"
    hook = fn("automation").post(path, user=tenant.owner, body={"name": "forms"}).data
    replies = fire(BURST, lambda _: fn("automation").delete(f"{path}/{hook['id']}", user=tenant.owner))
    no_server_errors(replies)
    assert statuses(replies) == {200: 1, 404: BURST - 1}


@pytest.fixture
def incoming(fn, tenant):
    return fn("automation").post(f"/api/sites/{tenant.site_id}/automation/webhooks", user=tenant.owner,
                                 body={"name": "in"}).data


@pytest.mark.parametrize("header", ["idempotency-key", "webhook-id"])
def test_parallel_deliveries_of_one_incoming_webhook_are_one_event(fn, tenant, incoming, owner_conn, header):
    replies = fire(BURST, lambda _: fn("automation").post(incoming["path"], body={"order": 17},
                                                          headers={header: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}))
    no_server_errors(replies)
    assert statuses(replies) == {202: BURST}
    assert len({r.data["eventId"] for r in replies}) == 1
    assert count(owner_conn, "SELECT 1 FROM automation_events_log WHERE site_id = %s", tenant.site_id) == 1


def test_parallel_incoming_webhooks_without_a_delivery_id_are_each_an_event(fn, tenant, incoming, owner_conn):
    replies = fire(BURST, lambda _: fn("automation").post(incoming["path"], body={"order": 17}))
    no_server_errors(replies)
    assert statuses(replies) == {202: BURST}
    assert count(owner_conn, "SELECT 1 FROM automation_events_log WHERE site_id = %s", tenant.site_id) == BURST


# Module data and widget storage -------------------------------------------------------------------

@pytest.fixture
def crm(owner_conn, make_module, tenant, queues):
    return make_crm(owner_conn, make_module, tenant)[1]


def rows_path(tenant, slug, row_id=None) -> str:
    path = f"/api/sites/{tenant.site_id}/modules/{slug}/data/contacts"
    return f"{path}/{row_id}" if row_id else path


def contacts(owner_conn, tenant, slug) -> int:
    from dramac_common.core.naming import get_module_schema_name

    module = owner_conn.execute("SELECT id FROM modules_v2 WHERE slug = %s", (slug,)).fetchone()["id"]
    return count(owner_conn, f"SELECT 1 FROM {get_module_schema_name(module)}.contacts WHERE site_id = %s",
                 tenant.site_id)


def test_parallel_row_creations_with_one_idempotency_key_create_one_row(fn, tenant, crm, owner_conn):
    replies = fire(BURST, lambda _: fn("module_api").post(rows_path(tenant, crm), user=tenant.owner,
                                                          body={"email": "ada@example.test"},
                                                          headers={"idempotency-key": "row-1"}))
    no_server_errors(replies)
    assert statuses(replies) == {201: BURST}
    assert len({r.data["id"] for r in replies}) == 1
    assert contacts(owner_conn, tenant, crm) == 1


def test_parallel_batches_with_one_idempotency_key_run_once(fn, tenant, crm, owner_conn):
    batch = {"operations": [{"op": "create", "table": "contacts", "values": {"email": "b@example.test"}}]}
    replies = fire(BURST, lambda _: fn("module_api").post(
        f"/api/sites/{tenant.site_id}/modules/{crm}/data/_batch", user=tenant.owner, body=batch,
        headers={"idempotency-key": "batch-1"}))
    no_server_errors(replies)
    assert statuses(replies) == {200: BURST}
    assert contacts(owner_conn, tenant, crm) == 1


def test_parallel_identical_row_updates_all_answer_200(fn, tenant, crm):
    row = fn("module_api").post(rows_path(tenant, crm), user=tenant.owner, body={"email": "u@example.test"}).data
    replies = fire(BURST, lambda _: fn("module_api").patch(rows_path(tenant, crm, row["id"]), user=tenant.owner,
                                                           body={"status": "qualified"}))
    no_server_errors(replies)
    assert statuses(replies) == {200: BURST}
    assert {r.data["status"] for r in replies} == {"qualified"}


def test_parallel_row_deletes_answer_one_200_and_the_rest_404(fn, tenant, crm, owner_conn):
    row = fn("module_api").post(rows_path(tenant, crm), user=tenant.owner, body={"email": "d@example.test"}).data
    replies = fire(BURST, lambda _: fn("module_api").delete(rows_path(tenant, crm, row["id"]), user=tenant.owner))
    no_server_errors(replies)
    assert statuses(replies) == {200: 1, 404: BURST - 1}
    assert contacts(owner_conn, tenant, crm) == 0


@pytest.fixture
def widget(tenant, make_module, owner_conn):
    module = make_module(module_type="widget")
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=module)
    return f"/api/sites/{tenant.site_id}/modules/{module}/storage"


def test_parallel_storage_writes_leave_one_value(fn, tenant, widget, owner_conn):
    replies = fire(BURST, lambda _: fn("module_api").request("PUT", f"{widget}/title", user=tenant.owner,
                                                             body={"value": "Hello"}))
    no_server_errors(replies)
    assert statuses(replies) == {200: BURST}
    assert count(owner_conn, "SELECT 1 FROM module_data WHERE site_id = %s AND key = 'title'", tenant.site_id) == 1


def test_parallel_storage_deletes_answer_one_200_and_the_rest_404(fn, tenant, widget):
    fn("module_api").request("PUT", f"{widget}/title", user=tenant.owner, body={"value": "Hello"})
    replies = fire(BURST, lambda _: fn("module_api").delete(f"{widget}/title", user=tenant.owner))
    no_server_errors(replies)
    assert statuses(replies) == {200: 1, 404: BURST - 1}
