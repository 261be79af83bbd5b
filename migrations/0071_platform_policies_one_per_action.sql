-- Row-level security on the platform tables, rewritten so that Supabase's database linter (splinter)
-- has nothing to report and so that each kind of caller reaches exactly what it should:
--
-- * One permissive policy per (role, command). A "FOR ALL" write policy next to a SELECT policy made
--   PostgreSQL evaluate both on every read (lint 0006); writes are now separate INSERT, UPDATE and
--   DELETE policies. Helpers stay wrapped in (SELECT ...), evaluated once per statement (lint 0003).
-- * Site API keys (claims {"role": "site_api_key", "site_id", "modules"}) reach what their routes
--   reach and no more: their modules' data and widget storage, and the events of their modules.
--   Workflows, their steps, triggers, variables, connections and webhooks are the site's users'
--   (private.member_site_ids / managed_site_ids know no keys); executions and step logs are written
--   by the automation engine only.
-- * Rows that belong to a workflow (or an execution, a step) name the same site as it: composite
--   foreign keys (x_id, site_id) -> (id, site_id). Before, a manager of site B could attach a step or
--   a trigger to site A's workflow by its id, and the engine would run it.
-- * The EM-11 helpers in public are for the service role only; on Supabase, default privileges had
--   also given them to anon and authenticated (lints 0028/0029).
--
-- Track A's tables (agency_module_subscriptions, site_module_installations, payment_*, idempotency_records,
-- site_api_keys) are changed by their own migrations.

-- Helpers -------------------------------------------------------------------------------------------

-- Sites of the caller's agencies / of the agencies it manages: users only (a site API key has no sub).
CREATE OR REPLACE FUNCTION private.member_site_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
    JOIN public.agency_members m ON m.agency_id = s.agency_id
    WHERE m.user_id = auth.uid()
  $$;

CREATE OR REPLACE FUNCTION private.managed_site_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
    JOIN public.agency_members m ON m.agency_id = s.agency_id
    WHERE m.user_id = auth.uid() AND m.role IN ('owner', 'admin')
  $$;

-- The module scope of a site API key: NULL when the caller is not a key, or a key for every module
-- (claim "modules" absent or null); else the ids of the modules it names (an unreadable claim names none).
CREATE OR REPLACE FUNCTION private.api_key_module_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN coalesce(auth.jwt() ->> 'role', '') <> 'site_api_key'
        OR coalesce(jsonb_typeof(auth.jwt() -> 'modules'), 'null') = 'null' THEN NULL
      WHEN jsonb_typeof(auth.jwt() -> 'modules') <> 'array' THEN '{}'::uuid[]
      ELSE (SELECT coalesce(array_agg(m.id), '{}') FROM public.modules_v2 m
            WHERE m.slug IN (SELECT jsonb_array_elements_text(auth.jwt() -> 'modules')))
    END
  $$;

