"""End to end over the local stack: a signed-in owner subscribes its agency to a free module over HTTP."""

import uuid

from dramac_dev.tokens import issue_token


def test_owner_subscribes_over_http_with_a_dev_token(local_stack, tenant, make_module):
    module = make_module()
    with local_stack.client(tenant.owner) as http:
        reply = http.post("/api/modules/subscribe", json={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
        again = http.post("/api/modules/subscribe", json={"agencyId": str(tenant.agency_id), "moduleId": str(module)})
    assert reply.status_code == 201
    assert reply.json()["data"]["status"] == "active"
    assert again.status_code == 200


def test_health_needs_no_token(local_stack):
    with local_stack.client() as http:
        reply = http.get("/api/health")
    assert reply.status_code == 200
    assert reply.json() == {"success": True, "data": {"status": "ok", "database": "ok"}}


def test_missing_or_bad_token_is_401_in_the_envelope(local_stack):
    with local_stack.client() as http:
        missing = http.get("/api/modules")
        bad = http.get("/api/modules", headers={"authorization": "Bearer not-a-token"})
        expired = http.get("/api/modules",
                           headers={"authorization": f"Bearer {issue_token(uuid.uuid4(), ttl=-120)}"})
    for reply in (missing, bad, expired):
        assert reply.status_code == 401
        assert reply.json()["success"] is False


def test_unknown_api_route_is_404_and_wrong_method_405(local_stack, tenant):
    with local_stack.client(tenant.owner) as http:
        assert http.get("/api/nope").status_code == 404
        wrong = http.delete("/api/modules/subscribe")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


def test_demo_records_are_seeded_for_the_readme(local_stack):
    from dramac_dev import seed

    with local_stack.client(seed.DEMO_USER_ID) as http:
        modules = http.get("/api/modules").json()["data"]
    assert {"crm", "booking", "contact-form"} <= {m["slug"] for m in modules}
