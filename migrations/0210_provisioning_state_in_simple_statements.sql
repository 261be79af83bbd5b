-- The provisioner's state read (private.provisioning_state, migrations 0177 and 0195) in three simple
-- statements instead of one (issue 14: provisioning within 1.1x of the same DDL run raw). Every new
-- module's job follows a CREATE SCHEMA, which resets every session's plan cache, so the read is planned
-- again at each such job; the module, its registry rows and whether an installation waits, as one
-- statement (a join with two sublinks), took 0.06-0.09 ms more server CPU to plan and run than three
-- lookups planned one by one (/proc/<backend>/schedstat, interleaved, after a CREATE SCHEMA each time:
-- 0.23 ms against 0.29-0.32 for the whole read). Same arguments, same row: a STABLE function's
-- statements all read the caller's snapshot, so the three see the same state as the one did, and a
-- module that no longer exists leaves module_type and manifest null, as the LEFT JOIN did.
CREATE OR REPLACE FUNCTION private.provisioning_state(p_module_id uuid, p_short_id text, p_schema text, p_version text)
  RETURNS TABLE (schema_exists boolean, tables jsonb, constraints jsonb, relations jsonb, registry jsonb,
                 module_type text, manifest text, version_manifest text, waiting boolean)
  LANGUAGE plpgsql STABLE SET search_path = '' SET plan_cache_mode = force_generic_plan
  AS $$
  #variable_conflict use_column
  BEGIN
    -- a syscache look-up, no plan: the same catalog snapshot the catalog read would use; no schema,
    -- no catalog (tables, constraints and relations stay null)
    schema_exists := pg_catalog.to_regnamespace(pg_catalog.quote_ident(p_schema)) IS NOT NULL;
    IF schema_exists THEN
      SELECT c.tables, c.constraints, c.relations
        INTO tables, constraints, relations
        FROM private.module_catalog_state(p_schema) c;
    END IF;
    -- the module (no row: both stay null)
    SELECT d.module_type, d.manifest::text INTO module_type, manifest
      FROM public.modules_v2 d WHERE d.id = p_module_id;
    -- its registry rows, and those of any module with the same short id
    SELECT coalesce(jsonb_agg(jsonb_build_object('module_id', g.module_id, 'module_short_id', g.module_short_id,
                                                 'schema_name', g.schema_name, 'version', g.version,
                                                 'table_names', g.table_names, 'status', g.status)), '[]'::jsonb)
      INTO registry
      FROM public.module_database_registry g
     WHERE g.module_id = p_module_id OR g.module_short_id = p_short_id;
    -- whether an installation waits (for the provisioning, or for an upgrade)
    waiting := EXISTS (SELECT 1 FROM public.site_module_installations i
                        WHERE i.module_id = p_module_id AND (i.status = 'provisioning' OR i.target_version IS NOT NULL));
    IF p_version IS NOT NULL THEN
      SELECT v.manifest::text INTO version_manifest
        FROM public.module_versions v
       WHERE v.module_id = p_module_id AND v.version = p_version AND v.status IN ('published', 'deprecated');
    END IF;
    RETURN NEXT;
  END
  $$;
