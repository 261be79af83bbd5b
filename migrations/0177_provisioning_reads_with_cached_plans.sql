-- The provisioner's two statements of its own, beside the DDL it runs, as plpgsql functions (issue 14:
-- provisioning within 1.1x of the same DDL run raw). Sent as text, both were planned again at every job:
-- the state read (the module, its registry rows and its schema's catalog) took 1.1 ms to plan for 0.3 ms
-- of execution, the activation 0.5 ms for 0.1 ms. A function's statements are planned once per session
-- (a pooled connection of a warm container) and kept, as generic plans: their cost does not depend on
-- the values (every look-up is by a unique or indexed key), so no custom plan is worth its planning.
-- What they read and write is unchanged (dramac_common.provisioning.provisioner and ddl describe it).

-- What exists in a module schema (ddl.CatalogState). Its relations are found through pg_depend (each
-- table, sequence or view depends on its namespace, and pg_depend is indexed by what is depended on),
-- their indexes through pg_index.indrelid, their columns and constraints through indexes too: the cost
-- follows the size of this schema, not the number of relations in the database.
CREATE OR REPLACE FUNCTION private.module_catalog_state(p_schema text)
  RETURNS TABLE (schema_exists boolean, tables jsonb, constraints jsonb, relations jsonb)
  LANGUAGE plpgsql STABLE SET search_path = '' SET plan_cache_mode = force_generic_plan
  AS $$
  #variable_conflict use_column
  BEGIN
    RETURN QUERY
    WITH ns AS (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = p_schema),
    own AS MATERIALIZED (
      SELECT c.oid, c.relname, c.relkind
        FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid
       WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
         AND d.refobjid = (SELECT oid FROM ns) AND d.refobjsubid = 0
         AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'n'
         AND c.relnamespace = (SELECT oid FROM ns))
    SELECT
      EXISTS (SELECT 1 FROM ns),
      (SELECT coalesce(jsonb_object_agg(c.relname, cols.columns), '{}'::jsonb)
         FROM own c
         CROSS JOIN LATERAL (
           SELECT coalesce(jsonb_object_agg(a.attname,
                    jsonb_build_array(pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull)),
                    '{}'::jsonb) AS columns
             FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) cols
        WHERE c.relkind IN ('r', 'p')),
      (SELECT coalesce(jsonb_agg(jsonb_build_array(c.relname, con.conname)), '[]'::jsonb)
         FROM own c JOIN pg_catalog.pg_constraint con ON con.conrelid = c.oid),
      (SELECT coalesce(jsonb_agg(r.relname), '[]'::jsonb) FROM (
         SELECT c.relname FROM own c
         UNION ALL
         SELECT ic.relname FROM own c
           JOIN pg_catalog.pg_index i ON i.indrelid = c.oid
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid) r);
  END
  $$;

-- A provisioning job's state, read under the module's lock: the schema's catalog, the registry rows of
-- the module or of its short id (a collision), the module with its current manifest, and the manifest
-- of p_version when that version is published or deprecated; each manifest with the SHA-256 of its
-- jsonb text (the provisioner's cache of validated manifests is keyed by it).
CREATE OR REPLACE FUNCTION private.provisioning_state(p_module_id uuid, p_short_id text, p_schema text,
                                                      p_version text)
  RETURNS TABLE (schema_exists boolean, tables jsonb, constraints jsonb, relations jsonb, registry jsonb,
                 module jsonb, version_manifest jsonb, version_manifest_digest text)
  LANGUAGE plpgsql STABLE SET search_path = '' SET plan_cache_mode = force_generic_plan
  AS $$
  #variable_conflict use_column
  BEGIN
    RETURN QUERY
    SELECT c.schema_exists, c.tables, c.constraints, c.relations,
      (SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]'::jsonb) FROM (
         SELECT g.module_id, g.module_short_id, g.schema_name, g.version, g.table_names, g.status
           FROM public.module_database_registry g
          WHERE g.module_id = p_module_id OR g.module_short_id = p_short_id) r),
      (SELECT to_jsonb(m) FROM (
         SELECT d.id, d.slug, d.module_type, d.manifest,
                encode(pg_catalog.sha256(convert_to(d.manifest::text, 'UTF8')), 'hex') AS manifest_digest
           FROM public.modules_v2 d WHERE d.id = p_module_id) m),
      v.manifest,
      encode(pg_catalog.sha256(convert_to(v.manifest::text, 'UTF8')), 'hex')
    FROM private.module_catalog_state(p_schema) c
    LEFT JOIN public.module_versions v
      ON v.module_id = p_module_id AND v.version = p_version AND v.status IN ('published', 'deprecated');
  END
  $$;

