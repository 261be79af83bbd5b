"""End to end over `dramac dev`: a CRM-like module installed on a site; contacts created, listed,
filtered, updated and deleted over HTTP, with a dev JWT and with a site API key."""

from support.modules import make_crm


def test_contacts_lifecycle_over_http(local_stack, owner_conn, make_module, tenant):
    _module_id, slug = make_crm(owner_conn, make_module, tenant)
    base = f"/api/sites/{tenant.site_id}/modules/{slug}/data/contacts"
    with local_stack.client(tenant.owner) as http:
        created = http.post(base, json=[{"email": "ada@example.com", "lead_score": 80},
                                        {"email": "bob@example.com", "lead_score": 20}])
        assert created.status_code == 201, created.text
        ada = created.json()["data"][0]
        listed = http.get(base, params={"lead_score": "gte.50", "count": "exact"}).json()
        assert [r["email"] for r in listed["data"]] == ["ada@example.com"] and listed["count"] == 1
        patched = http.patch(f"{base}/{ada['id']}", json={"status": "customer"})
        assert patched.status_code == 200 and patched.json()["data"]["status"] == "customer"
        assert http.delete(f"{base}/{ada['id']}").status_code == 200
        assert http.get(f"{base}/{ada['id']}").status_code == 404
        bad = http.get(base, params={"lead_score": "between.1"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_query"
        key = http.post(f"/api/sites/{tenant.site_id}/api-keys", json={"name": "e2e"}).json()["data"]["key"]
    with local_stack.client() as anonymous:
        assert anonymous.get(base).status_code == 401
        with_key = anonymous.get(base, headers={"x-api-key": key})
        assert with_key.status_code == 200 and [r["email"] for r in with_key.json()["data"]] == ["bob@example.com"]
        made = anonymous.post(base, headers={"x-api-key": key}, json={"email": "key@example.com"})
        assert made.status_code == 201
        assert anonymous.get(base, headers={"x-api-key": key, "authorization": "Bearer nope"}).status_code == 401
