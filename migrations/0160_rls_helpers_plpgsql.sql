-- The row-level security helpers in PL/pgSQL, same answers (issue 14).
--
-- They were LANGUAGE sql with SECURITY DEFINER or a SET search_path, which PostgreSQL never inlines:
-- each call parsed and planned its body again (0.17-0.24 ms of planning against 0.02 ms of execution,
-- two to five calls per statement). A PL/pgSQL function keeps its statements' plans for the session,
-- so a pooled connection plans each helper once. Nothing that was inlined before changes: auth.uid(),
-- auth.jwt() and auth.role() stay SQL (no SET, no SECURITY DEFINER: the planner inlines them), and the
-- policies still call the helpers in an InitPlan, so their plans (index scans on site_id = ANY (...))
-- are the same. Signatures, volatility, SECURITY DEFINER, search_path, owners and grants are kept
-- (CREATE OR REPLACE keeps owners and grants).

CREATE OR REPLACE FUNCTION private.is_super_admin() RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN coalesce((SELECT p.is_super_admin FROM public.profiles p WHERE p.id = auth.uid()), false);
  END
  $$;

CREATE OR REPLACE FUNCTION private.member_agency_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(m.agency_id), '{}') FROM public.agency_members m WHERE m.user_id = auth.uid());
  END
  $$;

CREATE OR REPLACE FUNCTION private.managed_agency_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(m.agency_id), '{}') FROM public.agency_members m
            WHERE m.user_id = auth.uid() AND m.role IN ('owner', 'admin'));
  END
  $$;

CREATE OR REPLACE FUNCTION private.owned_agency_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(m.agency_id), '{}') FROM public.agency_members m
            WHERE m.user_id = auth.uid() AND m.role = 'owner');
  END
  $$;

CREATE OR REPLACE FUNCTION private.member_site_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
            JOIN public.agency_members m ON m.agency_id = s.agency_id
            WHERE m.user_id = auth.uid());
  END
  $$;

CREATE OR REPLACE FUNCTION private.managed_site_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
            JOIN public.agency_members m ON m.agency_id = s.agency_id
            WHERE m.user_id = auth.uid() AND m.role IN ('owner', 'admin'));
  END
  $$;

CREATE OR REPLACE FUNCTION private.client_site_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
            JOIN public.client_users c ON c.client_id = s.client_id AND c.agency_id = s.agency_id
            WHERE c.user_id = auth.uid());
  END
  $$;

CREATE OR REPLACE FUNCTION private.readable_site_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_claims jsonb := auth.jwt();
  BEGIN
    IF v_claims ->> 'role' = 'site_api_key' THEN
      RETURN ARRAY[(v_claims ->> 'site_id')::uuid];
    END IF;
    RETURN (SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
            JOIN public.agency_members m ON m.agency_id = s.agency_id
            WHERE m.user_id = auth.uid());
  END
  $$;

CREATE OR REPLACE FUNCTION private.writable_site_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_claims jsonb := auth.jwt();
  BEGIN
    IF v_claims ->> 'role' = 'site_api_key' THEN
      RETURN ARRAY[(v_claims ->> 'site_id')::uuid];
    END IF;
    RETURN private.member_site_ids();
  END
  $$;

CREATE OR REPLACE FUNCTION private.agency_role(p_agency_id uuid) RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    IF private.is_super_admin() THEN
      RETURN 'super_admin';
    END IF;
    RETURN coalesce(
      (SELECT m.role FROM public.agency_members m WHERE m.agency_id = p_agency_id AND m.user_id = auth.uid()),
      (SELECT 'client' FROM public.client_users c WHERE c.agency_id = p_agency_id AND c.user_id = auth.uid()));
  END
  $$;