-- The event-type prefixes a site API key may write: those of the modules installed on its site
-- (as the event registry counts them: any installation that did not fail) that the key may use.
-- Platform events (marketplace.*, automation.*) are never a key's. NULL when the caller is not a key.
-- The prefix is the slug as an event-type segment (dramac_common.automation_events.event_segment).
CREATE OR REPLACE FUNCTION private.api_key_event_prefixes() RETURNS text[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN coalesce(auth.jwt() ->> 'role', '') <> 'site_api_key' THEN NULL
      ELSE (
        SELECT coalesce(array_agg(DISTINCT p.prefix), '{}') FROM (
          SELECT btrim(regexp_replace(m.slug, '[^a-z0-9_]+', '_', 'g'), '_') AS prefix, m.id
          FROM public.site_module_installations i
          JOIN public.modules_v2 m ON m.id = i.module_id
          WHERE i.site_id = (auth.jwt() ->> 'site_id')::uuid AND i.status <> 'failed'
        ) p
        WHERE p.prefix NOT IN ('marketplace', 'automation')
          AND ((SELECT private.api_key_module_ids()) IS NULL OR p.id = ANY ((SELECT private.api_key_module_ids())::uuid[]))
      )
    END
  $$;

-- Module tables: the sites whose rows of module p_module_id the caller may read / write. A key
-- outside its module scope gets none.
CREATE OR REPLACE FUNCTION private.module_readable_site_ids(p_module_id uuid) RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN (SELECT private.api_key_module_ids()) IS NULL OR p_module_id = ANY ((SELECT private.api_key_module_ids())::uuid[])
        THEN private.readable_site_ids()
      ELSE '{}'::uuid[]
    END
  $$;

CREATE OR REPLACE FUNCTION private.module_writable_site_ids(p_module_id uuid) RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN (SELECT private.api_key_module_ids()) IS NULL OR p_module_id = ANY ((SELECT private.api_key_module_ids())::uuid[])
        THEN private.writable_site_ids()
      ELSE '{}'::uuid[]
    END
  $$;

REVOKE ALL ON FUNCTION private.member_site_ids(), private.managed_site_ids(), private.api_key_module_ids(),
  private.api_key_event_prefixes(), private.module_readable_site_ids(uuid), private.module_writable_site_ids(uuid)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.member_site_ids(), private.managed_site_ids(), private.api_key_module_ids(),
  private.api_key_event_prefixes(), private.module_readable_site_ids(uuid), private.module_writable_site_ids(uuid)
  TO authenticated, service_role;

-- EM-11 helpers: the service role only.
REVOKE ALL ON FUNCTION public.module_schema_exists(text), public.get_module_tables(text),
  public.get_module_storage_size(text) FROM PUBLIC, anon, authenticated;

-- Rows of a workflow name the workflow's site ---------------------------------------------------------

-- Rows that point across sites can only have been written through the gap this closes.
DELETE FROM public.workflow_steps s USING public.automation_workflows w
  WHERE w.id = s.workflow_id AND w.site_id <> s.site_id;
DELETE FROM public.automation_event_subscriptions s USING public.automation_workflows w
  WHERE w.id = s.workflow_id AND w.site_id <> s.site_id;
DELETE FROM public.workflow_variables v USING public.automation_workflows w
  WHERE w.id = v.workflow_id AND w.site_id <> v.site_id;
DELETE FROM public.automation_webhooks h USING public.automation_workflows w
  WHERE w.id = h.workflow_id AND w.site_id <> h.site_id;
DELETE FROM public.workflow_executions e USING public.automation_workflows w
  WHERE w.id = e.workflow_id AND w.site_id <> e.site_id;
DELETE FROM public.step_execution_logs l USING public.workflow_executions e
  WHERE e.id = l.execution_id AND e.site_id <> l.site_id;
UPDATE public.step_execution_logs l SET step_id = NULL FROM public.workflow_steps s
  WHERE s.id = l.step_id AND s.site_id <> l.site_id;

ALTER TABLE public.automation_workflows DROP CONSTRAINT IF EXISTS automation_workflows_id_site_id_key;
ALTER TABLE public.automation_workflows ADD CONSTRAINT automation_workflows_id_site_id_key UNIQUE (id, site_id);
ALTER TABLE public.workflow_steps DROP CONSTRAINT IF EXISTS workflow_steps_id_site_id_key;
ALTER TABLE public.workflow_steps ADD CONSTRAINT workflow_steps_id_site_id_key UNIQUE (id, site_id);
ALTER TABLE public.workflow_executions DROP CONSTRAINT IF EXISTS workflow_executions_id_site_id_key;
ALTER TABLE public.workflow_executions ADD CONSTRAINT workflow_executions_id_site_id_key UNIQUE (id, site_id);

ALTER TABLE public.workflow_steps DROP CONSTRAINT IF EXISTS workflow_steps_workflow_id_fkey;
ALTER TABLE public.workflow_steps ADD CONSTRAINT workflow_steps_workflow_id_fkey
  FOREIGN KEY (workflow_id, site_id) REFERENCES public.automation_workflows (id, site_id) ON DELETE CASCADE;
CREATE INDEX IF NOT EXISTS workflow_steps_workflow_site_idx ON public.workflow_steps (workflow_id, site_id);

ALTER TABLE public.automation_event_subscriptions DROP CONSTRAINT IF EXISTS automation_event_subscriptions_workflow_id_fkey;
ALTER TABLE public.automation_event_subscriptions ADD CONSTRAINT automation_event_subscriptions_workflow_id_fkey
  FOREIGN KEY (workflow_id, site_id) REFERENCES public.automation_workflows (id, site_id) ON DELETE CASCADE;
DROP INDEX IF EXISTS public.automation_event_subscriptions_workflow_id_idx;
CREATE INDEX IF NOT EXISTS automation_event_subscriptions_workflow_site_idx
  ON public.automation_event_subscriptions (workflow_id, site_id);

ALTER TABLE public.workflow_variables DROP CONSTRAINT IF EXISTS workflow_variables_workflow_id_fkey;
ALTER TABLE public.workflow_variables ADD CONSTRAINT workflow_variables_workflow_id_fkey
  FOREIGN KEY (workflow_id, site_id) REFERENCES public.automation_workflows (id, site_id) ON DELETE CASCADE;
CREATE INDEX IF NOT EXISTS workflow_variables_workflow_site_idx ON public.workflow_variables (workflow_id, site_id);

ALTER TABLE public.automation_webhooks DROP CONSTRAINT IF EXISTS automation_webhooks_workflow_id_fkey;
ALTER TABLE public.automation_webhooks ADD CONSTRAINT automation_webhooks_workflow_id_fkey
  FOREIGN KEY (workflow_id, site_id) REFERENCES public.automation_workflows (id, site_id) ON DELETE CASCADE;
DROP INDEX IF EXISTS public.automation_webhooks_workflow_id_idx;
CREATE INDEX IF NOT EXISTS automation_webhooks_workflow_site_idx ON public.automation_webhooks (workflow_id, site_id);

ALTER TABLE public.workflow_executions DROP CONSTRAINT IF EXISTS workflow_executions_workflow_id_fkey;
ALTER TABLE public.workflow_executions ADD CONSTRAINT workflow_executions_workflow_id_fkey
  FOREIGN KEY (workflow_id, site_id) REFERENCES public.automation_workflows (id, site_id) ON DELETE CASCADE;
CREATE INDEX IF NOT EXISTS workflow_executions_workflow_site_idx ON public.workflow_executions (workflow_id, site_id);

ALTER TABLE public.step_execution_logs DROP CONSTRAINT IF EXISTS step_execution_logs_execution_id_fkey;
ALTER TABLE public.step_execution_logs ADD CONSTRAINT step_execution_logs_execution_id_fkey
  FOREIGN KEY (execution_id, site_id) REFERENCES public.workflow_executions (id, site_id) ON DELETE CASCADE;
CREATE INDEX IF NOT EXISTS step_execution_logs_execution_site_idx ON public.step_execution_logs (execution_id, site_id);
ALTER TABLE public.step_execution_logs DROP CONSTRAINT IF EXISTS step_execution_logs_step_id_fkey;
ALTER TABLE public.step_execution_logs ADD CONSTRAINT step_execution_logs_step_id_fkey
  FOREIGN KEY (step_id, site_id) REFERENCES public.workflow_steps (id, site_id) ON DELETE SET NULL (step_id);
DROP INDEX IF EXISTS public.step_execution_logs_step_id_idx;
CREATE INDEX IF NOT EXISTS step_execution_logs_step_site_idx ON public.step_execution_logs (step_id, site_id);

-- Privileges -----------------------------------------------------------------------------------------

-- The outbox is append-only for requests (dispatching is the service's); executions and step logs are
-- the engine's record, read by the site's users.
REVOKE UPDATE, DELETE ON public.automation_events_log FROM authenticated;
REVOKE INSERT, UPDATE, DELETE ON public.workflow_executions, public.step_execution_logs FROM authenticated;

-- Policies -------------------------------------------------------------------------------------------

-- Tables owned by an agency: members read, managers write.
DO $$
DECLARE
  t text;
  members constant text := 'agency_id = ANY ((SELECT private.member_agency_ids())::uuid[]) OR (SELECT private.is_super_admin())';
  managers constant text := 'agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin())';
BEGIN
  FOREACH t IN ARRAY ARRAY['agency_members', 'clients', 'sites']
  LOOP
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_write', t);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_select', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR SELECT TO authenticated USING (%s)', t || '_select', t, members);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_insert', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR INSERT TO authenticated WITH CHECK (%s)', t || '_insert', t, managers);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_update', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR UPDATE TO authenticated USING (%s) WITH CHECK (%s)',
                   t || '_update', t, managers, managers);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_delete', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR DELETE TO authenticated USING (%s)', t || '_delete', t, managers);
  END LOOP;
