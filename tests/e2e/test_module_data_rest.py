"""The PostgREST surface (``…/modules/{moduleId}/rest``) driven by the real PostgREST client for Python
(``postgrest`` on PyPI, what supabase-py uses), over ``dramac dev``: a CRM-like module installed on a
site; reads, writes, upserts, logical filters, embedding and full-text search; tenancy, roles, API
keys and the refusals, each answered in PostgREST's own shape."""

from __future__ import annotations

import copy

import httpx
import pytest
from postgrest import APIError, CountMethod, SyncPostgrestClient
from support.modules import CRM_MANIFEST, make_crm

from dramac_dev.tokens import issue_token

pytestmark = pytest.mark.e2e


@pytest.fixture
def crm(owner_conn, make_module, tenant, other_tenant):
    _module_id, slug = make_crm(owner_conn, make_module, tenant, other_tenant)
    return slug


def rest_url(stack, t, slug: str) -> str:
    return f"{stack.url}/api/sites/{t.site_id}/modules/{slug}/rest"


def client(stack, t, slug: str, *, user=None, key: str | None = None) -> SyncPostgrestClient:
    """As supabase-py builds it: the user's JWT as the bearer, or a site API key as apikey and bearer."""
    if key is not None:
        headers = {"apikey": key, "Authorization": f"Bearer {key}"}
    else:
        headers = {"Authorization": f"Bearer {issue_token(user)}"}
    return SyncPostgrestClient(rest_url(stack, t, slug), headers=headers)


def site_key(stack, t, **body) -> str:
    with stack.client(t.owner) as http:
        reply = http.post(f"/api/sites/{t.site_id}/api-keys", json={"name": "rest", **body})
        assert reply.status_code == 201, reply.text
        return reply.json()["data"]["key"]


def seed(stack, t, slug, rows):
    with stack.client(t.owner) as http:
        reply = http.post(f"/api/sites/{t.site_id}/modules/{slug}/data/contacts", json=rows)
        assert reply.status_code == 201, reply.text
        return reply.json()["data"]


PEOPLE = [
    {"email": "ada@example.com", "first_name": "Ada", "lead_score": 90, "status": "customer",
     "tags": ["vip", "math"], "profile": {"city": "London", "langs": ["en"]}},
    {"email": "bob@example.com", "first_name": "Bob", "lead_score": 40, "tags": ["sales"]},
    {"email": "cy@example.com", "first_name": None, "lead_score": 70, "status": "active",
     "profile": {"city": "Paris"}},
    {"email": "di@example.org", "first_name": "Di", "lead_score": 10, "status": "active"},
]


def test_reads_are_bare_json_with_select_aliases_filters_order_and_ranges(local_stack, crm, tenant):
    seed(local_stack, tenant, crm, PEOPLE)
    db = client(local_stack, tenant, crm, user=tenant.member)
    every = db.table("contacts").select("*").execute()
    assert isinstance(every.data, list) and sorted(r["email"] for r in every.data)[0] == "ada@example.com"
    assert len(every.data) == 4 and set(every.data[0]) >= {"id", "site_id", "email", "created_at"}
    aliased = (db.table("contacts").select("mail:email,score:lead_score").gte("lead_score", 40)
               .order("lead_score", desc=True).execute())
    assert aliased.data == [{"mail": "ada@example.com", "score": 90}, {"mail": "cy@example.com", "score": 70},
                            {"mail": "bob@example.com", "score": 40}]
    assert [r["email"] for r in db.table("contacts").select("email").ilike("email", "%.org").execute().data] == [
        "di@example.org"]
    assert [r["email"] for r in db.table("contacts").select("email").in_("status", ["active", "customer"])
            .order("email").execute().data] == ["ada@example.com", "cy@example.com", "di@example.org"]
    assert [r["email"] for r in db.table("contacts").select("email").is_("first_name", "null").execute().data] == [
        "cy@example.com"]
    assert [r["email"] for r in db.table("contacts").select("email").not_.is_("first_name", "null")
            .neq("email", "bob@example.com").lt("lead_score", 95).order("email").execute().data] == [
        "ada@example.com", "di@example.org"]
    assert [r["email"] for r in db.table("contacts").select("email").order("first_name", nullsfirst=True)
            .limit(2).execute().data] == ["cy@example.com", "ada@example.com"]
    page = db.table("contacts").select("email", count=CountMethod.exact).order("email").range(1, 2).execute()
    assert [r["email"] for r in page.data] == ["bob@example.com", "cy@example.com"] and page.count == 4
    assert db.table("contacts").select("email").cs("tags", ["vip"]).execute().data == [{"email": "ada@example.com"}]
    assert db.table("contacts").select("email").contains("profile", {"city": "Paris"}).execute().data == [
        {"email": "cy@example.com"}]
    assert db.table("contacts").select("email").ov("tags", ["sales", "nope"]).execute().data == [
        {"email": "bob@example.com"}]
    assert db.table("contacts").select("email").cd("tags", ["sales", "x"]).execute().data == [
        {"email": "bob@example.com"}]
    assert db.table("contacts").select("email").match({"status": "active", "lead_score": 70}).execute().data == [
        {"email": "cy@example.com"}]
    assert db.table("contacts").select("email").filter("email", "match", "^b.b@").execute().data == [
        {"email": "bob@example.com"}]
    assert db.table("contacts").select("email").filter("email", "imatch", "^BOB").execute().data == [
        {"email": "bob@example.com"}]
    assert len(db.table("contacts").select("email").filter("status", "isdistinct", "active").execute().data) == 2


