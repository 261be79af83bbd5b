-- Deleting a site costs in proportion to the modules installed on it, never to the number of modules
-- the platform has provisioned.
--
-- Until now every module table carried `FOREIGN KEY (site_id) REFERENCES public.sites ON DELETE
-- CASCADE`, so deleting one site locked and scanned every table of every module schema, installed on
-- that site or not (21 / 107 / 368 ms at 0 / 100 / 400 modules, "out of shared memory" at 1,000: the
-- lock table overflows), and each key's RI triggers slowed every DDL.
--
-- Now:
-- * module tables have no foreign key to public.sites (the provisioner stops creating it; the keys of
--   tables provisioned earlier are dropped below). site_id stays NOT NULL and indexed ((site_id, id)
--   is unique on every module table);
-- * a site's module data goes with the installation rows that prove it could exist: when a row of
--   site_module_installations is deleted (with its site, its agency, or its module: nothing else
--   deletes one; uninstalling disables and keeps the data), private.purge_installation_data deletes
--   that site's rows from that module's tables, in the same transaction. A site with 3 installations
--   costs 3 modules' deletes, whether the platform has 10 modules or 10,000;
-- * rows a purge could not reach (a module whose registry row is gone) are orphans nobody can see:
--   every policy reads site_id = ANY(the caller's sites), and a deleted site is nobody's.
--
-- On very large existing databases: the DO block below takes one lock per module table in this
-- migration's transaction; with more module tables than max_locks_per_transaction x max_connections
-- (6,400 with the defaults) raise max_locks_per_transaction for the migration.

CREATE OR REPLACE FUNCTION private.purge_installation_data() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
  AS $$
DECLARE
  module_schema text;
  deletes text;
BEGIN
  SELECT r.schema_name INTO module_schema
    FROM public.module_database_registry r
   WHERE r.module_id = OLD.module_id AND r.uses_schema AND r.schema_name ~ '^mod_[a-f0-9]{8}$';
  IF module_schema IS NULL THEN
    RETURN NULL;  -- a module without tables (widget, integration: module_data cascades) or deprovisioned
  END IF;
  -- Every table of the schema, found through pg_depend (indexed by the namespace; pg_class has no index
  -- on relnamespace), deleted in ONE statement: foreign keys between the module's tables (any ON DELETE,
  -- RESTRICT included) are checked once every table has lost the site's rows.
  SELECT string_agg(format('d%s AS (DELETE FROM %I.%I WHERE site_id = $1)', c.oid, module_schema, c.relname), ', ')
    INTO deletes
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class c ON c.oid = d.objid
   WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass
     AND d.refobjid = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = module_schema)
     AND d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'n' AND c.relkind IN ('r', 'p')
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attname = 'site_id' AND NOT a.attisdropped);
  IF deletes IS NOT NULL THEN
    EXECUTE 'WITH ' || deletes || ' SELECT 1' USING OLD.site_id;
  END IF;
  RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION private.purge_installation_data() FROM PUBLIC;

DROP TRIGGER IF EXISTS purge_installation_data ON public.site_module_installations;
CREATE TRIGGER purge_installation_data AFTER DELETE ON public.site_module_installations
  FOR EACH ROW EXECUTE FUNCTION private.purge_installation_data();

-- Tables provisioned before this migration: drop their key to public.sites.
DO $$
DECLARE
  fk record;
BEGIN
  FOR fk IN
    SELECT n.nspname AS schema_name, c.relname AS table_name, con.conname
    FROM pg_catalog.pg_constraint con
    JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE con.contype = 'f' AND con.confrelid = 'public.sites'::regclass AND n.nspname ~ '^mod_[a-f0-9]{8}$'
    ORDER BY n.nspname, c.relname, con.conname
  LOOP
    EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I', fk.schema_name, fk.table_name, fk.conname);
  END LOOP;
END
$$;
