-- The audit trail: who did what, append-only. A change and its audit row are written in the same
-- transaction (through private.record_audit, which only the backend's write role dramac_backend may
-- execute; migration 0051), so a committed change always has its row and a rolled-back one never does.
--
-- Readable by the owners of the agency a row belongs to (and by super admins); nobody may change or
-- delete a row: request roles hold only SELECT, and a trigger refuses UPDATE, DELETE and TRUNCATE to
-- every role, the table's owner included. Rows keep their agency id after the agency is deleted (no
-- foreign key): the trail outlives what it describes.

CREATE TABLE IF NOT EXISTS public.audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  agency_id uuid,
  site_id uuid,
  -- who: a user (actor_user_id), a site API key (actor_key_id), or the platform itself (both NULL)
  actor_user_id uuid,
  actor_key_id uuid,
  actor_role text NOT NULL,
  -- what: '<thing>.<verb>', e.g. 'installation.enabled', 'api_key.rotated', 'module_data.read'
  action text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  target_type text,
  target_id text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_agency_idx ON public.audit_log (agency_id, occurred_at DESC);
CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON public.audit_log (actor_user_id, occurred_at DESC)
  WHERE actor_user_id IS NOT NULL;

CREATE OR REPLACE FUNCTION private.refuse_audit_change() RETURNS trigger
  LANGUAGE plpgsql SET search_path = ''
  AS $$
  BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = '42501';
  END
  $$;

DROP TRIGGER IF EXISTS audit_log_append_only ON public.audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON public.audit_log
  FOR EACH ROW EXECUTE FUNCTION private.refuse_audit_change();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON public.audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION private.refuse_audit_change();

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.audit_log FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON public.audit_log TO authenticated;
GRANT SELECT, INSERT ON public.audit_log TO service_role;

-- Agencies the caller owns (the audit trail is the owners').
CREATE OR REPLACE FUNCTION private.owned_agency_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(m.agency_id), '{}') FROM public.agency_members m
    WHERE m.user_id = auth.uid() AND m.role = 'owner'
  $$;
REVOKE ALL ON FUNCTION private.owned_agency_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.owned_agency_ids() TO authenticated, service_role;

DROP POLICY IF EXISTS audit_log_select ON public.audit_log;
CREATE POLICY audit_log_select ON public.audit_log FOR SELECT TO authenticated
  USING (agency_id = ANY ((SELECT private.owned_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()));

-- The one way in. The actor comes from the request's claims (never from the caller's arguments):
-- a user (sub), a site API key (role site_api_key, key_id), or the platform (no claims: a worker).
CREATE OR REPLACE FUNCTION private.record_audit(
    p_action text, p_agency_id uuid, p_site_id uuid, p_target_type text, p_target_id text, p_details jsonb)
  RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
    v_user uuid;
    v_key uuid;
    v_role text;
    v_id bigint;
  BEGIN
    IF v_claims IS NULL OR v_claims = 'null'::jsonb OR v_claims = '{}'::jsonb THEN
      v_role := 'platform';
    ELSIF v_claims ->> 'role' = 'site_api_key' THEN
      v_role := 'site_api_key';
      v_key := nullif(v_claims ->> 'key_id', '')::uuid;
    ELSE
      v_user := nullif(v_claims ->> 'sub', '')::uuid;
      SELECT CASE WHEN p.is_super_admin THEN 'super_admin' END INTO v_role
      FROM public.profiles p WHERE p.id = v_user;
      IF v_role IS NULL AND p_agency_id IS NOT NULL THEN
        SELECT m.role INTO v_role FROM public.agency_members m
        WHERE m.agency_id = p_agency_id AND m.user_id = v_user;
      END IF;
      v_role := coalesce(v_role, 'user');
    END IF;
    INSERT INTO public.audit_log (agency_id, site_id, actor_user_id, actor_key_id, actor_role, action,
                                  target_type, target_id, details)
    VALUES (p_agency_id, p_site_id, v_user, v_key, v_role, p_action, p_target_type, p_target_id,
            coalesce(p_details, '{}'::jsonb))
    RETURNING id INTO v_id;
    RETURN v_id;
  END
  $$;

REVOKE ALL ON FUNCTION private.record_audit(text, uuid, uuid, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.record_audit(text, uuid, uuid, text, text, jsonb) TO dramac_backend;