CREATE OR REPLACE FUNCTION private.site_role(p_site_id uuid) RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    IF private.is_super_admin() THEN
      RETURN (SELECT 'super_admin' FROM public.sites s WHERE s.id = p_site_id);
    END IF;
    RETURN coalesce(
      (SELECT m.role FROM public.sites s
       JOIN public.agency_members m ON m.agency_id = s.agency_id AND m.user_id = auth.uid()
       WHERE s.id = p_site_id),
      (SELECT 'client' FROM public.sites s
       JOIN public.client_users c ON c.client_id = s.client_id AND c.agency_id = s.agency_id AND c.user_id = auth.uid()
       WHERE s.id = p_site_id));
  END
  $$;

CREATE OR REPLACE FUNCTION private.can_manage_agency(p_agency_id uuid) RETURNS boolean
  LANGUAGE plpgsql STABLE SET search_path = ''
  AS $$
  BEGIN
    RETURN p_agency_id = ANY (private.managed_agency_ids()) OR private.is_super_admin();
  END
  $$;

CREATE OR REPLACE FUNCTION private.can_own_agency(p_agency_id uuid) RETURNS boolean
  LANGUAGE plpgsql STABLE SET search_path = ''
  AS $$
  BEGIN
    RETURN p_agency_id = ANY (private.owned_agency_ids()) OR private.is_super_admin();
  END
  $$;

CREATE OR REPLACE FUNCTION private.api_key_module_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_claims jsonb := auth.jwt();
  BEGIN
    IF coalesce(v_claims ->> 'role', '') <> 'site_api_key'
       OR coalesce(jsonb_typeof(v_claims -> 'modules'), 'null') = 'null' THEN
      RETURN NULL;
    END IF;
    IF jsonb_typeof(v_claims -> 'modules') <> 'array' THEN
      RETURN '{}'::uuid[];
    END IF;
    RETURN (SELECT coalesce(array_agg(m.id), '{}') FROM public.modules_v2 m
            WHERE m.slug IN (SELECT jsonb_array_elements_text(v_claims -> 'modules')));
  END
  $$;

CREATE OR REPLACE FUNCTION private.api_key_event_prefixes() RETURNS text[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_claims jsonb := auth.jwt();
    v_modules uuid[];
  BEGIN
    IF coalesce(v_claims ->> 'role', '') <> 'site_api_key' THEN
      RETURN NULL;
    END IF;
    v_modules := private.api_key_module_ids();
    RETURN (
      SELECT coalesce(array_agg(DISTINCT p.prefix), '{}') FROM (
        SELECT btrim(regexp_replace(m.slug, '[^a-z0-9_]+', '_', 'g'), '_') AS prefix, m.id
        FROM public.site_module_installations i
        JOIN public.modules_v2 m ON m.id = i.module_id
        WHERE i.site_id = (v_claims ->> 'site_id')::uuid AND i.status <> 'failed'
      ) p
      WHERE p.prefix NOT IN ('marketplace', 'automation')
        AND (v_modules IS NULL OR p.id = ANY (v_modules)));
  END
  $$;

CREATE OR REPLACE FUNCTION private.client_event_prefixes() RETURNS text[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(DISTINCT btrim(regexp_replace(m.slug, '[^a-z0-9_]+', '_', 'g'), '_')), '{}')
            FROM public.modules_v2 m WHERE m.manifest ->> 'clientAccess' = 'write');
  END
  $$;

CREATE OR REPLACE FUNCTION private.client_module_ids(p_write boolean) RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(m.id), '{}') FROM public.modules_v2 m
            WHERE CASE WHEN p_write THEN m.manifest ->> 'clientAccess' = 'write'
                       ELSE coalesce(m.manifest ->> 'clientAccess', 'read') IN ('read', 'write') END);
  END
  $$;

CREATE OR REPLACE FUNCTION private.module_client_access(p_module_id uuid) RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT CASE m.manifest ->> 'clientAccess' WHEN 'none' THEN 'none' WHEN 'write' THEN 'write' ELSE 'read' END
            FROM public.modules_v2 m WHERE m.id = p_module_id);
  END
  $$;