def test_counts_ranges_and_head(local_stack, crm, tenant):
    seed(local_stack, tenant, crm, PEOPLE)
    db = client(local_stack, tenant, crm, user=tenant.member)
    for method in (CountMethod.exact, CountMethod.planned, CountMethod.estimated):
        counted = db.table("contacts").select("id", count=method).limit(1).execute()
        assert counted.count is not None and counted.count >= 1 and len(counted.data) == 1
    assert db.table("contacts").select("id", count=CountMethod.exact).limit(1).execute().count == 4
    head = db.table("contacts").select("*", count=CountMethod.exact, head=True).eq("status", "active").execute()
    assert head.count == 2 and not head.data
    base = rest_url(local_stack, tenant, crm)
    auth = {"authorization": f"Bearer {issue_token(tenant.member)}"}
    with httpx.Client() as http:
        ranged = http.get(f"{base}/contacts?select=email&order=email",
                          headers={**auth, "range": "1-2", "range-unit": "items", "prefer": "count=exact"})
        assert ranged.status_code == 206 and ranged.headers["content-range"] == "1-2/4"
        assert [r["email"] for r in ranged.json()] == ["bob@example.com", "cy@example.com"]
        whole = http.get(f"{base}/contacts?select=email", headers={**auth, "prefer": "count=exact"})
        assert whole.status_code == 200 and whole.headers["content-range"] == "0-3/4"
        assert http.get(f"{base}/contacts", headers=auth).headers["content-range"] == "0-3/*"
        past = http.get(f"{base}/contacts?offset=10", headers={**auth, "prefer": "count=exact"})
        assert past.status_code == 416 and past.json()["code"] == "PGRST103"
        profiled = http.get(f"{base}/contacts", headers={**auth, "accept-profile": "public"})
        assert profiled.status_code == 200
        other = http.get(f"{base}/contacts", headers={**auth, "accept-profile": "private"})
        assert other.status_code == 406 and other.json()["code"] == "PGRST106"


def test_single_and_maybe_single(local_stack, crm, tenant):
    seed(local_stack, tenant, crm, PEOPLE)
    db = client(local_stack, tenant, crm, user=tenant.member)
    ada = db.table("contacts").select("email,lead_score").eq("email", "ada@example.com").single().execute()
    assert ada.data == {"email": "ada@example.com", "lead_score": 90}
    with pytest.raises(APIError) as many:
        db.table("contacts").select("email").single().execute()
    assert many.value.code == "PGRST116" and many.value.details == "The result contains 4 rows"
    assert "JSON object requested" in many.value.message
    with pytest.raises(APIError) as none:
        db.table("contacts").select("email").eq("email", "nobody@example.com").single().execute()
    assert none.value.code == "PGRST116" and none.value.details == "The result contains 0 rows"
    assert db.table("contacts").select("email").eq("email", "nobody@example.com").maybe_single().execute() is None
    found = db.table("contacts").select("email").eq("email", "bob@example.com").maybe_single().execute()
    assert found is not None and found.data == {"email": "bob@example.com"}


