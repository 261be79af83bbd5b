-- Platform events (`marketplace.*`, `automation.*`) are written only by the backend, in the
-- transaction of the change they report (a subscription activated, an installation enabled, a
-- webhook received). Before this, the outbox's insert policy let a manager connected as
-- `authenticated` (PostgREST on Supabase) insert `marketplace.subscription.activated` for its own
-- agency or sites, and so run its workflows on a payment that never happened.
--
-- Now a request role inserts only site events of its modules (a site API key: only those of the
-- modules in its scope); a platform event goes through private.log_platform_event, which only the
-- backend's write role `dramac_backend` (migration 0051) may execute.

DO $$
DECLARE
  key_scope constant text := '((SELECT private.api_key_event_prefixes()) IS NULL '
                             'OR split_part(event_type, ''.'', 1) = ANY ((SELECT private.api_key_event_prefixes())::text[]))';
BEGIN
  DROP POLICY IF EXISTS automation_events_log_insert ON public.automation_events_log;
  EXECUTE format(
    'CREATE POLICY automation_events_log_insert ON public.automation_events_log FOR INSERT TO authenticated WITH CHECK ('
    '((site_id = ANY ((SELECT private.writable_site_ids())::uuid[]) AND %s) OR (SELECT private.is_super_admin())) '
    'AND split_part(event_type, ''.'', 1) NOT IN (''marketplace'', ''automation''))',
    key_scope);
END
$$;

CREATE OR REPLACE FUNCTION private.log_platform_event(
    p_site_id uuid, p_agency_id uuid, p_event_type text, p_payload jsonb, p_source_module text,
    p_source_entity_type text, p_source_entity_id text) RETURNS uuid
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_id uuid;
  BEGIN
    IF split_part(p_event_type, '.', 1) NOT IN ('marketplace', 'automation') THEN
      RAISE EXCEPTION 'not a platform event: %', p_event_type USING ERRCODE = '22023';
    END IF;
    INSERT INTO public.automation_events_log
      (site_id, agency_id, event_type, payload, source_module, source_entity_type, source_entity_id)
    VALUES (p_site_id, p_agency_id, p_event_type, coalesce(p_payload, '{}'::jsonb), p_source_module,
            p_source_entity_type, p_source_entity_id)
    RETURNING id INTO v_id;
    RETURN v_id;
  END
  $$;

REVOKE ALL ON FUNCTION private.log_platform_event(uuid, uuid, text, jsonb, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.log_platform_event(uuid, uuid, text, jsonb, text, text, text) TO dramac_backend;
