"""A database deployed before migrations 0070-0073, with a module schema the provisioner of that time
created, is brought in line by running the migrations: the module's policies name the module, its
foreign keys to public.sites are gone (so the site it named can be deleted, and deleting a site no
longer touches every module table), a deleted site's installations take its rows, and the linter's
rules hold."""

from __future__ import annotations

import shutil
import uuid

import psycopg
import pytest
from dramac_common.core.migrate import apply_migrations, default_migrations_dir, migration_files
from psycopg.rows import dict_row
from support.catalog_lint import ALL_RULES, findings

from dramac_dev import localdb, seed

FIRST_NEW = "0070"
MODULE_ID = uuid.UUID("aaaaaaaa-0000-4000-8000-00000000a7a7")
SCHEMA = "mod_aaaaaaaa"

# What the provisioner created for a table with a key to public.sites before 0073 (its DDL verbatim in
# substance: forced RLS, grants, four policies on the site helpers, composite site key).
OLD_MODULE_SCHEMA = f"""
CREATE SCHEMA {SCHEMA};
REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC;
GRANT USAGE ON SCHEMA {SCHEMA} TO authenticated;
CREATE TABLE {SCHEMA}.referrals (
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  site_id uuid NOT NULL,
  partner_site uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT referrals_pkey PRIMARY KEY (id),
  CONSTRAINT referrals_site_id_fkey FOREIGN KEY (site_id) REFERENCES public.sites (id) ON DELETE CASCADE,
  CONSTRAINT referrals_site_id_id_key UNIQUE (site_id, id)
);
ALTER TABLE {SCHEMA}.referrals ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
REVOKE ALL ON {SCHEMA}.referrals FROM PUBLIC, anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON {SCHEMA}.referrals TO authenticated;
CREATE POLICY site_read ON {SCHEMA}.referrals AS PERMISSIVE FOR SELECT TO authenticated
  USING (site_id = ANY ((SELECT private.readable_site_ids())::uuid[]));
CREATE POLICY site_insert ON {SCHEMA}.referrals AS PERMISSIVE FOR INSERT TO authenticated
  WITH CHECK (site_id = ANY ((SELECT private.writable_site_ids())::uuid[]));
CREATE POLICY site_update ON {SCHEMA}.referrals AS PERMISSIVE FOR UPDATE TO authenticated
  USING (site_id = ANY ((SELECT private.writable_site_ids())::uuid[]))
  WITH CHECK (site_id = ANY ((SELECT private.writable_site_ids())::uuid[]));
CREATE POLICY site_delete ON {SCHEMA}.referrals AS PERMISSIVE FOR DELETE TO authenticated
  USING (site_id = ANY ((SELECT private.writable_site_ids())::uuid[]));
ALTER TABLE {SCHEMA}.referrals ADD CONSTRAINT referrals_partner_site_fkey
  FOREIGN KEY (partner_site) REFERENCES public.sites (id) ON DELETE NO ACTION ON UPDATE NO ACTION;
CREATE INDEX referrals_partner_site_fk_idx ON {SCHEMA}.referrals USING btree (site_id, partner_site);
INSERT INTO public.module_database_registry (module_id, module_short_id, uses_schema, schema_name, table_names,
                                             version)
VALUES ('{MODULE_ID}', 'aaaaaaaa', true, '{SCHEMA}', ARRAY['referrals'], '1.0.0');
"""


@pytest.fixture
def deployed_before(server_url, tmp_path):
    """A database migrated up to (not including) 0070, privileged as on Supabase."""
    old = tmp_path / "migrations"
    old.mkdir()
    for path in migration_files(default_migrations_dir()):
        if path.name[:4] < FIRST_NEW:
            shutil.copy(path, old / path.name)
    name, url = localdb.create_database(server_url, prefix="dramac_upgrade")
    try:
        apply_migrations(url, old)
        yield url
    finally:
        localdb.drop_database(server_url, name)


def test_an_old_module_schema_is_brought_in_line_and_its_sites_key_dropped(deployed_before):
    with psycopg.connect(deployed_before, autocommit=True, row_factory=dict_row) as conn:
        a_site, b_site = (seed.create_site(conn, agency, client_id=seed.create_client(conn, agency))
                          for agency in (seed.create_agency(conn, owner=seed.create_user(conn)) for _ in range(2)))
        seed.create_module(conn, module_id=MODULE_ID, manifest={"version": "1.0.0"})
        conn.execute(OLD_MODULE_SCHEMA)
        # agency B's row names agency A's site: the old key confirmed that site exists, and now holds it
        conn.execute(f"INSERT INTO {SCHEMA}.referrals (site_id, partner_site) VALUES (%s, %s)", (b_site, a_site))
        with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
            conn.execute("DELETE FROM public.sites WHERE id = %s", (a_site,))

        applied = apply_migrations(deployed_before)
        assert applied and all(name[:4] >= FIRST_NEW for name in applied)

        keys = [r["conname"] for r in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
            (f"{SCHEMA}.referrals",))]
        assert keys == []  # 0073 dropped the key that left the schema, 0090 the one to public.sites
        policies = {r["policyname"]: r["qual"] or r["with_check"] for r in conn.execute(
            "SELECT policyname, qual, with_check FROM pg_policies WHERE schemaname = %s", (SCHEMA,))}
        assert set(policies) == {"site_read", "site_insert", "site_update", "site_delete"}
        assert f"private.module_readable_site_ids('{MODULE_ID}'::uuid)" in policies["site_read"]
        assert all(f"private.module_writable_site_ids('{MODULE_ID}'::uuid)" in policies[p]
                   for p in ("site_insert", "site_update", "site_delete"))
        for rule in ALL_RULES:
            assert [f for f in findings(conn, rule) if f.startswith(SCHEMA)] == [], rule
        conn.execute("DELETE FROM public.sites WHERE id = %s", (a_site,))
        [kept] = conn.execute(f"SELECT site_id, partner_site FROM {SCHEMA}.referrals").fetchall()
        assert kept == {"site_id": b_site, "partner_site": a_site}  # the column and its data stay
        # B's site, with the module installed: deleting it takes its rows (the installation's purge, 0090)
        conn.execute("INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status) "
                     "SELECT id, %s, agency_id, 'active' FROM public.sites WHERE id = %s", (MODULE_ID, b_site))
        conn.execute("DELETE FROM public.sites WHERE id = %s", (b_site,))
        assert conn.execute(f"SELECT count(*) AS n FROM {SCHEMA}.referrals").fetchone()["n"] == 0