def test_errors_are_postgrest_shaped(local_stack, crm, tenant):
    db = client(local_stack, tenant, crm, user=tenant.member)
    with pytest.raises(APIError) as unknown_table:
        db.table("nope").select("*").execute()
    assert unknown_table.value.code == "PGRST205" and unknown_table.value.message
    with pytest.raises(APIError) as unknown_column:
        db.table("contacts").select("nope").execute()
    assert unknown_column.value.code == "42703" and "nope" in unknown_column.value.message
    with pytest.raises(APIError) as bad_operator:
        db.table("contacts").select("*").filter("lead_score", "between", "1").execute()
    assert bad_operator.value.code == "PGRST100" and bad_operator.value.message
    with pytest.raises(APIError) as bad_value:
        db.table("contacts").select("*").eq("lead_score", "many").execute()
    assert bad_value.value.code == "22P02" and "lead_score" in bad_value.value.message


def test_authentication_tenancy_and_api_keys(local_stack, crm, tenant, other_tenant):
    seed(local_stack, tenant, crm, PEOPLE[:2])
    key = site_key(local_stack, tenant)
    as_key = client(local_stack, tenant, crm, key=key)
    assert len(as_key.table("contacts").select("id").execute().data) == 2
    apikey_only = SyncPostgrestClient(rest_url(local_stack, tenant, crm), headers={"apikey": key})
    assert len(apikey_only.table("contacts").select("id").execute().data) == 2
    # another site's key, another agency's user: that site does not exist for them
    other_key = site_key(local_stack, other_tenant)
    with pytest.raises(APIError) as foreign_key:
        client(local_stack, tenant, crm, key=other_key).table("contacts").select("id").execute()
    assert foreign_key.value.code == "site_not_found"
    with pytest.raises(APIError) as outsider:
        client(local_stack, tenant, crm, user=other_tenant.owner).table("contacts").select("id").execute()
    assert outsider.value.code == "site_not_found"
    assert client(local_stack, other_tenant, crm, user=other_tenant.owner).table("contacts").select("id") \
        .execute().data == []
    # a key limited to other modules
    scoped = site_key(local_stack, tenant, modules=["some-other-module"])
    with pytest.raises(APIError) as out_of_scope:
        client(local_stack, tenant, crm, key=scoped).table("contacts").select("id").execute()
    assert out_of_scope.value.code == "42501"
    base = rest_url(local_stack, tenant, crm)
    with httpx.Client() as http:
        anonymous = http.get(f"{base}/contacts")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "PGRST302"
        forged = http.get(f"{base}/contacts", headers={"authorization": "Bearer not-a-jwt"})
        assert forged.status_code == 401 and set(forged.json()) == {"code", "message", "details", "hint"}
        wrong_key = key[:-4] + "AAAA"
        refused = http.get(f"{base}/contacts", headers={"apikey": wrong_key, "authorization": f"Bearer {wrong_key}"})
        assert refused.status_code == 401 and refused.json()["code"] == "PGRST301"


def unique_email_crm(owner_conn, make_module, *tenants) -> str:
    manifest = copy.deepcopy(CRM_MANIFEST)
    contacts = next(t for t in manifest["database"]["tables"] if t["name"] == "contacts")
    next(c for c in contacts["columns"] if c["name"] == "email")["unique"] = True
    return make_crm(owner_conn, make_module, *tenants, manifest=manifest)[1]


def events(owner_conn, t, action: str) -> list[str]:
    rows = owner_conn.execute(
        "SELECT source_entity_id FROM public.automation_events_log WHERE site_id = %s AND event_type LIKE %s "
        "ORDER BY created_at, id", (t.site_id, f"%.contact.{action}")).fetchall()
    return [r["source_entity_id"] for r in rows]


def test_insert_one_or_many_with_prefer_return_and_missing(local_stack, crm, tenant, owner_conn):
    db = client(local_stack, tenant, crm, user=tenant.admin)
    minimal = db.table("contacts").insert({"email": "ada@example.com"}, returning="minimal").execute()
    assert minimal.data == []
    made = db.table("contacts").insert({"email": "bob@example.com", "lead_score": 5}).execute()
    assert made.data[0]["email"] == "bob@example.com" and made.data[0]["status"] == "lead"
    # an array: a column some rows leave out is NULL, or its default with missing=default
    nulls = db.table("contacts").insert([{"email": "c@example.com", "status": "active"},
                                         {"email": "d@example.com"}]).execute()
    assert [r["status"] for r in nulls.data] == ["active", None]
    defaults = db.table("contacts").insert([{"email": "e@example.com", "status": "active"},
                                            {"email": "f@example.com"}], default_to_null=False).execute()
    assert [r["status"] for r in defaults.data] == ["active", "lead"]
    assert len(events(owner_conn, tenant, "created")) == 6
    one = db.table("contacts").insert({"email": "g@example.com"}).single().execute()
    assert one.data["email"] == "g@example.com"
    base = rest_url(local_stack, tenant, crm)
    auth = {"authorization": f"Bearer {issue_token(tenant.owner)}"}
    with httpx.Client() as http:
        located = http.post(f"{base}/contacts", json={"email": "h@example.com"},
                            headers={**auth, "prefer": "return=headers-only"})
        assert located.status_code == 201 and located.headers["location"].startswith("/contacts?id=eq.")
        assert located.text == ""
        rolled = http.post(f"{base}/contacts?select=email", json={"email": "i@example.com"},
                           headers={**auth, "prefer": "return=representation,tx=rollback"})
        assert rolled.status_code == 201 and rolled.json() == [{"email": "i@example.com"}]
        assert "tx=rollback" in rolled.headers["preference-applied"]
    assert db.table("contacts").select("id").eq("email", "i@example.com").execute().data == []


