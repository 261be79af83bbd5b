"""Payment state, prices and installation status are written only through the backend's write paths.

Each test connects as PostgREST does on Supabase (the login role, ``SET LOCAL ROLE authenticated``
and the caller's JWT claims in ``request.jwt.claims``) and tries a write an owner could attempt with
a psql prompt or the supabase client: every one is refused by the database itself, while the real
handlers, which write through the ``private`` functions as ``dramac_backend``, keep working. The
catalog tests check the same properties splinter lints for, on the tables these paths own.
"""


from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.rows import dict_row
from support.handlers import claims_for
from support.purchase import completed_event, signed

PAYMENT_TABLES = ("agency_module_subscriptions", "site_module_installations", "payment_checkouts")
OWNED_TABLES = (*PAYMENT_TABLES, "payment_events", "idempotency_records", "site_api_keys")
WRITE_PATHS = ("subscribe_free_module(uuid, uuid)", "claim_pending_subscription(uuid, uuid, text, integer, text)",
               "open_checkout(uuid, uuid, text, text, text)", "set_subscription_markup(uuid, uuid, text, integer)",
               "install_module(uuid, uuid, jsonb)", "disable_module(uuid, uuid)")


@pytest.fixture(autouse=True)
def queues(sandbox_aws):
    return sandbox_aws


@pytest.fixture
def api(function_client):
    """The real purchase handler."""
    return function_client("purchase")


