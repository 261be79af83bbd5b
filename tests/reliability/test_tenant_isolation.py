"""Tenant isolation, probed at random: users of one agency (owner, admin, member, client user) call every route of
the HTTP API through the real handlers, and the module data SDK directly, with path and body ids drawn
from the other agency's real resources, their own, and random UUIDs. Whatever they try, nothing of
the other agency shows in a response, an id of the other agency answers 404, and the other agency's
rows are byte-for-byte what they were."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.world import Agency, World, reliability_settings, tenant_snapshot

from dramac_dev.routes import ROUTES, Route

PARAM = re.compile(r"\{([^}]+)\}")
# Ids of the shared catalogue: every agency may name them, so they are not the other tenant's.
SHARED_PARAMS = {"moduleId"}
# A webhook token is a capability (whoever holds the URL may post to it), never probed with the victim's.
CAPABILITY_PARAMS = {"token"}


def body_for(route: Route, pick: Any) -> Any:
    """A plausible body for a write route, with ids picked like the path's."""
    path = route.path
    if route.method in ("GET", "DELETE"):
        return None
    if path == "/api/modules/subscribe":
        return {"agencyId": pick("agencyId"), "moduleId": pick("moduleId")}
    if path.endswith("/purchase"):
        return {"agencyId": pick("agencyId"), "billingCycle": "monthly"}
    if "/subscriptions/" in path:
        return {"markupType": "percentage", "markupValue": 25}
    if path == "/api/webhooks/paddle":
        return {"event_id": f"evt_{uuid.uuid4().hex}", "event_type": "transaction.completed",
                "data": {"custom_data": {"subscription_id": pick("subscriptionId")}}}
    if path.endswith("/automation/workflows"):
        return {"name": "probe", "triggerEventType": "crm.contact.created",
                "steps": [{"type": "set_variable", "config": {"name": "x", "value": 1}}]}
    if "/automation/workflows/" in path:
        return {"name": "probe-renamed", "isActive": False}
    if path.endswith("/automation/events"):
        return {"eventType": "crm.contact.created", "payload": {"email": "probe@example.test"}}
    if path.endswith("/automation/webhooks"):
        return {"name": "probe", "workflowId": pick("workflowId")}
    if path.startswith("/api/webhooks/automation/"):
        return {"probe": True}
    if path.endswith("/data/_batch"):
        return {"operations": [{"op": "update", "table": "contacts", "id": pick("id"),
                                "values": {"first_name": "probe"}},
                               {"op": "delete", "table": "contacts", "id": pick("id")}]}
    if "/data/" in path and path.endswith("{id}"):
        return {"first_name": "probe", "site_id": pick("siteId")}
    if "/data/" in path:
        return {"email": "probe@example.test", "site_id": pick("siteId")}
    if "/storage/" in path:
        return {"value": {"probe": True}}
    if path.endswith("/api-keys"):
        return {"name": "probe", "rotatesKeyId": pick("keyId")}
    return {}


@st.composite
def probes(draw: st.DrawFn, world: World) -> dict[str, Any]:
    route = draw(st.sampled_from(ROUTES))
    attacker_side = draw(st.sampled_from(["a", "b"]))
    attacker, victim = (world.a, world.b) if attacker_side == "a" else (world.b, world.a)
    user = draw(st.sampled_from(attacker.users))
    sent_victim: set[str] = set()

    def pick(name: str, counts: bool = True) -> str:
        if name == "moduleId":
            return str(draw(st.sampled_from([world.crm_module, world.free_module, world.paid_module, world.crm_slug,
                                             uuid.uuid4()])))
        if name == "table":
            return draw(st.sampled_from(["contacts", "companies", "deal_notes", "nope"]))
        if name == "key":
            return draw(st.sampled_from(["theme", "probe", "a.b"]))
        if name in CAPABILITY_PARAMS:
            return draw(st.sampled_from([*[s for s in attacker.secrets if len(s) > 30][:1], uuid.uuid4().hex]))
        choices = [("victim", v) for v in victim.ids.get(name, [])] + \
                  [("own", v) for v in attacker.ids.get(name, [])] + [("random", uuid.uuid4())]
        kind, value = draw(st.sampled_from(choices))
        if kind == "victim" and counts:
            sent_victim.add(str(value))
        return str(value)

    params = {name: pick(name) for name in PARAM.findall(route.path)}
    victim_scope = {params.get("siteId"), params.get("agencyId")} & sent_victim
    path = route.path
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    body = body_for(route, pick)
    if isinstance(body, dict) and body.get("agencyId") in sent_victim:
        victim_scope.add(body["agencyId"])
    query = None
    if route.method == "GET" and route.path.endswith("/executions"):
        query = {"workflowId": pick("workflowId", counts=False)}  # a filter: an empty page is the answer
    return {"route": route, "path": path, "user": user, "body": body, "query": query,
            "attacker": attacker, "victim": victim, "sent_victim": sent_victim,
            "victim_scope": victim_scope}