def test_update_and_delete_with_filters(local_stack, crm, tenant, owner_conn):
    seed(local_stack, tenant, crm, PEOPLE)
    db = client(local_stack, tenant, crm, user=tenant.owner)
    updated = db.table("contacts").update({"status": "hot"}).gte("lead_score", 70).execute()
    assert sorted(r["email"] for r in updated.data) == ["ada@example.com", "cy@example.com"]
    assert {r["status"] for r in updated.data} == {"hot"}
    assert len(events(owner_conn, tenant, "updated")) == 2
    counted = db.table("contacts").update({"vip": True}, count=CountMethod.exact, returning="minimal") \
        .eq("status", "hot").execute()
    assert counted.count == 2 and counted.data == []
    deleted = db.table("contacts").delete().eq("email", "bob@example.com").execute()
    assert [r["email"] for r in deleted.data] == ["bob@example.com"]
    assert len(events(owner_conn, tenant, "deleted")) == 1
    # no filter at all: refused, nothing changed; asking for every row explicitly works
    with pytest.raises(APIError) as unfiltered:
        db.table("contacts").update({"status": "gone"}).execute()
    assert unfiltered.value.code == "21000" and unfiltered.value.message == "UPDATE requires a WHERE clause"
    with pytest.raises(APIError) as unfiltered_delete:
        db.table("contacts").delete().execute()
    assert unfiltered_delete.value.code == "21000"
    assert len(db.table("contacts").select("id").execute().data) == 3
    everything = db.table("contacts").delete().not_.is_("id", "null").execute()
    assert len(everything.data) == 3 and len(events(owner_conn, tenant, "deleted")) == 4
    # single() on a write that touches several rows: 406 and rolled back
    seed(local_stack, tenant, crm, PEOPLE[:2])
    with pytest.raises(APIError) as not_one:
        db.table("contacts").update({"status": "x"}).not_.is_("id", "null").single().execute()
    assert not_one.value.code == "PGRST116"
    assert {r["status"] for r in db.table("contacts").select("status").execute().data} == {"customer", "lead"}


def test_upsert_on_a_unique_column_merges_or_ignores(local_stack, owner_conn, make_module, tenant, other_tenant):
    slug = unique_email_crm(owner_conn, make_module, tenant, other_tenant)
    db = client(local_stack, tenant, slug, user=tenant.owner)
    first = db.table("contacts").upsert({"email": "ada@example.com", "lead_score": 10}, on_conflict="email").execute()
    merged = db.table("contacts").upsert([{"email": "ada@example.com", "lead_score": 99},
                                          {"email": "new@example.com", "lead_score": 1}], on_conflict="email").execute()
    assert [(r["email"], r["lead_score"]) for r in merged.data] == [("ada@example.com", 99), ("new@example.com", 1)]
    assert merged.data[0]["id"] == first.data[0]["id"]
    assert len(db.table("contacts").select("id").execute().data) == 2
    assert len(events(owner_conn, tenant, "created")) == 2
    updates = owner_conn.execute(
        "SELECT payload FROM public.automation_events_log WHERE site_id = %s AND event_type LIKE '%%.contact.updated'",
        (tenant.site_id,)).fetchall()
    assert [u["payload"]["previous"]["lead_score"] for u in updates] == [10]
    ignored = db.table("contacts").upsert([{"email": "ada@example.com", "lead_score": 0},
                                           {"email": "third@example.com"}], on_conflict="email",
                                          ignore_duplicates=True).execute()
    assert [r["email"] for r in ignored.data] == ["third@example.com"]
    assert db.table("contacts").select("lead_score").eq("email", "ada@example.com").single().execute().data == {
        "lead_score": 99}
    # by primary key (the default): the row's id
    by_id = db.table("contacts").upsert({"id": first.data[0]["id"], "email": "ada@example.com",
                                         "first_name": "Ada"}).execute()
    assert by_id.data[0]["first_name"] == "Ada" and len(db.table("contacts").select("id").execute().data) == 3
    # the same email on another site is another row: conflicts never cross sites
    other = client(local_stack, other_tenant, slug, user=other_tenant.owner)
    theirs = other.table("contacts").upsert({"email": "ada@example.com", "lead_score": 1}, on_conflict="email").execute()
    assert theirs.data[0]["id"] != first.data[0]["id"]
    assert db.table("contacts").select("lead_score").eq("email", "ada@example.com").single().execute().data == {
        "lead_score": 99}
    with pytest.raises(APIError) as not_unique:
        db.table("contacts").upsert({"email": "x@example.com"}, on_conflict="first_name").execute()
    assert not_unique.value.code == "42P10"
    with pytest.raises(APIError) as duplicate:
        db.table("contacts").insert({"email": "ada@example.com"}).execute()
    assert duplicate.value.code == "23505"


