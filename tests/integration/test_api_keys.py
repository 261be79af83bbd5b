"""Site API keys: creation (shown once, stored hashed), use on the data routes, scope, revocation,
expiry and rotation with an overlap period."""

import hashlib

import pytest
from dramac_common.core import auth
from support.modules import make_crm


@pytest.fixture
def api(function_client):
    return function_client("module_api")


@pytest.fixture
def crm(owner_conn, make_module, tenant, other_tenant, aws):
    return make_crm(owner_conn, make_module, tenant, other_tenant)


def keys_path(t):
    return f"/api/sites/{t.site_id}/api-keys"


def data_path(t, module, table, row_id=None):
    path = f"/api/sites/{t.site_id}/modules/{module}/data/{table}"
    return f"{path}/{row_id}" if row_id else path


def new_key(api, t, **body):
    reply = api.post(keys_path(t), user=t.owner, body=body)
    assert reply.status == 201, reply.body
    return reply.data


def test_key_is_shown_once_and_stored_hashed(api, tenant, owner_conn):
    created = new_key(api, tenant, name="Website form")
    assert created["key"].startswith(f"dk_live_{created['id'].replace('-', '')}_")
    assert created["key"].startswith(created["prefix"] + "_") and created["status"] == "active"
    row = owner_conn.execute("SELECT secret_hash FROM site_api_keys WHERE id = %s", (created["id"],)).fetchone()
    assert bytes(row["secret_hash"]) == hashlib.sha256(created["key"].encode()).digest()
    listed = api.get(keys_path(tenant), user=tenant.admin).data
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and created["key"] not in str(listed)


def test_only_managers_handle_keys(api, tenant, other_tenant):
    assert api.post(keys_path(tenant), user=tenant.member, body={}).status == 403
    assert api.get(keys_path(tenant), user=tenant.member).status == 403
    assert api.post(keys_path(tenant), user=other_tenant.owner, body={}).status == 404


def test_key_reads_and_writes_its_sites_data(api, crm, tenant, owner_conn):
    _module_id, slug = crm
    made = new_key(api, tenant)
    key = made["key"]
    created = api.post(data_path(tenant, slug, "contacts"), headers={"x-api-key": key}, body={"email": "k@x"})
    assert created.status == 201 and created.data["site_id"] == str(tenant.site_id)
    listed = api.get(data_path(tenant, slug, "contacts"), headers={"x-api-key": key})
    assert [r["email"] for r in listed.data] == ["k@x"]
    patched = api.patch(data_path(tenant, slug, "contacts", created.data["id"]), headers={"x-api-key": key},
                        body={"lead_score": 5})
    assert patched.status == 200
    used = owner_conn.execute("SELECT last_used_at FROM site_api_keys WHERE id = %s", (made["id"],)).fetchone()
    assert used["last_used_at"] is not None


def test_key_cannot_reach_another_site(api, crm, tenant, other_tenant):
    module_id, _ = crm
    key = new_key(api, tenant)["key"]
    api.post(data_path(other_tenant, module_id, "contacts"), user=other_tenant.owner, body={"email": "b@x"})
    reply = api.get(data_path(other_tenant, module_id, "contacts"), headers={"x-api-key": key})
    assert reply.status == 404 and reply.body["code"] == "site_not_found"


def test_key_claims_let_rls_see_only_its_site(crm, tenant, other_tenant, owner_conn):
    from dramac_common.core import db

    module_id, _ = crm
    short = module_id.hex[:8]
    for t in (tenant, other_tenant):
        owner_conn.execute(f"INSERT INTO mod_{short}.contacts (site_id, email) VALUES (%s, 'x@y')", (t.site_id,))
    scope = auth.SiteApiKey(key_id=tenant.site_id, site_id=tenant.site_id, agency_id=tenant.agency_id,
                                modules=None, created_by=tenant.owner)
    with db.user_unit(scope.db_claims) as unit:
        rows = unit.fetchall(f"SELECT site_id FROM mod_{short}.contacts")
        sites = unit.fetchall("SELECT id FROM public.sites")
    assert {r["site_id"] for r in rows} == {tenant.site_id}
    assert sites == []  # the key acts with no user's rights: agency tables stay closed


def test_key_scoped_to_modules(api, owner_conn, make_module, crm, tenant):
    _module_id, slug = crm
    other_module, _other_slug = make_crm(owner_conn, make_module, tenant)
    key = new_key(api, tenant, modules=[slug])["key"]
    assert api.get(data_path(tenant, slug, "contacts"), headers={"x-api-key": key}).status == 200
    denied = api.get(data_path(tenant, other_module, "contacts"), headers={"x-api-key": key})
    assert denied.status == 403 and denied.body["code"] == "api_key_scope"


@pytest.mark.parametrize("bad", ["", "nope", "dk_live_" + "0" * 32 + "_" + "A" * 43])
def test_malformed_or_unknown_keys_are_401(api, crm, tenant, bad):
    module_id, _ = crm
    reply = api.get(data_path(tenant, module_id, "contacts"), headers={"x-api-key": bad} if bad else {})
    assert reply.status == 401