def leaked(reply_text: str, victim: Agency, sent: set[str]) -> list[str]:
    """The victim's ids and secrets found in a response, except ids the caller sent itself."""
    found = [i for i in victim.all_ids() - sent if i in reply_text]
    return found + [s for s in victim.secrets if s in reply_text]


@pytest.fixture
def clients(world):
    from support.handlers import FunctionClient

    return {name: FunctionClient(name) for name in {r.function for r in ROUTES}}


def test_no_route_reads_or_writes_another_agency(world, clients, owner_conn):
    probed: list[str] = []

    @reliability_settings(scale=4)
    @given(probe=probes(world))
    def probe_route(probe: dict[str, Any]) -> None:
        route, victim = probe["route"], probe["victim"]
        before = tenant_snapshot(owner_conn, victim, world.crm_module)
        reply = clients[route.function].request(route.method, probe["path"], user=probe["user"], body=probe["body"],
                                                query=probe["query"])
        described = f"{route.method} {probe['path']} body={probe['body']} -> {reply.status} {reply.body}"
        assert reply.status < 500, described
        assert not leaked(json.dumps(reply.body), victim, probe["sent_victim"]), described
        if probe["sent_victim"] and route.auth != "none":
            # in their own agency a role below owner may be refused for its role first: that reveals nothing
            own_scope_refusal = probe["user"] != probe["attacker"].owner and not probe["victim_scope"]
            assert reply.status in ((400, 403, 404) if own_scope_refusal else (400, 404)), described
        assert tenant_snapshot(owner_conn, victim, world.crm_module) == before, described
        probed.append(route.route_key)

    probe_route()
    assert probed, "no probe ran"


@st.composite
def sdk_probes(draw: st.DrawFn, world: World) -> dict[str, Any]:
    attacker, victim = draw(st.sampled_from([(world.a, world.b), (world.b, world.a)]))
    victim_row = str(draw(st.sampled_from(victim.ids["id"])))
    operation = draw(st.sampled_from(["find_by_id", "find", "count", "update_by_id", "update", "delete_by_id",
                                      "delete", "create_one", "batch", "open_victim_site"]))
    return {"attacker": attacker, "victim": victim, "user": draw(st.sampled_from(attacker.users)),
            "row": victim_row, "operation": operation, "table": draw(st.sampled_from(["contacts", "companies"]))}


def run_sdk_operation(sdk: Any, probe: dict[str, Any]) -> Any:
    table, row, victim = probe["table"], probe["row"], probe["victim"]
    match probe["operation"]:
        case "find_by_id":
            return sdk.find_by_id(table, row)
        case "find":
            return sdk.find(table, {"id": row}) + sdk.find(table, {"site_id": str(victim.site_id)})
        case "count":
            return sdk.count(table, {"site_id": str(victim.site_id)})
        case "update_by_id":
            return sdk.update_by_id(table, row, {"first_name": "probe"} if table == "contacts" else {"name": "probe"})
        case "update":
            return sdk.update(table, {"id": row}, {"first_name": "probe"} if table == "contacts" else {"name": "p"})
        case "delete_by_id":
            return sdk.delete_by_id(table, row)
        case "delete":
            return sdk.delete(table, {"site_id": str(victim.site_id)})
        case "create_one":
            values = {"email": "probe@example.test"} if table == "contacts" else {"name": "probe"}
            return sdk.create_one(table, {**values, "site_id": str(victim.site_id)})
        case "batch":
            return sdk.batch([{"op": "update", "table": table, "id": row, "values": {}},
                              {"op": "delete", "table": table, "id": row}])
    raise AssertionError(probe["operation"])


def test_module_data_sdk_never_reaches_another_agencys_rows(world, owner_conn):
    from dramac_common.core import db
    from dramac_common.core.errors import ApiError
    from dramac_common.module_data import ModuleDatabaseSDK
    from support.handlers import claims_for

    @reliability_settings(scale=2)
    @given(probe=sdk_probes(world))
    def probe_sdk(probe: dict[str, Any]) -> None:
        attacker, victim = probe["attacker"], probe["victim"]
        before = tenant_snapshot(owner_conn, victim, world.crm_module)
        outcome: Any = None
        try:
            with db.user_unit(claims_for(probe["user"])) as unit:
                site = victim.site_id if probe["operation"] == "open_victim_site" else attacker.site_id
                sdk = ModuleDatabaseSDK.for_request(unit, site_id=site, module=world.crm_slug)
                if probe["operation"] == "open_victim_site":
                    outcome = sdk.find("contacts")
                else:
                    outcome = run_sdk_operation(sdk, probe)
        except psycopg.errors.InsufficientPrivilege as exc:
            # RLS refused a write the caller's role may not make (the HTTP layer checks roles first):
            # a client user, on a module whose manifest keeps its data read-only for clients
            assert probe["user"] == attacker.client_user, (probe, exc)
            outcome = None
        except ApiError as exc:
            assert exc.status in (400, 403, 404), (probe, exc.status, exc.code)
            if probe["operation"] == "open_victim_site":
                assert exc.status == 404, (probe, exc.code)
            outcome = exc.envelope()
        text = json.dumps(outcome, default=str)
        assert not leaked(text, victim, {probe["row"], str(victim.site_id)}), (probe, text)
        if probe["operation"] in ("find_by_id", "update_by_id", "delete_by_id"):
            assert outcome is None or (isinstance(outcome, dict) and outcome.get("success") is False), (probe, outcome)
        if probe["operation"] == "count":
            assert outcome == 0, probe
        assert tenant_snapshot(owner_conn, victim, world.crm_module) == before, probe

    probe_sdk()


