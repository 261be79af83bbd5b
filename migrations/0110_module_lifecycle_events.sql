-- Lifecycle events of installations (marketplace.module.installed|disabled|...) carry the actor: the
-- user whose request last changed the installation. updated_by is set by a trigger from the request's
-- claims (a worker's unit, without claims, keeps the previous value), so the provisioner, which
-- activates installations later, reports the user who asked for them.
--
-- private.disable_module also answers the status the installation had before ("previous_status"), so
-- the request that really disabled it emits marketplace.module.disabled and a repeat does not.

ALTER TABLE public.site_module_installations ADD COLUMN IF NOT EXISTS updated_by uuid;

CREATE OR REPLACE FUNCTION private.installation_set_updated_by() RETURNS trigger
  LANGUAGE plpgsql SET search_path = ''
  AS $$
  BEGIN
    NEW.updated_by := coalesce(auth.uid(), NEW.updated_by);
    RETURN NEW;
  END
  $$;
REVOKE ALL ON FUNCTION private.installation_set_updated_by() FROM PUBLIC;

DROP TRIGGER IF EXISTS site_module_installations_updated_by ON public.site_module_installations;
CREATE TRIGGER site_module_installations_updated_by BEFORE INSERT OR UPDATE ON public.site_module_installations
  FOR EACH ROW EXECUTE FUNCTION private.installation_set_updated_by();

CREATE OR REPLACE FUNCTION private.disable_module(p_site_id uuid, p_module_id uuid) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_agency uuid;
    v_previous text;
    v_row public.site_module_installations;
  BEGIN
    SELECT s.agency_id INTO v_agency FROM public.sites s WHERE s.id = p_site_id;
    IF NOT FOUND OR NOT private.can_manage_agency(v_agency) THEN
      RAISE EXCEPTION 'only a manager of the site''s agency may disable modules' USING ERRCODE = '42501';
    END IF;
    SELECT i.status INTO v_previous FROM public.site_module_installations i
    WHERE i.site_id = p_site_id AND i.module_id = p_module_id
    FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    UPDATE public.site_module_installations i SET status = 'disabled', is_enabled = false
    WHERE i.site_id = p_site_id AND i.module_id = p_module_id
    RETURNING i.* INTO v_row;
    RETURN to_jsonb(v_row) || jsonb_build_object('previous_status', v_previous)
           || private.visible_module_names(p_module_id);
  END
  $$;
REVOKE ALL ON FUNCTION private.disable_module(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.disable_module(uuid, uuid) TO dramac_backend;