-- Once the module's schema is provisioned at p_schema_version (null: a module without a schema): its
-- installations waiting for provisioning become active, the upgrades waiting for the schema
-- (target_version at or below p_schema_version) are finished, and one marketplace.module.installed or
-- .upgraded event is written per installation (the payload of installations.lifecycle; the actor is
-- the user who asked). Returns the counts and the events' ids, for the events queue.
CREATE OR REPLACE FUNCTION private.activate_provisioned_installations(p_module_id uuid, p_schema_version text)
  RETURNS TABLE (activated bigint, upgraded bigint, event_ids uuid[])
  LANGUAGE plpgsql VOLATILE SET search_path = '' SET plan_cache_mode = force_generic_plan
  AS $$
  #variable_conflict use_column
  BEGIN
    RETURN QUERY
    WITH done AS (
      UPDATE public.site_module_installations SET status = 'active', error = NULL
       WHERE module_id = p_module_id AND status = 'provisioning'
      RETURNING id, site_id, agency_id, module_id, status, 'provisioning'::text AS previous_status,
                installed_version AS version, coalesce(updated_by, installed_by) AS actor),
    waiting AS (
      SELECT id, installed_version AS from_version FROM public.site_module_installations
       WHERE module_id = p_module_id AND target_version IS NOT NULL AND status <> 'provisioning'
         AND p_schema_version IS NOT NULL
         AND private.semver_key(target_version) <= private.semver_key(p_schema_version)
         FOR UPDATE),
    up AS (
      UPDATE public.site_module_installations i SET installed_version = i.target_version, target_version = NULL
        FROM waiting w WHERE i.id = w.id
      RETURNING i.id, i.site_id, i.agency_id, i.module_id, i.status, i.status AS previous_status,
                i.installed_version AS version, coalesce(i.updated_by, i.installed_by) AS actor, w.from_version),
    m AS (SELECT slug FROM public.modules_v2 WHERE id = p_module_id),
    ev AS (
      INSERT INTO public.automation_events_log
        (site_id, event_type, payload, source_module, source_entity_type, source_entity_id)
      SELECT d.site_id, 'marketplace.module.installed',
             jsonb_build_object('site_id', d.site_id, 'agency_id', d.agency_id, 'module_id', d.module_id,
               'module_slug', m.slug, 'installation_id', d.id, 'version', d.version, 'actor_id', d.actor,
               'status', d.status, 'previous_status', d.previous_status),
             'marketplace', 'installation', d.id::text
        FROM done d CROSS JOIN m
      UNION ALL
      SELECT d.site_id, 'marketplace.module.upgraded',
             jsonb_build_object('site_id', d.site_id, 'agency_id', d.agency_id, 'module_id', d.module_id,
               'module_slug', m.slug, 'installation_id', d.id, 'version', d.version, 'actor_id', d.actor,
               'status', d.status, 'previous_status', d.previous_status)
             || jsonb_build_object('from_version', d.from_version, 'to_version', d.version),
             'marketplace', 'installation', d.id::text
        FROM up d CROSS JOIN m
      RETURNING id)
    SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM up), ARRAY(SELECT id FROM ev);
  END
  $$;

REVOKE ALL ON FUNCTION private.module_catalog_state(text), private.provisioning_state(uuid, text, text, text),
  private.activate_provisioned_installations(uuid, text) FROM PUBLIC;
-- The catalog read shows only what pg_catalog shows anyone; the upgrade preview reads it as the caller.
GRANT EXECUTE ON FUNCTION private.module_catalog_state(text) TO authenticated, service_role, dramac_backend;
GRANT EXECUTE ON FUNCTION private.provisioning_state(uuid, text, text, text),
  private.activate_provisioned_installations(uuid, text) TO dramac_backend;