@pytest.fixture
def sibling_site(world, owner_conn):
    """A site of another client of agency A, with module rows, a workflow and an API key of its own:
    what A's client user (of A's first client) must never reach."""
    from support.handlers import FunctionClient
    from support.modules import install_module

    from dramac_dev import seed

    a = world.a
    site = seed.create_site(owner_conn, a.agency_id, client_id=seed.create_client(owner_conn, a.agency_id))
    install_module(owner_conn, site_id=site, agency_id=a.agency_id, module_id=world.crm_module)
    secret = f"sibling-{uuid.uuid4().hex[:10]}"
    module_api, automation = FunctionClient("module_api"), FunctionClient("automation")
    rows = module_api.post(f"/api/sites/{site}/modules/{world.crm_slug}/data/contacts", user=a.owner,
                           body=[{"email": f"{secret}-{i}@example.test", "first_name": secret} for i in range(2)])
    assert rows.status == 201, rows.body
    workflow = automation.post(f"/api/sites/{site}/automation/workflows", user=a.owner, body={
        "name": secret, "triggerEventType": f"{world.crm_slug}.contact.created",
        "steps": [{"type": "set_variable", "config": {"name": "x", "value": 1}}]})
    assert workflow.status == 201, workflow.body
    key = module_api.post(f"/api/sites/{site}/api-keys", user=a.owner, body={"name": secret})
    assert key.status == 201, key.body
    ids = {"siteId": [site], "id": [uuid.UUID(r["id"]) for r in rows.data],
           "workflowId": [uuid.UUID(workflow.data["id"])], "keyId": [uuid.UUID(key.data["id"])]}
    return {"site": site, "ids": ids, "secrets": [secret, key.data["key"]],
            "view": Agency(a.agency_id, a.owner, a.admin, a.member, site, a.client_user)}


def test_a_client_user_never_reaches_another_clients_site(world, clients, owner_conn, sibling_site):
    """Client users of one client probe every route with the ids of a sibling client's site (same
    agency): nothing of it shows, nothing of it changes, and its site answers as if it did not exist."""
    a = world.a
    sibling_ids = {str(v) for values in sibling_site["ids"].values() for v in values}

    @st.composite
    def client_probes(draw: st.DrawFn) -> dict[str, Any]:
        route = draw(st.sampled_from(ROUTES))

        def pick(name: str) -> str:
            if name == "moduleId":
                return str(draw(st.sampled_from([world.crm_module, world.crm_slug, world.free_module])))
            if name == "table":
                return draw(st.sampled_from(["contacts", "companies"]))
            if name == "key":
                return "theme"
            if name == "agencyId":
                return str(a.agency_id)
            choices = [*sibling_site["ids"].get(name, []), *a.ids.get(name, []), uuid.uuid4()]
            return str(draw(st.sampled_from(choices)))

        params = {name: pick(name) for name in PARAM.findall(route.path)}
        path = route.path
        for name, value in params.items():
            path = path.replace("{" + name + "}", value)
        return {"route": route, "path": path, "body": body_for(route, pick), "params": params}

    @reliability_settings(scale=2)
    @given(probe=client_probes())
    def probe_route(probe: dict[str, Any]) -> None:
        route = probe["route"]
        before = tenant_snapshot(owner_conn, sibling_site["view"], world.crm_module)
        reply = clients[route.function].request(route.method, probe["path"], user=a.client_user, body=probe["body"])
        described = f"{route.method} {probe['path']} body={probe['body']} -> {reply.status} {reply.body}"
        assert reply.status < 500, described
        sent = set(probe["params"].values()) | set(re.findall(r"[0-9a-f-]{36}", json.dumps(probe["body"])))
        text = json.dumps(reply.body)
        assert not [i for i in sibling_ids - sent if i in text], described
        assert not [s for s in sibling_site["secrets"] if s in text], described
        if probe["params"].get("siteId") == str(sibling_site["site"]):
            assert reply.status in (400, 404), described
        elif route.auth != "none":
            # of its own client's site a client user may read module data, and nothing else
            reads_module_data = route.method in ("GET", "HEAD") and any(
                part in route.path for part in ("/data/", "/storage", "/rest/"))
            assert reply.status in (400, 403, 404) or reads_module_data, described
        assert tenant_snapshot(owner_conn, sibling_site["view"], world.crm_module) == before, described

    probe_route()