END
$$;

-- modules_v2: the published catalogue for everyone signed in; super admins manage it.
DROP POLICY IF EXISTS modules_v2_write ON public.modules_v2;
DROP POLICY IF EXISTS modules_v2_insert ON public.modules_v2;
CREATE POLICY modules_v2_insert ON public.modules_v2 FOR INSERT TO authenticated
  WITH CHECK ((SELECT private.is_super_admin()));
DROP POLICY IF EXISTS modules_v2_update ON public.modules_v2;
CREATE POLICY modules_v2_update ON public.modules_v2 FOR UPDATE TO authenticated
  USING ((SELECT private.is_super_admin())) WITH CHECK ((SELECT private.is_super_admin()));
DROP POLICY IF EXISTS modules_v2_delete ON public.modules_v2;
CREATE POLICY modules_v2_delete ON public.modules_v2 FOR DELETE TO authenticated
  USING ((SELECT private.is_super_admin()));

-- Automation configuration: the site's members read, its managers write; site API keys neither.
DO $$
DECLARE
  t text;
  members constant text := 'site_id = ANY ((SELECT private.member_site_ids())::uuid[]) OR (SELECT private.is_super_admin())';
  managers constant text := 'site_id = ANY ((SELECT private.managed_site_ids())::uuid[]) OR (SELECT private.is_super_admin())';
