-- Module tables (schemas mod_<short id>, created by the provisioner) in one place:
-- private.secure_module_table() gives a table its row-level security, privileges and policies. The
-- provisioner calls it for every table it creates; below, it brings every table provisioned before
-- this migration in line, so old and new schemas cannot differ.
--
-- What changes for tables provisioned earlier:
-- * the policies read the module's own scope: a site API key limited to other modules sees and
--   writes nothing here (private.module_readable_site_ids / module_writable_site_ids, 0071);
-- * a manifest foreign key may no longer reach outside the module's schema. A key to public.sites on
--   a column other than site_id let agency B store a row naming agency A's site (proof that the site
--   exists) and then kept agency A from deleting its own site; every row already belongs to its site
--   through site_id, so such keys are dropped (the column and its data stay, as a plain uuid).
--   Keys between the module's tables are (site_id, column) -> (site_id, key) since the first
--   provisioner, so a row can only point at a row of its own site.

CREATE OR REPLACE FUNCTION private.secure_module_table(p_schema text, p_table text, p_module_id uuid)
  RETURNS void
  LANGUAGE plpgsql SET search_path = ''
  AS $$
DECLARE
  qualified text;
  policy record;
  readers text := format('site_id = ANY ((SELECT private.module_readable_site_ids(%L::uuid))::uuid[])', p_module_id);
  writers text := format('site_id = ANY ((SELECT private.module_writable_site_ids(%L::uuid))::uuid[])', p_module_id);
BEGIN
  IF p_schema IS NULL OR p_schema !~ '^mod_[a-f0-9]{8}$' THEN
    RAISE EXCEPTION 'not a module schema: %', p_schema USING ERRCODE = '22023';
  END IF;
  IF p_module_id IS NULL THEN
    RAISE EXCEPTION 'a module table needs its module id' USING ERRCODE = '22023';
  END IF;
  qualified := format('%I.%I', p_schema, p_table);
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', qualified);
  EXECUTE format('REVOKE ALL ON %s FROM PUBLIC, anon, authenticated', qualified);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO authenticated', qualified);
  -- Exactly these four policies: one permissive policy per command (splinter lint 0006).
  FOR policy IN SELECT p.polname FROM pg_catalog.pg_policy p WHERE p.polrelid = qualified::regclass LOOP
    EXECUTE format('DROP POLICY %I ON %s', policy.polname, qualified);
  END LOOP;
  EXECUTE format('CREATE POLICY site_read ON %s AS PERMISSIVE FOR SELECT TO authenticated USING (%s)',
                 qualified, readers);
  EXECUTE format('CREATE POLICY site_insert ON %s AS PERMISSIVE FOR INSERT TO authenticated WITH CHECK (%s)',
                 qualified, writers);
  EXECUTE format('CREATE POLICY site_update ON %s AS PERMISSIVE FOR UPDATE TO authenticated USING (%s) WITH CHECK (%s)',
                 qualified, writers, writers);
  EXECUTE format('CREATE POLICY site_delete ON %s AS PERMISSIVE FOR DELETE TO authenticated USING (%s)',
                 qualified, writers);
END
$$;

REVOKE ALL ON FUNCTION private.secure_module_table(text, text, uuid) FROM PUBLIC;

DO $$
DECLARE
  target record;
  fk record;
BEGIN
  -- Foreign keys that leave the module's schema, other than the implicit site_id -> public.sites(id).
  FOR fk IN
    SELECT n.nspname AS schema_name, c.relname AS table_name, con.conname
    FROM pg_catalog.pg_constraint con
    JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_class r ON r.oid = con.confrelid
    WHERE con.contype = 'f' AND n.nspname ~ '^mod_[a-f0-9]{8}$' AND r.relnamespace <> c.relnamespace
      AND NOT (con.confrelid = 'public.sites'::regclass
               AND con.conkey = ARRAY[(SELECT a.attnum FROM pg_catalog.pg_attribute a
                                       WHERE a.attrelid = c.oid AND a.attname = 'site_id')])
  LOOP
    RAISE NOTICE 'dropping foreign key %.%.% (it leaves the module''s schema)', fk.schema_name, fk.table_name, fk.conname;
    EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I', fk.schema_name, fk.table_name, fk.conname);
  END LOOP;

  FOR target IN
    SELECT r.module_id, r.schema_name, c.relname AS table_name
    FROM public.module_database_registry r
    JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema_name
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
    WHERE r.schema_name ~ '^mod_[a-f0-9]{8}$'
    ORDER BY r.schema_name, c.relname
  LOOP
    PERFORM private.secure_module_table(target.schema_name, target.table_name, target.module_id);
  END LOOP;
END
$$;
