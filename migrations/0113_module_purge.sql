-- Purging a site's data of a module: an owner asks (with an explicit confirmation), the installation
-- is disabled at once and its rows are deleted after a grace period (purge_after), during which the
-- owner can undo it. A scheduled worker (functions/purger) deletes the rows and the installation when
-- the grace period is over. The module's schema stays: only the operator path drops it, and only when
-- no site uses it any more.

ALTER TABLE public.site_module_installations ADD COLUMN IF NOT EXISTS purge_after timestamptz;
ALTER TABLE public.site_module_installations ADD COLUMN IF NOT EXISTS purge_requested_at timestamptz;
ALTER TABLE public.site_module_installations ADD COLUMN IF NOT EXISTS purge_requested_by uuid;
CREATE INDEX IF NOT EXISTS site_module_installations_purge_due_idx
  ON public.site_module_installations (purge_after) WHERE purge_after IS NOT NULL;

-- Owners of the agency (and super admins): billing and destroying data are theirs.
CREATE OR REPLACE FUNCTION private.can_own_agency(p_agency_id uuid) RETURNS boolean
  LANGUAGE sql STABLE SET search_path = ''
  AS $$
    SELECT p_agency_id = ANY (private.owned_agency_ids()) OR private.is_super_admin()
  $$;
REVOKE ALL ON FUNCTION private.can_own_agency(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.can_own_agency(uuid) TO dramac_backend;

-- Schedule the purge of a site's data of a module: the installation is disabled and purge_after set.
-- NULL when the module is not installed on the site; "already": true when a purge is already pending.
CREATE OR REPLACE FUNCTION private.request_module_purge(p_site_id uuid, p_module_id uuid, p_grace_seconds integer)
  RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_agency uuid;
    v_row public.site_module_installations;
    v_previous text;
  BEGIN
    SELECT s.agency_id INTO v_agency FROM public.sites s WHERE s.id = p_site_id;
    IF NOT FOUND OR NOT private.can_own_agency(v_agency) THEN
      RAISE EXCEPTION 'only an owner of the site''s agency may purge module data' USING ERRCODE = '42501';
    END IF;
    SELECT i.* INTO v_row FROM public.site_module_installations i
    WHERE i.site_id = p_site_id AND i.module_id = p_module_id FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    IF v_row.purge_after IS NOT NULL THEN
      RETURN to_jsonb(v_row) || jsonb_build_object('already', true, 'previous_status', v_row.status)
             || private.visible_module_names(p_module_id);
    END IF;
    v_previous := v_row.status;
    UPDATE public.site_module_installations i
    SET status = 'disabled', is_enabled = false, target_version = NULL,
        purge_after = now() + make_interval(secs => greatest(p_grace_seconds, 0)),
        purge_requested_at = now(), purge_requested_by = auth.uid()
    WHERE i.id = v_row.id
    RETURNING i.* INTO v_row;
    RETURN to_jsonb(v_row) || jsonb_build_object('already', false, 'previous_status', v_previous)
           || private.visible_module_names(p_module_id);
  END
  $$;

-- Undo a pending purge while its grace period lasts; the installation stays disabled (installing the
-- module again re-enables it with its data). {"refused": "no_pending_purge" | "purge_due"} otherwise.
CREATE OR REPLACE FUNCTION private.cancel_module_purge(p_site_id uuid, p_module_id uuid) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_agency uuid;
    v_row public.site_module_installations;
  BEGIN
    SELECT s.agency_id INTO v_agency FROM public.sites s WHERE s.id = p_site_id;
    IF NOT FOUND OR NOT private.can_own_agency(v_agency) THEN
      RAISE EXCEPTION 'only an owner of the site''s agency may undo a purge' USING ERRCODE = '42501';
    END IF;
    SELECT i.* INTO v_row FROM public.site_module_installations i
    WHERE i.site_id = p_site_id AND i.module_id = p_module_id FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    IF v_row.purge_after IS NULL THEN
      RETURN jsonb_build_object('refused', 'no_pending_purge');
    END IF;
    IF v_row.purge_after <= now() THEN
      RETURN jsonb_build_object('refused', 'purge_due');
    END IF;
    UPDATE public.site_module_installations i
    SET purge_after = NULL, purge_requested_at = NULL, purge_requested_by = NULL
    WHERE i.id = v_row.id
    RETURNING i.* INTO v_row;
    RETURN to_jsonb(v_row) || private.visible_module_names(p_module_id);
  END
  $$;

REVOKE ALL ON FUNCTION private.request_module_purge(uuid, uuid, integer), private.cancel_module_purge(uuid, uuid)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.request_module_purge(uuid, uuid, integer), private.cancel_module_purge(uuid, uuid)
  TO dramac_backend;

-- An installation enabled again never keeps a pending purge (the install route refuses while one is
-- pending; this holds the rule for a request that raced the purge's).
CREATE OR REPLACE FUNCTION private.installation_set_updated_by() RETURNS trigger
  LANGUAGE plpgsql SET search_path = ''
  AS $$
  BEGIN
    NEW.updated_by := coalesce(auth.uid(), NEW.updated_by);
    IF TG_OP = 'INSERT' AND NEW.installed_version IS NULL THEN
      SELECT m.manifest ->> 'version' INTO NEW.installed_version FROM public.modules_v2 m WHERE m.id = NEW.module_id;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.is_enabled AND NEW.purge_after IS NOT NULL THEN
      NEW.purge_after := NULL;
      NEW.purge_requested_at := NULL;
      NEW.purge_requested_by := NULL;
    END IF;
    RETURN NEW;
  END
  $$;