BEGIN
  FOREACH t IN ARRAY ARRAY['automation_workflows', 'workflow_steps', 'automation_event_subscriptions',
    'automation_connections', 'automation_webhooks', 'workflow_variables', 'workflow_executions', 'step_execution_logs']
  LOOP
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_write', t);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_select', t);
    EXECUTE format('CREATE POLICY %I ON public.%I FOR SELECT TO authenticated USING (%s)', t || '_select', t, members);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_insert', t);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_update', t);
    EXECUTE format('DROP POLICY IF EXISTS %I ON public.%I', t || '_delete', t);
    IF t NOT IN ('workflow_executions', 'step_execution_logs') THEN
      EXECUTE format('CREATE POLICY %I ON public.%I FOR INSERT TO authenticated WITH CHECK (%s)',
                     t || '_insert', t, managers);
      EXECUTE format('CREATE POLICY %I ON public.%I FOR UPDATE TO authenticated USING (%s) WITH CHECK (%s)',
                     t || '_update', t, managers, managers);
      EXECUTE format('CREATE POLICY %I ON public.%I FOR DELETE TO authenticated USING (%s)', t || '_delete', t, managers);
    END IF;
  END LOOP;
END
$$;

-- Widget storage: the site's readers / writers, a site API key only for the modules it may use.
DO $$
DECLARE
  key_scope constant text := '((SELECT private.api_key_module_ids()) IS NULL '
                             'OR module_id = ANY ((SELECT private.api_key_module_ids())::uuid[]))';
  readers text := format('(site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) AND %s) '
                         'OR (SELECT private.is_super_admin())', key_scope);
  writers text := format('(site_id = ANY ((SELECT private.writable_site_ids())::uuid[]) AND %s) '
                         'OR (SELECT private.is_super_admin())', key_scope);
BEGIN
  DROP POLICY IF EXISTS module_data_write ON public.module_data;
  DROP POLICY IF EXISTS module_data_select ON public.module_data;
  EXECUTE format('CREATE POLICY module_data_select ON public.module_data FOR SELECT TO authenticated USING (%s)', readers);
  DROP POLICY IF EXISTS module_data_insert ON public.module_data;
  EXECUTE format('CREATE POLICY module_data_insert ON public.module_data FOR INSERT TO authenticated WITH CHECK (%s)',
                 writers);
  DROP POLICY IF EXISTS module_data_update ON public.module_data;
  EXECUTE format('CREATE POLICY module_data_update ON public.module_data FOR UPDATE TO authenticated '
                 'USING (%s) WITH CHECK (%s)', writers, writers);
  DROP POLICY IF EXISTS module_data_delete ON public.module_data;
  EXECUTE format('CREATE POLICY module_data_delete ON public.module_data FOR DELETE TO authenticated USING (%s)', writers);
END
$$;

-- The outbox: a site's events (a site API key: only those of its modules) and an agency's events.
DO $$
DECLARE
  key_scope constant text := '((SELECT private.api_key_event_prefixes()) IS NULL '
                             'OR split_part(event_type, ''.'', 1) = ANY ((SELECT private.api_key_event_prefixes())::text[]))';
BEGIN
  DROP POLICY IF EXISTS automation_events_log_write ON public.automation_events_log;
  DROP POLICY IF EXISTS automation_events_log_agency_select ON public.automation_events_log;
  DROP POLICY IF EXISTS automation_events_log_agency_insert ON public.automation_events_log;
  DROP POLICY IF EXISTS automation_events_log_select ON public.automation_events_log;
  EXECUTE format(
    'CREATE POLICY automation_events_log_select ON public.automation_events_log FOR SELECT TO authenticated USING ('
    '(site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) AND %s) '
    'OR (site_id IS NULL AND agency_id = ANY ((SELECT private.member_agency_ids())::uuid[])) '
    'OR (SELECT private.is_super_admin()))', key_scope);
  DROP POLICY IF EXISTS automation_events_log_insert ON public.automation_events_log;
  EXECUTE format(
    'CREATE POLICY automation_events_log_insert ON public.automation_events_log FOR INSERT TO authenticated WITH CHECK ('
    '(site_id = ANY ((SELECT private.writable_site_ids())::uuid[]) AND %s) '
    'OR (site_id IS NULL AND agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[])) '
    'OR (SELECT private.is_super_admin()))', key_scope);
END
$$;
