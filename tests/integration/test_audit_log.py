"""The audit trail (migration 0075, ``core.audit``): written in the change's transaction with the actor
the database takes from the claims, readable by the agency's owners only, and append-only for every
role, the table's owner included."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from dramac_common.core import audit, db
from psycopg import sql
from support.handlers import claims_for


def _rows(owner_conn: psycopg.Connection, agency_id: uuid.UUID) -> list[dict]:
    return owner_conn.execute("SELECT * FROM public.audit_log WHERE agency_id = %s ORDER BY id",
                              (agency_id,)).fetchall()


def test_a_committed_change_has_its_row_with_the_actor_from_the_claims(owner_conn, tenant):
    with db.user_unit(claims_for(tenant.admin)) as unit:
        audit.record(unit, "installation.enabled", agency_id=tenant.agency_id, site_id=tenant.site_id,
                     target_type="module", target_id="crm", details={"version": "1.0.0"})
    [row] = _rows(owner_conn, tenant.agency_id)
    assert (row["actor_user_id"], row["actor_role"], row["action"], row["site_id"], row["target_id"],
            row["details"]) == (tenant.admin, "admin", "installation.enabled", tenant.site_id, "crm",
                                {"version": "1.0.0"})


def test_a_rolled_back_change_leaves_no_row(owner_conn, tenant):
    with pytest.raises(RuntimeError), db.user_unit(claims_for(tenant.owner)) as unit:
        audit.record(unit, "api_key.created", agency_id=tenant.agency_id)
        raise RuntimeError("the change failed")
    assert _rows(owner_conn, tenant.agency_id) == []


def test_a_site_api_key_and_a_worker_are_named_as_such(owner_conn, tenant):
    key_id = uuid.uuid4()
    with db.user_unit({"role": "site_api_key", "site_id": str(tenant.site_id), "sub": None,
                       "key_id": str(key_id), "modules": None}) as unit:
        audit.record(unit, "module_data.exported", agency_id=tenant.agency_id, site_id=tenant.site_id)
    with db.service_unit() as unit:
        audit.record(unit, "installation.purged", agency_id=tenant.agency_id, site_id=tenant.site_id)
    key_row, platform_row = _rows(owner_conn, tenant.agency_id)
    assert (key_row["actor_role"], key_row["actor_key_id"], key_row["actor_user_id"]) == (
        "site_api_key", key_id, None)
    assert (platform_row["actor_role"], platform_row["actor_user_id"]) == ("platform", None)


def _as(database_url: str, user: uuid.UUID) -> psycopg.Connection:
    conn = psycopg.connect(database_url)
    conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims_for(user)),))
    conn.execute("SET LOCAL ROLE authenticated")
    return conn


def test_owners_read_their_agencys_trail_and_nobody_else_does(database_url, tenant, other_tenant):
    with db.user_unit(claims_for(tenant.owner)) as unit:
        audit.record(unit, "subscription.markup_changed", agency_id=tenant.agency_id)
    for user, expected in [(tenant.owner, 1), (tenant.admin, 0), (tenant.member, 0), (other_tenant.owner, 0)]:
        with _as(database_url, user) as conn:
            count = conn.execute("SELECT count(*) FROM public.audit_log WHERE agency_id = %s",
                                 (tenant.agency_id,)).fetchone()[0]
            assert count == expected, user


@pytest.mark.parametrize("statement", [
    "INSERT INTO public.audit_log (agency_id, actor_role, action) VALUES (%(agency)s, 'owner', 'x.forged')",
    "UPDATE public.audit_log SET action = 'x.changed' WHERE agency_id = %(agency)s",
    "DELETE FROM public.audit_log WHERE agency_id = %(agency)s",
    "SELECT private.record_audit('x.forged', %(agency)s, NULL, NULL, NULL, '{}')",
])
def test_an_owner_connected_directly_can_neither_forge_nor_change_the_trail(database_url, tenant, statement):
    with db.user_unit(claims_for(tenant.owner)) as unit:
        audit.record(unit, "api_key.revoked", agency_id=tenant.agency_id)
    with _as(database_url, tenant.owner) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement, {"agency": tenant.agency_id})


@pytest.mark.parametrize("statement", [
    sql.SQL("UPDATE public.audit_log SET action = 'x.changed'"),
    sql.SQL("DELETE FROM public.audit_log"),
    sql.SQL("TRUNCATE public.audit_log"),
])
def test_not_even_the_tables_owner_changes_a_row(owner_conn, tenant, statement):
    with db.user_unit(claims_for(tenant.owner)) as unit:
        audit.record(unit, "api_key.revoked", agency_id=tenant.agency_id)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        owner_conn.execute(statement)
    assert len(_rows(owner_conn, tenant.agency_id)) == 1
