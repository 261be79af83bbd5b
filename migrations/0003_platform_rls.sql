-- Row-level security on the platform tables, after Supabase's measured advice:
-- policy columns are indexed, auth.uid() and the helpers are wrapped in (select ...)
-- so they are evaluated once per statement (an initPlan), and the helpers are
-- security-definer functions in a private schema with an empty search_path.

GRANT USAGE ON SCHEMA private TO authenticated, service_role;
REVOKE ALL ON SCHEMA private FROM anon;

CREATE OR REPLACE FUNCTION private.is_super_admin() RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce((SELECT p.is_super_admin FROM public.profiles p WHERE p.id = auth.uid()), false)
  $$;

-- Agencies the caller belongs to (any role).
CREATE OR REPLACE FUNCTION private.member_agency_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(m.agency_id), '{}') FROM public.agency_members m WHERE m.user_id = auth.uid()
  $$;

-- Agencies the caller manages (owner or admin).
CREATE OR REPLACE FUNCTION private.managed_agency_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(m.agency_id), '{}') FROM public.agency_members m
    WHERE m.user_id = auth.uid() AND m.role IN ('owner', 'admin')
  $$;

-- Sites the caller may read: the sites of its agencies, or the one site a
-- site API key is scoped to (claim "site_id" with role "site_api_key").
CREATE OR REPLACE FUNCTION private.readable_site_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN auth.jwt() ->> 'role' = 'site_api_key' THEN
        ARRAY[(auth.jwt() ->> 'site_id')::uuid]
      ELSE (
        SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
        JOIN public.agency_members m ON m.agency_id = s.agency_id
        WHERE m.user_id = auth.uid()
      )
    END
  $$;

-- Sites the caller may write: sites of agencies it manages, or its API key's site.
CREATE OR REPLACE FUNCTION private.writable_site_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN auth.jwt() ->> 'role' = 'site_api_key' THEN
        ARRAY[(auth.jwt() ->> 'site_id')::uuid]
      ELSE (
        SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
        JOIN public.agency_members m ON m.agency_id = s.agency_id
        WHERE m.user_id = auth.uid() AND m.role IN ('owner', 'admin')
      )
    END
  $$;

REVOKE ALL ON FUNCTION private.is_super_admin(), private.member_agency_ids(), private.managed_agency_ids(),
  private.readable_site_ids(), private.writable_site_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.is_super_admin(), private.member_agency_ids(), private.managed_agency_ids(),
  private.readable_site_ids(), private.writable_site_ids() TO authenticated, service_role;

-- Privileges: authenticated may touch rows only as far as the policies allow; anon gets nothing.
GRANT USAGE ON SCHEMA public TO authenticated, service_role;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO authenticated, service_role;
-- a user may edit its own profile, but never grant itself super admin
REVOKE UPDATE ON public.profiles FROM authenticated;
GRANT UPDATE (email, full_name) ON public.profiles TO authenticated;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['profiles', 'agencies', 'agency_members', 'clients', 'sites', 'modules_v2',
    'agency_module_subscriptions', 'site_module_installations', 'module_database_registry', 'module_data',
    'automation_events_log', 'automation_workflows', 'workflow_steps', 'automation_event_subscriptions',
    'workflow_executions', 'step_execution_logs', 'automation_connections', 'automation_webhooks',
    'workflow_variables']
  LOOP
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
  END LOOP;
END
$$;

-- profiles: yourself, the members of your agencies, or everything for a super admin
DROP POLICY IF EXISTS profiles_select ON public.profiles;
CREATE POLICY profiles_select ON public.profiles FOR SELECT TO authenticated
  USING (id = (SELECT auth.uid())
         OR id IN (SELECT m.user_id FROM public.agency_members m
                   WHERE m.agency_id = ANY ((SELECT private.member_agency_ids())::uuid[]))
         OR (SELECT private.is_super_admin()));
DROP POLICY IF EXISTS profiles_update ON public.profiles;
CREATE POLICY profiles_update ON public.profiles FOR UPDATE TO authenticated
  USING (id = (SELECT auth.uid())) WITH CHECK (id = (SELECT auth.uid()));

-- agencies
DROP POLICY IF EXISTS agencies_select ON public.agencies;
CREATE POLICY agencies_select ON public.agencies FOR SELECT TO authenticated
  USING (id = ANY ((SELECT private.member_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()));
DROP POLICY IF EXISTS agencies_update ON public.agencies;
CREATE POLICY agencies_update ON public.agencies FOR UPDATE TO authenticated
  USING (id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()));

-- Tables owned by an agency: members read, managers write.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['agency_members', 'clients', 'sites', 'agency_module_subscriptions',
                           'site_module_installations']
  LOOP
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_select', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR SELECT TO authenticated USING ('
                   'agency_id = ANY ((SELECT private.member_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()))',
                   t || '_select', t);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_write', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR ALL TO authenticated USING ('
                   'agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin())) '
                   'WITH CHECK (agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) '
                   'OR (SELECT private.is_super_admin()))',
                   t || '_write', t);
  END LOOP;
END
$$;

-- modules_v2: the published catalogue for everyone signed in; super admins manage it
DROP POLICY IF EXISTS modules_v2_select ON public.modules_v2;
CREATE POLICY modules_v2_select ON public.modules_v2 FOR SELECT TO authenticated
  USING (status = 'published' OR (SELECT private.is_super_admin()));
DROP POLICY IF EXISTS modules_v2_write ON public.modules_v2;
CREATE POLICY modules_v2_write ON public.modules_v2 FOR ALL TO authenticated
  USING ((SELECT private.is_super_admin())) WITH CHECK ((SELECT private.is_super_admin()));

-- the registry describes schemas, not tenant data: readable, written only by the provisioner
DROP POLICY IF EXISTS module_database_registry_select ON public.module_database_registry;
CREATE POLICY module_database_registry_select ON public.module_database_registry FOR SELECT TO authenticated
  USING (true);

-- Tables owned by a site: readers of the site read, writers of the site write.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['module_data', 'automation_events_log', 'automation_workflows', 'workflow_steps',
    'automation_event_subscriptions', 'workflow_executions', 'step_execution_logs', 'automation_connections',
    'automation_webhooks', 'workflow_variables']
  LOOP
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_select', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR SELECT TO authenticated USING ('
                   'site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) OR (SELECT private.is_super_admin()))',
                   t || '_select', t);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_write', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR ALL TO authenticated USING ('
                   'site_id = ANY ((SELECT private.writable_site_ids())::uuid[]) OR (SELECT private.is_super_admin())) '
                   'WITH CHECK (site_id = ANY ((SELECT private.writable_site_ids())::uuid[]) '
                   'OR (SELECT private.is_super_admin()))',
                   t || '_write', t);
  END LOOP;
END
$$;