CREATE OR REPLACE FUNCTION private.module_readable_site_ids(p_module_id uuid) RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_modules uuid[] := private.api_key_module_ids();
  BEGIN
    IF v_modules IS NOT NULL AND NOT p_module_id = ANY (v_modules) THEN
      RETURN '{}'::uuid[];
    END IF;
    IF auth.jwt() ->> 'role' = 'site_api_key' THEN
      RETURN private.readable_site_ids();
    END IF;
    -- support: every site (an array rather than "OR is_super_admin()" in the policy, which would cost
    -- every other caller its index scans: bench/rls_policy.py)
    IF private.is_super_admin() THEN
      RETURN (SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s);
    END IF;
    IF private.module_client_access(p_module_id) IN ('read', 'write') THEN
      RETURN private.readable_site_ids() || private.client_site_ids();
    END IF;
    RETURN private.readable_site_ids();
  END
  $$;

CREATE OR REPLACE FUNCTION private.module_writable_site_ids(p_module_id uuid) RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_modules uuid[] := private.api_key_module_ids();
  BEGIN
    IF v_modules IS NOT NULL AND NOT p_module_id = ANY (v_modules) THEN
      RETURN '{}'::uuid[];
    END IF;
    IF auth.jwt() ->> 'role' = 'site_api_key' THEN
      RETURN private.writable_site_ids();
    END IF;
    IF private.module_client_access(p_module_id) = 'write' THEN
      RETURN private.writable_site_ids() || private.client_site_ids();
    END IF;
    RETURN private.writable_site_ids();
  END
  $$;

CREATE OR REPLACE FUNCTION private.visible_module_names(p_module_id uuid) RETURNS jsonb
  LANGUAGE plpgsql STABLE SET search_path = ''
  AS $$
  BEGIN
    RETURN coalesce((SELECT jsonb_build_object('slug', m.slug, 'module_name', m.name)
                     FROM public.modules_v2 m
                     WHERE m.id = p_module_id AND (m.status = 'published' OR private.is_super_admin())),
                    jsonb_build_object('slug', NULL, 'module_name', NULL));
  END
  $$;

CREATE OR REPLACE FUNCTION private.site_installed_modules(p_site_id uuid)
  RETURNS TABLE (slug text, name text, manifest jsonb)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  #variable_conflict use_column
  BEGIN
    RETURN QUERY
      SELECT m.slug, m.name, m.manifest
      FROM public.site_module_installations i
      JOIN public.modules_v2 m ON m.id = i.module_id
      WHERE i.site_id = p_site_id AND i.status <> 'failed'
        AND (p_site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) OR (SELECT private.is_super_admin()));
  END
  $$;

CREATE OR REPLACE FUNCTION private.module_data_target(p_site_id uuid, p_module_id uuid, p_module_slug text)
  RETURNS TABLE (module_id uuid, slug text, module_type text, manifest jsonb, installation_status text,
                 is_enabled boolean, schema_name text, table_names text[], registry_version text,
                 registry_updated_at timestamptz, caller_role text, agency_id uuid)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  #variable_conflict use_column
  BEGIN
    RETURN QUERY
      SELECT m.id, m.slug, m.module_type, m.manifest, i.status, i.is_enabled,
             r.schema_name, r.table_names, r.version, r.updated_at,
             CASE WHEN auth.jwt() ->> 'role' = 'site_api_key' THEN NULL ELSE private.site_role(p_site_id) END,
             (SELECT s.agency_id FROM public.sites s WHERE s.id = p_site_id)
      FROM public.modules_v2 m
      LEFT JOIN public.site_module_installations i ON i.module_id = m.id AND i.site_id = p_site_id
      LEFT JOIN public.module_database_registry r ON r.module_id = m.id
      WHERE (m.id = p_module_id OR m.slug = p_module_slug)
        AND (p_site_id = ANY ((SELECT private.readable_site_ids())::uuid[])
             OR p_site_id = ANY ((SELECT private.client_site_ids())::uuid[])
             OR (SELECT private.is_super_admin()));
  END
  $$;