def test_roles_on_the_rest_surface_are_the_module_data_routes(local_stack, crm, tenant):
    """docs/roles.md: members read and write module data; a client user reads its own client's site and
    writes only where the module says ``clientAccess: write`` (the CRM does not); keys read and write."""
    member = client(local_stack, tenant, crm, user=tenant.member)
    assert member.table("contacts").insert({"email": "m@example.com"}).execute().data[0]["email"] == "m@example.com"
    customer = client(local_stack, tenant, crm, user=tenant.client_user)
    with pytest.raises(APIError) as refused:
        customer.table("contacts").insert({"email": "c@example.com"}).execute()
    assert refused.value.code == "42501"
    assert customer.table("contacts").select("email").execute().data == [{"email": "m@example.com"}]
    assert member.table("contacts").delete().eq("email", "m@example.com").execute().data[0]["email"] == "m@example.com"
    key = client(local_stack, tenant, crm, key=site_key(local_stack, tenant))
    assert key.table("contacts").insert({"email": "k@example.com"}).execute().data[0]["email"] == "k@example.com"
    assert member.table("contacts").select("email").execute().data == [{"email": "k@example.com"}]


def test_or_and_nesting(local_stack, crm, tenant):
    seed(local_stack, tenant, crm, PEOPLE)
    db = client(local_stack, tenant, crm, user=tenant.member)
    either = db.table("contacts").select("email").or_("lead_score.gt.80,email.eq.bob@example.com") \
        .order("email").execute()
    assert [r["email"] for r in either.data] == ["ada@example.com", "bob@example.com"]
    nested = db.table("contacts").select("email").or_(
        "status.eq.customer,and(status.eq.active,or(lead_score.lt.20,first_name.is.null))").order("email").execute()
    assert [r["email"] for r in nested.data] == ["ada@example.com", "cy@example.com", "di@example.org"]
    negated = db.table("contacts").select("email").not_.or_("lead_score.gt.50,status.eq.active").execute()
    assert [r["email"] for r in negated.data] == ["bob@example.com"]
    listed = db.table("contacts").select("email").or_('email.in.("ada@example.com","di@example.org"),'
                                                      'first_name.not.is.null').order("email").execute()
    assert [r["email"] for r in listed.data] == ["ada@example.com", "bob@example.com", "di@example.org"]
    base = rest_url(local_stack, tenant, crm)
    auth = {"authorization": f"Bearer {issue_token(tenant.member)}"}
    with httpx.Client() as http:
        both = http.get(f"{base}/contacts", params={"select": "email", "and": "(lead_score.gte.40,lead_score.lte.70)",
                                                     "order": "email"}, headers=auth)
        assert [r["email"] for r in both.json()] == ["bob@example.com", "cy@example.com"]
        broken = http.get(f"{base}/contacts", params={"or": "(lead_score.gt.1"}, headers=auth)
        assert broken.status_code == 400 and broken.json()["code"] == "PGRST100"
    # a filtered PATCH with or=: only the matching rows change
    owner = client(local_stack, tenant, crm, user=tenant.owner)
    changed = owner.table("contacts").update({"vip": True}).or_("lead_score.lt.20,lead_score.gt.80").execute()
    assert sorted(r["email"] for r in changed.data) == ["ada@example.com", "di@example.org"]


