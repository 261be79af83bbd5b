-- The module data API's gate lookup (contract section 5): a module (by id or slug), its installation
-- on a site and its registry row, in one round trip. It runs as its owner so that a site API key,
-- whose claims carry no user, can see its own site's installation; it returns nothing unless the
-- caller may read the site (private.readable_site_ids(): the sites of the caller's agencies, or the
-- one site of a site API key), or is a super admin.

CREATE OR REPLACE FUNCTION private.module_data_target(p_site_id uuid, p_module_id uuid, p_module_slug text)
  RETURNS TABLE (module_id uuid, slug text, module_type text, manifest jsonb,
                 installation_status text, is_enabled boolean,
                 schema_name text, table_names text[], registry_version text, registry_updated_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT m.id, m.slug, m.module_type, m.manifest, i.status, i.is_enabled,
           r.schema_name, r.table_names, r.version, r.updated_at
    FROM public.modules_v2 m
    LEFT JOIN public.site_module_installations i ON i.module_id = m.id AND i.site_id = p_site_id
    LEFT JOIN public.module_database_registry r ON r.module_id = m.id
    WHERE (m.id = p_module_id OR m.slug = p_module_slug)
      AND (p_site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) OR (SELECT private.is_super_admin()))
  $$;

REVOKE ALL ON FUNCTION private.module_data_target(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.module_data_target(uuid, uuid, text) TO authenticated, service_role;