def test_tampered_secret_is_401(api, crm, tenant):
    module_id, _ = crm
    key = new_key(api, tenant)["key"]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert api.get(data_path(tenant, module_id, "contacts"), headers={"x-api-key": tampered}).status == 401


def test_revoked_key_stops_working(api, crm, tenant):
    module_id, _ = crm
    created = new_key(api, tenant)
    headers = {"x-api-key": created["key"]}
    assert api.get(data_path(tenant, module_id, "contacts"), headers=headers).status == 200
    revoked = api.delete(f"{keys_path(tenant)}/{created['id']}", user=tenant.owner)
    assert revoked.status == 200 and revoked.data["status"] == "revoked"
    reply = api.get(data_path(tenant, module_id, "contacts"), headers=headers)
    assert reply.status == 401 and reply.body["code"] == "invalid_api_key"


def test_expired_key_stops_working(api, crm, tenant, owner_conn):
    module_id, _ = crm
    created = new_key(api, tenant, expiresAt="2999-01-01T00:00:00Z")
    owner_conn.execute("UPDATE site_api_keys SET expires_at = now() - interval '1 second' WHERE id = %s",
                       (created["id"],))
    assert api.get(data_path(tenant, module_id, "contacts"), headers={"x-api-key": created["key"]}).status == 401
    assert api.post(keys_path(tenant), user=tenant.owner, body={"expiresAt": "2000-01-01T00:00:00Z"}).status == 400


def test_rotation_keeps_the_old_key_for_the_overlap_then_only_the_new(api, crm, tenant, owner_conn):
    _module_id, slug = crm
    old = new_key(api, tenant, name="CRM sync", modules=[slug])
    rotated = api.post(keys_path(tenant), user=tenant.owner, body={"rotatesKeyId": old["id"], "overlapSeconds": 3600})
    assert rotated.status == 201
    new = rotated.data
    assert new["rotatedFrom"] == old["id"] and new["name"] == "CRM sync" and new["modules"] == [slug]
    for key in (old["key"], new["key"]):  # both work during the overlap
        assert api.get(data_path(tenant, slug, "contacts"), headers={"x-api-key": key}).status == 200
    old_row = owner_conn.execute("SELECT expires_at - now() AS left FROM site_api_keys WHERE id = %s",
                                 (old["id"],)).fetchone()
    assert 3500 < old_row["left"].total_seconds() <= 3600
    owner_conn.execute("UPDATE site_api_keys SET expires_at = now() - interval '1 second' WHERE id = %s", (old["id"],))
    assert api.get(data_path(tenant, slug, "contacts"), headers={"x-api-key": old["key"]}).status == 401
    assert api.get(data_path(tenant, slug, "contacts"), headers={"x-api-key": new["key"]}).status == 200
    again = api.post(keys_path(tenant), user=tenant.owner, body={"rotatesKeyId": old["id"]})
    assert again.status == 404  # an expired key cannot be rotated again


def test_keys_cannot_manage_keys(api, tenant):
    key = new_key(api, tenant)["key"]
    assert api.get(keys_path(tenant), headers={"x-api-key": key}).status == 401


def test_a_bearer_without_an_authorizer_is_verified_by_the_handler_and_refused_in_lambda_unconfigured(
        api, crm, tenant, env):
    from dramac_dev.tokens import issue_token

    _, slug = crm
    headers = {"authorization": f"Bearer {issue_token(tenant.member)}"}  # no authorizer claims in the event
    locally = api.get(data_path(tenant, slug, "contacts"), headers=headers)
    env.set("AWS_LAMBDA_FUNCTION_NAME", "module-api")  # in AWS, with no key material configured
    env.unset("DRAMAC_JWT_SECRET")
    env.unset("DRAMAC_JWT_JWKS_URL")
    in_lambda = api.get(data_path(tenant, slug, "contacts"), headers=headers)
    assert locally.status == 200
    assert (in_lambda.status, in_lambda.body["code"]) == (401, "invalid_token")


def test_key_scoped_to_modules_reaches_no_other_modules_widget_storage(api, owner_conn, make_module, crm, tenant):
    from support.modules import install_module

    _, slug = crm
    widget = make_module(module_type="widget")
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=widget)
    storage = f"/api/sites/{tenant.site_id}/modules/{widget}/storage/colour"
    key = new_key(api, tenant, modules=[slug])["key"]
    written = api.request("PUT", storage, headers={"x-api-key": key}, body={"value": "red"})
    read = api.get(storage, headers={"x-api-key": key})
    assert [(r.status, r.body["code"]) for r in (written, read)] == [(403, "api_key_scope")] * 2
    assert owner_conn.execute("SELECT count(*) AS n FROM module_data WHERE module_id = %s",
                              (widget,)).fetchone()["n"] == 0
    allowed = new_key(api, tenant, modules=[slug, owner_conn.execute(
        "SELECT slug FROM modules_v2 WHERE id = %s", (widget,)).fetchone()["slug"]])["key"]
    assert api.request("PUT", storage, headers={"x-api-key": allowed}, body={"value": "red"}).status == 200