def test_embedding_along_the_manifest_foreign_keys_both_ways(local_stack, crm, tenant, other_tenant):
    owner = client(local_stack, tenant, crm, user=tenant.owner)
    acme = owner.table("companies").insert({"name": "Acme", "domain": "acme.test"}).execute().data[0]
    initech = owner.table("companies").insert({"name": "Initech"}).execute().data[0]
    owner.table("contacts").insert([{"email": "ada@acme.test", "company_id": acme["id"], "lead_score": 5},
                                    {"email": "bob@acme.test", "company_id": acme["id"], "lead_score": 9},
                                    {"email": "solo@example.com"}]).execute()
    db = client(local_stack, tenant, crm, user=tenant.member)
    to_one = db.table("contacts").select("email,companies(name)").order("email").execute()
    assert to_one.data == [{"email": "ada@acme.test", "companies": {"name": "Acme"}},
                           {"email": "bob@acme.test", "companies": {"name": "Acme"}},
                           {"email": "solo@example.com", "companies": None}]
    to_many = db.table("companies").select("name,contacts(email)").order("name").execute()
    assert [(c["name"], sorted(x["email"] for x in c["contacts"])) for c in to_many.data] == [
        ("Acme", ["ada@acme.test", "bob@acme.test"]), ("Initech", [])]
    aliased = db.table("contacts").select("email,employer:company_id(name,staff:contacts(email))") \
        .eq("email", "ada@acme.test").single().execute()
    assert aliased.data["employer"]["name"] == "Acme" and sorted(
        s["email"] for s in aliased.data["employer"]["staff"]) == ["ada@acme.test", "bob@acme.test"]
    inner = db.table("contacts").select("email,companies!inner(name)").order("email").execute()
    assert [r["email"] for r in inner.data] == ["ada@acme.test", "bob@acme.test"]
    star = db.table("companies").select("*,contacts(*)").eq("id", initech["id"]).single().execute()
    assert star.data["name"] == "Initech" and star.data["contacts"] == []
    written = owner.table("contacts").insert({"email": "new@acme.test", "company_id": acme["id"]}) \
        .select("email,companies(name)").execute()
    assert written.data == [{"email": "new@acme.test", "companies": {"name": "Acme"}}]
    with pytest.raises(APIError) as unrelated:
        db.table("companies").select("name,deal_notes(body)").execute()
    assert unrelated.value.code == "PGRST200"
    # another site's company is never embedded: a foreign key cannot even point there
    other = client(local_stack, other_tenant, crm, user=other_tenant.owner)
    with pytest.raises(APIError) as foreign:
        other.table("contacts").insert({"email": "x@y.z", "company_id": acme["id"]}).execute()
    assert foreign.value.code == "23503"


def test_full_text_search(local_stack, crm, tenant):
    owner = client(local_stack, tenant, crm, user=tenant.owner)
    owner.table("deal_notes").insert([{"body": "The quick brown fox jumps over the lazy dog"},
                                      {"body": "Foxes are running in the fields"},
                                      {"body": "A slow turtle"}]).execute()
    db = client(local_stack, tenant, crm, user=tenant.member)

    def bodies(response):
        return sorted(r["body"][:9] for r in response.data)

    assert bodies(db.table("deal_notes").select("body").text_search("body", "fox & dog").execute()) == ["The quick"]
    assert bodies(db.table("deal_notes").select("body").text_search(
        "body", "foxes", options={"config": "english"}).execute()) == ["Foxes are", "The quick"]
    assert bodies(db.table("deal_notes").select("body").text_search(
        "body", "lazy dog", options={"type": "plain", "config": "english"}).execute()) == ["The quick"]
    assert bodies(db.table("deal_notes").select("body").text_search(
        "body", "brown fox", options={"type": "phrase", "config": "english"}).execute()) == ["The quick"]
    assert bodies(db.table("deal_notes").select("body").text_search(
        "body", "fox -dog", options={"type": "web_search", "config": "english"}).execute()) == ["Foxes are"]
    assert bodies(db.table("deal_notes").select("body").not_.filter("body", "fts(simple)", "fox").execute()) == [
        "A slow tu", "Foxes are"]
    with pytest.raises(APIError) as unknown_config:
        db.table("deal_notes").select("body").text_search("body", "fox", options={"config": "klingon"}).execute()
    assert unknown_config.value.code.startswith("42") and unknown_config.value.message
