-- A request on one site proves that one site, not every site the caller may read (issue 14).
--
-- The module data gate (private.module_data_target) and a module table's policies
-- (private.module_readable_site_ids / module_writable_site_ids, 0160) built the array of every site the
-- caller reaches: a join of all of the user's memberships with their agencies' sites, twice per request
-- (the gate, then the policy's initPlan), so a user in 1,001 agencies paid for 1,001 agencies on a read
-- of one site. Now:
--
-- * the gate checks the one site it is given: private.site_role(site) (one index probe per table)
--   for a user, the key's own site for a site API key; its answers are the same as before;
-- * the shared layer names the request's site in the transaction-local setting dramac.site_id
--   (core.db: a site unit's opening, next to the claims). The site helpers then answer ARRAY[that site]
--   when the caller reaches it, with the same rules as the full array, and '{}' otherwise: the module
--   table helpers (member, client user as the module's clientAccess says, super admin for reads; a
--   key's scope first), and readable_site_ids, writable_site_ids and client_site_ids, which the
--   platform's site policies use (widget storage, events written with module data). The setting only
--   narrows: a caller who sets it itself (the authenticated role reached directly, as on Supabase)
--   sees at most the rows it saw without it, and without it (or with a value that is not a uuid) the
--   helpers compute the full arrays as before.

CREATE OR REPLACE FUNCTION private.request_site_id() RETURNS uuid
  LANGUAGE plpgsql STABLE SET search_path = ''
  AS $$
  DECLARE
    v_text text := current_setting('dramac.site_id', true);
  BEGIN
    IF v_text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
      RETURN v_text::uuid;
    END IF;
    RETURN NULL;
  END
  $$;

-- Whether the caller is a member of the site's agency (private.member_site_ids() for one site).
CREATE OR REPLACE FUNCTION private.is_site_member(p_site_id uuid) RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN EXISTS (SELECT 1 FROM public.sites s
                   JOIN public.agency_members m ON m.agency_id = s.agency_id AND m.user_id = auth.uid()
                   WHERE s.id = p_site_id);
  END
  $$;

-- Whether the caller is a client user of the site's client (private.client_site_ids() for one site).
CREATE OR REPLACE FUNCTION private.is_site_client(p_site_id uuid) RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN EXISTS (SELECT 1 FROM public.sites s
                   JOIN public.client_users c ON c.client_id = s.client_id AND c.agency_id = s.agency_id
                                             AND c.user_id = auth.uid()
                   WHERE s.id = p_site_id);
  END
  $$;

-- The platform's site helpers (0160), narrowed the same way.
CREATE OR REPLACE FUNCTION private.readable_site_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_claims jsonb := auth.jwt();
    v_site uuid;
  BEGIN
    IF v_claims ->> 'role' = 'site_api_key' THEN
      RETURN ARRAY[(v_claims ->> 'site_id')::uuid];
    END IF;
    v_site := private.request_site_id();
    IF v_site IS NOT NULL THEN
      RETURN CASE WHEN private.is_site_member(v_site) THEN ARRAY[v_site] ELSE '{}'::uuid[] END;
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
    v_site uuid;
  BEGIN
    IF v_claims ->> 'role' = 'site_api_key' THEN
      RETURN ARRAY[(v_claims ->> 'site_id')::uuid];
    END IF;
    v_site := private.request_site_id();
    IF v_site IS NOT NULL THEN
      RETURN CASE WHEN private.is_site_member(v_site) THEN ARRAY[v_site] ELSE '{}'::uuid[] END;
    END IF;
    RETURN private.member_site_ids();
  END
  $$;

CREATE OR REPLACE FUNCTION private.client_site_ids() RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_site uuid := private.request_site_id();
  BEGIN
    IF v_site IS NOT NULL THEN
      RETURN CASE WHEN private.is_site_client(v_site) THEN ARRAY[v_site] ELSE '{}'::uuid[] END;
    END IF;
    RETURN (SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
            JOIN public.client_users c ON c.client_id = s.client_id AND c.agency_id = s.agency_id
            WHERE c.user_id = auth.uid());
  END
  $$;

CREATE OR REPLACE FUNCTION private.module_readable_site_ids(p_module_id uuid) RETURNS uuid[]
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_modules uuid[] := private.api_key_module_ids();
    v_site uuid;
  BEGIN
    IF v_modules IS NOT NULL AND NOT p_module_id = ANY (v_modules) THEN
      RETURN '{}'::uuid[];
    END IF;
    IF auth.jwt() ->> 'role' = 'site_api_key' THEN
      RETURN private.readable_site_ids();
    END IF;
    v_site := private.request_site_id();
    IF v_site IS NOT NULL THEN  -- the request's one site, if the array below would hold it
      IF private.is_site_member(v_site)
         OR (private.is_super_admin() AND EXISTS (SELECT 1 FROM public.sites s WHERE s.id = v_site))
         OR (private.module_client_access(p_module_id) IN ('read', 'write') AND private.is_site_client(v_site)) THEN
        RETURN ARRAY[v_site];
      END IF;
      RETURN '{}'::uuid[];
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
    v_site uuid;
  BEGIN
    IF v_modules IS NOT NULL AND NOT p_module_id = ANY (v_modules) THEN
      RETURN '{}'::uuid[];
    END IF;
    IF auth.jwt() ->> 'role' = 'site_api_key' THEN
      RETURN private.writable_site_ids();
    END IF;
    v_site := private.request_site_id();
    IF v_site IS NOT NULL THEN  -- the request's one site, if the array below would hold it
      IF private.is_site_member(v_site)
         OR (private.module_client_access(p_module_id) = 'write' AND private.is_site_client(v_site)) THEN
        RETURN ARRAY[v_site];
      END IF;
      RETURN '{}'::uuid[];
    END IF;
    IF private.module_client_access(p_module_id) = 'write' THEN
      RETURN private.writable_site_ids() || private.client_site_ids();
    END IF;
    RETURN private.writable_site_ids();
  END
  $$;

CREATE OR REPLACE FUNCTION private.module_data_target(p_site_id uuid, p_module_id uuid, p_module_slug text)
  RETURNS TABLE (module_id uuid, slug text, module_type text, manifest jsonb, installation_status text,
                 is_enabled boolean, schema_name text, table_names text[], registry_version text,
                 registry_updated_at timestamptz, caller_role text, agency_id uuid)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  #variable_conflict use_column
  DECLARE
    v_claims jsonb := auth.jwt();
    v_role text;
  BEGIN
    IF v_claims ->> 'role' = 'site_api_key' THEN
      IF p_site_id IS DISTINCT FROM (v_claims ->> 'site_id')::uuid THEN
        RETURN;
      END IF;
    ELSE
      -- a member, a client user of the site's client, or a super admin (who passes even for a site that
      -- does not exist, as before: the module is then not installed there)
      v_role := private.site_role(p_site_id);
      IF v_role IS NULL AND NOT private.is_super_admin() THEN
        RETURN;
      END IF;
    END IF;
    RETURN QUERY
      SELECT m.id, m.slug, m.module_type, m.manifest, i.status, i.is_enabled,
             r.schema_name, r.table_names, r.version, r.updated_at, v_role,
             (SELECT s.agency_id FROM public.sites s WHERE s.id = p_site_id)
      FROM public.modules_v2 m
      LEFT JOIN public.site_module_installations i ON i.module_id = m.id AND i.site_id = p_site_id
      LEFT JOIN public.module_database_registry r ON r.module_id = m.id
      WHERE m.id = p_module_id OR m.slug = p_module_slug;
  END
  $$;

REVOKE ALL ON FUNCTION private.request_site_id(), private.is_site_member(uuid), private.is_site_client(uuid)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.request_site_id(), private.is_site_member(uuid), private.is_site_client(uuid)
  TO authenticated, service_role;