@contextmanager
def connected_as(database_url: str, role: str, user: uuid.UUID | None = None) -> Iterator[psycopg.Connection]:
    """One transaction as ``role`` with ``user``'s claims, as PostgREST opens it; rolled back after."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        conn.execute(f"SET LOCAL ROLE {role}")
        if user is not None:
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims_for(user)),))
        yield conn
        conn.rollback()


def refused(database_url: str, user: uuid.UUID, statement: str, params: tuple = (), role: str = "authenticated") -> None:
    with connected_as(database_url, role, user) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement, params)


@pytest.fixture
def pending(api, tenant, make_module):
    """A real purchase of a paid module: a pending subscription and its open checkout."""
    module = make_module(pricing_type="monthly", wholesale_price_cents=4900)
    reply = api.post(f"/api/modules/{module}/purchase", user=tenant.owner, body={"agencyId": str(tenant.agency_id)})
    assert reply.status == 201, reply.body
    return {"module": module, "subscription": uuid.UUID(reply.data["subscriptionId"]),
            "checkout": uuid.UUID(reply.data["checkout"]["id"])}


def subscription(owner_conn, subscription_id):
    return owner_conn.execute("SELECT status, wholesale_price_cents, retail_price_cents FROM "
                              "agency_module_subscriptions WHERE id = %s", (subscription_id,)).fetchone()


# What an owner may not do, connected as authenticated ---------------------------------------------

def test_owner_cannot_activate_its_pending_paid_subscription_at_price_zero(database_url, tenant, pending,
                                                                           owner_conn):
    refused(database_url, tenant.owner,
            "UPDATE public.agency_module_subscriptions SET status = 'active', wholesale_price_cents = 0, "
            "retail_price_cents = 0 WHERE id = %s", (pending["subscription"],))
    assert subscription(owner_conn, pending["subscription"]) == {
        "status": "pending", "wholesale_price_cents": 4900, "retail_price_cents": 4900}


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_manager_cannot_insert_an_active_subscription_to_a_paid_module(database_url, tenant, make_module, owner_conn,
                                                                       role):
    module = make_module(pricing_type="monthly", wholesale_price_cents=4900)
    refused(database_url, getattr(tenant, role),
            "INSERT INTO public.agency_module_subscriptions (agency_id, module_id, status, billing_cycle) "
            "VALUES (%s, %s, 'active', 'monthly')", (tenant.agency_id, module))
    assert owner_conn.execute("SELECT count(*) AS n FROM agency_module_subscriptions WHERE module_id = %s",
                              (module,)).fetchone()["n"] == 0


def test_owner_cannot_insert_an_active_installation_of_a_module_it_never_paid_for(database_url, tenant, pending,
                                                                                  owner_conn):
    refused(database_url, tenant.owner,
            "INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status, is_enabled) "
            "VALUES (%s, %s, %s, 'active', true)", (tenant.site_id, pending["module"], tenant.agency_id))
    assert owner_conn.execute("SELECT count(*) AS n FROM site_module_installations WHERE module_id = %s",
                              (pending["module"],)).fetchone()["n"] == 0


def test_owner_cannot_re_enable_or_delete_installations_behind_the_api(database_url, api, tenant, make_module,
                                                                       function_client, owner_conn):
    module = make_module(pricing_type="free")
    function_client("subscribe").post("/api/modules/subscribe", user=tenant.owner,
                                      body={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    install = function_client("install")
    assert install.post(f"/api/sites/{tenant.site_id}/modules/{module}", user=tenant.owner, body={}).status == 201
    assert install.delete(f"/api/sites/{tenant.site_id}/modules/{module}", user=tenant.owner).status == 200
    for statement in ("UPDATE public.site_module_installations SET status = 'active', is_enabled = true "
                      "WHERE site_id = %s", "DELETE FROM public.site_module_installations WHERE site_id = %s"):
        refused(database_url, tenant.owner, statement, (tenant.site_id,))
    assert owner_conn.execute("SELECT status FROM site_module_installations WHERE site_id = %s AND module_id = %s",
                              (tenant.site_id, module)).fetchone()["status"] == "disabled"


def test_owner_cannot_delete_its_subscription_and_with_it_the_payment_history(database_url, tenant, pending):
    refused(database_url, tenant.owner, "DELETE FROM public.agency_module_subscriptions WHERE id = %s",
            (pending["subscription"],))


@pytest.mark.parametrize("statement", [
    "UPDATE public.payment_checkouts SET status = 'completed', completed_at = now() WHERE id = %(checkout)s",
    "UPDATE public.payment_checkouts SET amount_cents = 0 WHERE id = %(checkout)s",
    "INSERT INTO public.payment_checkouts (agency_id, subscription_id, module_id, provider, provider_checkout_id, "
    "amount_cents, currency, billing_cycle) SELECT agency_id, id, module_id, 'paddle', 'txn_mine', 0, 'USD', "
    "'monthly' FROM public.agency_module_subscriptions WHERE id = %(subscription)s",
])
def test_owner_cannot_complete_reprice_or_forge_a_checkout(database_url, tenant, pending, owner_conn, statement):
    refused(database_url, tenant.owner, statement, pending)
    rows = owner_conn.execute("SELECT status, amount_cents FROM payment_checkouts WHERE subscription_id = %s",
                              (pending["subscription"],)).fetchall()
    assert rows == [{"status": "open", "amount_cents": 4900}]


@pytest.mark.parametrize("statement", [
    "SELECT * FROM public.payment_events",
    "INSERT INTO public.payment_events (event_id, event_type, occurred_at, payload) "
    "VALUES ('evt_forged', 'transaction.completed', now(), '{}')",
    "SELECT * FROM public.idempotency_records",
    "DELETE FROM public.idempotency_records",
])
def test_owner_has_no_access_to_payment_events_or_idempotency_records(database_url, tenant, statement):
    refused(database_url, tenant.owner, statement)


@pytest.mark.parametrize("role", ["authenticated", "anon"])
def test_request_roles_cannot_execute_the_write_paths(database_url, tenant, make_module, role):
    module = make_module(pricing_type="free")
    refused(database_url, tenant.owner, "SELECT private.subscribe_free_module(%s, %s)", (tenant.agency_id, module),
            role=role)
    refused(database_url, tenant.owner, "SELECT private.install_module(%s, %s, NULL)", (tenant.site_id, module),
            role=role)


def test_api_key_successor_must_be_on_the_keys_own_site(database_url, tenant, other_tenant, function_client):
    keys = function_client("module_api")
    theirs = keys.post(f"/api/sites/{other_tenant.site_id}/api-keys", user=other_tenant.owner, body={}).data
    with connected_as(database_url, "authenticated", tenant.owner) as conn, \
            pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            "INSERT INTO public.site_api_keys (site_id, agency_id, key_prefix, secret_hash, created_by, rotated_from) "
            "VALUES (%s, %s, 'dk_live_x', sha256('x'), %s, %s)",
            (tenant.site_id, tenant.agency_id, tenant.owner, theirs["id"]))


def test_api_key_rows_name_their_creator(database_url, tenant, make_user):
    refused(database_url, tenant.owner,
            "INSERT INTO public.site_api_keys (site_id, agency_id, key_prefix, secret_hash, created_by) "
            "VALUES (%s, %s, 'dk_live_y', sha256('y'), %s)", (tenant.site_id, tenant.agency_id, make_user()))


# The write paths check the caller themselves -------------------------------------------------------

def call_as_backend(database_url: str, user: uuid.UUID, function: str, *args):
    """A write path called the way the handlers call it (as dramac_backend, with the caller's claims)."""
    with connected_as(database_url, "dramac_backend", user) as conn:
        placeholders = ", ".join(["%s"] * len(args))
        result = conn.execute(f"SELECT private.{function}({placeholders}) AS r", args).fetchone()["r"]
        conn.commit()
        return result


@pytest.mark.parametrize("who", ["member", "other_owner"])
def test_write_paths_refuse_a_caller_who_may_not_manage_the_agency(database_url, tenant, other_tenant, make_module,
                                                                   owner_conn, who):
    module = make_module(pricing_type="free")
    user = tenant.member if who == "member" else other_tenant.owner
    for function, args in (("subscribe_free_module", (tenant.agency_id, module)),
                           ("claim_pending_subscription", (tenant.agency_id, module, "none", 0, "sandbox")),
                           ("install_module", (tenant.site_id, module, None)),
                           ("disable_module", (tenant.site_id, module))):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            call_as_backend(database_url, user, function, *args)
    assert owner_conn.execute("SELECT count(*) AS n FROM agency_module_subscriptions WHERE agency_id = %s",
                              (tenant.agency_id,)).fetchone()["n"] == 0


def test_the_free_subscribe_path_refuses_a_paid_module(database_url, tenant, pending):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        call_as_backend(database_url, tenant.owner, "subscribe_free_module", tenant.agency_id, pending["module"])


def test_the_install_path_refuses_a_module_without_an_active_subscription(database_url, tenant, pending, owner_conn):
    result = call_as_backend(database_url, tenant.owner, "install_module", tenant.site_id, pending["module"], None)
    assert result == {"refused": "subscription_required"}
    assert owner_conn.execute("SELECT count(*) AS n FROM site_module_installations WHERE module_id = %s",
                              (pending["module"],)).fetchone()["n"] == 0


def test_the_purchase_path_takes_the_price_from_the_module_and_the_checkout_amount_from_the_subscription(
        database_url, tenant, make_module):
    module = make_module(pricing_type="yearly", wholesale_price_cents=12000, currency="EUR")
    sub = call_as_backend(database_url, tenant.owner, "claim_pending_subscription", tenant.agency_id, module,
                          "percentage", 10, "sandbox")
    assert (sub["status"], sub["billing_cycle"], sub["wholesale_price_cents"], sub["retail_price_cents"],
            sub["currency"]) == ("pending", "yearly", 12000, 13200, "EUR")
    checkout = call_as_backend(database_url, tenant.owner, "open_checkout", sub["id"], uuid.uuid4(), "sandbox",
                               f"txn_{uuid.uuid4().hex}", None)
    assert (checkout["amount_cents"], checkout["currency"], checkout["status"]) == (12000, "EUR", "open")


# The handlers' paths still work --------------------------------------------------------------------

def test_purchase_pay_install_disable_and_reprice_through_the_handlers(api, tenant, pending, function_client,
                                                                       owner_conn):
    raw, headers = signed(completed_event(owner_conn, pending["subscription"]))
    assert api.post("/api/webhooks/paddle", raw_body=raw, headers=headers).data["outcome"] == "applied"
    install = function_client("install")
    path = f"/api/sites/{tenant.site_id}/modules/{pending['module']}"
    assert install.post(path, user=tenant.admin, body={}).status == 201
    assert install.delete(path, user=tenant.admin).status == 200
    assert install.post(path, user=tenant.admin, body={}).status == 201
    repriced = api.patch(f"/api/agencies/{tenant.agency_id}/subscriptions/{pending['subscription']}",
                         user=tenant.owner, body={"markupType": "percentage", "markupValue": 50})
    assert repriced.status == 200 and repriced.data["retailPriceCents"] == 7350
    assert subscription(owner_conn, pending["subscription"]) == {
        "status": "active", "wholesale_price_cents": 4900, "retail_price_cents": 7350}


# The catalog: what splinter checks, on these tables ------------------------------------------------

def test_the_tables_have_rls_and_one_permissive_policy_per_role_and_action(owner_conn):
    rls = {r["relname"]: r["relrowsecurity"] for r in owner_conn.execute(
        "SELECT relname, relrowsecurity FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relname = ANY(%s)", (list(OWNED_TABLES),))}
    assert rls == dict.fromkeys(OWNED_TABLES, True)
    policies = owner_conn.execute(
        "SELECT tablename, roles, cmd FROM pg_policies WHERE schemaname = 'public' AND permissive = 'PERMISSIVE' "
        "AND tablename = ANY(%s)", (list(OWNED_TABLES),)).fetchall()
    per_action: Counter = Counter()
    for p in policies:
        actions = ("SELECT", "INSERT", "UPDATE", "DELETE") if p["cmd"] == "ALL" else (p["cmd"],)
        for role in p["roles"]:
            for action in actions:
                per_action[(p["tablename"], role, action)] += 1
    assert {k: n for k, n in per_action.items() if n > 1} == {}


def test_policies_evaluate_auth_and_helper_calls_once_per_statement(owner_conn):
    rows = owner_conn.execute("SELECT policyname, qual, with_check FROM pg_policies WHERE schemaname = 'public' "
                              "AND tablename = ANY(%s)", (list(OWNED_TABLES),)).fetchall()
    call = re.compile(r"\b(auth|private)\.\w+\(\)")
    wrapped = re.compile(r"\(\s*SELECT\s+(auth|private)\.\w+\(\)", re.IGNORECASE)
    for row in rows:
        for text in (row["qual"], row["with_check"]):
            if text:
                assert len(call.findall(text)) == len(wrapped.findall(text)), (row["policyname"], text)


def test_request_roles_hold_no_write_privilege_on_payment_state(owner_conn):
    for table in PAYMENT_TABLES:
        for role in ("anon", "authenticated"):
            for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
                assert not owner_conn.execute("SELECT has_table_privilege(%s, %s, %s) AS ok",
                                              (role, f"public.{table}", privilege)).fetchone()["ok"], (table, role)
            for privilege in ("INSERT", "UPDATE"):
                assert not owner_conn.execute("SELECT has_any_column_privilege(%s, %s, %s) AS ok",
                                              (role, f"public.{table}", privilege)).fetchone()["ok"], (table, role)
    for table in ("payment_events", "idempotency_records"):
        assert not owner_conn.execute("SELECT has_any_column_privilege('authenticated', %s, 'SELECT') AS ok",
                                      (f"public.{table}",)).fetchone()["ok"]


def test_private_functions_pin_their_search_path_and_definers_are_closed_to_request_roles(owner_conn):
    functions = owner_conn.execute(
        "SELECT p.oid::regprocedure::text AS name, p.prosecdef, p.proconfig FROM pg_proc p "
        "WHERE p.pronamespace = 'private'::regnamespace").fetchall()
    assert {f"private.{w}".replace(" ", "") for w in WRITE_PATHS} <= {f["name"] for f in functions}
    for f in functions:
        assert any(c.startswith("search_path=") for c in f["proconfig"] or []), f["name"]
        executable_by = owner_conn.execute(
            "SELECT has_function_privilege('anon', %s, 'EXECUTE') AS anon, "
            "has_function_privilege('authenticated', %s, 'EXECUTE') AS authenticated",
            (f["name"], f["name"])).fetchone()
        if f["prosecdef"]:
            assert not executable_by["anon"], f["name"]
    for write_path in WRITE_PATHS:
        name = f"private.{write_path}"
        assert not owner_conn.execute("SELECT has_function_privilege('authenticated', %s, 'EXECUTE') AS ok",
                                      (name,)).fetchone()["ok"], name
