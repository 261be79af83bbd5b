-- The event registry's lookup of the modules installed on a site (their manifests declare events).
-- Like private.module_data_target (0031) it runs as its owner, so that a site API key, whose claims
-- carry no user and cannot read site_module_installations, can emit its own site's module events;
-- it returns nothing unless the caller may read the site, or is a super admin.

CREATE OR REPLACE FUNCTION private.site_installed_modules(p_site_id uuid)
  RETURNS TABLE (slug text, name text, manifest jsonb)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT m.slug, m.name, m.manifest
    FROM public.site_module_installations i
    JOIN public.modules_v2 m ON m.id = i.module_id
    WHERE i.site_id = p_site_id AND i.status <> 'failed'
      AND (p_site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) OR (SELECT private.is_super_admin()))
  $$;

REVOKE ALL ON FUNCTION private.site_installed_modules(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.site_installed_modules(uuid) TO authenticated, service_role;
