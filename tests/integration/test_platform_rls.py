"""Row-level security on platform tables, queried as `authenticated` with a user's claims."""

import psycopg
import pytest
from dramac_common.core import db
from support.handlers import claims_for


def _visible(user, query, params=()):
    with db.user_unit(claims_for(user)) as unit:
        return unit.fetchall(query, params)


@pytest.mark.parametrize(
    "table, column",
    [("agencies", "id"), ("agency_members", "agency_id"), ("clients", "agency_id"), ("sites", "agency_id")],
)
def test_user_of_agency_a_sees_none_of_agency_b_rows(tenant, other_tenant, table, column):
    rows = _visible(tenant.member, f"SELECT {column} AS agency FROM public.{table}")
    agencies = {r["agency"] for r in rows}
    assert tenant.agency_id in agencies
    assert other_tenant.agency_id not in agencies


def test_user_sees_own_subscriptions_only(tenant, other_tenant, owner_conn, make_module):
    module = make_module()
    for t in (tenant, other_tenant):
        owner_conn.execute(
            "INSERT INTO agency_module_subscriptions (agency_id, module_id, status) VALUES (%s, %s, 'active')",
            (t.agency_id, module),
        )
    rows = _visible(tenant.owner, "SELECT agency_id FROM public.agency_module_subscriptions")
    assert [r["agency_id"] for r in rows] == [tenant.agency_id]


def test_member_cannot_write_agency_rows_but_owner_can(tenant):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.user_unit(claims_for(tenant.member)) as unit:
            unit.execute("INSERT INTO public.clients (agency_id, name) VALUES (%s, 'x')", (tenant.agency_id,))
    with db.user_unit(claims_for(tenant.owner)) as unit:
        unit.execute("INSERT INTO public.clients (agency_id, name) VALUES (%s, 'x')", (tenant.agency_id,))


def test_owner_cannot_insert_rows_into_another_agency(tenant, other_tenant):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.user_unit(claims_for(tenant.owner)) as unit:
            unit.execute("INSERT INTO public.clients (agency_id, name) VALUES (%s, 'x')", (other_tenant.agency_id,))


def test_update_of_another_agency_row_changes_nothing(tenant, other_tenant, owner_conn):
    with db.user_unit(claims_for(tenant.owner)) as unit:
        changed = unit.execute("UPDATE public.sites SET name = 'hijacked' WHERE id = %s",
                               (other_tenant.site_id,)).rowcount
    assert changed == 0
    name = owner_conn.execute("SELECT name FROM sites WHERE id = %s", (other_tenant.site_id,)).fetchone()["name"]
    assert name != "hijacked"


def test_user_cannot_make_itself_super_admin(tenant):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.user_unit(claims_for(tenant.owner)) as unit:
            unit.execute("UPDATE public.profiles SET is_super_admin = true WHERE id = auth.uid()")


def test_super_admin_sees_every_agency(tenant, other_tenant, make_user):
    admin = make_user(super_admin=True)
    agencies = {r["id"] for r in _visible(admin, "SELECT id FROM public.agencies")}
    assert {tenant.agency_id, other_tenant.agency_id} <= agencies


def test_unpublished_modules_are_invisible_to_users(tenant, make_module):
    draft = make_module(status="draft")
    published = make_module()
    ids = {r["id"] for r in _visible(tenant.owner, "SELECT id FROM public.modules_v2")}
    assert published in ids and draft not in ids


def test_anon_has_no_access_to_platform_tables(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM public.agencies")
