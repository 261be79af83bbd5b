"""Hostile manifests fed to the real provisioner: whatever a module developer writes in names, types,
defaults, checks, index predicates and foreign keys, nothing outside the module's own schema changes,
and a refused manifest changes nothing at all."""

import copy
import json
import uuid

import pytest
from dramac_common.provisioning import provisioner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dramac_dev.seed import CRM_MANIFEST

CATALOG_FINGERPRINT = """
SELECT md5(string_agg(x, E'\\n' ORDER BY x)) AS fingerprint, (SELECT count(*) FROM public.sites) AS sites FROM (
  SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || c.relrowsecurity::text
         || c.relforcerowsecurity::text || ' ' || coalesce(c.relacl::text, '') AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
  UNION ALL SELECT 'ns ' || nspname || ' ' || coalesce(nspacl::text, '') FROM pg_namespace
   WHERE nspname NOT LIKE 'pg_temp%%' AND nspname NOT LIKE 'pg_toast_temp%%'
  UNION ALL SELECT 'proc ' || p.oid::text || ' ' || p.proname || ' ' || coalesce(p.proacl::text, '') FROM pg_proc p
  UNION ALL SELECT 'policy ' || schemaname || '.' || tablename || '.' || policyname || ' ' || coalesce(qual, '')
    FROM pg_policies
  UNION ALL SELECT 'role ' || rolname || ' ' || rolsuper::text || rolbypassrls::text FROM pg_roles
  UNION ALL SELECT 'trigger ' || tgrelid::regclass::text || '.' || tgname FROM pg_trigger
  UNION ALL SELECT 'setting ' || name || '=' || setting FROM pg_settings WHERE name IN ('search_path', 'role')
) s
"""

FRAGMENTS = [
    "'", "''", ";", "--", "/*", "*/", "$$", "$q$", "\\", '"', "E'\\''", "(SELECT 1)", "DROP TABLE public.sites",
    "DROP SCHEMA public CASCADE", "pg_sleep(1)", "set_config('role','postgres',false)", "public.sites", ")", "(",
    ",", "lead_score", "0", "now()", "'x'", "IN", "OR 1=1", "::regclass", "\n", "auth.users", "current_user",
    "GRANT ALL ON public.sites TO anon", "CREATE ROLE evil SUPERUSER", "lower(email)", "email", "TRUE",
]
hostile_text = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=5).map(" ".join)
hostile_name = st.one_of(
    st.sampled_from(["contacts", "sites", "public", "pg_class", "x; drop", 'a"b', "select", "t" * 64, "ok_1"]),
    hostile_text,
)


@st.composite
def hostile_manifests(draw):
    manifest = copy.deepcopy(CRM_MANIFEST)
    contacts = manifest["database"]["tables"][1]
    target = draw(st.sampled_from(["table", "column", "type", "default", "check", "where", "index_name", "using",
                                   "fk_table", "fk_schema", "fk_action", "entity"]))
    value = draw(hostile_name if target in ("table", "column", "index_name", "fk_table", "entity") else hostile_text)
    if target == "table":
        contacts["name"] = value
    elif target == "column":
        contacts["columns"][1]["name"] = value
    elif target == "type":
        contacts["columns"][1]["type"] = value
    elif target == "default":
        contacts["columns"][3]["default"] = value
    elif target == "check":
        contacts["columns"][4]["check"] = value
    elif target == "where":
        contacts["indexes"][0]["where"] = value
    elif target == "index_name":
        contacts["indexes"][0]["name"] = value
    elif target == "using":
        contacts["indexes"][0]["using"] = value
    elif target == "fk_table":
        contacts["foreignKeys"][0]["references"]["table"] = value
    elif target == "fk_schema":
        contacts["foreignKeys"][0]["references"]["schema"] = value
    elif target == "fk_action":
        contacts["foreignKeys"][0]["onDelete"] = value
    else:
        contacts["entity"] = value
    return manifest


@pytest.fixture
def module(make_module):
    return make_module(module_id=uuid.uuid4(), module_type="app", manifest=CRM_MANIFEST)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(manifest=hostile_manifests())
def test_hostile_table_definitions_leave_the_catalog_unchanged(module, owner_conn, manifest):
    before = owner_conn.execute(CATALOG_FINGERPRINT).fetchone()
    owner_conn.execute("UPDATE modules_v2 SET manifest = %s WHERE id = %s", (json.dumps(manifest), module))
    outcome = provisioner.run_job("provision", module)
    if outcome.status == "done":
        # An accepted manifest changed only the module's own schema, which deprovisioning removes.
        provisioner.deprovision_module(module)
    assert owner_conn.execute(CATALOG_FINGERPRINT).fetchone() == before


def test_a_refused_manifest_creates_nothing(module, owner_conn):
    before = owner_conn.execute(CATALOG_FINGERPRINT).fetchone()
    manifest = copy.deepcopy(CRM_MANIFEST)
    manifest["database"]["tables"][1]["columns"][3]["default"] = "'lead'; DROP TABLE public.sites; --"
    owner_conn.execute("UPDATE modules_v2 SET manifest = %s WHERE id = %s", (json.dumps(manifest), module))
    outcome = provisioner.run_job("provision", module)
    assert outcome.status == "failed"
    assert "table contacts, column status: default: unexpected character ';'" in outcome.detail["error"]
    assert owner_conn.execute(CATALOG_FINGERPRINT).fetchone() == before
